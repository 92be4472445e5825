"""Stream translation does not depend on where the network splits the upstream bytes.

mitmproxy hands the stream callable chunks at arbitrary boundaries (formats.md §7.8, §7.9): inside a
``data:`` line, between ``\\r`` and ``\\n``, inside a multibyte UTF-8 character. For realistic upstream
streams in both directions, every split must give byte-identical client output, and that output
must follow the client format's grammar and carry the upstream's content.

Also here: the non-streamed fold equals the streamed one (style.md item 7).

Gemini (gemini.md §4) is here as an upstream (always asked for ``alt=sse``) and as a client, in both of its
stream framings: SSE (``alt=sse``) and the JSON array a stream without ``alt`` is answered with (§4.2,
``Operation.framing``).
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon import translate
from addon.accumulate import accumulate
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
    Response,
    StopReason,
    StreamError,
    ToolCall,
    Usage,
    UsageUpdate,
)
from addon.sse import SSEDecoder
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

CREATED = 1_700_000_000
LONG_NAME = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository_v2"
SPLIT_SETTINGS = settings(max_examples=40, deadline=None)


def make_ctx() -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):04d}", created=CREATED)


def run(client: ModuleType, upstream: ModuleType, body: dict[str, Any], chunks: list[bytes],
        op: Operation | None = None) -> bytes:
    """``op``: what the request's path says (a Gemini client's model, stream flag and framing)."""
    exchange, _ = translate.Exchange.start(client, upstream, json.dumps(body).encode(), make_ctx(), op=op)
    translator = exchange.stream()
    out: list[bytes] = []
    for chunk in chunks:
        got = translator.feed(chunk)
        assert isinstance(got, list) and b"" not in got  # a bare b"" would end mitmproxy's chunked body
        out += got
    return b"".join(out + translator.close())


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def cuts_for(raw: bytes) -> st.SearchStrategy[list[int]]:
    """Random cut points, biased toward the inside of multibyte characters and of data: lines."""
    inside_chars = [i for i, b in enumerate(raw) if 0x80 <= b < 0xC0]  # continuation bytes
    inside_data = [i + 3 for i in range(len(raw)) if raw.startswith(b"data:", i)]
    return st.lists(st.one_of(st.integers(0, len(raw)), st.sampled_from(inside_chars), st.sampled_from(inside_data)),
                    max_size=25)


# --- Anthropic upstream → Chat client ---------------------------------------------------------------

A_THINKING = ["The user wants ", "weather in Zürich — ", "and the time 🕐."]
A_SIGNATURE = "EqQBCkgIARABGAIiQL+/sigXq9w=="
A_TEXT = ["héllo ", "🌍 日本", " — I'll check both."]
A_CALLS = [("toolu_01A09q90qw90lq917835lq9", "get_weather", ["", '{"city": "Zü', 'rich", "unit"', ': "c"}']),
           ("toolu_01B7cM2yXgTqzKkGmV3s1QqL", "get_time", ["", '{"tz": "Europe/Zurich"}'])]
A_USAGE_START = {"input_tokens": 70, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 30,
                 "output_tokens": 1}
A_OUTPUT_TOKENS = 123


def anthropic_events(error: bool = False) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message",
                                              "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                                              "stop_reason": None, "stop_sequence": None, "usage": A_USAGE_START}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": t}}
          for t in A_THINKING),
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": A_SIGNATURE}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": t}} for t in A_TEXT),
        {"type": "content_block_stop", "index": 1},
    ]
    if error:
        return [*events, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded — réessayez"}}]
    for n, (id_, name, fragments) in enumerate(A_CALLS, start=2):
        events.append({"type": "content_block_start", "index": n,
                       "content_block": {"type": "tool_use", "id": id_, "name": name, "input": {}}})
        events += [{"type": "content_block_delta", "index": n, "delta": {"type": "input_json_delta",
                                                                          "partial_json": f}} for f in fragments]
        events.append({"type": "content_block_stop", "index": n})
    return [*events,
            {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
             "usage": {"output_tokens": A_OUTPUT_TOKENS}},
            {"type": "message_stop"}]


def anthropic_sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events)


A_RAW = anthropic_sse(anthropic_events())
# after the error the upstream keeps talking; the client must see nothing more
A_RAW_ERROR = anthropic_sse([*anthropic_events(error=True), {"type": "message_stop"}])
CHAT_CLIENT_BODY = {
    "model": "gpt-client", "stream": True, "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Weather and time in Zürich?"}],
    "tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
              for _, name, _ in A_CALLS],
}


def test_anthropic_to_chat_content() -> None:
    out = run(C, A, CHAT_CLIENT_BODY, [A_RAW])
    final = fold_chat(check_chat_stream(out))
    assert final["id"].startswith("chatcmpl-") and final["model"] == CHAT_CLIENT_BODY["model"]
    assert final["reasoning_content"] == "".join(A_THINKING)
    assert final["thinking_blocks"] == [{"type": "thinking", "thinking": "".join(A_THINKING),
                                         "signature": A_SIGNATURE}]
    assert final["content"] == "".join(A_TEXT)
    assert final["tool_calls"] == [{"id": id_, "name": name, "arguments": "".join(frags)}
                                   for id_, name, frags in A_CALLS]
    assert final["finish_reason"] == "tool_calls"
    prompt = sum(A_USAGE_START[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    assert final["usage"]["prompt_tokens"] == prompt
    assert final["usage"]["prompt_tokens_details"]["cached_tokens"] == A_USAGE_START["cache_read_input_tokens"]
    assert final["usage"]["completion_tokens"] == A_OUTPUT_TOKENS


@SPLIT_SETTINGS
@given(data=st.data())
def test_anthropic_to_chat_any_split(data: st.DataObject) -> None:
    whole = run(C, A, CHAT_CLIENT_BODY, [A_RAW])
    cuts = data.draw(cuts_for(A_RAW))
    assert run(C, A, CHAT_CLIENT_BODY, split_at(A_RAW, cuts)) == whole


def test_anthropic_to_chat_one_byte_at_a_time() -> None:
    whole = run(C, A, CHAT_CLIENT_BODY, [A_RAW])
    assert run(C, A, CHAT_CLIENT_BODY, [A_RAW[i:i + 1] for i in range(len(A_RAW))]) == whole


@SPLIT_SETTINGS
@given(data=st.data())
def test_anthropic_error_mid_stream_to_chat_any_split(data: st.DataObject) -> None:
    whole = run(C, A, CHAT_CLIENT_BODY, [A_RAW_ERROR])
    chunks = check_chat_stream(whole)
    assert fold_chat(chunks)["content"] == "".join(A_TEXT)
    assert chunks[-1]["error"]["message"] == "Overloaded — réessayez"
    assert chunks[-1]["error"]["type"] == "server_is_overloaded"
    assert run(C, A, CHAT_CLIENT_BODY, split_at(A_RAW_ERROR, data.draw(cuts_for(A_RAW_ERROR)))) == whole


# --- Chat upstream → Anthropic client ---------------------------------------------------------------

C_REASONING = ["Need ", "two tools — ", "ça va 🤔"]
C_TEXT = ["héllo ", "🌍", " 日本"]
C_CALLS = [("call_DdmOeRy3kSCQtIbP1vTtcpxG", C.wire_tool_name(LONG_NAME), ['{"owner":', ' "ünïcode", "pr": 7}']),
           ("functions.get_time:1", "get_time", ["", "{}"])]
C_USAGE = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
           "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 20}}


def chat_chunks(error: bool = False) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk",
                "created": 1741570283, "model": "deepseek-reasoner", "system_fingerprint": "fp_x",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], "usage": None}

    chunks = [chunk({"role": "assistant", "content": None, "refusal": None})]
    chunks += [chunk({"content": None, "reasoning_content": r}) for r in C_REASONING]
    chunks += [chunk({"content": t, "reasoning_content": None}) for t in C_TEXT]
    if error:
        return [*chunks, {"error": {"message": "Internal error — désolé", "type": "server_error", "param": None,
                                    "code": None}}]
    for index, (id_, name, fragments) in enumerate(C_CALLS):
        chunks.append(chunk({"tool_calls": [{"index": index, "id": id_, "type": "function",
                                             "function": {"name": name, "arguments": fragments[0]}}]}))
        chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": f}}]}) for f in fragments[1:]]
    chunks.append(chunk({}, "tool_calls"))
    usage = chunk({})
    usage.update(choices=[], usage=C_USAGE)
    return [*chunks, usage]


def chat_sse(chunks: list[dict[str, Any]], done: bool = True, newline: str = "\n") -> bytes:
    keepalive = f": OPENROUTER PROCESSING{newline}{newline}"  # comment lines some servers send while waiting
    raw = keepalive + "".join(f"data: {json.dumps(c, ensure_ascii=False)}{newline}{newline}" for c in chunks)
    return (raw + (f"data: [DONE]{newline}{newline}" if done else "")).encode()


C_RAW = chat_sse(chat_chunks())
C_RAW_CRLF = chat_sse(chat_chunks(), newline="\r\n")
C_RAW_ERROR = chat_sse(chat_chunks(error=True), done=True)
ANTHROPIC_CLIENT_BODY = {
    "model": "claude-client", "max_tokens": 4096, "stream": True,
    "messages": [{"role": "user", "content": "List review comments and the time"}],
    "tools": [{"name": LONG_NAME, "input_schema": {"type": "object"}},
              {"name": "get_time", "input_schema": {"type": "object"}}],
}


def test_chat_to_anthropic_content() -> None:
    out = run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW])
    final = fold_anthropic(check_anthropic_stream(out))
    assert final["id"].startswith("msg_") and final["model"] == ANTHROPIC_CLIENT_BODY["model"]
    thinking, text, *calls = final["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "".join(C_REASONING)
    assert decode_signature(thinking["signature"], "anthropic") == Opaque(origin="chat", data="")
    assert text == {"type": "text", "text": "".join(C_TEXT)}
    client_names = [t["name"] for t in ANTHROPIC_CLIENT_BODY["tools"]]
    assert calls == [{"type": "tool_use", "id": safe_tool_id(id_), "name": name, "input": json.loads("".join(frags))}
                     for (id_, _, frags), name in zip(C_CALLS, client_names, strict=True)]
    assert final["stop_reason"] == "tool_use"
    cached = C_USAGE["prompt_tokens_details"]["cached_tokens"]
    assert final["usage"]["input_tokens"] == C_USAGE["prompt_tokens"] - cached
    assert final["usage"]["cache_read_input_tokens"] == cached
    assert final["usage"]["output_tokens"] == C_USAGE["completion_tokens"]


def test_crlf_framing_gives_the_same_output() -> None:
    assert run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW_CRLF]) == run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW])


@SPLIT_SETTINGS
@given(data=st.data())
def test_chat_to_anthropic_any_split(data: st.DataObject) -> None:
    whole = run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW])
    raw = data.draw(st.sampled_from([C_RAW, C_RAW_CRLF]))
    assert run(A, C, ANTHROPIC_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw)))) == whole


def test_chat_to_anthropic_one_byte_at_a_time() -> None:
    whole = run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW])
    assert run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW_CRLF[i:i + 1] for i in range(len(C_RAW_CRLF))]) == whole


@SPLIT_SETTINGS
@given(data=st.data())
def test_chat_error_mid_stream_to_anthropic_any_split(data: st.DataObject) -> None:
    whole = run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW_ERROR])
    events = check_anthropic_stream(whole)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error",
                                                               "message": "Internal error — désolé"}})
    assert run(A, C, ANTHROPIC_CLIENT_BODY, split_at(C_RAW_ERROR, data.draw(cuts_for(C_RAW_ERROR)))) == whole


@SPLIT_SETTINGS
@given(data=st.data())
def test_truncated_upstream_ends_with_an_error_at_any_split(data: st.DataObject) -> None:
    """An upstream that stops before finishing must not look complete to the client."""
    raw = chat_sse(chat_chunks()[:-2], done=False)  # no finish_reason chunk, no usage, no [DONE]
    whole = run(A, C, ANTHROPIC_CLIENT_BODY, [raw])
    assert check_anthropic_stream(whole)[-1][0] == "error"
    assert run(A, C, ANTHROPIC_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw)))) == whole
    raw = anthropic_sse(anthropic_events()[:-2])  # no message_delta, no message_stop
    whole = run(C, A, CHAT_CLIENT_BODY, [raw])
    assert "error" in check_chat_stream(whole)[-1]
    assert run(C, A, CHAT_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw)))) == whole


# --- Gemini upstream → every client -----------------------------------------------------------------
# As the API streams (gemini.md §4.1, §4.3): thought parts, text parts (two in one chunk here), whole
# functionCall parts (the first signed and without an id, as the Developer API sends them), then an empty
# text part with finishReason; usage cumulative on every chunk; no event names, no sentinel.

G_THOUGHTS = ["Zürich: weather ", "and time — ", "two tools 🤔"]
G_SIGNATURE = base64.b64encode(b"\xfa\xfb\xfc Gemini's own signature").decode()  # "+" and "/" in it
G_TEXT = ["Grüezi ", "🌍 日本", " — checking both."]
G_CALLS: list[tuple[str | None, str, dict[str, Any]]] = [
    (None, "get_weather", {"city": "Zürich", "unit": "c"}), ("fc_time_1", "get_time", {"tz": "Europe/Zurich"})]
G_PROMPT, G_CACHED, G_THOUGHT_TOKENS, G_CANDIDATES = 100, 30, 25, 40
G_ERROR = {"code": 503, "message": "The model is overloaded — réessayez", "status": "UNAVAILABLE"}


def gemini_chunks(error: bool = False) -> list[dict[str, Any]]:
    def chunk(parts: list[dict[str, Any]], candidates: int, finish: str | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": G_PROMPT, "candidatesTokenCount": candidates,
                 "totalTokenCount": G_PROMPT + candidates + G_THOUGHT_TOKENS, "cachedContentTokenCount": G_CACHED,
                 "thoughtsTokenCount": G_THOUGHT_TOKENS}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-3-pro-preview",
                "responseId": "QHiLaa6LBrb8vdIPoNztsAg"}

    chunks = [chunk([{"text": t, "thought": True}], 0) for t in G_THOUGHTS]
    chunks += [chunk([{"text": t} for t in G_TEXT[:2]], 10), chunk([{"text": G_TEXT[2]}], 20)]
    if error:
        return [*chunks, {"error": G_ERROR}]
    calls = [{"functionCall": {**({"id": id_} if id_ else {}), "name": name, "args": args}}
             for id_, name, args in G_CALLS]
    calls[0]["thoughtSignature"] = G_SIGNATURE
    return [*chunks, chunk(calls, G_CANDIDATES), chunk([{"text": ""}], G_CANDIDATES, "STOP")]


def gemini_sse(chunks: list[dict[str, Any]], newline: str = "\r\n") -> bytes:
    return "".join(f"data: {json.dumps(c, ensure_ascii=False)}{newline}{newline}" for c in chunks).encode()


G_RAW = gemini_sse(gemini_chunks())
G_RAW_LF = gemini_sse(gemini_chunks(), newline="\n")
G_RAW_ERROR = gemini_sse(gemini_chunks(error=True))
# The other form of a failed stream (gemini.md §4.6): a raw, pretty-printed JSON error after the last event.
G_RAW_TAIL = gemini_sse(gemini_chunks(error=True)[:-1]) + json.dumps({"error": G_ERROR}, indent=2,
                                                                     ensure_ascii=False).encode() + b"\n"
ANTHROPIC_WEATHER_BODY = {
    "model": "claude-client", "max_tokens": 4096, "stream": True,
    "messages": [{"role": "user", "content": "Weather and time in Zürich?"}],
    "tools": [{"name": name, "input_schema": {"type": "object"}} for _, name, _ in G_CALLS],
}
RESPONSES_CLIENT_BODY = {
    "model": "gpt-client", "stream": True, "input": "Weather and time in Zürich?", "store": False,
    "tools": [{"type": "function", "name": name, "parameters": {"type": "object"}, "strict": False}
              for _, name, _ in G_CALLS],
}
GEMINI_CLIENT_BODY = {  # a Gemini client offers the tools of every upstream fixture here, LONG_NAME included
    "contents": [{"role": "user", "parts": [{"text": "Weather and time in Zürich?"}]}],
    "tools": [{"functionDeclarations": [{"name": name, "parametersJsonSchema": {"type": "object"}}
                                        for name in ("get_weather", "get_time", LONG_NAME)]}],
}
FRAMINGS = ["sse", "json-array"]


def gemini_op(framing: str = "sse", stream: bool = True) -> Operation:
    """What a Gemini client's path says: ``:streamGenerateContent?alt=sse``, or without ``alt`` (json-array)."""
    return Operation("gemini", "generate", model="gemini-client", stream=stream, framing=framing)


