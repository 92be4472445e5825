"""The mock's Gemini upstream, read by Google's own SDK (google-genai 3.3.0) pointed straight at it.

First the rendering: every route (generateContent, streamGenerateContent as SSE and as a JSON array,
countTokens, the models list), each Reply field as the SDK parses it (text, thought parts, whole function
calls with and without signatures, finish reasons, cumulative usage, a blocked prompt) and each fault
(error status, in-stream error, cut, early end, injected garbage). Then every request rule the mock enforces
(gemini.md §5.2 and the sections each rule cites): a request the real API refuses gets its status and exact
message, and a near miss is accepted, so no rule is broader than Google's. Raw bodies go through httpx, since
the SDK itself refuses some of them before sending. No bridge runs here.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.mock_upstream import SKIP_SIGNATURE, MockUpstream, Reply, ToolCallSpec, gemini_signature

KEY = "test-gemini-key"  # not a real key: the mock only compares it
MODEL = "gemini-2.5-flash"
GEMINI_3 = "gemini-3-pro-preview"
WEATHER = ToolCallSpec(id="call_1", name="get_weather", arguments={"city": "Paris"})
CLOCK = ToolCallSpec(id="call_2", name="get_time", arguments={})
SIGNED = gemini_signature(Reply())  # base64 of the default "mock-signature"
THINKING = {"thinkingConfig": {"thinkingLevel": "HIGH"}}
BAD_NAME = ("Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
            "underscores (_), dots (.) or dashes (-), with a maximum length of 64.")
MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required for tools "
                     "to work correctly, and missing thought_signature may lead to degraded model performance. "
                     "Additional data, function call `default_api:{name}` , position {position}. Please refer to "
                     "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")


@pytest.fixture
def client(mock: MockUpstream) -> genai.Client:
    """The SDK on /v1beta, as Gemini CLI and the bridge call it (the SDK's default is /v1, gemini.md §0)."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=mock.url, api_version="v1beta"))


def post(mock: MockUpstream, body: Any, method: str = "generateContent", model: str = MODEL,
         query: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{mock.url}/v1beta/models/{model}:{method}{query}", json=body,
                      headers={"x-goog-api-key": KEY} if headers is None else headers, timeout=10)


def refused(response: httpx.Response, message: str, code: int = 400, status: str = "INVALID_ARGUMENT") -> None:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert error["message"] == message


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def user(text: str = "Weather in Paris?") -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def call(name: str = "get_weather", signature: str | None = None, **fields: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": {"city": "Paris"}, **fields}}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def answer(name: str = "get_weather", **fields: Any) -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": {"output": "sunny"}, **fields}}


def model_turn(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def results(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def declare(name: str = "get_weather", **fields: Any) -> dict[str, Any]:
    return {"tools": [{"functionDeclarations": [{"name": name, "description": "d", **fields}]}]}


def sse_events(raw: bytes) -> list[bytes]:
    events = raw.split(b"\n\n")
    assert events[-1] == b"", "the last event ends with a blank line"
    return events[:-1]


# --- rendering ------------------------------------------------------------------------------------


def test_text_turn(mock: MockUpstream, client: genai.Client) -> None:
    response = client.models.generate_content(model=MODEL, contents="Hi")
    assert response.text == "Hello from the mock."
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    # Gemini 3's shape for a text answer: the signature on its last part (gemini.md §7)
    assert candidate.content.parts[-1].thought_signature == b"mock-signature"
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (12, 7, 19)
    assert (response.model_version, response.response_id) == ("mock-upstream-model", "mockGeminiResponse0001")
    request = mock.last
    assert (request.method, request.path) == ("POST", f"/v1beta/models/{MODEL}:generateContent")
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json["contents"] == [{"parts": [{"text": "Hi"}], "role": "user"}]


def test_sdk_default_api_version_is_v1(mock: MockUpstream) -> None:
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=mock.url))
    assert client.models.generate_content(model=MODEL, contents="Hi").text == "Hello from the mock."
    assert mock.last.path == f"/v1/models/{MODEL}:generateContent"


