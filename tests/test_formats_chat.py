"""addon.formats.chat: requests, responses, streams and errors, as tables (style.md item 13).

References: formats.md §2 (fields), §4.3 (stream grammar), §5 (mappings), §7 (pitfalls).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.accumulate import accumulate
from addon.errors import BadRequest, BridgeError, ErrorKind, Unsupported, UpstreamError, UpstreamProtocolError
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats.common import Context, encode_signature
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
from tests.stream_grammar import check_chat_stream, fold_chat

U, AS, SY = Role.USER, Role.ASSISTANT, Role.SYSTEM
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
CHAT = Opaque(origin="chat", data="")
WEATHER_SCHEMA = {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"], "additionalProperties": False,
}
LONG_NAME = "mcp__github_enterprise_server__list_pull_request_review_comments_for_repository_v2"  # 82 chars
_WIRE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


def wire(*messages: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": list(messages), **kw}


def call(id_: str, name: str, args: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


def fn_tool(name: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": params, **kw}}


# --- requests: one table, both directions --------------------------------------------------------

ROUND_TRIP = [
    ("system and user strings",
     wire({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}),
     req(system("Be brief."), user(Text(text="Hi")))),
    ("multi-part user content, data URL and URL images",
     wire({"role": "user", "content": [
         {"type": "text", "text": "Compare"},
         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
         {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}),
     req(user(Text(text="Compare"), Image(media_type="image/png", data=PNG, detail="high"),
              Image(url="https://example.com/cat.jpg")))),
    ("parallel tool calls, tool results, then user text",
     wire({"role": "user", "content": "Weather in Paris and Rome?"},
          {"role": "assistant", "content": None, "tool_calls": [
              call("call_A", "get_weather", '{"city": "Paris"}'), call("call_B", "get_weather", '{"city": "Rome"}')]},
          {"role": "tool", "tool_call_id": "call_A", "content": "18C"},
          {"role": "tool", "tool_call_id": "call_B", "content": "21C"},
          {"role": "user", "content": "Thanks"}),
     req(user(Text(text="Weather in Paris and Rome?")),
         asst(ToolCall(id="call_A", name="get_weather", arguments='{"city": "Paris"}'),
              ToolCall(id="call_B", name="get_weather", arguments='{"city": "Rome"}')),
         user(ToolResult(call_id="call_A", content=(Text(text="18C"),)),
              ToolResult(call_id="call_B", content=(Text(text="21C"),)), Text(text="Thanks")))),
    ("assistant text with reasoning_content",
     wire({"role": "user", "content": "Why?"},
          {"role": "assistant", "content": "Because.", "reasoning_content": "The user asks why."}),
     req(user(Text(text="Why?")), asst(Reasoning(text="The user asks why.", opaque=CHAT), Text(text="Because.")))),
    ("tools, required, parallel off",
     wire({"role": "user", "content": "x"},
          tools=[fn_tool("get_weather", WEATHER_SCHEMA, description="Weather", strict=True),
                 fn_tool("now", {"type": "object", "properties": {}})],
          tool_choice="required", parallel_tool_calls=False),
     req(user(Text(text="x")),
         tools=(Tool(name="get_weather", description="Weather", parameters=WEATHER_SCHEMA, strict=True),
                Tool(name="now", parameters={"type": "object", "properties": {}})),
         tool_choice=ToolChoice(mode="required"), parallel_tool_calls=False)),
    ("named tool choice",
     wire({"role": "user", "content": "x"}, tools=[fn_tool("get_weather", WEATHER_SCHEMA)],
          tool_choice={"type": "function", "function": {"name": "get_weather"}}),
     req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA),),
         tool_choice=ToolChoice(mode="tool", name="get_weather"))),
    ("settings",
     wire({"role": "user", "content": "x"}, max_completion_tokens=500, temperature=1.5, top_p=0.9,
          stop=["END", "STOP"], reasoning_effort="high", user="u-1", stream=True,
          stream_options={"include_usage": True},
          response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA,
                                                                  "strict": True}}),
     req(user(Text(text="x")), max_tokens=500, temperature=1.5, top_p=0.9, stop=("END", "STOP"),
         reasoning=ReasoningConfig(effort="high"), user="u-1", stream=True, include_usage=True,
         response_format=ResponseFormat(type="json_schema", name="weather", schema=WEATHER_SCHEMA, strict=True))),
    ("json_object format",
     wire({"role": "user", "content": "x"}, response_format={"type": "json_object"}),
     req(user(Text(text="x")), response_format=ResponseFormat(type="json_object"))),
    ("unicode", wire({"role": "user", "content": "héllo 🌍 日本"}), req(user(Text(text="héllo 🌍 日本")))),
]


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_parse_request(name: str, body: dict[str, Any], ir: Request) -> None:
    assert C.parse_request(body) == ir


@pytest.mark.parametrize(("name", "body", "ir"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_render_request(name: str, body: dict[str, Any], ir: Request) -> None:
    ctx = make_ctx(ir)
    assert C.render_request(ir, ctx) == body
    assert ctx.warnings == []


PARSE_ONLY = [
    ("developer role is system", [{"role": "developer", "content": "Rules"}], (system("Rules"),)),
    ("system content parts", [{"role": "system", "content": [{"type": "text", "text": "a"},
                                                             {"type": "text", "text": "b"}]}],
     (Message(role=SY, content=(Text(text="a"), Text(text="b"))),)),
    ("tool content parts", [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "ok"}]}],
     (user(ToolResult(call_id="c", content=(Text(text="ok"),))),)),
    ("refusal becomes text", [{"role": "assistant", "content": None, "refusal": "I can't."}],
     (asst(Text(text="I can't.")),)),
    ("thinking_blocks carry anthropic signatures",
     [{"role": "assistant", "content": "A", "reasoning_content": "ignored when blocks exist",
       "thinking_blocks": [{"type": "thinking", "thinking": "t1", "signature": "EqQBsig"},
                           {"type": "redacted_thinking", "data": "EmwKredacted"}]}],
     (asst(Reasoning(text="t1", opaque=Opaque(origin="anthropic", data="EqQBsig")),
           Reasoning(text="", redacted=True, opaque=Opaque(origin="anthropic", data="EmwKredacted")),
           Text(text="A")),)),
    ("thinking_blocks with a bridge envelope",
     [{"role": "assistant", "content": "A",
       "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": encode_signature(
           Opaque(origin="responses", data="rs_1:enc"))}]}],
     (asst(Reasoning(text="t", opaque=Opaque(origin="responses", data="rs_1:enc")), Text(text="A")),)),
    ("reasoning key (vLLM/OpenRouter spelling)", [{"role": "assistant", "content": "A", "reasoning": "r"}],
     (asst(Reasoning(text="r", opaque=CHAT), Text(text="A")),)),
    ("custom tool call", [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]}],
     (asst(ToolCall(id="c1", name="apply_patch", arguments="*** Begin Patch", kind=ToolKind.CUSTOM)),)),
    ("pdf file part", [{"role": "user", "content": [{"type": "file", "file": {
        "file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"}}]}],
     (user(Document(media_type="application/pdf", data="JVBERi0x", title="a.pdf")),)),
    ("user after a plain user is its own message", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     (user(Text(text="a")), user(Text(text="b")))),
]


@pytest.mark.parametrize(("name", "messages", "expected"), PARSE_ONLY, ids=[c[0] for c in PARSE_ONLY])
def test_parse_messages(name: str, messages: list[dict[str, Any]], expected: tuple[Message, ...]) -> None:
    assert C.parse_request(wire(*messages)).messages == expected


FIELDS = [
    ("stop as a string", {"stop": "END"}, "stop", ("END",)),
    ("legacy max_tokens", {"max_tokens": 77}, "max_tokens", 77),
    ("max_completion_tokens preferred", {"max_tokens": 77, "max_completion_tokens": 88}, "max_tokens", 88),
    ("reasoning_effort none disables", {"reasoning_effort": "none"}, "reasoning",
     ReasoningConfig(enabled=False, effort="none")),
    ("response_format text is nothing", {"response_format": {"type": "text"}}, "response_format", None),
    ("include_usage without stream is ignored", {"stream_options": {"include_usage": True}}, "include_usage", False),
    ("stream without include_usage", {"stream": True}, "include_usage", False),
    ("safety_identifier preferred over user", {"safety_identifier": "s", "user": "u"}, "user", "s"),
    ("allowed_tools required", {"tool_choice": {"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": []}}}, "tool_choice", ToolChoice(mode="required")),
    ("custom tool choice", {"tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}}}, "tool_choice",
     ToolChoice(mode="tool", name="apply_patch")),
    ("tool choice none", {"tool_choice": "none"}, "tool_choice", ToolChoice(mode="none")),
    ("n=1 is fine", {"n": 1}, "model", "gpt-test"),
]


@pytest.mark.parametrize(("name", "extra", "attr", "expected"), FIELDS, ids=[c[0] for c in FIELDS])
def test_parse_request_fields(name: str, extra: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(C.parse_request(wire({"role": "user", "content": "x"}, **extra)), attr) == expected


def test_parse_custom_tool_keeps_grammar_in_description() -> None:
    body = wire({"role": "user", "content": "x"}, tools=[{"type": "custom", "custom": {
        "name": "apply_patch", "description": "Patch files.",
        "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /.+/"}}}}])
    tool = C.parse_request(body).tools[0]
    assert tool.kind is ToolKind.CUSTOM and tool.name == "apply_patch"
    assert tool.description is not None
    assert tool.description.startswith("Patch files.") and "lark" in tool.description
    assert "start: /.+/" in tool.description


def test_parse_warns_about_dropped_fields() -> None:
    got = C.parse_request(wire({"role": "user", "content": "x"}, seed=7, logprobs=True, frequency_penalty=0.5))
    for key in ("seed", "logprobs", "frequency_penalty"):
        assert any(key in w for w in got.warnings), key


PARSE_ERRORS = [
    ("n > 1", wire({"role": "user", "content": "x"}, n=2), "n", Unsupported),
    ("input_audio", wire({"role": "user", "content": [{"type": "text", "text": "listen"},
                                                      {"type": "input_audio",
                                                       "input_audio": {"data": "AAAA", "format": "wav"}}]}),
     "messages.0.content.1.type", Unsupported),
    ("audio output", wire({"role": "user", "content": "x"}, modalities=["text", "audio"]), "modalities", Unsupported),
    ("file by id", wire({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}),
     "messages.0.content.0.file", Unsupported),
    ("messages missing", {"model": "m"}, "messages", BadRequest),
    ("model missing", {"messages": []}, "model", BadRequest),
    ("bad role", wire({"role": "function", "content": "x"}), "messages.0.role", BadRequest),
    ("unknown part type", wire({"role": "user", "content": [{"type": "video"}]}), "messages.0.content.0.type",
     BadRequest),
    ("image_url without url", wire({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
     "messages.0.content.0.image_url.url", BadRequest),
    ("tool message without tool_call_id", wire({"role": "tool", "content": "x"}), "messages.0.tool_call_id",
     BadRequest),
    ("tool call without function", wire({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
     "messages.0.tool_calls.0.function", BadRequest),
    ("tool type", wire({"role": "user", "content": "x"}, tools=[{"type": "web_search"}]), "tools.0.type", BadRequest),
    ("tool parameters not an object", wire({"role": "user", "content": "x"},
                                           tools=[fn_tool("f", [])]), "tools.0.function.parameters", BadRequest),
    ("tool_choice unknown", wire({"role": "user", "content": "x"}, tool_choice="sometimes"), "tool_choice",
     BadRequest),
    ("response_format unknown", wire({"role": "user", "content": "x"}, response_format={"type": "xml"}),
     "response_format.type", BadRequest),
    ("stop not strings", wire({"role": "user", "content": "x"}, stop=[1]), "stop", BadRequest),
    ("temperature a string", wire({"role": "user", "content": "x"}, temperature="warm"), "temperature", BadRequest),
    ("max_completion_tokens a string", wire({"role": "user", "content": "x"}, max_completion_tokens="9"),
     "max_completion_tokens", BadRequest),
    ("content a number", wire({"role": "user", "content": 3}), "messages.0.content", BadRequest),
]


@pytest.mark.parametrize(("name", "body", "param", "error"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_request_errors_name_the_field(name: str, body: dict[str, Any], param: str,
                                            error: type[BadRequest]) -> None:
    with pytest.raises(error) as info:
        C.parse_request(body)
    assert info.value.param == param
    assert info.value.status == 400 and info.value.kind is ErrorKind.INVALID_REQUEST
    assert info.value.message


# --- requests: render only (IR from an Anthropic client → Chat upstream) ----------------------------


def render(ir: Request) -> tuple[dict[str, Any], list[str]]:
    ctx = make_ctx(ir)
    return C.render_request(ir, ctx), ctx.warnings


def test_anthropic_claude_code_request_rendered_for_chat() -> None:
    """formats.md §5.1-§5.5 end to end: Claude Code's request shape, parsed as Anthropic, sent to Chat."""
    from tests.test_formats_anthropic import CLAUDE_CODE_BODY as body

    ir = A.parse_request(body)
    out, warnings = render(ir)
    m = body["messages"]
    tool_use = m[2]["content"][2]
    assert out["messages"] == [
        {"role": "system", "content": "\n\n".join(b["text"] for b in body["system"])},  # cache_control dropped
        {"role": "user", "content": [{"type": "text", "text": b["text"]} for b in m[0]["content"]]},
        {"role": "system", "content": m[1]["content"]},
        {"role": "assistant", "content": m[2]["content"][1]["text"],  # the Anthropic-signed thinking is not sent
         "tool_calls": [call(tool_use["id"], "Bash", json.dumps(tool_use["input"], separators=(",", ":")))]},
        {"role": "tool", "tool_call_id": tool_use["id"], "content": m[3]["content"][0]["content"]},
    ]
    assert out["tools"] == [fn_tool(t["name"], t["input_schema"], description=t["description"])
                            for t in body["tools"]]
    assert out["max_completion_tokens"] == body["max_tokens"]
    assert out["reasoning_effort"] == body["output_config"]["effort"]
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "max_tokens" not in out and "thinking" not in out and "system" not in out
    assert "user" not in out and any("128" in w for w in warnings)  # Claude Code's user_id is 150+ chars


