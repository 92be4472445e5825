"""addon.formats.gemini: paths, requests, answers, streams, errors and signatures, as tables (style.md item 13).

References: gemini.md (§1 endpoints, §2 requests, §3 answers, §4 streams, §5 errors, §6 function calling, §7
thought signatures, §9 mapping). Oracles, none of them the code under test: google-genai 3.3.0 (its types with
unknown keys forbidden validate what is rendered for a Gemini upstream; its client, fed bytes through a mock
transport, reads what is emitted for a Gemini client, as tests/test_sdk_oracle.py does with the openai and
anthropic SDKs); ``tests.mock_upstream.gemini_refusal`` (what the real API refuses, gemini.md §5.2);
``tests.stream_grammar`` (every client format's stream grammar); the real clients' requests in
/work/shared/client-shapes/.
"""

from __future__ import annotations

import base64
import itertools
import json
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from addon import translate
from addon.accumulate import accumulate
from addon.config import ConfigError, parse_config
from addon.errors import BadRequest, BridgeError, ErrorKind, Unsupported, UpstreamError, UpstreamProtocolError
from addon.formats import FORMATS, Operation
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import gemini as G
from addon.formats import responses as R
from addon.formats.common import Context, decode_signature, encode_signature
from addon.formats.gemini import schema as gschema
from addon.formats.gemini.wire import SKIP_SIGNATURE, Carried, encode_carried, read_signature
from addon.ir import (
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    Image,
    Message,
    MessageStart,
    Opaque,
    Reasoning,
    ReasoningConfig,
    Request,
    Response,
    ResponseFormat,
    Role,
    StopReason,
    StreamError,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolKind,
    ToolResult,
    Usage,
    UsageUpdate,
)
from addon.plan import plan
from addon.routing import detect, route
from addon.sequence import BlockOrder
from addon.sse import SSEDecoder, SSEEvent
from tests import mock_upstream as mu
from tests.stream_grammar import (
    check_anthropic_stream,
    check_chat_stream,
    check_gemini_stream,
    check_responses_stream,
    fold_anthropic,
    fold_chat,
    fold_gemini,
)
from tests.test_properties import check_upstream_body
from tests.test_stream_split import split_at

SHAPES = Path("/work/shared/client-shapes")
CREATED = 1_700_000_000
SPLITS = settings(max_examples=30, deadline=None)
PNG = b"\x89PNG\r\n\x1a\n\xfb\xff\xfe pixels"  # bytes whose base64 differs between the two alphabets
SIGNATURE = base64.b64encode(b"\xfa\xfb\xfc gemini's own signature").decode()  # "+" and "/" in it
OTHER_SIGNATURE = base64.b64encode(b"a text answer's signature").decode()
LONG_NAME = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository_v2"
OTHER_CHECKS: dict[str, Callable[[bytes], Any]] = {"anthropic": check_anthropic_stream, "chat": check_chat_stream,
                                                    "responses": check_responses_stream}


def cuts_for(raw: bytes) -> st.SearchStrategy[list[int]]:
    """Cut points biased toward the inside of UTF-8 characters and of data: lines (either may be absent)."""
    inside_chars = [i for i, b in enumerate(raw) if 0x80 <= b < 0xC0]
    inside_data = [i + 3 for i in range(len(raw)) if raw.startswith(b"data:", i)]
    points = [st.integers(0, len(raw))] + [st.sampled_from(p) for p in (inside_chars, inside_data) if p]
    return st.lists(st.one_of(points), max_size=25)


def make_ctx(**kw: Any) -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):04d}", created=CREATED, **kw)


def g_op(model: str = "gemini-2.5-flash", stream: bool = True, framing: str = "sse") -> Operation:
    return Operation("gemini", "generate", model=model, stream=stream, framing=framing)


def shape(name: str) -> dict[str, Any]:
    data = json.loads((SHAPES / name).read_text())
    assert isinstance(data, dict)
    return data


def sse(chunks: list[dict[str, Any]]) -> bytes:
    """A Gemini upstream's SSE body (the API writes CRLF between events as well; the decoder takes both)."""
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def usage(prompt: int, candidates: int, thoughts: int | None = None, cached: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
                            "totalTokenCount": prompt + candidates + (thoughts or 0)}
    if thoughts is not None:
        meta["thoughtsTokenCount"] = thoughts
    if cached is not None:
        meta["cachedContentTokenCount"] = cached
    return meta


def chunk(parts: list[dict[str, Any]], finish: str | None = None, meta: dict[str, Any] | None = None,
          model: str = "gemini-3-pro-preview") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage(9, 1) if meta is None else meta, "modelVersion": model,
            "responseId": "QHiLaa6LBrb8vdIPoNztsAg"}


def genai_client(body: bytes, content_type: str = "text/event-stream", status: int = 200,
                 sent: list[Any] | None = None) -> genai.Client:
    """google-genai with no network: every request is answered with ``body``; ``sent`` collects requests."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        if sent is not None:
            sent.append(request)
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)
    transport = httpx2.Client(transport=httpx2.MockTransport(handler))
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url="http://test", api_version="v1beta",
                                                                           httpx_client=transport))


def sdk_stream(raw: bytes) -> list[types.GenerateContentResponse]:
    """What the Python SDK's stream reader makes of the bytes (gemini.md §4.4): it raises on what it refuses."""
    return list(genai_client(raw).models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))


def sdk_request(contents: Any, config: types.GenerateContentConfig | None = None) -> dict[str, Any]:
    """The body google-genai really sends (snake_case nested, URL-safe base64: gemini.md §2.2)."""
    sent: list[httpx2.Request] = []
    answer = json.dumps(chunk([{"text": "ok"}], "STOP")).encode()
    genai_client(answer, "application/json", sent=sent).models.generate_content(
        model="gemini-2.5-flash", contents=contents, config=config)
    body = json.loads(sent[0].content)
    assert isinstance(body, dict)
    return body


def validate_gemini_body(body: dict[str, Any], model: str = "gemini-3-pro-preview") -> None:
    """A body rendered for a Gemini upstream: each piece validates against google-genai's own types (unknown
    keys forbidden, bytes must be base64), and the mock upstream's model of the real API takes it."""
    assert set(body) <= {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}, body.keys()
    for content in body["contents"]:
        types.Content.model_validate_json(json.dumps(content))
        assert content["role"] in ("user", "model") and content["parts"], content
    if "systemInstruction" in body:
        types.Content.model_validate_json(json.dumps(body["systemInstruction"]))
    for tool in body.get("tools", ()):
        types.Tool.model_validate_json(json.dumps(tool))
    if "toolConfig" in body:
        types.ToolConfig.model_validate_json(json.dumps(body["toolConfig"]))
    if "generationConfig" in body:
        types.GenerationConfig.model_validate_json(json.dumps(body["generationConfig"]))
    refusal = mu.gemini_refusal(json.loads(json.dumps(body)), model)
    assert refusal is None, refusal


def start(client: ModuleType, upstream: ModuleType, body: dict[str, Any], op: Operation | None = None,
          upstream_model: str | None = None, **ctx: Any) -> tuple[translate.Exchange, dict[str, Any]]:
    exchange, wire = translate.Exchange.start(client, upstream, json.dumps(body).encode(), make_ctx(**ctx), op=op,
                                              upstream_model=upstream_model)
    return exchange, json.loads(wire)


def run_stream(exchange: translate.Exchange, pieces: list[bytes]) -> bytes:
    translator = exchange.stream()
    out: list[bytes] = []
    for piece in pieces:
        got = translator.feed(piece)
        assert b"" not in got
        out += got
    return b"".join(out + translator.close())


# --- paths: what is Gemini's, and where an upstream is asked (gemini.md §1.1) ---------------------

GEMINI_KEY = {"x-goog-api-key": "k"}


@pytest.mark.parametrize(("method", "path", "headers", "expected"), [
    ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", {}, g_op(stream=False)),
    ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {}, g_op()),
    ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", {}, g_op(framing="json-array")),
    ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?$alt=SSE&key=k", {}, g_op()),
    ("POST", "/v1/models/gemini-3-pro-preview:streamGenerateContent?alt=sse", GEMINI_KEY, g_op("gemini-3-pro-preview")),
    ("POST", "/gemini/v1beta/models/gemini-2.5-flash:generateContent/", {}, g_op(stream=False)),  # behind a prefix
    ("POST", "/v1beta/models/qwen3%3A30b:generateContent", {}, g_op("qwen3:30b", stream=False)),
    ("POST", "/v1beta/tunedModels/my-tune:generateContent", {}, g_op("tunedModels/my-tune", stream=False)),
    ("POST", "/v1beta/models/gemini-2.5-flash:countTokens", {},
     Operation("gemini", "count_tokens", model="gemini-2.5-flash", stream=False)),
    ("GET", "/v1beta/models", {}, Operation("gemini", "models")),
    ("GET", "/v1beta/models?pageSize=5", {}, Operation("gemini", "models")),
    ("GET", "/v1/models", GEMINI_KEY, Operation("gemini", "models")),
    ("GET", "/v1/models?key=k", {}, Operation("gemini", "models")),
    ("GET", "/v1/models", {}, Operation("chat", "models")),  # OpenAI's, without Gemini's marks
    ("GET", "/v1/models", {"anthropic-version": "2023-06-01"}, Operation("anthropic", "models")),
    # a wrong method, or a method the bridge does not serve, on Gemini's paths: Gemini's 404
    ("GET", "/v1beta/models/gemini-2.5-flash:generateContent", {}, Operation("gemini", "unknown")),
    ("POST", "/v1beta/models/gemini-2.5-flash:embedContent", {}, Operation("gemini", "unknown")),
    ("POST", "/v1beta/models", {}, Operation("gemini", "unknown")),
    ("GET", "/v1beta/models/gemini-2.5-flash", {}, Operation("gemini", "unknown")),
    ("GET", "/v1beta/files", {}, Operation("gemini", "unknown")),
    ("POST", "/v1/models/gemini-2.5-flash:embedContent", {}, Operation("gemini", "unknown")),
    # the other formats keep their paths, whatever the headers
    ("POST", "/v1/messages", GEMINI_KEY, Operation("anthropic", "generate")),
    ("POST", "/v1/chat/completions", GEMINI_KEY, Operation("chat", "generate")),
    ("POST", "/v1/responses", GEMINI_KEY, Operation("responses", "generate")),
])
def test_detect_gemini_requests(method: str, path: str, headers: dict[str, str], expected: Operation) -> None:
    assert detect(method, path, headers) == expected


@pytest.mark.parametrize(("path", "claimed"), [
    ("/v1beta/files", True), ("/v1beta", True), ("/proxy/v1beta/cachedContents/x", True),
    ("/v1/models/gemini-2.5-flash:batchEmbedContents", True),
    ("/v1/models", False), ("/v1/embeddings", False), ("/api/tags", False), ("/v1betax/models", False),
])
def test_claims(path: str, claimed: bool) -> None:
    assert G.claims(path) is claimed


