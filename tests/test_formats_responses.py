"""addon.formats.responses: requests, responses, streams and errors, as tables (style.md item 13).

References: formats.md §3 (fields and items), §4.4 (stream grammar, SDK checks), §5 (mappings), §6 (Codex),
§7 (pitfalls). The Codex request shapes are client-shapes/codex.json and codex-gpt-5.5.json, shortened.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon import translate
from addon.accumulate import accumulate
from addon.errors import BadRequest, BridgeError, ErrorKind, Unsupported, UpstreamError, UpstreamProtocolError
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import responses as R
from addon.formats.common import (
    Context,
    decode_signature,
    encode_signature,
    is_redacted_signature,
)
from addon.ir import (
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Document,
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
from addon.sse import SSEDecoder, SSEEvent
from tests.stream_grammar import (
    check_anthropic_stream,
    check_chat_stream,
    check_responses_stream,
    fold_anthropic,
    fold_chat,
)
from tests.test_sdk_oracle import openai_client
from tests.test_stream_split import (
    A_CALLS,
    A_OUTPUT_TOKENS,
    A_RAW,
    A_RAW_ERROR,
    A_SIGNATURE,
    A_TEXT,
    A_THINKING,
    A_USAGE_START,
    C_CALLS,
    C_RAW,
    C_TEXT,
    C_USAGE,
    cuts_for,
    event_sequences,
    split_at,
)

U, AS, SY = Role.USER, Role.ASSISTANT, Role.SYSTEM
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
ENC = "gAAAAABo_encrypted_reasoning_blob=="  # an OpenAI encrypted_content, opaque to the bridge
OWN = Opaque(origin="responses", data=ENC)
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                  "additionalProperties": False}
LONG_NAME = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository_v2"  # 82 chars


def make_ctx(request: Request | None = None, **kw: Any) -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}gen{next(counter)}", created=1_700_000_000, request=request,
                   client_model=request.model if request else None, **kw)


def req(*messages: Message, **kw: Any) -> Request:
    return Request(model=kw.pop("model", "gpt-test"), messages=messages, **kw)


def user(*parts: Any) -> Message:
    return Message(role=U, content=parts)


def asst(*parts: Any) -> Message:
    return Message(role=AS, content=parts)


def system(t: str) -> Message:
    return Message(role=SY, content=(Text(text=t),))


def wire(*items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A Responses request as render_request writes it (store: false always)."""
    return {"model": "gpt-test", "input": list(items), "store": False, **kw}


def msg(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": list(parts)}


def itext(t: str) -> dict[str, Any]:
    return {"type": "input_text", "text": t}


def otext(t: str) -> dict[str, Any]:
    return {"type": "output_text", "text": t, "annotations": []}  # annotations: required by the SDK's type


def fcall(call_id: str, name: str, args: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}


def fn_tool(name: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": params, "strict": kw.pop("strict", False), **kw}


# --- requests: one table, both directions --------------------------------------------------------

ROUND_TRIP = [
    ("instructions and user text", wire(msg("user", itext("Hi")), instructions="Be brief."),
     req(user(Text(text="Hi")), system=(Text(text="Be brief."),))),
    ("developer message mid-conversation",
     wire(msg("user", itext("a")), msg("developer", itext("Now be terse.")), msg("user", itext("b"))),
     req(user(Text(text="a")), system("Now be terse."), user(Text(text="b")))),
    ("images and files",
     wire(msg("user", itext("Compare"),
              {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
              {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "high"},
              {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"},
              {"type": "input_file", "file_url": "https://example.com/b.pdf", "filename": "b.pdf"})),
     req(user(Text(text="Compare"), Image(media_type="image/png", data=PNG),
              Image(url="https://example.com/cat.jpg", detail="high"),
              Document(media_type="application/pdf", data="JVBERi0x", title="a.pdf"),
              Document(url="https://example.com/b.pdf", title="b.pdf")))),
    ("parallel function calls, their outputs, then user text",
     wire(msg("user", itext("Weather in Paris and Rome?")),
          fcall("call_A", "get_weather", '{"city": "Paris"}'), fcall("call_B", "get_weather", '{"city": "Rome"}'),
          {"type": "function_call_output", "call_id": "call_A", "output": "18C"},
          {"type": "function_call_output", "call_id": "call_B", "output": "21C"},
          msg("user", itext("Thanks"))),
     req(user(Text(text="Weather in Paris and Rome?")),
         asst(ToolCall(id="call_A", name="get_weather", arguments='{"city": "Paris"}'),
              ToolCall(id="call_B", name="get_weather", arguments='{"city": "Rome"}')),
         user(ToolResult(call_id="call_A", content=(Text(text="18C"),)),
              ToolResult(call_id="call_B", content=(Text(text="21C"),)), Text(text="Thanks")))),
    ("reasoning, text and a custom tool call in one assistant turn",
     wire(msg("user", itext("Fix it")),
          {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan the patch."}],
           "encrypted_content": ENC},
          msg("assistant", otext("Patching.")),
          {"type": "custom_tool_call", "call_id": "call_P", "name": "apply_patch", "input": "*** Begin Patch"},
          {"type": "custom_tool_call_output", "call_id": "call_P", "output": "Done!"}),
     req(user(Text(text="Fix it")),
         asst(Reasoning(text="Plan the patch.", opaque=OWN), Text(text="Patching."),
              ToolCall(id="call_P", name="apply_patch", arguments="*** Begin Patch", kind=ToolKind.CUSTOM)),
         user(ToolResult(call_id="call_P", content=(Text(text="Done!"),))))),
    ("a tool output with an image",
     wire(fcall("call_S", "screenshot", "{}"),
          {"type": "function_call_output", "call_id": "call_S", "output": [
              itext("captured"), {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}",
                                  "detail": "auto"}]}),
     req(asst(ToolCall(id="call_S", name="screenshot", arguments="{}")),
         user(ToolResult(call_id="call_S", content=(Text(text="captured"), Image(media_type="image/png", data=PNG)))))),
    ("tools, required, parallel off",
     wire(msg("user", itext("x")),
          tools=[fn_tool("get_weather", WEATHER_SCHEMA, description="Weather", strict=True),
                 fn_tool("now", {"type": "object", "properties": {}}),
                 {"type": "custom", "name": "apply_patch", "description": "Patch files."}],
          tool_choice="required", parallel_tool_calls=False),
     req(user(Text(text="x")),
         tools=(Tool(name="get_weather", description="Weather", parameters=WEATHER_SCHEMA, strict=True),
                Tool(name="now", parameters={"type": "object", "properties": {}}, strict=False),
                Tool(name="apply_patch", description="Patch files.", kind=ToolKind.CUSTOM)),
         tool_choice=ToolChoice(mode="required"), parallel_tool_calls=False)),
    ("named function choice",
     wire(msg("user", itext("x")), tools=[fn_tool("get_weather", WEATHER_SCHEMA)],
          tool_choice={"type": "function", "name": "get_weather"}),
     req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA, strict=False),),
         tool_choice=ToolChoice(mode="tool", name="get_weather"))),
    ("named custom choice",
     wire(msg("user", itext("x")), tools=[{"type": "custom", "name": "apply_patch"}],
          tool_choice={"type": "custom", "name": "apply_patch"}),
     req(user(Text(text="x")), tools=(Tool(name="apply_patch", kind=ToolKind.CUSTOM),),
         tool_choice=ToolChoice(mode="tool", name="apply_patch"))),
    ("settings",
     wire(msg("user", itext("x")), max_output_tokens=500, temperature=1.5, top_p=0.9,
          text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}},
          reasoning={"effort": "high"}, include=["reasoning.encrypted_content"], safety_identifier="u-1",
          stream=True),
     req(user(Text(text="x")), max_tokens=500, temperature=1.5, top_p=0.9, reasoning=ReasoningConfig(effort="high"),
         response_format=ResponseFormat(type="json_schema", name="weather", schema=WEATHER_SCHEMA, strict=True),
         user="u-1", stream=True)),
    ("json_object format", wire(msg("user", itext("x")), text={"format": {"type": "json_object"}}),
     req(user(Text(text="x")), response_format=ResponseFormat(type="json_object"))),
    ("reasoning effort none", wire(msg("user", itext("x")), reasoning={"effort": "none"}),
     req(user(Text(text="x")), reasoning=ReasoningConfig(enabled=False, effort="none"))),
    ("unicode", wire(msg("user", itext("héllo 🌍 日本"))), req(user(Text(text="héllo 🌍 日本")))),
]


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_parse_request(name: str, body: dict[str, Any], ir: Request) -> None:
    assert R.parse_request(body) == ir


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_render_request(name: str, body: dict[str, Any], ir: Request) -> None:
    ctx = make_ctx(ir)
    assert R.render_request(ir, ctx) == body
    assert ctx.warnings == []