def gemini_signatures(signature: str) -> list[tuple[Opaque | None, str]]:
    """What a ``thoughtSignature`` the bridge made carries, read without the bridge's reader: base64 of a JSON
    list of [envelope, reasoning text] pairs (gemini.md §7, the carrier)."""
    pairs = json.loads(base64.b64decode(signature + "=" * (-len(signature) % 4), altchars=b"-_"))
    return [(decode_signature(envelope, "gemini"), text) for envelope, text in pairs]


def gemini_to(client: str, chunks: list[bytes], framing: str = "sse") -> bytes:
    """A Gemini upstream's stream as ``client`` gets it (a Gemini client: through the IR, not passed on)."""
    bodies = {"anthropic": (A, ANTHROPIC_WEATHER_BODY), "chat": (C, CHAT_CLIENT_BODY),
              "responses": (R, RESPONSES_CLIENT_BODY), "gemini": (G, GEMINI_CLIENT_BODY)}
    module, body = bodies[client]
    return run(module, G, body, chunks, op=gemini_op(framing) if client == "gemini" else None)


def check_client_stream(client: str, raw: bytes, framing: str = "sse") -> Any:
    """The client format's stream grammar (``tests.stream_grammar``); a Gemini client's in its framing."""
    checks = {"anthropic": check_anthropic_stream, "chat": check_chat_stream, "responses": check_responses_stream}
    return check_gemini_stream(raw, framing) if client == "gemini" else checks[client](raw)