@pytest.mark.parametrize(("model", "stream", "kind", "expected"), [
    ("gemini-2.5-flash", False, "generate", "B/v1beta/models/gemini-2.5-flash:generateContent"),
    ("gemini-2.5-flash", True, "generate", "B/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
    ("models/gemini-2.5-flash", False, "count_tokens", "B/v1beta/models/gemini-2.5-flash:countTokens"),
    ("qwen3:30b", False, "generate", "B/v1beta/models/qwen3%3A30b:generateContent"),  # ":" would cut the path
    ("a/b c", True, "generate", "B/v1beta/models/a%2Fb%20c:streamGenerateContent?alt=sse"),
    ("tunedModels/my-tune", False, "generate", "B/v1beta/tunedModels/my-tune:generateContent"),
])
def test_upstream_url(model: str, stream: bool, kind: str, expected: str) -> None:
    assert G.upstream_url("B", model, stream, kind) == expected


def test_streams_follows_the_request_not_the_body() -> None:
    # The rendered body has no stream flag (gemini.md §1.1): the URL, built from the request, says it.
    req = Request(model="m", messages=(), stream=True)
    body = G.render_request(req, make_ctx())
    assert "stream" not in body
    assert G.streams(body, req) is True and G.streams(body, Request(model="m", messages=())) is False


def cfg(text: str) -> Any:
    return parse_config(yaml.compose(textwrap.dedent(text)), "config.yaml", {"GEMINI_TEST_KEY": "test-key"})


def test_url_gemini_is_an_endpoint_offer_tried_last() -> None:
    config = cfg("""
        endpoints:
          - name: g
            url_gemini: https://generativelanguage.googleapis.com/
            url_anthropic: http://anthropic.test
            api_key_env: GEMINI_TEST_KEY
        """)
    assert [o.format for o in config.endpoints[0].offers] == ["anthropic", "gemini"]  # the URL_KEYS order
    r = route(config, "gemini", "gemini-2.5-flash")
    assert (r.upstream_format, r.base, r.passthrough) == ("gemini", "https://generativelanguage.googleapis.com", True)
    assert route(config, "chat", "m").upstream_format == "anthropic"  # another offer comes before url_gemini
    only = cfg("endpoints:\n  - name: g\n    url_gemini: http://gemini.test\n")
    assert route(only, "anthropic", "m").upstream_format == "gemini"


@pytest.mark.parametrize("pasted", ["http://g.test/v1beta", "http://g.test/v1beta/models", "http://g.test/v1",
                                    "http://g.test/v1beta/models/gemini-2.5-flash:generateContent",
                                    "http://g.test/v1beta/models/gemini-2.5-flash:streamGenerateContent"])
def test_url_gemini_refuses_a_pasted_endpoint(pasted: str) -> None:
    with pytest.raises(ConfigError, match="url_gemini: is a base URL"):
        cfg(f"endpoints:\n  - name: g\n    url_gemini: {pasted}\n")


def test_plan_translates_a_claude_code_request_to_a_gemini_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_TEST_KEY", "test-key")  # read when used, never stored
    config = cfg("""
        endpoints:
          - name: g
            url_gemini: http://gemini.test
            api_key_env: GEMINI_TEST_KEY
        """)
    body = {"model": "gemini-3-pro-preview", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "client"}
    op = detect("POST", "/v1/messages", headers)
    assert op is not None
    p = plan(config, op, "/v1/messages?beta=true", headers, json.dumps(body).encode(), lambda x: x + "1", CREATED)
    assert p.answer is None and p.exchange is not None, p.summary
    assert p.url == "http://gemini.test/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    assert p.set_headers["x-goog-api-key"] == "test-key"
    assert {"x-api-key", "authorization", "anthropic-version"} <= p.drop_headers
    assert p.body is not None
    validate_gemini_body(json.loads(p.body))


# --- requests: Gemini → IR (gemini.md §2, §9) ------------------------------------------------------


def test_gemini_cli_tool_turn_reads_as_ir_and_translates_everywhere() -> None:
    """Gemini CLI 0.61's real second request (client-shapes): text, a signed functionCall with the id the
    CLI invented, its functionResponse, 15 tools in parametersJsonSchema, thinkingLevel HIGH."""
    sent = shape("gemini-cli-0.61.json")["requests"][-1]
    body = sent["body"]
    op = detect("POST", sent["path"], {"x-goog-api-key": "k"})
    assert op == g_op("gemini-3.8-flash")
    req = G.parse_request(body)
    user, model, result = body["contents"]
    call_part = model["parts"][0]
    call = call_part["functionCall"]
    assert req.messages == (
        Message(role=Role.USER, content=tuple(Text(text=p["text"]) for p in user["parts"])),
        Message(role=Role.ASSISTANT, content=(
            Reasoning(text="", opaque=Opaque(origin="gemini", data=call_part["thoughtSignature"])),
            ToolCall(id=call["id"], name=call["name"], arguments=json.dumps(call["args"], separators=(",", ":"))))),
        Message(role=Role.USER, content=(
            ToolResult(call_id=call["id"], content=(Text(text=result["parts"][0]["functionResponse"]["response"]
                                                         ["output"]),)),)),
    )
    assert req.system == tuple(Text(text=p["text"]) for p in body["systemInstruction"]["parts"])
    declarations = body["tools"][0]["functionDeclarations"]
    assert [(t.name, t.description, t.parameters) for t in req.tools] == \
        [(d["name"], d["description"], d["parametersJsonSchema"]) for d in declarations]
    config = body["generationConfig"]
    assert (req.temperature, req.top_p, req.top_k) == (config["temperature"], config["topP"], config["topK"])
    assert req.reasoning == ReasoningConfig(effort=config["thinkingConfig"]["thinkingLevel"].lower())
    for upstream in (A, C, R):
        _, wire = start(G, upstream, body, op)
        check_upstream_body(upstream.NAME, wire)


def test_gemini_cli_router_schema_loses_its_upper_case_types() -> None:
    """The router's responseJsonSchema says "OBJECT" (gemini.md §2.7, §9.9): JSON Schema wants lower case."""
    body = shape("gemini-cli-0.61.json")["requests"][0]["body"]
    wire_schema = body["generationConfig"]["responseJsonSchema"]
    fmt = G.parse_request(body).response_format
    assert fmt is not None and fmt.type == "json_schema" and fmt.schema is not None
    expected = {**wire_schema, "type": "object",
                "properties": {k: {**v, "type": v["type"].lower()} for k, v in wire_schema["properties"].items()}}
    assert fmt.schema == expected
    _, wire = start(G, C, body, g_op("gemini-3.5-flash-lite", stream=False))
    assert wire["response_format"]["json_schema"]["schema"] == expected
    check_upstream_body("chat", wire)


def test_python_sdk_request_reads_as_ir() -> None:
    """google-genai's real body: snake_case below the top level, URL-safe base64, topK as a float, an
    OpenAPI ``parameters`` schema, thought parts resent, calls and responses without ids (gemini.md §2.2)."""
    signature = b"\xfa\xfb\xfc\xfd\xfe\xff signed"
    contents = [
        types.Content(role="user", parts=[types.Part(text="look"),
                                          types.Part(inline_data=types.Blob(mime_type="image/png", data=PNG))]),
        types.Content(role="model", parts=[
            types.Part(text="The user wants the time.", thought=True),
            types.Part(function_call=types.FunctionCall(name="get_time", args={"tz": "UTC"}),
                       thought_signature=signature)]),
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
            name="get_time", response={"output": "12:00"}))]),
    ]
    config = types.GenerateContentConfig(
        system_instruction="be brief", temperature=0.5, top_k=40, max_output_tokens=99, stop_sequences=["END"],
        tools=[types.Tool(function_declarations=[
            types.FunctionDeclaration(name="get_time", description="t", parameters_json_schema={
                "type": "object", "properties": {"tz": {"type": "string"}}}),
            types.FunctionDeclaration(name="lookup", parameters=types.Schema(
                type="OBJECT", properties={"q": types.Schema(type="STRING", nullable=True)}, required=["q"]))])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["get_time"])),
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))
    body = sdk_request(contents, config)
    sent_signature = body["contents"][1]["parts"][1]["thoughtSignature"]
    assert base64.urlsafe_b64decode(sent_signature + "==") == signature and "-" in sent_signature  # URL-safe
    req = G.parse_request(body)
    call_id = req.messages[1].content[1].id  # type: ignore[union-attr]
    assert req.messages == (
        Message(role=Role.USER, content=(Text(text="look"),
                                         Image(media_type="image/png", data=base64.b64encode(PNG).decode()))),
        Message(role=Role.ASSISTANT, content=(
            Reasoning(text="The user wants the time.", opaque=Opaque(origin="gemini", data=sent_signature)),
            ToolCall(id=call_id, name="get_time", arguments='{"tz":"UTC"}'))),
        Message(role=Role.USER, content=(ToolResult(call_id=call_id, content=(Text(text="12:00"),)),)),
    )
    assert req.system == (Text(text="be brief"),)
    # allowedFunctionNames [get_time] with ANY: that tool, by name; "lookup" is not offered then
    assert [(t.name, t.parameters) for t in req.tools] == [
        ("get_time", {"type": "object", "properties": {"tz": {"type": "string"}}})]
    assert req.tool_choice == ToolChoice(mode="tool", name="get_time")
    assert (req.temperature, req.top_k, req.max_tokens, req.stop) == (0.5, 40, 99, ("END",))
    assert isinstance(req.top_k, int)
    assert req.reasoning == ReasoningConfig(budget_tokens=1024)
    _, wire = start(G, A, body, g_op(stream=False))
    assert wire["messages"][0]["content"][1]["source"] == {"type": "base64", "media_type": "image/png",
                                                           "data": base64.b64encode(PNG).decode()}
    check_upstream_body("anthropic", wire)


def test_openapi_parameters_become_json_schema() -> None:
    body = sdk_request("hi", types.GenerateContentConfig(tools=[types.Tool(function_declarations=[
        types.FunctionDeclaration(name="lookup", parameters=types.Schema(
            type="OBJECT", required=["q"], property_ordering=["q", "n"],
            properties={"q": types.Schema(type="STRING", nullable=True, enum=["a", "b"]),
                        "n": types.Schema(type="ARRAY", items=types.Schema(type="INTEGER"), min_items=1)}))])]))
    assert G.parse_request(body).tools[0].parameters == {
        "type": "object", "required": ["q"],
        "properties": {"q": {"type": ["string", "null"], "enum": ["a", "b"]},
                       "n": {"type": "array", "items": {"type": "integer"}, "minItems": 1}}}


def _bad(body: dict[str, Any]) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **body}


@pytest.mark.parametrize(("body", "param", "error"), [
    ({}, "contents", BadRequest),
    ({"contents": {"role": "user"}}, "contents", BadRequest),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents.0.role", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"video": 1}]}]}, "contents.0.parts.0", BadRequest),
    ({"contents": [{"role": "user", "parts": "hi"}]}, "contents.0.parts", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"text": 5}]}]}, "contents.0.parts.0.text", BadRequest),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": "{}"}}]}]},
     "contents.0.parts.0.functionCall.args", BadRequest),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
     "contents.0.parts.0.functionCall.name", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
     "contents.0.parts.0.functionResponse.name", BadRequest),  # answers no call
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                   {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "done"}}]}]},
     "contents.1.parts.0.functionResponse.response", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]},
     "contents.0.parts.0.functionCall", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]}]},
     "contents.0.parts.0.inlineData.data", BadRequest),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]},
     "contents.0.parts.0.inlineData.mimeType", Unsupported),
    ({"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "gs://bucket/a.pdf"}}]}]},
     "contents.0.parts.0.fileData.fileUri", Unsupported),
    ({"contents": [{"role": "user", "parts": [{"fileData": {
        "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]},
     "contents.0.parts.0.fileData.fileUri", Unsupported),
    (_bad({"cachedContent": "cachedContents/x"}), "cachedContent", Unsupported),
    (_bad({"generationConfig": {"candidateCount": 2}}), "generationConfig.candidateCount", Unsupported),
    (_bad({"generationConfig": {"maxOutputTokens": "lots"}}), "generationConfig.maxOutputTokens", BadRequest),
    (_bad({"generationConfig": {"temperature": "hot"}}), "generationConfig.temperature", BadRequest),
    (_bad({"generationConfig": {"stopSequences": [1]}}), "generationConfig.stopSequences", BadRequest),
    (_bad({"generationConfig": {"thinkingConfig": {"thinkingLevel": "EXTREME"}}}),
     "generationConfig.thinkingConfig.thinkingLevel", BadRequest),
    (_bad({"toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}),
     "toolConfig.functionCallingConfig.mode", BadRequest),
    (_bad({"tools": [{"functionDeclarations": [{"description": "no name"}]}]}),
     "tools.0.functionDeclarations.0.name", BadRequest),
    (_bad({"tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": "{}"}]}]}),
     "tools.0.functionDeclarations.0.parametersJsonSchema", BadRequest),
    (_bad({"systemInstruction": {"parts": [{"text": ["x"]}]}}), "systemInstruction.parts.0.text", BadRequest),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str, error: type[BadRequest]) -> None:
    with pytest.raises(error) as caught:
        G.parse_request(body)
    assert type(caught.value) is error
    assert caught.value.param == param and param in caught.value.message and caught.value.status == 400


def test_calls_without_ids_get_ids_and_their_responses_pair_by_name_then_order() -> None:
    """The API gives calls no id and pairs responses by count and order (gemini.md §6.1); responses that
    name their call are paired by name first."""
    def call(name: str) -> dict[str, Any]:
        return {"functionCall": {"name": name, "args": {"n": name}}}

    def response(name: str, output: str) -> dict[str, Any]:
        return {"functionResponse": {"name": name, "response": {"output": output}}}

    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [call("a"), call("b"), call("a")]},
        {"role": "user", "parts": [response("b", "B"), response("a", "A1"), response("a", "A2")]},
        {"role": "model", "parts": [call("a")]},
        {"role": "function", "parts": [response("a", "A3")]},  # the old role for results: a user turn
    ]}
    req = G.parse_request(body)
    calls = [p for m in req.messages for p in m.content if isinstance(p, ToolCall)]
    results = {p.call_id: p.content[0].text for m in req.messages for p in m.content  # type: ignore[union-attr]
               if isinstance(p, ToolResult)}
    assert len({c.id for c in calls}) == 4
    assert [results[c.id] for c in calls] == ["A1", "B", "A2", "A3"]
    assert req.messages[-1].role is Role.USER
    for upstream in (A, C, R):  # every API wants each result to answer its own call
        _, wire = start(G, upstream, body, g_op(stream=False))
        check_upstream_body(upstream.NAME, wire)


@pytest.mark.parametrize(("config", "offered", "choice"), [
    ({}, ["a", "b", "c"], None),
    ({"mode": "AUTO"}, ["a", "b", "c"], ToolChoice(mode="auto")),
    ({"mode": "ANY"}, ["a", "b", "c"], ToolChoice(mode="required")),
    ({"mode": "ANY", "allowedFunctionNames": ["b"]}, ["b"], ToolChoice(mode="tool", name="b")),
    ({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}, ["a", "c"], ToolChoice(mode="required")),
    ({"mode": "NONE"}, ["a", "b", "c"], ToolChoice(mode="none")),
    ({"mode": "VALIDATED"}, ["a", "b", "c"], ToolChoice(mode="auto")),
    ({"mode": "validated", "allowed_function_names": ["c"]}, ["c"], ToolChoice(mode="auto")),
])
def test_tool_config(config: dict[str, Any], offered: list[str], choice: ToolChoice | None) -> None:
    """gemini.md §9.4: several allowed names offer only those tools."""
    body = _bad({"tools": [{"functionDeclarations": [{"name": n} for n in "abc"]}],
                 "toolConfig": {"functionCallingConfig": config} if config else {}})
    req = G.parse_request(body)
    assert [t.name for t in req.tools] == offered and req.tool_choice == choice


@pytest.mark.parametrize(("thinking", "expected"), [
    (None, None),
    ({"thinkingBudget": 0}, ReasoningConfig(enabled=False)),
    ({"thinking_budget": 0, "include_thoughts": True}, ReasoningConfig(enabled=False)),
    ({"thinkingBudget": -1}, ReasoningConfig()),
    ({"thinkingBudget": 2048, "includeThoughts": True}, ReasoningConfig(budget_tokens=2048)),
    ({"thinkingBudget": "4096"}, ReasoningConfig(budget_tokens=4096)),  # proto3 JSON int64 as a string
    ({"thinkingLevel": "MINIMAL"}, ReasoningConfig(effort="minimal")),
    ({"thinking_level": "high", "include_thoughts": True}, ReasoningConfig(effort="high")),
    ({"includeThoughts": True}, ReasoningConfig()),  # Gemini CLI for a model it does not know
    ({"includeThoughts": False}, None),
])
def test_thinking_config(thinking: dict[str, Any] | None, expected: ReasoningConfig | None) -> None:
    body = _bad({"generationConfig": {"thinkingConfig": thinking}} if thinking is not None else {})
    assert G.parse_request(body).reasoning == expected


def test_what_has_no_equivalent_is_reported() -> None:
    body = _bad({"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                 "tools": [{"googleSearch": {}}, {"functionDeclarations": [{"name": "f"}]}],
                 "generationConfig": {"seed": 7, "response_modalities": ["TEXT"], "topK": 3}})
    req = G.parse_request(body)
    assert [t.name for t in req.tools] == ["f"] and req.top_k == 3
    assert any("safetySettings" in w for w in req.warnings)
    assert any("googleSearch" in w for w in req.warnings)
    assert any("generationConfig.seed" in w for w in req.warnings)
    assert any("response_modalities" in w for w in req.warnings)
    assert not any("topK" in w for w in req.warnings)


@pytest.mark.parametrize(("part", "expected"), [
    ({"text": "x", "thought": True}, ()),  # a summary with no signature after it carries nothing
    ({"text": "", "thoughtSignature": SIGNATURE},
     (Reasoning(text="", opaque=Opaque(origin="gemini", data=SIGNATURE)),)),
    ({"text": "hi", "thoughtSignature": SKIP_SIGNATURE}, (Text(text="hi"),)),  # the sentinel is no signature
    ({"text": "hi", "thoughtSignature": "not base64 at all!"}, (Text(text="hi"),)),
    ({"executableCode": {"language": "PYTHON", "code": "print(1)"}}, (Text(text="```python\nprint(1)\n```"),)),
    ({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1\n"}}, (Text(text="1\n"),)),
])
def test_model_parts(part: dict[str, Any], expected: tuple[Any, ...]) -> None:
    req = G.parse_request({"contents": [{"role": "user", "parts": [{"text": "q"}]},
                                        {"role": "model", "parts": [part]}]})
    assert req.messages[1:] == ((Message(role=Role.ASSISTANT, content=expected),) if expected else ())



def test_consecutive_model_contents_are_one_turn() -> None:
    """google-genai's chat helper keeps one model content per stream chunk (gemini.md §2.3, pitfall 24): the
    run reads as one turn, so reasoning carried on its call stands first, before the text of earlier chunks
    (Anthropic refuses a thinking block after text), and the text pieces are one text."""
    carried = encode_carried([Carried(Opaque(origin="anthropic", data="SIG"), "plan")])
    req = G.parse_request({"contents": [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"text": "plan", "thought": True}]},
        {"role": "model", "parts": [{"text": "hel"}]}, {"role": "model", "parts": [{"text": "lo"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": carried}]},
        {"role": "model", "parts": [{"text": ""}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}]}]})
    call_id = "call_4_0"  # made from the place of the call in contents, as for a lone content
    assert req.messages == (
        Message(role=Role.USER, content=(Text(text="q"),)),
        Message(role=Role.ASSISTANT, content=(Reasoning(text="plan", opaque=Opaque(origin="anthropic", data="SIG")),
                                              Text(text="hello"), ToolCall(id=call_id, name="f", arguments="{}"))),
        Message(role=Role.USER, content=(ToolResult(call_id=call_id, content=(Text(text="ok"),)),)))

def test_count_tokens_reads_both_forms() -> None:
    """gemini.md §1.1: ``{contents}`` or ``{generateContentRequest}``, the latter winning; the answer is
    ``{"totalTokens": n}``, which the SDK reads."""
    counting = G.TOKEN_COUNT
    plain = counting.parse({"contents": [{"role": "user", "parts": [{"text": "one"}]}]})
    full = counting.parse({"contents": [{"parts": [{"text": "ignored"}]}], "generateContentRequest": {
        "model": "models/gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": "two"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}]}}})
    assert plain.messages[0].content == (Text(text="one"),)
    assert full.messages[0].content == (Text(text="two"),) and full.system == (Text(text="sys"),)
    assert full.model == "gemini-2.5-flash"
    answer = json.dumps(counting.render(42)).encode()
    assert genai_client(answer, "application/json").models.count_tokens(
        model="gemini-2.5-flash", contents="hi").total_tokens == 42