def test_system_blocks_joined_and_cache_control_dropped() -> None:
    ir = A.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "q"}],
                          "system": [{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                                     {"type": "text", "text": "Two."}]})
    out, _ = render(ir)
    assert out["messages"][0] == {"role": "system", "content": "One.\n\nTwo."}
    assert "cache_control" not in json.dumps(out)


def test_stop_sequences_capped_at_four() -> None:
    stops = ("a", "b", "c", "d", "e")
    out, warnings = render(req(user(Text(text="x")), stop=stops))
    assert out["stop"] == list(stops[:4])
    assert any("4" in w for w in warnings)


def test_sampling_toward_chat() -> None:
    out, warnings = render(req(user(Text(text="x")), temperature=0.4, top_p=0.8, top_k=20, max_tokens=300))
    assert out["temperature"] == 0.4 and out["top_p"] == 0.8 and out["max_completion_tokens"] == 300
    assert "top_k" not in out and any("top_k" in w for w in warnings)
    assert "max_tokens" not in out


def test_no_max_tokens_means_no_limit_toward_chat() -> None:
    out, _ = render(req(user(Text(text="x"))))
    assert "max_completion_tokens" not in out and "max_tokens" not in out


def test_stream_options_set_even_when_client_did_not_ask() -> None:
    out, _ = render(req(user(Text(text="x")), stream=True, include_usage=False))
    assert out["stream_options"] == {"include_usage": True}
    out, _ = render(req(user(Text(text="x"))))
    assert "stream" not in out and "stream_options" not in out