def test_gemini_to_chat_content() -> None:
    final = fold_chat(check_chat_stream(gemini_to("chat", [G_RAW])))
    assert final["model"] == CHAT_CLIENT_BODY["model"]
    assert final["reasoning_content"] == "".join(G_THOUGHTS)
    assert final["content"] == "".join(G_TEXT)
    calls = final["tool_calls"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [(name, args) for _, name, args in G_CALLS]
    assert calls[0]["id"] and calls[1]["id"] == G_CALLS[1][0]  # the API gave the first no id: one is made
    assert final["finish_reason"] == "tool_calls"  # STOP with calls (gemini.md §3.1)
    usage = final["usage"]
    assert usage["prompt_tokens"] == G_PROMPT and usage["prompt_tokens_details"]["cached_tokens"] == G_CACHED
    assert usage["completion_tokens"] == G_CANDIDATES + G_THOUGHT_TOKENS  # candidates exclude thoughts (§3.3)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == G_THOUGHT_TOKENS


def test_gemini_to_anthropic_content() -> None:
    final = fold_anthropic(check_anthropic_stream(gemini_to("anthropic", [G_RAW])))
    blocks = final["content"]
    thinking = [b for b in blocks if b["type"] == "thinking"]
    assert "".join(b["thinking"] for b in thinking) == "".join(G_THOUGHTS)
    carried = [decode_signature(b["signature"], "anthropic") for b in thinking]
    assert Opaque(origin="gemini", data=G_SIGNATURE) in carried  # rides through the client, to come back (§7)
    assert [b["text"] for b in blocks if b["type"] == "text"] == ["".join(G_TEXT)]
    calls = [b for b in blocks if b["type"] == "tool_use"]
    assert [(b["name"], b["input"]) for b in calls] == [(name, args) for _, name, args in G_CALLS]
    assert calls[1]["id"] == G_CALLS[1][0] and calls[0]["id"] != calls[1]["id"]
    assert blocks.index(calls[0]) == len(blocks) - 2 and blocks[-3]["type"] == "thinking"  # the signature's carrier
    assert final["stop_reason"] == "tool_use"
    assert final["usage"]["input_tokens"] == G_PROMPT - G_CACHED
    assert final["usage"]["cache_read_input_tokens"] == G_CACHED
    assert final["usage"]["output_tokens"] == G_CANDIDATES + G_THOUGHT_TOKENS


def test_gemini_to_responses_content() -> None:
    events = check_responses_stream(gemini_to("responses", [G_RAW]))
    response = events[-1]["response"]
    assert events[-1]["type"] == "response.completed" and response["model"] == RESPONSES_CLIENT_BODY["model"]
    output = response["output"]
    reasoning = [i for i in output if i["type"] == "reasoning"]
    assert "".join(s["text"] for i in reasoning for s in i["summary"]) == "".join(G_THOUGHTS)
    carried = [decode_signature(i["encrypted_content"], "responses") for i in reasoning]
    assert Opaque(origin="gemini", data=G_SIGNATURE) in carried
    assert [c["text"] for i in output if i["type"] == "message" for c in i["content"]] == ["".join(G_TEXT)]
    calls = [i for i in output if i["type"] == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [(name, args) for _, name, args in G_CALLS]
    assert calls[1]["call_id"] == G_CALLS[1][0]
    usage = response["usage"]
    assert (usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"]) == (G_PROMPT, G_CACHED)
    assert usage["output_tokens"] == G_CANDIDATES + G_THOUGHT_TOKENS
    assert usage["output_tokens_details"]["reasoning_tokens"] == G_THOUGHT_TOKENS


@pytest.mark.parametrize("framing", FRAMINGS)
def test_gemini_to_gemini_content(framing: str) -> None:
    """Through the IR and back (what a model rewrite between two Gemini endpoints of different kinds does)."""
    final = fold_gemini(check_gemini_stream(gemini_to("gemini", [G_RAW], framing), framing))
    assert (final["thoughts"], final["text"]) == ("".join(G_THOUGHTS), "".join(G_TEXT))
    calls = final["function_calls"]
    assert [(c["name"], c["args"]) for c in calls] == [(name, args) for _, name, args in G_CALLS]
    assert calls[1]["id"] == G_CALLS[1][0]
    assert [c["thoughtSignature"] for c in calls] == [G_SIGNATURE, None]  # back on the part it came on (§7)
    assert final["finishReason"] == "STOP" and final["modelVersion"] == "gemini-client"
    usage = final["usageMetadata"]
    assert (usage["promptTokenCount"], usage["cachedContentTokenCount"]) == (G_PROMPT, G_CACHED)
    assert (usage["candidatesTokenCount"], usage["thoughtsTokenCount"]) == (G_CANDIDATES, G_THOUGHT_TOKENS)


@pytest.mark.parametrize("client", ["anthropic", "chat", "responses", "gemini"])
@SPLIT_SETTINGS
@given(data=st.data())
def test_gemini_to_any_client_any_split(client: str, data: st.DataObject) -> None:
    whole = gemini_to(client, [G_RAW])
    check_client_stream(client, whole)
    raw = data.draw(st.sampled_from([G_RAW, G_RAW_LF]))
    assert gemini_to(client, split_at(raw, data.draw(cuts_for(raw)))) == whole


def test_gemini_to_chat_one_byte_at_a_time() -> None:
    whole = gemini_to("chat", [G_RAW])
    assert run(C, G, CHAT_CLIENT_BODY, [G_RAW_LF[i:i + 1] for i in range(len(G_RAW_LF))]) == whole


@pytest.mark.parametrize("raw", [G_RAW_ERROR, G_RAW_TAIL], ids=["error-event", "raw-json-tail"])
@SPLIT_SETTINGS
@given(data=st.data())
def test_gemini_error_mid_stream_to_chat_any_split(raw: bytes, data: st.DataObject) -> None:
    whole = gemini_to("chat", [raw])
    chunks = check_chat_stream(whole)
    assert fold_chat(chunks)["content"] == "".join(G_TEXT)
    assert chunks[-1]["error"]["message"] == G_ERROR["message"]
    assert chunks[-1]["error"]["type"] == "server_is_overloaded"  # UNAVAILABLE is overloaded (gemini.md §5.3)
    assert run(C, G, CHAT_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw)))) == whole