def test_models_list_reads_in_the_sdk() -> None:
    names = ["gemini-2.5-flash", "my-local-model"]
    body = json.dumps(G.render_models(names, CREATED)).encode()
    listed = list(genai_client(body, "application/json").models.list())
    assert [m.name for m in listed] == [f"models/{n}" for n in names]
    assert all(m.supported_actions and "generateContent" in m.supported_actions for m in listed)


# --- requests: IR and the other formats → Gemini (gemini.md §6, §7, §9) ----------------------------

GEMINI_3 = "gemini-3-pro-preview"


@pytest.mark.parametrize("index", [0, 1])
def test_claude_code_requests_render_for_gemini(index: int) -> None:
    """Claude Code's real requests (client-shapes): 12 tools whose schemas carry $schema,
    additionalProperties, exclusiveMinimum; the second one a tool turn with a thinking block."""
    body = shape("claude-code.json")["requests"][index]["body"]
    exchange, wire = start(A, G, body, upstream_model=GEMINI_3)
    validate_gemini_body(wire, GEMINI_3)
    declarations = wire["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == [t["name"] for t in body["tools"]]  # all valid Gemini names
    for decl, tool in zip(declarations, body["tools"], strict=True):
        assert decl["parametersJsonSchema"] == {k: v for k, v in tool["input_schema"].items() if k != "$schema"}
        assert decl["description"] == tool["description"]
    def texts(content: Any) -> list[str]:
        return [content] if isinstance(content, str) else [b["text"] for b in content]
    # the top-level system, then mid-conversation system messages, hoisted (Gemini has no system role, §9.1)
    system = texts(body["system"]) + [t for m in body["messages"] if m["role"] == "system" for t in texts(m["content"])]
    assert wire["systemInstruction"]["parts"] == [{"text": t} for t in system]
    assert [c["role"] for c in wire["contents"]] == [{"assistant": "model"}.get(m["role"], m["role"])
                                                     for m in body["messages"] if m["role"] != "system"]
    assert wire["generationConfig"]["maxOutputTokens"] == body["max_tokens"]
    # adaptive thinking, effort medium: Gemini 3 takes a level, HIGH being the one above LOW every model has
    assert wire["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingLevel": "HIGH"}
    if index == 1:
        turns = [m for m in body["messages"] if m["role"] != "system"]
        thinking, text, tool_use = turns[1]["content"]
        result = turns[2]["content"][0]
        assert thinking["type"] == "thinking"
        assert wire["contents"][1:] == [
            {"role": "model", "parts": [
                {"text": text["text"]},
                {"functionCall": {"id": tool_use["id"], "name": tool_use["name"], "args": tool_use["input"]},
                 "thoughtSignature": SKIP_SIGNATURE}]},  # Claude's signature is not Gemini's: the sentinel
            {"role": "user", "parts": [{"functionResponse": {
                "id": tool_use["id"], "name": tool_use["name"], "response": {"output": result["content"]}}}]}]
        assert "reasoning from another provider dropped: its signature is not Gemini's" in exchange.warnings


def test_codex_request_renders_for_gemini() -> None:
    """Codex's real request: namespaced tools, a freeform (custom) tool, a lark grammar (client-shapes)."""
    body = shape("codex.json")["requests"][0]["body"]
    _, wire = start(R, G, body, upstream_model="gemini-2.5-pro")
    validate_gemini_body(wire, "gemini-2.5-pro")
    declarations = {d["name"]: d for d in wire["tools"][0]["functionDeclarations"]}
    offered = [{**t, "name": t["name"] if ns["name"] == "functions" else f"{ns['name']}__{t['name']}"}
               for item in body["input"] if item.get("type") == "additional_tools" for ns in item["tools"]
               for t in ns["tools"]]  # the default namespace flattens to bare names, others to ns__name
    assert set(declarations) == {t["name"] for t in offered}
    for tool in offered:
        if tool["type"] == "custom":  # a freeform tool is a function of one string (formats.md §5.3)
            assert declarations[tool["name"]]["parametersJsonSchema"]["properties"] == {"input": {"type": "string"}}
            assert tool["format"]["definition"] in declarations[tool["name"]]["description"]
        else:
            assert declarations[tool["name"]]["parametersJsonSchema"] == tool["parameters"]
    assert wire["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 1024}


def test_tool_names_gemini_refuses_are_rewritten_and_mapped_back() -> None:
    """gemini.md §6.4: letter or "_" first, [A-Za-z0-9_.-], at most 64; dots pass (unlike Anthropic and Chat)."""
    names = [LONG_NAME, "mcp:server/tool", "9lives", "ok.dotted-name_1", "x" * 64]
    tools = [{"name": n, "input_schema": {"type": "object", "properties": {}}} for n in names]
    body = {"model": "m", "max_tokens": 50, "tools": tools, "tool_choice": {"type": "tool", "name": LONG_NAME},
            "messages": [{"role": "user", "content": "go"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": LONG_NAME,
                                                            "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": "done"}]}]}
    exchange, wire = start(A, G, body, upstream_model="gemini-2.5-flash")
    validate_gemini_body(wire, "gemini-2.5-flash")
    wire_names = [d["name"] for d in wire["tools"][0]["functionDeclarations"]]
    assert len(set(wire_names)) == len(names)
    assert wire_names[3] == "ok.dotted-name_1"
    assert all(len(n) <= 63 and (n[0].isalpha() or n[0] == "_") for n in wire_names)
    long_wire = wire_names[0]
    assert wire["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [long_wire]}}
    assert wire["contents"][1]["parts"][0]["functionCall"]["name"] == long_wire
    assert wire["contents"][2]["parts"][0]["functionResponse"]["name"] == long_wire
    # the answer's call comes back under the client's own name
    raw = sse([chunk([{"functionCall": {"name": long_wire, "args": {}}}]), chunk([{"text": ""}], "STOP")])
    exchange.request = replace(exchange.request, stream=True)
    folded = fold_anthropic(check_anthropic_stream(run_stream(exchange, [raw])))
    assert [b["name"] for b in folded["content"] if b["type"] == "tool_use"] == [LONG_NAME]


def _a_turns(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": list(messages),
            "tools": [{"name": n, "input_schema": {"type": "object", "properties": {}}} for n in ("get_time", "Bash")],
            **extra}


def _tool_use(call_id: str, name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": args}


def _tool_result(call_id: str, content: Any, is_error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error}


def test_history_of_another_format_signed_with_the_sentinel_in_every_turn() -> None:
    """gemini.md §7: Gemini 3 checks the first call of each model turn after the last user content with
    ordinary content, not a parallel call after the first. Older turns are signed too, though unchecked,
    so that a turn renders the same bytes once it is older (issue 17: the cached prefix)."""
    body = _a_turns(
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [_tool_use("toolu_1", "get_time", tz="UTC")]},
        {"role": "user", "content": [_tool_result("toolu_1", "12:00")]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is noon."}]},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": [_tool_use("toolu_2", "get_time"), _tool_use("toolu_3", "Bash", c="ls")]},
        {"role": "user", "content": [_tool_result("toolu_2", "boom", is_error=True), _tool_result("toolu_3", "a b")]},
        {"role": "assistant", "content": [_tool_use("toolu_4", "Bash", c="pwd")]},
        {"role": "user", "content": [_tool_result("toolu_4", "/")]})
    _, wire = start(A, G, body, upstream_model=GEMINI_3)
    validate_gemini_body(wire, GEMINI_3)
    parts = [c["parts"] for c in wire["contents"]]
    assert parts[1][0]["thoughtSignature"] == SKIP_SIGNATURE  # before "second": as when it was current
    assert parts[5][0]["thoughtSignature"] == SKIP_SIGNATURE and "thoughtSignature" not in parts[5][1]
    assert parts[7][0]["thoughtSignature"] == SKIP_SIGNATURE
    assert parts[6] == [{"functionResponse": {"id": "toolu_2", "name": "get_time", "response": {"error": "boom"}}},
                        {"functionResponse": {"id": "toolu_3", "name": "Bash", "response": {"output": "a b"}}}]
    unsigned = json.loads(json.dumps(wire))
    for content in unsigned["contents"]:
        for part in content["parts"]:
            part.pop("thoughtSignature", None)
    assert mu.gemini_refusal(unsigned, GEMINI_3) is not None  # the mock refuses it unsigned: the test can fail


def test_media_in_a_tool_result_follows_the_responses() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(PNG).decode()}}
    body = _a_turns({"role": "user", "content": "shot"},
                    {"role": "assistant", "content": [_tool_use("toolu_1", "Bash", c="screenshot")]},
                    {"role": "user", "content": [_tool_result("toolu_1", [{"type": "text", "text": "saved"}, image]),
                                                 {"type": "text", "text": "what is in it?"}]})
    _, wire = start(A, G, body, upstream_model="gemini-2.5-flash")
    validate_gemini_body(wire, "gemini-2.5-flash")
    assert wire["contents"][2]["parts"] == [
        {"functionResponse": {"id": "toolu_1", "name": "Bash", "response": {"output": "saved"}}},
        {"text": "[attachments of tool result toolu_1]"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"text": "what is in it?"}]


def test_with_prompt_cache_a_late_system_message_stays_in_the_contents() -> None:
    """Hoisting it into systemInstruction would change the start of every later request (issue 17)."""
    body = {"model": "m", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                                       {"role": "assistant", "content": "a"},
                                       {"role": "developer", "content": "late system text"},
                                       {"role": "user", "content": "q2"}]}
    _, wire = start(C, G, body, upstream_model="gemini-2.5-flash", prompt_cache=True)
    validate_gemini_body(wire, "gemini-2.5-flash")
    assert wire["systemInstruction"]["parts"] == [{"text": "sys"}]
    assert wire["contents"][2:] == [{"role": "user", "parts": [{"text": "<system-reminder>\nlate system text\n"
                                                                       "</system-reminder>"}]},
                                    {"role": "user", "parts": [{"text": "q2"}]}]