@pytest.mark.parametrize(("cfg", "effort"), [
    (ReasoningConfig(budget_tokens=1024), "low"), (ReasoningConfig(budget_tokens=2048), "low"),
    (ReasoningConfig(budget_tokens=8192), "medium"), (ReasoningConfig(budget_tokens=10000), "high"),
    (ReasoningConfig(budget_tokens=60000), "xhigh"), (ReasoningConfig(effort="max"), "max"),
    (ReasoningConfig(effort="low", budget_tokens=60000), "low"), (ReasoningConfig(enabled=False), None),
    (ReasoningConfig(), None), (None, None),
])
def test_thinking_to_reasoning_effort(cfg: ReasoningConfig | None, effort: str | None) -> None:
    out, _ = render(req(user(Text(text="x")), reasoning=cfg))
    assert out.get("reasoning_effort") == effort


@pytest.mark.parametrize(("choice", "expected"), [
    (ToolChoice(mode="auto"), "auto"), (ToolChoice(mode="required"), "required"), (ToolChoice(mode="none"), "none"),
    (ToolChoice(mode="tool", name="get_weather"), {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice_toward_chat(choice: ToolChoice, expected: Any) -> None:
    ir = req(user(Text(text="x")), tools=(Tool(name="get_weather", parameters=WEATHER_SCHEMA),), tool_choice=choice,
             parallel_tool_calls=False)
    out, _ = render(ir)
    assert out["tool_choice"] == expected
    assert out["parallel_tool_calls"] is False


def test_parallel_tool_calls_from_anthropic_disable_flag() -> None:
    for disable, parallel in ((True, False), (False, True)):
        ir = A.parse_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                              "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                              "tool_choice": {"type": "auto", "disable_parallel_tool_use": disable}})
        out, _ = render(ir)
        assert out["parallel_tool_calls"] is parallel and out["tool_choice"] == "auto"


def test_tool_without_parameters_and_custom_tools() -> None:
    ir = req(user(Text(text="x")), asst(ToolCall(id="c1", name="apply_patch", arguments="diff --git",
                                                 kind=ToolKind.CUSTOM)),
             tools=(Tool(name="now"), Tool(name="apply_patch", description="Patch", kind=ToolKind.CUSTOM)))
    out, _ = render(ir)
    assert out["tools"][0] == fn_tool("now", {"type": "object", "properties": {}})
    assert out["tools"][1]["function"]["parameters"]["properties"] == {"input": {"type": "string"}}
    assert json.loads(out["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"input": "diff --git"}


def test_long_tool_names_shortened_consistently() -> None:
    other = LONG_NAME[:-2] + "v3"  # same 55-char prefix
    ir = req(user(Text(text="x")), asst(ToolCall(id="c1", name=LONG_NAME, arguments="{}")),
             user(ToolResult(call_id="c1", content=(Text(text="ok"),))),
             tools=(Tool(name=LONG_NAME, parameters=WEATHER_SCHEMA), Tool(name=other), Tool(name="has.dot")),
             tool_choice=ToolChoice(mode="tool", name=LONG_NAME))
    out, _ = render(ir)
    names = [t["function"]["name"] for t in out["tools"]]
    assert all(_WIRE_NAME.match(n) for n in names), names
    assert len(set(names)) == 3
    assert names[0] == C.wire_tool_name(LONG_NAME) != LONG_NAME
    assert names[2] == C.wire_tool_name("has.dot")
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == names[0]
    assert out["tool_choice"] == {"type": "function", "function": {"name": names[0]}}
    assert C.wire_tool_name("get_weather") == "get_weather"
    assert C.wire_tool_name("get_weather\n") != "get_weather\n"  # a trailing newline is no valid name


def test_long_tool_call_ids_shortened_consistently() -> None:
    long_id = "toolu_" + "x" * 60
    out, _ = render(req(asst(ToolCall(id=long_id, name="f", arguments="{}")),
                        user(ToolResult(call_id=long_id, content=(Text(text="ok"),)))))
    sent = out["messages"][0]["tool_calls"][0]["id"]
    assert len(sent) <= 40 and out["messages"][1]["tool_call_id"] == sent
    short = "toolu_01A09q90qw90lq917835lq9"
    out, _ = render(req(asst(ToolCall(id=short, name="f", arguments="{}"))))
    assert out["messages"][0]["tool_calls"][0]["id"] == short


def test_tool_results_error_prefix_and_images_in_following_user_message() -> None:
    ir = req(asst(ToolCall(id="c1", name="shot", arguments="{}"), ToolCall(id="c2", name="run", arguments="{}")),
             user(ToolResult(call_id="c1", content=(Text(text="captured"),
                                                    Image(media_type="image/png", data=PNG))),
                  ToolResult(call_id="c2", content=(Text(text="exit 1"),), is_error=True),
                  Text(text="What do you see?")))
    out, _ = render(ir)
    assert out["messages"][1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "captured"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: exit 1"},
        {"role": "user", "content": [
            {"type": "text", "text": "[attachments of tool result c1]"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "What do you see?"}]},
    ]


def test_anthropic_is_error_tool_result_end_to_end() -> None:
    ir = A.parse_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": [{"type": "text", "text": "permission denied"}]}]}]})
    out, _ = render(ir)
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: permission denied"}


@pytest.mark.parametrize(("part", "wire_part"), [
    (Image(media_type="image/jpeg", data="AAAA"),
     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}),
    (Image(url="https://x/y.png"), {"type": "image_url", "image_url": {"url": "https://x/y.png"}}),
    (Image(url="https://x/y.png", detail="low"), {"type": "image_url", "image_url": {"url": "https://x/y.png",
                                                                                     "detail": "low"}}),
    (Document(text="plain notes", title="n"), {"type": "text", "text": "plain notes"}),
    (Document(media_type="application/pdf", data="JVBE", title="r.pdf"),
     {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"}}),
])
def test_media_toward_chat(part: Any, wire_part: dict[str, Any]) -> None:
    out, _ = render(req(user(Text(text="see"), part)))
    assert out["messages"][0]["content"] == [{"type": "text", "text": "see"}, wire_part]


def test_document_by_url_is_unsupported_toward_chat() -> None:
    with pytest.raises(Unsupported):
        render(req(user(Document(url="https://x/a.pdf", media_type="application/pdf"))))


def test_anthropic_image_sources_end_to_end() -> None:
    ir = A.parse_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.webp"}}]}]})
    out, _ = render(ir)
    assert out["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.webp"}}]


def test_assistant_history_toward_chat() -> None:
    ir = req(user(Text(text="q")),
             asst(Reasoning(text="anthropic thoughts", opaque=Opaque(origin="anthropic", data="sig")),
                  Text(text=""), ToolCall(id="c1", name="f", arguments='{"a":1}')),
             user(ToolResult(call_id="c1", content=(Text(text="r"),))),
             asst(Reasoning(text="chat thoughts", opaque=CHAT), Text(text="Done"), Text(text=" now")))
    out, _ = render(ir)
    assert out["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", '{"a":1}')]}
    assert out["messages"][3] == {"role": "assistant", "content": "Done now", "reasoning_content": "chat thoughts"}


def test_empty_user_text_dropped() -> None:
    out, _ = render(req(user(Text(text=""), Text(text="real"))))
    assert out["messages"] == [{"role": "user", "content": "real"}]


def test_response_format_toward_chat() -> None:
    fmt = ResponseFormat(type="json_schema", schema=WEATHER_SCHEMA)
    out, _ = render(req(user(Text(text="x")), response_format=fmt))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "response",
                                                                             "schema": WEATHER_SCHEMA}}
    ir = A.parse_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                          "output_config": {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}})
    assert render(ir)[0]["response_format"]["json_schema"]["schema"] == WEATHER_SCHEMA


