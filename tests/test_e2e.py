"""End to end: the official SDKs talk to a real ``mitmdump`` running the bridge, in front of the mock.

Direction 1 (``a2c``): an Anthropic Messages client, an endpoint with only ``url_openai`` (Chat upstream).
Direction 2 (``c2a``): an OpenAI Chat client, an endpoint with only ``url_anthropic`` (Anthropic upstream).
Same-format requests pass through. Every streamed client response is also checked against its
format's grammar, from the raw bytes the SDK received (a tee in the SDK's HTTP transport).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, BridgeProcess
from tests.mock_upstream import MockUpstream, Recorded, ToolCallSpec

A_MODEL = "claude-client-model"  # what the Anthropic client asks for
C_MODEL = "gpt-client-model"  # what the OpenAI client asks for
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
JPEG_B64 = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHR8eHR0aHBwgJC4nICIsIxwc"
IMAGE_URL = "https://example.com/cat.jpg"
TEXT = "Hello, wörld! Ünïcode ✓ and more words to split"

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "schema": {"type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string"}},
                      "required": ["city"]}}
CLOCK = {"name": "get_time", "description": "Local time in a time zone",
         "schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
A_TOOLS = [{"name": t["name"], "description": t["description"], "input_schema": t["schema"]} for t in (WEATHER, CLOCK)]
C_TOOLS = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                             "parameters": t["schema"]}} for t in (WEATHER, CLOCK)]


# --- a tee in the SDK's HTTP transport: the raw bytes each client received -----------------------


@dataclass
class Captured:
    status: int
    headers: httpx2.Headers
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _Tee(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, sink: list[bytes]) -> None:
        self._inner, self._sink = inner, sink

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._sink.append(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class RecordingTransport(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.captured: list[Captured] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        cap = Captured(response.status_code, response.headers)
        self.captured.append(cap)
        response.stream = _Tee(response.stream, cap.chunks)  # type: ignore[arg-type]
        return response

    @property
    def last_body(self) -> bytes:
        return self.captured[-1].body


def anthropic_client(bridge: BridgeProcess) -> tuple[anthropic.Anthropic, RecordingTransport]:
    transport = RecordingTransport()
    client = anthropic.Anthropic(base_url=bridge.url, api_key=CLIENT_KEY, max_retries=0, timeout=20,
                                 http_client=httpx2.Client(transport=transport))
    return client, transport


def openai_client(bridge: BridgeProcess) -> tuple[openai.OpenAI, RecordingTransport]:
    transport = RecordingTransport()
    client = openai.OpenAI(base_url=bridge.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20,
                           http_client=httpx2.Client(transport=transport))
    return client, transport


# --- stream grammars, checked on the raw client bytes --------------------------------------------


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; every event must end with a blank line."""
    assert raw.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")), f"the body does not end with a blank line: {raw[-40:]!r}"
    events: list[tuple[str | None, str]] = []
    name: str | None = None
    data: list[str] = []
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8"))[:-1]:  # the last split is after the final EOL
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = None, []
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return events


_DELTA_BLOCK = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "thinking",
                "input_json_delta": "tool_use"}


def check_anthropic_stream(raw: bytes, *, error: bool = False) -> list[dict[str, Any]]:
    """Anthropic grammar: one message_start first, blocks 0..n-1 one at a time, each delta inside its
    started block of the matching type, every block stopped, message_delta (with usage) then
    message_stop last; or, with ``error``, an ``error`` event last and no message_stop."""
    events = sse_events(raw)
    datas = []
    for name, data in events:
        obj = json.loads(data)
        assert name == obj["type"], f"event name {name!r} differs from data type {obj['type']!r}"
        if name != "ping":
            datas.append(obj)
    assert datas and datas[0]["type"] == "message_start", [d["type"] for d in datas]
    blocks: list[str] = []
    open_index: int | None = None
    tail: list[str] = []
    for d in datas[1:]:
        kind = d["type"]
        assert kind != "message_start", "a second message_start"
        if kind == "error":
            tail.append(kind)
            continue
        assert not tail or tail == ["message_delta"], f"{kind} after {tail}"
        if kind == "content_block_start":
            assert open_index is None, "a block started while another is open"
            assert d["index"] == len(blocks), f"block index {d['index']}, expected {len(blocks)}"
            blocks.append(d["content_block"]["type"])
            open_index = None if d["content_block"]["type"] == "redacted_thinking" else d["index"]
        elif kind == "content_block_delta":
            assert d["index"] == open_index, f"delta for block {d['index']}, open block {open_index}"
            assert _DELTA_BLOCK[d["delta"]["type"]] == blocks[d["index"]], (d, blocks)
        elif kind == "content_block_stop":
            assert d["index"] in (open_index, len(blocks) - 1), f"stop for block {d['index']}"
            open_index = None
        elif kind in ("message_delta", "message_stop"):
            assert open_index is None, f"{kind} while block {open_index} is open"
            if kind == "message_delta":
                assert isinstance(d["usage"]["output_tokens"], int)
            tail.append(kind)
    if error:
        assert tail and tail[-1] == "error" and "message_stop" not in tail, tail
    else:
        assert tail == ["message_delta", "message_stop"], tail
    return datas


