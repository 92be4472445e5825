"""The official SDKs as oracles: what the bridge emits must be what their helpers accept.

No network: each SDK client gets an ``httpx2`` client (the HTTP library the SDKs use here) whose
``MockTransport`` answers every request with the bytes under test. Streams go through
``client.chat.completions.stream(...).get_final_completion()`` and
``client.messages.stream(...).get_final_message()``, the helpers whose checks formats.md §4.2/§4.3
describe; non-streamed bodies and error bodies go through the plain ``create`` calls. For a Gemini client
google-genai 3.3.0 reads what the bridge translates from every upstream format: streams through
``models.generate_content_stream`` and its chat helper (gemini.md §4.4), whole answers and errors through
``models.generate_content``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes
from hypothesis import given, settings
from hypothesis import strategies as st

from addon import translate
from addon.errors import BridgeError, ErrorKind, UpstreamError
from addon.formats import Operation
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import gemini as G
from addon.formats import responses as R
from addon.formats.common import Context, decode_signature, safe_tool_id
from addon.ir import (
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    MessageStart,
    Opaque,
    Request,
    StopReason,
    StreamError,
    ToolKind,
    Usage,
    UsageUpdate,
)
from tests import mock_upstream as mu
from tests.test_stream_split import (
    A_CALLS,
    A_OUTPUT_TOKENS,
    A_RAW,
    A_RAW_ERROR,
    A_SIGNATURE,
    A_TEXT,
    A_THINKING,
    A_USAGE_START,
    ANTHROPIC_BODY,
    ANTHROPIC_CLIENT_BODY,
    C_CALLS,
    C_RAW,
    C_RAW_ERROR,
    C_REASONING,
    C_TEXT,
    C_USAGE,
    CHAT_CLIENT_BODY,
    MID_STREAM_ERRORS,
)

SSE = "text/event-stream"
JSON = "application/json"


def http_client(body: bytes, content_type: str = SSE, status: int = 200) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_client(body: bytes, content_type: str = SSE, status: int = 200) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://test/v1", api_key="x", max_retries=0,
                         http_client=http_client(body, content_type, status))


def anthropic_client(body: bytes, content_type: str = SSE, status: int = 200) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url="http://test", api_key="x", max_retries=0,
                               http_client=http_client(body, content_type, status))


def final_completion(raw: bytes) -> Any:
    with openai_client(raw).chat.completions.stream(model="gpt-client", messages=[{"role": "user", "content": "q"}]) \
            as stream:
        return stream.get_final_completion()


def final_message(raw: bytes) -> Any:
    with anthropic_client(raw).messages.stream(model="claude-client", max_tokens=100,
                                               messages=[{"role": "user", "content": "q"}]) as stream:
        return stream.get_final_message()


def make_ctx(request: Request | None = None) -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):04d}", created=1_700_000_000, request=request,
                   client_model=request.model if request else None)


def exchange(client: Any, upstream: Any, body: dict[str, Any], op: Operation | None = None) -> translate.Exchange:
    """``op``: what the path says (a Gemini client's model, stream flag and framing)."""
    return translate.Exchange.start(client, upstream, json.dumps(body).encode(), make_ctx(), op=op)[0]


def translate_stream(client: Any, upstream: Any, body: dict[str, Any], raw: bytes, op: Operation | None = None
                     ) -> bytes:
    translator = exchange(client, upstream, body, op).stream()
    return b"".join(translator.feed(raw) + translator.close())


# --- OpenAI SDK: Anthropic upstream → Chat client ---------------------------------------------------


def test_openai_sdk_accepts_translated_anthropic_stream() -> None:
    completion = final_completion(translate_stream(C, A, CHAT_CLIENT_BODY, A_RAW))
    choice = completion.choices[0]
    assert completion.id.startswith("chatcmpl-") and completion.model == CHAT_CLIENT_BODY["model"]
    assert choice.message.role == "assistant"
    assert choice.message.content == "".join(A_TEXT)
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == \
        [(id_, "function", name, "".join(frags)) for id_, name, frags in A_CALLS]
    extra = choice.message.model_extra or {}
    assert extra["reasoning_content"] == "".join(A_THINKING)
    assert [(b["type"], b["thinking"], b["signature"]) for b in extra["thinking_blocks"]] == \
        [("thinking", "".join(A_THINKING), A_SIGNATURE)]
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == A_USAGE_START["input_tokens"] + A_USAGE_START["cache_read_input_tokens"] \
        + A_USAGE_START["cache_creation_input_tokens"]
    assert usage.prompt_tokens_details.cached_tokens == A_USAGE_START["cache_read_input_tokens"]
    assert usage.completion_tokens == A_OUTPUT_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_sdk_without_include_usage_gets_no_usage() -> None:
    body = {**CHAT_CLIENT_BODY}
    del body["stream_options"]
    completion = final_completion(translate_stream(C, A, body, A_RAW))
    assert completion.usage is None
    assert completion.choices[0].message.content == "".join(A_TEXT)


def test_openai_sdk_raises_on_translated_mid_stream_error() -> None:
    raw = translate_stream(C, A, CHAT_CLIENT_BODY, A_RAW_ERROR)
    with pytest.raises(openai.APIError, match="Overloaded — réessayez"):
        final_completion(raw)


def test_openai_sdk_length_finish_raises_as_documented() -> None:
    """formats.md §4.3: finish_reason "length" makes get_final_completion() raise, by design."""
    events = [MessageStart(id="msg_1", model="claude"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="cut off"), BlockStop(block_id=0),
              UsageUpdate(usage=Usage(input_tokens=5, output_tokens=100)),
              Finish(stop_reason=StopReason.MAX_TOKENS, raw_stop_reason="max_tokens")]
    emitter = C.StreamEmitter(make_ctx())
    raw = b"".join(b for ev in events for b in emitter.feed(ev))
    with pytest.raises(openai.LengthFinishReasonError):
        final_completion(raw)


def test_openai_sdk_iterates_length_stream_with_usage() -> None:
    events = [MessageStart(id="msg_1", model="claude"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="cut off"), BlockStop(block_id=0),
              UsageUpdate(usage=Usage(input_tokens=5, output_tokens=100)),
              Finish(stop_reason=StopReason.MAX_TOKENS, raw_stop_reason="max_tokens")]
    emitter = C.StreamEmitter(make_ctx())
    raw = b"".join(b for ev in events for b in emitter.feed(ev))
    with openai_client(raw).chat.completions.stream(model="m", messages=[{"role": "user", "content": "q"}]) as s:
        for _ in s:
            pass
        snapshot = s.current_completion_snapshot
    assert snapshot.choices[0].finish_reason == "length"
    assert snapshot.choices[0].message.content == "cut off"
    assert snapshot.usage is not None and snapshot.usage.completion_tokens == 100


def test_openai_sdk_parses_non_streamed_translation() -> None:
    body = {**CHAT_CLIENT_BODY, "stream": False}
    del body["stream_options"]
    status, content_type, out = exchange(C, A, body).translate_body(200, JSON, json.dumps(ANTHROPIC_BODY).encode())
    assert status == 200 and content_type == JSON
    completion = openai_client(out, JSON).chat.completions.create(model="gpt-client",
                                                                  messages=[{"role": "user", "content": "q"}])
    message = completion.choices[0].message
    assert message.content == "".join(A_TEXT)
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == \
        [json.loads("".join(frags)) for _, _, frags in A_CALLS]
    assert [c.id for c in message.tool_calls] == [id_ for id_, _, _ in A_CALLS]
    assert (message.model_extra or {})["reasoning_content"] == "".join(A_THINKING)
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == A_OUTPUT_TOKENS


@pytest.mark.parametrize(("err", "exc", "status"), [
    (UpstreamError("Overloaded", status=529, kind=ErrorKind.OVERLOADED), openai.InternalServerError, 503),
    (UpstreamError("slow down", status=429), openai.RateLimitError, 429),
    (UpstreamError("bad key", status=401), openai.AuthenticationError, 401),
    (BridgeError("n: only n=1", status=400, kind=ErrorKind.INVALID_REQUEST, param="n"), openai.BadRequestError, 400),
])
def test_openai_sdk_raises_rendered_errors(err: BridgeError, exc: type[openai.APIStatusError], status: int) -> None:
    got_status, body = C.render_error(err)
    client = openai_client(json.dumps(body).encode(), JSON, got_status)
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert info.value.status_code == status
    assert err.message in info.value.message
    assert isinstance(info.value.body, dict) and info.value.body.get("param") == err.param


# --- Anthropic SDK: Chat upstream → Anthropic client -------------------------------------------------


def test_anthropic_sdk_accepts_translated_chat_stream() -> None:
    message = final_message(translate_stream(A, C, ANTHROPIC_CLIENT_BODY, C_RAW))
    assert message.id.startswith("msg_") and message.model == ANTHROPIC_CLIENT_BODY["model"]
    assert message.role == "assistant" and message.stop_reason == "tool_use"
    thinking, text, *calls = message.content
    assert thinking.type == "thinking" and thinking.thinking == "".join(C_REASONING)
    assert thinking.signature.startswith("bridge1.")
    assert text.type == "text" and text.text == "".join(C_TEXT)
    client_names = [t["name"] for t in ANTHROPIC_CLIENT_BODY["tools"]]
    assert [(c.type, c.id, c.name, c.input) for c in calls] == [
        ("tool_use", safe_tool_id(id_), name, json.loads("".join(frags)))
        for (id_, _, frags), name in zip(C_CALLS, client_names, strict=True)]
    cached = C_USAGE["prompt_tokens_details"]["cached_tokens"]
    assert message.usage.input_tokens == C_USAGE["prompt_tokens"] - cached
    assert message.usage.cache_read_input_tokens == cached
    assert message.usage.output_tokens == C_USAGE["completion_tokens"]


def test_anthropic_sdk_raises_on_translated_mid_stream_error() -> None:
    raw = translate_stream(A, C, ANTHROPIC_CLIENT_BODY, C_RAW_ERROR)
    with pytest.raises(anthropic.APIStatusError, match="Internal error — désolé"):
        final_message(raw)


def test_anthropic_sdk_accepts_redacted_thinking_and_custom_tools() -> None:
    request = Request(model="claude-client", messages=())
    events = [
        MessageStart(id="resp_1", model="gpt-5", usage=Usage(input_tokens=11)),
        BlockStart(block_id=0, kind=BlockKind.REASONING, redacted=True),
        BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="EmwKAhgBredacted")),
        BlockStart(block_id=1, kind=BlockKind.REASONING), BlockDelta(block_id=1, text="plan"),
        BlockStop(block_id=1, opaque=Opaque(origin="anthropic", data="SIG")),
        BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_1", tool_name="apply_patch",
                   tool_kind=ToolKind.CUSTOM),
        BlockDelta(block_id=2, text='*** Begin Patch\n+ "quoted" — ü\n'), BlockDelta(block_id=2, text="*** End Patch"),
        BlockStop(block_id=2),
        UsageUpdate(usage=Usage(output_tokens=33)),
        Finish(stop_reason=StopReason.TOOL_USE),
    ]
    emitter = A.StreamEmitter(make_ctx(request))
    message = final_message(b"".join(b for ev in events for b in emitter.feed(ev)))
    redacted, thinking, patch = message.content
    assert redacted.type == "redacted_thinking" and redacted.data == "EmwKAhgBredacted"
    assert (thinking.thinking, thinking.signature) == ("plan", "SIG")
    assert patch.type == "tool_use" and patch.input == {"input": '*** Begin Patch\n+ "quoted" — ü\n*** End Patch'}
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 33