@SPLIT_SETTINGS
@given(data=st.data())
def test_truncated_gemini_upstream_ends_with_an_error_at_any_split(data: st.DataObject) -> None:
    """No finishReason: the stream did not finish, whatever it said before (gemini.md §4.3 item 8)."""
    raw = gemini_sse(gemini_chunks()[:-1])
    whole = run(A, G, ANTHROPIC_WEATHER_BODY, [raw])
    assert check_anthropic_stream(whole)[-1][0] == "error"
    assert run(A, G, ANTHROPIC_WEATHER_BODY, split_at(raw, data.draw(cuts_for(raw)))) == whole


# --- every upstream → Gemini client, in both framings ------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_anthropic_to_gemini_content(framing: str) -> None:
    final = fold_gemini(check_gemini_stream(run(G, A, GEMINI_CLIENT_BODY, [A_RAW], gemini_op(framing)), framing))
    assert final["modelVersion"] == "gemini-client"
    assert final["thoughts"] == "".join(A_THINKING) and final["text"] == "".join(A_TEXT)
    calls = final["function_calls"]
    assert [(c["id"], c["name"], c["args"]) for c in calls] == \
        [(id_, name, json.loads("".join(frags))) for id_, name, frags in A_CALLS]
    # Claude's thinking rides, with its signature, on the first call: Gemini CLI keeps only that (gemini.md §7)
    assert gemini_signatures(calls[0]["thoughtSignature"]) == [(Opaque(origin="anthropic", data=A_SIGNATURE),
                                                                "".join(A_THINKING))]
    assert calls[1]["thoughtSignature"] is None
    assert final["finishReason"] == "STOP"  # tool use ends with STOP (gemini.md §9.10)
    prompt = sum(A_USAGE_START[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    assert final["usageMetadata"] == {"promptTokenCount": prompt, "candidatesTokenCount": A_OUTPUT_TOKENS,
                                      "totalTokenCount": prompt + A_OUTPUT_TOKENS,
                                      "cachedContentTokenCount": A_USAGE_START["cache_read_input_tokens"]}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_chat_to_gemini_content(framing: str) -> None:
    final = fold_gemini(check_gemini_stream(run(G, C, GEMINI_CLIENT_BODY, [C_RAW], gemini_op(framing)), framing))
    assert final["thoughts"] == "".join(C_REASONING) and final["text"] == "".join(C_TEXT)
    assert [(c["id"], c["name"], c["args"]) for c in final["function_calls"]] == \
        [(id_, name, json.loads("".join(frags))) for (id_, _, frags), name in zip(C_CALLS, [LONG_NAME, "get_time"],
                                                                                   strict=True)]
    assert final["finishReason"] == "STOP"
    reasoning = C_USAGE["completion_tokens_details"]["reasoning_tokens"]
    assert final["usageMetadata"] == {
        "promptTokenCount": C_USAGE["prompt_tokens"], "cachedContentTokenCount": C_USAGE["prompt_tokens_details"][
            "cached_tokens"], "thoughtsTokenCount": reasoning,
        "candidatesTokenCount": C_USAGE["completion_tokens"] - reasoning, "totalTokenCount": C_USAGE["total_tokens"]}


UPSTREAM_RAWS = {"anthropic": (A, A_RAW), "chat": (C, C_RAW), "gemini": (G, G_RAW)}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("upstream", list(UPSTREAM_RAWS))
@SPLIT_SETTINGS
@given(data=st.data())
def test_any_upstream_to_gemini_any_split(upstream: str, framing: str, data: st.DataObject) -> None:
    module, raw = UPSTREAM_RAWS[upstream]
    whole = run(G, module, GEMINI_CLIENT_BODY, [raw], gemini_op(framing))
    check_gemini_stream(whole, framing)
    assert run(G, module, GEMINI_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw))), gemini_op(framing)) == whole