def check_chat_stream(raw: bytes, *, error: bool = False) -> list[dict[str, Any]]:
    """Chat grammar: data-only events, one id/model, role only in the first chunk, a tool call's id,
    type and name only in its first fragment with indexes 0, 1, … in order, one finish chunk, then at
    most a choices:[] usage chunk, then [DONE] last; or, with ``error``, a data {"error":…} last."""
    events = sse_events(raw)
    assert all(name is None for name, _ in events), "Chat streams have no event: lines"
    payloads = [data for _, data in events]
    if error:
        assert "[DONE]" not in payloads and "error" in json.loads(payloads[-1]), payloads[-1:]
        payloads = payloads[:-1]
    else:
        assert payloads and payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1, payloads[-2:]
        payloads = payloads[:-1]
    chunks = [json.loads(p) for p in payloads]
    assert len({c["id"] for c in chunks}) <= 1 and len({c["model"] for c in chunks}) <= 1
    calls: list[str] = []
    finished = False
    for i, chunk in enumerate(chunks):
        assert chunk["object"] == "chat.completion.chunk"
        if not chunk["choices"]:
            assert finished and i == len(chunks) - 1 and isinstance(chunk["usage"], dict), chunk
            continue
        assert not finished, "a choice chunk after the finish chunk"
        choice = chunk["choices"][0]
        delta = choice["delta"]
        assert ("role" in delta) == (i == 0), f"role in chunk {i}: {delta}"
        for call in delta.get("tool_calls") or ():
            if call["index"] == len(calls):
                assert call["id"] and call["type"] == "function" and call["function"]["name"], call
                calls.append(call["id"])
            else:
                assert call["index"] < len(calls), f"tool call index {call['index']} skips ahead"
                assert "id" not in call and "type" not in call and "name" not in call.get("function", {}), call
        finished = finished or choice["finish_reason"] is not None
    assert finished or error, "no finish_reason chunk"
    return chunks


# --- calling the bridge --------------------------------------------------------------------------


def ask_anthropic(bridge: BridgeProcess, stream: bool, **params: Any) -> anthropic.types.Message:
    client, transport = anthropic_client(bridge)
    params = {"model": A_MODEL, "max_tokens": 256, **params}
    if not stream:
        return client.messages.create(**params)
    with client.messages.stream(**params) as s:
        message = s.get_final_message()
    check_anthropic_stream(transport.last_body)
    return message


def ask_openai(bridge: BridgeProcess, mode: str, **params: Any) -> openai.types.chat.ChatCompletion:
    """``create``, ``stream`` (the SDK's stream helper) or ``iterate`` (create(stream=True), folded here)."""
    client, transport = openai_client(bridge)
    params = {"model": C_MODEL, "max_completion_tokens": 256, **params}
    if mode == "create":
        return client.chat.completions.create(**params)
    if mode == "stream":
        with client.chat.completions.stream(**params, stream_options={"include_usage": True}) as s:
            try:
                completion = s.get_final_completion()
            except openai.LengthFinishReasonError as e:  # the helper raises it for every length finish
                completion = e.completion
        check_chat_stream(transport.last_body)
        return completion
    assert mode == "iterate"
    chunks = list(client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    check_chat_stream(transport.last_body)
    return fold_chunks(chunks)


def fold_chunks(chunks: list[Any]) -> openai.types.chat.ChatCompletion:
    text, reasoning, finish, calls = [], [], None, {}
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            text.append(delta.content or "")
            reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "type": "function",
                                                      "function": {"name": "", "arguments": ""}})
                entry["id"] += call.id or ""
                entry["function"]["name"] += (call.function and call.function.name) or ""
                entry["function"]["arguments"] += (call.function and call.function.arguments) or ""
            finish = choice.finish_reason or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    usage = next((c.usage for c in chunks if c.usage), None)
    return openai.types.chat.ChatCompletion.model_validate({
        "id": chunks[0].id, "object": "chat.completion", "created": chunks[0].created, "model": chunks[0].model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage.model_dump() if usage else None})


def assert_upstream_auth(rec: Recorded, upstream: str) -> None:
    """The upstream key in the upstream format's header; the client's key nowhere."""
    assert CLIENT_KEY not in rec.all_header_values, rec.headers
    if upstream == "chat":
        assert rec.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
        assert "x-api-key" not in rec.headers and "anthropic-version" not in rec.headers
    else:
        assert rec.headers.get("x-api-key") == UPSTREAM_KEY
        assert rec.headers.get("anthropic-version")
        assert "authorization" not in rec.headers


def dump_blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """An assistant message's content, sent back the way the SDK's users do."""
    return [b.model_dump(exclude_none=True) for b in message.content]


@pytest.fixture(scope="module")
def to_chat(bridge) -> BridgeProcess:  # type: ignore[no-untyped-def]
    """Anthropic clients are translated to a Chat Completions upstream."""
    return bridge("chat")


