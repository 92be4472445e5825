"""Grammar checkers for the SSE bytes the bridge sends to a client, independent of the addon's code.

``check_anthropic_stream(raw)`` and ``check_chat_stream(raw)`` parse client-side SSE bytes with their
own small parser (not :mod:`addon.sse`) and assert the rules of formats.md §4.2 / §4.3 and the
pitfalls in §7 that the official SDK stream helpers depend on. Both return the parsed events so a
test can go on to assert content; ``fold_anthropic`` and ``fold_chat`` rebuild the final message
from them the way the SDKs do, again without touching the addon. ``check_gemini_stream(raw, framing)``
reads a Gemini stream the way both official readers do (gemini.md §4.4, §4.5) and asserts §4.3.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["check_anthropic_stream", "check_chat_stream", "check_responses_stream", "fold_anthropic", "fold_chat",
           "split_sse", "check_gemini_stream", "fold_gemini"]

_TOOL_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_ANTHROPIC_STOP = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                   "model_context_window_exceeded"}
_CHAT_FINISH = {"stop", "length", "tool_calls", "content_filter", "function_call"}
_DELTA_FOR_BLOCK = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
                    "tool_use": {"input_json_delta"}, "redacted_thinking": set()}


def split_sse(raw: bytes) -> list[list[tuple[str, str]]]:
    """Client bytes → events, each a list of (field, value). Every event must end with a blank line."""
    text = raw.decode("utf-8")  # the bridge always sends UTF-8; a split character would fail here
    assert "\r" not in text, "the bridge frames its own events with \\n only"
    assert text.endswith("\n\n"), f"the last event is not terminated by a blank line: {text[-200:]!r}"
    events = []
    for block in text[:-2].split("\n\n"):
        assert block, "two blank lines in a row"
        fields = []
        for line in block.split("\n"):
            name, sep, value = line.partition(":")
            assert sep, f"SSE line without a colon: {line!r}"
            assert value.startswith(" "), f"expected 'field: value': {line!r}"
            fields.append((name, value[1:]))
        events.append(fields)
    return events


# --- Anthropic Messages (formats.md §4.2, §7.12, §7.15) -----------------------------------------


def check_anthropic_stream(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Assert the Anthropic stream grammar; returns [(event name, data object)].

    The stream is either complete (message_start … message_delta, message_stop) or ends with an
    ``error`` event.
    """
    events: list[tuple[str, dict[str, Any]]] = []
    for fields in split_sse(raw):
        assert [n for n, _ in fields] == ["event", "data"], f"expected an event: line then one data: line: {fields}"
        name, data_text = fields[0][1], fields[1][1]
        data = json.loads(data_text)
        assert isinstance(data, dict), data_text
        assert data.get("type") == name, f"event name {name!r} differs from the JSON type {data.get('type')!r}"
        events.append((name, data))

    assert events, "empty stream"
    last_name, last = events[-1]
    if last_name == "error":
        err = last["error"]
        assert isinstance(err.get("type"), str) and err["type"].endswith(("_error", "request_too_large")), err
        assert isinstance(err.get("message"), str), err
        body = events[:-1]
    else:
        assert last_name == "message_stop", f"stream ends with {last_name!r}, not message_stop or error"
        body = events
    assert all(n != "error" for n, _ in body), "an error event that is not the last event"

    started: list[str] = []  # block types by index
    open_index: int | None = None
    json_parts: list[str] = []
    signed = False
    seen_start = seen_delta = seen_stop = False
    for name, data in body:
        if name == "ping":
            continue
        if not seen_start:
            assert name == "message_start", f"first event is {name!r}, not message_start"
            msg = data["message"]
            assert msg["type"] == "message" and msg["role"] == "assistant" and msg["content"] == [], msg
            assert msg["stop_reason"] is None and isinstance(msg["id"], str) and isinstance(msg["model"], str), msg
            assert isinstance(msg["usage"]["input_tokens"], int), msg["usage"]
            assert isinstance(msg["usage"]["output_tokens"], int), msg["usage"]
            seen_start = True
            continue
        assert name != "message_start", "message_start sent twice"
        assert not seen_stop, f"{name!r} after message_stop"
        if name == "content_block_start":
            assert not seen_delta, "content block after message_delta"
            assert open_index is None, f"block {len(started)} starts while block {open_index} is open"
            assert data["index"] == len(started), f"block index {data['index']}, expected {len(started)}"
            block = data["content_block"]
            kind = block["type"]
            assert kind in _DELTA_FOR_BLOCK, kind
            if kind == "text":
                assert block == {"type": "text", "text": ""}, block
            elif kind == "thinking":
                assert block == {"type": "thinking", "thinking": "", "signature": ""}, block
            elif kind == "tool_use":
                assert _TOOL_ID.match(block["id"]), f"tool_use id {block['id']!r} breaks ^[a-zA-Z0-9_-]+$"
                assert isinstance(block["name"], str) and block["name"], block
                assert block["input"] == {}, block
            else:
                assert isinstance(block["data"], str) and block["data"], block
            started.append(kind)
            open_index = data["index"]
            json_parts, signed = [], False
        elif name == "content_block_delta":
            assert open_index is not None and data["index"] == open_index, \
                f"delta for block {data['index']}, open block is {open_index}"
            delta = data["delta"]
            kind = started[open_index]
            assert delta["type"] in _DELTA_FOR_BLOCK[kind], f"{delta['type']} inside a {kind} block"
            assert not signed, "a delta after the signature_delta"
            if delta["type"] == "text_delta":
                assert isinstance(delta["text"], str), delta
            elif delta["type"] == "thinking_delta":
                assert isinstance(delta["thinking"], str), delta
            elif delta["type"] == "signature_delta":
                assert isinstance(delta["signature"], str) and delta["signature"], delta
                signed = True
            else:
                assert isinstance(delta["partial_json"], str), delta
                json_parts.append(delta["partial_json"])
        elif name == "content_block_stop":
            assert open_index is not None and data["index"] == open_index, \
                f"stop for block {data['index']}, open block is {open_index}"
            kind = started[open_index]
            if kind == "tool_use" and "".join(json_parts):
                value = json.loads("".join(json_parts))  # raises on invalid JSON
                assert isinstance(value, dict), f"tool input is not an object: {value!r}"
            if kind == "thinking":
                assert signed, "thinking block stopped without a signature_delta"
            open_index = None
        elif name == "message_delta":
            assert open_index is None, f"message_delta while block {open_index} is open"
            assert data["delta"]["stop_reason"] in _ANTHROPIC_STOP, data
            assert isinstance(data["usage"]["output_tokens"], int), data
            seen_delta = True
        elif name == "message_stop":
            assert seen_delta, "message_stop without message_delta"
            seen_stop = True
        else:
            raise AssertionError(f"unknown event {name!r}")
    assert seen_start or last_name == "error", "no message_start"
    return events