@pytest.mark.parametrize("framing", FRAMINGS)
def test_anthropic_to_gemini_one_byte_at_a_time(framing: str) -> None:
    whole = run(G, A, GEMINI_CLIENT_BODY, [A_RAW], gemini_op(framing))
    assert run(G, A, GEMINI_CLIENT_BODY, [A_RAW[i:i + 1] for i in range(len(A_RAW))], gemini_op(framing)) == whole


# The error each upstream stream ends with, as a Gemini client must get it (gemini.md §4.6, §5.3): overloaded
# is 503 UNAVAILABLE, a server error 500 INTERNAL; ``error`` the only key, ``code`` a number (§4.4).
MID_STREAM_ERRORS = {
    "anthropic": (A, A_RAW_ERROR, "".join(A_TEXT), {"code": 503, "message": "Overloaded — réessayez",
                                                    "status": "UNAVAILABLE"}),
    "chat": (C, C_RAW_ERROR, "".join(C_TEXT), {"code": 500, "message": "Internal error — désolé",
                                               "status": "INTERNAL"}),
    "gemini": (G, G_RAW_TAIL, "".join(G_TEXT), G_ERROR),
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("upstream", list(MID_STREAM_ERRORS))
@SPLIT_SETTINGS
@given(data=st.data())
def test_error_mid_stream_to_gemini_any_split(upstream: str, framing: str, data: st.DataObject) -> None:
    module, raw, text, error = MID_STREAM_ERRORS[upstream]
    whole = run(G, module, GEMINI_CLIENT_BODY, [raw], gemini_op(framing))
    chunks = check_gemini_stream(whole, framing)
    assert fold_gemini(chunks)["text"] == text
    assert chunks[-1] == {"error": error}
    assert run(G, module, GEMINI_CLIENT_BODY, split_at(raw, data.draw(cuts_for(raw))), gemini_op(framing)) == whole


@pytest.mark.parametrize("framing", FRAMINGS)
def test_truncated_upstream_ends_a_gemini_stream_with_an_error(framing: str) -> None:
    raw = anthropic_sse(anthropic_events()[:-2])  # no message_delta, no message_stop
    chunks = check_gemini_stream(run(G, A, GEMINI_CLIENT_BODY, [raw], gemini_op(framing)), framing)
    assert "error" in chunks[-1] and fold_gemini(chunks)["finishReason"] is None


# --- non-streamed fold == streamed fold (style.md item 7) ------------------------------------------


def fold_stream(module: ModuleType, raw: bytes, ctx: Context) -> Response:
    parser, decoder = module.StreamParser(ctx), SSEDecoder()
    events = [ev for s in decoder.feed(raw) + decoder.close() for ev in parser.feed(s)] + parser.close()
    return accumulate(events)


def normalized(resp: Response) -> Response:
    """Tool arguments compared as JSON values: a stream carries the model's own spacing, a body an object."""
    content = tuple(ToolCall(id=p.id, name=p.name, arguments=json.dumps(json.loads(p.arguments), sort_keys=True),
                             kind=p.kind) if isinstance(p, ToolCall) else p for p in resp.content)
    return Response(id=resp.id, model=resp.model, content=content, stop_reason=resp.stop_reason,
                    raw_stop_reason=resp.raw_stop_reason, stop_sequence=resp.stop_sequence, usage=resp.usage)


ANTHROPIC_BODY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "thinking", "thinking": "".join(A_THINKING), "signature": A_SIGNATURE},
                {"type": "text", "text": "".join(A_TEXT)},
                *({"type": "tool_use", "id": id_, "name": name, "input": json.loads("".join(frags))}
                  for id_, name, frags in A_CALLS)],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {**A_USAGE_START, "output_tokens": A_OUTPUT_TOKENS},
}


def test_anthropic_fold_equals_stream() -> None:
    streamed = fold_stream(A, A_RAW, make_ctx())
    whole = accumulate(A.response_events(ANTHROPIC_BODY, make_ctx()))
    assert normalized(streamed) == normalized(whole)
    assert len(whole.content) == len(ANTHROPIC_BODY["content"])


