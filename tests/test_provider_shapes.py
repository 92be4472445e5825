"""Real providers' stream shapes the bridge once mishandled (issue 13), in every client format.

Each upstream stream is built from the provider's documented shape: OpenAI's refusal (``delta.refusal``
text, ``finish_reason: "stop"``), Mistral Magistral's list ``content`` with ``thinking`` parts, an
Anthropic stream cut by ``max_tokens`` inside a tool call's JSON (no ``content_block_stop``),
OpenRouter's Responses stream whose message item opens while its reasoning item is still open, and a
Chat server interleaving the argument fragments of parallel tool calls. Each is translated for every
client format of another API, checked against that client's grammar (tests/stream_grammar.py, what the
official SDKs' stream helpers need) and folded back to see that nothing was lost. Hypothesis then
generates overlapping items and interleaved fragments at random.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from addon.formats import FORMATS
from addon.formats.common import Budget, Context
from addon.sequence import BlockOrder
from addon.translate import StreamTranslator
from tests.stream_grammar import (
    check_anthropic_stream,
    check_chat_stream,
    check_responses_stream,
    fold_anthropic,
    fold_chat,
)


def translate(upstream: str, client: str, raw: bytes, split: int | None = None) -> bytes:
    counter = itertools.count(1)
    ctx = Context(new_id=lambda prefix: f"{prefix}t{next(counter)}", created=1)
    client_format = FORMATS[client]
    t = StreamTranslator(FORMATS[upstream].StreamParser(ctx), client_format.StreamEmitter(ctx),
                         order=BlockOrder(ctx.budget, client_format.block_channel))
    pieces = [raw] if split is None else [raw[i:i + split] for i in range(0, len(raw), split)]
    return b"".join(b for p in pieces for b in t.feed(p)) + b"".join(t.close())


def sse(*objs: dict[str, Any], named: bool = False) -> bytes:
    return b"".join((f"event: {o['type']}\n" if named else "").encode() + b"data: " + json.dumps(o).encode() + b"\n\n"
                    for o in objs)


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def chat_stream(*chunks: dict[str, Any]) -> bytes:
    return sse(*chunks) + b"data: [DONE]\n\n"


def fold_responses(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]["response"]


def client_view(client: str, raw: bytes) -> dict[str, Any]:
    """The client's grammar checked, and its answer folded: text, reasoning, calls and how it ended."""
    if client == "anthropic":
        message = fold_anthropic(check_anthropic_stream(raw))
        blocks = message["content"]
        return {"text": "".join(b.get("text", "") for b in blocks if b["type"] == "text"),
                "reasoning": "".join(b.get("thinking", "") for b in blocks if b["type"] == "thinking"),
                "calls": [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
                "stop": message.get("stop_reason"), "order": [b["type"] for b in blocks]}
    if client == "chat":
        message = fold_chat(check_chat_stream(raw))
        return {"text": message.get("content") or "", "reasoning": message.get("reasoning_content") or "",
                "calls": [(c["name"], json.loads(c["arguments"]))
                          for c in message.get("tool_calls") or ()], "stop": message.get("finish_reason")}
    response = fold_responses(check_responses_stream(raw))
    items = response["output"]
    return {"text": "".join(p["text"] for i in items if i["type"] == "message" for p in i["content"]),
            "reasoning": "\n\n".join(s["text"] for i in items if i["type"] == "reasoning" for s in i["summary"]),
            "calls": [(i["name"], json.loads(i["arguments"])) for i in items if i["type"] == "function_call"],
            "stop": response["status"], "order": [i["type"] for i in items]}


# --- 1. OpenAI's refusal -------------------------------------------------------------------------------

REFUSAL = "I'm sorry, I can't help with that."
OPENAI_REFUSAL = chat_stream(
    chat_chunk({"role": "assistant", "content": None, "refusal": ""}),
    *(chat_chunk({"refusal": REFUSAL[i:i + 7]}) for i in range(0, len(REFUSAL), 7)),
    chat_chunk({}, "stop"))


def test_an_openai_refusal_is_a_refusal_for_an_anthropic_client() -> None:
    view = client_view("anthropic", translate("chat", "anthropic", OPENAI_REFUSAL))
    assert view["text"] == REFUSAL and view["stop"] == "refusal"


def test_an_openai_refusal_reaches_a_responses_client_as_its_text() -> None:
    """formats.md §6.4: a refusal part makes Codex drop the message; the text, status completed."""
    view = client_view("responses", translate("chat", "responses", OPENAI_REFUSAL))
    assert view["text"] == REFUSAL and view["stop"] == "completed"


# --- 2. Mistral Magistral: content as a list, thinking among its parts --------------------------------------

THINKING = "The user greets me. " * 21  # 420 characters, as the issue saw
MAGISTRAL = chat_stream(
    chat_chunk({"role": "assistant", "content": ""}),
    *(chat_chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": THINKING[i:i + 60]}]}]})
      for i in range(0, len(THINKING), 60)),
    chat_chunk({"content": [{"type": "text", "text": "Hello! "}]}),
    chat_chunk({"content": "How can I help?"}),
    chat_chunk({}, "stop"))


def test_magistral_thinking_is_carried_as_reasoning() -> None:
    for client in ("anthropic", "responses"):
        view = client_view(client, translate("chat", client, MAGISTRAL, split=13))
        assert view["reasoning"] == THINKING, client
        assert view["text"] == "Hello! How can I help?", client
        assert view["order"][:2] in (["thinking", "text"], ["reasoning", "message"]), view


def test_a_non_streamed_answer_with_list_content_is_read_too() -> None:
    counter = itertools.count(1)
    ctx = Context(new_id=lambda prefix: f"{prefix}{next(counter)}")
    body = {"id": "c", "model": "magistral", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                                         {"type": "text", "text": "ok"}]}}]}
    from addon.accumulate import accumulate
    from addon.ir import Reasoning, Text
    resp = accumulate(FORMATS["chat"].response_events(body, ctx))
    assert [type(p) for p in resp.content] == [Reasoning, Text]
    assert (resp.content[0].text, resp.content[1].text) == ("hm", "ok")  # type: ignore[union-attr]


