"""addon.formats.anthropic: requests, responses, streams and errors, as tables (style.md item 13).

References: formats.md §1 (fields), §4.2 (stream grammar), §5 (mappings), §7 (pitfalls).
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from addon.accumulate import accumulate
from addon.errors import BadRequest, BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError
from addon.formats import anthropic as A
from addon.formats.common import Context, decode_signature, encode_signature, safe_tool_id, unsafe_tool_id
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
from tests.stream_grammar import check_anthropic_stream, fold_anthropic

U, AS, SY = Role.USER, Role.ASSISTANT, Role.SYSTEM
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
WEATHER_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"},
                   "unit": {"enum": ["c", "f"], "default": "c"}},
    "required": ["city"], "additionalProperties": False,
}


def make_ctx(request: Request | None = None, **kw: Any) -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}gen{next(counter)}", created=1_700_000_000, request=request,
                   client_model=request.model if request else None, **kw)


def req(*messages: Message, **kw: Any) -> Request:
    return Request(model=kw.pop("model", "claude-test"), messages=messages, **kw)


def user(*parts: Any) -> Message:
    return Message(role=U, content=parts)


def asst(*parts: Any) -> Message:
    return Message(role=AS, content=parts)


def wire(*messages: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"model": "claude-test", "messages": list(messages), "max_tokens": kw.pop("max_tokens", 1024), **kw}


def msg(role: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(blocks)}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


# --- requests: one table, both directions --------------------------------------------------------
# Canonical wire bodies: parse_request gives the IR, render_request gives the body back unchanged.

ROUND_TRIP = [
    ("plain text",
     wire(msg("user", text("Hello"))),
     req(user(Text(text="Hello")), max_tokens=1024)),
    ("system blocks, several turns",
     wire(msg("user", text("Hi")), msg("assistant", text("Hello!")), msg("user", text("Weather?")),
          system=[text("You are terse."), text("Answer in French.")]),
     req(user(Text(text="Hi")), asst(Text(text="Hello!")), user(Text(text="Weather?")),
         system=(Text(text="You are terse."), Text(text="Answer in French.")), max_tokens=1024)),
    ("multi-part user content with base64 and url images",
     wire(msg("user", text("Compare"),
              {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
              {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})),
     req(user(Text(text="Compare"), Image(media_type="image/png", data=PNG),
              Image(url="https://example.com/cat.jpg")), max_tokens=1024)),
    ("tools with JSON schema intact, tool_choice any, parallel disabled",
     wire(msg("user", text("Weather in Paris and Rome?")),
          tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA, "description": "Look up weather"},
                 {"name": "get_time", "input_schema": {"type": "object", "properties": {}}, "strict": True}],
          tool_choice={"type": "any", "disable_parallel_tool_use": True}),
     req(user(Text(text="Weather in Paris and Rome?")),
         tools=(Tool(name="get_weather", description="Look up weather", parameters=WEATHER_SCHEMA),
                Tool(name="get_time", parameters={"type": "object", "properties": {}}, strict=True)),
         tool_choice=ToolChoice(mode="required"), parallel_tool_calls=False, max_tokens=1024)),
    ("tool_choice named tool",
     wire(msg("user", text("x")), tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
          tool_choice={"type": "tool", "name": "get_weather"}),
     req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA),),
         tool_choice=ToolChoice(mode="tool", name="get_weather"), max_tokens=1024)),
    ("tool_choice none",
     wire(msg("user", text("x")), tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
          tool_choice={"type": "none"}),
     req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA),),
         tool_choice=ToolChoice(mode="none"), max_tokens=1024)),
    ("parallel tool calls and results, is_error kept",
     wire(msg("user", text("Weather in Paris and Rome?")),
          msg("assistant", text("Checking both."),
              {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
              {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Rome"}}),
          msg("user",
              {"type": "tool_result", "tool_use_id": "toolu_01A", "content": [text("18C sunny")]},
              {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [text("city not found")],
               "is_error": True},
              text("Thanks"))),
     req(user(Text(text="Weather in Paris and Rome?")),
         asst(Text(text="Checking both."),
              ToolCall(id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}'),
              ToolCall(id="toolu_01B", name="get_weather", arguments='{"city":"Rome"}')),
         user(ToolResult(call_id="toolu_01A", content=(Text(text="18C sunny"),)),
              ToolResult(call_id="toolu_01B", content=(Text(text="city not found"),), is_error=True),
              Text(text="Thanks")),
         max_tokens=1024)),
    ("image inside a tool result",
     wire(msg("assistant", {"type": "tool_use", "id": "toolu_shot", "name": "screenshot", "input": {}}),
          msg("user", {"type": "tool_result", "tool_use_id": "toolu_shot", "content": [
              text("here"), {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                          "data": PNG}}]})),
     req(asst(ToolCall(id="toolu_shot", name="screenshot", arguments="{}")),
         user(ToolResult(call_id="toolu_shot", content=(Text(text="here"), Image(media_type="image/png", data=PNG)))),
         max_tokens=1024)),
    ("thinking and redacted thinking echoed with native signatures",
     wire(msg("user", text("Solve")),
          msg("assistant", {"type": "thinking", "thinking": "Let me see.", "signature": "EqQBCkgIARABGAIiQL+/sig=="},
              {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
              {"type": "tool_use", "id": "toolu_x", "name": "calc", "input": {"expr": "2+2"}}),
          msg("user", {"type": "tool_result", "tool_use_id": "toolu_x", "content": [text("4")]}),
          thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=4096),
     req(user(Text(text="Solve")),
         asst(Reasoning(text="Let me see.", opaque=Opaque(origin="anthropic", data="EqQBCkgIARABGAIiQL+/sig==")),
              Reasoning(text="", redacted=True,
                        opaque=Opaque(origin="anthropic", data="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT")),
              ToolCall(id="toolu_x", name="calc", arguments='{"expr":"2+2"}')),
         user(ToolResult(call_id="toolu_x", content=(Text(text="4"),))),
         reasoning=ReasoningConfig(budget_tokens=2048), max_tokens=4096)),
    ("sampling, stop sequences, metadata, stream",
     wire(msg("user", text("x")), temperature=0.5, top_p=0.9, top_k=40,
          stop_sequences=["\n\nHuman:", "END", "STOP", "###", "---"], metadata={"user_id": "user-42"}, stream=True),
     req(user(Text(text="x")), temperature=0.5, top_p=0.9, top_k=40,
         stop=("\n\nHuman:", "END", "STOP", "###", "---"), user="user-42", stream=True, max_tokens=1024)),
    ("structured output",
     wire(msg("user", text("x")), output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}),
     req(user(Text(text="x")), response_format=ResponseFormat(type="json_schema", schema=WEATHER_SCHEMA),
         max_tokens=1024)),
    ("unicode text",
     wire(msg("user", text("héllo 🌍 日本"))),
     req(user(Text(text="héllo 🌍 日本")), max_tokens=1024)),
]


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_parse_request(name: str, body: dict[str, Any], ir: Request) -> None:
    assert A.parse_request(body) == ir


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_render_request(name: str, body: dict[str, Any], ir: Request) -> None:
    ctx = make_ctx(ir)
    assert A.render_request(ir, ctx) == body
    assert ctx.warnings == []


# --- requests: parse only ------------------------------------------------------------------------

# The shape Claude Code 2.1 sends (client-shapes/claude-code.json, long texts shortened).
CLAUDE_CODE_BODY = {
    "model": "claude-opus-5-5",
    "messages": [
        {"role": "user", "content": [text("<system-reminder>ctx</system-reminder>"), text("Run the harness")]},
        {"role": "system", "content": "You are Claude Code, mid-conversation instructions.",
         "output_config": {"effort": "medium"}},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": "mocksig_SmMqiyvewoKCFfQ8ed+uK5y0WCX0nqYHxklNOMTayL8="},
            text("I'll run the harness command in the shell now."),
            {"type": "tool_use", "id": "toolu_mock85c5da1e1e404662a8d72e1f", "name": "Bash",
             "input": {"command": "echo HARNESS_OK_$((37822+1))", "description": "Print the harness token"}}]},
        {"role": "user", "content": [
            {"tool_use_id": "toolu_mock85c5da1e1e404662a8d72e1f", "type": "tool_result",
             "content": "HARNESS_OK_37823", "is_error": False, "cache_control": {"type": "ephemeral"}}]},
    ],
    "system": [text("x-anthropic-billing-header: cc_version=2.1.329"),
               {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "Bash", "description": "Run a command",
               "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                                "properties": {"command": {"type": "string"}}, "required": ["command"],
                                "additionalProperties": False}},
              {"name": "ToolSearch", "description": "Find tools", "defer_loading": True,
               "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}],
    "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "",
                                        "session_id": "2f8a4bb4-68e0-4a9c-8270-6c383b9384ce"})},  # > 128 chars
    "max_tokens": 128000,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
    "stream": True,
}


def test_parse_claude_code_request() -> None:
    body = CLAUDE_CODE_BODY
    got = A.parse_request(body)
    m = body["messages"]
    call = m[2]["content"][2]
    assert got.messages == (
        user(Text(text=m[0]["content"][0]["text"]), Text(text=m[0]["content"][1]["text"])),
        Message(role=SY, content=(Text(text=m[1]["content"]),)),
        asst(Reasoning(text="", opaque=Opaque(origin="anthropic", data=m[2]["content"][0]["signature"])),
             Text(text=m[2]["content"][1]["text"]),
             ToolCall(id=call["id"], name="Bash", arguments=json.dumps(call["input"], separators=(",", ":")))),
        user(ToolResult(call_id=call["id"], content=(Text(text="HARNESS_OK_37823"),))),
    )
    assert got.system == tuple(Text(text=b["text"]) for b in body["system"])
    assert [t.name for t in got.tools] == ["Bash", "ToolSearch"]
    assert got.tools[0].parameters == body["tools"][0]["input_schema"]
    assert got.reasoning == ReasoningConfig(effort="medium")
    assert got.max_tokens == 128000 and got.stream is True
    assert got.user == body["metadata"]["user_id"]
    assert any("context_management" in w for w in got.warnings)  # reported, not silently lost


PARSE_ONLY = [
    ("system as a string", {"system": "Be brief."}, "system", (Text(text="Be brief."),)),
    ("empty system string", {"system": ""}, "system", ()),
    ("system blocks with cache_control",
     {"system": [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
     "system", (Text(text="A"),)),
    ("string content", {"messages": [{"role": "user", "content": "hi"}]}, "messages", (user(Text(text="hi")),)),
    ("mid-conversation system message with blocks",
     {"messages": [{"role": "user", "content": "hi"},
                   {"role": "system", "content": [{"type": "text", "text": "Now in French.",
                                                   "cache_control": {"type": "ephemeral"}}]}]},
     "messages", (user(Text(text="hi")), Message(role=SY, content=(Text(text="Now in French."),)))),
    ("tool_result content string and absent",
     {"messages": [msg("user", {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                       {"type": "tool_result", "tool_use_id": "t2"})]},
     "messages", (user(ToolResult(call_id="t1", content=(Text(text="ok"),)), ToolResult(call_id="t2", content=())),)),
    ("tool_use with no input", {"messages": [msg("assistant", {"type": "tool_use", "id": "t", "name": "n"})]},
     "messages", (asst(ToolCall(id="t", name="n", arguments="{}")),)),
    ("encoded tool ids are decoded",
     {"messages": [msg("assistant", {"type": "tool_use", "id": safe_tool_id("functions.get_weather:0"),
                                     "name": "get_weather", "input": {}}),
                   msg("user", {"type": "tool_result", "tool_use_id": safe_tool_id("functions.get_weather:0"),
                                "content": "ok"})]},
     "messages", (asst(ToolCall(id="functions.get_weather:0", name="get_weather", arguments="{}")),
                  user(ToolResult(call_id="functions.get_weather:0", content=(Text(text="ok"),))))),
    ("bridge signature envelope is decoded to its origin",
     {"messages": [msg("assistant", {"type": "thinking", "thinking": "hmm",
                                     "signature": encode_signature(Opaque(origin="chat", data=""))})]},
     "messages", (asst(Reasoning(text="hmm", opaque=Opaque(origin="chat", data=""))),)),
    ("plain-text document", {"messages": [msg("user", {"type": "document", "title": "notes",
                                                       "source": {"type": "text", "media_type": "text/plain",
                                                                  "data": "line 1"}})]},
     "messages", (user(Document(media_type="text/plain", text="line 1", title="notes")),)),
    ("pdf document", {"messages": [msg("user", {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}})]},
     "messages", (user(Document(media_type="application/pdf", data="JVBERi0x")),)),
    ("tool_choice auto keeps parallel unknown", {"tool_choice": {"type": "auto"}}, "tool_choice",
     ToolChoice(mode="auto")),
    ("disable_parallel_tool_use false → parallel true",
     {"tool_choice": {"type": "auto", "disable_parallel_tool_use": False}}, "parallel_tool_calls", True),
    ("adaptive thinking with effort", {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}},
     "reasoning", ReasoningConfig(effort="high")),
    ("effort without thinking", {"output_config": {"effort": "low"}}, "reasoning", ReasoningConfig(effort="low")),
    ("thinking disabled", {"thinking": {"type": "disabled"}}, "reasoning", ReasoningConfig(enabled=False)),
    ("no thinking", {}, "reasoning", None),
    ("integer temperature becomes float", {"temperature": 1}, "temperature", 1.0),
]


@pytest.mark.parametrize(("name", "extra", "attr", "expected"), PARSE_ONLY, ids=[c[0] for c in PARSE_ONLY])
def test_parse_request_fields(name: str, extra: dict[str, Any], attr: str, expected: Any) -> None:
    body = {**wire(msg("user", text("x"))), **extra}
    got = getattr(A.parse_request(body), attr)
    assert got == expected
    if attr == "temperature":
        assert type(got) is float


def test_parse_drops_server_tools_and_unknown_blocks_with_warnings() -> None:
    body = wire(msg("user", text("x"), {"type": "container_upload", "file_id": "f"}),
                tools=[{"type": "web_search_20250305", "name": "web_search"},
                       {"name": "get_weather", "input_schema": WEATHER_SCHEMA}])
    got = A.parse_request(body)
    assert got.tools == (Tool(name="get_weather", parameters=WEATHER_SCHEMA),)
    assert got.messages == (user(Text(text="x")),)
    assert any("web_search_20250305" in w for w in got.warnings)
    assert any("container_upload" in w for w in got.warnings)


PARSE_ERRORS = [
    ("messages missing", {"model": "m", "max_tokens": 1}, "messages"),
    ("model not a string", {"model": 5, "max_tokens": 1, "messages": []}, "model"),
    ("message not an object", wire("hi"), "messages.0"),
    ("bad role", wire({"role": "tool", "content": "x"}), "messages.0.role"),
    ("content not string or list", wire({"role": "user", "content": 5}), "messages.0.content"),
    ("text block without text", wire(msg("user", {"type": "text"})), "messages.0.content.0.text"),
    ("image source type file", wire(msg("user", {"type": "image", "source": {"type": "file", "file_id": "f"}})),
     "messages.0.content.0.source.type"),
    ("image without media_type", wire(msg("user", {"type": "image", "source": {"type": "base64", "data": "x"}})),
     "messages.0.content.0.source.media_type"),
    ("tool_use without id", wire(msg("assistant", {"type": "tool_use", "name": "n", "input": {}})),
     "messages.0.content.0.id"),
    ("tool_result without tool_use_id", wire(msg("user", {"type": "tool_result", "content": "x"})),
     "messages.0.content.0.tool_use_id"),
    ("is_error not a boolean", wire(msg("user", {"type": "tool_result", "tool_use_id": "t", "is_error": "yes"})),
     "messages.0.content.0.is_error"),
    ("system a number", wire(msg("user", text("x")), system=5), "system"),
    ("system block without text", wire(msg("user", text("x")), system=[{"type": "text"}]), "system.0.text"),
    ("temperature a string", wire(msg("user", text("x")), temperature="hot"), "temperature"),
    ("temperature a boolean", wire(msg("user", text("x")), temperature=True), "temperature"),
    ("max_tokens a float", wire(msg("user", text("x")), max_tokens=10.5), "max_tokens"),
    ("stop_sequences a string", wire(msg("user", text("x")), stop_sequences="END"), "stop_sequences"),
    ("tool_choice unknown type", wire(msg("user", text("x")), tool_choice={"type": "sometimes"}),
     "tool_choice.type"),
    ("tool_choice tool without name", wire(msg("user", text("x")), tool_choice={"type": "tool"}),
     "tool_choice.name"),
    ("thinking unknown type", wire(msg("user", text("x")), thinking={"type": "deep"}), "thinking.type"),
    ("output format not json_schema", wire(msg("user", text("x")), output_config={"format": {"type": "xml"}}),
     "output_config.format.type"),
    ("tool without name", wire(msg("user", text("x")), tools=[{"input_schema": {}}]), "tools.0.name"),
    ("tool schema not an object", wire(msg("user", text("x")), tools=[{"name": "n", "input_schema": []}]),
     "tools.0.input_schema"),
    ("stream not a boolean", wire(msg("user", text("x")), stream="yes"), "stream"),
]


@pytest.mark.parametrize(("name", "body", "param"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_request_errors_name_the_field(name: str, body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        A.parse_request(body)
    assert info.value.param == param
    assert info.value.status == 400 and info.value.kind is ErrorKind.INVALID_REQUEST
    assert param in info.value.message


# --- requests: render only (IR from another client format → Anthropic upstream) -------------------


def render(ir: Request, **ctx_kw: Any) -> tuple[dict[str, Any], list[str]]:
    ctx = make_ctx(ir, **ctx_kw)
    return A.render_request(ir, ctx), ctx.warnings


def test_default_max_tokens_when_client_gave_none() -> None:
    assert render(req(user(Text(text="x"))))[0]["max_tokens"] == Context(new_id=str).default_max_tokens
    assert render(req(user(Text(text="x"))), default_max_tokens=1234)[0]["max_tokens"] == 1234
    assert render(req(user(Text(text="x")), max_tokens=77))[0]["max_tokens"] == 77


@pytest.mark.parametrize(("temperature", "expected"), [(0.0, 0.0), (0.7, 0.7), (1.0, 1.0), (1.5, 1.0), (2.0, 1.0)])
def test_temperature_clamped_to_anthropic_range(temperature: float, expected: float) -> None:
    body, _ = render(req(user(Text(text="x")), temperature=temperature, top_p=0.5))
    assert body["temperature"] == expected and body["top_p"] == 0.5


def test_sampling_dropped_with_thinking() -> None:
    body, warnings = render(req(user(Text(text="x")), temperature=0.3, top_p=0.5, top_k=5, max_tokens=10000,
                                reasoning=ReasoningConfig(effort="medium")))
    assert "temperature" not in body and "top_p" not in body and "top_k" not in body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert any("temperature" in w for w in warnings)


@pytest.mark.parametrize(("cfg", "max_tokens", "thinking"), [
    (ReasoningConfig(effort="low"), 10000, {"type": "enabled", "budget_tokens": 2048}),
    (ReasoningConfig(effort="high"), 4000, {"type": "enabled", "budget_tokens": 3999}),  # budget < max_tokens
    (ReasoningConfig(budget_tokens=5000), 6000, {"type": "enabled", "budget_tokens": 5000}),
    (ReasoningConfig(), 20000, {"type": "enabled", "budget_tokens": 8192}),
    (ReasoningConfig(effort="medium"), 1024, None),  # no room for the 1024 minimum
    (ReasoningConfig(enabled=False), 10000, None),
    (ReasoningConfig(effort="none"), 10000, None),
])
def test_thinking_budget(cfg: ReasoningConfig, max_tokens: int, thinking: dict[str, Any] | None) -> None:
    body, warnings = render(req(user(Text(text="x")), reasoning=cfg, max_tokens=max_tokens))
    assert body.get("thinking") == thinking
    if thinking:
        assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
    if max_tokens == 1024:
        assert any("thinking dropped" in w for w in warnings)


def test_forced_tool_choice_downgraded_with_thinking() -> None:
    tools = (Tool(name="get_weather", parameters=WEATHER_SCHEMA),)
    body, warnings = render(req(user(Text(text="x")), tools=tools, max_tokens=5000,
                                tool_choice=ToolChoice(mode="tool", name="get_weather"),
                                reasoning=ReasoningConfig(effort="low")))
    assert body["tool_choice"] == {"type": "auto"}
    assert any("tool_choice" in w for w in warnings)


@pytest.mark.parametrize(("choice", "parallel", "wire_choice"), [
    (None, None, None),
    (ToolChoice(mode="auto"), None, {"type": "auto"}),
    (ToolChoice(mode="required"), None, {"type": "any"}),
    (ToolChoice(mode="none"), None, {"type": "none"}),
    (ToolChoice(mode="tool", name="get_weather"), None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),  # formats.md §5.2
    (ToolChoice(mode="required"), False, {"type": "any", "disable_parallel_tool_use": True}),
    (ToolChoice(mode="auto"), True, {"type": "auto"}),
    (ToolChoice(mode="none"), False, {"type": "none"}),
])
def test_tool_choice_and_parallel(choice: ToolChoice | None, parallel: bool | None,
                                  wire_choice: dict[str, Any] | None) -> None:
    body, _ = render(req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA),),
                         tool_choice=choice, parallel_tool_calls=parallel))
    assert body.get("tool_choice") == wire_choice
    assert body["tools"] == [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


def test_tool_without_parameters_gets_empty_object_schema() -> None:
    body, _ = render(req(user(Text(text="x")), tools=(Tool(name="now"),)))
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_custom_tool_wrapped_as_single_string_argument() -> None:
    args = "*** Begin Patch\n*** End Patch"
    body, _ = render(req(user(Text(text="x")), asst(ToolCall(id="call_1", name="apply_patch", arguments=args,
                                                               kind=ToolKind.CUSTOM)),
                         tools=(Tool(name="apply_patch", description="patch", kind=ToolKind.CUSTOM),)))
    assert body["tools"][0]["input_schema"]["properties"] == {"input": {"type": "string"}}
    assert body["messages"][1]["content"][0]["input"] == {"input": args}


def test_system_messages_hoisted_in_order() -> None:
    ir = req(Message(role=SY, content=(Text(text="first"),)), user(Text(text="q")),
             Message(role=SY, content=(Text(text="second"),)), asst(Text(text="a")),
             system=(Text(text="top"),))
    body, _ = render(ir)
    assert body["system"] == [text("top"), text("first"), text("second")]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


def test_with_prompt_cache_a_system_message_within_the_conversation_stays_in_place() -> None:
    """Hoisting it would change ``system``, the start of every later request, and so lose the cached
    conversation (issue 17): it stays where it was said, as Claude Code writes such notes; one before the
    conversation still goes to ``system``."""
    ir = req(Message(role=SY, content=(Text(text="first"),)), user(Text(text="q")), asst(Text(text="a")),
             Message(role=SY, content=(Text(text="second"), Text(text=" "))), user(Text(text="q2")),
             system=(Text(text="top"),))
    body, _ = render(ir, prompt_cache=True)
    assert [b["text"] for b in body["system"]] == ["top", "first"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in body["messages"][2]["content"]] == ["<system-reminder>\nsecond\n</system-reminder>",
                                                                   "q2"]


def test_empty_text_never_becomes_an_anthropic_text_block() -> None:
    """formats.md §7.1: empty/whitespace text is dropped; empty turns vanish; neighbours merge."""
    ir = req(user(Text(text="q1")),
             asst(Text(text=""), ToolCall(id="call_1", name="f", arguments='{"a":1}')),
             user(ToolResult(call_id="call_1", content=(Text(text=""),)), Text(text="  ")),
             asst(Text(text="")),
             user(Text(text="q2")),
             system=(Text(text=" "),))
    body, _ = render(ir)
    assert "system" not in body
    assert body["messages"] == [
        msg("user", text("q1")),
        msg("assistant", {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}),
        msg("user", {"type": "tool_result", "tool_use_id": "call_1", "content": []}, text("q2")),
    ]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert not (value.get("type") == "text" and not value["text"].strip()), value
            value = list(value.values())
        if isinstance(value, list):
            for v in value:
                walk(v)
    walk(body)


def test_tool_results_open_the_user_turn() -> None:
    ir = req(asst(ToolCall(id="c1", name="f", arguments="{}")),
             user(Text(text="here you go"), ToolResult(call_id="c1", content=(Text(text="42"),))))
    body, _ = render(ir)
    assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize("call_id", ["call_abc123", "functions.get_weather:0", "call 1/2", "bridgeid_x", "日本"])
def test_foreign_tool_ids_encoded_reversibly(call_id: str) -> None:
    ir = req(asst(ToolCall(id=call_id, name="f", arguments="{}")),
             user(ToolResult(call_id=call_id, content=(Text(text="ok"),))))
    body, _ = render(ir)
    sent_call = body["messages"][0]["content"][0]["id"]
    sent_result = body["messages"][1]["content"][0]["tool_use_id"]
    assert sent_call == sent_result
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in sent_call)
    if call_id == "call_abc123":
        assert sent_call == call_id  # conforming ids are kept as they are
    # and the id comes back unchanged when the client echoes it
    assert A.parse_request(body).messages == ir.messages


def test_non_json_tool_arguments_sent_as_raw() -> None:
    body, warnings = render(req(asst(ToolCall(id="c1", name="f", arguments='{"a": 1')),
                                user(ToolResult(call_id="c1", content=(Text(text="x"),)))))
    assert body["messages"][0]["content"][0]["input"] == {"_raw": '{"a": 1'}
    assert warnings


@pytest.mark.parametrize(("image", "source"), [
    (Image(media_type="image/jpeg", data="AAAA"), {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}),
    (Image(url=f"data:image/png;base64,{PNG}"), {"type": "base64", "media_type": "image/png", "data": PNG}),
    (Image(url="data:image/webp;charset=utf-8;base64,UklG"),
     {"type": "base64", "media_type": "image/webp", "data": "UklG"}),
    (Image(url="https://example.com/a.png", detail="high"), {"type": "url", "url": "https://example.com/a.png"}),
])
def test_images_toward_anthropic(image: Image, source: dict[str, Any]) -> None:
    body, _ = render(req(user(Text(text="see"), image)))
    assert body["messages"][0]["content"][1] == {"type": "image", "source": source}


def test_unsupported_image_type_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="image/bmp"):
        render(req(user(Image(url="data:image/bmp;base64,Qk0="))))


def test_foreign_reasoning_is_not_sent_to_anthropic() -> None:
    ir = req(user(Text(text="q")),
             asst(Reasoning(text="chat thoughts", opaque=Opaque(origin="chat", data="")), Text(text="answer")))
    body, warnings = render(ir)
    assert body["messages"][1]["content"] == [text("answer")]
    assert any("reasoning" in w for w in warnings)


def test_json_object_format_approximated_by_system_instruction() -> None:
    body, warnings = render(req(user(Text(text="x")), response_format=ResponseFormat(type="json_object"),
                                system=(Text(text="Be nice."),)))
    assert body["system"][0] == text("Be nice.") and "JSON" in body["system"][1]["text"]
    assert "output_config" not in body and warnings


def test_documents_toward_anthropic() -> None:
    body, _ = render(req(user(Document(media_type="application/pdf", data="JVBE", title="a.pdf"),
                              Document(text="plain", title="t"))))
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
         "title": "a.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}, "title": "t"},
    ]


# --- responses: body → events → Response → body -----------------------------------------------------

MESSAGE_BODY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "text", "text": "Let me check héllo 🌍."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"city": "San Francisco, CA", "unit": "f"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 70, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 30,
              "output_tokens": 89, "output_tokens_details": {"thinking_tokens": 12}},
}


def test_response_events() -> None:
    ctx = make_ctx()
    events = A.response_events(MESSAGE_BODY, ctx)
    c = MESSAGE_BODY["content"]
    assert events == [
        MessageStart(id=MESSAGE_BODY["id"], model=MESSAGE_BODY["model"],
                     usage=Usage(input_tokens=70, output_tokens=89, cache_read_tokens=30, cache_write_tokens=5,
                                 reasoning_tokens=12)),
        BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text=c[0]["thinking"]),
        BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data=c[0]["signature"])),
        BlockStart(block_id=1, kind=BlockKind.REASONING, redacted=True),
        BlockStop(block_id=1, opaque=Opaque(origin="anthropic", data=c[1]["data"])),
        BlockStart(block_id=2, kind=BlockKind.TEXT), BlockDelta(block_id=2, text=c[2]["text"]),
        BlockStop(block_id=2),
        BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id=c[3]["id"], tool_name="get_weather"),
        BlockDelta(block_id=3, text=json.dumps(c[3]["input"], separators=(",", ":"))), BlockStop(block_id=3),
        BlockStart(block_id=4, kind=BlockKind.TOOL_CALL, tool_call_id="toolu_02", tool_name="get_time"),
        BlockDelta(block_id=4, text="{}"), BlockStop(block_id=4),
        Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use"),
    ]
    assert any("server_tool_use" in w for w in ctx.warnings)


STOP_REASONS = [
    ("end_turn", StopReason.END_TURN), ("max_tokens", StopReason.MAX_TOKENS), ("tool_use", StopReason.TOOL_USE),
    ("stop_sequence", StopReason.STOP_SEQUENCE), ("refusal", StopReason.REFUSAL), ("pause_turn", StopReason.PAUSE),
    ("model_context_window_exceeded", StopReason.CONTEXT_EXCEEDED),
]


@pytest.mark.parametrize(("wire_reason", "ir_reason"), STOP_REASONS)
def test_stop_reasons_both_ways(wire_reason: str, ir_reason: StopReason) -> None:
    body = {"id": "msg_1", "model": "m", "content": [text("x")], "stop_reason": wire_reason,
            "stop_sequence": "END" if wire_reason == "stop_sequence" else None, "usage": {}}
    finish = A.response_events(body, make_ctx())[-1]
    assert finish == Finish(stop_reason=ir_reason, raw_stop_reason=wire_reason, stop_sequence=body["stop_sequence"])
    resp = Response(id="msg_1", model="m", content=(), stop_reason=ir_reason, stop_sequence=body["stop_sequence"])
    out = A.render_response(resp, make_ctx())
    assert out["stop_reason"] == wire_reason and out["stop_sequence"] == body["stop_sequence"]


def test_unknown_stop_reason_is_other_and_renders_end_turn() -> None:
    body = {"id": "msg_1", "model": "m", "content": [], "stop_reason": "brand_new", "usage": {}}
    assert A.response_events(body, make_ctx())[-1] == Finish(stop_reason=StopReason.OTHER,
                                                             raw_stop_reason="brand_new")
    resp = Response(id="msg_1", model="m", content=(), stop_reason=StopReason.OTHER)
    assert A.render_response(resp, make_ctx())["stop_reason"] == "end_turn"


def test_render_response() -> None:
    chat_opaque = Opaque(origin="chat", data="")
    resp = Response(
        id="chatcmpl-abc", model="gpt-4o",
        content=(Reasoning(text="thinking…", opaque=chat_opaque), Text(text=""), Text(text="Hi 日本"),
                 ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
                 ToolCall(id="functions.lookup:1", name="lookup", arguments="{broken"),
                 Reasoning(text="", redacted=True, opaque=Opaque(origin="anthropic", data="REDACTED=="))),
        stop_reason=StopReason.TOOL_USE,
        usage=Usage(input_tokens=70, output_tokens=50, cache_read_tokens=30, reasoning_tokens=20))
    request = req(user(Text(text="q")), model="claude-client-name")
    out = A.render_response(resp, make_ctx(request))
    assert out["id"].startswith("msg_") and out["id"] != resp.id  # an Anthropic-shaped id for the client
    assert out["model"] == "claude-client-name"
    assert out["type"] == "message" and out["role"] == "assistant"
    thinking, hi, call1, call2, redacted = out["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "thinking…"
    assert thinking["signature"].startswith("bridge1.")
    assert decode_signature(thinking["signature"], "anthropic") == chat_opaque
    assert hi == text("Hi 日本")
    assert call1 == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    assert call2["input"] == {"_raw": "{broken"} and call2["id"] == safe_tool_id("functions.lookup:1")
    assert redacted == {"type": "redacted_thinking", "data": "REDACTED=="}
    assert out["stop_reason"] == "tool_use" and out["stop_sequence"] is None
    assert out["usage"] == {"input_tokens": 70, "output_tokens": 50, "cache_read_input_tokens": 30,
                            "output_tokens_details": {"thinking_tokens": 20}}


def test_render_response_keeps_anthropic_ids_and_unknown_usage_is_zero() -> None:
    resp = Response(id="msg_keep", model="claude-x", content=(Text(text="ok"),), stop_reason=StopReason.END_TURN)
    out = A.render_response(resp, make_ctx())
    assert out["id"] == "msg_keep" and out["model"] == "claude-x"
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


# --- streams ---------------------------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    """Anthropic wire framing: event name line + data line, blank line after each."""
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events)


def parse_stream(raw: bytes, chunk: int | None = None, ctx: Context | None = None) -> list[Any]:
    parser, decoder = A.StreamParser(ctx or make_ctx()), SSEDecoder()
    pieces = [raw] if chunk is None else [raw[i:i + chunk] for i in range(0, len(raw), chunk)]
    out = [ev for p in pieces for s in decoder.feed(p) for ev in parser.feed(s)]
    return out + [ev for s in decoder.close() for ev in parser.feed(s)] + parser.close()


# formats.md §4.2 recorded shape (tool_use_response.txt): text block 0, tool_use block 1 whose first
# input_json_delta is "", message_delta with stop_reason tool_use, message_stop; plus a ping.
RECORDED = sse(
    {"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
                                          "model": "claude-sonnet-4-5", "stop_sequence": None, "stop_reason": None,
                                          "content": [],
                                          "usage": {"input_tokens": 472, "output_tokens": 2,
                                                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay, let's check"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " the weather 🌍:"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                          "partial_json": " \"San Francisco, CA\"}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
)
RECORDED_EVENTS = [
    MessageStart(id="msg_014p7gG3wDgGV9EUtLvnow3U", model="claude-sonnet-4-5",
                 usage=Usage(input_tokens=472, output_tokens=2, cache_read_tokens=0, cache_write_tokens=0)),
    BlockStart(block_id=0, kind=BlockKind.TEXT),
    BlockDelta(block_id=0, text="Okay, let's check"), BlockDelta(block_id=0, text=" the weather 🌍:"),
    BlockStop(block_id=0),
    BlockStart(block_id=1, kind=BlockKind.TOOL_CALL, tool_call_id="toolu_01T1x1fJ34qAmk2tNTrN7Up6",
               tool_name="get_weather"),
    BlockDelta(block_id=1, text='{"location":'), BlockDelta(block_id=1, text=' "San Francisco, CA"}'),
    BlockStop(block_id=1),
    UsageUpdate(usage=Usage(output_tokens=89)),
    Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use"),
]


@pytest.mark.parametrize("chunk", [None, 1, 7], ids=["whole", "one byte", "7 bytes"])
def test_stream_parser_recorded(chunk: int | None) -> None:
    assert parse_stream(RECORDED, chunk) == RECORDED_EVENTS


def test_stream_parser_ignores_trailing_data_after_message_stop() -> None:
    assert parse_stream(RECORDED + sse({"type": "ping"}) + b"event: ping\ndata: {\"type\":\"ping\"}") \
        == RECORDED_EVENTS


def test_stream_parser_thinking_signature_and_skipped_blocks() -> None:
    raw = sse(
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "content": [],
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm, "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "日本."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBsig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "server_tool_use", "id": "srv",
                                                                      "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Done."}},
        {"type": "content_block_stop", "index": 2},
        {"type": "some_future_event", "x": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"input_tokens": 10, "output_tokens": 40, "cache_read_input_tokens": 3}},
        {"type": "message_stop"},
    )
    ctx = make_ctx()
    assert parse_stream(raw, ctx=ctx) == [
        MessageStart(id="msg_1", model="claude", usage=Usage(input_tokens=10, output_tokens=1)),
        BlockStart(block_id=0, kind=BlockKind.REASONING),
        BlockDelta(block_id=0, text="Hmm, "), BlockDelta(block_id=0, text="日本."),
        BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="EqQBsig")),
        BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="Done."), BlockStop(block_id=1),
        UsageUpdate(usage=Usage(input_tokens=10, output_tokens=40, cache_read_tokens=3)),
        Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="end_turn"),
    ]
    assert ctx.warnings


def test_stream_parser_redacted_thinking_arrives_whole() -> None:
    raw = sse(
        {"type": "message_start", "message": {"id": "msg_r", "model": "claude", "content": [], "usage": {}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwKAh"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    )
    resp = accumulate(parse_stream(raw))
    assert resp.content == (Reasoning(text="", redacted=True, opaque=Opaque(origin="anthropic", data="EmwKAh")),)


def test_stream_parser_error_event() -> None:
    raw = RECORDED.split(b"event: content_block_stop")[0] + sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    events = parse_stream(raw)
    assert events[-1] == StreamError(status=529, kind=ErrorKind.OVERLOADED, message="Overloaded")


def test_stream_parser_close_without_message_stop() -> None:
    head = RECORDED.split(b"event: message_stop")[0]
    assert parse_stream(head)[-1] == Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use")
    truncated = RECORDED.split(b"event: message_delta")[0]
    with pytest.raises(UpstreamProtocolError):
        parse_stream(truncated)


def test_stream_parser_rejects_non_json() -> None:
    with pytest.raises(UpstreamProtocolError):
        A.StreamParser(make_ctx()).feed(SSEEvent("message_start", "{not json"))
    with pytest.raises(UpstreamProtocolError):
        A.StreamParser(make_ctx()).feed(SSEEvent("message_start", "[1, 2]"))


def emit(events: list[Any], ctx: Context | None = None) -> bytes:
    emitter = A.StreamEmitter(ctx or make_ctx())
    return b"".join(b for ev in events for b in emitter.feed(ev))


def test_stream_emitter_round_trips_the_recorded_stream() -> None:
    """Anthropic parser → Anthropic emitter keeps the content, the ids and the usage."""
    raw = emit(RECORDED_EVENTS)
    events = check_anthropic_stream(raw)
    assert [n for n, _ in events] == [n for n in (
        "message_start content_block_start content_block_delta content_block_delta content_block_stop "
        "content_block_start content_block_delta content_block_delta content_block_stop message_delta "
        "message_stop").split()]
    final = fold_anthropic(events)
    assert final["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert final["content"] == [text("Okay, let's check the weather 🌍:"),
                                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
                                 "input": {"location": "San Francisco, CA"}}]
    assert final["stop_reason"] == "tool_use"
    assert final["usage"]["input_tokens"] == 472 and final["usage"]["output_tokens"] == 89
    # message_delta carries the cumulative usage, so compare the folded responses
    assert accumulate(parse_stream(raw)) == accumulate(RECORDED_EVENTS)


def test_stream_emitter_foreign_ids_reasoning_redacted_and_custom_tools() -> None:
    chat_opaque = Opaque(origin="chat", data="")
    request = req(user(Text(text="q")), model="claude-client")
    events = [
        MessageStart(id="chatcmpl-xyz", model="gpt-4o"),
        BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="think"),
        BlockStop(block_id=0, opaque=chat_opaque),
        BlockStart(block_id=1, kind=BlockKind.REASONING, redacted=True),
        BlockStop(block_id=1, opaque=Opaque(origin="anthropic", data="REDACTED")),
        BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="functions.f:0", tool_name="f"),
        BlockDelta(block_id=2, text='{"a":'), BlockDelta(block_id=2, text="1}"), BlockStop(block_id=2),
        BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id="call_p", tool_name="apply_patch",
                   tool_kind=ToolKind.CUSTOM),
        BlockDelta(block_id=3, text='line "1"\n'), BlockDelta(block_id=3, text="line 2"), BlockStop(block_id=3),
        UsageUpdate(usage=Usage(input_tokens=70, output_tokens=5, cache_read_tokens=30)),
        Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_calls"),
    ]
    final = fold_anthropic(check_anthropic_stream(emit(events, make_ctx(request))))
    assert final["id"].startswith("msg_") and final["model"] == "claude-client"
    thinking, redacted, call, patch = final["content"]
    assert thinking["thinking"] == "think" and decode_signature(thinking["signature"], "anthropic") == chat_opaque
    assert redacted == {"type": "redacted_thinking", "data": "REDACTED"}
    assert call == {"type": "tool_use", "id": safe_tool_id("functions.f:0"), "name": "f", "input": {"a": 1}}
    assert patch["input"] == {"input": 'line "1"\nline 2'}
    assert final["usage"]["input_tokens"] == 70 and final["usage"]["cache_read_input_tokens"] == 30
    assert final["usage"]["output_tokens"] == 5 and final["stop_reason"] == "tool_use"


def test_stream_emitter_error_event() -> None:
    raw = emit([MessageStart(id="msg_1", model="m"), BlockStart(block_id=0, kind=BlockKind.TEXT),
                BlockDelta(block_id=0, text="partial"),
                StreamError(status=503, kind=ErrorKind.OVERLOADED, message="busy")])
    events = check_anthropic_stream(raw)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


# --- errors ----------------------------------------------------------------------------------------

PARSE_ERROR_CASES = [
    ("anthropic json", 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     ErrorKind.OVERLOADED, "Overloaded"),
    ("rate limit", 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
     ErrorKind.RATE_LIMIT, "slow down"),
    ("invalid request", 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                         "message": "messages.1.content.0.tool_use.id: bad"}},
     ErrorKind.INVALID_REQUEST, "messages.1.content.0.tool_use.id: bad"),
    ("unknown type falls back to the status", 402, {"type": "error", "error": {"type": "new_error", "message": "m"}},
     ErrorKind.BILLING, "m"),
    ("json of another shape", 503, {"detail": "upstream down"}, ErrorKind.OVERLOADED, "upstream down"),
    ("non-json body", 502, b"<html>Bad Gateway</html>", ErrorKind.API_ERROR, "<html>Bad Gateway</html>"),
    ("empty body", 500, b"", ErrorKind.API_ERROR, "500"),
]


@pytest.mark.parametrize(("name", "status", "body", "kind", "message"), PARSE_ERROR_CASES,
                         ids=[c[0] for c in PARSE_ERROR_CASES])
def test_parse_error(name: str, status: int, body: Any, kind: ErrorKind, message: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = A.parse_error(status, raw)
    assert isinstance(err, UpstreamError)
    assert err.status == status and err.kind is kind
    assert message in err.message


RENDER_ERROR_CASES = [
    (BadRequest("bad field", param="x"), 400, "invalid_request_error"),
    (UpstreamError("no key", status=401), 401, "authentication_error"),
    (UpstreamError("pay", status=402), 402, "billing_error"),
    (UpstreamError("no", status=403), 403, "permission_error"),
    (UpstreamError("missing", status=404), 404, "not_found_error"),
    (UpstreamError("big", status=413), 413, "request_too_large"),
    (UpstreamError("slow", status=429), 429, "rate_limit_error"),
    (UpstreamError("boom", status=500), 500, "api_error"),
    (UpstreamError("late", status=504), 504, "timeout_error"),
    (UpstreamError("busy", status=529), 529, "overloaded_error"),
    (UpstreamError("busy", status=503), 529, "overloaded_error"),  # OpenAI overloaded → Anthropic 529 (§7.17)
    (UpstreamProtocolError("garbled"), 502, "api_error"),
]


@pytest.mark.parametrize(("err", "status", "error_type"), RENDER_ERROR_CASES,
                         ids=[f"{c[0].status}-{c[2]}" for c in RENDER_ERROR_CASES])
def test_render_error(err: BridgeError, status: int, error_type: str) -> None:
    got_status, body = A.render_error(err)
    assert got_status == status
    assert body == {"type": "error", "error": {"type": error_type, "message": err.message}}
    stream = A.render_stream_error(err)
    assert check_anthropic_stream(stream) == [("error", body)]


# --- properties: render → parse gives the IR back; the reversible encodings are reversible -----------


_blank_free = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() != "")


@st.composite
def canonical_requests(draw: st.DrawFn) -> Request:
    """IR requests an Anthropic body can express exactly: alternating turns of non-blank text, etc."""
    turns = draw(st.integers(1, 5))
    messages = tuple(Message(role=U if i % 2 == 0 else AS,
                             content=tuple(Text(text=t) for t in draw(st.lists(_blank_free, min_size=1, max_size=3))))
                     for i in range(turns))
    return Request(
        model=draw(st.text(min_size=1, max_size=20)), messages=messages,
        system=tuple(Text(text=t) for t in draw(st.lists(_blank_free, max_size=2))),
        max_tokens=draw(st.integers(1, 200_000)),
        temperature=draw(st.none() | st.floats(0, 1, allow_nan=False)),
        top_p=draw(st.none() | st.floats(0, 1, allow_nan=False)), top_k=draw(st.none() | st.integers(1, 500)),
        stop=tuple(draw(st.lists(st.text(min_size=1, max_size=10), max_size=5))),
        user=draw(st.none() | st.text(min_size=1, max_size=40)), stream=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(ir=canonical_requests())
def test_render_parse_round_trip(ir: Request) -> None:
    ctx = make_ctx(ir)
    body = json.loads(json.dumps(A.render_request(ir, ctx)))  # through real JSON
    assert A.parse_request(body) == ir
    assert ctx.warnings == []


@settings(max_examples=100, deadline=None)
@given(call_id=st.text(max_size=60))
@example(call_id="0\n")  # hypothesis found it: "$" in a pattern matches before a trailing newline
def test_tool_ids_encoded_reversibly(call_id: str) -> None:
    safe = safe_tool_id(call_id)
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in safe) and safe
    assert unsafe_tool_id(safe) == call_id
    if call_id and all(c.isascii() and (c.isalnum() or c in "_-") for c in call_id) \
            and not call_id.startswith("bridgeid_"):
        assert safe == call_id


@settings(max_examples=100, deadline=None)
@given(origin=st.text(max_size=20), data=st.text(max_size=80))
def test_signature_envelope_round_trip(origin: str, data: str) -> None:
    opaque = Opaque(origin=origin, data=data)
    signature = encode_signature(opaque)
    assert signature.startswith("bridge1.") and signature.isascii()
    assert decode_signature(signature, "anthropic") == opaque
    assert decode_signature(encode_signature(None), "anthropic") is None


@settings(max_examples=100, deadline=None)
@given(signature=st.text(max_size=80))
def test_native_signatures_are_kept(signature: str) -> None:
    if signature.startswith("bridge1."):
        return
    expected = Opaque(origin="anthropic", data=signature) if signature else None
    assert decode_signature(signature, "anthropic") == expected


def test_damaged_envelope_decodes_to_nothing() -> None:
    assert decode_signature("bridge1.!!!not-base64", "anthropic") is None
    assert decode_signature("bridge1." + base64.urlsafe_b64encode(b"[1,2]").decode(), "anthropic") is None


# --- prompt-cache breakpoints (issue 17) ----------------------------------------------------------

def _session(turns: int) -> Request:
    """An agent session of ``turns`` tool rounds, as a Chat or Responses client's history reads in the IR."""
    messages = [Message(role=Role.USER, content=(Text(text="Fix the test."),))]
    for n in range(turns):
        messages.append(Message(role=Role.ASSISTANT, content=(
            Reasoning(text="thinking", opaque=Opaque(origin="anthropic", data=f"sig{n}")),
            Text(text=f"Step {n}."), ToolCall(id=f"toolu_{n}", name="Bash", arguments='{"command": "ls"}'))))
        result = ToolResult(call_id=f"toolu_{n}", content=(Text(text="ok"),))
        messages.append(Message(role=Role.USER, content=(result,)))
    return Request(model="claude-x", system=(Text(text="You are a coding agent."), Text(text="Be careful.")),
                   messages=tuple(messages), tools=(Tool(name="Read", parameters={"type": "object"}),
                                                    Tool(name="Bash", parameters={"type": "object"})))


