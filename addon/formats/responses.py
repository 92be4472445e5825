"""OpenAI Responses ⇄ IR: requests, response objects, stream events and errors.

Wire reference: formats.md §3 (items, tools), §4.4 (stream grammar, SDK checks), §5 (mappings), §6 (Codex).

Theory of operation: an answer is a list of output items (message, reasoning, function_call,
custom_tool_call), each streamed as ``output_item.added`` → deltas → ``output_item.done``; the IR has
one block per item (a message's opens at its first text). :class:`StreamParser` takes from ``.done``
whatever the deltas did not carry, and a terminal event emits whole any item of its ``output`` the
stream never announced: so :func:`response_events` is the parser fed one terminal event, not a second
path. :class:`StreamEmitter` and :func:`render_response` build items with the same helpers, and the
terminal event carries the full ``output`` (the SDK uses it as is; Codex keeps ``.done`` items only).
The ChatGPT Codex backend (``ctx.flavor == "codex"``) adds rules (§6.6): always streamed, never stored,
``instructions`` present, no sampling or token limits.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
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
from . import chat
from .chat import auth_headers, render_models, wire_tool_name
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
    is_redacted_signature,
    json_or_none,
    json_str,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_str,
    parse_data_url,
    reasoning_effort,
    tool_lookup,
)

__all__ = [
    "NAME", "ANSWER_MARK", "STREAM_MARK", "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
]

NAME = "responses"
# A key and value that only this format's answers carry: its whole answer, and its stream's first event
# (how a replayed answer already in the client's format is told from an upstream one).
ANSWER_MARK = ("object", "response")
STREAM_MARK = ("type", "response.created")
AUTH_HEADERS: tuple[str, ...] = chat.AUTH_HEADERS  # the same OpenAI credentials
OWN_HEADERS: tuple[str, ...] = ()
REQUIRED_HEADERS: dict[str, str] = {}

# Request fields the IR carries (store/include/stream_options are about this API's own state and
# stream); any other (metadata, truncation, client_metadata, …) is reported.
_TRANSLATED = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
               "temperature", "top_p", "text", "reasoning", "stream", "stream_options", "safety_identifier", "user",
               "prompt_cache_key", "store", "include"}
_ASSISTANT_ITEMS = {"reasoning", "function_call", "custom_tool_call"}
_OUTPUT_ITEMS = {"function_call_output", "custom_tool_call_output"}
_DEFAULT_INSTRUCTIONS = "You are a helpful assistant."  # the Codex backend refuses a request without any (§6.6)
_DECLINED = "The model declined to respond."
_ENCRYPTED = "reasoning.encrypted_content"

# formats.md §5.8: a Responses answer ends completed or incomplete; the IR reason decides which.
_INCOMPLETE_TO_IR = {"max_output_tokens": StopReason.MAX_TOKENS, "content_filter": StopReason.REFUSAL}
_INCOMPLETE = {StopReason.MAX_TOKENS, StopReason.CONTEXT_EXCEEDED}
_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
# formats.md §3.4 / §6.5: response.error.code ↔ kind and the status it implies.
_CODE_TO_KIND = {
    "rate_limit_exceeded": (ErrorKind.RATE_LIMIT, 429), "server_is_overloaded": (ErrorKind.OVERLOADED, 503),
    "slow_down": (ErrorKind.OVERLOADED, 503), "context_length_exceeded": (ErrorKind.INVALID_REQUEST, 400),
    "invalid_prompt": (ErrorKind.INVALID_REQUEST, 400), "insufficient_quota": (ErrorKind.BILLING, 429),
}
_KIND_TO_CODE = {ErrorKind.RATE_LIMIT: "rate_limit_exceeded", ErrorKind.OVERLOADED: "server_is_overloaded",
                 ErrorKind.INVALID_REQUEST: "invalid_prompt", ErrorKind.BILLING: "insufficient_quota"}
_ITEM_PREFIX = {BlockKind.TEXT: "msg_", BlockKind.REASONING: "rs_", BlockKind.TOOL_CALL: "fc_"}


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
    after them) one user turn, the way chat.py merges tool messages."""
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


def _reasoning_text(item: JSON) -> str:
    """Summary texts joined (what the stream parser also produces), else the raw reasoning text."""
    summary = [s.get("text", "") for s in item.get("summary") or () if isinstance(s, dict)] \
        if isinstance(item.get("summary"), list) else []
    if summary:
        return "\n\n".join(summary)
    return "\n\n".join(c.get("text", "") for c in item.get("content") or () if isinstance(c, dict))


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
    """A grammar cannot be enforced by another API: the model reads it instead (as chat.py does)."""
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