def test_anthropic_sdk_parses_non_streamed_translation() -> None:
    chunks_body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "usage": C_USAGE,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "".join(C_TEXT), "reasoning_content": "".join(C_REASONING),
            "tool_calls": [{"id": id_, "type": "function", "function": {"name": name, "arguments": "".join(frags)}}
                           for id_, name, frags in C_CALLS]}}]}
    body = {**ANTHROPIC_CLIENT_BODY, "stream": False}
    status, content_type, out = exchange(A, C, body).translate_body(200, JSON, json.dumps(chunks_body).encode())
    assert status == 200 and content_type == JSON
    message = anthropic_client(out, JSON).messages.create(model="claude-client", max_tokens=10,
                                                          messages=[{"role": "user", "content": "q"}])
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[1].text == "".join(C_TEXT)
    assert [b.name for b in message.content[2:]] == [t["name"] for t in ANTHROPIC_CLIENT_BODY["tools"]]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == C_USAGE["completion_tokens"]


@pytest.mark.parametrize(("err", "exc", "status"), [
    (UpstreamError("slow down", status=503, kind=ErrorKind.OVERLOADED), anthropic.OverloadedError, 529),
    (UpstreamError("slow down", status=429), anthropic.RateLimitError, 429),
    (BridgeError("bad", status=400, kind=ErrorKind.INVALID_REQUEST), anthropic.BadRequestError, 400),
    (UpstreamError("boom", status=500), anthropic.InternalServerError, 500),
])
def test_anthropic_sdk_raises_rendered_errors(err: BridgeError, exc: type[anthropic.APIStatusError],
                                              status: int) -> None:
    got_status, body = A.render_error(err)
    client = anthropic_client(json.dumps(body).encode(), JSON, got_status)
    with pytest.raises(exc) as info:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "q"}])
    assert info.value.status_code == status
    assert err.message in str(info.value)