def _marked(body: dict[str, Any]) -> list[str]:
    """Where the breakpoints sit, as paths."""
    out = [f"tools[{i}]" for i, t in enumerate(body.get("tools", ())) if "cache_control" in t]
    out += [f"system[{i}]" for i, b in enumerate(body.get("system", ())) if "cache_control" in b]
    out += [f"messages[{i}].content[{j}]" for i, m in enumerate(body["messages"]) for j, b in enumerate(m["content"])
            if "cache_control" in b]
    return out


def test_breakpoints_go_on_the_stable_part_and_the_moving_end() -> None:
    body = A.render_request(_session(3), make_ctx(prompt_cache=True))
    assert _marked(body) == ["tools[1]", "system[1]", "messages[4].content[0]", "messages[6].content[0]"]
    assert all(b["cache_control"] == {"type": "ephemeral"} for b in (body["tools"][1], body["system"][1]))
    assert A.render_request(_session(3), make_ctx()).get("tools")[1].get("cache_control") is None  # off: none


def test_no_breakpoint_on_a_thinking_block_or_an_empty_text_and_never_more_than_four() -> None:
    req = _session(0)
    req = Request(model=req.model, system=req.system, tools=req.tools, messages=(*req.messages, Message(
        role=Role.ASSISTANT, content=(Reasoning(text="hm", opaque=Opaque(origin="anthropic", data="s")),))))
    body = A.render_request(req, make_ctx(prompt_cache=True))
    assert _marked(body) == ["tools[1]", "system[1]", "messages[0].content[0]"]  # the thinking-only end: none
    assert len(_marked(A.render_request(_session(9), make_ctx(prompt_cache=True)))) == 4


def test_a_growing_session_renders_its_earlier_turns_byte_identical() -> None:
    """A cache hit needs the prefix the same bytes every turn: only where the breakpoints sit moves."""
    def plain(body: dict[str, Any]) -> str:
        def strip(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != "cache_control"}
            return [strip(v) for v in value] if isinstance(value, list) else value
        return json.dumps(strip(body))

    bodies = [A.render_request(_session(n), make_ctx(prompt_cache=True)) for n in range(1, 6)]
    for before, after in itertools.pairwise(bodies):
        old, new = json.loads(plain(before)), json.loads(plain(after))
        assert new["messages"][:len(old["messages"])] == old["messages"]
        assert (new["tools"], new["system"]) == (old["tools"], old["system"])