# --- output items: one set of builders for the emitter and render_response ------------------------


def _summary(text: str) -> list[JSON]:
    return [{"type": "summary_text", "text": text}] if text else []


def _output_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None, status: str = "completed") -> JSON:
    """Refusals stay output_text: a refusal part makes Codex drop the whole message (§6.4)."""
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [] if text is None else [_output_text(text)]}


def _reasoning_item(item_id: str, text: str, opaque: Opaque | None, redacted: bool) -> JSON:
    item: JSON = {"id": item_id, "type": "reasoning", "summary": _summary(text)}
    if redacted:  # an envelope that remembers it, so the client's echo becomes redacted_thinking again
        item["encrypted_content"] = encode_signature(opaque, redacted=True)
    elif opaque is not None and opaque.origin == NAME:
        if opaque.data:
            item["encrypted_content"] = opaque.data
    elif opaque is not None:  # e.g. Claude's thinking signature: Codex echoes it back verbatim (§5.7)
        item["encrypted_content"] = encode_signature(opaque)
    return item


def _call_item(item_id: str, call_id: str, kind: ToolKind, name: str, namespace: str | None, arguments: str,
               status: str) -> JSON:
    if kind is ToolKind.CUSTOM:
        item: JSON = {"id": item_id, "type": "custom_tool_call", "call_id": call_id, "name": name, "input": arguments}
    else:
        item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
                "status": status}
    if namespace:
        item["namespace"] = namespace
    return item


def _usage_to_wire(usage: Usage) -> JSON:
    """Responses input_tokens include cached tokens; the IR's do not (formats.md §5.9)."""
    total_in, out = usage.total_input, usage.output_tokens or 0
    return {"input_tokens": total_in,
            "input_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0,
                                     "cache_write_tokens": usage.cache_write_tokens or 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
            "total_tokens": total_in + out}


def _response_object(resp_id: str, model: str, ctx: Context, status: str, output: list[JSON],
                     usage: Usage | None = None) -> JSON:
    """A Response; the keys the SDK types require are all present (§3.4)."""
    request = ctx.request
    return {"id": resp_id, "object": "response", "created_at": ctx.created, "status": status,
            "model": ctx.client_model or model, "output": output, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "parallel_tool_calls": request.parallel_tool_calls is not False if request else True,
            "tool_choice": "auto", "tools": [], "usage": None if usage is None else _usage_to_wire(usage)}


def _response_id(upstream_id: str, ctx: Context) -> str:
    return upstream_id if upstream_id.startswith("resp_") else ctx.new_id("resp_")


def _status(reason: StopReason) -> str:
    return "incomplete" if reason in _INCOMPLETE else "completed"


def render_response(resp: Response, ctx: Context) -> JSON:
    output: list[JSON] = []
    for part in resp.content:
        match part:
            case Text(text=text):
                output.append(_message_item(ctx.new_id("msg_"), text))
            case Reasoning(text=text, opaque=opaque, redacted=redacted):
                output.append(_reasoning_item(ctx.new_id("rs_"), text, opaque, redacted))
            case ToolCall(id=call_id, name=name, arguments=args, kind=kind, namespace=namespace):
                prefix = "ctc_" if kind is ToolKind.CUSTOM else "fc_"
                output.append(_call_item(ctx.new_id(prefix), call_id, kind, name, namespace, args, "completed"))
    if resp.stop_reason is StopReason.REFUSAL and not any(isinstance(p, Text) and p.text for p in resp.content):
        output.append(_message_item(ctx.new_id("msg_"), _DECLINED))
    return _response_object(_response_id(resp.id, ctx), resp.model, ctx, _status(resp.stop_reason), output,
                            resp.usage)


# --- response: wire → IR ------------------------------------------------------------------------