def test_chat_fold_equals_stream() -> None:
    message = {"role": "assistant", "content": "".join(C_TEXT), "refusal": None,
               "reasoning_content": "".join(C_REASONING),
               "tool_calls": [{"id": id_, "type": "function", "function": {"name": name, "arguments": "".join(frags)}}
                              for id_, name, frags in C_CALLS]}
    body = {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
            "model": "deepseek-reasoner", "usage": C_USAGE,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}]}
    streamed = fold_stream(C, C_RAW, make_ctx())
    whole = accumulate(C.response_events(body, make_ctx()))
    assert streamed == whole
    assert len(whole.content) == 4


def gemini_body() -> dict[str, Any]:
    """The answer of G_RAW as one GenerateContentResponse: every part of every chunk, the last usage."""
    chunks = gemini_chunks()
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    return {**chunks[-1], "candidates": [{**chunks[-1]["candidates"][0], "content": {"role": "model", "parts": parts}}]}


def test_gemini_fold_equals_stream() -> None:
    streamed = fold_stream(G, G_RAW, make_ctx())
    whole = accumulate(G.response_events(gemini_body(), make_ctx()))
    assert streamed == whole
    assert [type(p).__name__ for p in whole.content] == ["Reasoning", "Text", "Reasoning", "ToolCall", "ToolCall"]
    assert whole.stop_reason is StopReason.TOOL_USE


# A tool that takes no arguments: the stream carries only an empty input_json_delta (formats.md §4.2:
# "Empty partial_json is allowed"; the SDK keeps the start's input {} when no non-empty fragment follows).
NO_ARG_STREAM = anthropic_sse([
    {"type": "message_start", "message": {"id": "msg_noarg", "type": "message", "role": "assistant",
                                          "model": "claude", "content": [], "stop_reason": None,
                                          "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "tool_use", "id": "toolu_noarg", "name": "get_time", "input": {}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 12}},
    {"type": "message_stop"},
])
NO_ARG_BODY = {"id": "msg_noarg", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "tool_use", "id": "toolu_noarg", "name": "get_time", "input": {}}],
               "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 12}}


def test_anthropic_no_argument_tool_call_fold_equals_stream() -> None:
    streamed = fold_stream(A, NO_ARG_STREAM, make_ctx())
    whole = accumulate(A.response_events(NO_ARG_BODY, make_ctx()))
    assert streamed == whole


def test_anthropic_no_argument_tool_call_reaches_chat_client_as_valid_json() -> None:
    out = run(C, A, CHAT_CLIENT_BODY, [NO_ARG_STREAM])
    final = fold_chat(check_chat_stream(out))  # the checker requires each call's arguments to be JSON
    assert [json.loads(c["arguments"]) for c in final["tool_calls"]] == [{}]


# --- the next turn: what the client echoes back reaches the upstream as the upstream sent it -------


def test_anthropic_client_echo_reaches_chat_upstream_unchanged() -> None:
    """Chat upstream → Anthropic client, then the client's next request goes back to the Chat upstream."""
    final = fold_anthropic(check_anthropic_stream(run(A, C, ANTHROPIC_CLIENT_BODY, [C_RAW])))
    calls = [b for b in final["content"] if b["type"] == "tool_use"]
    body = {**ANTHROPIC_CLIENT_BODY, "messages": [
        *ANTHROPIC_CLIENT_BODY["messages"],
        {"role": "assistant", "content": final["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c["id"], "content": f"result {n}"}
                                     for n, c in enumerate(calls)]}]}
    _, upstream_body = translate.Exchange.start(A, C, json.dumps(body).encode(), make_ctx())
    messages = json.loads(upstream_body)["messages"]
    assistant = messages[1]
    assert assistant["reasoning_content"] == "".join(C_REASONING)
    assert assistant["content"] == "".join(C_TEXT)
    sent = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]]
    assert sent == [(id_, name, json.loads("".join(frags))) for id_, name, frags in C_CALLS]
    assert [(m["role"], m["tool_call_id"]) for m in messages[2:]] == [("tool", id_) for id_, _, _ in C_CALLS]


def test_chat_client_echo_reaches_anthropic_upstream_unchanged() -> None:
    """Anthropic upstream → Chat client, then the client's next request goes back to the Anthropic upstream."""
    final = fold_chat(check_chat_stream(run(C, A, CHAT_CLIENT_BODY, [A_RAW])))
    assistant = {"role": "assistant", "content": final["content"], "reasoning_content": final["reasoning_content"],
                 "thinking_blocks": final["thinking_blocks"],
                 "tool_calls": [{"id": c["id"], "type": "function",
                                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                                for c in final["tool_calls"]]}
    body = {**CHAT_CLIENT_BODY, "messages": [
        *CHAT_CLIENT_BODY["messages"], assistant,
        *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in final["tool_calls"])]}
    _, upstream_body = translate.Exchange.start(C, A, json.dumps(body).encode(), make_ctx())
    blocks = json.loads(upstream_body)["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "".join(A_THINKING), "signature": A_SIGNATURE}
    assert blocks[1] == {"type": "text", "text": "".join(A_TEXT)}
    assert [(b["id"], b["name"], b["input"]) for b in blocks[2:]] == \
        [(id_, name, json.loads("".join(frags))) for id_, name, frags in A_CALLS]
    results = json.loads(upstream_body)["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == [id_ for id_, _, _ in A_CALLS]


def gemini_next_turn(chunks: list[dict[str, Any]], sdk: bool) -> dict[str, Any]:
    """The request a Gemini client sends after the answer ``chunks``, with one result per call. Gemini CLI keeps
    one model content, drops thought parts and keeps the signatures (gemini.md §7, §2.8); google-genai's chat
    helper resends every part, one model content per chunk, its bytes re-encoded URL-safe (§2.2, §2.3)."""
    model: list[dict[str, Any]] = []
    for chunk in chunks:
        parts = []
        for part in chunk["candidates"][0]["content"]["parts"]:
            if part.get("thought") and not sdk:
                continue
            if sdk and "thoughtSignature" in part:
                raw = base64.b64decode(part["thoughtSignature"])
                part = {**part, "thoughtSignature": base64.urlsafe_b64encode(raw).decode()}
            parts.append(part)
        model.append({"role": "model", "parts": parts})
    if not sdk:
        model = [{"role": "model", "parts": [p for c in model for p in c["parts"]]}]
    calls = fold_gemini(chunks)["function_calls"]
    results = [{"functionResponse": {"id": c["id"], "name": c["name"], "response": {"output": f"result {n}"}}}
               for n, c in enumerate(calls)]
    return {**GEMINI_CLIENT_BODY, "contents": [*GEMINI_CLIENT_BODY["contents"], *model,
                                               {"role": "user", "parts": results}]}


@pytest.mark.parametrize("sdk", [False, True], ids=["gemini-cli", "google-genai"])
def test_gemini_client_echo_reaches_anthropic_upstream_unchanged(sdk: bool) -> None:
    """Anthropic upstream → Gemini client; Claude's thinking rode in a thoughtSignature and comes back whole."""
    chunks = check_gemini_stream(run(G, A, GEMINI_CLIENT_BODY, [A_RAW], gemini_op()))
    _, upstream_body = translate.Exchange.start(G, A, json.dumps(gemini_next_turn(chunks, sdk)).encode(), make_ctx(),
                                                op=gemini_op())
    messages = json.loads(upstream_body)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    blocks = messages[1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "".join(A_THINKING), "signature": A_SIGNATURE}
    assert blocks[1] == {"type": "text", "text": "".join(A_TEXT)}
    assert [(b["type"], b["id"], b["name"], b["input"]) for b in blocks[2:]] == \
        [("tool_use", id_, name, json.loads("".join(frags))) for id_, name, frags in A_CALLS]
    assert [(r["type"], r["tool_use_id"]) for r in messages[2]["content"]] == \
        [("tool_result", id_) for id_, _, _ in A_CALLS]


@pytest.mark.parametrize("sdk", [False, True], ids=["gemini-cli", "google-genai"])
def test_gemini_client_echo_reaches_chat_upstream_unchanged(sdk: bool) -> None:
    chunks = check_gemini_stream(run(G, C, GEMINI_CLIENT_BODY, [C_RAW], gemini_op()))
    _, upstream_body = translate.Exchange.start(G, C, json.dumps(gemini_next_turn(chunks, sdk)).encode(), make_ctx(),
                                                op=gemini_op())
    messages = json.loads(upstream_body)["messages"]
    assistant = messages[1]
    assert assistant["reasoning_content"] == "".join(C_REASONING)
    assert assistant["content"] == "".join(C_TEXT)
    sent = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]]
    assert sent == [(id_, name, json.loads("".join(frags))) for id_, name, frags in C_CALLS]
    assert [(m["role"], m["tool_call_id"]) for m in messages[2:]] == [("tool", id_) for id_, _, _ in C_CALLS]