def test_text_stream(mock: MockUpstream, client: genai.Client) -> None:
    mock.next_reply(text="abcdefghij", piece=4)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert mock.last.path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert "".join(c.text or "" for c in chunks) == "abcdefghij"
    assert [c.text for c in chunks] == ["abcd", "efgh", "ij", ""]
    assert [c.candidates[0].finish_reason for c in chunks] == [None, None, None, types.FinishReason.STOP]
    # usage is on every chunk and cumulative: the prompt from the first, the candidates growing (gemini.md §4.3)
    assert {c.usage_metadata.prompt_token_count for c in chunks} == {12}
    candidates = [c.usage_metadata.candidates_token_count for c in chunks]
    assert candidates == sorted(candidates) and candidates[0] < 7 and candidates[-1] == 7
    assert chunks[-1].usage_metadata.total_token_count == 19
    # no call: the signature rides on an empty text part in the last chunk (gemini.md §4.3 item 4)
    assert chunks[-1].candidates[0].content.parts[0].thought_signature == b"mock-signature"
    assert all(p.thought_signature is None for c in chunks[:-1] for p in c.candidates[0].content.parts)


def test_sse_framing_one_event_per_write(mock: MockUpstream) -> None:
    reply = mock.next_reply(text="abcdefgh", hold_after=1)
    url = f"{mock.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json={"contents": [user()]}, headers={"x-goog-api-key": KEY}, timeout=10) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["transfer-encoding"] == "chunked"
        reads = r.iter_raw()
        first = next(reads)  # the mock holds the rest: this event was written and flushed alone
        assert first.startswith(b"data: {") and first.endswith(b"\n\n") and first.count(b"\n\n") == 1
        reply.release.set()
        raw = first + b"".join(reads)
    events = sse_events(raw)
    # exactly "data: " + one JSON line per event: no event names, comments, ids or [DONE] (gemini.md §4.1)
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events)
    chunks = [json.loads(e[len(b"data: "):]) for e in events]
    assert [list(c) for c in chunks] == [["candidates", "usageMetadata", "modelVersion", "responseId"]] * 3
    assert "finishReason" in chunks[-1]["candidates"][0]
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])


def test_json_array_stream_without_alt(mock: MockUpstream) -> None:
    mock.next_reply(text="abcdefgh")
    sse = post(mock, {"contents": [user()]}, "streamGenerateContent", query="?alt=sse")
    mock.next_reply(text="abcdefgh")
    array = post(mock, {"contents": [user()]}, "streamGenerateContent")
    assert array.headers["content-type"].startswith("application/json")
    assert array.content.startswith(b"[{") and array.content.endswith(b"}]") and b"},\r\n{" in array.content
    assert array.json() == [json.loads(e[len(b"data: "):]) for e in sse_events(sse.content)]


def test_reasoning_as_thought_parts(mock: MockUpstream, client: genai.Client) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    mock.next_reply(reasoning="Think first.", text="Done.")
    response = client.models.generate_content(model=MODEL, contents="Hi", config=config)
    parts = response.candidates[0].content.parts
    assert [(p.text, bool(p.thought)) for p in parts] == [("Think first.", True), ("Done.", False)]
    assert response.text == "Done."  # the SDK leaves thought parts out of .text
    assert parts[1].thought_signature == b"mock-signature"  # on the part after the thoughts (gemini.md §7)
    assert (response.usage_metadata.thoughts_token_count, response.usage_metadata.total_token_count) == (5, 24)

    mock.next_reply(reasoning="Think first.", text="Done.", piece=6)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi", config=config))
    thoughts = [p.text for c in chunks for p in c.candidates[0].content.parts if p.thought]
    assert thoughts == ["Think ", "first."]
    assert "".join(c.text or "" for c in chunks) == "Done."
    assert {c.usage_metadata.thoughts_token_count for c in chunks} == {5}