def test_anthropic_sdk_raises_on_emitted_error_event() -> None:
    emitter = A.StreamEmitter(make_ctx())
    events = [MessageStart(id="msg_1", model="m"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="par"), StreamError(status=529, kind=ErrorKind.OVERLOADED, message="busy")]
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        final_message(b"".join(b for ev in events for b in emitter.feed(ev)))


# --- google-genai 3.3.0: every upstream → Gemini client ----------------------------------------------
# The SDK reads a stream with HttpResponse._iter_response_stream and each chunk, like a whole answer, with
# GenerateContentResponse._from_response (models.py, gemini.md §4.4): what it refuses raises here. It cannot
# read the JSON array a stream without ``alt=sse`` is answered with (§4.2): the array's elements are checked
# one by one through the same reader. One reply, rendered by each upstream's mock, with its usage in that
# upstream's words; what the Gemini client must see follows from gemini.md §9.8 (usage) and §7 (signatures).

GEMINI_REPLY = mu.Reply(text="héllo 🌍 — “quoted”\u2028next line", reasoning="Plan: weather, then time 🤔",
                        signature="EqQBCkgIARABGAIiQL+/sig==", piece=5, gemini_ids=True,
                        tool_calls=(mu.ToolCallSpec("call_w1", "get_weather", {"city": "Zürich", "days": [1, 2]}),
                                    mu.ToolCallSpec("call_t2", "get_time", {})))