def test_a_magistral_history_with_thinking_parts_is_translated_not_refused() -> None:
    """A Chat client echoing Magistral's answer (its thinking as a content part) in the next request."""
    body = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                                          {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "again"}]}
    request = FORMATS["chat"].parse_request(body)
    assistant = request.messages[1]
    assert [(type(p).__name__, p.text) for p in assistant.content] == [("Reasoning", "hm"), ("Text", "Hello")]
    ctx = Context(new_id=lambda prefix: f"{prefix}1", request=request)
    chat = FORMATS["chat"].render_request(request, ctx)
    assert chat["messages"][1]["reasoning_content"] == "hm" and chat["messages"][1]["content"] == "Hello"
    anthropic = FORMATS["anthropic"].render_request(request, ctx)
    assert anthropic["messages"][1]["content"][-1] == {"type": "text", "text": "Hello"}


# --- 3. Anthropic: max_tokens in the middle of a tool call's JSON ------------------------------------------

ANTHROPIC_CUT = sse(
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                          "model": "claude", "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": 5, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                  "name": "Bash", "input": {}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
                                                          "partial_json": '{"command": "echo he'}},
    {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
     "usage": {"output_tokens": 9}},
    {"type": "message_stop"}, named=True)


def test_a_tool_call_cut_by_max_tokens_is_closed_and_listed_for_a_responses_client() -> None:
    """Was: output_item.added and argument deltas, then response.incomplete without the call, which
    never got its output_item.done."""
    events = check_responses_stream(translate("anthropic", "responses", ANTHROPIC_CUT))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(i["type"], i["call_id"], i["arguments"]) for i in done] == [
        ("function_call", "toolu_1", '{"command": "echo he')]
    assert events[-1]["type"] == "response.incomplete" and events[-1]["response"]["output"] == done


def test_a_tool_call_cut_by_max_tokens_reaches_a_chat_client_with_its_finish() -> None:
    chunks = check_chat_stream(translate("anthropic", "chat", ANTHROPIC_CUT))
    args = "".join(c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("function", {}).get("arguments", "")
                   for c in chunks if c.get("choices"))
    assert args == '{"command": "echo he' and fold_chat(chunks)["finish_reason"] == "length"


# --- 4. OpenRouter: the message item opens while the reasoning item is open ---------------------------------

def responses_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