def test_no_thought_parts_unless_asked(mock: MockUpstream, client: genai.Client) -> None:
    # without includeThoughts a thinking model streams no reasoning, only its token count (gemini.md §4.3 item 1)
    mock.next_reply(reasoning="Think first.", text="Done.")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert not any(p.thought for c in chunks for p in c.candidates[0].content.parts)
    assert chunks[-1].usage_metadata.thoughts_token_count == 5


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_calls_with_signature(mock: MockUpstream, client: genai.Client, stream: bool) -> None:
    mock.next_reply(text=None, tool_calls=[WEATHER, CLOCK])
    if stream:
        chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
        parts = [p for c in chunks for p in c.candidates[0].content.parts]
        call_chunks = [c for c in chunks if c.function_calls]
        assert len(call_chunks) == 1 and call_chunks[0].candidates[0].finish_reason is None  # whole, together
        finish = chunks[-1].candidates[0].finish_reason
    else:
        response = client.models.generate_content(model=MODEL, contents="Hi")
        parts = response.candidates[0].content.parts
        finish = response.candidates[0].finish_reason
    calls = [p for p in parts if p.function_call]
    assert [(p.function_call.name, p.function_call.args) for p in calls] == [("get_weather", {"city": "Paris"}),
                                                                             ("get_time", {})]
    assert [p.function_call.id for p in calls] == [None, None]  # the Developer API sends no id (gemini.md §6.1)
    # only the first parallel call carries the signature (gemini.md §7)
    assert [p.thought_signature for p in calls] == [b"mock-signature", None]
    assert finish == types.FinishReason.STOP  # no tool-use finish reason (gemini.md §3.1)


def test_tool_calls_without_signature_and_with_ids(mock: MockUpstream, client: genai.Client) -> None:
    mock.next_reply(text=None, tool_calls=[WEATHER], signature="", gemini_ids=True)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    assert all(p.thought_signature is None for p in parts)
    assert [p.function_call.id for p in parts if p.function_call] == ["call_1"]
    mock.next_reply(text="Plain.", signature="")
    response = client.models.generate_content(model=MODEL, contents="Hi")
    assert [p.thought_signature for p in response.candidates[0].content.parts] == [None]


@pytest.mark.parametrize(("stop", "finish"), [(None, "STOP"), ("end_turn", "STOP"), ("tool_use", "STOP"),
                                              ("max_tokens", "MAX_TOKENS"), ("length", "MAX_TOKENS"),
                                              ("refusal", "SAFETY"), ("content_filter", "SAFETY"),
                                              ("RECITATION", "RECITATION"), ("MALFORMED_FUNCTION_CALL",
                                                                             "MALFORMED_FUNCTION_CALL")])
def test_finish_reasons(mock: MockUpstream, client: genai.Client, stop: str | None, finish: str) -> None:
    mock.next_reply(stop=stop)
    assert client.models.generate_content(model=MODEL, contents="Hi").candidates[0].finish_reason == finish


def test_blocked_prompt(mock: MockUpstream, client: genai.Client) -> None:
    mock.next_reply(block_reason="PROHIBITED_CONTENT", usage={"promptTokenCount": 9, "totalTokenCount": 9})
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert len(chunks) == 1 and chunks[0].candidates is None
    assert chunks[0].prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert chunks[0].usage_metadata.prompt_token_count == 9


def test_scripted_usage_is_the_final_one(mock: MockUpstream, client: genai.Client) -> None:
    usage = {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
             "thoughtsTokenCount": 30, "totalTokenCount": 150}  # cached inside prompt; total = 100 + 20 + 30
    mock.next_reply(text="abcdefgh", usage=usage)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    last = chunks[-1].usage_metadata
    assert (last.prompt_token_count, last.cached_content_token_count, last.candidates_token_count,
            last.thoughts_token_count, last.total_token_count) == (100, 60, 20, 30, 150)
    first = chunks[0].usage_metadata
    assert first.candidates_token_count < 20
    assert first.total_token_count == 100 + first.candidates_token_count + 30
    assert sum(c.usage_metadata.candidates_token_count for c in chunks) > 20  # adding chunks up is wrong