# prompt 100 (30 cached), output 50 (20 of it thinking), in each API's words
GEMINI_USAGES: dict[str, dict[str, Any]] = {
    "anthropic": {"input_tokens": 70, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0,
                  "output_tokens": 50},  # no thinking count in Anthropic's usage
    "chat": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
             "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 20}},
    "responses": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 30}, "output_tokens": 50,
                  "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 150},
    "gemini": {"promptTokenCount": 100, "cachedContentTokenCount": 30, "candidatesTokenCount": 30,
               "thoughtsTokenCount": 20, "totalTokenCount": 150},
}
_THOUGHTS = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}  # the Gemini mock's thought parts
GEMINI_UPSTREAMS: dict[str, tuple[Any, Callable[[mu.Reply], list[bytes]], Callable[[mu.Reply], dict[str, Any]]]] = {
    "anthropic": (A, mu.anthropic_events, mu.anthropic_body),
    "chat": (C, lambda r: mu.chat_events(r, include_usage=True), mu.chat_body),
    "responses": (R, lambda r: mu.responses_events(r, {"stream": True}), mu.responses_body),
    "gemini": (G, lambda r: mu.gemini_events(mu.gemini_chunks(r, _THOUGHTS), sse=True),
               lambda r: mu.gemini_body(r, _THOUGHTS)),
}
GEMINI_CLIENT_BODY = {"contents": [{"role": "user", "parts": [{"text": "Weather and time in Zürich?"}]}],
                      "tools": [{"functionDeclarations": [{"name": c.name, "parametersJsonSchema": {"type": "object"}}
                                                          for c in GEMINI_REPLY.tool_calls]}]}