def test_chat_request_media_and_parallel_calls_render_for_gemini() -> None:
    url = "https://example.com/cat.jpg"
    body = {"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}},
                                     {"type": "image_url", "image_url": {
                                         "url": "data:image/png;base64," + base64.urlsafe_b64encode(PNG).decode()}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
        {"role": "developer", "content": "late system text"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "stop": ["a", "b", "c", "d"], "response_format": {"type": "json_object"}, "user": "u1"}
    exchange, wire = start(C, G, body, upstream_model="gemini-2.5-flash")
    validate_gemini_body(wire, "gemini-2.5-flash")
    assert wire["systemInstruction"]["parts"] == [{"text": "sys"}, {"text": "late system text"}]  # hoisted
    assert wire["contents"][0]["parts"][1:] == [
        {"fileData": {"mimeType": "image/jpeg", "fileUri": url}},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}]  # standard alphabet
    assert [p["functionCall"]["args"] for p in wire["contents"][1]["parts"]] == [{"x": 1}, {"_raw": "not json"}]
    assert [p["functionResponse"]["response"] for p in wire["contents"][2]["parts"]] == [{"output": "A"},
                                                                                         {"output": "B"}]
    assert wire["generationConfig"] == {"stopSequences": ["a", "b", "c", "d"], "responseMimeType": "application/json"}
    assert any("user" in w for w in exchange.warnings) and any("_raw" in w for w in exchange.warnings)


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"mode": "AUTO"}),
    ({"type": "any"}, {"mode": "ANY"}),
    ({"type": "none"}, {"mode": "NONE"}),
    ({"type": "tool", "name": "Bash"}, {"mode": "ANY", "allowedFunctionNames": ["Bash"]}),
])
def test_tool_choice_renders_as_function_calling_config(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    _, wire = start(A, G, _a_turns({"role": "user", "content": "hi"}, tool_choice=choice))
    assert wire["toolConfig"] == {"functionCallingConfig": expected}
    types.ToolConfig.model_validate_json(json.dumps(wire["toolConfig"]))


@pytest.mark.parametrize(("model", "reasoning", "expected"), [
    ("gemini-2.5-flash", None, None),
    ("gemini-2.5-flash", ReasoningConfig(enabled=False), {"thinkingBudget": 0}),
    ("gemini-2.5-pro", ReasoningConfig(enabled=False), {"thinkingBudget": 128}),  # 2.5 Pro cannot stop thinking
    ("gemini-2.5-flash", ReasoningConfig(budget_tokens=3000), {"includeThoughts": True, "thinkingBudget": 3000}),
    ("gemini-2.5-flash", ReasoningConfig(), {"includeThoughts": True, "thinkingBudget": -1}),  # dynamic
    ("models/gemini-2.0-flash", ReasoningConfig(effort="low"), {"includeThoughts": True, "thinkingBudget": 1024}),
    (GEMINI_3, ReasoningConfig(effort="low"), {"includeThoughts": True, "thinkingLevel": "LOW"}),
    (GEMINI_3, ReasoningConfig(effort="xhigh"), {"includeThoughts": True, "thinkingLevel": "HIGH"}),
    (GEMINI_3, ReasoningConfig(budget_tokens=1500), {"includeThoughts": True, "thinkingLevel": "LOW"}),
    (GEMINI_3, ReasoningConfig(), {"includeThoughts": True}),
    (GEMINI_3, ReasoningConfig(enabled=False), {"thinkingLevel": "LOW"}),  # Gemini 3 always thinks
    ("my-local-model", ReasoningConfig(effort="high"), {"includeThoughts": True}),
    ("my-local-model", ReasoningConfig(enabled=False), None),
])
def test_thinking_knob_by_model_generation(model: str, reasoning: ReasoningConfig | None,
                                           expected: dict[str, Any] | None) -> None:
    """gemini.md §9.7: thinkingBudget for 2.x, thinkingLevel for 3, never both; a name of no known
    generation gets includeThoughts only (as Gemini CLI does, §8)."""
    req = Request(model=model, messages=(Message(role=Role.USER, content=(Text(text="hi"),)),), reasoning=reasoning)
    body = G.render_request(req, make_ctx())
    assert body.get("generationConfig", {}).get("thinkingConfig") == expected
    if expected:
        types.ThinkingConfig.model_validate_json(json.dumps(expected))
        assert not ("thinkingBudget" in expected and "thinkingLevel" in expected)


def test_generation_config_and_structured_output() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                                               "m": {"type": "number", "maximum": 5, "exclusiveMaximum": False}}}
    req = Request(model="gemini-2.5-flash", messages=(Message(role=Role.USER, content=(Text(text="hi"),)),),
                  max_tokens=10, temperature=1.5, top_p=0.9, top_k=20, stop=tuple("abcdef"),
                  response_format=ResponseFormat(type="json_schema", name="r", schema=schema))
    ctx = make_ctx()
    body = G.render_request(req, ctx)
    assert body["generationConfig"] == {
        "maxOutputTokens": 10, "temperature": 1.5, "topP": 0.9, "topK": 20, "stopSequences": list("abcde"),
        "responseMimeType": "application/json",
        # draft-04 boolean bounds, which the API refuses in JSON Schema (gemini-cli #4920), as numbers
        "responseJsonSchema": {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 0},
                                                                "m": {"type": "number", "maximum": 5}}}}
    assert any("stop sequences" in w for w in ctx.warnings)
    validate_gemini_body(body, "gemini-2.5-flash")


def test_gemini_request_round_trips_through_the_ir() -> None:
    """G → IR → G gives the body back (thought summaries aside: they are not sent back, as Gemini CLI does)."""
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "time?"}, {"inlineData": {"mimeType": "image/png",
                                                                          "data": base64.b64encode(PNG).decode()}}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "c1", "name": "get_time", "args": {"tz": "UTC"}},
                 "thoughtSignature": SIGNATURE},
                {"functionCall": {"id": "c2", "name": "get.date", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "c1", "name": "get_time", "response": {"output": "12:00"}}},
                {"functionResponse": {"id": "c2", "name": "get.date", "response": {"error": "no calendar"}}}]},
            {"role": "model", "parts": [{"text": "Noon."}, {"text": "", "thoughtSignature": OTHER_SIGNATURE}]},
            {"role": "user", "parts": [{"text": "thanks"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [
            {"name": "get_time", "description": "the time", "parametersJsonSchema": {
                "type": "object", "properties": {"tz": {"type": "string"}}, "additionalProperties": False}},
            {"name": "get.date"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {"maxOutputTokens": 99, "temperature": 0.5, "topP": 0.9, "topK": 40, "stopSequences": ["X"],
                             "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}}
    req = replace(G.parse_request(body), model="gemini-2.5-flash")
    assert G.render_request(req, make_ctx()) == body


def test_ir_request_round_trips_through_gemini() -> None:
    """IR → G → IR: what Gemini can carry comes back equal."""
    req = Request(
        model="", system=(Text(text="sys"),),
        messages=(Message(role=Role.USER, content=(Text(text="hi"), Image(media_type="image/png",
                                                                          data=base64.b64encode(PNG).decode()))),
                  Message(role=Role.ASSISTANT, content=(
                      Text(text="Let me look."),
                      Reasoning(text="", opaque=Opaque(origin="gemini", data=SIGNATURE)),
                      ToolCall(id="call_1", name="f", arguments='{"a":[1,2]}'),
                      ToolCall(id="call_2", name="f", arguments="{}"))),
                  Message(role=Role.USER, content=(ToolResult(call_id="call_1", content=(Text(text="one"),)),
                                                   ToolResult(call_id="call_2", content=(Text(text="bad"),),
                                                              is_error=True)))),
        tools=(Tool(name="f", description="d", parameters={"type": "object", "properties": {"a": {"type": "array"}}}),),
        tool_choice=ToolChoice(mode="auto"), max_tokens=5, temperature=0.2, top_p=0.5, top_k=3, stop=("S",),
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}))
    assert G.parse_request(G.render_request(req, make_ctx())) == req


# --- answers: a Gemini upstream, read into the IR (gemini.md §3, §4, §9.11) -------------------------

WEATHER = mu.ToolCallSpec(id="unused", name="get_weather", arguments={"city": "Zürich", "unit": "c"})
CLOCK = mu.ToolCallSpec(id="unused", name="get_time", arguments={})
_OBJECT = {"type": "object", "properties": {}}
CLIENT_BODIES: dict[str, dict[str, Any]] = {  # each asks for reasoning, so the upstream sends thought parts
    "anthropic": {"model": "claude-client", "max_tokens": 4000, "stream": True,
                  "thinking": {"type": "enabled", "budget_tokens": 2048},
                  "messages": [{"role": "user", "content": "weather and time?"}],
                  "tools": [{"name": n, "input_schema": _OBJECT} for n in ("get_weather", "get_time")]},
    "chat": {"model": "gpt-client", "stream": True, "stream_options": {"include_usage": True},
             "reasoning_effort": "low", "messages": [{"role": "user", "content": "weather and time?"}],
             "tools": [{"type": "function", "function": {"name": n, "parameters": _OBJECT}}
                       for n in ("get_weather", "get_time")]},
    "responses": {"model": "gpt-client", "stream": True, "input": "weather and time?", "reasoning": {"effort": "low"},
                  "tools": [{"type": "function", "name": n, "parameters": _OBJECT, "strict": False}
                            for n in ("get_weather", "get_time")]},
}
GEMINI_USAGE = {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 30,
                "thoughtsTokenCount": 50, "totalTokenCount": 200}


def gemini_reply(**kw: Any) -> mu.Reply:
    fields: dict[str, Any] = {"text": "Zürich: 21 °C — sunny ☀️", "reasoning": "The user wants two things…",
                              "tool_calls": (WEATHER, CLOCK), "signature": "gemini-sig-1", "model": GEMINI_3,
                              "usage": GEMINI_USAGE}
    return mu.Reply(**(fields | kw))


def from_gemini(client: str, reply: mu.Reply) -> tuple[translate.Exchange, bytes]:
    """A client's request translated for a Gemini upstream, and the stream the mock answers it with."""
    exchange, wire = start(FORMATS[client], G, CLIENT_BODIES[client], upstream_model=GEMINI_3)  # type: ignore[arg-type]
    validate_gemini_body(wire, GEMINI_3)
    # the mock's rendering, written as UTF-8 (the API's JSON is not ASCII-escaped), so splits fall inside characters
    return exchange, b"".join(f"data: {json.dumps(c, ensure_ascii=False)}\r\n\r\n".encode()
                              for c in mu.gemini_chunks(reply, wire))


def test_gemini_stream_to_an_anthropic_client() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("anthropic", reply)
    folded = fold_anthropic(check_anthropic_stream(run_stream(exchange, [raw])))
    kinds = [b["type"] for b in folded["content"]]
    # thought summary; text; the signature's carrier right before the call it rode on; both calls (§7)
    assert kinds == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    thought, text, carrier, first, second = folded["content"]
    assert thought["thinking"] == reply.reasoning and text["text"] == reply.text
    assert carrier["thinking"] == ""
    assert decode_signature(carrier["signature"], "anthropic") == Opaque(origin="gemini",
                                                                         data=mu.gemini_signature(reply) or "")
    assert [(b["name"], b["input"]) for b in (first, second)] == [(c.name, c.arguments) for c in reply.tool_calls]
    assert first["id"] != second["id"]
    assert folded["stop_reason"] == "tool_use"
    # promptTokenCount includes the cached tokens, candidatesTokenCount excludes the thoughts (gemini.md §3.3)
    u = GEMINI_USAGE
    assert folded["usage"]["input_tokens"] == u["promptTokenCount"] - u["cachedContentTokenCount"]
    assert folded["usage"]["cache_read_input_tokens"] == u["cachedContentTokenCount"]
    assert folded["usage"]["output_tokens"] == u["candidatesTokenCount"] + u["thoughtsTokenCount"]


def test_gemini_stream_to_a_chat_client() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("chat", reply)
    folded = fold_chat(check_chat_stream(run_stream(exchange, [raw])))
    assert folded["content"] == reply.text and folded["reasoning_content"] == reply.reasoning
    assert [(c["name"], json.loads(c["arguments"])) for c in folded["tool_calls"]] == \
        [(c.name, c.arguments) for c in reply.tool_calls]
    assert folded["finish_reason"] == "tool_calls"
    u = GEMINI_USAGE
    assert folded["usage"]["prompt_tokens"] == u["promptTokenCount"]
    assert folded["usage"]["prompt_tokens_details"]["cached_tokens"] == u["cachedContentTokenCount"]
    assert folded["usage"]["completion_tokens"] == u["candidatesTokenCount"] + u["thoughtsTokenCount"]
    assert folded["usage"]["completion_tokens_details"]["reasoning_tokens"] == u["thoughtsTokenCount"]
    # the signature is in a thinking block, for a client that sends it back
    carried = [decode_signature(b["signature"], "anthropic") for b in folded["thinking_blocks"]]
    assert Opaque(origin="gemini", data=mu.gemini_signature(reply) or "") in carried


def test_gemini_stream_to_a_responses_client() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("responses", reply)
    events = check_responses_stream(run_stream(exchange, [raw]))
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "reasoning", "function_call",
                                                    "function_call"]
    assert final["output"][0]["summary"][0]["text"] == reply.reasoning
    assert final["output"][1]["content"][0]["text"] == reply.text
    assert decode_signature(final["output"][2]["encrypted_content"], "responses") == \
        Opaque(origin="gemini", data=mu.gemini_signature(reply) or "")
    assert final["usage"]["input_tokens"] == GEMINI_USAGE["promptTokenCount"]
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == GEMINI_USAGE["thoughtsTokenCount"]


@pytest.mark.parametrize("client", ["anthropic", "chat", "responses"])
@given(data=st.data())
@SPLITS
def test_gemini_stream_split_anywhere_gives_the_same_client_stream(client: str, data: st.DataObject) -> None:
    """mitmproxy hands the stream over at any byte (inside a character, inside a data: line)."""
    reply = gemini_reply(piece=3)
    exchange, raw = from_gemini(client, reply)
    whole = run_stream(exchange, [raw])
    again, _ = from_gemini(client, reply)
    assert run_stream(again, split_at(raw, data.draw(cuts_for(raw)))) == whole
    OTHER_CHECKS[client](whole)


def parse_chunks(chunks: list[Any], ctx: Context | None = None) -> list[Any]:
    parser = G.StreamParser(ctx or make_ctx())
    events = [ev for c in chunks for ev in parser.feed(SSEEvent(None, json.dumps(c)))]
    return events + parser.close()


def content_events(events: list[Any]) -> list[Any]:
    return [ev for ev in events if not isinstance(ev, MessageStart | UsageUpdate)]


S1, S2 = SIGNATURE, OTHER_SIGNATURE
GEM = "gemini"


@pytest.mark.parametrize(("chunks", "expected"), [
    pytest.param(  # Gemini 3's text answer: its signature on an empty text part in the last chunk (§4.3)
        [chunk([{"text": "Hi"}]), chunk([{"text": " there"}]), chunk([{"text": "", "thoughtSignature": S1}], "STOP")],
        [BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="Hi"),
         BlockDelta(block_id=0, text=" there"), BlockStop(block_id=0),
         Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="STOP")], id="text-then-signature"),
    pytest.param(  # thought summaries, then the part their signature rides on
        [chunk([{"text": "Plan ", "thought": True}, {"text": "it.", "thought": True}]),
         chunk([{"text": "Done.", "thoughtSignature": S1}], "STOP")],
        [BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="Plan "),
         BlockDelta(block_id=0, text="it."), BlockStop(block_id=0, opaque=Opaque(origin=GEM, data=S1)),
         BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="Done."), BlockStop(block_id=1),
         Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="STOP")], id="thought-then-signed-text"),
    pytest.param(  # a signature on a thought part itself stays with that thought
        [chunk([{"text": "Hmm", "thought": True, "thoughtSignature": S1}]),
         chunk([{"text": "Ok", "thoughtSignature": S2}], "STOP")],
        [BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="Hmm"),
         BlockStop(block_id=0, opaque=Opaque(origin=GEM, data=S1)),
         BlockStart(block_id=1, kind=BlockKind.REASONING), BlockStop(block_id=1, opaque=Opaque(origin=GEM, data=S2)),
         BlockStart(block_id=2, kind=BlockKind.TEXT), BlockDelta(block_id=2, text="Ok"), BlockStop(block_id=2),
         Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="STOP")], id="signed-thought"),
    pytest.param(  # a signature mid-text (reported for Gemini 3 Flash): the text it rode on is a block of its own
        [chunk([{"text": "One. "}]), chunk([{"text": "Two.", "thoughtSignature": S1}], "STOP")],
        [BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="One. "), BlockStop(block_id=0),
         BlockStart(block_id=1, kind=BlockKind.REASONING), BlockStop(block_id=1, opaque=Opaque(origin=GEM, data=S1)),
         BlockStart(block_id=2, kind=BlockKind.TEXT), BlockDelta(block_id=2, text="Two."), BlockStop(block_id=2),
         Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="STOP")], id="signed-text-mid-answer"),
    pytest.param(  # parallel calls, only the first signed; no id from the API, one is made (§6.1, §6.2)
        [chunk([{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": S1},
                {"functionCall": {"id": "given", "name": "b"}}]), chunk([{"text": ""}], "STOP")],
        [BlockStart(block_id=0, kind=BlockKind.REASONING), BlockStop(block_id=0, opaque=Opaque(origin=GEM, data=S1)),
         BlockStart(block_id=1, kind=BlockKind.TOOL_CALL, tool_call_id="call_0000", tool_name="a"),
         BlockDelta(block_id=1, text='{"x":1}'), BlockStop(block_id=1),
         BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="given", tool_name="b"),
         BlockDelta(block_id=2, text="{}"), BlockStop(block_id=2),
         Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="STOP")], id="parallel-calls"),
    pytest.param(  # a blocked prompt is a 200 with promptFeedback and no candidates (§3.1)
        [{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": usage(9, 0),
          "modelVersion": GEMINI_3, "responseId": "r"}],
        [Finish(stop_reason=StopReason.REFUSAL, raw_stop_reason="PROHIBITED_CONTENT")], id="blocked-prompt"),
    pytest.param([chunk([{"text": "x"}], "SAFETY")],
                 [BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="x"), BlockStop(block_id=0),
                  Finish(stop_reason=StopReason.REFUSAL, raw_stop_reason="SAFETY")], id="safety"),
    pytest.param([chunk([{"text": ""}], "RECITATION")],
                 [Finish(stop_reason=StopReason.REFUSAL, raw_stop_reason="RECITATION")], id="recitation"),
    pytest.param([chunk([{"text": "x"}], "MAX_TOKENS")],
                 [BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="x"), BlockStop(block_id=0),
                  Finish(stop_reason=StopReason.MAX_TOKENS, raw_stop_reason="MAX_TOKENS")], id="max-tokens"),
    pytest.param([chunk([{"text": ""}], "CONTINUATION")],
                 [Finish(stop_reason=StopReason.MAX_TOKENS, raw_stop_reason="CONTINUATION")], id="continuation"),
    pytest.param([chunk([{"text": ""}], "A_REASON_FROM_2027")],
                 [Finish(stop_reason=StopReason.OTHER, raw_stop_reason="A_REASON_FROM_2027")], id="unknown-reason"),
    pytest.param([chunk([{"text": ""}], "MALFORMED_FUNCTION_CALL")],  # retryable: the upstream's fault (§3.2)
                 [StreamError(status=502, kind="api_error",
                              message="the model wrote a function call that is not valid (finishReason "
                                      "MALFORMED_FUNCTION_CALL)")], id="malformed-call"),
    pytest.param([chunk([{"text": ""}], "MISSING_THOUGHT_SIGNATURE")],
                 [StreamError(status=400, kind="invalid_request",
                              message="a function call in the history lacks its thought signature (finishReason "
                                      "MISSING_THOUGHT_SIGNATURE)")], id="missing-signature"),
    pytest.param([chunk([{"text": "x"}]), {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}],
                 [BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="x"),
                  StreamError(status=503, kind="overloaded", message="overloaded")], id="error-event"),
    pytest.param([[{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]],
                 [StreamError(status=429, kind="rate_limit", message="quota")], id="error-in-a-list"),
])
def test_stream_parser(chunks: list[Any], expected: list[Any]) -> None:
    assert content_events(parse_chunks(chunks)) == expected