def test_count_tokens(mock: MockUpstream, client: genai.Client) -> None:
    mock.next_reply(text="still queued")
    counted = client.models.count_tokens(model=MODEL, contents="How many tokens is this?")
    assert mock.last.path == f"/v1beta/models/{MODEL}:countTokens"
    assert counted.total_tokens == len(mock.last.body)  # the body's size: nothing like a local estimate
    assert client.models.generate_content(model=MODEL, contents="Hi").text == "still queued"
    refused(post(mock, {"contents": [user()], "stream": True}, "countTokens"),
            'Invalid JSON payload received. Unknown name "stream": Cannot find field.')


def test_models_list_and_get(mock: MockUpstream, client: genai.Client) -> None:
    mock.gemini_models = ["gemini-3-pro-preview", "gemini-2.5-flash", "gemini-2.5-pro"]
    models = list(client.models.list(config=types.ListModelsConfig(page_size=2)))
    assert [m.name for m in models] == [f"models/{m}" for m in mock.gemini_models]
    assert models[0].supported_actions == ["generateContent", "countTokens"]
    paths = [r.path for r in mock.requests]
    assert [r.method for r in mock.requests] == ["GET", "GET"]
    assert paths[0].startswith("/v1beta/models?") and "pageToken=2" in paths[1]  # the SDK followed the page
    model = client.models.get(model="gemini-2.5-pro")
    assert (model.name, model.output_token_limit) == ("models/gemini-2.5-pro", 65536)


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "name", "error"), [(429, "RESOURCE_EXHAUSTED", errors.ClientError),
                                                       (404, "NOT_FOUND", errors.ClientError),
                                                       (500, "INTERNAL", errors.ServerError),
                                                       (503, "UNAVAILABLE", errors.ServerError)])
def test_error_status(mock: MockUpstream, client: genai.Client, status: int, name: str,
                      error: type[errors.APIError]) -> None:
    mock.next_reply(status=status, error_message="it went wrong")
    with pytest.raises(error) as raised:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert (raised.value.code, raised.value.status, raised.value.message) == (status, name, "it went wrong")


@pytest.mark.parametrize(("error_type", "code", "error"), [(None, 503, errors.ServerError),
                                                           ("RESOURCE_EXHAUSTED", 429, errors.ClientError)])
def test_in_stream_error(mock: MockUpstream, client: genai.Client, error_type: str | None, code: int,
                         error: type[errors.APIError]) -> None:
    mock.next_reply(text="abcdefgh", error_after=2, error_type=error_type, error_message="high demand")
    texts: list[str | None] = []
    with pytest.raises(error) as raised:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            texts.append(chunk.text)
    assert texts == ["abcd", "efgh"]
    assert (raised.value.code, raised.value.message) == (code, "high demand")


def test_in_stream_error_in_the_json_array(mock: MockUpstream) -> None:
    mock.next_reply(text="abcdefgh", error_after=1, error_message="high demand")
    body = post(mock, {"contents": [user()]}, "streamGenerateContent").json()
    assert body[0]["candidates"][0]["content"]["parts"] == [{"text": "abcd"}]
    assert body[1:] == [{"error": {"code": 503, "message": "high demand", "status": "UNAVAILABLE"}}]


def test_cut_early_end_and_garbage(mock: MockUpstream, client: genai.Client) -> None:
    def read(**fault: Any) -> tuple[list[str | None], Exception | None]:
        mock.next_reply(text="abcdefgh", **fault)
        texts: list[str | None] = []
        try:
            for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
                texts.append(chunk.text)
        except Exception as e:  # the failure itself is what is checked
            return texts, e
        return texts, None

    texts, error = read(cut_after=1)
    assert texts == ["abcd"] and isinstance(error, httpx2.RemoteProtocolError)  # no chunked terminator
    texts, error = read(end_after=2)
    assert texts == ["abcd", "efgh"] and error is None  # ended cleanly, but no finishReason came
    texts, error = read(inject_after=1, inject=b"data: [DONE]\n\n")
    assert texts == ["abcd"] and isinstance(error, errors.UnknownApiResponseError)


# --- what the mock refuses, as the real API does --------------------------------------------------