def fold_anthropic(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rebuild the final message: {"id", "model", "content": [...], "stop_reason", "usage"}."""
    message: dict[str, Any] = {"content": []}
    buffers: dict[int, list[str]] = {}
    for name, data in events:
        if name == "message_start":
            message.update(id=data["message"]["id"], model=data["message"]["model"],
                           usage=dict(data["message"]["usage"]))
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
            buffers[data["index"]] = []
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                buffers[data["index"]].append(delta["partial_json"])
        elif name == "content_block_stop":
            block = message["content"][data["index"]]
            if block["type"] == "tool_use" and "".join(buffers[data["index"]]):
                block["input"] = json.loads("".join(buffers[data["index"]]))
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["stop_sequence"] = data["delta"].get("stop_sequence")
            message["usage"].update(data["usage"])
        elif name == "error":
            message["error"] = data["error"]
    return message


# --- Chat Completions (formats.md §4.3, §7.6, §7.7) ---------------------------------------------


def check_chat_stream(raw: bytes) -> list[dict[str, Any]]:
    """Assert the Chat stream grammar; returns the chunk objects (an error object last, if any).

    ``data: [DONE]`` is checked and not returned.
    """
    datas = []
    for fields in split_sse(raw):
        assert [n for n, _ in fields] == ["data"], f"Chat events are one data: line each: {fields}"
        datas.append(fields[0][1])
    assert datas, "empty stream"
    if datas[-1] == "[DONE]":
        chunks = [json.loads(d) for d in datas[:-1]]
        error = None
    else:
        chunks = [json.loads(d) for d in datas]
        error = chunks.pop()
        assert set(error) == {"error"}, f"the stream ends with neither [DONE] nor an error object: {error}"
        err = error["error"]
        assert isinstance(err["message"], str) and isinstance(err["type"], str), err
        assert "param" in err and "code" in err, err
    assert "[DONE]" not in datas[:-1], "[DONE] before the end"

    ids = set()
    role_seen = False
    finish_seen = usage_seen = False
    calls: list[list[str]] = []  # arguments fragments per tool index
    for i, chunk in enumerate(chunks):
        assert "error" not in chunk, f"an error chunk that is not the last: {chunk}"
        assert chunk["object"] == "chat.completion.chunk", chunk
        ids.add((chunk["id"], chunk["created"], chunk["model"]))
        assert isinstance(chunk["id"], str) and isinstance(chunk["created"], int), chunk
        assert not usage_seen, "a chunk after the usage chunk"
        if chunk["choices"] == []:
            assert finish_seen, "usage chunk before the finish_reason chunk"
            usage = chunk["usage"]
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                assert isinstance(usage[key], int), usage
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], usage
            usage_seen = True
            continue
        assert chunk.get("usage") is None, "usage on a chunk that has choices"
        assert len(chunk["choices"]) == 1, chunk
        choice = chunk["choices"][0]
        assert choice["index"] == 0 and isinstance(choice["delta"], dict), choice
        assert not finish_seen, "a choice chunk after the finish_reason chunk"
        delta = choice["delta"]
        if "role" in delta:
            assert i == 0, "role repeated after the first chunk (the SDK would concatenate it)"
            assert delta["role"] == "assistant", delta
            role_seen = True
        assert i > 0 or role_seen, "the first chunk carries no role"
        for key in ("content", "reasoning_content", "refusal"):
            assert delta.get(key) is None or isinstance(delta[key], str), delta
        for call in delta.get("tool_calls") or ():
            index = call["index"]
            assert isinstance(index, int), call
            if index == len(calls):  # first fragment: id, type and name, once
                assert isinstance(call["id"], str) and call["id"], call
                assert call["type"] == "function", call
                assert isinstance(call["function"]["name"], str) and call["function"]["name"], call
                calls.append([])
            else:  # a later fragment of any open call: the SDK accumulates by index, interleaving included
                assert 0 <= index < len(calls), f"tool index {index} after {len(calls)} calls (not contiguous)"
                assert "id" not in call and "type" not in call, f"id/type repeated: {call}"
                assert "name" not in call.get("function", {}), f"name repeated: {call}"
            args = call.get("function", {}).get("arguments", "")
            assert isinstance(args, str), call
            calls[index].append(args)
        if choice["finish_reason"] is not None:
            assert choice["finish_reason"] in _CHAT_FINISH, choice
            finish_seen = choice["finish_reason"]
    assert len(ids) <= 1, f"id/created/model differ between chunks: {ids}"
    if error is None:
        assert finish_seen, "no finish_reason chunk"
    # A call cut short by the output limit ("length") holds what came: only a finished answer's must parse.
    for index, parts in enumerate(calls if error is None and finish_seen != "length" else ()):
        try:
            json.loads("".join(parts))
        except ValueError:
            raise AssertionError(f"tool call {index} arguments are not valid JSON: {''.join(parts)!r}") from None
    return [*chunks, *([error] if error else [])]


def fold_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild the final message: {"content", "reasoning_content", "tool_calls", "thinking_blocks",
    "finish_reason", "usage", "id", "model"}. ``content`` is "" when no text arrived."""
    message: dict[str, Any] = {"content": "", "reasoning_content": "", "tool_calls": [], "thinking_blocks": [],
                               "finish_reason": None, "usage": None}
    for chunk in chunks:
        if "error" in chunk:
            message["error"] = chunk["error"]
            continue
        message["id"], message["model"] = chunk["id"], chunk["model"]
        if chunk["choices"] == []:
            message["usage"] = chunk["usage"]
            continue
        choice = chunk["choices"][0]
        delta = choice["delta"]
        message["content"] += delta.get("content") or ""
        message["reasoning_content"] += delta.get("reasoning_content") or ""
        message["thinking_blocks"] += [{k: v for k, v in b.items() if k != "index"}
                                       for b in delta.get("thinking_blocks") or ()]
        for call in delta.get("tool_calls") or ():
            if call["index"] == len(message["tool_calls"]):
                message["tool_calls"].append({"id": call["id"], "name": call["function"]["name"], "arguments": ""})
            message["tool_calls"][call["index"]]["arguments"] += call.get("function", {}).get("arguments", "")
        message["finish_reason"] = choice["finish_reason"] or message["finish_reason"]
    return message


# --- Responses (formats.md §4.4, §6.5, §7.14) ----------------------------------------------------

_RESPONSES_TERMINAL = {"response.completed": "completed", "response.incomplete": "incomplete",
                       "response.failed": "failed"}
_RESPONSES_ITEM_DELTAS = {"response.output_text.delta": "message", "response.output_text.done": "message",
                          "response.content_part.added": "message", "response.content_part.done": "message",
                          "response.reasoning_summary_part.added": "reasoning",
                          "response.reasoning_summary_part.done": "reasoning",
                          "response.reasoning_summary_text.delta": "reasoning",
                          "response.reasoning_summary_text.done": "reasoning",
                          "response.function_call_arguments.delta": "function_call",
                          "response.function_call_arguments.done": "function_call",
                          "response.custom_tool_call_input.delta": "custom_tool_call",
                          "response.custom_tool_call_input.done": "custom_tool_call"}


# The closing events each item type needs before its output_item.done (the canonical order, §4.4).
_RESPONSES_CLOSERS = {"message": {"response.output_text.done", "response.content_part.done"},
                      "function_call": {"response.function_call_arguments.done"},
                      "custom_tool_call": {"response.custom_tool_call_input.done"}}
_RESPONSES_SUMMARY_CLOSERS = {"response.reasoning_summary_text.done", "response.reasoning_summary_part.done"}


def _check_responses_usage(usage: Any) -> None:
    """Codex parses usage all or nothing (§6.5); the SDK types mark every field required (§3.5)."""
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert isinstance(usage[key], int), usage
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int), usage
    assert isinstance(usage["output_tokens_details"]["reasoning_tokens"], int), usage