@pytest.fixture(scope="module")
def to_anthropic(bridge) -> BridgeProcess:  # type: ignore[no-untyped-def]
    """OpenAI Chat clients are translated to an Anthropic Messages upstream (no prompt-cache breakpoints,
    so the bodies below are the translation alone; test_prompt_cache_e2e has them)."""
    return bridge("anthropic", prompt_cache="off")


STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
MODES = pytest.mark.parametrize("mode", ["create", "stream", "iterate"])


# === Direction 1: Anthropic client → Chat Completions upstream ==================================


@STREAM
@pytest.mark.parametrize(("chat_finish", "anthropic_stop"), [("stop", "end_turn"), ("length", "max_tokens"),
                                                            ("content_filter", "refusal")])
def test_a2c_plain_text(to_chat: BridgeProcess, mock: MockUpstream, stream: bool, chat_finish: str,
                        anthropic_stop: str) -> None:
    mock.next_reply(text=TEXT, stop=chat_finish, usage={"prompt_tokens": 100, "completion_tokens": 20,
                                                        "total_tokens": 120,
                                                        "prompt_tokens_details": {"cached_tokens": 30}})

    msg = ask_anthropic(to_chat, stream, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}])

    assert [(b.type, b.text) for b in msg.content] == [("text", TEXT)]
    assert msg.model == A_MODEL
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == anthropic_stop
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (70, 30, 20)
    assert msg.usage.cache_creation_input_tokens in (None, 0)

    up = mock.last
    assert up.path == "/v1/chat/completions"
    assert_upstream_auth(up, "chat")
    assert up.json["model"] == A_MODEL
    assert up.json["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert up.json["max_completion_tokens"] == 256
    if stream:
        assert up.json["stream"] is True and up.json["stream_options"] == {"include_usage": True}
    else:
        assert not up.json.get("stream")


@STREAM
def test_a2c_parallel_tool_calls_round_trip(to_chat: BridgeProcess, mock: MockUpstream, stream: bool) -> None:
    weather_args, clock_args = {"city": "Paris", "units": "metric"}, {"tz": "Europe/Paris"}
    mock.next_reply(text="Checking both.", tool_calls=[ToolCallSpec("call_w1", "get_weather", weather_args),
                                                       ToolCallSpec("call_t2", "get_time", clock_args)])
    question = {"role": "user", "content": "Weather and time in Paris?"}

    msg = ask_anthropic(to_chat, stream, tools=A_TOOLS, messages=[question])

    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    assert msg.content[0].text == "Checking both."
    assert [(b.id, b.name, b.input) for b in msg.content[1:]] == [("call_w1", "get_weather", weather_args),
                                                                  ("call_t2", "get_time", clock_args)]
    sent_tools = mock.last.json["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["get_weather", "get_time"]
    assert sent_tools[0]["function"]["parameters"] == WEATHER["schema"]

    mock.next_reply(text="Sunny and 14:00.")
    results = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_w1", "content": "18°C, sunny"},
        {"type": "tool_result", "tool_use_id": "call_t2", "content": [{"type": "text", "text": "14:00"}]}]}
    msg2 = ask_anthropic(to_chat, stream, tools=A_TOOLS,
                         messages=[question, {"role": "assistant", "content": dump_blocks(msg)}, results])

    assert msg2.content[0].text == "Sunny and 14:00." and msg2.stop_reason == "end_turn"
    sent = mock.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assistant = sent[1]
    assert assistant["content"] == "Checking both."
    assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in assistant["tool_calls"]] == [("call_w1", "function", "get_weather", weather_args),
                                                  ("call_t2", "function", "get_time", clock_args)]
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [("call_w1", "18°C, sunny"), ("call_t2", "14:00")]


def test_a2c_tool_call_id_outside_anthropic_alphabet_round_trips(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    odd_id = "call:7/α+x"  # Anthropic requires ^[a-zA-Z0-9_-]+$
    mock.next_reply(text=None, tool_calls=[ToolCallSpec(odd_id, "get_time", {"tz": "UTC"})])
    question = {"role": "user", "content": "Time?"}
    msg = ask_anthropic(to_chat, False, tools=A_TOOLS, messages=[question])
    client_id = msg.content[0].id
    assert re.fullmatch(r"[A-Za-z0-9_-]+", client_id), client_id

    ask_anthropic(to_chat, False, tools=A_TOOLS, messages=[
        question, {"role": "assistant", "content": dump_blocks(msg)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": client_id, "content": "12:00"}]}])
    sent = mock.last.json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == odd_id
    assert sent[2] == {"role": "tool", "tool_call_id": odd_id, "content": "12:00"}


@STREAM
def test_a2c_reasoning_round_trip(to_chat: BridgeProcess, mock: MockUpstream, stream: bool) -> None:
    reasoning = "The user wants 2+2. That is 4."
    mock.next_reply(reasoning=reasoning, text="Answer: 4")
    question = {"role": "user", "content": "2+2?"}

    msg = ask_anthropic(to_chat, stream, messages=[question])

    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == reasoning
    assert msg.content[0].signature.startswith("bridge1.")
    assert msg.content[1].text == "Answer: 4"

    mock.next_reply(text="You're welcome.")
    ask_anthropic(to_chat, stream, messages=[question, {"role": "assistant", "content": dump_blocks(msg)},
                                             {"role": "user", "content": "Thanks"}])
    sent = mock.last.json["messages"]
    assert sent[1] == {"role": "assistant", "content": "Answer: 4", "reasoning_content": reasoning}
    assert sent[2] == {"role": "user", "content": "Thanks"}


@STREAM
def test_a2c_images_in_user_turn(to_chat: BridgeProcess, mock: MockUpstream, stream: bool) -> None:
    ask_anthropic(to_chat, stream, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}])
    assert mock.last.json["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]


def test_a2c_image_in_tool_result_follows_as_user_message(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    ask_anthropic(to_chat, False, tools=A_TOOLS, messages=[
        {"role": "user", "content": "Take a screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_shot1", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_shot1", "content": [
                {"type": "text", "text": "here it is"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64}}]},
            {"type": "text", "text": "What do you see?"}]}])
    sent = mock.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_shot1", "content": "here it is"}
    parts = sent[3]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert images == [f"data:image/jpeg;base64,{JPEG_B64}"]
    assert {"type": "text", "text": "What do you see?"} in parts