def test_a_freeform_call_comes_back_as_its_raw_input() -> None:
    """A client's custom tool was offered as a function of one string ``input`` (formats.md §5.3)."""
    ctx = make_ctx(request=Request(model="m", messages=(), tools=(Tool(name="apply_patch", kind=ToolKind.CUSTOM),)))
    events = parse_chunks([chunk([{"functionCall": {"name": "apply_patch", "args": {"input": "*** Begin"}}}], "STOP")],
                          ctx)
    start_event = next(ev for ev in events if isinstance(ev, BlockStart))
    assert start_event.tool_kind is ToolKind.CUSTOM
    assert [ev.text for ev in events if isinstance(ev, BlockDelta)] == ["*** Begin"]


@pytest.mark.parametrize(("chunks", "message"), [
    ([], "before any answer"),
    ([chunk([{"text": "cut short"}])], "ended before a finishReason"),
])
def test_a_stream_that_never_finishes_is_the_upstreams_fault(chunks: list[Any], message: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=message):
        parse_chunks(chunks)


def test_usage_is_cumulative_and_the_last_wins() -> None:
    events = parse_chunks([chunk([{"text": "a"}], meta=usage(10, 1, 5)), chunk([{"text": "b"}], meta=usage(10, 2, 5)),
                           chunk([{"text": ""}], "STOP", meta=usage(10, 3, 5, cached=4))])
    assert accumulate(events).usage == Usage(input_tokens=6, output_tokens=8, cache_read_tokens=4, reasoning_tokens=5)


@pytest.mark.parametrize(("meta", "expected"), [
    (usage(120, 30, 50, cached=100), Usage(input_tokens=20, output_tokens=80, cache_read_tokens=100,
                                           reasoning_tokens=50)),
    (usage(7, 3), Usage(input_tokens=7, output_tokens=3)),
    ({"promptTokenCount": 9, "toolUsePromptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 14},
     Usage(input_tokens=13, output_tokens=1)),  # server-side tools' results are input too
    ({"promptTokenCount": "5", "candidatesTokenCount": "2", "totalTokenCount": "7"},  # proto3 JSON int64 as strings
     Usage(input_tokens=5, output_tokens=2)),
    ({}, Usage()),  # unknown is not zero
])
def test_usage_to_ir(meta: dict[str, Any], expected: Usage) -> None:
    body = chunk([{"text": "x"}], "STOP", meta=meta)
    assert accumulate(G.response_events(body, make_ctx())).usage == expected


def test_a_whole_body_and_its_stream_fold_to_the_same_answer() -> None:
    """style.md item 7: a non-streamed answer is the stream folded."""
    reply = gemini_reply()
    request = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    whole = accumulate(G.response_events(mu.gemini_body(reply, request), make_ctx()))
    streamed = accumulate(parse_chunks(mu.gemini_chunks(reply, request)))
    assert whole == streamed
    assert [type(p).__name__ for p in whole.content] == ["Reasoning", "Text", "Reasoning", "ToolCall", "ToolCall"]


def test_a_gemini_upstream_answer_to_a_non_streaming_client() -> None:
    reply = gemini_reply(tool_calls=(), reasoning=None)
    body = dict(CLIENT_BODIES["anthropic"], stream=False)
    body.pop("thinking")
    exchange, _ = start(A, G, body, upstream_model=GEMINI_3)
    status, content_type, answer = exchange.translate_body(200, "application/json",
                                                           json.dumps(mu.gemini_body(reply)).encode())
    message = json.loads(answer)
    assert (status, content_type) == (200, "application/json")
    # a whole body has the signature on its text part (gemini.md §7): its carrier comes right before it
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert decode_signature(message["content"][0]["signature"], "anthropic") == \
        Opaque(origin="gemini", data=mu.gemini_signature(reply) or "")
    assert message["content"][1]["text"] == reply.text and message["stop_reason"] == "end_turn"


# --- answers: any upstream, written for a Gemini client (gemini.md §4, §9.11) -------------------------

G_BODY: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "weather and time?"}]}],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": _OBJECT},
                                        {"name": "get_time"}]}],
    "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}}
UPSTREAM_USAGE = {  # 120 prompt tokens of which 100 cached; 70 out of which 30 reasoning, in each format's words
    "anthropic": {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 70,
                  "output_tokens_details": {"thinking_tokens": 30}},
    "chat": {"prompt_tokens": 120, "completion_tokens": 70, "total_tokens": 190,
             "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 30}},
    "responses": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100}, "output_tokens": 70,
                  "output_tokens_details": {"reasoning_tokens": 30}, "total_tokens": 190},
}
EXPECTED_USAGE = {"promptTokenCount": 120, "candidatesTokenCount": 40, "totalTokenCount": 190,
                  "cachedContentTokenCount": 100, "thoughtsTokenCount": 30}
UPSTREAM_EVENTS: dict[str, Callable[[mu.Reply], list[bytes]]] = {
    "anthropic": mu.anthropic_events, "chat": lambda r: mu.chat_events(r, include_usage=True),
    "responses": lambda r: mu.responses_events(r, {"stream": True})}


def upstream_reply(upstream: str, **kw: Any) -> mu.Reply:
    fields: dict[str, Any] = {
        "text": "Zürich: 21 °C — sunny ☀️", "reasoning": "Two tools, then answer…", "signature": "claude-sig-Ω",
        "tool_calls": (mu.ToolCallSpec(id="toolu_w1", name="get_weather", arguments={"city": "Zürich"}),
                       mu.ToolCallSpec(id="toolu_t2", name="get_time", arguments={})),
        "usage": UPSTREAM_USAGE[upstream], "piece": 5}
    return mu.Reply(**(fields | kw))


def to_gemini(upstream: str, reply: mu.Reply, framing: str = "sse",
              body: dict[str, Any] | None = None) -> tuple[translate.Exchange, bytes]:
    """A Gemini client's request translated for another upstream, and that upstream's stream."""
    exchange, wire = start(G, FORMATS[upstream], body or G_BODY, g_op(framing=framing))  # type: ignore[arg-type]
    check_upstream_body(upstream, wire)
    return exchange, b"".join(UPSTREAM_EVENTS[upstream](reply))


def carried_by(upstream: str, reply: mu.Reply) -> Opaque:
    """What each upstream's reasoning carries: Claude's signature, Responses' encrypted_content, nothing (Chat)."""
    return Opaque(origin=upstream, data="" if upstream == "chat" else reply.signature)