def check_responses_stream(raw: bytes) -> list[dict[str, Any]]:
    """Assert the Responses stream grammar the SDK's ``responses.stream`` helper and Codex rely on;
    returns the event objects.

    The stream opens with response.created and ends with exactly one terminal event
    (completed, incomplete or failed) whose ``output`` holds every finished item, in output_index order.
    Items may overlap (each event names its item): an index is added once, in order, and every content
    event and ``output_item.done`` refers to an item that is open.
    """
    events: list[dict[str, Any]] = []
    for fields in split_sse(raw):
        names = [n for n, _ in fields]
        assert names in (["event", "data"], ["data"]), f"expected an optional event: line and one data: line: {fields}"
        data = json.loads(fields[-1][1])
        assert isinstance(data, dict) and isinstance(data.get("type"), str), fields
        if names[0] == "event":
            assert fields[0][1] == data["type"], f"event name {fields[0][1]!r} differs from type {data['type']!r}"
        assert data.get("sequence_number") == len(events), \
            f"sequence_number {data.get('sequence_number')}, expected {len(events)}"
        events.append(data)

    assert events and events[0]["type"] == "response.created", "the first event is not response.created"
    assert events[-1]["type"] in _RESPONSES_TERMINAL, f"stream ends with {events[-1]['type']!r}, not a terminal event"
    resp_id = events[0]["response"]["id"]
    assert isinstance(resp_id, str) and resp_id, events[0]
    added: dict[int, dict[str, Any]] = {}  # output_index → the added item
    text: dict[int, list[str]] = {}  # output_index → streamed text / arguments / input
    summary_parts: dict[int, int] = {}
    summaries: dict[int, list[str]] = {}  # output_index → text of each summary part
    closed: dict[int, set[str]] = {}  # output_index → the .done events seen for it
    done: dict[int, dict[str, Any]] = {}  # output_index → the finished item
    open_items: set[int] = set()
    for data in events:
        kind = data["type"]
        if kind.startswith("response.") and "response" in data:  # lifecycle: one identity (§4.4)
            assert data["response"]["id"] == resp_id, "lifecycle response identity changed"
            assert data["response"]["object"] == "response", data
        if kind in ("response.created", "response.in_progress"):
            assert data["response"]["status"] in ("in_progress", "queued"), data
            assert data["response"]["output"] == [], data
            assert not added, f"{kind} after an output item"
        elif kind == "response.output_item.added":
            index, item = data["output_index"], data["item"]
            assert index == len(added), f"output_index {index}, expected {len(added)} (no gaps, §4.4)"
            assert isinstance(item.get("id"), str) and item["id"], item
            if item["type"] == "message":
                assert item["role"] == "assistant" and item["content"] == [] and item["status"] == "in_progress", item
            elif item["type"] == "reasoning":
                assert item["summary"] == [], item
            elif item["type"] == "function_call":
                assert item["arguments"] == "" and isinstance(item["call_id"], str) and item["name"], item
            else:
                assert item["type"] == "custom_tool_call", item
                assert item["input"] == "" and isinstance(item["call_id"], str) and item["name"], item
            added[index], text[index], summary_parts[index], closed[index] = item, [], 0, set()
            summaries[index] = []
            open_items.add(index)
        elif kind in _RESPONSES_ITEM_DELTAS:
            index = data["output_index"]
            assert index in open_items, f"{kind} for item {index}, open items are {sorted(open_items)}"
            item = added[index]
            assert item["type"] == _RESPONSES_ITEM_DELTAS[kind], f"{kind} inside a {item['type']} item"
            assert data["item_id"] == item["id"], data
            streamed = "".join(text[index])
            if item["type"] == "reasoning":  # per summary part: added, deltas, text.done, part.done
                assert data["summary_index"] == summary_parts[index] - (kind != "response.reasoning_summary_part.added")
                if kind == "response.reasoning_summary_part.added":
                    assert closed[index] in (set(), _RESPONSES_SUMMARY_CLOSERS), "summary part added inside another"
                    closed[index] = set()
                    text[index] = []
                streamed = "".join(text[index])
            if kind.endswith(".done"):
                assert kind not in closed[index], f"{kind} twice for item {index}"
                closed[index].add(kind)
                if kind == "response.reasoning_summary_part.done":
                    summaries[index].append(streamed)
            else:
                assert not closed[index], f"{kind} after the item's (or summary part's) content was done"
            if kind == "response.content_part.added":
                assert data["content_index"] == 0 and data["part"] == {"type": "output_text", "text": "",
                                                                      "annotations": []}, data
                summary_parts[index] = 1
            elif kind == "response.reasoning_summary_part.added":
                assert data["part"] == {"type": "summary_text", "text": ""}, data
                summary_parts[index] += 1
            elif kind.endswith(".delta"):
                if item["type"] == "message":
                    assert summary_parts[index] == 1, "output_text.delta before content_part.added"
                    assert data["logprobs"] == [] and data["content_index"] == 0, data
                assert isinstance(data["delta"], str), data
                text[index].append(data["delta"])
            elif kind in ("response.output_text.done", "response.reasoning_summary_text.done"):
                assert data["text"] == streamed, f"{kind} text differs from its deltas"
            elif kind in ("response.content_part.done", "response.reasoning_summary_part.done"):
                assert data["part"]["text"] == streamed, data
            elif kind == "response.function_call_arguments.done":
                assert data["arguments"] == streamed, data
            else:
                assert data["input"] == streamed, data
        elif kind == "response.output_item.done":
            index, item = data["output_index"], data["item"]
            assert index in open_items, f"item {index} done, open items are {sorted(open_items)}"
            first = added[index]
            identity = ("type", "id", "call_id")
            assert [item.get(k) for k in identity] == [first.get(k) for k in identity], "output item identity changed"
            streamed = "".join(text[index])
            needed = _RESPONSES_SUMMARY_CLOSERS if summary_parts[index] else set()
            needed = _RESPONSES_CLOSERS.get(item["type"], needed)
            assert closed[index] == needed, f"item {index} done after {sorted(closed[index])}, needs {sorted(needed)}"
            if item["type"] == "message":
                assert item["status"] == "completed", item
                assert [p["type"] for p in item["content"]] == ["output_text"], "a message holds one output_text"
                assert item["content"][0]["text"] == streamed, item
            elif item["type"] == "reasoning":
                assert item["summary"] == [{"type": "summary_text", "text": t} for t in summaries[index]], item
                assert item.get("encrypted_content") is None or isinstance(item["encrypted_content"], str), item
            elif item["type"] == "function_call":
                assert item["arguments"] == streamed and item["status"] == "completed", item
                assert item["name"] == first["name"], item
            else:
                assert item["input"] == streamed and item["name"] == first["name"], item
            done[index] = item
            open_items.discard(index)
        elif kind in _RESPONSES_TERMINAL:
            assert data is events[-1], f"{kind} is not the last event"
            response = data["response"]
            assert response["status"] == _RESPONSES_TERMINAL[kind], response
            assert response["output"] == [done[i] for i in sorted(done)], \
                "the terminal output is not every finished item, in output_index order"
            if kind == "response.failed":
                assert isinstance(response["error"]["code"], str) and isinstance(response["error"]["message"], str)
                continue
            assert not open_items, f"{kind} while items {sorted(open_items)} are open"
            _check_responses_usage(response["usage"])
            if kind == "response.incomplete":
                assert isinstance(response["incomplete_details"]["reason"], str), response
            for item in done.values() if kind == "response.completed" else ():  # incomplete: cut short
                if item["type"] == "function_call":
                    json.loads(item["arguments"])  # raises on invalid JSON
        else:
            raise AssertionError(f"unexpected event {kind!r}")
    return events