@pytest.mark.parametrize(("schema", "where", "name"), [
    ({"$schema": "https://json-schema.org/draft/2020-12/schema"}, "", "$schema"),
    ({"additionalProperties": False}, "", "additionalProperties"),
    ({"properties": {"city": {"type": "string"}, "unit": {"const": "C"}}}, ".properties[1].value", "const"),
    ({"properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}}, ".properties[0].value",
     "exclusiveMinimum"),
    ({"properties": {"tags": {"type": "array", "items": {"type": "string", "propertyNames": {}}}}},
     ".properties[0].value.items", "propertyNames"),
])
def test_parameters_reject_unknown_schema_keywords(mock: MockUpstream, schema: dict[str, Any], where: str,
                                                   name: str) -> None:
    # gemini.md §6.5 / §5.2: `parameters` is the OpenAPI-subset Schema proto
    parameters = {"type": "object", **schema}
    at = f"tools[0].function_declarations[0].parameters{where}"
    response = post(mock, {"contents": [user()], **declare(parameters=parameters)})
    refused(response, f"Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
    assert response.json()["error"]["details"][0]["fieldViolations"][0]["field"] == at
    # …while parametersJsonSchema takes full JSON Schema
    accepted(post(mock, {"contents": [user()], **declare(parametersJsonSchema=parameters)}))


def test_parameters_accept_the_schema_subset(mock: MockUpstream) -> None:
    parameters = {"type": "OBJECT", "description": "d", "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome"], "nullable": True},
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "format": "int32"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "max_items": 3},
        "when": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
        "required": ["city"], "propertyOrdering": ["city", "days", "tags", "when"]}
    accepted(post(mock, {"contents": [user()], **declare(parameters=parameters)}))


