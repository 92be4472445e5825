"""OpenAI Chat Completions ⇄ IR: requests, responses, stream chunks and errors.

Wire reference: formats.md §2 (fields), §4.3 (stream grammar), §5 (mappings). Same exported names as
the sibling modules.

Reasoning has no slot in the Chat wire format. Like LiteLLM, the bridge uses two de-facto
extensions: ``reasoning_content`` (the text; DeepSeek, vLLM and others send it) and
``thinking_blocks`` (Anthropic-style blocks with their signatures, so a client can send them back and
a later turn reaches an Anthropic upstream intact). Upstreams that say ``reasoning`` are read too.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import (
    BadRequest,
    BridgeError,
    ErrorKind,
    Unsupported,
    UpstreamError,
    UpstreamProtocolError,
    kind_for_status,
)
from ..ir import (
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Document,
    Event,
    Finish,
    Image,
    Message,
    MessageStart,
    Opaque,
    Part,
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
from ..sse import SSEEvent, encode_event
from .common import (
    JSON,
    Context,
    InputUnwrapper,
    as_object,
    data_url,
    decode_signature,
    dumps,
    encode_signature,
    event_json,
    field_list,
    field_str,
    flat_tool_name,
    json_or_none,
    json_str,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_str,
    parse_data_url,
    plain_error,
    reasoning_effort,
    tool_lookup,
)

__all__ = [
    "NAME", "ANSWER_MARK", "STREAM_MARK", "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
    "wire_tool_name",
]

NAME = "chat"
# A key and value that only this format's answers carry: its whole answer, and its stream's first event
# (how a replayed answer already in the client's format is told from an upstream one).
ANSWER_MARK = ("object", "chat.completion")
STREAM_MARK = ("object", "chat.completion.chunk")
AUTH_HEADERS: tuple[str, ...] = ("authorization", "openai-organization", "openai-project")
OWN_HEADERS: tuple[str, ...] = ()
REQUIRED_HEADERS: dict[str, str] = {}

# formats.md §2.6 / §5.8
_FINISH_TO_IR = {
    "stop": StopReason.END_TURN, "length": StopReason.MAX_TOKENS, "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE, "content_filter": StopReason.REFUSAL,
}
_IR_TO_FINISH = {
    StopReason.END_TURN: "stop", StopReason.STOP_SEQUENCE: "stop", StopReason.PAUSE: "stop",
    StopReason.OTHER: "stop", StopReason.MAX_TOKENS: "length", StopReason.CONTEXT_EXCEEDED: "length",
    StopReason.TOOL_USE: "tool_calls", StopReason.REFUSAL: "content_filter",
}
# formats.md §2.7 / §5.10: OpenAI types, and the HTTP status an OpenAI client should see.
_ERROR_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error", ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.BILLING: "insufficient_quota", ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error", ErrorKind.REQUEST_TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_exceeded", ErrorKind.API_ERROR: "server_error",
    ErrorKind.TIMEOUT: "timeout", ErrorKind.OVERLOADED: "server_is_overloaded",
}
# Upstream type or code → kind; several map to one, so this is not the inverse of _ERROR_TYPE.
_ERROR_KIND = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST, "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION, "invalid_api_key": ErrorKind.AUTHENTICATION,
    "insufficient_quota": ErrorKind.BILLING, "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND, "model_not_found": ErrorKind.NOT_FOUND,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT, "server_error": ErrorKind.API_ERROR, "timeout": ErrorKind.TIMEOUT,
    "server_is_overloaded": ErrorKind.OVERLOADED, "slow_down": ErrorKind.OVERLOADED,
}
# Request fields the IR carries; any other (logprobs, seed, penalties, store, …) is reported.
_TRANSLATED = {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_completion_tokens",
               "max_tokens", "temperature", "top_p", "stop", "response_format", "reasoning_effort", "stream",
               "stream_options", "safety_identifier", "user", "prompt_cache_key", "n"}
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ID = 40  # Chat tool-call ids longer than 40 chars have been rejected (formats.md §5.5)


def wire_tool_name(name: str) -> str:
    """A tool name Chat accepts (≤64 chars of [A-Za-z0-9_-]); deterministic, so it maps back."""
    if _NAME_OK.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:55] + "_" + digest


def _wire_call_id(call_id: str) -> str:
    if len(call_id) <= _MAX_ID:
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


# --- request: wire → IR -------------------------------------------------------------------------


def parse_request(body: JSON) -> Request:
    """Parse a Chat Completions request. Raises :class:`BadRequest` naming the first invalid field."""
    warnings = [f"{key} has no equivalent and was dropped" for key in body if key not in _TRANSLATED]
    n = opt_int(body, "n")
    if n is not None and n > 1:
        raise Unsupported("n: only n=1 can be translated to another API", param="n")
    if body.get("audio") or "audio" in opt_list(body, "modalities"):
        raise Unsupported("audio output cannot be translated to another API", param="modalities")
    messages: list[Message] = []
    for i, raw in enumerate(field_list(body, "messages", "")):
        _parse_message(as_object(raw, f"messages.{i}"), f"messages.{i}.", messages)
    tools = tuple(_parse_tool(as_object(t, f"tools.{i}"), f"tools.{i}.") for i, t in enumerate(opt_list(body, "tools")))
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(opt_list(body, "stop"))
    if not all(isinstance(s, str) for s in stops):
        raise BadRequest("stop: expected a string or an array of strings", param="stop")
    stream = bool(opt_bool(body, "stream"))
    stream_options = as_object(body.get("stream_options") or {}, "stream_options")
    effort = opt_str(body, "reasoning_effort")
    return Request(
        model=field_str(body, "model", ""),
        messages=tuple(messages),
        tools=tools,
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        max_tokens=opt_int(body, "max_completion_tokens") or opt_int(body, "max_tokens"),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stop=stops,
        response_format=_parse_response_format(body.get("response_format")),
        reasoning=None if effort is None else ReasoningConfig(enabled=effort != "none", effort=effort),
        stream=stream,
        include_usage=stream and bool(stream_options.get("include_usage")),
        user=opt_str(body, "safety_identifier") or opt_str(body, "user"),
        cache_key=opt_str(body, "prompt_cache_key"),
        warnings=tuple(warnings),
    )


def _parse_message(msg: JSON, where: str, out: list[Message]) -> None:
    role = msg.get("role")
    content = msg.get("content")
    if role in ("system", "developer"):
        out.append(Message(role=Role.SYSTEM, content=_parse_parts(content, where)))
    elif role == "user":
        _append(out, Role.USER, _parse_parts(content, where))
    elif role == "assistant":
        parts: list[Part] = list(_parse_reasoning(msg, where))
        parts += _parse_parts(content, where) if content is not None else ()
        if isinstance(msg.get("refusal"), str) and msg["refusal"]:
            parts.append(Text(text=msg["refusal"]))
        for j, call in enumerate(opt_list(msg, "tool_calls", where)):
            parts.append(_parse_tool_call(as_object(call, f"{where}tool_calls.{j}"), f"{where}tool_calls.{j}."))
        out.append(Message(role=Role.ASSISTANT, content=tuple(parts)))
    elif role == "tool":
        result = ToolResult(call_id=field_str(msg, "tool_call_id", where),
                            content=tuple(p for p in _parse_parts(content, where) if isinstance(p, Text)))
        _append(out, Role.USER, (result,))  # consecutive tool messages → one user turn of results
    else:
        raise BadRequest(f"{where}role: expected system, developer, user, assistant or tool", param=f"{where}role")


def _append(out: list[Message], role: Role, parts: tuple[Part, ...]) -> None:
    if out and out[-1].role is role and role is Role.USER and any(isinstance(p, ToolResult) for p in out[-1].content):
        out[-1] = Message(role=role, content=out[-1].content + parts)
    else:
        out.append(Message(role=role, content=parts))


def _parse_parts(content: Any, where: str) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(text=content),)
    if not isinstance(content, list):
        raise BadRequest(f"{where}content: expected a string or an array", param=f"{where}content")
    return tuple(_parse_part(as_object(p, f"{where}content.{i}"), f"{where}content.{i}.")
                 for i, p in enumerate(content))


def _parse_part(part: JSON, where: str) -> Part:
    match part.get("type"):
        case "text":
            return Text(text=field_str(part, "text", where))
        case "refusal":
            return Text(text=field_str(part, "refusal", where))
        case "image_url":
            image = as_object(part.get("image_url"), f"{where}image_url")
            url = field_str(image, "url", f"{where}image_url.")
            parsed = parse_data_url(url)
            detail = opt_str(image, "detail", f"{where}image_url.")
            if parsed:
                return Image(media_type=parsed[0], data=parsed[1], detail=detail)
            return Image(url=url, detail=detail)
        case "file":
            file = as_object(part.get("file"), f"{where}file")
            parsed = parse_data_url(opt_str(file, "file_data", f"{where}file.") or "")
            if parsed is None:
                raise Unsupported(f"{where}file: only inline file_data can be translated (no file_id)",
                                  param=f"{where}file")
            return Document(media_type=parsed[0], data=parsed[1], title=opt_str(file, "filename", f"{where}file."))
        case "input_audio":
            raise Unsupported(f"{where}type: input_audio cannot be translated to another API", param=f"{where}type")
    raise BadRequest(f"{where}type: unknown content part type {part.get('type')!r}", param=f"{where}type")


def _parse_reasoning(msg: JSON, where: str) -> tuple[Reasoning, ...]:
    blocks = msg.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        out = []
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "redacted_thinking":
                opaque = decode_signature(str(b.get("data", "")), "anthropic")
                out.append(Reasoning(text="", redacted=True, opaque=opaque))
            else:
                out.append(Reasoning(text=str(b.get("thinking", "")),
                                     opaque=decode_signature(str(b.get("signature") or ""), "anthropic")))
        return tuple(out)
    text = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(text, str) and text:
        return (Reasoning(text=text, opaque=Opaque(origin=NAME, data="")),)
    return ()


def _parse_tool_call(call: JSON, where: str) -> ToolCall:
    if call.get("type") == "custom":
        custom = as_object(call.get("custom"), f"{where}custom")
        return ToolCall(id=field_str(call, "id", where), name=field_str(custom, "name", f"{where}custom."),
                        arguments=field_str(custom, "input", f"{where}custom."), kind=ToolKind.CUSTOM)
    function = as_object(call.get("function"), f"{where}function")
    return ToolCall(id=field_str(call, "id", where), name=field_str(function, "name", f"{where}function."),
                    arguments=opt_str(function, "arguments", f"{where}function.") or "")


def _parse_tool(tool: JSON, where: str) -> Tool:
    if tool.get("type") == "custom":
        custom = as_object(tool.get("custom"), f"{where}custom")
        fmt = custom.get("format") or {}
        description = opt_str(custom, "description", f"{where}custom.") or ""
        grammar = fmt.get("grammar") if isinstance(fmt, dict) else None
        if isinstance(grammar, dict) and grammar.get("definition"):
            syntax = grammar.get("syntax", "")
            description += f"\n\nThe input must match this {syntax} grammar:\n{grammar['definition']}"
        return Tool(name=field_str(custom, "name", f"{where}custom."), description=description or None,
                    kind=ToolKind.CUSTOM)
    if tool.get("type") != "function":
        raise BadRequest(f"{where}type: expected function or custom", param=f"{where}type")
    function = as_object(tool.get("function"), f"{where}function")
    params = function.get("parameters")
    return Tool(name=field_str(function, "name", f"{where}function."),
                description=opt_str(function, "description", f"{where}function."),
                parameters=as_object(params, f"{where}function.parameters") if params is not None else None,
                strict=opt_bool(function, "strict", f"{where}function."))


def _parse_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "required", "none"):
        return ToolChoice(mode=raw)
    choice = as_object(raw, "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        named = as_object(choice.get(kind), f"tool_choice.{kind}")
        return ToolChoice(mode="tool", name=field_str(named, "name", f"tool_choice.{kind}."))
    if kind == "allowed_tools":
        allowed = as_object(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        return ToolChoice(mode="required" if allowed.get("mode") == "required" else "auto")
    raise BadRequest("tool_choice: expected auto, required, none or a named function", param="tool_choice")


def _parse_response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = as_object(raw, "response_format")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = as_object(fmt.get("json_schema"), "response_format.json_schema")
        schema = spec.get("schema")
        return ResponseFormat(type=kind, name=opt_str(spec, "name"), strict=opt_bool(spec, "strict"),
                              description=opt_str(spec, "description"),
                              schema=as_object(schema, "response_format.json_schema.schema") if schema else None)
    if kind in ("text", "json_object"):
        return None if kind == "text" else ResponseFormat(type=kind)
    raise BadRequest("response_format.type: expected text, json_object or json_schema", param="response_format.type")


# --- request: IR → wire -------------------------------------------------------------------------


def render_request(req: Request, ctx: Context) -> JSON:
    """Render an IR request for a Chat upstream; ``ctx.warnings`` collects what was lost."""
    messages: list[JSON] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for msg in req.messages:
        messages += _render_message(msg, ctx)
    body: JSON = {"model": req.model, "messages": messages}
    if req.max_tokens is not None:
        body["max_completion_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        ctx.warnings.append("top_k has no Chat Completions equivalent and was dropped")
    if req.stop:
        body["stop"] = list(req.stop[:4])
        if len(req.stop) > 4:
            ctx.warnings.append(f"stop sequences beyond the first 4 dropped ({len(req.stop)} given)")
    if req.tools:
        body["tools"] = [_render_tool(t) for t in req.tools]
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice and (req.tools or req.tool_choice.mode == "none"):
        choice = req.tool_choice
        body["tool_choice"] = (choice.mode if choice.mode != "tool" else
                               {"type": "function", "function": {"name": wire_tool_name(choice.name or "")}})
    fmt = req.response_format
    if fmt and fmt.type == "json_schema":
        spec: JSON = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        if fmt.description:
            spec["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt:
        body["response_format"] = {"type": fmt.type}
    effort = reasoning_effort(req.reasoning)
    if effort:
        body["reasoning_effort"] = effort
    if req.user and len(req.user) <= 128:
        body["user"] = req.user
    elif req.user:
        ctx.warnings.append("metadata.user_id longer than 128 characters dropped")
    if req.cache_key:
        body["prompt_cache_key"] = req.cache_key
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # or the stream carries no usage at all
    return body


def _render_message(msg: Message, ctx: Context) -> list[JSON]:
    if msg.role is Role.SYSTEM:
        return [{"role": "system", "content": "\n\n".join(p.text for p in msg.content if isinstance(p, Text))}]
    if msg.role is Role.ASSISTANT:
        return [_render_assistant(msg)]
    out: list[JSON] = []
    rest: list[JSON] = []
    for part in msg.content:
        if isinstance(part, ToolResult):  # tool messages first, right after the assistant's calls
            text = "\n".join(p.text for p in part.content if isinstance(p, Text))
            out.append({"role": "tool", "tool_call_id": _wire_call_id(part.call_id),
                        "content": f"Error: {text}" if part.is_error else text})
            media = [p for p in part.content if not isinstance(p, Text)]
            if media:  # a tool message is text-only: its images follow in a user message
                rest.append({"type": "text", "text": f"[attachments of tool result {part.call_id}]"})
                rest += [_render_media(p, ctx) for p in media]
        elif isinstance(part, Text):
            if part.text:
                rest.append({"type": "text", "text": part.text})
        elif isinstance(part, Image | Document):
            rest.append(_render_media(part, ctx))
    if rest:
        only_text = len(rest) == 1 and rest[0]["type"] == "text"
        out.append({"role": "user", "content": rest[0]["text"] if only_text else rest})
    return out


def _render_assistant(msg: Message) -> JSON:
    texts = [p.text for p in msg.content if isinstance(p, Text) and p.text]
    wire: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    calls = [p for p in msg.content if isinstance(p, ToolCall)]
    if calls:
        wire["tool_calls"] = [
            {"id": _wire_call_id(c.id), "type": "function",
             "function": {"name": wire_tool_name(flat_tool_name(c.namespace, c.name)),
                          "arguments": dumps({"input": c.arguments}) if c.kind is ToolKind.CUSTOM else c.arguments}}
            for c in calls]
    reasoning = [p.text for p in msg.content
                 if isinstance(p, Reasoning) and p.text and (p.opaque is None or p.opaque.origin == NAME)]
    if reasoning:  # only ever sent back to the kind of upstream that produced it
        wire["reasoning_content"] = "".join(reasoning)
    return wire


def _render_media(part: Image | Document | Text, ctx: Context) -> JSON:
    if isinstance(part, Image):
        url = part.url if part.data is None else data_url(part.media_type or "image/png", part.data)
        image: JSON = {"url": url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, Document) and part.text is not None:
        return {"type": "text", "text": part.text}
    if isinstance(part, Document) and part.data is not None and part.media_type == "application/pdf":
        return {"type": "file", "file": {"file_data": data_url(part.media_type, part.data),
                                         "filename": part.title or "document.pdf"}}
    raise Unsupported("a document given by URL, or not a PDF, cannot be sent to a Chat Completions upstream")


def _render_tool(tool: Tool) -> JSON:
    if tool.kind is ToolKind.CUSTOM:  # many Chat servers lack custom tools: one string argument
        params: JSON = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
    else:
        params = tool.parameters or {"type": "object", "properties": {}}
    function: JSON = {"name": wire_tool_name(flat_tool_name(tool.namespace, tool.name)), "parameters": params}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


# --- response: wire → IR ------------------------------------------------------------------------


def _usage_to_ir(usage: JSON) -> Usage:
    """OpenAI prompt_tokens include cached tokens; the IR's input_tokens do not (formats.md §5.9)."""
    prompt = usage.get("prompt_tokens")
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    written = details.get("cache_write_tokens")
    fresh = None if prompt is None else max(prompt - (cached or 0) - (written or 0), 0)
    return Usage(input_tokens=fresh, output_tokens=usage.get("completion_tokens"), cache_read_tokens=cached,
                 cache_write_tokens=written,
                 reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))