@pytest.mark.parametrize("framing", ["sse", "json-array"])
@pytest.mark.parametrize("upstream", ["anthropic", "chat", "responses"])
def test_a_gemini_client_gets_any_upstream_in_its_framing(upstream: str, framing: str) -> None:
    reply = upstream_reply(upstream)
    exchange, raw = to_gemini(upstream, reply, framing)
    out = run_stream(exchange, [raw])
    assert exchange.client_stream_type == ("text/event-stream" if framing == "sse" else "application/json")
    folded = fold_gemini(check_gemini_stream(out, framing))
    assert folded["text"] == reply.text and folded["thoughts"] == reply.reasoning
    calls = folded["function_calls"]
    assert [(c["id"], c["name"], c["args"]) for c in calls] == [(s.id, s.name, s.arguments) for s in reply.tool_calls]
    assert folded["finishReason"] == "STOP" and folded["usageMetadata"] == EXPECTED_USAGE
    assert folded["modelVersion"] == "gemini-2.5-flash"  # the model the client asked for
    # the upstream's reasoning rides on the first call, with its text: Gemini CLI keeps only that (gemini.md §7)
    assert read_signature(calls[0]["thoughtSignature"]) == [
        Carried(carried_by(upstream, reply), reply.reasoning or "")]
    assert calls[1]["thoughtSignature"] is None


@pytest.mark.parametrize("upstream", ["anthropic", "chat", "responses"])
def test_the_python_sdk_reads_what_a_gemini_client_gets(upstream: str) -> None:
    reply = upstream_reply(upstream)
    exchange, raw = to_gemini(upstream, reply)
    chunks = sdk_stream(run_stream(exchange, [raw]))
    assert "".join(c.text or "" for c in chunks) == reply.text  # .text leaves thought parts out
    calls = [call for c in chunks for call in c.function_calls or ()]
    assert [(c.id, c.name, c.args) for c in calls] == [(s.id, s.name, s.arguments) for s in reply.tool_calls]
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 190
    assert last.usage_metadata.cached_content_token_count == 100
    signed = [p for c in chunks for p in c.candidates[0].content.parts if p.thought_signature]  # type: ignore
    assert len(signed) == 1 and signed[0].function_call is not None


@pytest.mark.parametrize("framing", ["sse", "json-array"])
@given(data=st.data())
@SPLITS
def test_a_gemini_client_stream_does_not_depend_on_the_upstream_split(framing: str, data: st.DataObject) -> None:
    reply = upstream_reply("anthropic", piece=3)
    exchange, raw = to_gemini("anthropic", reply, framing)
    whole = run_stream(exchange, [raw])
    again, _ = to_gemini("anthropic", reply, framing)
    assert run_stream(again, split_at(raw, data.draw(cuts_for(raw)))) == whole
    check_gemini_stream(whole, framing)


@given(data=st.data())
@SPLITS
def test_what_the_bridge_emits_reads_the_same_split_anywhere(data: st.DataObject) -> None:
    """The emitted SSE, cut anywhere and read by the bridge's own Gemini parser, gives the same answer."""
    reply = upstream_reply("anthropic", tool_calls=())
    exchange, raw = to_gemini("anthropic", reply)
    out = run_stream(exchange, [raw])
    expected = accumulate(parse_sse(out))
    assert accumulate(parse_sse(*split_at(out, data.draw(cuts_for(out))))) == expected
    assert "".join(p.text for p in expected.content if isinstance(p, Text)) == reply.text


def parse_sse(*pieces: bytes) -> list[Any]:
    decoder, parser = SSEDecoder(), G.StreamParser(make_ctx())
    events = [ev for piece in pieces for s in decoder.feed(piece) for ev in parser.feed(s)]
    return events + [ev for s in decoder.close() for ev in parser.feed(s)] + parser.close()


def test_reasoning_without_a_call_rides_on_an_empty_last_part() -> None:
    reply = upstream_reply("anthropic", tool_calls=())
    exchange, raw = to_gemini("anthropic", reply)
    chunks = check_gemini_stream(run_stream(exchange, [raw]))
    last_parts = chunks[-1]["candidates"][0]["content"]["parts"]
    assert last_parts[-1]["text"] == ""
    assert read_signature(last_parts[-1]["thoughtSignature"]) == [
        Carried(carried_by("anthropic", reply), reply.reasoning or "")]


@pytest.mark.parametrize("framing", ["sse", "json-array"])
def test_a_refusal_without_text_still_says_something(framing: str) -> None:
    """Gemini CLI takes a SAFETY finish with no text for a broken stream (gemini.md §9.10)."""
    reply = upstream_reply("anthropic", text=None, reasoning=None, tool_calls=(), stop="refusal")
    exchange, raw = to_gemini("anthropic", reply, framing)
    folded = fold_gemini(check_gemini_stream(run_stream(exchange, [raw]), framing))
    assert folded["finishReason"] == "SAFETY" and folded["text"]


def test_a_call_cut_by_the_output_limit_is_still_an_object() -> None:
    """Arguments cut short are not JSON: a Gemini client only takes objects (gemini.md §2.4)."""
    reply = upstream_reply("chat", reasoning=None, text=None, stop="length",
                           tool_calls=(mu.ToolCallSpec(id="call_1", name="get_weather", arguments='{"city": "Zü'),))
    exchange, raw = to_gemini("chat", reply)
    folded = fold_gemini(check_gemini_stream(run_stream(exchange, [raw])))
    assert folded["finishReason"] == "MAX_TOKENS"
    assert folded["function_calls"][0]["args"] == {"_raw": '{"city": "Zü'}


@pytest.mark.parametrize("framing", ["sse", "json-array"])
def test_an_upstream_error_mid_stream_ends_a_gemini_stream(framing: str) -> None:
    reply = upstream_reply("anthropic", tool_calls=())
    events = mu.anthropic_events(reply)
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    exchange, _ = to_gemini("anthropic", reply, framing)
    out = run_stream(exchange, [b"".join(events[:6]), error])
    chunks = check_gemini_stream(out, framing)
    assert chunks[-1] == {"error": {"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}}
    if framing == "sse":  # the Python SDK reads the chunks before it, then raises (gemini.md §4.4)
        with pytest.raises(genai_errors.ServerError) as caught:
            sdk_stream(out)
        assert (caught.value.code, caught.value.status, caught.value.message) == (503, "UNAVAILABLE", "Overloaded")


def test_line_breaks_json_leaves_raw_are_escaped_for_the_sdks() -> None:
    """U+2028, U+2029 and U+0085 are raw in JSON, and the Python SDK's line splitter (and Gemini CLI's regex
    for the first two) takes them for line ends: they go as escapes, and arrive as they were."""
    text = "a\u2028b\u2029c\x85d — ok"
    reply = upstream_reply("anthropic", text=text, tool_calls=(), reasoning=None)
    exchange, raw = to_gemini("anthropic", reply)
    out = run_stream(exchange, [raw])
    check_gemini_stream(out)
    assert "".join(c.text or "" for c in sdk_stream(out)) == text


def test_a_whole_answer_for_a_gemini_client_reads_in_the_sdk() -> None:
    """render_response, through the SDK's non-streamed generate_content."""
    resp = Response(id="msg_1", model="claude", stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use",
                    usage=Usage(input_tokens=20, cache_read_tokens=100, output_tokens=70, reasoning_tokens=30),
                    content=(Reasoning(text="think", opaque=Opaque(origin="anthropic", data="sig-A")),
                             Text(text="Calling."), ToolCall(id="toolu_1", name="get_time", arguments='{"tz":"UTC"}'),
                             ToolCall(id="toolu_2", name="get_time", arguments="{}")))
    body = G.render_response(resp, make_ctx(client_model="gemini-2.5-flash"))
    answer = genai_client(json.dumps(body).encode(), "application/json").models.generate_content(
        model="gemini-2.5-flash", contents="hi")
    assert answer.text == "Calling." and answer.model_version == "gemini-2.5-flash"
    assert [(c.id, c.name, c.args) for c in answer.function_calls or ()] == [("toolu_1", "get_time", {"tz": "UTC"}),
                                                                            ("toolu_2", "get_time", {})]
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count == 120
    assert answer.usage_metadata.candidates_token_count == 40 and answer.usage_metadata.thoughts_token_count == 30
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "think", "thought": True}
    assert read_signature(parts[2]["thoughtSignature"]) == [
        Carried(Opaque(origin="anthropic", data="sig-A"), "think")]


def test_a_gemini_client_answered_whole_from_a_stream() -> None:
    """A client that asked for no stream, of an upstream that streams (the Codex backend always does)."""
    reply = upstream_reply("responses")
    exchange, _ = start(G, R, G_BODY, g_op(stream=False))
    status, content_type, body = exchange.translate_body(200, "text/event-stream",
                                                         b"".join(UPSTREAM_EVENTS["responses"](reply)))
    answer = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert G.is_answer(answer, False)
    parts = answer["candidates"][0]["content"]["parts"]
    assert "".join(p["text"] for p in parts if "text" in p and not p.get("thought")) == reply.text
    assert answer["usageMetadata"] == EXPECTED_USAGE


# --- thought signatures, there and back (gemini.md §7, formats.md §5.7) -------------------------------


def _results(calls: list[tuple[str, str]], fmt: str) -> list[dict[str, Any]]:
    """The client's next turn: a result for each call (id, name), in its own format."""
    if fmt == "anthropic":
        return [{"role": "user", "content": [_tool_result(call_id, f"result of {name}") for call_id, name in calls]}]
    if fmt == "chat":
        return [{"role": "tool", "tool_call_id": call_id, "content": f"result of {name}"} for call_id, name in calls]
    return [{"type": "function_call_output", "call_id": call_id, "output": f"result of {name}"}
            for call_id, name in calls]


def _next_turn_to_gemini(fmt: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    body = dict(CLIENT_BODIES[fmt])
    key = "input" if fmt == "responses" else "messages"
    first = [{"role": "user", "content": body[key]}] if isinstance(body[key], str) else body[key]
    _, wire = start(FORMATS[fmt], G, {**body, key: first + history}, upstream_model=GEMINI_3)  # type: ignore[arg-type]
    validate_gemini_body(wire, GEMINI_3)
    return wire


def test_a_signature_goes_back_on_its_part_through_an_anthropic_client() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("anthropic", reply)
    folded = fold_anthropic(check_anthropic_stream(run_stream(exchange, [raw])))
    calls = [(b["id"], b["name"]) for b in folded["content"] if b["type"] == "tool_use"]
    # Claude Code sends the assistant turn back as it got it (clients.md), then the results
    wire = _next_turn_to_gemini("anthropic", [{"role": "assistant", "content": folded["content"]},
                                              *_results(calls, "anthropic")])
    model = wire["contents"][1]
    assert model == {"role": "model", "parts": [
        {"text": reply.text},  # the thought summary is not sent back
        {"functionCall": {"id": calls[0][0], "name": "get_weather", "args": WEATHER.arguments},
         "thoughtSignature": mu.gemini_signature(reply)},  # exactly as received, on the part it came on
        {"functionCall": {"id": calls[1][0], "name": "get_time", "args": {}}}]}


def test_a_text_answers_closing_signature_is_not_carried_after_the_text() -> None:
    """Gemini 3 signs a text answer on an empty last part; Gemini validates only calls' signatures (§7),
    and a thinking block after the text empties Claude Code's answer: the client gets the text alone."""
    reply = gemini_reply(tool_calls=(), reasoning=None)
    exchange, raw = from_gemini("anthropic", reply)
    folded = fold_anthropic(check_anthropic_stream(run_stream(exchange, [raw])))
    assert [b["type"] for b in folded["content"]] == ["text"]
    wire = _next_turn_to_gemini("anthropic", [{"role": "assistant", "content": folded["content"]},
                                              {"role": "user", "content": "and tomorrow?"}])
    assert wire["contents"][1]["parts"] == [{"text": reply.text}]


def test_a_chat_client_that_drops_reasoning_gets_the_sentinel_and_one_that_keeps_it_its_signature() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("chat", reply)
    folded = fold_chat(check_chat_stream(run_stream(exchange, [raw])))
    calls = [(c["id"], c["name"]) for c in folded["tool_calls"]]
    message = {"role": "assistant", "content": folded["content"],
               "tool_calls": [{"id": c["id"], "type": "function", "function": {"name": c["name"],
                                                                               "arguments": c["arguments"]}}
                              for c in folded["tool_calls"]]}
    plain = _next_turn_to_gemini("chat", [message, *_results(calls, "chat")])
    assert plain["contents"][1]["parts"][1]["thoughtSignature"] == SKIP_SIGNATURE
    kept = _next_turn_to_gemini("chat", [{**message, "thinking_blocks": folded["thinking_blocks"]},
                                         *_results(calls, "chat")])
    signatures = [p.get("thoughtSignature") for p in kept["contents"][1]["parts"]]
    # Chat has no place for where a block was, and its thinking blocks come before the text; in a turn with
    # calls Gemini signed the first call (gemini.md §7): the signature goes back there, not on the text.
    assert [next(iter(p)) for p in kept["contents"][1]["parts"]] == ["text", "functionCall", "functionCall"]
    assert signatures == [None, mu.gemini_signature(reply), None]


def test_the_one_signature_before_a_call_waits_for_it_past_the_text() -> None:
    """A turn whose reasoning came apart from its text (a Chat client's thinking_blocks): Gemini's signature
    goes on the first call, as Gemini signs a turn with calls (gemini.md §7). With more than one signature
    before the call, each keeps the place the IR gives it."""
    sig = Reasoning(text="", opaque=Opaque(origin="gemini", data=SIGNATURE))
    other = Reasoning(text="", opaque=Opaque(origin="gemini", data=OTHER_SIGNATURE))
    call = ToolCall(id="c1", name="get_weather", arguments="{}")

    def signed(*content: Any) -> list[tuple[str, str | None]]:
        req = Request(model=GEMINI_3, messages=(Message(role=Role.USER, content=(Text(text="hi"),)),
                                                Message(role=Role.ASSISTANT, content=content)))
        parts = G.render_request(req, make_ctx())["contents"][1]["parts"]
        return [(next(iter(p)), p.get("thoughtSignature")) for p in parts]

    assert signed(sig, Text(text="Checking."), call) == [("text", None), ("functionCall", SIGNATURE)]
    assert signed(Text(text="Checking."), sig, call) == [("text", None), ("functionCall", SIGNATURE)]
    assert signed(sig, Text(text="Sunny.")) == [("text", SIGNATURE)]  # no call: on the next part, as before
    assert signed(sig, Text(text="a"), other, call) == [("text", SIGNATURE), ("functionCall", OTHER_SIGNATURE)]
    assert signed(call, sig, Text(text="after")) == [("functionCall", SKIP_SIGNATURE), ("text", SIGNATURE)]


def test_a_signature_goes_back_on_its_part_through_a_responses_client() -> None:
    reply = gemini_reply()
    exchange, raw = from_gemini("responses", reply)
    final = check_responses_stream(run_stream(exchange, [raw]))[-1]["response"]
    calls = [(i["call_id"], i["name"]) for i in final["output"] if i["type"] == "function_call"]
    wire = _next_turn_to_gemini("responses", [*final["output"], *_results(calls, "responses")])  # Codex resends items
    parts = wire["contents"][1]["parts"]
    assert parts[1]["functionCall"]["name"] == "get_weather"
    assert parts[1]["thoughtSignature"] == mu.gemini_signature(reply)
    assert [("thoughtSignature" in p) for p in parts] == [False, True, False]


def gemini_cli_history(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Gemini CLI sends back of a model turn (gemini.md §2.8, §7): thought parts dropped, signatures kept
    on functionCall parts, text parts without theirs (google-gemini/gemini-cli #25808)."""
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    kept = []
    for part in parts:
        if part.get("thought") or ("text" in part and not part["text"]):
            continue
        kept.append(part if "functionCall" in part else {"text": part["text"]})
    return kept


@pytest.mark.parametrize("upstream", ["anthropic", "responses"])
def test_reasoning_of_another_upstream_comes_back_whole_from_gemini_cli(upstream: str) -> None:
    """Claude's thinking (text and signature) or Codex's encrypted reasoning, through a client that keeps
    only the signatures of calls: the upstream gets its reasoning back complete, first in the turn."""
    reply = upstream_reply(upstream)
    exchange, raw = to_gemini(upstream, reply)
    chunks = check_gemini_stream(run_stream(exchange, [raw]))
    calls = [p["functionCall"] for c in chunks for p in c["candidates"][0]["content"]["parts"] if "functionCall" in p]
    body = {**G_BODY, "contents": [*G_BODY["contents"], {"role": "model", "parts": gemini_cli_history(chunks)},
                                   {"role": "user", "parts": [{"functionResponse": {
                                       "id": c["id"], "name": c["name"], "response": {"output": "done"}}}
                                       for c in calls]}]}
    _, wire = start(G, FORMATS[upstream], body, g_op())  # type: ignore[arg-type]
    check_upstream_body(upstream, wire)
    if upstream == "anthropic":
        assert wire["messages"][1]["content"][0] == {"type": "thinking", "thinking": reply.reasoning,
                                                     "signature": reply.signature}
        assert [b["type"] for b in wire["messages"][1]["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    else:
        reasoning = [i for i in wire["input"] if i["type"] == "reasoning"]
        assert reasoning == [{"type": "reasoning", "summary": [{"type": "summary_text", "text": reply.reasoning}],
                              "encrypted_content": reply.signature}]
        assert wire["input"].index(reasoning[0]) < next(i for i, x in enumerate(wire["input"])
                                                        if x["type"] == "function_call")


def test_claudes_thinking_survives_the_python_sdk_and_its_url_safe_base64() -> None:
    """The Python SDK decodes thoughtSignature to bytes and sends them back URL-safe (gemini.md §2.2)."""
    reply = upstream_reply("anthropic", reasoning="Plan >>>>>> then ??????")  # base64 with "+" and "/" in it
    exchange, raw = to_gemini("anthropic", reply)
    chunks = sdk_stream(run_stream(exchange, [raw]))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]  # type: ignore[index, union-attr]
    calls = [p.function_call for p in parts if p.function_call]
    contents = [types.Content(role="user", parts=[types.Part(text="weather and time?")]),
                types.Content(role="model", parts=parts),
                types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
                    id=c.id, name=c.name, response={"output": "done"})) for c in calls if c is not None])]
    body = sdk_request(contents)
    sent = [p["thoughtSignature"] for c in body["contents"] for p in c["parts"] if "thoughtSignature" in p]
    assert len(sent) == 1 and "-" in sent[0] and "_" in sent[0]  # really URL-safe on the way back
    _, wire = start(G, A, body, g_op())
    check_upstream_body("anthropic", wire)
    assert wire["messages"][1]["content"][0] == {"type": "thinking", "thinking": reply.reasoning,
                                                 "signature": reply.signature}


def test_redacted_thinking_comes_back_redacted() -> None:
    reply = upstream_reply("anthropic", redacted="opaque-redacted-blob")
    exchange, raw = to_gemini("anthropic", reply)
    chunks = check_gemini_stream(run_stream(exchange, [raw]))
    history = {"role": "model", "parts": gemini_cli_history(chunks)}
    calls = [p["functionCall"] for p in history["parts"] if "functionCall" in p]
    body = {**G_BODY, "contents": [*G_BODY["contents"], history, {"role": "user", "parts": [
        {"functionResponse": {"id": c["id"], "name": c["name"], "response": {"output": "x"}}} for c in calls]}]}
    _, wire = start(G, A, body, g_op())
    assert wire["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": reply.reasoning, "signature": reply.signature},
        {"type": "redacted_thinking", "data": "opaque-redacted-blob"}]


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), (SKIP_SIGNATURE, None), ("not base64!", None), ("QUJD=A", None),
    (SIGNATURE, SIGNATURE),  # Gemini's own: kept as the string that came
    (base64.urlsafe_b64encode(base64.b64decode(SIGNATURE)).decode(),
     base64.urlsafe_b64encode(base64.b64decode(SIGNATURE)).decode()),
    (base64.b64encode(b'[["bridge1.garbage","x"]]').decode(), []),  # the bridge's shape, nothing inside it
])
def test_read_signature(value: Any, expected: Any) -> None:
    assert read_signature(value) == expected