def gemini_op(stream: bool = True, framing: str = "sse") -> Operation:
    return Operation("gemini", "generate", model="gemini-client", stream=stream, framing=framing)


def genai_client(body: bytes, content_type: str = SSE, status: int = 200) -> genai.Client:
    """google-genai answered with ``body`` until the next call; one client for all (making one takes 50 ms)."""
    client, answer = _genai()
    answer[:] = [(status, content_type, body)]
    return client


@functools.cache
def _genai() -> tuple[genai.Client, list[tuple[int, str, bytes]]]:
    answer: list[tuple[int, str, bytes]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        status, content_type, body = answer[0]
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    client = genai.Client(api_key="x", http_options=gtypes.HttpOptions(
        base_url="http://test", api_version="v1beta",
        httpx_client=httpx2.Client(transport=httpx2.MockTransport(handler))))
    return client, answer


def genai_stream(raw: bytes) -> list[gtypes.GenerateContentResponse]:
    return list(genai_client(raw).models.generate_content_stream(model="gemini-client", contents="q"))


def genai_array(raw: bytes) -> list[gtypes.GenerateContentResponse]:
    """A JSON-array stream's elements, each read as the SDK reads a chunk (it has no reader for the array)."""
    elements = json.loads(raw)
    assert isinstance(elements, list) and raw.startswith(b"[") and raw.endswith(b"]")
    return genai_stream(b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in elements))


def genai_parts(chunks: list[gtypes.GenerateContentResponse]) -> list[gtypes.Part]:
    """The parts of every chunk's candidate, in order; each chunk must have one with content."""
    parts: list[gtypes.Part] = []
    for chunk in chunks:
        assert chunk.candidates and chunk.candidates[0].content, chunk
        parts += chunk.candidates[0].content.parts or ()
    return parts


def gemini_reply_from(upstream: str) -> mu.Reply:
    return dataclasses.replace(GEMINI_REPLY, usage=GEMINI_USAGES[upstream])