OPENROUTER = sse(
    responses_event("response.created", response={"id": "resp_1", "object": "response", "status": "in_progress",
                                                   "model": "x", "output": []}),
    responses_event("response.output_item.added", output_index=0,
                    item={"type": "reasoning", "id": "rs_1", "summary": []}),
    responses_event("response.reasoning_summary_text.delta", output_index=0, item_id="rs_1", summary_index=0,
                    delta="Thinking about it."),
    responses_event("response.output_item.added", output_index=1,
                    item={"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress",
                          "content": []}),
    responses_event("response.output_text.delta", output_index=1, item_id="msg_1", content_index=0, delta="Hel"),
    responses_event("response.reasoning_summary_text.delta", output_index=0, item_id="rs_1", summary_index=0,
                    delta=" Done."),
    responses_event("response.output_text.delta", output_index=1, item_id="msg_1", content_index=0, delta="lo!"),
    responses_event("response.output_item.done", output_index=0,
                    item={"type": "reasoning", "id": "rs_1", "summary": [
                        {"type": "summary_text", "text": "Thinking about it. Done."}]}),
    responses_event("response.output_item.done", output_index=1,
                    item={"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}),
    responses_event("response.completed", response={
        "id": "resp_1", "object": "response", "status": "completed", "model": "x", "output": [],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}))


def test_overlapping_responses_items_reach_every_client_whole() -> None:
    """Was: "upstream started output item 1 before item 0 was done; the bridge follows one item at a time"."""
    for client in ("anthropic", "chat"):
        view = client_view(client, translate("responses", client, OPENROUTER, split=17))
        assert view["reasoning"] == "Thinking about it. Done." and view["text"] == "Hello!", client
    assert client_view("anthropic", translate("responses", "anthropic", OPENROUTER))["order"] == ["thinking", "text"]


def test_when_nothing_overlaps_nothing_waits() -> None:
    """The first token goes out with the chunk that brought it, for a client that takes blocks one at a time."""
    counter = itertools.count(1)
    ctx = Context(new_id=lambda prefix: f"{prefix}{next(counter)}")
    t = StreamTranslator(FORMATS["chat"].StreamParser(ctx), FORMATS["anthropic"].StreamEmitter(ctx),
                         order=BlockOrder(ctx.budget, FORMATS["anthropic"].block_channel))
    first = b"".join(t.feed(sse(chat_chunk({"role": "assistant", "content": "Hi"}))))
    assert b'"text":"Hi"' in first


# --- interleaved tool-call fragments (Chat servers), and the property test --------------------------------

def interleaved_calls(calls: list[tuple[str, str]], order: list[int], size: int) -> bytes:
    """Chat chunks for ``calls`` (name, arguments), their fragments of ``size`` characters interleaved in
    the order ``order`` draws from (each call's own fragments stay in order)."""
    fragments = [[args[i:i + size] for i in range(0, len(args), size)] or [""] for _, args in calls]
    chunks = [chat_chunk({"role": "assistant"})]
    started: set[int] = set()
    queue = [list(f) for f in fragments]
    for pick in order + [n for n in range(len(calls)) for _ in range(len(fragments[n]))]:
        n = pick % len(calls)
        if not queue[n]:
            continue
        piece = queue[n].pop(0)
        call: dict[str, Any] = {"index": n, "function": {"arguments": piece}}
        if n not in started:
            started.add(n)
            call.update(id=f"call_{n}", type="function")
            call["function"]["name"] = calls[n][0]
        chunks.append(chat_chunk({"tool_calls": [call]}))
    chunks.append(chat_chunk({}, "tool_calls"))
    return chat_stream(*chunks)


def test_interleaved_chat_tool_calls_reach_every_client_whole() -> None:
    calls = [("get_weather", '{"city": "Paris", "unit": "celsius"}'), ("get_time", '{"zone": "Europe/Paris"}')]
    raw = interleaved_calls(calls, [0, 1, 0, 1, 1, 0, 1, 0], size=5)
    expected = [(name, json.loads(args)) for name, args in calls]
    for client in ("anthropic", "responses"):
        assert client_view(client, translate("chat", client, raw, split=11))["calls"] == expected, client


def test_what_overlaps_is_held_up_to_max_answer_bytes_then_the_stream_ends_with_an_error() -> None:
    """The held call's arguments count against the answer's budget; past it the client gets its error event,
    never an answer that ends as if it were complete."""
    long_args = json.dumps({"text": "x" * 200})
    raw = interleaved_calls([("first", '{"a": 1}'), ("second", long_args)], [0, 1, 1, 1, 1, 1, 1, 1], size=10)
    for limit, fails in ((1000, False), (100, True)):
        ctx = Context(new_id=lambda prefix: f"{prefix}1", budget=Budget(limit))
        t = StreamTranslator(FORMATS["chat"].StreamParser(ctx), FORMATS["anthropic"].StreamEmitter(ctx),
                             order=BlockOrder(ctx.budget, FORMATS["anthropic"].block_channel))
        message = fold_anthropic(check_anthropic_stream(b"".join(t.feed(raw)) + b"".join(t.close())))
        if fails:
            assert "max_answer_bytes" in message["error"]["message"], message
            assert message.get("stop_reason") is None, message
        else:
            assert "error" not in message and [b["name"] for b in message["content"]] == ["first", "second"]


ARGS = st.dictionaries(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6),
                       st.text(max_size=20) | st.integers(), max_size=4)


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(["f", "g", "h"]), ARGS), min_size=1, max_size=4),
       order=st.lists(st.integers(min_value=0, max_value=7), max_size=40),
       size=st.integers(min_value=1, max_value=9), split=st.integers(min_value=1, max_value=64),
       client=st.sampled_from(["anthropic", "responses"]))
