"""Responses API requests: wire ⇄ IR, and the headers a Responses upstream takes."""

from __future__ import annotations

import mimetypes
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
from .. import chat
from ..chat import wire_tool_name
from ..common import (
    JSON,
    Context,
    as_object,
    data_url,
    decode_signature,
    field_list,
    field_str,
    flat_tool_name,
    is_redacted_signature,
    json_or_none,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_str,
    parse_data_url,
    reasoning_effort,
)
from .wire import NAME, _reasoning_text, _summary

AUTH_HEADERS: tuple[str, ...] = chat.AUTH_HEADERS  # the same OpenAI credentials
OWN_HEADERS: tuple[str, ...] = ()
REQUIRED_HEADERS: dict[str, str] = {}

# Request fields the IR carries (store/include/stream_options are about this API's own state and
# stream); any other (metadata, truncation, client_metadata, …) is reported.
_TRANSLATED = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
               "temperature", "top_p", "text", "reasoning", "stream", "stream_options", "safety_identifier", "user",
               "prompt_cache_key", "prompt_cache_retention", "store", "include"}
_ASSISTANT_ITEMS = {"reasoning", "function_call", "custom_tool_call"}
_OUTPUT_ITEMS = {"function_call_output", "custom_tool_call_output"}
_DEFAULT_INSTRUCTIONS = "You are a helpful assistant."  # the Codex backend refuses a request without any (§6.6)
_ENCRYPTED = "reasoning.encrypted_content"


# --- request: wire → IR -------------------------------------------------------------------------


def parse_request(body: JSON) -> Request:
    """Parse a Responses request. Raises :class:`BadRequest` naming the first invalid field.

    Only runs when translating: a Responses client in front of a Responses upstream is passed through.
    """
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise Unsupported(f"{key}: the upstream is stateless; send the whole conversation in input "
                              "(with store: false)", param=key)
    warnings = [f"{key} has no equivalent and was dropped" for key in body if key not in _TRANSLATED]
    messages, more_tools = _parse_input(body.get("input"), warnings)
    tools = _parse_tools(opt_list(body, "tools"), "tools.", warnings) + more_tools
    instructions = opt_str(body, "instructions")
    text = as_object(body.get("text") or {}, "text")
    warnings += [f"text.{key} has no equivalent and was dropped" for key in text if key != "format"]
    if body.get("store") is True:
        warnings.append("store: the answer is not stored (the upstream is another API)")
    warnings += [f"include {x!r} has no equivalent and was dropped" for x in opt_list(body, "include")
                 if x != _ENCRYPTED]
    reasoning = body.get("reasoning")
    effort = None if reasoning is None else opt_str(as_object(reasoning, "reasoning"), "effort", "reasoning.")
    return Request(
        model=field_str(body, "model", ""),
        messages=tuple(messages),
        system=(Text(text=instructions),) if instructions else (),
        tools=tuple(tools),
        tool_choice=_parse_tool_choice(body.get("tool_choice"), warnings),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        max_tokens=opt_int(body, "max_output_tokens"),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        response_format=_parse_text_format(text.get("format")),
        reasoning=None if reasoning is None else ReasoningConfig(enabled=effort != "none", effort=effort),
        stream=bool(opt_bool(body, "stream")),
        user=opt_str(body, "safety_identifier") or opt_str(body, "user"),
        cache_key=opt_str(body, "prompt_cache_key"),
        cache_retention=opt_str(body, "prompt_cache_retention"),
        warnings=tuple(warnings),
    )