def response_events(body: JSON, ctx: Context) -> list[Event]:
    """A non-streamed ``chat.completion`` as the IR events its stream would have produced."""
    parser = StreamParser(ctx)
    choices = body.get("choices") or [{}]
    message = dict(choices[0].get("message") or {})
    message["tool_calls"] = [{**c, "index": i} for i, c in enumerate(message.get("tool_calls") or ())]
    chunk = {**body, "choices": [{"index": 0, "delta": message, "finish_reason": choices[0].get("finish_reason")}]}
    return parser.chunk_events(chunk) + parser.close()


class StreamParser:
    """Chat chunks → IR events.

    One block is open at a time: reasoning, text and each tool call (by ``index``, or by a new ``id``
    at a reused index, which some compatible servers send) open a block and close the previous one.
    ``Finish`` is emitted at ``[DONE]`` or end of stream, so the trailing usage chunk is included.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tools = tool_lookup(ctx, wire_tool_name)
        self._unwrap: InputUnwrapper | None = None  # the open call is of a freeform tool
        self._has_args = False
        self._started = False
        self._next_id = 0
        self._open: tuple[int, BlockKind, Any] | None = None  # (block id, kind, tool index or call id)
        self._closed_indexes: set[int] = set()
        self._signature: Opaque | None = None
        self._finish: str | None = None
        self._done = False

    def feed(self, sse: SSEEvent) -> list[Event]:
        if self._done:
            return []
        if sse.data.strip() == "[DONE]":
            return self.close()
        return self.chunk_events(event_json(sse.data))

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._finish is None:
            raise UpstreamProtocolError("upstream Chat stream ended before a finish_reason")
        self._done = True
        finish = Finish(stop_reason=_FINISH_TO_IR.get(self._finish, StopReason.OTHER), raw_stop_reason=self._finish)
        return [*self._close_block(), finish]

    def chunk_events(self, chunk: JSON) -> list[Event]:
        if isinstance(chunk.get("error"), dict):
            err = _error_from(chunk["error"], None)
            self._done = True
            return [StreamError(status=err.status, kind=err.kind, message=err.message)]
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(MessageStart(id=str(chunk.get("id", "")), model=str(chunk.get("model", ""))))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n > 1 is only possible in pass-through
            events += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                events += self._close_block()
        if isinstance(chunk.get("usage"), dict):
            events.append(UsageUpdate(usage=_usage_to_ir(chunk["usage"])))
        return events

    def _delta(self, delta: JSON) -> list[Event]:
        if len(delta) == 1:  # nearly every chunk: {"content": "…"}; the general path asks a dozen questions
            text = delta.get("content")
            if isinstance(text, str):
                return self._text(BlockKind.TEXT, text) if text else []
        events: list[Event] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events += self._text(BlockKind.REASONING, reasoning)
        for block in delta.get("thinking_blocks") or ():
            if isinstance(block, dict) and self._open and self._open[1] is BlockKind.REASONING:
                self._signature = decode_signature(str(block.get("signature") or ""), "anthropic")
        for key in ("content", "refusal"):
            if isinstance(delta.get(key), str) and delta[key]:
                events += self._text(BlockKind.TEXT, delta[key])
        for call in delta.get("tool_calls") or ():
            events += self._tool_fragment(call)
        return events

    def _text(self, kind: BlockKind, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open[1] is not kind:
            events += self._close_block()
            events.append(BlockStart(block_id=self._next_id, kind=kind))
            self._open = (self._next_id, kind, None)
            self._next_id += 1
        events.append(BlockDelta(block_id=self._open[0], text=text))
        return events

    def _tool_fragment(self, call: JSON) -> list[Event]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events: list[Event] = []
        current = self._open[2] if self._open and self._open[1] is BlockKind.TOOL_CALL else None
        new_id = call.get("id") or None
        if current is None or current[0] != index or (new_id is not None and new_id != current[1]):
            if new_id is None and index in self._closed_indexes:
                raise UpstreamProtocolError(f"upstream interleaved the arguments of tool call {index}; "
                                            "the bridge streams one tool call at a time")
            call_id = new_id or self._ctx.new_id("call_")
            events += self._close_block()
            name = str(function.get("name", ""))
            tool = self._tools.get(name)
            kind = tool.kind if tool else ToolKind.FUNCTION
            events.append(BlockStart(block_id=self._next_id, kind=BlockKind.TOOL_CALL, tool_call_id=call_id,
                                     tool_name=tool.name if tool else name, tool_kind=kind,
                                     tool_namespace=tool.namespace if tool else None))
            self._open = (self._next_id, BlockKind.TOOL_CALL, (index, call_id))
            self._unwrap = InputUnwrapper() if kind is ToolKind.CUSTOM else None
            self._has_args = False
            self._next_id += 1
        args = function.get("arguments")
        if isinstance(args, str) and args:
            self._has_args = True
            text = self._unwrap.feed(args) if self._unwrap else args
            if text:
                events.append(BlockDelta(block_id=self._open[0], text=text))  # type: ignore[index]
        return events

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        bid, kind, key = self._open
        self._open = None
        events: list[Event] = []
        if kind is BlockKind.TOOL_CALL:
            self._closed_indexes.add(key[0])
            rest = self._unwrap.close() if self._unwrap else ("" if self._has_args else "{}")
            if rest:  # the unstreamable rest of a freeform input, or {} for a call with no arguments
                events.append(BlockDelta(block_id=bid, text=rest))
            self._unwrap = None
        opaque = self._signature or (Opaque(origin=NAME, data="") if kind is BlockKind.REASONING else None)
        self._signature = None
        return [*events, BlockStop(block_id=bid, opaque=opaque)]


# --- response: IR → wire ------------------------------------------------------------------------


def _usage_to_wire(usage: Usage) -> JSON:
    prompt = usage.total_input
    completion = usage.output_tokens or 0
    wire: JSON = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    details: JSON = {}
    if usage.cache_read_tokens is not None:
        details["cached_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens is not None:
        details["cache_write_tokens"] = usage.cache_write_tokens
    if details:
        wire["prompt_tokens_details"] = details
    if usage.reasoning_tokens is not None:
        wire["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return wire


def _thinking_block(text: str, opaque: Opaque | None, redacted: bool) -> JSON | None:
    """The LiteLLM-style block that lets a Chat client carry an Anthropic signature back."""
    if opaque is None or opaque.origin == NAME:
        return None
    signature = opaque.data if opaque.origin == "anthropic" else encode_signature(opaque)
    if redacted:
        return {"type": "redacted_thinking", "data": signature}
    return {"type": "thinking", "thinking": text, "signature": signature}


def _tool_call(call_id: str | None, kind: ToolKind, name: str, arguments: str) -> JSON:
    """A Chat tool call: ``custom`` with raw input for freeform tools, else ``function``."""
    if kind is ToolKind.CUSTOM:
        return {"id": call_id, "type": "custom", "custom": {"name": name, "input": arguments}}
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _completion_id(upstream_id: str, ctx: Context) -> str:
    return upstream_id if upstream_id.startswith("chatcmpl-") else ctx.new_id("chatcmpl-")


def render_response(resp: Response, ctx: Context) -> JSON:
    texts = [p.text for p in resp.content if isinstance(p, Text)]
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    reasoning = [p for p in resp.content if isinstance(p, Reasoning)]
    if reasoning:
        message["reasoning_content"] = "".join(p.text for p in reasoning)
        blocks = [b for p in reasoning if (b := _thinking_block(p.text, p.opaque, p.redacted))]
        if blocks:
            message["thinking_blocks"] = blocks
    calls = [p for p in resp.content if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = [_tool_call(c.id, c.kind, flat_tool_name(c.namespace, c.name), c.arguments)
                                 for c in calls]
    return {
        "id": _completion_id(resp.id, ctx), "object": "chat.completion", "created": ctx.created,
        "model": ctx.client_model or resp.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _IR_TO_FINISH[resp.stop_reason]}],
        "usage": _usage_to_wire(resp.usage),
    }


class StreamEmitter:
    """IR events → Chat chunks in the shape the SDK's stream helper accumulates (formats.md §4.3).

    ``role``, a call's ``id`` and ``name`` appear only in the first fragment: the SDK concatenates
    repeated strings. Tool-call indexes count from 0 in order of appearance.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._id = ""
        self._model = ""
        self._blocks: dict[int, tuple[BlockStart, int, list[str]]] = {}  # id → (start, tool/think index, text)
        self._tools = 0
        self._thinking = 0
        self._usage = Usage()
        self._head: tuple[tuple[str, str], str] | None = None  # ((id, model), the chunk's JSON up to its delta)

    def feed(self, event: Event) -> list[bytes]:
        match event:
            case MessageStart(id=id_, model=model, usage=usage):
                self._id, self._model = _completion_id(id_, self._ctx), self._ctx.client_model or model
                self._usage = usage
                return [self._chunk({"role": "assistant", "content": ""})]
            case BlockStart(block_id=bid, kind=BlockKind.TOOL_CALL):
                self._blocks[bid] = (event, self._tools, [])
                self._tools += 1
                name = flat_tool_name(event.tool_namespace, event.tool_name or "")
                call = {"index": self._tools - 1, **_tool_call(event.tool_call_id, event.tool_kind, name, "")}
                return [self._chunk({"tool_calls": [call]})]
            case BlockStart(block_id=bid):
                self._blocks[bid] = (event, 0, [])
                return []
            case BlockDelta(block_id=bid, text=text):
                # Deltas are nearly every event: their delta object is written from a template, the
                # bytes _chunk({"content": text}) etc. would give.
                start, index, texts = self._blocks[bid]
                if start.kind is BlockKind.TEXT:
                    return [self._framed(f'{{"content":{json_str(text)}}}')]
                if start.kind is BlockKind.REASONING:
                    texts.append(text)
                    return [self._framed(f'{{"reasoning_content":{json_str(text)}}}')]
                fragment = (f'"custom":{{"input":{json_str(text)}}}' if start.tool_kind is ToolKind.CUSTOM
                            else f'"function":{{"arguments":{json_str(text)}}}')
                return [self._framed(f'{{"tool_calls":[{{"index":{index:d},{fragment}}}]}}')]
            case BlockStop(block_id=bid, opaque=opaque):
                start, _, texts = self._blocks.pop(bid)
                if start.kind is not BlockKind.REASONING:
                    return []
                block = _thinking_block("".join(texts), opaque, start.redacted)
                if block is None:
                    return []
                self._thinking += 1
                return [self._chunk({"thinking_blocks": [{"index": self._thinking - 1, **block}]})]
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merged(usage)
                return []
            case Finish(stop_reason=reason):
                out = [self._chunk({}, finish_reason=_IR_TO_FINISH[reason])]
                if self._ctx.request is None or self._ctx.request.include_usage:
                    out.append(_data({"id": self._id, "object": "chat.completion.chunk", "created": self._ctx.created,
                                      "model": self._model, "choices": [], "usage": _usage_to_wire(self._usage)}))
                out.append(b"data: [DONE]\n\n")
                return out
            case StreamError():
                err = UpstreamError(event.message, status=event.status, kind=ErrorKind(event.kind))
                return [render_stream_error(err)]
        return []

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> bytes:
        return self._framed(dumps(delta), finish_reason)

    def _framed(self, delta: str, finish_reason: str | None = None) -> bytes:
        """The chunk ``{"id", "object", "created", "model", "choices": [{"index": 0, "delta": <delta JSON>,
        "logprobs": null, "finish_reason"}]}``, its constant head rendered once per id and model."""
        if self._head is None or self._head[0] != (self._id, self._model):
            self._head = ((self._id, self._model),
                          f'{{"id":{json_str(self._id)},"object":"chat.completion.chunk",'
                          f'"created":{dumps(self._ctx.created)},"model":{json_str(self._model)},'
                          '"choices":[{"index":0,"delta":')
        finish = "null" if finish_reason is None else json_str(finish_reason)
        return encode_event(f'{self._head[1]}{delta},"logprobs":null,"finish_reason":{finish}}}]}}')