def test_any_interleaving_of_tool_call_fragments_keeps_the_grammar_and_loses_nothing(
        calls: list[tuple[str, dict[str, Any]]], order: list[int], size: int, split: int, client: str) -> None:
    wire = [(name, json.dumps(args, ensure_ascii=False)) for name, args in calls]
    raw = interleaved_calls(wire, order, size)
    got = client_view(client, translate("chat", client, raw, split=split))["calls"]
    # every call whole (in the order their fragments began, which an interleaving server may change)
    assert sorted(map(json.dumps, got)) == sorted(json.dumps([name, args]) for name, args in calls)


def overlapping_items(texts: list[tuple[str, str]], order: list[int], size: int) -> bytes:
    """A Responses stream of items (kind, text): every item added first, then their deltas interleaved
    in the order ``order`` draws from, then each done in turn."""
    events = [responses_event("response.created", response={"id": "resp_1", "object": "response",
                                                            "status": "in_progress", "model": "x", "output": []})]
    for n, (kind, _) in enumerate(texts):
        item = ({"type": "reasoning", "id": f"it_{n}", "summary": []} if kind == "reasoning" else
                {"type": "function_call", "id": f"it_{n}", "call_id": f"call_{n}", "name": "f", "arguments": "",
                 "status": "in_progress"} if kind == "call" else
                {"type": "message", "id": f"it_{n}", "role": "assistant", "status": "in_progress", "content": []})
        events.append(responses_event("response.output_item.added", output_index=n, item=item))
    queue = [[text[i:i + size] for i in range(0, len(text), size)] for _, text in texts]
    for pick in order + [n for n in range(len(texts)) for _ in range(len(queue[n]))]:
        n = pick % len(texts)
        if not queue[n]:
            continue
        piece = queue[n].pop(0)
        kind = {"reasoning": "response.reasoning_summary_text.delta", "call": "response.function_call_arguments.delta",
                "message": "response.output_text.delta"}[texts[n][0]]
        extra = {"reasoning": {"summary_index": 0}, "call": {}, "message": {"content_index": 0}}[texts[n][0]]
        events.append(responses_event(kind, output_index=n, item_id=f"it_{n}", delta=piece, **extra))
    for n, (kind, text) in enumerate(texts):
        item = ({"type": "reasoning", "id": f"it_{n}", "summary": [{"type": "summary_text", "text": text}]}
                if kind == "reasoning" else
                {"type": "function_call", "id": f"it_{n}", "call_id": f"call_{n}", "name": "f", "arguments": text,
                 "status": "completed"} if kind == "call" else
                {"type": "message", "id": f"it_{n}", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": text, "annotations": []}]})
        events.append(responses_event("response.output_item.done", output_index=n, item=item))
    events.append(responses_event("response.completed", response={
        "id": "resp_1", "object": "response", "status": "completed", "model": "x", "output": [],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}))
    return sse(*events)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.tuples(st.just("reasoning"), st.text(min_size=1, max_size=30))
                      | st.tuples(st.just("message"), st.text(min_size=1, max_size=30))
                      | st.tuples(st.just("call"), ARGS.map(json.dumps)), min_size=1, max_size=4),
       order=st.lists(st.integers(min_value=0, max_value=7), max_size=40),
       size=st.integers(min_value=1, max_value=9), split=st.integers(min_value=1, max_value=64),
       client=st.sampled_from(["anthropic", "chat"]))
def test_any_overlap_of_responses_items_keeps_the_grammar_and_loses_nothing(
        texts: list[tuple[str, str]], order: list[int], size: int, split: int, client: str) -> None:
    view = client_view(client, translate("responses", client, overlapping_items(texts, order, size), split=split))
    # Nothing lost, nothing mixed: two items of one kind are one after the other (Anthropic blocks come one at
    # a time; a Chat client has one content and one reasoning_content), in the order their blocks started.
    messages, thoughts = ([t for k, t in texts if k == kind] for kind in ("message", "reasoning"))
    assert sorted(json.dumps(args) for _, args in view["calls"]) == \
        sorted(json.dumps(json.loads(t)) for k, t in texts if k == "call")
    assert sorted(_pieces(view["text"], messages)) == sorted(messages)
    assert sorted(_pieces(view["reasoning"], thoughts, joined_by="\n\n" if client == "responses" else "")) == \
        sorted(thoughts)
    if client == "anthropic":
        names = {"reasoning": "thinking", "message": "text", "call": "tool_use"}
        assert sorted(view["order"]) == sorted(names[k] for k, _ in texts)


def _pieces(whole: str, parts: list[str], joined_by: str = "") -> list[str]:
    """``whole`` cut back into ``parts``-sized pieces in some order of ``parts`` (each part intact), or
    ``[whole]`` when it is not such a concatenation (the assertion then fails, naming what came)."""
    for perm in itertools.permutations(parts):
        if joined_by.join(perm) == whole:
            return list(perm)
    return [whole]