def test_carried_signatures_read_in_both_alphabets() -> None:
    carried = [Carried(Opaque(origin="anthropic", data="sig+/="), "think ✓"),
               Carried(Opaque(origin="responses", data="enc"), "", redacted=True)]
    standard = encode_carried(carried)
    url_safe = base64.urlsafe_b64encode(base64.b64decode(standard)).decode().rstrip("=")
    assert read_signature(standard) == read_signature(url_safe) == carried
    assert base64.b64decode(standard).startswith(b'[["bridge1.')
    assert decode_signature(json.loads(base64.b64decode(standard))[0][0], "x") == carried[0].opaque
    # what another format's client sends back of them is the bridge's envelope, as for every format
    assert encode_signature(carried[0].opaque) == json.loads(base64.b64decode(standard))[0][0]


# --- errors (gemini.md §5) ------------------------------------------------------------------------------


def google_error(code: int, status: str, message: str = "m", **extra: Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status, **extra}}).encode()


KEY_INVALID = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com"}]


@pytest.mark.parametrize(("status", "body", "expected_status", "kind", "message"), [
    (400, google_error(400, "INVALID_ARGUMENT", "bad schema"), 400, ErrorKind.INVALID_REQUEST, "bad schema"),
    # a wrong key is Google's 400; other clients know it as an authentication failure (§1.2)
    (400, google_error(400, "INVALID_ARGUMENT", "API key not valid.", details=KEY_INVALID), 401,
     ErrorKind.AUTHENTICATION, "API key not valid."),
    (400, google_error(400, "FAILED_PRECONDITION", "enable billing"), 400, ErrorKind.BILLING, "enable billing"),
    (403, google_error(403, "PERMISSION_DENIED"), 403, ErrorKind.PERMISSION, "m"),
    (404, google_error(404, "NOT_FOUND", "no such model"), 404, ErrorKind.NOT_FOUND, "no such model"),
    (429, google_error(429, "RESOURCE_EXHAUSTED", "quota", details=[
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]),
     429, ErrorKind.RATE_LIMIT, "quota"),
    (500, google_error(500, "INTERNAL"), 500, ErrorKind.API_ERROR, "m"),
    (503, google_error(503, "UNAVAILABLE", "high demand"), 503, ErrorKind.OVERLOADED, "high demand"),
    (504, google_error(504, "DEADLINE_EXCEEDED"), 504, ErrorKind.TIMEOUT, "m"),
    (500, google_error(500, "INVALID_ARGUMENT"), 500, ErrorKind.API_ERROR, "m"),  # the status's class wins
    (503, b"[" + google_error(503, "UNAVAILABLE", "listed") + b"]", 503, ErrorKind.OVERLOADED, "listed"),
    (502, b"<html>Bad Gateway</html>", 502, ErrorKind.API_ERROR, "<html>Bad Gateway</html>"),
    (500, b"", 500, ErrorKind.API_ERROR, "upstream returned HTTP 500 with no body"),
])
def test_parse_error(status: int, body: bytes, expected_status: int, kind: ErrorKind, message: str) -> None:
    err = G.parse_error(status, body)
    assert (err.status, err.kind, err.message) == (expected_status, kind, message)


@pytest.mark.parametrize(("err", "status", "name"), [
    (BadRequest("contents.0.role: expected user or model", param="contents.0.role"), 400, "INVALID_ARGUMENT"),
    (UpstreamError("who?", status=401), 401, "UNAUTHENTICATED"),
    (UpstreamError("pay", status=402), 400, "FAILED_PRECONDITION"),
    (UpstreamError("no", status=403), 403, "PERMISSION_DENIED"),
    (UpstreamError("gone", status=404), 404, "NOT_FOUND"),
    (UpstreamError("big", status=413), 400, "INVALID_ARGUMENT"),
    (UpstreamError("slow down", status=429), 429, "RESOURCE_EXHAUSTED"),
    (UpstreamError("oops", status=500), 500, "INTERNAL"),
    (UpstreamProtocolError("garbled"), 502, "INTERNAL"),
    (UpstreamError("busy", status=529), 503, "UNAVAILABLE"),  # Anthropic's overloaded; Google has no 529
    (UpstreamError("late", status=504), 504, "DEADLINE_EXCEEDED"),
    # a 5xx kept as it came (an Anthropic 503 with the generic "api_error" type): Google's name for that status
    (UpstreamError("down", status=503, kind=ErrorKind.API_ERROR), 503, "UNAVAILABLE"),
    (UpstreamError("late", status=504, kind=ErrorKind.API_ERROR), 504, "DEADLINE_EXCEEDED"),
])
def test_render_error_is_what_the_sdk_raises(err: BridgeError, status: int, name: str) -> None:
    code, body = G.render_error(err)
    assert code == status and list(body) == ["error"]
    assert body["error"]["code"] == status and body["error"]["status"] == name
    if err.param:
        assert body["error"]["details"][0]["fieldViolations"] == [{"field": err.param, "description": err.message}]
    with pytest.raises(genai_errors.APIError) as caught:
        genai_client(json.dumps(body).encode(), "application/json", status).models.generate_content(
            model="gemini-2.5-flash", contents="hi")
    assert isinstance(caught.value, genai_errors.ClientError if status < 500 else genai_errors.ServerError)
    assert (caught.value.code, caught.value.status, caught.value.message) == (status, name, err.message)


def test_render_stream_error_ends_a_stream_the_sdk_reads() -> None:
    raw = G.render_stream_error(UpstreamError("busy", status=503))
    assert raw == b'data: {"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}\r\n\r\n'
    check_gemini_stream(raw)
    with pytest.raises(genai_errors.ServerError):
        sdk_stream(raw)


