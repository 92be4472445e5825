"""Chat Completions requests: wire ⇄ IR, and the headers an OpenAI upstream takes."""

from __future__ import annotations

import hashlib
from typing import Any

from ...errors import BadRequest, Unsupported
from ...ir import (
    Document,
    Image,
    Message,
    Opaque,
    Part,
    Reasoning,
    ReasoningConfig,
    Request,
    ResponseFormat,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolKind,
    ToolResult,
)
from ..common import (
    JSON,
    Context,
    as_object,
    auth_header,
    data_url,
    decode_signature,
    dumps,
    field_list,
    field_str,
    flat_tool_name,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_str,
    parse_data_url,
    reasoning_effort,
)
from .wire import NAME, thinking_text, wire_tool_name

AUTH_HEADERS: tuple[str, ...] = ("authorization", "openai-organization", "openai-project")
OWN_HEADERS: tuple[str, ...] = ()
REQUIRED_HEADERS: dict[str, str] = {}
# Request fields the IR carries; any other (logprobs, seed, penalties, store, …) is reported.
_TRANSLATED = {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_completion_tokens",
               "max_tokens", "temperature", "top_p", "stop", "response_format", "reasoning_effort", "stream",
               "stream_options", "safety_identifier", "user", "prompt_cache_key", "prompt_cache_retention", "n"}
_MAX_ID = 40  # Chat tool-call ids longer than 40 chars have been rejected (formats.md §5.5)


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
        cache_retention=opt_str(body, "prompt_cache_retention"),
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
        parts += _parse_parts(content, where, assistant=True) if content is not None else ()
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


def _parse_parts(content: Any, where: str, assistant: bool = False) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(text=content),)
    if not isinstance(content, list):
        raise BadRequest(f"{where}content: expected a string or an array", param=f"{where}content")
    parts = [as_object(p, f"{where}content.{i}") for i, p in enumerate(content)]
    return tuple(Reasoning(text=thinking_text(p), opaque=Opaque(origin=NAME, data=""))
                 if assistant and p.get("type") == "thinking"  # Magistral's history: its thinking as a part
                 else _parse_part(p, f"{where}content.{i}.") for i, p in enumerate(parts))


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
    if req.cache_retention:
        body["prompt_cache_retention"] = req.cache_retention
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


# --- upstream policy: credentials, pass-through, models list --------------------------------------


def auth_headers(api_key: str | None, auth: str | None) -> dict[str, str]:
    """The credential header for an OpenAI upstream: Bearer unless ``auth`` says otherwise."""
    return auth_header(api_key, auth or "bearer")


def passes_through(body: bytes, flavor: str) -> bool:
    """Whether a request already in this format suits a flavoured upstream as is (no flavours here)."""
    return True


def render_models(names: list[str], created: int) -> JSON:
    """``GET /v1/models`` in OpenAI's shape (Chat and Responses clients share it)."""
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "bridge"} for n in names]}