PARSE_ONLY = [
    ("input string", "Hi there", (user(Text(text="Hi there")),)),
    ("easy message without type", [{"role": "user", "content": "hi"}, {"role": "system", "content": "rules"}],
     (user(Text(text="hi")), system("rules"))),
    ("refusal part becomes text", [{"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}],
     (asst(Text(text="I can't.")),)),
    ("two summary parts joined by a blank line",
     [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "One."},
                                        {"type": "summary_text", "text": "Two."}], "encrypted_content": ENC}],
     (asst(Reasoning(text="One.\n\nTwo.", opaque=OWN)),)),
    ("raw reasoning text when there is no summary",
     [{"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]}],
     (asst(Reasoning(text="raw")),)),
    ("an Anthropic signature handed to this client goes back to Anthropic",
     [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}],
       "encrypted_content": encode_signature(Opaque(origin="anthropic", data="EqQBsig"))}],
     (asst(Reasoning(text="t", opaque=Opaque(origin="anthropic", data="EqQBsig"))),)),
    ("a redacted Anthropic block stays redacted",
     [{"type": "reasoning", "summary": [],
       "encrypted_content": encode_signature(Opaque(origin="anthropic", data="EmwKredacted"), redacted=True)}],
     (asst(Reasoning(text="", redacted=True, opaque=Opaque(origin="anthropic", data="EmwKredacted"))),)),
    ("namespaced custom call, output as input_text parts (Codex)",
     [{"type": "custom_tool_call", "status": "completed", "call_id": "c1", "name": "exec", "namespace": "functions",
       "input": "echo 1"},
      {"type": "custom_tool_call_output", "call_id": "c1", "output": [itext("Output:\n"), itext("1\n")]}],
     (asst(ToolCall(id="c1", name="exec", arguments="echo 1", kind=ToolKind.CUSTOM, namespace="functions")),
      user(ToolResult(call_id="c1", content=(Text(text="Output:\n"), Text(text="1\n")))))),
    ("a user message after a plain user message is its own", [msg("user", itext("a")), msg("user", itext("b"))],
     (user(Text(text="a")), user(Text(text="b")))),
    ("bare base64 file data: the file name tells the type",
     [msg("user", {"type": "input_file", "file_data": "aGVsbG8=", "filename": "notes.txt"})],
     (user(Document(media_type="text/plain", data="aGVsbG8=", title="notes.txt")),)),
    ("item ids, status and phase are ignored",
     [{"type": "message", "id": "msg_1", "status": "completed", "phase": "final_answer", "role": "assistant",
       "content": [{"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}]}],
     (asst(Text(text="ok")),)),
]


@pytest.mark.parametrize(("name", "items", "expected"), PARSE_ONLY, ids=[c[0] for c in PARSE_ONLY])
def test_parse_input(name: str, items: Any, expected: tuple[Message, ...]) -> None:
    assert R.parse_request({"model": "m", "input": items}).messages == expected


FIELDS = [
    ("allowed_tools required", {"tool_choice": {"type": "allowed_tools", "mode": "required", "tools": []}},
     "tool_choice", ToolChoice(mode="required")),
    ("tool choice none", {"tool_choice": "none"}, "tool_choice", ToolChoice(mode="none")),
    ("hosted tool choice is auto", {"tool_choice": {"type": "web_search"}}, "tool_choice", ToolChoice(mode="auto")),
    ("text format text is nothing", {"text": {"format": {"type": "text"}}}, "response_format", None),
    ("safety_identifier preferred over user", {"safety_identifier": "s", "user": "u"}, "user", "s"),
    ("deprecated user", {"user": "u"}, "user", "u"),
    ("reasoning without effort", {"reasoning": {"summary": "auto"}}, "reasoning", ReasoningConfig()),
    ("no stream by default", {}, "stream", False),
    ("null previous_response_id is no state", {"previous_response_id": None}, "model", "m"),
]


@pytest.mark.parametrize(("name", "extra", "attr", "expected"), FIELDS, ids=[c[0] for c in FIELDS])
def test_parse_request_fields(name: str, extra: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(R.parse_request({"model": "m", "input": "x", **extra}), attr) == expected


def test_parse_warns_about_everything_it_drops() -> None:
    got = R.parse_request({
        "model": "m", "store": True, "prompt_cache_key": "k", "truncation": "auto", "metadata": {"a": "b"},
        "include": ["reasoning.encrypted_content", "message.output_text.logprobs"], "text": {"verbosity": "low"},
        "tools": [{"type": "web_search"}, {"type": "function", "name": "f"}], "tool_choice": {"type": "file_search"},
        "input": [{"type": "item_reference", "id": "msg_1"}, msg("user", itext("x")),
                  {"type": "local_shell_call", "call_id": "c", "action": {"type": "exec", "command": ["ls"]}}]})
    for needle in ("store", "truncation", "metadata", "message.output_text.logprobs",
                   "text.verbosity", "web_search", "file_search", "item_reference", "local_shell_call"):
        assert any(needle in w for w in got.warnings), needle
    assert not any("reasoning.encrypted_content" in w for w in got.warnings)
    assert [t.name for t in got.tools] == ["f"] and got.messages == (user(Text(text="x")),)
    assert got.cache_key == "k" and not any("prompt_cache_key" in w for w in got.warnings)


def test_prompt_cache_key_reaches_openai_upstreams_only() -> None:
    req = R.parse_request({"model": "m", "input": "x", "prompt_cache_key": "thread-1"})
    assert R.render_request(req, make_ctx(req))["prompt_cache_key"] == "thread-1"
    assert C.render_request(req, make_ctx(req))["prompt_cache_key"] == "thread-1"
    assert "prompt_cache_key" not in json.dumps(A.render_request(req, make_ctx(req)))


def test_parse_custom_tool_keeps_grammar_in_description() -> None:
    tool = R.parse_request({"model": "m", "input": "x", "tools": [{
        "type": "custom", "name": "apply_patch", "description": "Patch files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]}).tools[0]
    assert tool.kind is ToolKind.CUSTOM and tool.name == "apply_patch"
    assert tool.description == "Patch files.\n\nThe input must match this lark grammar:\nstart: /.+/"


PARSE_ERRORS = [
    ("previous_response_id", {"model": "m", "input": "x", "previous_response_id": "resp_1"}, "previous_response_id",
     Unsupported),
    ("conversation", {"model": "m", "input": "x", "conversation": "conv_1"}, "conversation", Unsupported),
    ("image by file id", {"model": "m", "input": [msg("user", {"type": "input_image", "file_id": "file-1"})]},
     "input.0.content.0.file_id", Unsupported),
    ("file by file id", {"model": "m", "input": [msg("user", {"type": "input_file", "file_id": "file-1"})]},
     "input.0.content.0.file_id", Unsupported),
    ("model missing", {"input": "x"}, "model", BadRequest),
    ("input missing", {"model": "m"}, "input", BadRequest),
    ("bad role", {"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input.0.role", BadRequest),
    ("unknown part", {"model": "m", "input": [msg("user", {"type": "input_video"})]}, "input.0.content.0.type",
     BadRequest),
    ("function_call without call_id", {"model": "m", "input": [{"type": "function_call", "name": "f"}]},
     "input.0.call_id", BadRequest),
    ("output without call_id", {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
     "input.0.call_id", BadRequest),
    ("item not an object", {"model": "m", "input": ["hi"]}, "input.0", BadRequest),
    ("content a number", {"model": "m", "input": [{"role": "user", "content": 3}]}, "input.0.content", BadRequest),
    ("text format unknown", {"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type",
     BadRequest),
    ("tool choice unknown", {"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice", BadRequest),
    ("tool parameters not an object", {"model": "m", "input": "x", "tools": [fn_tool("f", [])]},  # type: ignore[arg-type]
     "tools.0.parameters", BadRequest),
    ("temperature a string", {"model": "m", "input": "x", "temperature": "warm"}, "temperature", BadRequest),
]


@pytest.mark.parametrize(("name", "body", "param", "error"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_request_errors_name_the_field(name: str, body: dict[str, Any], param: str,
                                            error: type[BadRequest]) -> None:
    with pytest.raises(error) as info:
        R.parse_request(body)
    assert info.value.param == param
    assert info.value.status == 400 and info.value.kind is ErrorKind.INVALID_REQUEST


def test_stateful_request_says_to_send_the_history() -> None:
    with pytest.raises(Unsupported, match=r"stateless.*whole conversation"):
        R.parse_request({"model": "m", "input": "x", "previous_response_id": "resp_1"})


# --- the real Codex CLI requests (client-shapes/codex.json, codex-gpt-5.5.json; long texts shortened) -----

EXEC_GRAMMAR = 'start: pragma_source | plain_source\npragma_source: PRAGMA_LINE NEWLINE js_source\n'
CODEX_BODY = {
    "model": "gpt-6.1-sol", "stream": True,
    "input": [
        {"type": "additional_tools", "id": "at_01a1", "role": "developer", "tools": [
            {"type": "namespace", "name": "functions", "description": "", "tools": [
                {"type": "custom", "name": "exec", "description": "Run JavaScript in a sandboxed cell.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": EXEC_GRAMMAR}},
                {"type": "function", "name": "wait", "description": "Wait for an exec cell.", "strict": False,
                 "parameters": {"type": "object", "properties": {"cell_id": {"type": "string"}},
                                "required": ["cell_id"], "additionalProperties": False}}]},
            {"type": "namespace", "name": "clock", "description": "", "tools": [
                {"type": "function", "name": "sleep", "description": "Sleep.", "strict": False,
                 "parameters": {"type": "object", "properties": {"ms": {"type": "number"}}}}]}]},
        {"type": "message", "id": "msg_01a", "role": "developer", "content": [itext("<permissions instructions>")]},
        {"type": "message", "id": "msg_01b", "role": "developer",
         "content": [itext("<app-context>"), itext("<collaboration_mode>")]},
        {"type": "message", "id": "msg_01c", "role": "user", "content": [itext("# AGENTS.md instructions")]},
        {"type": "message", "id": "msg_01d", "role": "user", "content": [itext("Run the harness command.")]},
        {"type": "reasoning", "id": "rs_mock187a", "summary": [], "content": None, "encrypted_content": ENC},
        {"type": "message", "status": "completed", "id": "msg_mocke2d5", "role": "assistant",
         "content": [{"type": "output_text", "text": "I'll run the harness command in the shell now.",
                      "annotations": [], "logprobs": []}]},
        {"type": "custom_tool_call", "id": "ctc_mock2e4c", "status": "completed",
         "call_id": "call_mock0e08dbb9d02a4dd9be25eaa3", "name": "exec", "namespace": "functions",
         "input": 'const r = await tools.exec_command({cmd: "echo HARNESS_OK"});\ntext(r.output);'},
        {"type": "custom_tool_call_output", "id": "ctco_01a1", "call_id": "call_mock0e08dbb9d02a4dd9be25eaa3",
         "output": [itext("Script completed\nWall time 0.1 seconds\nOutput:\n"), itext("HARNESS_OK_57657\n")]},
    ],
    "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"effort": "low", "context": "all_turns"},
    "store": False, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "01a1fc81",
    "text": {"verbosity": "low"}, "client_metadata": {"turn_id": "01a1fc81-1854"},
}
CODEX_GPT55_BODY = {
    "model": "gpt-5.5", "stream": True,
    "input": [
        {"type": "message", "id": "msg_a73f", "role": "developer", "content": [itext("<permissions instructions>")]},
        {"type": "message", "id": "msg_01a2", "role": "user", "content": [itext("Run the harness command.")]},
        {"type": "reasoning", "id": "rs_mockfef2", "summary": [], "content": None, "encrypted_content": ENC},
        {"type": "message", "status": "completed", "id": "msg_mocka9ed", "role": "assistant",
         "content": [{"type": "output_text", "text": "I'll run the harness command in the shell now.",
                      "annotations": [], "logprobs": []}]},
        {"type": "function_call", "status": "completed", "id": "fc_mock0e5b", "name": "exec_command",
         "arguments": "{\"cmd\": \"echo HARNESS_OK_$((19133+1))\"}", "call_id": "call_mockdfc6dd59bff84fdc886b8900"},
        {"type": "function_call_output", "id": "fco_01a1", "call_id": "call_mockdfc6dd59bff84fdc886b8900",
         "output": "Chunk ID: 1\nWall time: 0.0 seconds\nProcess exited with code 0\nOutput:\nHARNESS_OK_19134\n"},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "description": "Runs a command in a PTY.", "strict": False,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
                        "additionalProperties": False}},
        {"type": "custom", "name": "apply_patch", "description": "Use the apply_patch tool to edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}},
        {"type": "tool_search", "execution": "client", "description": "Search deferred tools.",
         "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
        {"type": "web_search", "external_web_access": True, "search_content_types": ["text", "image"]},
    ],
    "tool_choice": "auto", "parallel_tool_calls": True, "reasoning": {"effort": "medium"}, "store": False,
    "include": ["reasoning.encrypted_content"], "prompt_cache_key": "01a1fc81-19b2", "text": {"verbosity": "low"},
}


def test_parse_codex_request() -> None:
    body = CODEX_BODY
    got = R.parse_request(body)
    items = body["input"]
    namespaces = items[0]["tools"]
    exec_tool, wait_tool = namespaces[0]["tools"]
    assert got.tools == (
        Tool(name="exec", kind=ToolKind.CUSTOM, namespace="functions",
             description=f"{exec_tool['description']}\n\nThe input must match this lark grammar:\n{EXEC_GRAMMAR}"),
        Tool(name="wait", description=wait_tool["description"], parameters=wait_tool["parameters"], strict=False,
             namespace="functions"),
        Tool(name="sleep", description="Sleep.", parameters=namespaces[1]["tools"][0]["parameters"], strict=False,
             namespace="clock"),
    )
    call, output = items[7], items[8]
    assert got.messages == (
        Message(role=SY, content=(Text(text=items[1]["content"][0]["text"]),)),
        Message(role=SY, content=tuple(Text(text=p["text"]) for p in items[2]["content"])),
        user(Text(text=items[3]["content"][0]["text"])),
        user(Text(text=items[4]["content"][0]["text"])),
        asst(Reasoning(text="", opaque=OWN), Text(text=items[6]["content"][0]["text"]),
             ToolCall(id=call["call_id"], name="exec", arguments=call["input"], kind=ToolKind.CUSTOM,
                      namespace="functions")),
        user(ToolResult(call_id=call["call_id"], content=tuple(Text(text=p["text"]) for p in output["output"]))),
    )
    assert got.system == () and got.stream is True and got.parallel_tool_calls is False
    assert got.tool_choice == ToolChoice(mode="auto") and got.reasoning == ReasoningConfig(effort="low")
    assert sorted(w.split()[0] for w in got.warnings) == ["client_metadata", "text.verbosity"]
    assert got.cache_key == "01a1fc81"


def test_codex_request_rendered_for_anthropic() -> None:
    """Codex → Claude: developer messages hoisted in order, namespaced custom exec as {input}, the OpenAI
    reasoning blob dropped (never sent to another vendor), the output parts kept as blocks."""
    body = CODEX_BODY
    ir = R.parse_request(body)
    ctx = make_ctx(ir)
    out = A.render_request(ir, ctx)
    items = body["input"]
    assert out["system"] == [{"type": "text", "text": t} for t in
                             ("<permissions instructions>", "<app-context>", "<collaboration_mode>")]
    call = items[7]
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "# AGENTS.md instructions"},
                                     {"type": "text", "text": "Run the harness command."}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": items[6]["content"][0]["text"]},
            {"type": "tool_use", "id": call["call_id"], "name": "exec", "input": {"input": call["input"]}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["call_id"], "content": [
            {"type": "text", "text": p["text"]} for p in items[8]["output"]]}]},
    ]
    assert [t["name"] for t in out["tools"]] == ["exec", "wait", "clock__sleep"]
    assert out["tools"][0]["input_schema"]["properties"] == {"input": {"type": "string"}}
    assert EXEC_GRAMMAR in out["tools"][0]["description"]
    assert out["thinking"]["type"] == "enabled" and out["stream"] is True
    assert any("reasoning from another provider" in w for w in ctx.warnings)


def test_codex_gpt55_request_rendered_for_chat() -> None:
    body = CODEX_GPT55_BODY
    ir = R.parse_request(body)
    out = C.render_request(ir, make_ctx(ir))
    items = body["input"]
    assert out["messages"] == [
        {"role": "system", "content": "<permissions instructions>"},
        {"role": "user", "content": "Run the harness command."},
        {"role": "assistant", "content": items[3]["content"][0]["text"], "tool_calls": [
            {"id": items[4]["call_id"], "type": "function",
             "function": {"name": "exec_command", "arguments": items[4]["arguments"]}}]},
        {"role": "tool", "tool_call_id": items[4]["call_id"], "content": items[5]["output"]},
    ]
    assert [t["function"]["name"] for t in out["tools"]] == ["exec_command", "apply_patch"]  # hosted tools dropped
    assert out["tools"][1]["function"]["parameters"]["required"] == ["input"]
    assert out["reasoning_effort"] == "medium" and out["parallel_tool_calls"] is True
    assert sum("hosted tools" in w for w in ir.warnings) == 2


# --- requests: render only (IR from the other clients → Responses upstream) ------------------------


def render(ir: Request, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    ctx = make_ctx(ir, **kw)
    return R.render_request(ir, ctx), ctx.warnings


def test_claude_code_request_rendered_for_responses() -> None:
    from tests.test_formats_anthropic import CLAUDE_CODE_BODY as body

    out, warnings = render(A.parse_request(body))
    m = body["messages"]
    tool_use = m[2]["content"][2]
    assert out["instructions"] == "\n\n".join(b["text"] for b in body["system"])
    assert out["input"] == [
        msg("user", *(itext(b["text"]) for b in m[0]["content"])),
        msg("developer", itext(m[1]["content"])),
        msg("assistant", otext(m[2]["content"][1]["text"])),  # the Anthropic-signed thinking is not sent
        fcall(tool_use["id"], "Bash", json.dumps(tool_use["input"], separators=(",", ":"))),
        {"type": "function_call_output", "call_id": tool_use["id"], "output": m[3]["content"][0]["content"]},
    ]
    assert out["tools"] == [fn_tool(t["name"], t["input_schema"], description=t["description"]) for t in body["tools"]]
    assert out["max_output_tokens"] == body["max_tokens"]
    assert out["reasoning"] == {"effort": body["output_config"]["effort"]}
    assert out["include"] == ["reasoning.encrypted_content"]
    assert out["store"] is False and out["stream"] is True
    assert "safety_identifier" not in out and any("128" in w for w in warnings)
    assert any("reasoning dropped" in w for w in warnings)


def test_codex_flavour() -> None:
    """formats.md §6.6: stream and store fixed, instructions required, sampling and limits refused."""
    ir = req(user(Text(text="x")), max_tokens=100, temperature=0.2, top_p=0.5, user="u-1")
    out, warnings = render(ir, flavor="codex")
    assert out["stream"] is True and out["store"] is False
    assert out["instructions"] == "You are a helpful assistant."
    assert out["include"] == ["reasoning.encrypted_content"]
    for key in ("max_output_tokens", "temperature", "top_p", "safety_identifier"):
        assert key not in out
    for needle in ("max_output_tokens", "temperature", "top_p", "user"):
        assert any(needle in w for w in warnings), needle
    out, _ = render(req(user(Text(text="x")), system=(Text(text="Be Claude."),), stream=True), flavor="codex")
    assert out["instructions"] == "Be Claude."


def test_not_codex_stream_only_when_asked_and_no_default_instructions() -> None:
    out, _ = render(req(user(Text(text="x"))))
    assert "stream" not in out and "instructions" not in out and "include" not in out
    assert out["store"] is False


def test_stop_and_top_k_dropped_with_warnings() -> None:
    out, warnings = render(req(user(Text(text="x")), stop=("END",), top_k=5))
    assert "stop" not in out and "top_k" not in out
    assert any("stop" in w for w in warnings) and any("top_k" in w for w in warnings)


@pytest.mark.parametrize(("cfg", "reasoning", "include"), [
    (ReasoningConfig(budget_tokens=2048), {"effort": "low"}, True),
    (ReasoningConfig(budget_tokens=60000), {"effort": "xhigh"}, True),
    (ReasoningConfig(effort="max"), {"effort": "max"}, True),
    (ReasoningConfig(), None, True),  # adaptive thinking: the model's default effort, blobs still wanted
    (ReasoningConfig(enabled=False), None, False),
    (None, None, False),
])
def test_reasoning_toward_responses(cfg: ReasoningConfig | None, reasoning: Any, include: bool) -> None:
    out, _ = render(req(user(Text(text="x")), reasoning=cfg))
    assert out.get("reasoning") == reasoning
    assert ("include" in out) is include


def test_tool_results_toward_responses() -> None:
    ir = req(asst(ToolCall(id="c1", name="shot", arguments="{}"), ToolCall(id="c2", name="run", arguments="{}"),
                  ToolCall(id="c3", name="apply_patch", arguments="*** Begin", kind=ToolKind.CUSTOM)),
             user(ToolResult(call_id="c1", content=(Text(text="captured"), Image(media_type="image/png", data=PNG))),
                  ToolResult(call_id="c2", content=(Text(text="exit 1"), Text(text="no such file")), is_error=True),
                  ToolResult(call_id="c3", content=(Image(url="https://x/y.png"),), is_error=True),
                  Text(text="What do you see?")))
    out, _ = render(ir)
    assert out["input"][3:] == [
        {"type": "function_call_output", "call_id": "c1", "output": [
            itext("captured"), {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "Error: exit 1\nno such file"},
        {"type": "custom_tool_call_output", "call_id": "c3", "output": [
            itext("Error:"), {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]},
        msg("user", itext("What do you see?")),
    ]
    assert out["input"][2] == {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch",
                               "input": "*** Begin"}


def test_names_flattened_and_shortened_consistently() -> None:
    ir = req(asst(ToolCall(id="c1", name=LONG_NAME, arguments="{}"),
                  ToolCall(id="c2", name="sleep", namespace="clock", arguments="{}"),
                  ToolCall(id="c3", name="exec", namespace="functions", arguments="", kind=ToolKind.CUSTOM)),
             tools=(Tool(name=LONG_NAME, parameters=WEATHER_SCHEMA), Tool(name="sleep", namespace="clock"),
                    Tool(name="exec", namespace="functions", kind=ToolKind.CUSTOM)),
             tool_choice=ToolChoice(mode="tool", name=LONG_NAME))
    out, _ = render(ir)
    names = [t["name"] for t in out["tools"]]
    assert names == [C.wire_tool_name(LONG_NAME), "clock__sleep", "exec"] and len(names[0]) <= 64
    assert [i["name"] for i in out["input"]] == names
    assert out["tool_choice"] == {"type": "function", "name": names[0]}
    assert out["tools"][1]["parameters"] == {"type": "object", "properties": {}}
    assert out["tools"][2] == {"type": "custom", "name": "exec"}


def test_foreign_or_blobless_reasoning_is_not_sent() -> None:
    ir = req(asst(Reasoning(text="claude", opaque=Opaque(origin="anthropic", data="sig")),
                  Reasoning(text="chat", opaque=Opaque(origin="chat", data="")),
                  Reasoning(text="stored", opaque=None), Reasoning(text="own", opaque=OWN), Text(text="A")))
    out, warnings = render(ir)
    assert out["input"] == [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "own"}],
                             "encrypted_content": ENC}, msg("assistant", otext("A"))]
    assert sum("reasoning dropped" in w for w in warnings) == 3


@pytest.mark.parametrize(("part", "wire_part"), [
    (Image(media_type="image/jpeg", data="AAAA", detail="low"),
     {"type": "input_image", "image_url": "data:image/jpeg;base64,AAAA", "detail": "low"}),
    (Document(text="plain notes", title="n"), itext("plain notes")),
    (Document(media_type="application/pdf", data="JVBE"),
     {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"}),
    (Document(url="https://x/a.pdf"), {"type": "input_file", "file_url": "https://x/a.pdf"}),
])
def test_media_toward_responses(part: Any, wire_part: dict[str, Any]) -> None:
    out, _ = render(req(user(Text(text="see"), Text(text=""), part)))
    assert out["input"] == [msg("user", itext("see"), wire_part)]


def test_chat_client_request_rendered_for_responses() -> None:
    ir = C.parse_request({"model": "gpt-client", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": WEATHER_SCHEMA}},
        "max_completion_tokens": 50, "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}})
    out, warnings = render(ir)
    assert "instructions" not in out and out["input"][0] == msg("developer", itext("Be brief."))
    assert out["input"][2:] == [fcall("call_1", "f", "{}"),
                                {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]
    assert out["text"] == {"format": {"type": "json_schema", "name": "out", "schema": WEATHER_SCHEMA}}
    assert out["tool_choice"] == {"type": "function", "name": "f"} and out["max_output_tokens"] == 50
    assert warnings == []


# --- upstream stream → IR ------------------------------------------------------------------------

R_SUMMARY = [["**Weather and time.** ", "Two tools — "], ["then ", "answer 🌍."]]
R_TEXT = ["héllo ", "🌍 日本", " — checking."]
R_CALLS = [("fc_1", "call_A", "get_weather", ['{"city":', ' "Zürich"}']),
           ("fc_2", "call_B", C.wire_tool_name(LONG_NAME), ["{}"])]
R_USAGE = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
           "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 150}
R_CLIENT_TOOLS = (Tool(name="get_weather", parameters=WEATHER_SCHEMA), Tool(name=LONG_NAME))
R_ID, R_MODEL = "resp_68af4030592c81938ec0a5fbab4a3e9f", "gpt-5.5-2026-04-01"
R_OUTPUT = [
    {"id": "rs_1", "type": "reasoning", "encrypted_content": ENC,
     "summary": [{"type": "summary_text", "text": "".join(p)} for p in R_SUMMARY]},
    {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
     "content": [{"type": "output_text", "text": "".join(R_TEXT), "annotations": [], "logprobs": []}]},
    *({"id": item_id, "type": "function_call", "status": "completed", "call_id": call_id, "name": name,
       "arguments": "".join(frags)} for item_id, call_id, name, frags in R_CALLS),
]


def r_response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"id": R_ID, "object": "response", "created_at": 1756315696, "status": status, "model": R_MODEL,
            "output": output, "usage": usage, "error": None, "incomplete_details": None, "store": False, **extra}


def r_events(terminal: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The upstream stream in the order the API sends it (formats.md §4.4), with the Codex backend's
    leading codex.rate_limits and a keepalive."""
    events: list[dict[str, Any]] = [
        {"type": "codex.rate_limits", "plan_type": "plus", "rate_limits": {"primary": {"used_percent": 3}}},
        {"type": "response.created", "response": r_response("in_progress", [])},
        {"type": "response.in_progress", "response": r_response("in_progress", [])},
        {"type": "keepalive"},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "partial"}},
    ]
    for n, pieces in enumerate(R_SUMMARY):
        where = {"item_id": "rs_1", "output_index": 0, "summary_index": n}
        events.append({"type": "response.reasoning_summary_part.added", **where,
                       "part": {"type": "summary_text", "text": ""}})
        events += [{"type": "response.reasoning_summary_text.delta", **where, "delta": p} for p in pieces]
        events += [{"type": "response.reasoning_summary_text.done", **where, "text": "".join(pieces)},
                   {"type": "response.reasoning_summary_part.done", **where,
                    "part": {"type": "summary_text", "text": "".join(pieces)}}]
    where = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": R_OUTPUT[0]},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
        {"type": "response.content_part.added", **where, "part": {"type": "output_text", "text": "",
                                                                  "annotations": []}},
        *({"type": "response.output_text.delta", **where, "delta": t, "logprobs": []} for t in R_TEXT),
        {"type": "response.output_text.done", **where, "text": "".join(R_TEXT), "logprobs": []},
        {"type": "response.content_part.done", **where, "part": R_OUTPUT[1]["content"][0]},
        {"type": "response.output_item.done", "output_index": 1, "item": R_OUTPUT[1]},
    ]
    for index, (item_id, call_id, name, frags) in enumerate(R_CALLS, start=2):
        where = {"item_id": item_id, "output_index": index}
        events += [
            {"type": "response.output_item.added", "output_index": index, "item": {
                "id": item_id, "type": "function_call", "status": "in_progress", "call_id": call_id, "name": name,
                "arguments": ""}},
            *({"type": "response.function_call_arguments.delta", **where, "delta": f} for f in frags),
            {"type": "response.function_call_arguments.done", **where, "arguments": "".join(frags)},
            {"type": "response.output_item.done", "output_index": index, "item": R_OUTPUT[index]},
        ]
    return [*events, terminal or {"type": "response.completed", "response": r_response("completed", R_OUTPUT,
                                                                                        R_USAGE)}]


def r_sse(events: list[dict[str, Any]], event_lines: bool = True) -> bytes:
    def one(e: dict[str, Any], seq: int) -> str:
        data = json.dumps({**e, "sequence_number": seq}, ensure_ascii=False)
        return (f"event: {e['type']}\n" if event_lines else "") + f"data: {data}\n\n"

    return "".join(one(e, n) for n, e in enumerate(events)).encode()


R_RAW = r_sse(r_events())
R_EXPECTED = [
    MessageStart(id=R_ID, model=R_MODEL),
    BlockStart(block_id=0, kind=BlockKind.REASONING),
    BlockDelta(block_id=0, text=R_SUMMARY[0][0]), BlockDelta(block_id=0, text=R_SUMMARY[0][1]),
    BlockDelta(block_id=0, text="\n\n" + R_SUMMARY[1][0]), BlockDelta(block_id=0, text=R_SUMMARY[1][1]),
    BlockStop(block_id=0, opaque=OWN),  # from .done: .added had a partial value
    BlockStart(block_id=1, kind=BlockKind.TEXT), *(BlockDelta(block_id=1, text=t) for t in R_TEXT),
    BlockStop(block_id=1),
    BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_A", tool_name="get_weather"),
    *(BlockDelta(block_id=2, text=f) for f in R_CALLS[0][3]), BlockStop(block_id=2),
    BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id="call_B", tool_name=LONG_NAME),  # mapped back
    BlockDelta(block_id=3, text="{}"), BlockStop(block_id=3),
    UsageUpdate(usage=Usage(input_tokens=70, output_tokens=50, cache_read_tokens=30, cache_write_tokens=0,
                            reasoning_tokens=20)),
    Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="completed"),
]


def parse_stream(raw: bytes, size: int | None = None, ctx: Context | None = None) -> list[Any]:
    parser, decoder = R.StreamParser(ctx or make_ctx(req(tools=R_CLIENT_TOOLS))), SSEDecoder()
    pieces = [raw] if size is None else [raw[i:i + size] for i in range(0, len(raw), size)]
    out = [ev for p in pieces for s in decoder.feed(p) for ev in parser.feed(s)]
    return out + [ev for s in decoder.close() for ev in parser.feed(s)] + parser.close()


def parse_events(events: list[dict[str, Any]], ctx: Context | None = None) -> list[Any]:
    return parse_stream(r_sse(events), ctx=ctx)


@pytest.mark.parametrize("size", [None, 1, 7], ids=["whole", "one byte", "7 bytes"])
def test_stream_parser_realistic(size: int | None) -> None:
    assert parse_stream(R_RAW, size) == R_EXPECTED


def test_grammar_checker_accepts_the_api_and_rejects_an_empty_final_output() -> None:
    """The checker is independent of the emitter: the API's own stream (minus the Codex backend's
    extra events) passes, and a terminal output that drops the streamed items does not (§4.4)."""
    standard = [e for e in r_events() if e["type"] not in ("codex.rate_limits", "keepalive")]
    check_responses_stream(r_sse(standard))
    emptied = {"type": "response.completed", "response": r_response("completed", [], R_USAGE)}
    with pytest.raises(AssertionError, match="every finished item"):
        check_responses_stream(r_sse([*standard[:-1], emptied]))


def test_stream_parser_needs_no_event_lines() -> None:
    """formats.md §4.4: clients and the SDK dispatch on the JSON type."""
    assert parse_stream(r_sse(r_events(), event_lines=False)) == R_EXPECTED


def test_non_streamed_response_gives_the_same_events() -> None:
    """style.md item 7: accumulate(stream) == response_events(body), and here even the events agree."""
    body = r_response("completed", R_OUTPUT, R_USAGE)
    events = R.response_events(body, make_ctx(req(tools=R_CLIENT_TOOLS)))
    assert accumulate(events) == accumulate(R_EXPECTED)
    streamed = [e for e in R_EXPECTED if not isinstance(e, BlockDelta)]
    assert [e for e in events if not isinstance(e, BlockDelta)] == streamed  # one delta per block in a body


@pytest.mark.parametrize(("status", "details", "reason", "raw"), [
    ("incomplete", {"reason": "max_output_tokens"}, StopReason.MAX_TOKENS, "max_output_tokens"),
    ("incomplete", {"reason": "content_filter"}, StopReason.REFUSAL, "content_filter"),
    ("incomplete", None, StopReason.OTHER, "incomplete"),
    ("completed", None, StopReason.END_TURN, "completed"),
])
def test_terminal_status_both_ways(status: str, details: Any, reason: StopReason, raw: str) -> None:
    output = [R_OUTPUT[1]]
    terminal = {"type": f"response.{status}", "response": r_response(status, output, R_USAGE,
                                                                     incomplete_details=details)}
    stream_events = r_events(terminal)
    cut = next(i for i, e in enumerate(stream_events) if e.get("output_index") == 2)
    streamed = parse_events([*stream_events[:cut], terminal])
    whole = R.response_events(terminal["response"], make_ctx())
    assert streamed[-1] == whole[-1] == Finish(stop_reason=reason, raw_stop_reason=raw)
    assert accumulate(whole).content == (Text(text="".join(R_TEXT)),)
    assert accumulate(streamed).content[-1] == Text(text="".join(R_TEXT))


@pytest.mark.parametrize(("error", "status", "kind"), [
    ({"code": "rate_limit_exceeded", "message": "Rate limit reached. Please try again in 1.2s."}, 429,
     ErrorKind.RATE_LIMIT),
    ({"code": "server_is_overloaded", "message": "busy"}, 503, ErrorKind.OVERLOADED),
    ({"code": "slow_down", "message": "slow"}, 503, ErrorKind.OVERLOADED),
    ({"code": "context_length_exceeded", "message": "too long"}, 400, ErrorKind.INVALID_REQUEST),
    ({"code": "invalid_prompt", "message": "flagged"}, 400, ErrorKind.INVALID_REQUEST),
    ({"code": "insufficient_quota", "message": "quota"}, 429, ErrorKind.BILLING),
    ({"code": "server_error", "message": "boom"}, 500, ErrorKind.API_ERROR),
    ({"code": None, "message": ""}, 500, ErrorKind.API_ERROR),
])
def test_failed_response(error: dict[str, Any], status: int, kind: ErrorKind) -> None:
    failed = {"type": "response.failed", "response": {**r_response("failed", []), "error": error}}
    events = parse_events([*r_events()[:9], failed, {"type": "response.completed", "response": r_response(
        "completed", [])}])
    assert events[-1] == StreamError(status=status, kind=kind, message=error["message"] or
                                     f"upstream response failed ({error['code'] or 'no code'})")
    assert sum(isinstance(e, StreamError | Finish) for e in events) == 1  # nothing after the failure
    with pytest.raises(UpstreamError) as info:
        accumulate(R.response_events(failed["response"], make_ctx()))
    assert (info.value.status, info.value.kind) == (status, kind)


def test_error_events() -> None:
    assert parse_events([{"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None}]) == \
        [StreamError(status=429, kind=ErrorKind.RATE_LIMIT, message="slow")]
    wrapped = {"type": "error", "status": 429, "error": {"type": "usage_limit_reached", "message": "limit"}}
    assert parse_events([r_events()[1], wrapped]) == [
        MessageStart(id=R_ID, model=R_MODEL), StreamError(status=429, kind=ErrorKind.RATE_LIMIT, message="limit")]


@pytest.mark.parametrize("cut", [1, 5, 12, -1])
def test_truncated_stream_is_a_protocol_error(cut: int) -> None:
    with pytest.raises(UpstreamProtocolError, match=r"response\.completed"):
        parse_events(r_events()[:cut])


def test_whole_items_without_deltas_and_done_without_added() -> None:
    """Some servers send content only in .done, or skip .added; arguments "" mean {}."""
    call = {"id": "fc_9", "type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": ""}
    events = parse_events([
        r_events()[1],
        {"type": "response.output_item.added", "output_index": 0, "item": {**R_OUTPUT[1], "content": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": R_OUTPUT[1]},
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        {"type": "response.completed", "response": r_response("completed", [R_OUTPUT[1], call])}])
    assert accumulate(events).content == (Text(text="".join(R_TEXT)),
                                          ToolCall(id="call_9", name="get_weather", arguments="{}"))
    assert events[-1] == Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="completed")


def test_completed_output_recovers_items_the_stream_skipped_and_ignores_an_empty_one() -> None:
    """formats.md §6.6: the Codex backend's completed.output may be empty; a body's items come whole."""
    events = r_events()
    assert parse_stream(r_sse([*events[:-1], {"type": "response.completed", "response": r_response(
        "completed", [], R_USAGE)}])) == R_EXPECTED
    only_terminal = parse_events([events[1], events[-1]], make_ctx(req(tools=R_CLIENT_TOOLS)))
    assert accumulate(only_terminal) == accumulate(R_EXPECTED)


def test_terminal_closes_an_item_the_upstream_never_finished() -> None:
    call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": ""}
    events = parse_events([r_events()[1], {"type": "response.output_item.added", "output_index": 0, "item": call},
                           {"type": "response.completed", "response": r_response("completed", [])}])
    assert accumulate(events).content == (ToolCall(id="call_1", name="get_weather", arguments="{}"),)


def test_refusal_empty_message_and_unknown_items() -> None:
    ctx = make_ctx()
    refusal = {"id": "msg_r", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I can't help."}]}
    events = parse_events([
        r_events()[1],
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "ws_1", "type": "web_search_call"}},
        {"type": "response.output_item.done", "output_index": 0, "item": {"id": "ws_1", "type": "web_search_call"}},
        {"type": "response.output_item.added", "output_index": 1, "item": {**refusal, "content": []}},
        {"type": "response.refusal.delta", "item_id": "msg_r", "output_index": 1, "content_index": 0,
         "delta": "I can't help."},
        {"type": "response.output_item.done", "output_index": 1, "item": refusal},
        {"type": "response.output_item.added", "output_index": 2, "item": {**refusal, "id": "msg_e", "content": []}},
        {"type": "response.output_item.done", "output_index": 2, "item": {**refusal, "id": "msg_e", "content": []}},
        {"type": "response.completed", "response": r_response("completed", [])}], ctx)
    assert accumulate(events).content == (Text(text="I can't help."),)
    assert [e.kind for e in events if isinstance(e, BlockStart)] == [BlockKind.TEXT]  # no block for empty text
    assert any("web_search_call" in w for w in ctx.warnings)


def test_custom_calls_and_freeform_tools_called_as_functions() -> None:
    """A custom_tool_call streams raw input; a client's freeform tool called as a function {"input": …}
    is unwrapped as it streams (common.InputUnwrapper)."""
    ctx = make_ctx(req(tools=(Tool(name="apply_patch", kind=ToolKind.CUSTOM),
                              Tool(name="exec", namespace="functions", kind=ToolKind.CUSTOM))))
    patch = {"id": "ctc_1", "type": "custom_tool_call", "call_id": "call_P", "name": "apply_patch", "input": ""}
    wrapped = {"id": "fc_1", "type": "function_call", "call_id": "call_E", "name": "exec", "arguments": ""}
    events = parse_events([
        r_events()[1],
        {"type": "response.output_item.added", "output_index": 0, "item": patch},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0, "delta": "*** Begin"},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0, "delta": " Patch"},
        {"type": "response.output_item.done", "output_index": 0, "item": {**patch, "input": "*** Begin Patch"}},
        {"type": "response.output_item.added", "output_index": 1, "item": wrapped},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1,
         "delta": '{"input": "echo \\"hi'},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": '\\""}'},
        {"type": "response.output_item.done", "output_index": 1, "item": wrapped},
        {"type": "response.completed", "response": r_response("completed", [])}], ctx)
    assert accumulate(events).content == (
        ToolCall(id="call_P", name="apply_patch", arguments="*** Begin Patch", kind=ToolKind.CUSTOM),
        ToolCall(id="call_E", name="exec", arguments='echo "hi"', kind=ToolKind.CUSTOM, namespace="functions"))
    assert sum(isinstance(e, BlockDelta) for e in events) == 4  # streamed, not buffered to the end


def test_reasoning_envelope_and_raw_reasoning_text() -> None:
    """A bridge envelope in encrypted_content goes back to its origin; raw reasoning_text is read too,
    and the summary wins when both come."""
    signed = encode_signature(Opaque(origin="anthropic", data=A_SIGNATURE))
    item = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": signed}
    where = {"item_id": "rs_1", "output_index": 0, "content_index": 0}
    events = parse_events([
        r_events()[1],
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "encrypted_content": None}},
        {"type": "response.reasoning_text.delta", **where, "delta": "raw "},
        {"type": "response.reasoning_text.delta", **where, "delta": "thought"},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0,
         "delta": "ignored"},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": r_response("completed", [])}])
    assert accumulate(events).content == (Reasoning(text="raw thought",
                                                    opaque=Opaque(origin="anthropic", data=A_SIGNATURE)),)


def test_parser_tolerates_done_marker_and_rejects_garbage() -> None:
    assert parse_stream(R_RAW + b"data: [DONE]\n\n") == R_EXPECTED
    with pytest.raises(UpstreamProtocolError):
        R.StreamParser(make_ctx()).feed(SSEEvent(None, "{oops"))
    with pytest.raises(UpstreamProtocolError, match="status 'in_progress'"):
        R.response_events(r_response("in_progress", []), make_ctx())


# --- translating through the bridge: Responses upstream → Anthropic / Chat clients -----------------

ANTHROPIC_CLIENT_BODY = {
    "model": "claude-client", "max_tokens": 4096, "stream": True,
    "messages": [{"role": "user", "content": "Weather in Zürich, and review comments?"}],
    "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA},
              {"name": LONG_NAME, "input_schema": {"type": "object"}}],
}
CHAT_CLIENT_BODY = {
    "model": "gpt-client", "stream": True, "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Weather in Zürich, and review comments?"}],
    "tools": [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
              for n in ("get_weather", LONG_NAME)],
}
SPLIT = settings(max_examples=40, deadline=None)


def run(client: Any, upstream: Any, body: dict[str, Any], chunks: list[bytes], **ctx_kw: Any) -> bytes:
    exchange, _ = translate.Exchange.start(client, upstream, json.dumps(body).encode(), make_ctx(**ctx_kw))
    translator = exchange.stream()
    out: list[bytes] = []
    for chunk in chunks:
        got = translator.feed(chunk)
        assert isinstance(got, list) and b"" not in got
        out += got
    return b"".join(out + translator.close())


def test_responses_upstream_to_anthropic_client() -> None:
    final = fold_anthropic(check_anthropic_stream(run(A, R, ANTHROPIC_CLIENT_BODY, [R_RAW])))
    thinking, text, *calls = final["content"]
    assert thinking["thinking"] == "\n\n".join("".join(p) for p in R_SUMMARY)
    assert decode_signature(thinking["signature"], "anthropic") == OWN  # the blob rides in the envelope
    assert text == {"type": "text", "text": "".join(R_TEXT)}
    assert [(c["id"], c["name"], c["input"]) for c in calls] == [
        (call_id, name, json.loads("".join(frags)))
        for (_, call_id, _, frags), name in zip(R_CALLS, ("get_weather", LONG_NAME), strict=True)]
    assert final["stop_reason"] == "tool_use" and final["model"] == "claude-client"
    assert final["usage"]["input_tokens"] == 70 and final["usage"]["cache_read_input_tokens"] == 30
    assert final["usage"]["output_tokens"] == 50


def test_responses_upstream_to_chat_client() -> None:
    final = fold_chat(check_chat_stream(run(C, R, CHAT_CLIENT_BODY, [R_RAW])))
    assert final["content"] == "".join(R_TEXT)
    assert [(c["id"], c["name"]) for c in final["tool_calls"]] == [("call_A", "get_weather"), ("call_B", LONG_NAME)]
    assert final["finish_reason"] == "tool_calls"
    assert final["usage"]["prompt_tokens"] == R_USAGE["input_tokens"]
    assert final["usage"]["prompt_tokens_details"]["cached_tokens"] == 30


@SPLIT
@given(data=st.data())
def test_responses_upstream_any_split(data: st.DataObject) -> None:
    client, body = data.draw(st.sampled_from([(A, ANTHROPIC_CLIENT_BODY), (C, CHAT_CLIENT_BODY)]))
    whole = run(client, R, body, [R_RAW])
    assert run(client, R, body, split_at(R_RAW, data.draw(cuts_for(R_RAW)))) == whole


def test_responses_upstream_one_byte_at_a_time() -> None:
    whole = run(A, R, ANTHROPIC_CLIENT_BODY, [R_RAW])
    assert run(A, R, ANTHROPIC_CLIENT_BODY, [R_RAW[i:i + 1] for i in range(len(R_RAW))]) == whole


def test_failed_upstream_reaches_anthropic_client_as_error_event() -> None:
    failed = {"type": "response.failed", "response": {**r_response("failed", []), "error": {
        "code": "server_is_overloaded", "message": "Overloaded — réessayez"}}}
    events = check_anthropic_stream(run(A, R, ANTHROPIC_CLIENT_BODY, [r_sse([*r_events()[:12], failed])]))
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                               "message": "Overloaded — réessayez"}})


def test_codex_backend_non_streaming_client_gets_one_folded_body() -> None:
    """§6.6: the backend only streams, so a non-streaming Chat client's answer is the folded stream."""
    body = {**CHAT_CLIENT_BODY, "stream": False}
    del body["stream_options"]
    exchange, upstream_body = translate.Exchange.start(C, R, json.dumps(body).encode(), make_ctx(flavor="codex"))
    assert json.loads(upstream_body)["stream"] is True
    status, content_type, out = exchange.translate_body(200, "text/event-stream", R_RAW)
    assert status == 200 and content_type == "application/json"
    message = json.loads(out)["choices"][0]["message"]
    assert message["content"] == "".join(R_TEXT) and len(message["tool_calls"]) == 2


# --- IR → Responses client stream ----------------------------------------------------------------

RESPONSES_CLIENT_BODY = {
    "model": "gpt-client", "stream": True, "input": "Weather and time in Zürich?",
    "tools": [fn_tool(name, {"type": "object"}) for _, name, _ in A_CALLS],
}


def emit(events: list[Any], ctx: Context | None = None) -> bytes:
    emitter = R.StreamEmitter(ctx or make_ctx())
    return b"".join(b for ev in events for b in emitter.feed(ev))


def final_response(raw: bytes) -> Any:
    with openai_client(raw).responses.stream(model="gpt-client", input="q") as stream:
        return stream.get_final_response()


def test_anthropic_upstream_to_responses_client_through_the_sdk() -> None:
    """The official helper accepts the stream; Codex's needs (complete items, full output) hold too."""
    raw = run(R, A, RESPONSES_CLIENT_BODY, [A_RAW])
    events = check_responses_stream(raw)
    final = final_response(raw)
    assert final.status == "completed" and final.model == "gpt-client" and final.id.startswith("resp_")
    assert final.output_text == "".join(A_TEXT)
    reasoning, message, *calls = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "".join(A_THINKING)
    assert decode_signature(reasoning.encrypted_content, "responses") == Opaque(origin="anthropic", data=A_SIGNATURE)
    assert message.type == "message" and message.content[0].type == "output_text"
    assert [(c.type, c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("function_call", id_, name, json.loads("".join(frags))) for id_, name, frags in A_CALLS]
    cache = A_USAGE_START["cache_read_input_tokens"] + A_USAGE_START["cache_creation_input_tokens"]
    assert final.usage.input_tokens == A_USAGE_START["input_tokens"] + cache
    assert final.usage.input_tokens_details.cached_tokens == A_USAGE_START["cache_read_input_tokens"]
    assert final.usage.output_tokens == A_OUTPUT_TOKENS
    assert final.usage.total_tokens == final.usage.input_tokens + A_OUTPUT_TOKENS
    assert events[-1]["response"]["output"] == [e["item"] for e in events if e["type"] == "response.output_item.done"]


def test_chat_upstream_to_responses_client_through_the_sdk() -> None:
    body = {**RESPONSES_CLIENT_BODY, "tools": [fn_tool(LONG_NAME, {"type": "object"}),
                                               fn_tool("get_time", {"type": "object"})]}
    raw = run(R, C, body, [C_RAW])
    check_responses_stream(raw)
    final = final_response(raw)
    assert final.output_text == "".join(C_TEXT)
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.name) for c in calls] == [(C_CALLS[0][0], LONG_NAME), (C_CALLS[1][0], "get_time")]
    assert final.usage.input_tokens == C_USAGE["prompt_tokens"]
    assert final.usage.output_tokens_details.reasoning_tokens == C_USAGE["completion_tokens_details"][
        "reasoning_tokens"]


def test_codex_next_turn_reaches_anthropic_with_thinking_intact() -> None:
    """§5.7: Claude's signature rides in encrypted_content; Codex echoes the output items (without ids)
    and the Anthropic upstream gets its thinking block, tool calls and results back unchanged."""
    events = check_responses_stream(run(R, A, RESPONSES_CLIENT_BODY, [A_RAW]))
    output = events[-1]["response"]["output"]
    echoed = [{k: v for k, v in item.items() if k not in ("id", "status")} for item in output]
    calls = [o for o in output if o["type"] == "function_call"]
    results = [{"type": "function_call_output", "call_id": o["call_id"], "output": f"result {n}"}
               for n, o in enumerate(calls)]
    body = {**RESPONSES_CLIENT_BODY, "input": [msg("user", itext("Weather and time in Zürich?")), *echoed, *results]}
    _, upstream = translate.Exchange.start(R, A, json.dumps(body).encode(), make_ctx())
    messages = json.loads(upstream)["messages"]
    assert messages[1]["content"] == [
        {"type": "thinking", "thinking": "".join(A_THINKING), "signature": A_SIGNATURE},
        {"type": "text", "text": "".join(A_TEXT)},
        *({"type": "tool_use", "id": id_, "name": name, "input": json.loads("".join(frags))}
          for id_, name, frags in A_CALLS)]
    assert [(r["tool_use_id"], r["content"]) for r in messages[2]["content"]] == \
        [(id_, [{"type": "text", "text": f"result {n}"}]) for n, (id_, _, _) in enumerate(A_CALLS)]


def test_redacted_thinking_survives_a_codex_round_trip() -> None:
    events = [MessageStart(id="msg_1", model="claude"), BlockStart(block_id=0, kind=BlockKind.REASONING, redacted=True),
              BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="EmwKAhgBredacted")),
              BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="ok"), BlockStop(block_id=1),
              Finish(stop_reason=StopReason.END_TURN)]
    output = check_responses_stream(emit(events))[-1]["response"]["output"]
    assert output[0]["summary"] == [] and is_redacted_signature(output[0]["encrypted_content"])
    body = {"model": "m", "input": [msg("user", itext("q")), *output, msg("user", itext("next"))]}
    anthropic_body = A.render_request(R.parse_request(body), make_ctx())
    assert anthropic_body["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "EmwKAhgBredacted"}


ANTHROPIC_EVENTS = [
    MessageStart(id="msg_01X", model="claude-sonnet-4-5", usage=Usage(input_tokens=70, cache_read_tokens=30,
                                                                      output_tokens=1)),
    BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="Plan: "),
    BlockDelta(block_id=0, text="look up."), BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="SIG")),
    BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="héllo 🌍 "),
    BlockDelta(block_id=1, text="日本"), BlockStop(block_id=1),
    BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="toolu_A", tool_name="get_weather"),
    BlockDelta(block_id=2, text='{"city": '), BlockDelta(block_id=2, text='"Paris"}'), BlockStop(block_id=2),
    BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id="call_X", tool_name="exec",
               tool_namespace="functions", tool_kind=ToolKind.CUSTOM),
    BlockDelta(block_id=3, text='echo "hi" — ü'), BlockStop(block_id=3),
    BlockStart(block_id=4, kind=BlockKind.TEXT), BlockDelta(block_id=4, text="after the tools"), BlockStop(block_id=4),
    UsageUpdate(usage=Usage(output_tokens=42, reasoning_tokens=7)),
    Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use"),
]


def test_emitter_items_custom_calls_and_namespaces() -> None:
    raw = emit(ANTHROPIC_EVENTS, make_ctx(req(model="gpt-client")))
    events = check_responses_stream(raw)
    assert {e["response"]["model"] for e in events if "response" in e} == {"gpt-client"}
    assert all(e["response"]["created_at"] == 1_700_000_000 for e in events if "response" in e)
    output = events[-1]["response"]["output"]
    assert [o["type"] for o in output] == ["reasoning", "message", "function_call", "custom_tool_call", "message"]
    assert output[3] == {"id": output[3]["id"], "type": "custom_tool_call", "call_id": "call_X", "name": "exec",
                         "input": 'echo "hi" — ü', "namespace": "functions"}
    assert output[3]["id"].startswith("ctc_") and output[2]["id"].startswith("fc_")
    assert [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"] == ['echo "hi" — ü']
    assert events[-1]["response"]["usage"] == {
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "output_tokens": 42, "output_tokens_details": {"reasoning_tokens": 7}, "total_tokens": 142}
    final = final_response(raw)
    assert final.output[3].type == "custom_tool_call" and final.output[3].input == 'echo "hi" — ü'
    assert final.output_text == "héllo 🌍 日本after the tools"


def test_emitter_round_trips_through_the_parser() -> None:
    ctx = make_ctx(req(tools=(Tool(name="get_weather"), Tool(name="exec", namespace="functions",
                                                             kind=ToolKind.CUSTOM))))
    raw = emit(ANTHROPIC_EVENTS)
    got = accumulate(parse_stream(raw, ctx=ctx))
    expected = accumulate(ANTHROPIC_EVENTS)
    assert got.content == expected.content
    assert got.usage == Usage(input_tokens=70, output_tokens=42, cache_read_tokens=30, cache_write_tokens=0,
                              reasoning_tokens=7)
    assert got.stop_reason is StopReason.TOOL_USE


def test_render_response_is_the_completed_response() -> None:
    """The non-streamed body equals what response.completed carries (item ids aside)."""
    ctx = make_ctx(req(model="gpt-client"))
    completed = check_responses_stream(emit(ANTHROPIC_EVENTS, ctx))[-1]["response"]
    body = R.render_response(accumulate(ANTHROPIC_EVENTS), make_ctx(req(model="gpt-client")))

    def without_ids(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: without_ids(v) for k, v in obj.items() if k != "id"}
        return [without_ids(v) for v in obj] if isinstance(obj, list) else obj

    assert without_ids(body) == without_ids(completed)
    resp = openai_client(json.dumps(body).encode(), "application/json").responses.create(model="m", input="q")
    assert resp.output_text == "héllo 🌍 日本after the tools" and resp.status == "completed"


@pytest.mark.parametrize(("reason", "status"), [
    (StopReason.END_TURN, "completed"), (StopReason.STOP_SEQUENCE, "completed"), (StopReason.PAUSE, "completed"),
    (StopReason.OTHER, "completed"), (StopReason.TOOL_USE, "completed"), (StopReason.REFUSAL, "completed"),
    (StopReason.MAX_TOKENS, "incomplete"), (StopReason.CONTEXT_EXCEEDED, "incomplete"),
])
def test_stop_reason_to_status(reason: StopReason, status: str) -> None:
    events = [MessageStart(id="m", model="m"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="partial"), BlockStop(block_id=0), Finish(stop_reason=reason)]
    terminal = check_responses_stream(emit(events))[-1]
    assert terminal["type"] == f"response.{status}" and terminal["response"]["status"] == status
    if status == "incomplete":
        assert terminal["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
        with pytest.raises(RuntimeError, match=r"response\.completed"):  # formats.md §4.4, by design
            final_response(emit(events))
    else:
        assert final_response(emit(events)).output_text == "partial"
    body = R.render_response(accumulate(events), make_ctx())
    assert body["status"] == status


def test_refusal_without_text_says_so() -> None:
    events = [MessageStart(id="m", model="m"), Finish(stop_reason=StopReason.REFUSAL, raw_stop_reason="refusal")]
    raw = emit(events)
    output = check_responses_stream(raw)[-1]["response"]["output"]
    assert [(o["type"], o["content"][0]["type"]) for o in output] == [("message", "output_text")]  # never refusal
    assert final_response(raw).output_text == R.render_response(accumulate(events), make_ctx())["output"][0][
        "content"][0]["text"] != ""


@pytest.mark.parametrize(("kind", "code"), [
    (ErrorKind.RATE_LIMIT, "rate_limit_exceeded"), (ErrorKind.OVERLOADED, "server_is_overloaded"),
    (ErrorKind.INVALID_REQUEST, "invalid_prompt"), (ErrorKind.BILLING, "insufficient_quota"),
    (ErrorKind.API_ERROR, "server_error"), (ErrorKind.AUTHENTICATION, "server_error"),
])
def test_stream_error_is_response_failed(kind: ErrorKind, code: str) -> None:
    events = [MessageStart(id="m", model="m"), BlockStart(block_id=0, kind=BlockKind.TEXT),
              BlockDelta(block_id=0, text="par"), StreamError(status=500, kind=kind, message="it broke — ü"),
              Finish(stop_reason=StopReason.END_TURN)]
    parsed = check_responses_stream(emit(events))
    assert parsed[-1]["type"] == "response.failed"
    assert parsed[-1]["response"]["error"] == {"code": code, "message": "it broke — ü"}
    assert parsed[-1]["response"]["output"] == []  # the open item is left unfinished


def test_stream_error_before_anything_still_starts_the_response() -> None:
    raw = emit([StreamError(status=429, kind=ErrorKind.RATE_LIMIT, message="slow")])
    assert [e["type"] for e in check_responses_stream(raw)] == ["response.created", "response.in_progress",
                                                               "response.failed"]
    with pytest.raises(RuntimeError, match=r"response\.completed"):
        final_response(raw)


def test_translated_mid_stream_error_reaches_the_responses_client() -> None:
    parsed = check_responses_stream(run(R, A, RESPONSES_CLIENT_BODY, [A_RAW_ERROR]))
    assert parsed[-1]["response"]["error"] == {"code": "server_is_overloaded", "message": "Overloaded — réessayez"}
    assert [o["type"] for o in parsed[-1]["response"]["output"]] == ["reasoning", "message"]


@settings(max_examples=60, deadline=None)
@given(case=event_sequences())
def test_emitter_any_sequence(case: tuple[list[Any], list[dict[str, Any]]]) -> None:
    events, blocks = case
    parsed = check_responses_stream(emit(events))
    terminal = parsed[-1]
    if isinstance(events[-1], StreamError):
        assert terminal["type"] == "response.failed"
        return
    output = terminal["response"]["output"]
    if events[-1].stop_reason is StopReason.REFUSAL and not any(b["kind"] == "text" for b in blocks):
        output = output[:-1]  # the added "declined" message
    assert len(output) == len(blocks)
    for item, block in zip(output, blocks, strict=True):
        if block["kind"] == "text":
            assert item["content"][0]["text"] == block["text"]
        elif block["kind"] == "tool":
            assert (item["call_id"], item["name"], item["arguments"]) == (block["id"], block["name"], block["args"])
        else:
            opaque = block["opaque"]
            assert decode_signature(item.get("encrypted_content", ""), "responses") == opaque
            assert is_redacted_signature(item["encrypted_content"]) is (block["kind"] == "redacted")
            if block["kind"] == "reasoning":
                assert item["summary"] == ([{"type": "summary_text", "text": block["text"]}] if block["text"] else [])


# --- errors ---------------------------------------------------------------------------------------

PARSE_ERROR_CASES = [
    ("openai json", 400, {"error": {"message": "Unsupported parameter: 'stop'", "type": "invalid_request_error",
                                    "param": "stop", "code": "unsupported_parameter"}},
     ErrorKind.INVALID_REQUEST, "Unsupported parameter: 'stop'"),
    ("chatgpt backend detail", 400, {"detail": "Store must be set to false"}, ErrorKind.INVALID_REQUEST,
     "Store must be set to false"),
    ("codex usage limit", 429, {"error": {"type": "usage_limit_reached", "plan_type": "plus",
                                          "resets_in_seconds": 3600}},
     ErrorKind.RATE_LIMIT, "usage limit reached (resets in 3600 s)"),
    ("quota", 429, {"error": {"message": "You exceeded your quota", "type": "insufficient_quota",
                              "code": "insufficient_quota"}}, ErrorKind.BILLING, "You exceeded your quota"),
    ("non-json", 502, b"<html>502 Bad Gateway</html>", ErrorKind.API_ERROR, "502 Bad Gateway"),
    ("empty", 401, b"", ErrorKind.AUTHENTICATION, "401"),
]


@pytest.mark.parametrize(("name", "status", "body", "kind", "message"), PARSE_ERROR_CASES,
                         ids=[c[0] for c in PARSE_ERROR_CASES])
def test_parse_error(name: str, status: int, body: Any, kind: ErrorKind, message: str) -> None:
    err = R.parse_error(status, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert err.status == status and err.kind is kind and message in err.message


@pytest.mark.parametrize(("err", "status", "error_type", "code"), [
    (BadRequest("previous_response_id: stateless", param="previous_response_id"), 400, "invalid_request_error", None),
    (UpstreamError("busy", status=529), 503, "server_is_overloaded", None),
    (UpstreamError("quota", status=402, kind=ErrorKind.BILLING), 429, "insufficient_quota", "insufficient_quota"),
    (UpstreamError("slow", status=429), 429, "rate_limit_exceeded", None),
])
def test_render_error(err: BridgeError, status: int, error_type: str, code: str | None) -> None:
    got_status, body = R.render_error(err)
    assert got_status == status
    assert body == {"error": {"message": err.message, "type": error_type, "param": err.param, "code": code}}
    client = openai_client(json.dumps(body).encode(), "application/json", got_status)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="m", input="q")
    assert info.value.status_code == status and err.message in info.value.message


def test_render_stream_error() -> None:
    err = UpstreamError("upstream went away", status=502)
    events = check_responses_stream(R.render_stream_error(err))
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "upstream went away"}


def test_auth_headers() -> None:
    assert R.auth_headers("k", None) == {"authorization": "Bearer k"}
    assert R.auth_headers("k", "x-api-key") == {"x-api-key": "k"}
    assert R.auth_headers(None, None) == {}
    assert R.NAME == "responses" and R.OWN_HEADERS == () and R.REQUIRED_HEADERS == {}


def test_same_exported_names_as_the_siblings() -> None:
    assert set(A.__all__) <= set(R.__all__) | {"API_VERSION"}
    assert set(R.__all__) <= set(C.__all__)


@pytest.mark.parametrize("response", [
    Response(id="resp_keep", model="m", content=(Text(text="hi"),), stop_reason=StopReason.END_TURN),
    Response(id="msg_other", model="m", content=(), stop_reason=StopReason.MAX_TOKENS,
             usage=Usage(input_tokens=5, output_tokens=9)),
])
def test_render_response_ids_and_usage(response: Response) -> None:
    body = R.render_response(response, make_ctx())
    assert body["id"] == response.id if response.id.startswith("resp_") else body["id"].startswith("resp_")
    assert body["usage"]["total_tokens"] == response.usage.total_input + (response.usage.output_tokens or 0)
    assert body["object"] == "response" and body["created_at"] == 1_700_000_000


@pytest.mark.parametrize(("body", "ok"), [
    ({"model": "m", "input": "x", "instructions": "i", "store": False, "stream": True}, True),  # the Codex CLI's
    ({"model": "m", "input": "x", "instructions": "i", "stream": True}, False),  # store defaults to true
    ({"model": "m", "input": "x", "instructions": "i", "store": False, "stream": False}, False),
    ({"model": "m", "input": "x", "store": False, "stream": True}, False),
    ({"model": "m", "input": "x", "instructions": "i", "store": False, "stream": True, "max_output_tokens": 9}, False),
])
def test_codex_backend_takes_pass_through_only_when_its_rules_hold(body: dict[str, Any], ok: bool) -> None:
    raw = json.dumps(body).encode()
    assert R.passes_through(raw, "codex") is ok
    assert R.passes_through(raw, "other") is True
    assert R.passes_through(b"not json", "codex") is False