def test_a_gemini_upstream_error_reaches_other_clients_in_their_terms() -> None:
    exchange, _ = start(A, G, _a_turns({"role": "user", "content": "hi"}), upstream_model="gemini-2.5-flash")
    status, _, body = exchange.translate_body(429, "application/json", google_error(429, "RESOURCE_EXHAUSTED", "quota"))
    assert status == 429 and json.loads(body)["error"] == {"type": "rate_limit_error", "message": "quota"}
    exchange, _ = start(G, A, G_BODY, g_op())
    status, _, body = exchange.translate_body(
        529, "application/json", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    assert (status, json.loads(body)) == (503, {"error": {"code": 503, "message": "Overloaded",
                                                          "status": "UNAVAILABLE"}})


def test_a_gemini_client_is_refused_in_its_own_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg("endpoints:\n  - name: a\n    url_anthropic: http://a.test\n    models: [claude-*]\n")
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    op = detect("POST", path, {})
    assert op is not None
    p = plan(config, op, path, {"content-type": "application/json"}, json.dumps(G_BODY).encode(), str, CREATED)
    assert p.answer is not None
    status, _, body = p.answer
    with pytest.raises(genai_errors.ClientError) as caught:
        genai_client(body, "application/json", status).models.generate_content(model="gemini-2.5-flash",
                                                                               contents="hi")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert "gemini-2.5-flash" in (caught.value.message or "")


def test_a_gemini_clients_token_count_is_estimated_when_no_gemini_endpoint_counts() -> None:
    config = cfg("endpoints:\n  - name: a\n    url_anthropic: http://a.test\n")
    path = "/v1beta/models/gemini-2.5-flash:countTokens"
    op = detect("POST", path, {})
    assert op is not None and op.kind == "count_tokens"
    text = "count these words please " * 20
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    p = plan(config, op, path, {"content-type": "application/json"}, json.dumps(body).encode(), str, CREATED)
    assert p.answer is not None and p.summary["mode"] == "local estimate"
    total = genai_client(p.answer[2], "application/json").models.count_tokens(
        model="gemini-2.5-flash", contents="x").total_tokens
    assert total is not None and len(text) // 8 < total < len(text)  # an estimate: about a quarter of the chars


# --- answers recognised, blocks in turn -------------------------------------------------------------------


@pytest.mark.parametrize(("first", "stream", "fmt"), [
    (chunk([{"text": "x"}]), True, "gemini"),
    (chunk([{"text": "x"}], "STOP"), False, "gemini"),
    ({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage(1, 0), "modelVersion": "m"}, True, "gemini"),
    ({"type": "message_start", "message": {}}, True, "anthropic"),
    ({"type": "message", "content": []}, False, "anthropic"),
    ({"object": "chat.completion.chunk", "choices": []}, True, "chat"),
    ({"object": "chat.completion", "choices": []}, False, "chat"),
    ({"type": "response.created", "response": {}}, True, "responses"),
    ({"object": "response", "output": []}, False, "responses"),
    ({"error": {"code": 500, "message": "x", "status": "INTERNAL"}}, False, None),
    ({"candidates": []}, False, None),  # without the metadata every Gemini answer has
])
def test_answers_are_told_apart(first: dict[str, Any], stream: bool, fmt: str | None) -> None:
    assert [f.NAME for f in FORMATS.values() if f.is_answer(first, stream)] == ([fmt] if fmt else [])


def test_answer_format_reads_a_recorded_gemini_stream() -> None:
    raw = sse([chunk([{"text": "x"}]), chunk([{"text": ""}], "STOP")])
    assert translate.answer_format("text/event-stream", raw) == "gemini"
    assert translate.answer_format("application/json", json.dumps(chunk([{"text": "x"}], "STOP")).encode()) == "gemini"


def test_block_channels_for_a_gemini_client() -> None:
    """Text blocks at once would mix their words: they go in turn; calls go whole, so they overlap freely."""
    order = BlockOrder(make_ctx().budget, G.block_channel)
    text = [BlockStart(block_id=i, kind=BlockKind.TEXT) for i in (0, 1)]
    calls = [BlockStart(block_id=i, kind=BlockKind.TOOL_CALL, tool_call_id=f"c{i}", tool_name="f") for i in (2, 3)]
    assert order.feed(text[0]) == [text[0]] and order.feed(text[1]) == []  # held
    assert order.feed(calls[0]) == [calls[0]] and order.feed(calls[1]) == [calls[1]]
    thought = BlockStart(block_id=4, kind=BlockKind.REASONING)
    assert order.feed(thought) == [thought]
    assert order.feed(BlockStop(block_id=0)) == [BlockStop(block_id=0), text[1]]


@st.composite
def overlapping_blocks(draw: st.DrawFn) -> list[Any]:
    """IR events of an upstream whose blocks overlap in any order (OpenRouter, Chat servers interleaving calls)."""
    kinds = draw(st.lists(st.sampled_from(list(BlockKind)), min_size=1, max_size=6))
    texts = {i: draw(st.lists(st.text(min_size=1, max_size=5), max_size=3)) for i in range(len(kinds))}
    pending: list[Any] = []
    for i, kind in enumerate(kinds):
        start_event = BlockStart(block_id=i, kind=kind, tool_call_id=f"call_{i}" if kind is BlockKind.TOOL_CALL
                                 else None, tool_name="f" if kind is BlockKind.TOOL_CALL else None)
        body = [BlockDelta(block_id=i, text='{"n":1}')] if kind is BlockKind.TOOL_CALL else \
            [BlockDelta(block_id=i, text=t) for t in texts[i]]
        opaque = Opaque(origin=draw(st.sampled_from(["gemini", "anthropic"])), data="c2ln") \
            if kind is BlockKind.REASONING and draw(st.booleans()) else None
        pending.append([start_event, *body, BlockStop(block_id=i, opaque=opaque)])
    events: list[Any] = []
    while pending:  # interleave: take the next event of a random block, each block's own order kept
        lane = draw(st.integers(0, len(pending) - 1))
        events.append(pending[lane].pop(0))
        if not pending[lane]:
            pending.pop(lane)
    return events


@pytest.mark.parametrize("framing", ["sse", "json-array"])
@given(events=overlapping_blocks(), reason=st.sampled_from(list(StopReason)))
@settings(max_examples=60, deadline=None)
def test_any_overlap_of_blocks_is_a_valid_gemini_stream(framing: str, events: list[Any], reason: StopReason) -> None:
    ctx = make_ctx(framing=framing, client_model="gemini-2.5-flash")
    order, emitter = BlockOrder(ctx.budget, G.block_channel), G.StreamEmitter(ctx)
    stream = [MessageStart(id="r", model="m", usage=Usage(input_tokens=3)), *events,
              UsageUpdate(usage=Usage(output_tokens=9, reasoning_tokens=2)), Finish(stop_reason=reason)]
    out = b"".join(b for ev in order.order(stream) for b in emitter.feed(ev))
    folded = fold_gemini(check_gemini_stream(out, framing))
    texts = {ev.block_id: "" for ev in events if isinstance(ev, BlockStart) and ev.kind is BlockKind.TEXT}
    for ev in events:
        if isinstance(ev, BlockDelta) and ev.block_id in texts:
            texts[ev.block_id] += ev.text
    said = "".join(texts.values())  # text blocks in turn, in the order they started (dicts keep insertion order)
    if said or reason is not StopReason.REFUSAL:
        assert folded["text"] == said
    assert len(folded["function_calls"]) == sum(ev.kind is BlockKind.TOOL_CALL for ev in events
                                                if isinstance(ev, BlockStart))


def test_codex_freeform_call_through_a_gemini_upstream() -> None:
    """Codex's custom ``exec`` tool is a function of one string for Gemini; its call comes back as a
    custom_tool_call with the raw input (formats.md §5.3)."""
    body = {"model": "gpt-client", "stream": True, "input": "list files",
            "tools": [{"type": "custom", "name": "exec", "description": "run code"}]}
    exchange, wire = start(R, G, body, upstream_model=GEMINI_3)
    validate_gemini_body(wire, GEMINI_3)
    raw = sse([chunk([{"functionCall": {"name": "exec", "args": {"input": "ls -la\n"}}, "thoughtSignature": S1}]),
               chunk([{"text": ""}], "STOP")])
    final = check_responses_stream(run_stream(exchange, [raw]))[-1]["response"]
    call = next(i for i in final["output"] if i["type"] == "custom_tool_call")
    assert (call["name"], call["input"]) == ("exec", "ls -la\n")
    history = [{"role": "user", "content": "list files"}, *final["output"],
               {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "a b"}]
    wire = _next_turn_to_gemini_raw(R, {**body, "input": history})
    assert wire["contents"][1]["parts"][0] == {"functionCall": {"id": call["call_id"], "name": "exec",
                                                                "args": {"input": "ls -la\n"}}, "thoughtSignature": S1}


def _next_turn_to_gemini_raw(client: ModuleType, body: dict[str, Any]) -> dict[str, Any]:
    _, wire = start(client, G, body, upstream_model=GEMINI_3)
    validate_gemini_body(wire, GEMINI_3)
    return wire


# --- schemas (gemini.md §6.5) -----------------------------------------------------------------------------


def _client_schemas() -> list[tuple[str, dict[str, Any]]]:
    claude = [(t["name"], t["input_schema"]) for r in shape("claude-code.json")["requests"] for t in r["body"]["tools"]]
    codex = [(t["name"], t["parameters"]) for r in shape("codex.json")["requests"] for item in r["body"]["input"]
             if item.get("type") == "additional_tools" for ns in item["tools"] for t in ns["tools"]
             if "parameters" in t]
    return claude + codex


@pytest.mark.parametrize(("name", "schema"), _client_schemas())
def test_real_client_schemas_go_to_gemini_as_json_schema(name: str, schema: dict[str, Any]) -> None:
    """Claude Code's and Codex's real schemas ($schema, additionalProperties, exclusiveMinimum, enums, nesting):
    only the root $schema goes, and the mock's model of the API's JSON Schema check takes them."""
    out = gschema.for_gemini(schema)
    assert out == {k: v for k, v in schema.items() if k != "$schema"}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": name, "parametersJsonSchema": out}]}]}
    assert mu.gemini_refusal(body, "gemini-2.5-flash") is None
    types.Tool.model_validate_json(json.dumps(body["tools"][0]))


def test_draft_04_bounds_become_numbers_at_any_depth() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
        "b": {"type": "array", "items": {"type": "number", "maximum": 9, "exclusiveMaximum": True}},
        "c": {"anyOf": [{"type": "number", "minimum": 0, "exclusiveMinimum": False}, {"type": "null"}]},
        "exclusiveMinimum": {"type": "boolean"}}}  # a property of that name is not a keyword
    out = gschema.for_gemini(schema)
    assert out["properties"]["a"] == {"type": "integer", "exclusiveMinimum": 1}
    assert out["properties"]["b"]["items"] == {"type": "number", "exclusiveMaximum": 9}
    assert out["properties"]["c"]["anyOf"][0] == {"type": "number", "minimum": 0}
    assert out["properties"]["exclusiveMinimum"] == {"type": "boolean"}
    assert mu.gemini_refusal({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [
        {"name": "f", "parametersJsonSchema": schema}]}]}, "gemini-2.5-flash") is not None  # as sent: refused
    assert schema["properties"]["a"]["exclusiveMinimum"] is True  # the client's schema is not changed


def test_openapi_schema_to_json_schema() -> None:
    openapi = {"type": "OBJECT", "property_ordering": ["type", "ref"], "properties": {
        "type": {"type": "STRING", "enum": ["a", "b"], "nullable": True},  # a property named "type"
        "ref": {"ref": "#/defs/Item"},
        "n": {"type": "INTEGER", "min_items": "1", "example": 3}},
        "defs": {"Item": {"type": "OBJECT", "properties": {"x": {"type": "NUMBER"}}}}}
    assert gschema.from_gemini(openapi, openapi=True) == {
        "type": "object", "properties": {
            "type": {"type": ["string", "null"], "enum": ["a", "b"]},
            "ref": {"$ref": "#/$defs/Item"},
            "n": {"type": "integer", "minItems": 1, "examples": [3]}},
        "$defs": {"Item": {"type": "object", "properties": {"x": {"type": "number"}}}}}
    json_schema = {"type": "OBJECT", "properties": {"type": {"type": "STRING"}, "ok": {"type": ["STRING", "null"]}},
                   "nullable": True}  # JSON Schema mode: only the type names change
    assert gschema.from_gemini(json_schema, openapi=False) == {
        "type": "object", "properties": {"type": {"type": "string"}, "ok": {"type": ["string", "null"]}},
        "nullable": True}


@pytest.mark.parametrize(("reason", "raw", "expected"), [
    (StopReason.END_TURN, None, "STOP"), (StopReason.TOOL_USE, "tool_use", "STOP"),
    (StopReason.STOP_SEQUENCE, "stop_sequence", "STOP"), (StopReason.PAUSE, "pause_turn", "STOP"),
    (StopReason.MAX_TOKENS, "length", "MAX_TOKENS"), (StopReason.CONTEXT_EXCEEDED, None, "MAX_TOKENS"),
    (StopReason.REFUSAL, "content_filter", "SAFETY"), (StopReason.OTHER, "weird", "STOP"),
    # a Gemini upstream's own reason is kept where it means the same
    (StopReason.REFUSAL, "RECITATION", "RECITATION"), (StopReason.REFUSAL, "SPII", "SPII"),
    (StopReason.OTHER, "OTHER", "OTHER"),
    (StopReason.MAX_TOKENS, "CONTINUATION", "MAX_TOKENS"),  # only for a client that asked for it (§3.2)
    (StopReason.END_TURN, "SAFETY", "STOP"),  # a raw value that says otherwise is not trusted
])
def test_finish_reason_to_gemini(reason: StopReason, raw: str | None, expected: str) -> None:
    resp = Response(id="r", model="m", content=(Text(text="x"),), stop_reason=reason, raw_stop_reason=raw)
    assert G.render_response(resp, make_ctx())["candidates"][0]["finishReason"] == expected
    events = [MessageStart(id="r", model="m"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="x"), BlockStop(block_id=0), Finish(stop_reason=reason, raw_stop_reason=raw)]
    emitter = G.StreamEmitter(make_ctx())
    chunks = check_gemini_stream(b"".join(b for ev in events for b in emitter.feed(ev)))
    assert chunks[-1]["candidates"][0]["finishReason"] == expected


@pytest.mark.parametrize("meta", [usage(120, 30, 50, cached=100), usage(7, 3), usage(0, 0, 0, cached=0)])
def test_usage_survives_gemini_to_ir_and_back(meta: dict[str, Any]) -> None:
    resp = accumulate(G.response_events(chunk([{"text": "x"}], "STOP", meta=meta), make_ctx()))
    assert G.render_response(resp, make_ctx())["usageMetadata"] == meta


def test_a_pass_through_answer_after_a_model_rewrite_names_the_clients_model() -> None:
    """Gemini names the model in ``modelVersion``: that is what a model rewrite must put back."""
    renamer = translate.ModelRenamer("gemini-upstream", "gemini-client", G.rename_model)
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}],
             "modelVersion": "gemini-upstream-001", "responseId": "r1"}
    out = b"".join(renamer.feed(f"data: {json.dumps(chunk)}\r\n\r\n".encode()) + renamer.close())
    assert json.loads(out.decode().removeprefix("data: "))["modelVersion"] == "gemini-client"
    assert json.loads(renamer.body(json.dumps(chunk).encode()))["modelVersion"] == "gemini-client"


@pytest.mark.parametrize("number", ["-9223372036854775809", "18446744073709551616", "123456789012345678901234567890"])
def test_an_integer_past_64_bits_is_kept_exactly(number: str) -> None:
    """orjson reads such an integer as a float, silently (hypothesis found it in a call's arguments going
    to a Gemini client): ``loads`` reads it with the json module instead."""
    from addon.formats.common import loads, loads_object
    assert loads(f'{{"n": {number}}}') == {"n": int(number)}
    assert loads(f'[{number}]'.encode()) == [int(number)]
    assert loads_object(f'{{"": {number}}}') == {"": int(number)}