def test_parameters_reject_type_lists_and_non_string_enums(mock: MockUpstream) -> None:
    at = "tools[0].function_declarations[0].parameters.properties[0].value"
    refused(post(mock, {"contents": [user()], **declare(parameters={
        "type": "object", "properties": {"city": {"type": ["string", "null"]}}})}),
        f"Invalid JSON payload received. Unknown name \"type\" at '{at}': Proto field is not repeating, "
        f"cannot start list.")
    refused(post(mock, {"contents": [user()], **declare(parameters={
        "type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2]}}})}),
        f"Invalid value at '{at}.enum[0]' (TYPE_STRING), 1\nInvalid value at '{at}.enum[1]' (TYPE_STRING), 2")
    accepted(post(mock, {"contents": [user()], **declare(parameters={
        "type": "object", "properties": {"level": {"type": "string", "enum": ["1", "2"]}}})}))


def test_parameters_json_schema_must_be_valid(mock: MockUpstream) -> None:
    # gemini.md §5.2, §6.5: a draft-04 boolean exclusiveMinimum is refused; a number is fine
    def schema(bound: object) -> dict[str, Any]:
        return {"type": "object", "properties": {"pages": {"anyOf": [
            {"type": "array", "items": {"type": "integer", "exclusiveMinimum": bound}}]}}}

    refused(post(mock, {"contents": [user()], **declare(parametersJsonSchema=schema(True))}),
            "value at properties.pages.anyOf.0.items.exclusiveMinimum must be a number")
    accepted(post(mock, {"contents": [user()], **declare(parametersJsonSchema=schema(0))}))


@pytest.mark.parametrize("name", ["1st_tool", "-tool", "get weather", "mcp/tool", "ns:tool", "x" * 65, ""])
def test_tool_names_gemini_refuses(mock: MockUpstream, name: str) -> None:
    # gemini.md §6.4: the live API's rule; several errors are reported together, one `*` line each
    body = {"contents": [user()], "tools": [{"functionDeclarations": [{"name": "ok"}, {"name": name}]}]}
    refused(post(mock, body), f"* GenerateContentRequest.tools[0].function_declarations[1].name: {BAD_NAME}\n")


@pytest.mark.parametrize("name", ["_tool", "get_weather", "get.weather-v2", "x" * 64, "A1"])
def test_tool_names_gemini_accepts(mock: MockUpstream, name: str) -> None:
    accepted(post(mock, {"contents": [user()], **declare(name)}))


@pytest.mark.parametrize("model", [MODEL, GEMINI_3])
def test_signature_required_in_the_current_turn(mock: MockUpstream, model: str) -> None:
    # gemini.md §7: the first functionCall of each model step of the current turn needs its signature
    config = {"generationConfig": THINKING} if model == MODEL else {}  # Gemini 3 always thinks
    unsigned = [user(), model_turn(call()), results(answer())]
    refused(post(mock, {"contents": unsigned, **config}, model=model),
            MISSING_SIGNATURE.format(name="get_weather", position=2))
    signed = [user(), model_turn(call(signature=SIGNED)), results(answer())]
    accepted(post(mock, {"contents": signed, **config}, model=model))
    sentinel = [user(), model_turn(call(signature=SKIP_SIGNATURE)), results(answer())]
    accepted(post(mock, {"contents": sentinel, **config}, model=model))


def test_signature_steps_parallel_calls_and_earlier_turns(mock: MockUpstream) -> None:
    thinking = {"generationConfig": THINKING}
    # a second step of the same turn needs its own signature: position 4 is contents[3]
    steps = [user(), model_turn(call(signature=SIGNED)), results(answer()),
             model_turn(call("get_time")), results(answer("get_time"))]
    refused(post(mock, {"contents": steps, **thinking}), MISSING_SIGNATURE.format(name="get_time", position=4))
    # parallel calls: only the first is signed, and only the first must be
    parallel = [user(), model_turn(call(signature=SIGNED), call("get_time")), results(answer(), answer("get_time"))]
    accepted(post(mock, {"contents": parallel, **thinking}))
    swapped = [user(), model_turn(call(), call("get_time", signature=SIGNED)), results(answer(), answer("get_time"))]
    refused(post(mock, {"contents": swapped, **thinking}), MISSING_SIGNATURE.format(name="get_weather", position=2))
    # an earlier turn is not validated: the current one starts at the last user text
    earlier = [user(), model_turn(call()), results(answer()), model_turn({"text": "Sunny."}), user("And Rome?"),
               model_turn(call(signature=SIGNED)), results(answer())]
    accepted(post(mock, {"contents": earlier, **thinking}))


@pytest.mark.parametrize("config", [{}, {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}],
                         ids=["no-thinking-config", "budget-0"])
def test_no_signature_needed_without_thinking(mock: MockUpstream, config: dict[str, Any]) -> None:
    accepted(post(mock, {"contents": [user(), model_turn(call()), results(answer())], **config}))


def test_sdk_chat_round_trip_keeps_the_signature(mock: MockUpstream, client: genai.Client) -> None:
    """The SDK sends the signature back URL-safe (gemini.md §2.2); the API, and the mock, take it."""
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.HIGH))
    chat = client.chats.create(model=GEMINI_3, config=config)
    mock.next_reply(text=None, tool_calls=[WEATHER], signature="opaque~~~?>?")  # base64 with "+" and "/"
    # read to the end: the chat keeps the turn in its history only then
    first = list(chat.send_message_stream("Weather in Paris?"))
    assert [fc.name for c in first for fc in c.function_calls or []] == ["get_weather"]
    mock.next_reply(text="Sunny.")
    response = types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
    assert "".join(c.text or "" for c in chat.send_message_stream(response)) == "Sunny."
    signed = [p["thoughtSignature"] for c in mock.last.json["contents"] for p in c["parts"]
              if "thoughtSignature" in p]
    assert signed == ["b3BhcXVlfn5-Pz4_"]  # the mock sent b3BhcXVlfn5+Pz4/
    assert base64.urlsafe_b64decode(signed[0]) == b"opaque~~~?>?"


@pytest.mark.parametrize("role", ["assistant", "system", "tool", "function", "USER"])
def test_roles_other_than_user_and_model(mock: MockUpstream, role: str) -> None:
    # gemini.md §2.3: "Must be either 'user' or 'model'"
    refused(post(mock, {"contents": [{"role": role, "parts": [{"text": "Hi"}]}]}),
            "Please use a valid role: user, model.")


def test_roles_user_model_and_none(mock: MockUpstream) -> None:
    accepted(post(mock, {"contents": [{"parts": [{"text": "Hi"}]}, model_turn({"text": "Hello."}), user()]}))


def test_contents_and_parts_must_be_there(mock: MockUpstream) -> None:
    # gemini.md §5.2, §2.3, §2.4
    for body in ({}, {"contents": []}, {"systemInstruction": {"parts": [{"text": "Be brief."}]}}):
        refused(post(mock, body), "* GenerateContentRequest.contents: contents is not specified\n")
    refused(post(mock, {"contents": [user(), {"role": "model", "parts": []}, user()]}),
            "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.\n")
    refused(post(mock, {"contents": [user(), model_turn({"thoughtSignature": SIGNED}, {"text": "Hi"}), user()]}),
            "* GenerateContentRequest.contents[1].parts[0].data: required oneof field 'data' must have one "
            "initialized field\n")
    accepted(post(mock, {"contents": [user(), model_turn({"text": "", "thoughtSignature": SIGNED}), user()]}))


def test_function_responses_must_answer_the_calls(mock: MockUpstream) -> None:
    # gemini.md §5.2, §6.1, §6.2, §9.5
    two_calls = model_turn(call(), call("get_time"))
    refused(post(mock, {"contents": [user(), two_calls, results(answer())]}),
            "Please ensure that the number of function response parts is equal to the number of function call "
            "parts of the function call turn.")
    refused(post(mock, {"contents": [user(), two_calls, results(answer(), answer("get_date"))]}),
            "Request contains an invalid argument.")
    refused(post(mock, {"contents": [user(), model_turn({"text": "Let me see."}), results(answer())]}),
            "Please ensure that function response turn comes immediately after a function call turn.")
    refused(post(mock, {"contents": [user(), model_turn(call()), results(answer(name=""))]}),
            "* GenerateContentRequest.contents[2].parts[0].function_response.name: Name cannot be empty.\n")
    # in any order, with ids the API never issued (Gemini CLI invents them), text after the results
    accepted(post(mock, {"contents": [user(), model_turn(call(id="x1"), call("get_time", id="x2")),
                                      results(answer("get_time", id="x2"), answer(id="x1"), {"text": "Go on."})]}))


def test_unknown_fields_are_refused_at_every_level(mock: MockUpstream) -> None:
    # gemini.md §2.1, §10: the model and the stream flag live in the path; the proto parser knows no other names
    response = post(mock, {"contents": [user()], "stream": True, "max_tokens": 5})
    refused(response, 'Invalid JSON payload received. Unknown name "stream": Cannot find field.\n'
                      'Invalid JSON payload received. Unknown name "max_tokens": Cannot find field.')
    assert response.json()["error"]["details"][0]["fieldViolations"] == [
        {"description": 'Invalid JSON payload received. Unknown name "stream": Cannot find field.'},
        {"description": 'Invalid JSON payload received. Unknown name "max_tokens": Cannot find field.'}]
    refused(post(mock, {"contents": [user()], "generationConfig": {"max_tokens": 5}}),
            "Invalid JSON payload received. Unknown name \"max_tokens\" at 'generation_config': Cannot find field.")
    # the signature belongs beside functionCall, not inside it (gemini.md §2.4)
    inside = [user(), model_turn(call(thought_signature=SIGNED)), results(answer())]
    refused(post(mock, {"contents": inside}), "Invalid JSON payload received. Unknown name \"thought_signature\" "
                                              "at 'contents[1].parts[0].function_call': Cannot find field.")
    refused(post(mock, {"contents": [{"role": "user", "content": "Hi"}]}),
            "Invalid JSON payload received. Unknown name \"content\" at 'contents[0]': Cannot find field.")


def test_camel_and_snake_case_are_both_read(mock: MockUpstream) -> None:
    # gemini.md §2.2: both spellings at every level (google-genai sends snake_case below the top level)
    signed_call = {"function_call": {"name": "get_weather", "args": {}}, "thought_signature": SIGNED}
    snake = {"contents": [user(), model_turn(signed_call),
                          results({"function_response": {"name": "get_weather", "response": {"output": "x"}}})],
             "system_instruction": {"parts": [{"text": "Be brief."}]},
             "generation_config": {"max_output_tokens": 50, "top_k": 40.0,
                                   "thinking_config": {"include_thoughts": True, "thinking_budget": 1024}},
             "tool_config": {"function_calling_config": {"mode": "AUTO"}},
             "tools": [{"function_declarations": [{"name": "get_weather", "parameters_json_schema": {
                 "type": "object", "additionalProperties": False, "$schema": "x"}}]}]}
    accepted(post(mock, snake))
    # the snake_case signature counts as the signature, so the same body without it is refused
    signed_call.pop("thought_signature")
    refused(post(mock, snake), MISSING_SIGNATURE.format(name="get_weather", position=2))
    # a name that is neither spelling is unknown
    refused(post(mock, {"contents": [user()], "generationConfig": {"MaxOutputTokens": 5}}),
            "Invalid JSON payload received. Unknown name \"MaxOutputTokens\" at 'generation_config': "
            "Cannot find field.")


def test_bytes_must_be_base64(mock: MockUpstream) -> None:
    # gemini.md §2.2: bytes fields take standard or URL-safe base64; anything else fails to parse
    contents = [user(), model_turn(call(signature="opaque-payload-Zm9vYmFy+/==!")), results(answer())]
    refused(post(mock, {"contents": contents}),
            "Invalid value at 'contents[1].parts[0].thought_signature' (TYPE_BYTES), Base64 decoding failed for "
            "\"opaque-payload-Zm9vYmFy+/==!\"")
    for signature in (SIGNED, "bW9jay1zaWduYXR1cmU", "-vv8_f7_APvv", SKIP_SIGNATURE):
        accepted(post(mock, {"contents": [user(), model_turn(call(signature=signature)), results(answer())]}))


def test_api_key_when_required(mock: MockUpstream, client: genai.Client) -> None:
    # gemini.md §1.2: x-goog-api-key, ?key= or a bearer token; a wrong key is 400, not 401
    mock.gemini_api_key = KEY
    body = {"contents": [user()]}
    refused(post(mock, body, headers={}),
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
            "or other form of API consumer identity to call this API.", 403, "PERMISSION_DENIED")
    wrong = post(mock, body, headers={"x-goog-api-key": "wrong-key"})
    refused(wrong, "API key not valid. Please pass a valid API key.")
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    accepted(post(mock, body))
    accepted(post(mock, body, query=f"?key={KEY}", headers={}))
    accepted(post(mock, body, headers={"authorization": f"Bearer {KEY}"}))
    assert client.models.generate_content(model=MODEL, contents="Hi").text == "Hello from the mock."
    assert httpx.get(f"{mock.url}/v1beta/models", timeout=10).status_code == 403
    other = genai.Client(api_key="wrong-key", http_options=types.HttpOptions(base_url=mock.url))
    with pytest.raises(errors.ClientError) as raised:
        other.models.generate_content(model=MODEL, contents="Hi")
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")


def test_any_key_when_not_required(mock: MockUpstream) -> None:
    accepted(post(mock, {"contents": [user()]}, headers={}))


def test_refused_request_takes_no_scripted_reply(mock: MockUpstream) -> None:
    mock.next_reply(text="kept for the good request")
    refused(post(mock, {"contents": [{"role": "assistant", "parts": [{"text": "Hi"}]}]}),
            "Please use a valid role: user, model.")
    body = accepted(post(mock, {"contents": [user()]}))
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "kept for the good request"
    assert len(mock.requests) == 2  # both recorded


def test_not_json(mock: MockUpstream) -> None:
    response = httpx.post(f"{mock.url}/v1beta/models/{MODEL}:generateContent", content=b"{nope",
                          headers={"x-goog-api-key": KEY, "content-type": "application/json"}, timeout=10)
    refused(response, "Invalid JSON payload received. Unexpected token.")