def test_anthropic_client_echo_reaches_gemini_upstream_with_its_signature() -> None:
    """Gemini upstream → Anthropic client; the signature goes back on the call it came on (gemini.md §7)."""
    final = fold_anthropic(check_anthropic_stream(gemini_to("anthropic", [G_RAW])))
    calls = [b for b in final["content"] if b["type"] == "tool_use"]
    body = {**ANTHROPIC_WEATHER_BODY, "messages": [
        *ANTHROPIC_WEATHER_BODY["messages"], {"role": "assistant", "content": final["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c["id"], "content": f"result {n}"}
                                     for n, c in enumerate(calls)]}]}
    _, upstream_body = translate.Exchange.start(A, G, json.dumps(body).encode(), make_ctx(),
                                                upstream_model="gemini-3-pro-preview")
    wire = json.loads(upstream_body)
    assert mu.gemini_refusal(wire, "gemini-3-pro-preview") is None
    model, results = wire["contents"][1], wire["contents"][2]
    assert [m["role"] for m in wire["contents"]] == ["user", "model", "user"]
    assert "".join(p.get("text", "") for p in model["parts"]) == "".join(G_TEXT)
    sent = [p for p in model["parts"] if "functionCall" in p]
    assert [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in sent] == \
        [(name, args) for _, name, args in G_CALLS]
    assert sent[1]["functionCall"]["id"] == G_CALLS[1][0]
    assert [p.get("thoughtSignature") for p in model["parts"]] == [None] * (len(model["parts"]) - 2) + [G_SIGNATURE,
                                                                                                       None]
    assert [(r["functionResponse"]["id"], r["functionResponse"]["name"]) for r in results["parts"]] == \
        [(p["functionCall"]["id"], p["functionCall"]["name"]) for p in sent]


# --- any event sequence a parser can produce: both emitters keep the grammar and the content ---------

_FINISH_WIRE = {  # formats.md §5.8 and gemini.md §9.10: IR stop reason → (Anthropic, Chat, Gemini)
    StopReason.END_TURN: ("end_turn", "stop", "STOP"), StopReason.STOP_SEQUENCE: ("stop_sequence", "stop", "STOP"),
    StopReason.TOOL_USE: ("tool_use", "tool_calls", "STOP"),
    StopReason.MAX_TOKENS: ("max_tokens", "length", "MAX_TOKENS"),
    StopReason.REFUSAL: ("refusal", "content_filter", "SAFETY"), StopReason.PAUSE: ("pause_turn", "stop", "STOP"),
    StopReason.CONTEXT_EXCEEDED: ("model_context_window_exceeded", "length", "MAX_TOKENS"),
    StopReason.OTHER: ("end_turn", "stop", "STOP"),
}
_pieces = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4)
_opaque = st.one_of(st.builds(Opaque, origin=st.just("anthropic"), data=st.text(min_size=1, max_size=12)),
                    st.builds(Opaque, origin=st.just("chat"), data=st.just("")))


@st.composite
def event_sequences(draw: st.DrawFn, opaques: st.SearchStrategy[Opaque] = _opaque
                    ) -> tuple[list[Any], list[dict[str, Any]]]:
    """IR events as the parsers produce them, and the blocks they describe (reasoning signed with ``opaques``)."""
    events: list[Any] = [MessageStart(id=draw(st.sampled_from(["msg_1", "chatcmpl-1", "x"])), model="m",
                                      usage=Usage(input_tokens=draw(st.integers(0, 999))))]
    blocks = []
    for bid in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "reasoning", "redacted", "tool"]))
        if kind == "text":
            parts = draw(_pieces)
            events += [BlockStart(block_id=bid, kind=BlockKind.TEXT),
                       *(BlockDelta(block_id=bid, text=p) for p in parts), BlockStop(block_id=bid)]
            blocks.append({"kind": kind, "text": "".join(parts)})
        elif kind == "reasoning":
            parts, opaque = draw(st.lists(st.text(min_size=1, max_size=8), max_size=3)), draw(opaques)
            events += [BlockStart(block_id=bid, kind=BlockKind.REASONING),
                       *(BlockDelta(block_id=bid, text=p) for p in parts), BlockStop(block_id=bid, opaque=opaque)]
            blocks.append({"kind": kind, "text": "".join(parts), "opaque": opaque})
        elif kind == "redacted":
            opaque = Opaque(origin="anthropic", data=draw(st.text(min_size=1, max_size=12)))
            events += [BlockStart(block_id=bid, kind=BlockKind.REASONING, redacted=True),
                       BlockStop(block_id=bid, opaque=opaque)]
            blocks.append({"kind": kind, "opaque": opaque})
        else:
            args = json.dumps(draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5),
                                                   max_size=3)), ensure_ascii=False)
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            fragments = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
            call_id = draw(st.sampled_from(["toolu_01abc", "call_xyz", "functions.f:0"]))
            events += [BlockStart(block_id=bid, kind=BlockKind.TOOL_CALL, tool_call_id=call_id, tool_name=f"tool{bid}"),
                       *(BlockDelta(block_id=bid, text=f) for f in fragments if f), BlockStop(block_id=bid)]
            blocks.append({"kind": kind, "id": call_id, "name": f"tool{bid}", "args": args})
    if draw(st.booleans()):
        events.append(UsageUpdate(usage=Usage(output_tokens=draw(st.integers(0, 999)))))
    if draw(st.integers(0, 4)) == 0:
        events.append(StreamError(status=529, kind="overloaded", message=draw(st.text(max_size=10))))
    else:
        events.append(Finish(stop_reason=draw(st.sampled_from(list(StopReason)))))
    return events, blocks


