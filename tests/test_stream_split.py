"""Stream translation does not depend on where the network splits the upstream bytes.

mitmproxy hands the stream callable chunks at arbitrary boundaries (formats.md §7.8, §7.9): inside a
``data:`` line, between ``\\r`` and ``\\n``, inside a multibyte UTF-8 character. For realistic upstream
streams in both directions, every split must give byte-identical client output, and that output
must follow the client format's grammar and carry the upstream's content.

Also here: the non-streamed fold equals the streamed one (style.md item 7).
"""

from __future__ import annotations

import itertools
import json
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from addon import translate
from addon.accumulate import accumulate
from addon.formats import anthropic as A
from addon.formats import chat as C
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
from tests.stream_grammar import check_anthropic_stream, check_chat_stream, fold_anthropic, fold_chat

CREATED = 1_700_000_000
LONG_NAME = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository_v2"
SPLIT_SETTINGS = settings(max_examples=40, deadline=None)


def make_ctx() -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):04d}", created=CREATED)


def run(client: ModuleType, upstream: ModuleType, body: dict[str, Any], chunks: list[bytes]) -> bytes:
    exchange, _ = translate.Exchange.start(client, upstream, json.dumps(body).encode(), make_ctx())
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


# --- any event sequence a parser can produce: both emitters keep the grammar and the content ---------

_FINISH_WIRE = {  # formats.md §5.8, IR stop reason → (Anthropic stop_reason, Chat finish_reason)
    StopReason.END_TURN: ("end_turn", "stop"), StopReason.STOP_SEQUENCE: ("stop_sequence", "stop"),
    StopReason.TOOL_USE: ("tool_use", "tool_calls"), StopReason.MAX_TOKENS: ("max_tokens", "length"),
    StopReason.REFUSAL: ("refusal", "content_filter"), StopReason.PAUSE: ("pause_turn", "stop"),
    StopReason.CONTEXT_EXCEEDED: ("model_context_window_exceeded", "length"), StopReason.OTHER: ("end_turn", "stop"),
}
_pieces = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4)
_opaque = st.one_of(st.builds(Opaque, origin=st.just("anthropic"), data=st.text(min_size=1, max_size=12)),
                    st.builds(Opaque, origin=st.just("chat"), data=st.just("")))


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[Any], list[dict[str, Any]]]:
    """IR events as the parsers produce them, and the blocks they describe."""
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
            parts, opaque = draw(st.lists(st.text(min_size=1, max_size=8), max_size=3)), draw(_opaque)
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
