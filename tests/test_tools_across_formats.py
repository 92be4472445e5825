"""Freeform (custom) and namespaced tools through formats that have neither, and back."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from addon import formats
from addon.formats import anthropic, chat, gemini
from addon.formats.common import Context, InputUnwrapper, flat_tool_name, tool_lookup
from addon.ir import (
    BlockDelta,
    BlockStart,
    Message,
    Request,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolKind,
)
from addon.sse import SSEDecoder
from addon.translate import Exchange

PATCH = '*** Begin Patch\n*** Add File: a.txt\n+héllo "quoted" \\ 🌍\n*** End Patch\n'
TOOLS = (
    Tool(name="apply_patch", kind=ToolKind.CUSTOM, description="patch"),
    Tool(name="exec", kind=ToolKind.CUSTOM, namespace="functions"),
    Tool(name="sleep", namespace="clock", parameters={"type": "object", "properties": {"ms": {"type": "number"}}}),
)


def ctx() -> Context:
    counter = itertools.count()
    return Context(new_id=lambda p: f"{p}{next(counter)}",
                   request=Request(model="m", messages=(Message(role=Role.USER, content=(Text(text="hi"),)),),
                                   tools=TOOLS, stream=True))


@pytest.mark.parametrize(("text", "cuts"), [
    (PATCH, [1, 5, 11, 12, 30, 31, 33]),
    ("a\\u00e9b", [3]),
    ("", []),
])
def test_unwrapper_streams_the_input_at_any_split(text: str, cuts: list[int]) -> None:
    for ensure_ascii in (True, False):
        wire = json.dumps({"input": text}, ensure_ascii=ensure_ascii)
        for step in range(1, 8):
            points = sorted({*cuts, *range(0, len(wire), step)})
            parts = [wire[a:b] for a, b in itertools.pairwise([*points, len(wire)])]
            u = InputUnwrapper()
            assert "".join(u.feed(p) for p in parts) + u.close() == text


def test_unwrapper_falls_back_to_the_whole_text() -> None:
    u = InputUnwrapper()
    assert u.feed('{"command": "ls"}') + u.close() == '{"command": "ls"}'
    u = InputUnwrapper()
    assert u.feed('{"other": 1, "input": "x"}') + u.close() == "x"


def test_flattened_names() -> None:
    assert flat_tool_name(None, "Bash") == "Bash"
    assert flat_tool_name("functions", "exec") == "exec"
    assert flat_tool_name("clock", "sleep") == "clock__sleep"
    assert set(tool_lookup(ctx())) == {"apply_patch", "exec", "clock__sleep"}


@pytest.mark.parametrize("fmt", [anthropic, chat])
def test_request_offers_custom_tools_as_one_string_argument(fmt) -> None:
    c = ctx()
    req = Request(model="m", tools=TOOLS, messages=(
        Message(role=Role.USER, content=(Text(text="go"),)),
        Message(role=Role.ASSISTANT, content=(
            ToolCall(id="call_1", name="exec", namespace="functions", kind=ToolKind.CUSTOM, arguments="ls -l"),
            ToolCall(id="call_2", name="sleep", namespace="clock", arguments='{"ms":1}'))),
    ))
    body = fmt.render_request(req, c)
    if fmt is anthropic:
        tools = {t["name"]: t["input_schema"] for t in body["tools"]}
        calls = [(b["name"], b["input"]) for b in body["messages"][1]["content"]]
    else:
        tools = {t["function"]["name"]: t["function"]["parameters"] for t in body["tools"]}
        calls = [(t["function"]["name"], json.loads(t["function"]["arguments"]))
                 for t in body["messages"][1]["tool_calls"]]
    assert tools["exec"] == {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
    assert tools["clock__sleep"]["properties"] == {"ms": {"type": "number"}}
    assert calls == [("exec", {"input": "ls -l"}), ("clock__sleep", {"ms": 1})]


def _anthropic_stream(name: str, args: str) -> bytes:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                              "model": "m", "usage": {"input_tokens": 1, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "input_json_delta", "partial_json": args[i:i + 7]}} for i in range(0, len(args), 7)),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def _chat_stream(name: str, args: str) -> bytes:
    chunks = [{"delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_9", "type": "function", "function": {"name": name, "arguments": ""}}]}}]
    chunks += [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 7]}}]}}
               for i in range(0, len(args), 7)]
    chunks.append({"delta": {}, "finish_reason": "tool_calls"})
    wire = [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, **ch}]} for ch in chunks]
    return b"".join(f"data: {json.dumps(w)}\n\n".encode() for w in wire) + b"data: [DONE]\n\n"


@pytest.mark.parametrize(("fmt", "stream"), [(anthropic, _anthropic_stream), (chat, _chat_stream)])
def test_upstream_call_of_a_custom_tool_comes_back_raw_and_namespaced(fmt, stream) -> None:
    parser = fmt.StreamParser(ctx())
    decoder = SSEDecoder()
    events = [ev for s in decoder.feed(stream("exec", json.dumps({"input": PATCH}))) for ev in parser.feed(s)]
    events += parser.close()
    start = next(e for e in events if isinstance(e, BlockStart))
    assert (start.tool_name, start.tool_namespace, start.tool_kind) == ("exec", "functions", ToolKind.CUSTOM)
    deltas = [e.text for e in events if isinstance(e, BlockDelta)]
    assert len(deltas) > 1 and "".join(deltas) == PATCH  # streamed, not buffered

    parser = fmt.StreamParser(ctx())
    events = [ev for s in SSEDecoder().feed(stream("clock__sleep", '{"ms": 5}')) for ev in parser.feed(s)]
    start = next(e for e in events if isinstance(e, BlockStart))
    assert (start.tool_name, start.tool_namespace, start.tool_kind) == ("sleep", "clock", ToolKind.FUNCTION)


def test_chat_client_sees_a_custom_tool_call_from_an_anthropic_upstream() -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "patch it"}],
            "tools": [{"type": "custom", "custom": {"name": "apply_patch", "description": "patch"}}]}
    ex, upstream_body = Exchange.start(chat, anthropic, json.dumps(body).encode(), ctx())
    assert json.loads(upstream_body)["tools"][0]["input_schema"]["required"] == ["input"]
    t = ex.stream()
    out = b"".join(t.feed(_anthropic_stream("apply_patch", json.dumps({"input": PATCH}))) + t.close())
    chunks = [json.loads(line[6:]) for line in out.decode().split("\n\n") if line.startswith("data: {")]
    calls = [c for ch in chunks if ch["choices"] for c in ch["choices"][0]["delta"].get("tool_calls", ())]
    assert calls[0]["type"] == "custom" and calls[0]["custom"]["name"] == "apply_patch"
    assert "".join(c["custom"]["input"] for c in calls) == PATCH


# A name Gemini takes and Anthropic, Chat and Responses refuse (dots; formats.md §5.3, gemini.md §6.4).
DOTTED = "files.read_many"
UPSTREAM_NAME = {"anthropic": re.compile(r"[A-Za-z0-9_-]{1,128}"), "chat": re.compile(r"[A-Za-z0-9_-]{1,64}"),
                 "responses": re.compile(r"[A-Za-z0-9_-]{1,64}")}


def _call_stream(fmt: str, name: str) -> bytes:
    """One upstream stream in ``fmt`` that calls ``name`` with ``{"path": "a"}``."""
    if fmt == "anthropic":
        return _anthropic_stream(name, '{"path": "a"}')
    if fmt == "chat":
        return _chat_stream(name, '{"path": "a"}')
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": '{"path": "a"}',
            "status": "completed"}
    resp = {"id": "resp_1", "object": "response", "status": "completed", "model": "m", "output": [item]}
    events = [{"type": "response.created", "response": {**resp, "status": "in_progress", "output": []}},
              {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}},
              {"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1",
               "delta": '{"path": "a"}'},
              {"type": "response.output_item.done", "output_index": 0, "item": item},
              {"type": "response.completed", "response": resp}]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


@pytest.mark.parametrize("upstream", ["anthropic", "chat", "responses"])
def test_a_gemini_clients_dotted_tool_name_is_made_valid_and_mapped_back(upstream: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "read a"}]}],
            "tools": [{"functionDeclarations": [{"name": DOTTED, "parametersJsonSchema": {
                "type": "object", "properties": {"path": {"type": "string"}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [DOTTED]}}}
    op = gemini.recognise("POST", "/v1beta/models/m:streamGenerateContent", "alt=sse", {})
    ex, wire = Exchange.start(gemini, formats.get(upstream), json.dumps(body).encode(), ctx(), op=op)
    sent = json.loads(wire)
    tool = sent["tools"][0]
    name = tool["name"] if "name" in tool else tool["function"]["name"]
    assert UPSTREAM_NAME[upstream].fullmatch(name) and name != DOTTED, name
    assert name in json.dumps(sent.get("tool_choice")), sent.get("tool_choice")  # the forced tool, by its new name
    t = ex.stream()
    out = b"".join(t.feed(_call_stream(upstream, name)) + t.close())
    calls = [p["functionCall"] for line in out.decode().split("\r\n\r\n") if line.startswith("data: ")
             for c in json.loads(line[6:]).get("candidates", ()) for p in c["content"]["parts"] if "functionCall" in p]
    assert [(c["name"], c["args"]) for c in calls] == [(DOTTED, {"path": "a"})]