def test_user_id_toward_chat() -> None:
    assert render(req(user(Text(text="x")), user="abc"))[0]["user"] == "abc"


# --- usage ------------------------------------------------------------------------------------------

USAGE = [
    ("cached", {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 30}},
     Usage(input_tokens=70, output_tokens=50, cache_read_tokens=30)),
    ("cached, written and reasoning",
     {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
      "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10},
      "completion_tokens_details": {"reasoning_tokens": 20}},
     Usage(input_tokens=60, output_tokens=50, cache_read_tokens=30, cache_write_tokens=10, reasoning_tokens=20)),
    ("plain", {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
     Usage(input_tokens=12, output_tokens=3)),
]


@pytest.mark.parametrize(("name", "wire_usage", "ir_usage"), USAGE, ids=[c[0] for c in USAGE])
def test_usage_both_ways(name: str, wire_usage: dict[str, Any], ir_usage: Usage) -> None:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
            "usage": wire_usage}
    assert accumulate(C.response_events(body, make_ctx())).usage == ir_usage
    out = C.render_response(Response(id="chatcmpl-1", model="m", content=(), stop_reason=StopReason.END_TURN,
                                     usage=ir_usage), make_ctx())
    assert out["usage"] == wire_usage


def test_anthropic_usage_to_chat() -> None:
    """Anthropic input excludes cache; OpenAI prompt_tokens includes it (formats.md §5.9)."""
    events = A.response_events({"id": "msg_1", "model": "c", "content": [], "stop_reason": "end_turn",
                                "usage": {"input_tokens": 70, "cache_read_input_tokens": 30,
                                          "cache_creation_input_tokens": 5, "output_tokens": 9}}, make_ctx())
    out = C.render_response(accumulate(events), make_ctx())
    assert out["usage"] == {"prompt_tokens": 105, "completion_tokens": 9, "total_tokens": 114,
                            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5}}


# --- responses ----------------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_abc",
    "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking héllo 🌍.", "refusal": None, "annotations": [],
        "reasoning_content": "Two cities.",
        "tool_calls": [call("call_1", "get_weather", '{"city":"Paris"}'),
                       call("call_2", C.wire_tool_name(LONG_NAME), "{}")]}}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 20}},
}
CLIENT_REQUEST = req(user(Text(text="q")), model="claude-client",
                     tools=(Tool(name="get_weather"), Tool(name=LONG_NAME)))


def test_response_events() -> None:
    events = C.response_events(COMPLETION, make_ctx(CLIENT_REQUEST))
    message = COMPLETION["choices"][0]["message"]
    assert events == [
        MessageStart(id=COMPLETION["id"], model=COMPLETION["model"]),
        BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text=message["reasoning_content"]),
        BlockStop(block_id=0, opaque=CHAT),
        BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text=message["content"]),
        BlockStop(block_id=1),
        BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_1", tool_name="get_weather"),
        BlockDelta(block_id=2, text='{"city":"Paris"}'),
        BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id="call_2", tool_name=LONG_NAME),  # mapped back
        BlockDelta(block_id=3, text="{}"),
        # calls stay open to the finish: some servers interleave their fragments (issue 13)
        BlockStop(block_id=2), BlockStop(block_id=3),
        UsageUpdate(usage=Usage(input_tokens=70, output_tokens=50, cache_read_tokens=30, reasoning_tokens=20)),
        Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_calls"),
    ]