@STREAM
@pytest.mark.parametrize(("status", "error_cls", "error_type"), [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error")])
def test_a2c_upstream_http_error(to_chat: BridgeProcess, mock: MockUpstream, stream: bool, status: int,
                                 error_cls: type[Exception], error_type: str) -> None:
    text = f"mock says no ({status}): max_tokens is too large"
    mock.next_reply(status=status, error_message=text, headers={"retry-after": "7"})
    with pytest.raises(error_cls) as excinfo:
        ask_anthropic(to_chat, stream, messages=[{"role": "user", "content": "hi"}])
    err = excinfo.value
    assert err.status_code == status
    assert text in str(err)
    assert err.body["error"] == {"type": error_type, "message": text}
    assert err.response.headers.get("retry-after") == "7"


def test_a2c_upstream_401_without_code_is_an_authentication_error(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    """OpenAI-style servers send type invalid_request_error on a 401 too; the status says what it is."""
    text = "Invalid authorization header"
    mock.next_reply(status=401, error_json={"error": {"message": text, "type": "invalid_request_error",
                                                      "param": None, "code": None}})
    with pytest.raises(anthropic.AuthenticationError) as excinfo:
        ask_anthropic(to_chat, False, messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.body["error"] == {"type": "authentication_error", "message": text}


def test_a2c_upstream_error_page_that_is_not_json(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(status=502, raw_error=b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")
    with pytest.raises(anthropic.InternalServerError) as excinfo:
        ask_anthropic(to_chat, False, messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 502
    assert excinfo.value.body["error"]["type"] == "api_error"
    assert "502 Bad Gateway" in excinfo.value.body["error"]["message"]


def test_a2c_malformed_request_is_answered_by_the_bridge(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    response = httpx2.post(f"{to_chat.url}/v1/messages", timeout=20, json={"model": A_MODEL, "max_tokens": 10},
                           headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "messages" in body["error"]["message"]
    assert mock.requests == []


def test_a2c_stream_cut_midway_ends_with_error_event(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text=TEXT, cut_after=4)
    client, transport = anthropic_client(to_chat)
    with pytest.raises(anthropic.APIStatusError) as excinfo:  # not a completed message, not a bare cut
        with client.messages.stream(model=A_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()
    assert "broke off" in str(excinfo.value)
    check_anthropic_stream(transport.last_body, error=True)  # the error event, then a clean end of the body
    assert b"message_stop" not in transport.last_body


def test_a2c_json_body_cut_midway_raises(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text=TEXT, cut_after=0)  # half the body its content-length announced
    with pytest.raises(anthropic.InternalServerError) as excinfo:  # mitmproxy's own 502 page (notes §4)
        ask_anthropic(to_chat, False, messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 502


def test_a2c_stream_without_finish_ends_with_error_event(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text="abcdefgh", piece=4, end_after=3)  # role chunk, "abcd", "efgh"; no finish, no [DONE]
    client, transport = anthropic_client(to_chat)
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        with client.messages.stream(model=A_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()
    datas = check_anthropic_stream(transport.last_body, error=True)
    assert datas[-1]["error"]["type"] == "api_error" and datas[-1]["error"]["message"]
    assert datas[-1]["error"]["message"] in str(excinfo.value)
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "abcdefgh"


def test_a2c_upstream_stream_error_event(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    text = "The server had an error while processing your request."
    mock.next_reply(text="abcdefgh", piece=4, error_after=2, error_message=text)  # role chunk, "abcd", error
    client, transport = anthropic_client(to_chat)
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        with client.messages.stream(model=A_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()
    assert text in str(excinfo.value)
    datas = check_anthropic_stream(transport.last_body, error=True)
    assert datas[-1]["error"] == {"type": "api_error", "message": text}


def test_a2c_stream_survives_tiny_network_chunks(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    """Events cut into 2-byte network chunks (inside UTF-8 characters), CRLF framing, comment lines."""
    text = "Grüße 👋 ✓ ünïcödé"
    mock.next_reply(text=text, piece=3, split=2, crlf=True, keepalive=True,
                    tool_calls=[ToolCallSpec("call_1", "get_weather", {"city": "Zürich"})])
    msg = ask_anthropic(to_chat, True, tools=A_TOOLS, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == text
    assert msg.content[1].input == {"city": "Zürich"}
    assert msg.stop_reason == "tool_use" and msg.usage.output_tokens == 7


def test_a2c_stream_client_with_json_upstream(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    """A Chat server that ignores stream:true and answers one JSON body still gives the client a stream."""
    mock.next_reply(text=TEXT, as_json=True, tool_calls=[ToolCallSpec("call_1", "get_time", {"tz": "UTC"})],
                    usage={"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49})
    msg = ask_anthropic(to_chat, True, tools=A_TOOLS, messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[0].text == TEXT and msg.content[1].input == {"tz": "UTC"}
    assert msg.stop_reason == "tool_use"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (40, 9)


def test_a2c_stream_is_live(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    reply = mock.next_reply(text="first second", piece=6, hold_after=2)  # role, "first ", then hold
    client, _ = anthropic_client(to_chat)
    t0 = time.monotonic()
    with client.messages.stream(model=A_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
        first = next(e for e in s if e.type == "content_block_delta")
        assert first.delta.text == "first "
        assert not reply.release.is_set() and time.monotonic() - t0 < 5, "the first delta waited for the end"
        reply.release.set()
        assert s.get_final_message().content[0].text == "first second"


def test_a2c_one_client_connection_serves_several_exchanges(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    """A translated chunked stream must end cleanly enough for the SDK to reuse its connection."""
    client, transport = anthropic_client(to_chat)
    texts = [f"answer {i} ✓" for i in range(4)]
    for text in texts:
        mock.next_reply(text=text)
    got = []
    for i in range(4):
        params = {"model": A_MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": f"q{i}"}]}
        if i % 2:
            got.append(client.messages.create(**params).content[0].text)
        else:
            with client.messages.stream(**params) as s:
                got.append(s.get_final_message().content[0].text)
            check_anthropic_stream(transport.last_body)
    assert got == texts
    assert [r.json["messages"][0]["content"] for r in mock.requests] == ["q0", "q1", "q2", "q3"]


def test_a2c_concurrent_streams_do_not_mix(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    replies = [mock.next_reply(text=f"stream {c} " * 5, piece=3, hold_after=3) for c in "AB"]
    results: dict[int, str] = {}

    def run(i: int) -> None:
        client, _ = anthropic_client(to_chat)
        with client.messages.stream(model=A_MODEL, max_tokens=32, messages=[{"role": "user", "content": "hi"}]) as s:
            results[i] = s.get_final_message().content[0].text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert len(mock.wait_for_requests(2)) == 2, "both requests should be in flight at once"
    for reply in replies:
        reply.release.set()
    for t in threads:
        t.join(20)
    assert sorted(results.values()) == sorted(r.text for r in replies)


# === Direction 2: OpenAI Chat client → Anthropic Messages upstream ===============================


@MODES
@pytest.mark.parametrize(("anthropic_stop", "chat_finish"), [("end_turn", "stop"), ("max_tokens", "length"),
                                                            ("stop_sequence", "stop")])
def test_c2a_plain_text(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str, anthropic_stop: str,
                        chat_finish: str) -> None:
    mock.next_reply(text=TEXT, stop=anthropic_stop,
                    usage={"input_tokens": 70, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5,
                           "output_tokens": 20})

    completion = ask_openai(to_anthropic, mode, messages=[{"role": "system", "content": "Be brief."},
                                                          {"role": "user", "content": "Say hello"}])

    choice = completion.choices[0]
    assert choice.message.content == TEXT and choice.message.role == "assistant"
    assert choice.finish_reason == chat_finish
    assert completion.model == C_MODEL
    assert completion.id.startswith("chatcmpl-")
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (105, 20, 125)
    assert usage.prompt_tokens_details.cached_tokens == 30

    up = mock.last
    assert up.path == "/v1/messages"
    assert_upstream_auth(up, "anthropic")
    assert up.json["model"] == C_MODEL
    assert up.json["system"] == [{"type": "text", "text": "Be brief."}]
    assert up.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert up.json["max_tokens"] == 256
    assert up.json.get("stream", False) is (mode != "create")


@pytest.mark.parametrize("mode", ["create", "stream"])
def test_c2a_parallel_tool_calls_round_trip(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str) -> None:
    weather_args, clock_args = {"city": "Paris", "units": "metric"}, {"tz": "Europe/Paris"}
    mock.next_reply(text="Let me check.", tool_calls=[ToolCallSpec("toolu_01Wx", "get_weather", weather_args),
                                                      ToolCallSpec("toolu_02Tm", "get_time", clock_args)])
    question = {"role": "user", "content": "Weather and time in Paris?"}

    completion = ask_openai(to_anthropic, mode, tools=C_TOOLS, messages=[question])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("toolu_01Wx", "function", "get_weather", weather_args), ("toolu_02Tm", "function", "get_time", clock_args)]
    assert [t["name"] for t in mock.last.json["tools"]] == ["get_weather", "get_time"]
    assert mock.last.json["tools"][0]["input_schema"] == WEATHER["schema"]

    mock.next_reply(text="Sunny and 14:00.")
    assistant = {"role": "assistant", "content": "Let me check.",
                 "tool_calls": [c.model_dump(exclude_none=True) for c in choice.message.tool_calls]}
    completion2 = ask_openai(to_anthropic, mode, tools=C_TOOLS, messages=[
        question, assistant,
        {"role": "tool", "tool_call_id": "toolu_01Wx", "content": "18°C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_02Tm", "content": "14:00"}])

    assert completion2.choices[0].message.content == "Sunny and 14:00."
    sent = mock.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01Wx", "name": "get_weather", "input": weather_args},
        {"type": "tool_use", "id": "toolu_02Tm", "name": "get_time", "input": clock_args}]
    results = sent[2]["content"]
    assert [(r["type"], r["tool_use_id"]) for r in results] == [("tool_result", "toolu_01Wx"),
                                                                ("tool_result", "toolu_02Tm")]
    assert [r["content"] for r in results] == [[{"type": "text", "text": "18°C, sunny"}],
                                               [{"type": "text", "text": "14:00"}]]


@MODES
def test_c2a_tool_call_without_arguments_is_valid_json(to_anthropic: BridgeProcess, mock: MockUpstream,
                                                       mode: str) -> None:
    mock.next_reply(text=None, tool_calls=[ToolCallSpec("toolu_01Now", "get_time", {})])
    completion = ask_openai(to_anthropic, mode, tools=C_TOOLS, messages=[{"role": "user", "content": "Time?"}])
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("toolu_01Now", "get_time")
    assert json.loads(call.function.arguments) == {}


@pytest.mark.parametrize("mode", ["create", "stream", "iterate"])
def test_c2a_thinking_round_trip(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str) -> None:
    thinking = "The user wants the weather; I should call get_weather."
    mock.next_reply(reasoning=thinking, signature="sig-abc", text="Checking.",
                    tool_calls=[ToolCallSpec("toolu_01Wx", "get_weather", {"city": "Oslo"})])
    question = {"role": "user", "content": "Weather in Oslo?"}

    completion = ask_openai(to_anthropic, mode, tools=C_TOOLS, messages=[question])

    message = completion.choices[0].message
    extra = message.model_extra or {}
    assert extra.get("reasoning_content") == thinking
    if mode != "iterate":  # the fold above keeps only reasoning_content
        blocks = [{k: v for k, v in b.items() if k != "index"} for b in extra.get("thinking_blocks") or ()]
        assert blocks == [{"type": "thinking", "thinking": thinking, "signature": "sig-abc"}]
    assert message.content == "Checking."
    assert message.tool_calls[0].id == "toolu_01Wx"

    mock.next_reply(text="It is cold.")
    assistant = {"role": "assistant", "content": "Checking.",
                 "tool_calls": [c.model_dump(exclude_none=True) for c in message.tool_calls],
                 "thinking_blocks": [{"type": "thinking", "thinking": thinking, "signature": "sig-abc"}]}
    ask_openai(to_anthropic, mode, tools=C_TOOLS, messages=[
        question, assistant, {"role": "tool", "tool_call_id": "toolu_01Wx", "content": "-3°C"}])

    sent = mock.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "thinking", "thinking": thinking, "signature": "sig-abc"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01Wx", "name": "get_weather", "input": {"city": "Oslo"}}]
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01Wx",
                                   "content": [{"type": "text", "text": "-3°C"}]}]


@pytest.mark.parametrize("mode", ["create", "stream"])
def test_c2a_redacted_thinking_round_trip(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str) -> None:
    thinking, blob = "Plain thoughts.", "RWRhY3RlZCBibG9iIQ=="
    mock.next_reply(reasoning=thinking, signature="sig-abc", redacted=blob, text="Done.")
    question = {"role": "user", "content": "Go"}

    completion = ask_openai(to_anthropic, mode, messages=[question])

    extra = completion.choices[0].message.model_extra or {}
    blocks = [{k: v for k, v in b.items() if k != "index"} for b in extra.get("thinking_blocks") or ()]
    assert blocks == [{"type": "thinking", "thinking": thinking, "signature": "sig-abc"},
                      {"type": "redacted_thinking", "data": blob}]
    assert completion.choices[0].message.content == "Done."

    ask_openai(to_anthropic, mode, messages=[
        question, {"role": "assistant", "content": "Done.", "thinking_blocks": blocks},
        {"role": "user", "content": "Again"}])
    assert mock.last.json["messages"][1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": thinking, "signature": "sig-abc"},
        {"type": "redacted_thinking", "data": blob},
        {"type": "text", "text": "Done."}]}


@pytest.mark.parametrize("mode", ["create", "stream"])
def test_c2a_images_in_user_turn(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str) -> None:
    ask_openai(to_anthropic, mode, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}}]}])
    assert mock.last.json["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}]


@pytest.mark.parametrize("mode", ["create", "stream"])
@pytest.mark.parametrize(("status", "error_cls", "client_status", "error_type"), [
    (400, openai.BadRequestError, 400, "invalid_request_error"),
    (401, openai.AuthenticationError, 401, None),
    (404, openai.NotFoundError, 404, None),
    (500, openai.InternalServerError, 500, "server_error"),
    (529, openai.InternalServerError, 503, "server_is_overloaded")])
def test_c2a_upstream_http_error(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str, status: int,
                                 error_cls: type[Exception], client_status: int, error_type: str | None) -> None:
    text = f"mock says no ({status}): prompt is too long"
    mock.next_reply(status=status, error_message=text)
    with pytest.raises(error_cls) as excinfo:
        ask_openai(to_anthropic, mode, messages=[{"role": "user", "content": "hi"}])
    err = excinfo.value
    assert err.status_code == client_status
    assert text in str(err) and err.message and text in err.message
    if error_type:
        assert err.type == error_type


def test_c2a_untranslatable_request_is_answered_by_the_bridge(to_anthropic: BridgeProcess,
                                                              mock: MockUpstream) -> None:
    client, _ = openai_client(to_anthropic)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=C_MODEL, n=2, messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.param == "n" and excinfo.value.type == "invalid_request_error"
    assert mock.requests == []


@pytest.mark.parametrize("mode", ["stream", "iterate"])
def test_c2a_stream_cut_midway_ends_with_error_chunk(to_anthropic: BridgeProcess, mock: MockUpstream,
                                                     mode: str) -> None:
    mock.next_reply(text=TEXT, cut_after=5)  # message_start, ping, block start, two deltas, then the cut
    with pytest.raises(openai.APIError) as excinfo:  # not a completed completion, not a bare cut
        ask_openai(to_anthropic, mode, messages=[{"role": "user", "content": "hi"}])
    assert not isinstance(excinfo.value, openai.APIConnectionError)
    assert "broke off" in str(excinfo.value)


def test_c2a_json_body_cut_midway_raises(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text=TEXT, cut_after=0)
    with pytest.raises(openai.InternalServerError) as excinfo:
        ask_openai(to_anthropic, "create", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 502


@pytest.mark.parametrize("end_after", [4, 6], ids=["mid-block", "before-message_delta"])
def test_c2a_stream_without_stop_ends_with_error_chunk(to_anthropic: BridgeProcess, mock: MockUpstream,
                                                       end_after: int) -> None:
    # events: message_start, ping, block start, "abcd", "efgh", block stop, message_delta, message_stop
    mock.next_reply(text="abcdefgh", piece=4, end_after=end_after)
    client, transport = openai_client(to_anthropic)
    received = []
    with pytest.raises(openai.APIError) as excinfo:
        for chunk in client.chat.completions.create(model=C_MODEL, messages=[{"role": "user", "content": "hi"}],
                                                    stream=True):
            received.append(chunk)
    assert not isinstance(excinfo.value, openai.APIConnectionError)
    chunks = check_chat_stream(transport.last_body, error=True)
    error = json.loads(sse_events(transport.last_body)[-1][1])["error"]
    assert error["message"] and error["message"] in str(excinfo.value)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "abcdefgh"[:4 * (end_after - 3)]


@pytest.mark.parametrize("mode", ["stream", "iterate"])
def test_c2a_upstream_stream_error_event(to_anthropic: BridgeProcess, mock: MockUpstream, mode: str) -> None:
    text = "Overloaded"
    mock.next_reply(text="abcdefgh", piece=4, error_after=4, error_message=text)  # start, ping, block, "abcd"
    with pytest.raises(openai.APIError) as excinfo:
        ask_openai(to_anthropic, mode, messages=[{"role": "user", "content": "hi"}])
    assert not isinstance(excinfo.value, openai.APIConnectionError)
    assert text in str(excinfo.value)


def test_c2a_upstream_stream_error_event_raw(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text="abcdefgh", piece=4, error_after=4, error_message="Overloaded")
    client, transport = openai_client(to_anthropic)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=C_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
    chunks = check_chat_stream(transport.last_body, error=True)
    error = json.loads(sse_events(transport.last_body)[-1][1])["error"]
    assert error["message"] == "Overloaded" and error["type"] == "server_is_overloaded"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "abcd"


def test_c2a_stream_survives_tiny_network_chunks(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    """Events cut into 2-byte network chunks (inside UTF-8 characters), CRLF framing."""
    text = "Grüße 👋 ✓ ünïcödé"
    mock.next_reply(text=text, piece=3, split=2, crlf=True, reasoning="dénkën 🤔", signature="sig-ü",
                    tool_calls=[ToolCallSpec("toolu_1", "get_weather", {"city": "Zürich"})])
    completion = ask_openai(to_anthropic, "stream", tools=C_TOOLS, messages=[{"role": "user", "content": "hi"}])
    message = completion.choices[0].message
    assert message.content == text
    assert (message.model_extra or {}).get("reasoning_content") == "dénkën 🤔"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Zürich"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_c2a_stream_without_include_usage_has_no_usage_chunk(to_anthropic: BridgeProcess,
                                                             mock: MockUpstream) -> None:
    mock.next_reply(text="abc")
    client, transport = openai_client(to_anthropic)
    chunks = list(client.chat.completions.create(model=C_MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    raw = check_chat_stream(transport.last_body)
    assert all(c["choices"] for c in raw) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "abc"


def test_c2a_client_disconnect_closes_the_upstream_stream(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    reply = mock.next_reply(text="x" * 600, piece=2, hold_after=4)  # 300 deltas after the hold
    client, _ = openai_client(to_anthropic)
    stream = client.chat.completions.create(model=C_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    time.sleep(0.3)  # mitmproxy sees the client go and closes its upstream connection
    reply.release.set()
    assert reply.aborted.wait(5), "the upstream kept streaming to a client that had gone"


def test_c2a_stream_is_live(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    reply = mock.next_reply(text="first second", piece=6, hold_after=4)  # start, ping, block, "first ", hold
    client, _ = openai_client(to_anthropic)
    t0 = time.monotonic()
    stream = client.chat.completions.create(model=C_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    texts = []
    for chunk in stream:
        texts.append(chunk.choices[0].delta.content or "")
        if "".join(texts) == "first ":
            assert not reply.release.is_set() and time.monotonic() - t0 < 5, "the first delta waited for the end"
            reply.release.set()
    assert "".join(texts) == "first second"
    assert reply.release.is_set()


# === Endpoint options, through a real mitmdump ====================================================


def test_a2c_endpoint_max_tokens_limit_and_drop_params(bridge, mock: MockUpstream) -> None:  # type: ignore[no-untyped-def]
    limited = bridge("chat", max_tokens_limit=100, drop_params=["reasoning_effort"])
    mock.next_reply(text="ok")
    msg = ask_anthropic(limited, True, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
                        messages=[{"role": "user", "content": "hi"}])
    assert msg.content[-1].text == "ok"
    sent = mock.last.json
    assert sent["max_completion_tokens"] == 100
    assert "reasoning_effort" not in sent
    assert sent["messages"] == [{"role": "user", "content": "hi"}]


# === Same format: pass-through ===================================================================


RAW_ANTHROPIC = ('{"model":  "claude-raw",\n "max_tokens": 64, "messages": [{"role": "user", "content": '
                 '"h\\u00e9llo é"}], "x_unknown": {"keep": [1, 2.50, true, null]}}').encode()
RAW_CHAT = ('{ "messages": [{"content": "hi é", "role": "user"}],"model":"gpt-raw", '
            '"x_unknown": 1.0e3 }').encode()


def test_passthrough_anthropic_keeps_body_bytes_and_query(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    response = httpx2.post(f"{to_anthropic.url}/v1/messages?beta=true", content=RAW_ANTHROPIC, timeout=20,
                           headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01",
                                    "content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["model"] == "mock-upstream-model"  # not translated, so not rewritten
    up = mock.last
    assert up.path == "/v1/messages?beta=true"
    assert up.body == RAW_ANTHROPIC
    assert_upstream_auth(up, "anthropic")


def test_passthrough_anthropic_keeps_beta_header(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    beta = "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    response = httpx2.post(f"{to_anthropic.url}/v1/messages?beta=true", content=RAW_ANTHROPIC, timeout=20,
                           headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01",
                                    "anthropic-beta": beta, "content-type": "application/json"})
    assert response.status_code == 200
    assert mock.last.headers.get("anthropic-beta") == beta


def test_passthrough_anthropic_sdk_stream(to_anthropic: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(reasoning="hmm", signature="sig-native", text=TEXT)
    msg = ask_anthropic(to_anthropic, True, messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].signature == "sig-native" and msg.content[1].text == TEXT
    assert_upstream_auth(mock.last, "anthropic")


def test_passthrough_chat_sdk_stream(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    mock.next_reply(text=TEXT, tool_calls=[ToolCallSpec("call_9", "get_time", {"tz": "UTC"})])
    completion = ask_openai(to_chat, "stream", tools=C_TOOLS, messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "mock-upstream-model"  # pass-through: the upstream's own answer
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].message.tool_calls[0].id == "call_9"
    assert_upstream_auth(mock.last, "chat")


def test_passthrough_chat_keeps_body_bytes_and_query(to_chat: BridgeProcess, mock: MockUpstream) -> None:
    response = httpx2.post(f"{to_chat.url}/v1/chat/completions?api-version=2024-10-21", content=RAW_CHAT,
                           timeout=20, headers={"authorization": f"Bearer {CLIENT_KEY}",
                                                "content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the mock."
    up = mock.last
    assert up.path == "/v1/chat/completions?api-version=2024-10-21"
    assert up.body == RAW_CHAT
    assert_upstream_auth(up, "chat")