def _parse_input(raw: Any, warnings: list[str]) -> tuple[list[Message], list[Tool]]:
    """The messages, and the tools announced by ``additional_tools`` items (Codex sends them there)."""
    if isinstance(raw, str):
        return [Message(role=Role.USER, content=(Text(text=raw),))], []
    out: list[Message] = []
    tools: list[Tool] = []
    for i, item in enumerate(field_list({"input": raw}, "input", "")):
        item, where = as_object(item, f"input.{i}"), f"input.{i}."
        kind = opt_str(item, "type", where) or "message"  # an "easy" message has no type
        if kind == "message":
            _parse_message(item, where, out)
        elif kind in _ASSISTANT_ITEMS:
            _append(out, Role.ASSISTANT, (_parse_assistant_item(item, kind, where),))
        elif kind in _OUTPUT_ITEMS:
            call_id = field_str(item, "call_id", where)
            _append(out, Role.USER, (ToolResult(call_id=call_id, content=_parse_content(item, "output", where)),))
        elif kind == "additional_tools":
            tools += _parse_tools(field_list(item, "tools", where), f"{where}tools.", warnings)
        else:  # item_reference, local_shell_call, web_search_call, compaction, …
            warnings.append(f"{where}type {kind!r} has no equivalent and was dropped")
    return out, tools


def _append(out: list[Message], role: Role, parts: tuple[Part, ...]) -> None:
    """Consecutive assistant items form one assistant turn; tool outputs (and a user message right
    after them) one user turn, the way chat/request.py merges tool messages."""
    last = out[-1] if out else None
    if last is not None and last.role is role and (
            role is Role.ASSISTANT or any(isinstance(p, ToolResult) for p in last.content)):
        out[-1] = Message(role=role, content=last.content + parts)
    else:
        out.append(Message(role=role, content=parts))


def _parse_message(item: JSON, where: str, out: list[Message]) -> None:
    role = item.get("role")
    parts = _parse_content(item, "content", where)
    if role in ("system", "developer"):
        out.append(Message(role=Role.SYSTEM, content=parts))
    elif role in ("user", "assistant"):
        _append(out, Role(role), parts)
    else:
        raise BadRequest(f"{where}role: expected user, assistant, system or developer", param=f"{where}role")


def _parse_content(item: JSON, key: str, where: str) -> tuple[Text | Image | Document, ...]:
    """A message's content or a tool output: a string or a list of parts."""
    content = item.get(key)
    if isinstance(content, str):
        return (Text(text=content),)
    if content is not None and not isinstance(content, list):
        raise BadRequest(f"{where}{key}: expected a string or an array", param=f"{where}{key}")
    return tuple(_parse_part(as_object(p, f"{where}{key}.{i}"), f"{where}{key}.{i}.")
                 for i, p in enumerate(content or ()))


def _parse_part(part: JSON, where: str) -> Text | Image | Document:
    kind = part.get("type")
    if kind in ("input_image", "input_file") and part.get("file_id") is not None:
        raise Unsupported(f"{where}file_id: files uploaded to OpenAI cannot be sent to another API",
                          param=f"{where}file_id")
    match kind:
        case "input_text" | "output_text":
            return Text(text=field_str(part, "text", where))
        case "refusal":
            return Text(text=field_str(part, "refusal", where))
        case "input_image":
            url, detail = field_str(part, "image_url", where), opt_str(part, "detail", where)
            detail = None if detail == "auto" else detail  # the default: rendered back as "auto"
            media_type, data = parse_data_url(url) or (None, None)
            return Image(url=None if data else url, media_type=media_type, data=data, detail=detail)
        case "input_file":
            return _parse_file(part, where)
    raise BadRequest(f"{where}type: unknown content part type {kind!r}", param=f"{where}type")


def _parse_file(part: JSON, where: str) -> Document:
    filename = opt_str(part, "filename", where)
    if part.get("file_url") is not None:
        return Document(url=field_str(part, "file_url", where), title=filename)
    file_data = field_str(part, "file_data", where)
    parsed = parse_data_url(file_data)
    if parsed:
        return Document(media_type=parsed[0], data=parsed[1], title=filename)
    guessed = mimetypes.guess_type(filename or "")[0]  # bare base64: the file name tells the type
    return Document(media_type=guessed or "application/pdf", data=file_data, title=filename)