def test_response_events_refusal_and_null_content() -> None:
    body = {"id": "chatcmpl-r", "model": "m", "choices": [{"index": 0, "finish_reason": "content_filter", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    resp = accumulate(C.response_events(body, make_ctx()))
    assert resp.content == (Text(text="I can't help with that."),)
    assert resp.stop_reason is StopReason.REFUSAL


FINISH = [("stop", StopReason.END_TURN), ("length", StopReason.MAX_TOKENS), ("tool_calls", StopReason.TOOL_USE),
          ("function_call", StopReason.TOOL_USE), ("content_filter", StopReason.REFUSAL),
          ("something_new", StopReason.OTHER)]


@pytest.mark.parametrize(("reason", "ir_reason"), FINISH)
def test_finish_reason_to_ir(reason: str, ir_reason: StopReason) -> None:
    body = {"id": "c", "model": "m", "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": reason}]}
    assert C.response_events(body, make_ctx())[-1] == Finish(stop_reason=ir_reason, raw_stop_reason=reason)


@pytest.mark.parametrize(("ir_reason", "reason"), [
    (StopReason.END_TURN, "stop"), (StopReason.STOP_SEQUENCE, "stop"), (StopReason.PAUSE, "stop"),
    (StopReason.OTHER, "stop"), (StopReason.MAX_TOKENS, "length"), (StopReason.CONTEXT_EXCEEDED, "length"),
    (StopReason.TOOL_USE, "tool_calls"), (StopReason.REFUSAL, "content_filter"),
])
def test_finish_reason_from_ir(ir_reason: StopReason, reason: str) -> None:
    out = C.render_response(Response(id="x", model="m", content=(), stop_reason=ir_reason), make_ctx())
    assert out["choices"][0]["finish_reason"] == reason


def test_anthropic_stop_reasons_reach_chat() -> None:
    for wire_reason, finish in [("end_turn", "stop"), ("stop_sequence", "stop"), ("tool_use", "tool_calls"),
                                ("max_tokens", "length"), ("refusal", "content_filter"), ("pause_turn", "stop"),
                                ("model_context_window_exceeded", "length")]:
        events = A.response_events({"id": "msg_1", "model": "c", "content": [], "stop_reason": wire_reason}, make_ctx())
        assert C.render_response(accumulate(events), make_ctx())["choices"][0]["finish_reason"] == finish


def test_render_response() -> None:
    signature = "EqQBCgIYAhIM1gbcDa9GJwZA"
    resp = Response(
        id="msg_01X", model="claude-sonnet-4-5",
        content=(Reasoning(text="Step 1. ", opaque=Opaque(origin="anthropic", data=signature)),
                 Reasoning(text="", redacted=True, opaque=Opaque(origin="anthropic", data="REDACTED")),
                 Text(text="Hello "), Text(text="日本"),
                 ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}')),
        stop_reason=StopReason.TOOL_USE, usage=Usage(input_tokens=70, output_tokens=5, cache_read_tokens=30))
    out = C.render_response(resp, make_ctx(req(user(Text(text="q")), model="gpt-client")))
    assert out["id"].startswith("chatcmpl-") and out["object"] == "chat.completion"
    assert out["created"] == 1_700_000_000 and out["model"] == "gpt-client"
    message = out["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == "Hello 日本"
    assert message["reasoning_content"] == "Step 1. "
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": "Step 1. ", "signature": signature},
                                          {"type": "redacted_thinking", "data": "REDACTED"}]
    assert message["tool_calls"] == [call("toolu_1", "get_weather", '{"city":"Paris"}')]
    assert out["usage"]["prompt_tokens"] == 100 and out["usage"]["prompt_tokens_details"] == {"cached_tokens": 30}
    # and the client can send the thinking back to an Anthropic upstream unchanged
    echoed = C.parse_request(wire({"role": "user", "content": "q"}, {**message, "content": message["content"]}))
    body = A.render_request(echoed, make_ctx(echoed))
    assert body["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": "Step 1. ", "signature": signature},
        {"type": "redacted_thinking", "data": "REDACTED"}]


def test_render_response_without_text_has_null_content() -> None:
    resp = Response(id="chatcmpl-keep", model="m", content=(ToolCall(id="c", name="f", arguments="{}"),),
                    stop_reason=StopReason.TOOL_USE)
    out = C.render_response(resp, make_ctx())
    assert out["id"] == "chatcmpl-keep"
    assert out["choices"][0]["message"]["content"] is None
    assert "reasoning_content" not in out["choices"][0]["message"]


# --- streams --------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"id": "chatcmpl-Stream1", "object": "chat.completion.chunk", "created": 1741570283,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_abc",
            "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}], "usage": None}
    return {**body, **extra}


def data(*chunks: dict[str, Any], done: bool = True) -> bytes:
    raw = b"".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks)
    return raw + (b"data: [DONE]\n\n" if done else b"")


def tc(index: int, args: str, id_: str | None = None, name: str | None = None) -> dict[str, Any]:
    if id_ is None:
        return {"tool_calls": [{"index": index, "function": {"arguments": args}}]}
    return {"tool_calls": [{"index": index, "id": id_, "type": "function",
                            "function": {"name": name, "arguments": args}}]}