def check_gemini_answer(chunks: list[gtypes.GenerateContentResponse], upstream: str) -> None:
    """What the SDK read is the upstream's reply: text, thoughts, calls, finish reason, usage, signature."""
    reply = gemini_reply_from(upstream)
    parts = genai_parts(chunks)
    assert "".join(p.text for p in parts if p.text and not p.thought) == reply.text
    assert "".join(p.text for p in parts if p.text and p.thought) == reply.reasoning
    calls = [p.function_call for p in parts if p.function_call]
    assert [(c.id, c.name, c.args) for c in calls] == [(c.id, c.name, c.arguments) for c in reply.tool_calls]
    assert {(c.model_version, c.response_id) for c in chunks} == {("gemini-client", chunks[0].response_id)}
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates]
    assert finishes == [None] * (len(chunks) - 1) + [gtypes.FinishReason.STOP]  # STOP with calls, on the last
    last = chunks[-1]
    usage = last.usage_metadata
    thoughts = None if upstream == "anthropic" else 20
    assert usage is not None and (usage.prompt_token_count, usage.cached_content_token_count,
                                  usage.thoughts_token_count, usage.total_token_count) == (100, 30, thoughts, 150)
    assert usage.candidates_token_count == 50 - (thoughts or 0)
    # The signature rides on the first call (gemini.md §7): Gemini's own as sent, another's in the bridge's
    # carrier with its reasoning text (the SDK decodes base64 to bytes; the carrier is a JSON list).
    signatures = [p.thought_signature for p in parts if p.thought_signature]
    first_call = next(p for p in parts if p.function_call)
    assert signatures == [first_call.thought_signature]
    signature = first_call.thought_signature or b""
    if upstream == "gemini":
        assert signature == reply.signature.encode()
    else:
        [(envelope, text)] = json.loads(signature)
        carried = "" if upstream == "chat" else reply.signature  # Chat's reasoning_content has no payload
        assert decode_signature(envelope, "gemini") == Opaque(origin=upstream, data=carried)
        assert text == reply.reasoning


@pytest.mark.parametrize("framing", ["sse", "json-array"])
@pytest.mark.parametrize("upstream", list(GEMINI_UPSTREAMS))
def test_genai_sdk_reads_translated_streams(upstream: str, framing: str) -> None:
    module, events, _ = GEMINI_UPSTREAMS[upstream]
    raw = b"".join(events(gemini_reply_from(upstream)))
    out = translate_stream(G, module, GEMINI_CLIENT_BODY, raw, gemini_op(framing=framing))
    check_gemini_answer(genai_stream(out) if framing == "sse" else genai_array(out), upstream)


@pytest.mark.parametrize("upstream", list(GEMINI_UPSTREAMS))
def test_genai_chat_helper_keeps_translated_turns(upstream: str) -> None:
    """The chat helper keeps a turn only if every chunk has parts and one has a finishReason (gemini.md §4.4);
    a turn it drops goes missing from the next request. It keeps one model content per chunk (§2.3)."""
    module, events, _ = GEMINI_UPSTREAMS[upstream]
    out = translate_stream(G, module, GEMINI_CLIENT_BODY, b"".join(events(gemini_reply_from(upstream))), gemini_op())
    chat = genai_client(out).chats.create(model="gemini-client")
    chunks = list(chat.send_message_stream("q"))
    history = chat.get_history(curated=True)
    assert [c.role for c in history] == ["user"] + ["model"] * len(chunks)
    calls = [p.function_call.name for c in history[1:] for p in c.parts or () if p.function_call]
    assert calls == [c.name for c in GEMINI_REPLY.tool_calls]


@pytest.mark.parametrize("upstream", list(GEMINI_UPSTREAMS))
def test_genai_sdk_parses_non_streamed_translations(upstream: str) -> None:
    module, _, body = GEMINI_UPSTREAMS[upstream]
    status, content_type, out = exchange(G, module, GEMINI_CLIENT_BODY, gemini_op(stream=False)).translate_body(
        200, JSON, json.dumps(body(gemini_reply_from(upstream))).encode())
    assert status == 200 and content_type == JSON
    check_gemini_answer([genai_client(out, JSON).models.generate_content(model="gemini-client", contents="q")],
                        upstream)