def _parse_assistant_item(item: JSON, kind: str, where: str) -> ToolCall | Reasoning:
    namespace = opt_str(item, "namespace", where)
    if kind == "function_call":
        return ToolCall(id=field_str(item, "call_id", where), name=field_str(item, "name", where),
                        arguments=opt_str(item, "arguments", where) or "", namespace=namespace)
    if kind == "custom_tool_call":
        return ToolCall(id=field_str(item, "call_id", where), name=field_str(item, "name", where),
                        arguments=opt_str(item, "input", where) or "", kind=ToolKind.CUSTOM, namespace=namespace)
    encrypted = opt_str(item, "encrypted_content", where) or ""
    # decode_signature: a bridge envelope (say an Anthropic signature handed to this client) goes
    # back to its origin; anything else is this API's own blob.
    return Reasoning(text=_reasoning_text(item), opaque=decode_signature(encrypted, NAME),
                     redacted=is_redacted_signature(encrypted))


def _parse_tools(raw: list[Any], where: str, warnings: list[str], namespace: str | None = None) -> list[Tool]:
    tools: list[Tool] = []
    for i, entry in enumerate(raw):
        tool, here = as_object(entry, f"{where}{i}"), f"{where}{i}."
        match tool.get("type"):
            case "function":
                params = tool.get("parameters")
                tools.append(Tool(name=field_str(tool, "name", here), description=opt_str(tool, "description", here),
                                  parameters=as_object(params, f"{here}parameters") if params is not None else None,
                                  strict=opt_bool(tool, "strict", here), namespace=namespace))
            case "custom":
                tools.append(Tool(name=field_str(tool, "name", here), description=_custom_description(tool, here),
                                  kind=ToolKind.CUSTOM, namespace=namespace))
            case "namespace" if namespace is None:
                inner = field_str(tool, "name", here)
                tools += _parse_tools(field_list(tool, "tools", here), f"{here}tools.", warnings, inner)
            case other:  # web_search, file_search, local_shell, mcp, tool_search, …
                warnings.append(f"{here}type {other!r}: hosted tools have no equivalent and were dropped")
    return tools


def _custom_description(tool: JSON, where: str) -> str | None:
    """A grammar cannot be enforced by another API: the model reads it instead (as chat/request.py does)."""
    description = opt_str(tool, "description", where) or ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and fmt.get("definition"):
        description += f"\n\nThe input must match this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
    return description or None