# --- Gemini (gemini.md §4.1-§4.5, §5.1) ---------------------------------------------------------------

_GEMINI_FINISH = {"STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT",
                  "SPII", "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER",
                  "NO_IMAGE", "IMAGE_RECITATION", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MALFORMED_RESPONSE",
                  "MISSING_THOUGHT_SIGNATURE", "ESCALATION", "PUP_LIMITED_DISABLED", "MODEL_ARMOR"}
_GEMINI_STATUS = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNAUTHENTICATED", "PERMISSION_DENIED",
                  "NOT_FOUND", "ABORTED", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED", "CANCELLED", "INTERNAL", "UNKNOWN",
                  "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "DATA_LOSS"}
_GEMINI_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult"}
_GEMINI_TOP = {"candidates", "promptFeedback", "usageMetadata", "modelVersion", "responseId", "modelStatus"}
_GEMINI_COUNTS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount")
# Gemini CLI's reader (JS SDK processStreamResponse): "." stops at JS line terminators, hence the class.
_JS_EVENT = re.compile(r"\s*data: ([^\n\r\u2028\u2029]*)(?:\n\n|\r\r|\r\n\r\n)")
_B64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _gemini_events_sse(text: str) -> list[str]:
    """The events of an SSE body, as both readers take them; asserts they agree and leave nothing over."""
    assert not re.search("[\x85\u2028\u2029]", text), "a character the Python SDK's line splitter breaks lines at"
    js: list[str] = []
    rest = text
    while (m := _JS_EVENT.match(rest)) is not None:
        js.append(m.group(1))
        rest = rest[m.end():]
    assert not rest.strip(), f"Gemini CLI: Incomplete JSON segment at the end: {rest[:200]!r}"
    python: list[str] = []  # google-genai HttpResponse._iter_response_stream: "data: " lines, blank line ends
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line:
            assert line.startswith("data: "), f"the Python SDK fails on a line that is not 'data: …': {line[:200]!r}"
            assert i + 1 == len(lines) or not lines[i + 1], "one data: line per event (the bridge writes no other)"
            python.append(line[len("data: "):])
    assert js == python, "the two official readers would read different events"
    assert text.endswith("\r\n\r\n") and text.count("\r\n\r\n") == len(js), "events are data: JSON CRLF CRLF"
    return js