USAGE_CHUNK = {**chunk(), "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                                                   "prompt_tokens_details": {"cached_tokens": 30}}}
# formats.md §4.3 observed sequence: role chunk, content, tool calls (first fragment id/type/name), finish,
# usage chunk with choices [], [DONE].
RECORDED = data(
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Let me "}), chunk({"content": "check 🌍."}),
    chunk(tc(0, "", "call_AAA", "get_weather")), chunk(tc(0, '{"ci')), chunk(tc(0, 'ty":"Paris"}')),
    chunk(tc(1, "", "call_BBB", "get_weather")), chunk(tc(1, '{"city":"Rome"}')),
    chunk({}, "tool_calls"),
    USAGE_CHUNK,
)
RECORDED_EVENTS = [
    MessageStart(id="chatcmpl-Stream1", model="gpt-4o-2024-08-06"),
    BlockStart(block_id=0, kind=BlockKind.TEXT), BlockDelta(block_id=0, text="Let me "),
    BlockDelta(block_id=0, text="check 🌍."), BlockStop(block_id=0),
    BlockStart(block_id=1, kind=BlockKind.TOOL_CALL, tool_call_id="call_AAA", tool_name="get_weather"),
    BlockDelta(block_id=1, text='{"ci'), BlockDelta(block_id=1, text='ty":"Paris"}'),
    BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_BBB", tool_name="get_weather"),
    BlockDelta(block_id=2, text='{"city":"Rome"}'),
    BlockStop(block_id=1), BlockStop(block_id=2),  # open to the finish: a server may interleave their fragments
    UsageUpdate(usage=Usage(input_tokens=70, output_tokens=50, cache_read_tokens=30)),
    Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_calls"),
]


def parse_stream(raw: bytes, size: int | None = None, ctx: Context | None = None) -> list[Any]:
    parser, decoder = C.StreamParser(ctx or make_ctx()), SSEDecoder()
    pieces = [raw] if size is None else [raw[i:i + size] for i in range(0, len(raw), size)]
    out = [ev for p in pieces for s in decoder.feed(p) for ev in parser.feed(s)]
    return out + [ev for s in decoder.close() for ev in parser.feed(s)] + parser.close()


@pytest.mark.parametrize("size", [None, 1, 7], ids=["whole", "one byte", "7 bytes"])
def test_stream_parser_recorded(size: int | None) -> None:
    assert parse_stream(RECORDED, size) == RECORDED_EVENTS


def test_stream_parser_ignores_data_after_done() -> None:
    assert parse_stream(RECORDED + data(chunk({"content": "late"}), done=False) + b"data: {") == RECORDED_EVENTS


def test_stream_parser_eof_without_done_finishes() -> None:
    raw = data(chunk({"role": "assistant", "content": "hi"}), chunk({}, "stop"), done=False)
    assert parse_stream(raw)[-1] == Finish(stop_reason=StopReason.END_TURN, raw_stop_reason="stop")


def test_stream_parser_without_finish_reason_fails() -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_stream(data(chunk({"role": "assistant", "content": "hi"})))


def test_stream_parser_reasoning_refusal_and_long_tool_name() -> None:
    request = req(user(Text(text="q")), tools=(Tool(name=LONG_NAME),))
    raw = data(
        chunk({"role": "assistant", "content": None, "reasoning_content": "Think"}),
        chunk({"reasoning": "ing."}),  # the other spelling, same block
        chunk({"content": "Hi"}), chunk({"refusal": " but no"}),
        chunk(tc(0, "{}", "call_L", C.wire_tool_name(LONG_NAME))),
        chunk({}, "tool_calls"),
    )
    assert parse_stream(raw, ctx=make_ctx(request)) == [
        MessageStart(id="chatcmpl-Stream1", model="gpt-4o-2024-08-06"),
        BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="Think"),
        BlockDelta(block_id=0, text="ing."), BlockStop(block_id=0, opaque=CHAT),
        BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="Hi"),
        BlockDelta(block_id=1, text=" but no"), BlockStop(block_id=1),
        BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="call_L", tool_name=LONG_NAME),
        BlockDelta(block_id=2, text="{}"), BlockStop(block_id=2),
        Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_calls"),
    ]


def test_stream_parser_index_reused_with_new_id() -> None:
    """formats.md §7.6: some compatible servers send every parallel call at index 0."""
    raw = data(chunk({"role": "assistant"}), chunk(tc(0, '{"a":1}', "call_1", "f")),
               chunk(tc(0, '{"b":2}', "call_2", "g")), chunk({}, "tool_calls"))
    calls = accumulate(parse_stream(raw)).content
    assert calls == (ToolCall(id="call_1", name="f", arguments='{"a":1}'),
                     ToolCall(id="call_2", name="g", arguments='{"b":2}'))


def test_stream_parser_repeated_id_stays_one_call_and_missing_id_is_generated() -> None:
    raw = data(chunk({"role": "assistant"}), chunk(tc(0, '{"a"', "call_1", "f")), chunk(tc(0, ":1}", "call_1", "f")),
               chunk({"tool_calls": [{"index": 1, "function": {"name": "g", "arguments": "{}"}}]}),
               chunk({}, "tool_calls"))
    calls = accumulate(parse_stream(raw)).content
    assert calls[0] == ToolCall(id="call_1", name="f", arguments='{"a":1}')
    assert isinstance(calls[1], ToolCall) and calls[1].name == "g" and calls[1].id.startswith("call_")