def _parse_tool_choice(raw: Any, warnings: list[str]) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "required", "none"):
        return ToolChoice(mode=raw)
    if isinstance(raw, str):
        raise BadRequest("tool_choice: expected auto, required, none or an object", param="tool_choice")
    choice = as_object(raw, "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        return ToolChoice(mode="tool", name=field_str(choice, "name", "tool_choice."))
    if kind == "allowed_tools":
        return ToolChoice(mode="required" if choice.get("mode") == "required" else "auto")
    warnings.append(f"tool_choice {kind!r}: hosted tools have no equivalent; auto used instead")
    return ToolChoice(mode="auto")


def _parse_text_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = as_object(raw, "text.format")
    kind = fmt.get("type")
    if kind == "json_schema":  # flat here, unlike Chat's nested json_schema (§3.1)
        schema = fmt.get("schema")
        return ResponseFormat(type=kind, name=opt_str(fmt, "name", "text.format."),
                              schema=as_object(schema, "text.format.schema") if schema is not None else None,
                              strict=opt_bool(fmt, "strict", "text.format."),
                              description=opt_str(fmt, "description", "text.format."))
    if kind in ("text", "json_object"):
        return None if kind == "text" else ResponseFormat(type=kind)
    raise BadRequest("text.format.type: expected text, json_object or json_schema", param="text.format.type")


# --- request: IR → wire -------------------------------------------------------------------------


def render_request(req: Request, ctx: Context) -> JSON:
    """Render an IR request for a Responses upstream; ``ctx.warnings`` collects what was lost."""
    codex = ctx.flavor == "codex"
    body: JSON = {"model": req.model}
    instructions = "\n\n".join(p.text for p in req.system if p.text)
    if instructions or codex:
        body["instructions"] = instructions or _DEFAULT_INSTRUCTIONS
    body["input"] = _render_input(req, ctx)
    if req.tools:
        body["tools"] = [_render_tool(t) for t in req.tools]
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.tool_choice and (req.tools or req.tool_choice.mode == "none"):
        body["tool_choice"] = _render_tool_choice(req.tool_choice, req.tools)
    _render_sampling(req, body, ctx, codex)
    if req.response_format:
        body["text"] = {"format": _render_text_format(req.response_format)}
    cfg = req.reasoning
    effort = "none" if cfg and cfg.effort == "none" else reasoning_effort(cfg)  # "none": this API's own word
    if effort:
        body["reasoning"] = {"effort": effort}
    if codex or (cfg and cfg.enabled):
        body["include"] = [_ENCRYPTED]  # without it, store:false reasoning cannot be sent back (§5.7)
    if req.user and len(req.user) <= 128 and not codex:
        body["safety_identifier"] = req.user
    elif req.user:
        ctx.warnings.append("user dropped: " + ("the Codex backend takes no safety_identifier" if codex
                                                else "safety_identifier is limited to 128 characters"))
    if req.cache_key:
        body["prompt_cache_key"] = req.cache_key
    if req.cache_retention and not codex:  # the Codex CLI never sends it to its backend: neither does the bridge
        body["prompt_cache_retention"] = req.cache_retention
    elif req.cache_retention:
        ctx.warnings.append("prompt_cache_retention not sent to the Codex backend")
    body["store"] = False  # the API stores by default: a privacy problem, and refused by Codex (§7.23)
    if req.stream or codex:
        body["stream"] = True  # Codex refuses anything else; the addon folds it for a non-streaming client
    return body


def _render_sampling(req: Request, body: JSON, ctx: Context, codex: bool) -> None:
    if req.stop:
        ctx.warnings.append("stop sequences have no Responses equivalent and were dropped")
    if req.top_k is not None:
        ctx.warnings.append("top_k has no Responses equivalent and was dropped")
    settings = {"max_output_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p}
    for key, value in settings.items():
        if value is None:
            continue
        if codex:  # "Unsupported parameter" from the ChatGPT backend (§6.6)
            ctx.warnings.append(f"{key} dropped: the Codex backend does not accept it")
        else:
            body[key] = value


def _render_input(req: Request, ctx: Context) -> list[JSON]:
    custom_calls = {p.id for m in req.messages for p in m.content
                    if isinstance(p, ToolCall) and p.kind is ToolKind.CUSTOM}
    items: list[JSON] = []
    for msg in req.messages:
        if msg.role is Role.SYSTEM:
            texts = [{"type": "input_text", "text": p.text} for p in msg.content if isinstance(p, Text) and p.text]
            if texts:
                items.append({"type": "message", "role": "developer", "content": texts})
        elif msg.role is Role.ASSISTANT:
            items += _render_assistant(msg, ctx)
        else:
            items += _render_user(msg, custom_calls)
    return items


def _render_user(msg: Message, custom_calls: set[str]) -> list[JSON]:
    # Tool outputs first, next to the calls they answer; the rest follows as one user message.
    items: list[JSON] = []
    parts: list[JSON] = []
    for part in msg.content:
        if isinstance(part, ToolResult):
            kind = "custom_tool_call_output" if part.call_id in custom_calls else "function_call_output"
            items.append({"type": kind, "call_id": part.call_id, "output": _tool_output(part)})
        elif isinstance(part, Text | Image | Document) and (wire := _input_part(part)):
            parts.append(wire)
    if parts:
        items.append({"type": "message", "role": "user", "content": parts})
    return items


def _tool_output(result: ToolResult) -> str | list[JSON]:
    """Text only → a string (what every Responses server takes); with media → input parts."""
    prefix = "Error: " if result.is_error else ""  # Responses has no is_error (formats.md §5.5)
    if all(isinstance(p, Text) for p in result.content):
        return prefix + "\n".join(p.text for p in result.content if isinstance(p, Text))
    parts = [w for p in result.content if (w := _input_part(p))]
    if prefix and parts and parts[0]["type"] == "input_text":
        parts[0] = {**parts[0], "text": prefix + parts[0]["text"]}
    elif prefix:
        parts.insert(0, {"type": "input_text", "text": prefix.strip()})
    return parts


def _input_part(part: Text | Image | Document) -> JSON | None:
    match part:
        case Text(text=text):
            return {"type": "input_text", "text": text} if text else None
        case Image(url=url, media_type=media_type, data=data, detail=detail):
            image = url if data is None else data_url(media_type or "image/png", data)
            return {"type": "input_image", "image_url": image, "detail": detail or "auto"}
        case Document(text=str() as text):
            return {"type": "input_text", "text": text}
        case Document(data=str() as data, media_type=media_type, title=title):
            return {"type": "input_file", "file_data": data_url(media_type or "application/pdf", data),
                    "filename": title or "document.pdf"}
        case Document(url=url, title=title):
            return {"type": "input_file", "file_url": url, **({"filename": title} if title else {})}
    return None


def _render_assistant(msg: Message, ctx: Context) -> list[JSON]:
    items: list[JSON] = []
    for part in msg.content:
        match part:
            case Text(text=text) if text:
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text, "annotations": []}]})
            case ToolCall(id=call_id, name=name, arguments=args, kind=kind, namespace=namespace):
                name = wire_tool_name(flat_tool_name(namespace, name))
                items.append({"type": "custom_tool_call", "call_id": call_id, "name": name, "input": args}
                             if kind is ToolKind.CUSTOM else
                             {"type": "function_call", "call_id": call_id, "name": name, "arguments": args})
            case Reasoning(text=text, opaque=Opaque(origin=origin, data=data)) if origin == NAME and data:
                items.append({"type": "reasoning", "summary": _summary(text), "encrypted_content": data})
            case Reasoning():  # never send one vendor's blob to another (formats.md §5.7)
                ctx.warnings.append("reasoning dropped: it carries no Responses encrypted_content")
    return items