def _emit(module: ModuleType, events: list[Any]) -> bytes:
    emitter = module.StreamEmitter(make_ctx())
    return b"".join(b for ev in events for b in emitter.feed(ev))


@settings(max_examples=80, deadline=None)
@given(case=event_sequences())
def test_anthropic_emitter_any_sequence(case: tuple[list[Any], list[dict[str, Any]]]) -> None:
    events, blocks = case
    final = fold_anthropic(check_anthropic_stream(_emit(A, events)))
    expected = []
    for b in blocks:
        if b["kind"] == "text":
            expected.append({"type": "text", "text": b["text"]})
        elif b["kind"] == "reasoning":
            signature = b["opaque"].data if b["opaque"].origin == "anthropic" else None
            expected.append({"type": "thinking", "thinking": b["text"], "signature": signature})
        elif b["kind"] == "redacted":
            expected.append({"type": "redacted_thinking", "data": b["opaque"].data})
        else:
            expected.append({"type": "tool_use", "id": safe_tool_id(b["id"]), "name": b["name"],
                             "input": json.loads(b["args"])})
    got = final["content"]
    for block, want in zip(got, expected, strict=False):
        if want.get("signature", "") is None:  # a foreign opaque travels in the bridge envelope
            assert decode_signature(block["signature"], "anthropic") == Opaque(origin="chat", data="")
            block["signature"] = None
    if isinstance(events[-1], Finish):
        assert got == expected
        assert final["stop_reason"] == _FINISH_WIRE[events[-1].stop_reason][0]
    else:
        assert final["error"]["type"] == "overloaded_error"


@settings(max_examples=80, deadline=None)
@given(case=event_sequences())
def test_chat_emitter_any_sequence(case: tuple[list[Any], list[dict[str, Any]]]) -> None:
    events, blocks = case
    final = fold_chat(check_chat_stream(_emit(C, events)))
    assert final["content"] == "".join(b["text"] for b in blocks if b["kind"] == "text")
    assert final["reasoning_content"] == "".join(b["text"] for b in blocks if b["kind"] == "reasoning")
    assert final["tool_calls"] == [{"id": b["id"], "name": b["name"], "arguments": b["args"]}
                                   for b in blocks if b["kind"] == "tool"]
    assert final["thinking_blocks"] == [
        {"type": "thinking", "thinking": b["text"], "signature": b["opaque"].data} if b["kind"] == "reasoning"
        else {"type": "redacted_thinking", "data": b["opaque"].data}
        for b in blocks if b["kind"] in ("reasoning", "redacted") and b["opaque"].origin == "anthropic"]
    if isinstance(events[-1], Finish):
        assert final["finish_reason"] == _FINISH_WIRE[events[-1].stop_reason][1]
        assert final["usage"] is not None  # no client request in the context: usage is sent
    else:
        assert final["error"]["type"] == "server_is_overloaded"


_gemini_opaque = st.one_of(_opaque, st.builds(Opaque, origin=st.just("gemini"), data=st.binary(
    min_size=1, max_size=9).map(lambda b: base64.b64encode(b).decode())))


@pytest.mark.parametrize("framing", FRAMINGS)
@settings(max_examples=60, deadline=None)
@given(case=event_sequences(_gemini_opaque))
def test_gemini_emitter_any_sequence(framing: str, case: tuple[list[Any], list[dict[str, Any]]]) -> None:
    events, blocks = case
    emitter = G.StreamEmitter(replace(make_ctx(), framing=framing))
    final = fold_gemini(check_gemini_stream(b"".join(b for ev in events for b in emitter.feed(ev)), framing))
    if not isinstance(events[-1], Finish):
        assert final["error"]["status"] == "UNAVAILABLE" and final["error"]["code"] == 503
        return
    assert final["modelVersion"] == "m"
    text = "".join(b["text"] for b in blocks if b["kind"] == "text")
    if events[-1].stop_reason is StopReason.REFUSAL and not text:
        assert final["text"]  # Gemini CLI takes a SAFETY finish without text for a broken stream (gemini.md §9.10)
    else:
        assert final["text"] == text
    assert final["thoughts"] == "".join(b["text"] for b in blocks if b["kind"] == "reasoning")
    assert [(c["id"], c["name"], c["args"]) for c in final["function_calls"]] == \
        [(b["id"], b["name"], json.loads(b["args"])) for b in blocks if b["kind"] == "tool"]
    assert final["finishReason"] == _FINISH_WIRE[events[-1].stop_reason][2]
    # Every signature arrives, in order: Gemini's own as they were, any other's inside the bridge's (§7).
    signed = [b for b in blocks if b["kind"] in ("reasoning", "redacted")]
    own = [b["opaque"].data for b in signed if b["opaque"].origin == "gemini"]
    foreign = [(b["opaque"], b.get("text", "")) for b in signed if b["opaque"].origin != "gemini"]
    sent = [p["thoughtSignature"] for p in final["parts"] if "thoughtSignature" in p]
    assert [s for s in sent if s in own] == own
    assert [pair for s in sent if s not in own for pair in gemini_signatures(s)] == foreign
    usage = final["usageMetadata"]
    assert usage["promptTokenCount"] == events[0].usage.input_tokens
    updates = [ev.usage.output_tokens for ev in events if isinstance(ev, UsageUpdate)]
    assert usage["candidatesTokenCount"] == (updates[-1] if updates else 0)