def _data(obj: JSON) -> bytes:
    return encode_event(dumps(obj))


# --- errors -------------------------------------------------------------------------------------


def _error_from(err: JSON, status: int | None) -> UpstreamError:
    """An OpenAI error object; ``status`` is None for an error inside a 200 stream."""
    code = err.get("code") if isinstance(err.get("code"), str) else None
    wire = _ERROR_KIND.get(code or "") or _ERROR_KIND.get(str(err.get("type")))
    if status is None:
        kind = wire or ErrorKind.API_ERROR
        status = _STATUS_FOR.get(kind, 500)
    elif wire in (None, ErrorKind.INVALID_REQUEST, ErrorKind.API_ERROR):
        kind = kind_for_status(status)  # servers send invalid_request_error on a 401 too: the status wins
    else:
        kind = wire
    return UpstreamError(str(err.get("message") or f"upstream error {status}"), status=status, kind=kind,
                         param=err.get("param") if isinstance(err.get("param"), str) else None, code=code)


_STATUS_FOR = {ErrorKind.INVALID_REQUEST: 400, ErrorKind.AUTHENTICATION: 401, ErrorKind.BILLING: 429,
               ErrorKind.PERMISSION: 403, ErrorKind.NOT_FOUND: 404, ErrorKind.RATE_LIMIT: 429,
               ErrorKind.TIMEOUT: 504, ErrorKind.OVERLOADED: 503}