@pytest.mark.parametrize("upstream", list(MID_STREAM_ERRORS))
def test_genai_sdk_raises_on_translated_mid_stream_error(upstream: str) -> None:
    """After the text, the SDK raises its error for the code (gemini.md §4.4): ServerError for a 5xx."""
    module, raw, text, error = MID_STREAM_ERRORS[upstream]
    client = genai_client(translate_stream(G, module, GEMINI_CLIENT_BODY, raw, gemini_op()))
    got: list[str] = []
    with pytest.raises(genai_errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(model="gemini-client", contents="q"):
            got += [p.text for p in genai_parts([chunk]) if p.text and not p.thought]
    assert "".join(got) == text
    assert (info.value.code, info.value.status, info.value.message) == (error["code"], error["status"],
                                                                        error["message"])


@pytest.mark.parametrize(("err", "exc", "status", "name"), [
    (UpstreamError("Overloaded", status=529, kind=ErrorKind.OVERLOADED), genai_errors.ServerError, 503, "UNAVAILABLE"),
    (UpstreamError("slow down", status=429), genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
    (UpstreamError("bad key", status=401), genai_errors.ClientError, 401, "UNAUTHENTICATED"),
    (UpstreamError("boom", status=500), genai_errors.ServerError, 500, "INTERNAL"),
    (BridgeError("n: only 1", status=400, kind=ErrorKind.INVALID_REQUEST, param="generationConfig.candidateCount"),
     genai_errors.ClientError, 400, "INVALID_ARGUMENT"),
])
def test_genai_sdk_raises_rendered_errors(err: BridgeError, exc: type[genai_errors.APIError], status: int,
                                          name: str) -> None:
    got_status, body = G.render_error(err)
    with pytest.raises(exc) as info:
        genai_client(json.dumps(body).encode(), JSON, got_status).models.generate_content(model="m", contents="q")
    assert (info.value.code, info.value.status, info.value.message) == (status, name, err.message)

# --- any text survives emitter → SDK (JSON escapes, U+2028, NEL, CR/LF, astral characters) -----------

_texts = st.lists(st.text(max_size=12), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(texts=_texts, reasoning=_texts, args=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_sdks_reassemble_any_text(texts: list[str], reasoning: list[str], args: dict[str, str]) -> None:
    """Real parsers never open an empty text or reasoning block, so neither does this event list."""
    arguments = json.dumps(args, ensure_ascii=False)
    text, thought = "".join(texts), "".join(reasoning)
    events: list[Any] = [MessageStart(id="msg_p", model="m", usage=Usage(input_tokens=3))]
    if thought:
        events += [BlockStart(block_id=0, kind=BlockKind.REASONING),
                   *(BlockDelta(block_id=0, text=t) for t in reasoning),
                   BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="SIG"))]
    if text:
        events += [BlockStart(block_id=1, kind=BlockKind.TEXT), *(BlockDelta(block_id=1, text=t) for t in texts),
                   BlockStop(block_id=1)]
    events += [BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_1", tool_name="f"),
               *(BlockDelta(block_id=2, text=arguments[i:i + 5]) for i in range(0, len(arguments), 5)),
               BlockStop(block_id=2), UsageUpdate(usage=Usage(output_tokens=9)),
               Finish(stop_reason=StopReason.TOOL_USE)]
    chat = C.StreamEmitter(make_ctx())
    message = final_completion(b"".join(b for ev in events for b in chat.feed(ev))).choices[0].message
    assert (message.content or "") == text
    assert (message.model_extra or {}).get("reasoning_content", "") == thought
    assert json.loads(message.tool_calls[0].function.arguments) == args

    claude = A.StreamEmitter(make_ctx())
    final = final_message(b"".join(b for ev in events for b in claude.feed(ev)))
    assert [b.type for b in final.content] == ["thinking"] * bool(thought) + ["text"] * bool(text) + ["tool_use"]
    by_type = {b.type: b for b in final.content}
    assert by_type["tool_use"].input == args
    if thought:
        assert by_type["thinking"].thinking == thought
    if text:
        assert by_type["text"].text == text

    for framing, read in (("sse", genai_stream), ("json-array", genai_array)):
        gemini = G.StreamEmitter(dataclasses.replace(make_ctx(), framing=framing))
        chunks = read(b"".join(b for ev in events for b in gemini.feed(ev)))
        parts = genai_parts(chunks)
        assert "".join(p.text for p in parts if p.text and not p.thought) == text
        assert "".join(p.text for p in parts if p.text and p.thought) == thought
        assert [p.function_call.args for p in parts if p.function_call] == [args]