def test_stream_parser_carries_interleaved_tool_arguments() -> None:
    """Issue 13: some servers interleave the fragments of parallel calls; each goes to its own call."""
    raw = data(chunk({"role": "assistant"}), chunk(tc(0, '{"a"', "call_1", "f")), chunk(tc(1, '{"b"', "call_2", "g")),
               chunk(tc(0, ":1}")), chunk(tc(1, ":2}")), chunk({}, "tool_calls"))
    calls = accumulate(parse_stream(raw)).content
    assert [(c.id, c.name, c.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_1", "f", '{"a":1}'), ("call_2", "g", '{"b":2}')]


def test_stream_parser_a_new_id_at_an_index_in_use_is_a_new_call() -> None:
    raw = data(chunk({"role": "assistant"}), chunk(tc(0, "{}", "call_1", "f")), chunk(tc(0, '{"x":1}', "call_2", "g")),
               chunk({}, "tool_calls"))
    calls = accumulate(parse_stream(raw)).content
    assert [(c.id, c.arguments) for c in calls] == [("call_1", "{}"), ("call_2", '{"x":1}')]  # type: ignore[union-attr]


def test_stream_parser_ignores_other_choices() -> None:
    other = chunk({"content": "other choice"})
    other["choices"][0]["index"] = 1
    raw = data(chunk({"role": "assistant", "content": "mine"}), other, chunk({}, "stop"))
    assert accumulate(parse_stream(raw)).content == (Text(text="mine"),)


@pytest.mark.parametrize(("error", "status", "kind"), [
    ({"message": "boom", "type": "server_error"}, 500, ErrorKind.API_ERROR),
    ({"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}, 429, ErrorKind.RATE_LIMIT),
    ({"message": "busy", "type": "server_error", "code": "server_is_overloaded"}, 503, ErrorKind.OVERLOADED),
])
def test_stream_parser_error_chunk(error: dict[str, Any], status: int, kind: ErrorKind) -> None:
    raw = data(chunk({"role": "assistant", "content": "par"}), {"error": error}, done=False)
    events = parse_stream(raw)
    assert events[-1] == StreamError(status=status, kind=kind, message=error["message"])


def test_stream_parser_rejects_non_json() -> None:
    with pytest.raises(UpstreamProtocolError):
        C.StreamParser(make_ctx()).feed(SSEEvent(None, "{oops"))


def emit(events: list[Any], ctx: Context | None = None) -> bytes:
    emitter = C.StreamEmitter(ctx or make_ctx())
    return b"".join(b for ev in events for b in emitter.feed(ev))


ANTHROPIC_EVENTS = [
    MessageStart(id="msg_01X", model="claude-sonnet-4-5", usage=Usage(input_tokens=70, cache_read_tokens=30,
                                                                      output_tokens=1)),
    BlockStart(block_id=0, kind=BlockKind.REASONING), BlockDelta(block_id=0, text="Plan: "),
    BlockDelta(block_id=0, text="look up."), BlockStop(block_id=0, opaque=Opaque(origin="anthropic", data="SIG")),
    BlockStart(block_id=1, kind=BlockKind.TEXT), BlockDelta(block_id=1, text="héllo 🌍 "),
    BlockDelta(block_id=1, text="日本"), BlockStop(block_id=1),
    BlockStart(block_id=2, kind=BlockKind.TOOL_CALL, tool_call_id="toolu_A", tool_name="get_weather"),
    BlockDelta(block_id=2, text='{"city": '), BlockDelta(block_id=2, text='"Paris"}'), BlockStop(block_id=2),
    BlockStart(block_id=3, kind=BlockKind.TOOL_CALL, tool_call_id="toolu_B", tool_name="get_time"),
    BlockDelta(block_id=3, text="{}"), BlockStop(block_id=3),
    UsageUpdate(usage=Usage(output_tokens=42)),
    Finish(stop_reason=StopReason.TOOL_USE, raw_stop_reason="tool_use"),
]


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_emitter(include_usage: bool) -> None:
    request = req(user(Text(text="q")), model="gpt-client", stream=True, include_usage=include_usage)
    chunks = check_chat_stream(emit(ANTHROPIC_EVENTS, make_ctx(request)))
    final = fold_chat(chunks)
    assert final["id"].startswith("chatcmpl-") and final["model"] == "gpt-client"
    assert all(c["created"] == 1_700_000_000 for c in chunks)
    assert final["reasoning_content"] == "Plan: look up."
    assert final["thinking_blocks"] == [{"type": "thinking", "thinking": "Plan: look up.", "signature": "SIG"}]
    assert final["content"] == "héllo 🌍 日本"
    assert final["tool_calls"] == [{"id": "toolu_A", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                                   {"id": "toolu_B", "name": "get_time", "arguments": "{}"}]
    assert final["finish_reason"] == "tool_calls"
    if include_usage:
        assert final["usage"] == {"prompt_tokens": 100, "completion_tokens": 42, "total_tokens": 142,
                                  "prompt_tokens_details": {"cached_tokens": 30}}
    else:
        assert final["usage"] is None


def test_stream_emitter_round_trips_through_the_parser() -> None:
    raw = emit(RECORDED_EVENTS)
    check_chat_stream(raw)
    assert accumulate(parse_stream(raw)) == accumulate(RECORDED_EVENTS)


def test_stream_emitter_signature_survives_the_chat_parser() -> None:
    """thinking_blocks arrive before the reasoning block closes, so a bridge downstream keeps the signature."""
    resp = accumulate(parse_stream(emit(ANTHROPIC_EVENTS)))
    assert resp.content[0] == Reasoning(text="Plan: look up.", opaque=Opaque(origin="anthropic", data="SIG"))
    assert resp.content[1:] == accumulate(ANTHROPIC_EVENTS).content[1:]


def test_empty_content_chunks_open_no_text_block() -> None:
    """formats.md §7.1: an empty text block must never reach an Anthropic client."""
    raw = data(chunk({"role": "assistant", "content": ""}), chunk({"content": ""}),
               chunk(tc(0, "{}", "call_1", "f")), chunk({"content": ""}), chunk({}, "tool_calls"))
    events = parse_stream(raw)
    assert [e.kind for e in events if isinstance(e, BlockStart)] == [BlockKind.TOOL_CALL]
    out = A.StreamEmitter(make_ctx())
    wire_out = b"".join(b for ev in events for b in out.feed(ev))
    assert b'"type":"text"' not in wire_out


def test_stream_emitter_chat_reasoning_has_no_thinking_blocks() -> None:
    raw = emit([MessageStart(id="chatcmpl-1", model="m"), BlockStart(block_id=0, kind=BlockKind.REASONING),
                BlockDelta(block_id=0, text="r"), BlockStop(block_id=0, opaque=CHAT),
                Finish(stop_reason=StopReason.END_TURN)])
    final = fold_chat(check_chat_stream(raw))
    assert final["reasoning_content"] == "r" and final["thinking_blocks"] == []


def test_stream_emitter_error() -> None:
    raw = emit([MessageStart(id="m", model="m"), BlockStart(block_id=0, kind=BlockKind.TOOL_CALL, tool_call_id="c",
                                                            tool_name="f"),
                BlockDelta(block_id=0, text='{"a'), StreamError(status=529, kind=ErrorKind.OVERLOADED, message="busy")])
    chunks = check_chat_stream(raw)
    assert chunks[-1] == {"error": {"message": "busy", "type": "server_is_overloaded", "param": None, "code": None}}
    assert not raw.endswith(b"data: [DONE]\n\n")


# --- errors ---------------------------------------------------------------------------------------------

PARSE_ERROR_CASES = [
    ("openai json", 400, {"error": {"message": "Unsupported parameter: 'max_tokens'", "type": "invalid_request_error",
                                    "param": "max_tokens", "code": "unsupported_parameter"}},
     ErrorKind.INVALID_REQUEST, "Unsupported parameter: 'max_tokens'", "max_tokens", "unsupported_parameter"),
    ("quota", 429, {"error": {"message": "You exceeded your quota", "type": "insufficient_quota",
                              "code": "insufficient_quota", "param": None}},
     ErrorKind.BILLING, "You exceeded your quota", None, "insufficient_quota"),
    ("rate limit", 429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
     ErrorKind.RATE_LIMIT, "Rate limit reached", None, "rate_limit_exceeded"),
    ("overloaded", 503, {"error": {"message": "overloaded", "type": "server_error", "code": "server_is_overloaded"}},
     ErrorKind.OVERLOADED, "overloaded", None, "server_is_overloaded"),
    # OpenAI's real 401 body says invalid_request_error; the status decides (formats.md §5.10: auth → 401)
    ("auth", 401,
     {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
     ErrorKind.AUTHENTICATION, "Incorrect API key", None, "invalid_api_key"),
    ("fastapi detail", 422, {"detail": "Field required"}, ErrorKind.INVALID_REQUEST, "Field required", None, None),
    ("non-json", 502, b"<html>502 Bad Gateway</html>", ErrorKind.API_ERROR, "502 Bad Gateway", None, None),
    ("empty", 504, b"", ErrorKind.TIMEOUT, "504", None, None),
]


@pytest.mark.parametrize(("name", "status", "body", "kind", "message", "param", "code"), PARSE_ERROR_CASES,
                         ids=[c[0] for c in PARSE_ERROR_CASES])
def test_parse_error(name: str, status: int, body: Any, kind: ErrorKind, message: str, param: str | None,
                     code: str | None) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = C.parse_error(status, raw)
    assert isinstance(err, UpstreamError)
    assert err.status == status and err.kind is kind and message in err.message
    assert err.param == param and err.code == code


RENDER_ERROR_CASES = [
    (BadRequest("n: only n=1", param="n"), 400, "invalid_request_error", "n", None),
    (UpstreamError("bad key", status=401), 401, "authentication_error", None, None),
    (UpstreamError("no", status=403), 403, "permission_error", None, None),
    (UpstreamError("gone", status=404), 404, "not_found_error", None, None),
    (UpstreamError("slow", status=429, code="rate_limit_exceeded"), 429, "rate_limit_exceeded", None,
     "rate_limit_exceeded"),
    (UpstreamError("boom", status=500), 500, "server_error", None, None),
    (UpstreamError("busy", status=529), 503, "server_is_overloaded", None, None),  # no 529 for OpenAI (§7.17)
    (UpstreamError("busy", status=503), 503, "server_is_overloaded", None, None),
    (UpstreamProtocolError("garbled"), 502, "server_error", None, None),
]


@pytest.mark.parametrize(("err", "status", "error_type", "param", "code"), RENDER_ERROR_CASES,
                         ids=[f"{c[0].status}-{c[2]}" for c in RENDER_ERROR_CASES])
def test_render_error(err: BridgeError, status: int, error_type: str, param: str | None, code: str | None) -> None:
    got_status, body = C.render_error(err)
    assert got_status == status
    assert body == {"error": {"message": err.message, "type": error_type, "param": param, "code": code}}
    assert check_chat_stream(C.render_stream_error(err)) == [body]


def test_anthropic_overloaded_error_reaches_chat_client_as_503() -> None:
    err = A.parse_error(529, json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}}).encode())
    status, body = C.render_error(err)
    assert status == 503
    assert body["error"]["type"] == "server_is_overloaded" and body["error"]["message"] == "Overloaded"


def test_billing_error_for_openai_client_is_429_insufficient_quota() -> None:
    """formats.md §5.10: billing/quota is A 402 billing_error, OpenAI 429 with code insufficient_quota."""
    err = A.parse_error(402, json.dumps({"type": "error", "error": {"type": "billing_error",
                                                                    "message": "Credit balance too low"}}).encode())
    status, body = C.render_error(err)
    assert body["error"]["message"] == "Credit balance too low"
    assert (status, body["error"]["type"], body["error"]["code"]) == (429, "insufficient_quota", "insufficient_quota")


@pytest.mark.parametrize(("status", "error", "anthropic_type"), [
    (400, {"message": "Invalid 'messages[1].content'", "type": "invalid_request_error", "param": "messages",
           "code": None}, "invalid_request_error"),
    (401, {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": None,
           "code": "invalid_api_key"}, "authentication_error"),
    (404, {"message": "The model does not exist", "type": "invalid_request_error", "param": None,
           "code": "model_not_found"}, "not_found_error"),
])
def test_openai_client_errors_reach_anthropic_client_with_matching_type(status: int, error: dict[str, Any],
                                                                       anthropic_type: str) -> None:
    """formats.md §5.10: same condition, each format's own error type; the status is kept."""
    err = C.parse_error(status, json.dumps({"error": error}).encode())
    got_status, body = A.render_error(err)
    assert got_status == status
    assert body["error"] == {"type": anthropic_type, "message": error["message"]}


def test_chat_overloaded_error_reaches_anthropic_client_as_529() -> None:
    err = C.parse_error(503, json.dumps({"error": {"message": "slow down", "type": "server_error",
                                                   "code": "server_is_overloaded"}}).encode())
    status, body = A.render_error(err)
    assert status == 529 and body["error"] == {"type": "overloaded_error", "message": "slow down"}


# --- properties ---------------------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=30)
_name = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@st.composite
def canonical_requests(draw: st.DrawFn) -> Request:
    """IR requests a Chat body can express exactly."""
    messages = []
    for _ in range(draw(st.integers(1, 5))):
        role = draw(st.sampled_from([SY, U, U, AS]))
        texts = draw(st.lists(_text, min_size=1, max_size=3)) if role is U else [draw(_text)]
        messages.append(Message(role=role, content=tuple(Text(text=t) for t in texts)))
    tools = tuple(Tool(name=n, parameters={"type": "object", "properties": {p: {"type": "string"} for p in props}})
                  for n, props in draw(st.dictionaries(_name, st.lists(_name, max_size=2), max_size=3)).items())
    choice = draw(st.none() | st.sampled_from([ToolChoice(mode=m) for m in ("auto", "required", "none")]
                                              + [ToolChoice(mode="tool", name=t.name) for t in tools]))
    stream = draw(st.booleans())
    effort = draw(st.none() | st.sampled_from(["minimal", "low", "medium", "high", "xhigh"]))
    return Request(
        model=draw(st.text(min_size=1, max_size=20)), messages=tuple(messages), tools=tools,
        tool_choice=choice if tools or (choice and choice.mode == "none") else None,
        parallel_tool_calls=draw(st.none() | st.booleans()) if tools else None,
        max_tokens=draw(st.none() | st.integers(1, 200_000)),
        temperature=draw(st.none() | st.floats(0, 2, allow_nan=False)),
        top_p=draw(st.none() | st.floats(0, 1, allow_nan=False)),
        stop=tuple(draw(st.lists(_text, max_size=4))),
        reasoning=ReasoningConfig(effort=effort) if effort else None,
        user=draw(st.none() | st.text(min_size=1, max_size=128)), stream=stream, include_usage=stream,
    )


@settings(max_examples=60, deadline=None)
@given(ir=canonical_requests())
def test_render_parse_round_trip(ir: Request) -> None:
    ctx = make_ctx(ir)
    body = json.loads(json.dumps(C.render_request(ir, ctx)))
    assert C.parse_request(body) == ir
    assert ctx.warnings == []


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=150), other=st.text(max_size=150))
def test_wire_tool_name(name: str, other: str) -> None:
    wire_name = C.wire_tool_name(name)
    assert _WIRE_NAME.match(wire_name), wire_name
    assert C.wire_tool_name(name) == wire_name  # deterministic, so a response maps back
    if _WIRE_NAME.match(name):
        assert wire_name == name
    if name != other:
        assert C.wire_tool_name(other) != wire_name