def parse_error(status: int, body: bytes) -> UpstreamError:
    """An upstream HTTP error response, whatever its body, as an :class:`UpstreamError`."""
    data = json_or_none(body)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return _error_from(data["error"], status)
    return plain_error(status, data, body)


def render_error(err: BridgeError) -> tuple[int, JSON]:
    """Status and body for an error answered before any response byte went to the client."""
    status = 503 if err.status == 529 else err.status  # OpenAI has no 529 (formats.md §7.17)
    code = err.code
    if err.kind is ErrorKind.BILLING:  # OpenAI reports quota as 429 insufficient_quota (formats.md §5.10)
        status, code = 429, "insufficient_quota"
    return status, {"error": {"message": err.message, "type": _ERROR_TYPE[err.kind], "param": err.param,
                              "code": code}}


def render_stream_error(err: BridgeError) -> bytes:
    return _data(render_error(err)[1])


def auth_headers(api_key: str | None, auth: str | None) -> dict[str, str]:
    """The credential header for an OpenAI upstream: Bearer unless ``auth`` says x-api-key."""
    if not api_key:
        return {}
    return {"x-api-key": api_key} if auth == "x-api-key" else {"authorization": f"Bearer {api_key}"}



def passes_through(body: bytes, flavor: str) -> bool:
    """Whether a request already in this format suits a flavoured upstream as is (no flavours here)."""
    return True


def render_models(names: list[str], created: int) -> JSON:
    """``GET /v1/models`` in OpenAI's shape (Chat and Responses clients share it)."""
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "bridge"} for n in names]}