def _usage_to_ir(usage: JSON) -> Usage:
    total = usage.get("input_tokens")
    details = usage.get("input_tokens_details") or {}
    cached, written = details.get("cached_tokens"), details.get("cache_write_tokens")
    fresh = None if total is None else max(total - (cached or 0) - (written or 0), 0)
    return Usage(input_tokens=fresh, output_tokens=usage.get("output_tokens"), cache_read_tokens=cached,
                 cache_write_tokens=written,
                 reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens"))


def _stream_error(err: JSON, status: Any = None) -> StreamError:
    """``response.error`` or an ``error`` event; a websocket-style error also carries its status."""
    code = err.get("code") if isinstance(err.get("code"), str) else err.get("type")
    kind, default_status = _CODE_TO_KIND.get(str(code), (ErrorKind.API_ERROR, 500))
    if isinstance(status, int) and code not in _CODE_TO_KIND:
        kind, default_status = kind_for_status(status), status
    message = err.get("message") or f"upstream response failed ({code or 'no code'})"
    return StreamError(status=default_status, kind=kind.value, message=str(message))


def response_events(body: JSON, ctx: Context) -> list[Event]:
    """A non-streamed Response as the IR events its stream would have produced.

    Its terminal event alone carries the same object, and the parser emits every output item the
    stream did not announce: so this is the stream parser's own path, not a second one.
    """
    status = body.get("status") or "completed"
    if status not in _TERMINAL:
        raise UpstreamProtocolError(f"upstream response has status {status!r}, not a finished one")
    parser = StreamParser(ctx)
    return parser.data_events({"type": _TERMINAL[status], "response": body}) + parser.close()


@dataclass(slots=True)
class _Item:
    """The upstream output item between its added and done events."""

    index: int
    type: str
    block_id: int | None = None  # a message opens its block at its first text
    streamed: bool = False  # deltas carried the content; else it comes whole in .done
    part: tuple[str, Any] | None = None  # reasoning: (summary | content, index) of the last delta
    unwrap: InputUnwrapper | None = None  # a client's freeform tool called as a function


# delta event → (item type it belongs to, reasoning source, the field naming the part)
_DELTAS = {
    "response.output_text.delta": ("message", "", ""),
    "response.refusal.delta": ("message", "", ""),  # a refusal is text to every other format
    "response.reasoning_summary_text.delta": ("reasoning", "summary", "summary_index"),
    "response.reasoning_text.delta": ("reasoning", "content", "content_index"),
    "response.function_call_arguments.delta": ("function_call", "", ""),
    "response.custom_tool_call_input.delta": ("custom_tool_call", "", ""),
}


class StreamParser:
    """Responses SSE events → IR events, dispatched on the JSON ``type`` (``event:`` lines optional).

    Events before ``response.created`` (the Codex backend's ``codex.rate_limits``), ``keepalive``
    and types the IR has no use for are ignored; items the IR cannot carry (web_search_call, …) are
    skipped with a warning. A stream that ends without a terminal event is a protocol error.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tools = tool_lookup(ctx, wire_tool_name)  # upstream names are the rendered ones
        self._started = False
        self._done = False
        self._next_id = 0
        self._item: _Item | None = None
        self._seen: set[int] = set()  # output indexes already announced or skipped
        self._seen_ids: set[str] = set()
        self._tool_use = False

    def feed(self, sse: SSEEvent) -> list[Event]:
        if self._done or sse.data.strip() == "[DONE]":  # [DONE] is not Responses; some servers send it
            return []
        return self.data_events(event_json(sse.data))

    def close(self) -> list[Event]:
        if not self._done:
            raise UpstreamProtocolError("upstream Responses stream ended before response.completed")
        return []

    def data_events(self, data: JSON) -> list[Event]:
        """The IR events for one decoded event object."""
        if self._done:
            return []
        kind = data.get("type")
        response = _object(data.get("response"))
        if kind == "error":
            self._done = True
            inner = data.get("error")
            return [_stream_error(inner if isinstance(inner, dict) else data, data.get("status"))]
        if kind == "response.failed":
            self._done = True
            return [_stream_error(response.get("error") or {})]
        if kind in ("response.completed", "response.incomplete"):
            return self._terminal(kind, response)
        if kind == "response.created":
            return self._start(response)
        if not self._started:
            return []
        index = data.get("output_index")
        if kind == "response.output_item.added":
            return self._item_added(index, _object(data.get("item")))
        if kind == "response.output_item.done":
            return self._item_done(index, _object(data.get("item")))
        if kind in _DELTAS:
            return self._delta(index, data, *_DELTAS[kind])
        return []  # in_progress, content_part.*, *.done of parts, keepalive, hosted-tool events

    def _start(self, response: JSON) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [MessageStart(id=str(response.get("id", "")), model=str(response.get("model", "")))]

    def _item_added(self, index: Any, wire: JSON) -> list[Event]:
        if self._item is not None:
            raise UpstreamProtocolError(f"upstream started output item {index} before item {self._item.index} "
                                        "was done; the bridge follows one item at a time")
        self._seen.add(index)
        if isinstance(wire.get("id"), str):
            self._seen_ids.add(wire["id"])
        kind = str(wire.get("type"))
        if kind not in ("message", "reasoning", "function_call", "custom_tool_call"):
            self._ctx.warnings.append(f"upstream output item {kind!r} has no equivalent and was dropped")
            return []
        self._item = item = _Item(index=index, type=kind)
        if kind == "message":
            return []
        if kind == "reasoning":
            return [self._open(item, BlockStart(block_id=self._next_id, kind=BlockKind.REASONING))]
        self._tool_use = True
        return [self._open(item, self._tool_start(wire, item))]

    def _tool_start(self, wire: JSON, item: _Item) -> BlockStart:
        name = str(wire.get("name", ""))
        namespace = wire.get("namespace") if isinstance(wire.get("namespace"), str) else None
        tool = self._tools.get(wire_tool_name(flat_tool_name(namespace, name)) if namespace else name)
        if item.type == "custom_tool_call":
            kind = ToolKind.CUSTOM
        else:
            kind = tool.kind if tool else ToolKind.FUNCTION
            if kind is ToolKind.CUSTOM:  # the client's freeform tool, called with {"input": "…"}
                item.unwrap = InputUnwrapper()
        return BlockStart(block_id=self._next_id, kind=BlockKind.TOOL_CALL,
                          tool_call_id=str(wire.get("call_id") or self._ctx.new_id("call_")),
                          tool_name=tool.name if tool else name, tool_kind=kind,
                          tool_namespace=tool.namespace if tool else namespace)

    def _open(self, item: _Item, start: BlockStart) -> BlockStart:
        item.block_id = start.block_id
        self._next_id += 1
        return start

    def _delta(self, index: Any, data: JSON, item_type: str, source: str, part_key: str) -> list[Event]:
        item = self._item
        text = data.get("delta")
        if item is None or item.index != index or item.type != item_type or not isinstance(text, str) or not text:
            return []
        if item_type == "reasoning":
            part = (source, data.get(part_key))
            if item.part is not None and item.part[0] != source:
                return []  # summary and raw reasoning text: the first one wins
            if item.part is not None and item.part != part:
                text = "\n\n" + text  # summary parts are paragraphs (what _reasoning_text joins with)
            item.part = part
        item.streamed = True
        return self._content(item, text)

    def _content(self, item: _Item, text: str) -> list[Event]:
        events: list[Event] = []
        if item.block_id is None:  # a message's first text
            events.append(self._open(item, BlockStart(block_id=self._next_id, kind=BlockKind.TEXT)))
        if item.unwrap is not None:
            text = item.unwrap.feed(text)
        if text:
            events.append(BlockDelta(block_id=item.block_id, text=text))  # type: ignore[arg-type]
        return events

    def _item_done(self, index: Any, wire: JSON) -> list[Event]:
        events: list[Event] = []
        if self._item is None or self._item.index != index:
            if index in self._seen:
                return []  # an item that was skipped at its start
            events = self._item_added(index, wire)  # a done without its added: the item comes whole
        item, self._item = self._item, None
        if item is None:
            return events
        if not item.streamed:
            rest = _item_content({"type": item.type, **wire})
            if rest:
                events += self._content(item, rest)
        if item.unwrap is not None and (tail := item.unwrap.close()):
            events.append(BlockDelta(block_id=item.block_id, text=tail))  # type: ignore[arg-type]
        if item.block_id is None:
            return events  # a message with no text
        opaque = None
        if item.type == "reasoning":  # encrypted_content is complete only in .done (formats.md §7.22)
            opaque = decode_signature(str(wire.get("encrypted_content") or ""), NAME)
        return [*events, BlockStop(block_id=item.block_id, opaque=opaque)]

    def _terminal(self, kind: str, response: JSON) -> list[Event]:
        events = self._start(response)
        output = [o for o in response.get("output") or () if isinstance(o, dict)]
        if self._item is not None:  # the upstream skipped output_item.done: finish with what is known
            index = self._item.index
            events += self._item_done(index, output[index] if isinstance(index, int) and index < len(output) else {})
        for index, wire in enumerate(output):  # items the stream never announced (a whole body)
            if index not in self._seen and wire.get("id") not in self._seen_ids:
                events += self._item_done(index, wire)
        if isinstance(response.get("usage"), dict):
            events.append(UsageUpdate(usage=_usage_to_ir(response["usage"])))
        self._done = True
        if kind == "response.completed":
            reason = StopReason.TOOL_USE if self._tool_use else StopReason.END_TURN
            return [*events, Finish(stop_reason=reason, raw_stop_reason="completed")]
        raw = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
        return [*events, Finish(stop_reason=_INCOMPLETE_TO_IR.get(raw, StopReason.OTHER), raw_stop_reason=raw)]


def _object(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _item_content(wire: JSON) -> str:
    """What a complete item holds as IR text: its message text, reasoning or call arguments."""
    match wire.get("type"):
        case "message":
            return "".join(str(p.get("text") or p.get("refusal") or "") for p in wire.get("content") or ()
                           if isinstance(p, dict))
        case "reasoning":
            return _reasoning_text(wire)
        case "function_call":
            return str(wire.get("arguments") or "{}")  # a call without arguments means {}
        case "custom_tool_call":
            return str(wire.get("input") or "")
    return ""


# --- stream: IR → wire --------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenItem:
    index: int  # output_index
    item_id: str
    start: BlockStart
    texts: list[str] = field(default_factory=list)
    part_open: bool = False  # reasoning: its summary part was announced


class StreamEmitter:
    """IR events → Responses SSE, in the grammar the SDK's ``responses.stream`` helper and Codex accept.

    Every event has an ``event:`` line equal to its ``type`` and a ``sequence_number`` from 0. Each
    block is one output item with the next ``output_index``; its ``output_item.done`` carries the
    complete item, and the terminal event the full ``output`` (formats.md §4.4, §6.5).
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._seq = 0
        self._id: str | None = None
        self._model = ""
        self._open: dict[int, _OpenItem] = {}
        self._output: list[JSON] = []  # done items, in order
        self._usage = Usage()
        self._text_seen = False
        self._ended = False

    def feed(self, event: Event) -> list[bytes]:
        if self._ended:
            return []
        match event:
            case MessageStart(id=id_, model=model, usage=usage):
                self._usage = self._usage.merged(usage)
                return self._start(id_, model)
            case BlockStart():
                return self._open_item(event)
            case BlockDelta(block_id=bid, text=text):
                return self._delta(self._open[bid], text)
            case BlockStop(block_id=bid, opaque=opaque):
                return self._close_item(self._open.pop(bid), opaque)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merged(usage)
                return []
            case Finish(stop_reason=reason):
                return self._finish(reason)
            case StreamError():
                return self._fail(event)
        return []

    def _event(self, type_: str, **fields: Any) -> bytes:
        data = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_event(dumps(data), type_)

    def _response(self, status: str, output: list[JSON], usage: Usage | None = None) -> JSON:
        return _response_object(self._id or "", self._model, self._ctx, status, output, usage)

    def _start(self, upstream_id: str, model: str) -> list[bytes]:
        if self._id is not None:
            return []
        self._id, self._model = _response_id(upstream_id, self._ctx), model
        return [self._event("response.created", response=self._response("in_progress", [])),
                self._event("response.in_progress", response=self._response("in_progress", []))]

    def _open_item(self, start: BlockStart) -> list[bytes]:
        out = self._start("", "")
        custom = start.tool_kind is ToolKind.CUSTOM
        item = _OpenItem(index=len(self._output) + len(self._open), start=start,
                         item_id=self._ctx.new_id("ctc_" if custom else _ITEM_PREFIX[start.kind]))
        self._open[start.block_id] = item
        if start.kind is BlockKind.TEXT:
            wire = _message_item(item.item_id, None, "in_progress")
        elif start.kind is BlockKind.REASONING:
            wire = _reasoning_item(item.item_id, "", None, False)
        else:
            wire = _call_item(item.item_id, start.tool_call_id or "", start.tool_kind, start.tool_name or "",
                              start.tool_namespace, "", "in_progress")
        out.append(self._event("response.output_item.added", output_index=item.index, item=wire))
        if start.kind is BlockKind.TEXT:
            out.append(self._event("response.content_part.added", item_id=item.item_id, output_index=item.index,
                                   content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
        return out

    def _delta_event(self, type_: str, item: _OpenItem, middle: str, text: str, tail: str = "") -> bytes:
        """``self._event(type_, item_id=…, output_index=…, <middle>, delta=text, <tail>)`` byte for byte,
        from a template: deltas are nearly every event, and building and encoding their dicts cost more
        than the rest of their translation."""
        seq = self._seq
        self._seq += 1
        return encode_event(f'{{"type":"{type_}","sequence_number":{seq:d},"item_id":{json_str(item.item_id)},'
                            f'"output_index":{item.index:d}{middle},"delta":{json_str(text)}{tail}}}', type_)

    def _delta(self, item: _OpenItem, text: str) -> list[bytes]:
        kind = item.start.kind
        if not text and kind is not BlockKind.TEXT:
            return []
        item.texts.append(text)
        if kind is BlockKind.TEXT:
            self._text_seen = self._text_seen or bool(text)
            return [self._delta_event("response.output_text.delta", item, ',"content_index":0', text,
                                      ',"logprobs":[]')]
        if kind is BlockKind.REASONING:
            out = []
            if not item.part_open:  # opened at the first text, so a block without text has no summary
                item.part_open = True
                out.append(self._event("response.reasoning_summary_part.added", item_id=item.item_id,
                                       output_index=item.index, summary_index=0,
                                       part={"type": "summary_text", "text": ""}))
            out.append(self._delta_event("response.reasoning_summary_text.delta", item, ',"summary_index":0', text))
            return out
        if item.start.tool_kind is ToolKind.CUSTOM:
            return [self._delta_event("response.custom_tool_call_input.delta", item, "", text)]
        return [self._delta_event("response.function_call_arguments.delta", item, "", text)]

    def _close_item(self, item: _OpenItem, opaque: Opaque | None) -> list[bytes]:
        where = {"item_id": item.item_id, "output_index": item.index}
        text, start = "".join(item.texts), item.start
        out: list[bytes] = []
        if start.kind is BlockKind.TEXT:
            out.append(self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", **where, content_index=0, part=_output_text(text)))
            wire = _message_item(item.item_id, text)
        elif start.kind is BlockKind.REASONING:
            if item.part_open:
                out.append(self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text))
                out.append(self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                                       part={"type": "summary_text", "text": text}))
            wire = _reasoning_item(item.item_id, text, opaque, start.redacted)
        else:
            if start.tool_kind is ToolKind.CUSTOM:
                out.append(self._event("response.custom_tool_call_input.done", **where, input=text))
            else:
                out.append(self._event("response.function_call_arguments.done", **where, arguments=text))
            wire = _call_item(item.item_id, start.tool_call_id or "", start.tool_kind, start.tool_name or "",
                              start.tool_namespace, text, "completed")
        self._output.append(wire)
        out.append(self._event("response.output_item.done", output_index=item.index, item=wire))
        return out

    def _finish(self, reason: StopReason) -> list[bytes]:
        out = self._start("", "")
        if reason is StopReason.REFUSAL and not self._text_seen:  # say so, rather than answer nothing
            declined = BlockStart(block_id=-1, kind=BlockKind.TEXT)
            out += self._open_item(declined)
            out += self._delta(self._open[-1], _DECLINED)
            out += self._close_item(self._open.pop(-1), None)
        status = _status(reason)
        self._ended = True
        return [*out, self._event(f"response.{status}", response=self._response(status, self._output, self._usage))]

    def _fail(self, error: StreamError) -> list[bytes]:
        out = self._start("", "")
        response = self._response("failed", self._output)
        response["error"] = {"code": _KIND_TO_CODE.get(ErrorKind(error.kind), "server_error"),
                             "message": error.message}
        self._ended = True
        return [*out, self._event("response.failed", response=response)]


# --- errors -------------------------------------------------------------------------------------


def parse_error(status: int, body: bytes) -> UpstreamError:
    """OpenAI's error JSON, the ChatGPT backend's ``{"detail": …}`` or anything else (§3.6, §6.5)."""
    err = chat.parse_error(status, body)
    inner = _object(_object(json_or_none(body)).get("error"))
    if not inner.get("message") and inner.get("type"):  # {"type": "usage_limit_reached", "resets_in_seconds": …}
        resets = inner.get("resets_in_seconds")
        err.message = str(inner["type"]).replace("_", " ") + (f" (resets in {resets} s)" if resets else "")
    return err


def render_error(err: BridgeError) -> tuple[int, JSON]:
    """Status and body for an error answered before any response byte: the same as Chat's (§3.6)."""
    return chat.render_error(err)


def render_stream_error(err: BridgeError) -> bytes:
    """A whole failed stream; the emitter renders an error in a stream it has begun itself."""
    emitter = StreamEmitter(Context(new_id=lambda prefix: f"{prefix}bridge_error"))
    return b"".join(emitter.feed(StreamError(status=err.status, kind=err.kind.value, message=err.message)))


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