def _render_tool(tool: Tool) -> JSON:
    name = wire_tool_name(flat_tool_name(tool.namespace, tool.name))
    wire: JSON = {"type": "custom" if tool.kind is ToolKind.CUSTOM else "function", "name": name}
    if tool.description:
        wire["description"] = tool.description
    if tool.kind is ToolKind.FUNCTION:  # a custom tool's grammar, if any, is already in its description
        wire["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        wire["strict"] = tool.strict or False  # required key; Codex sends false too (§3.3)
    return wire


def _render_tool_choice(choice: ToolChoice, tools: tuple[Tool, ...]) -> str | JSON:
    if choice.mode != "tool":
        return choice.mode
    tool = next((t for t in tools if choice.name in (t.name, flat_tool_name(t.namespace, t.name))), None)
    if tool is None:
        return {"type": "function", "name": wire_tool_name(choice.name or "")}
    return {"type": "custom" if tool.kind is ToolKind.CUSTOM else "function",
            "name": wire_tool_name(flat_tool_name(tool.namespace, tool.name))}


def _render_text_format(fmt: ResponseFormat) -> JSON:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    wire: JSON = {"type": "json_schema", "name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        wire["strict"] = fmt.strict
    if fmt.description:
        wire["description"] = fmt.description
    return wire


# --- upstream policy: what may pass through to the Codex backend ----------------------------------


_CODEX_REFUSES = ("max_output_tokens", "temperature", "top_p")


def passes_through(body: bytes, flavor: str) -> bool:
    """Whether a Responses request already keeps the Codex backend's rules (§6.6) and can go as is.

    The Codex CLI's own requests do; a plain SDK client's usually do not (store defaults to true),
    and is then translated: streamed upstream, folded for it when it did not ask for a stream.
    """
    if flavor != "codex":
        return True
    data = json_or_none(body)
    return (isinstance(data, dict) and data.get("store") is False and data.get("stream") is True
            and bool(data.get("instructions")) and not any(key in data for key in _CODEX_REFUSES))