def _check_gemini_part(part: Any) -> None:
    assert isinstance(part, dict), part
    data = [k for k in part if k in _GEMINI_DATA]
    assert len(data) == 1, f"a part needs exactly one data field: {part}"
    assert set(part) <= {*_GEMINI_DATA, "thought", "thoughtSignature"}, f"unknown part field (camelCase only): {part}"
    if "thought" in part:
        assert part["thought"] is True and data == ["text"], part
    if "thoughtSignature" in part:
        sig = part["thoughtSignature"]
        assert isinstance(sig, str) and sig and _B64.fullmatch(sig) and len(sig.rstrip("=")) % 4 != 1, \
            f"the Python SDK rejects a thoughtSignature that is not base64: {sig[:80]!r}"
    if "text" in part:
        assert isinstance(part["text"], str), part
    if "functionCall" in part:
        call = part["functionCall"]
        assert isinstance(call.get("name"), str) and call["name"], call
        assert isinstance(call.get("args"), dict), f"functionCall.args must be an object: {call}"
        assert call.get("id") is None or isinstance(call["id"], str), call


def check_gemini_stream(raw: bytes, framing: str = "sse") -> list[dict[str, Any]]:
    """Assert the Gemini stream grammar; returns the chunk objects (an error object last, if any).

    ``framing`` is ``sse`` (``alt=sse``: both official readers, §4.4/§4.5) or ``json-array`` (one JSON array
    of GenerateContentResponse objects, §4.2). Every chunk has one candidate whose parts are not empty (the
    Python chat helper drops the turn otherwise); ``finishReason`` is on the last chunk only; ``usageMetadata``
    adds up; ``modelVersion`` and ``responseId`` do not change.
    """
    text = raw.decode("utf-8")
    if framing == "sse":
        chunks = [json.loads(e) for e in _gemini_events_sse(text)]
    else:
        assert framing == "json-array", framing
        assert text.lstrip().startswith("[") and text.rstrip().endswith("]"), text[:200]
        chunks = json.loads(text)
        assert isinstance(chunks, list), text[:200]
    assert chunks, "empty stream"
    assert all(isinstance(c, dict) for c in chunks), chunks
    error = chunks[-1] if "error" in chunks[-1] else None
    body = chunks[:-1] if error else chunks
    if error is not None:
        assert list(error) == ["error"], f"error must be the only (first) key for the Python SDK: {error}"
        err = error["error"]
        assert isinstance(err.get("code"), int) and 400 <= err["code"] < 600, err
        assert isinstance(err.get("message"), str) and err.get("status") in _GEMINI_STATUS, err
    identity = set()
    for i, chunk in enumerate(body):
        assert "error" not in chunk, f"an error that is not the last chunk: {chunk}"
        assert set(chunk) <= _GEMINI_TOP, f"unknown top-level field: {set(chunk) - _GEMINI_TOP}"
        identity.add((chunk.get("modelVersion"), chunk.get("responseId")))
        assert isinstance(chunk.get("modelVersion"), str) and isinstance(chunk.get("responseId"), str), chunk
        usage = chunk.get("usageMetadata")
        if usage is not None:
            assert all(isinstance(usage.get(k, 0), int) for k in (*_GEMINI_COUNTS, "totalTokenCount")), usage
            assert usage["totalTokenCount"] == sum(usage.get(k, 0) for k in _GEMINI_COUNTS), usage
            assert usage.get("cachedContentTokenCount", 0) <= usage.get("promptTokenCount", 0), usage
        candidates = chunk.get("candidates")
        assert isinstance(candidates, list) and len(candidates) == 1, chunk
        candidate = candidates[0]
        assert candidate.get("index") == 0, candidate
        content = candidate["content"]
        assert content.get("role") == "model" and isinstance(content.get("parts"), list), content
        assert content["parts"], "a chunk without parts (the Python chat helper drops the turn)"
        for part in content["parts"]:
            _check_gemini_part(part)
        last = i == len(body) - 1
        if last and error is None:
            assert candidate.get("finishReason") in _GEMINI_FINISH, f"the last chunk needs a finishReason: {chunk}"
            assert usage is not None, "the last chunk carries the final usage"
        else:
            assert "finishReason" not in candidate, f"finishReason before the last chunk: {chunk}"
    assert len(identity) <= 1, f"modelVersion/responseId change between chunks: {identity}"
    return chunks


def fold_gemini(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild the answer as a Gemini client sees it: {"text", "thoughts", "parts", "function_calls",
    "finishReason", "usageMetadata", "modelVersion", "responseId"} (+ "error")."""
    out: dict[str, Any] = {"text": "", "thoughts": "", "parts": [], "function_calls": [], "finishReason": None,
                           "usageMetadata": None}
    for chunk in chunks:
        if "error" in chunk:
            out["error"] = chunk["error"]
            continue
        out["modelVersion"], out["responseId"] = chunk["modelVersion"], chunk["responseId"]
        out["usageMetadata"] = chunk.get("usageMetadata") or out["usageMetadata"]
        candidate = chunk["candidates"][0]
        for part in candidate["content"]["parts"]:
            out["parts"].append(part)
            if "functionCall" in part:
                out["function_calls"].append({**part["functionCall"], "thoughtSignature": part.get("thoughtSignature")})
            elif part.get("thought"):
                out["thoughts"] += part["text"]
            elif "text" in part:
                out["text"] += part["text"]
        out["finishReason"] = candidate.get("finishReason") or out["finishReason"]
    return out
