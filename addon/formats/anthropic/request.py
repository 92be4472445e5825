"""Anthropic Messages requests: wire ⇄ IR, and the headers an Anthropic upstream takes."""

from __future__ import annotations

import time
from typing import Any

from ...errors import BadRequest
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
from ..api import TokenCount
from ..common import (
    JSON,
    Context,
    as_object,
    auth_header,
    decode_signature,
    dumps,
    field_list,
    field_str,
    flat_tool_name,
    loads_object,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_str,
    parse_data_url,
    safe_tool_id,
    system_in_place,
    unsafe_tool_id,
)
from .wire import NAME, wire_tool_name

API_VERSION = "2023-06-01"  # accepts temperature/top_p/top_k; 2026-10-21 rejects them (formats.md §0)

AUTH_HEADERS: tuple[str, ...] = ("x-api-key", "authorization")  # the 2.x SDKs send Bearer, older ones x-api-key
# Headers only an Anthropic upstream understands (dropped toward another format), and the ones a
# request translated into this format must carry.
OWN_HEADERS: tuple[str, ...] = (
    "anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access")
REQUIRED_HEADERS: dict[str, str] = {"anthropic-version": API_VERSION}

# Manual thinking needs a budget ≥ 1024 and below max_tokens (formats.md §1.2); effort → budget.
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 65536}
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_MAX_BREAKPOINTS = 4  # cache_control breakpoints a request may carry
_CACHEABLE = {"text", "image", "document", "tool_use", "tool_result"}  # blocks a breakpoint may sit on
# Request fields the IR carries; any other (cache_control, container, context_management, …) is reported.
_TRANSLATED = {"model", "messages", "system", "tools", "tool_choice", "stop_sequences", "output_config",
               "metadata", "max_tokens", "temperature", "top_p", "top_k", "thinking", "stream"}


# --- request: wire → IR -------------------------------------------------------------------------


def parse_request(body: JSON) -> Request:
    """Parse a Messages request. Raises :class:`BadRequest` naming the first invalid field."""
    warnings = [f"{key} has no equivalent and was dropped" for key in body if key not in _TRANSLATED]
    messages = tuple(_parse_message(as_object(m, f"messages.{i}"), f"messages.{i}.", warnings)
                     for i, m in enumerate(field_list(body, "messages", "")))
    system = body.get("system")
    system_parts: tuple[Text, ...]
    if isinstance(system, str):
        system_parts = (Text(text=system),) if system else ()
    elif isinstance(system, list):
        system_parts = tuple(Text(text=field_str(as_object(b, f"system.{i}"), "text", f"system.{i}."))
                             for i, b in enumerate(system))
    elif system is None:
        system_parts = ()
    else:
        raise BadRequest("system: expected a string or an array of text blocks", param="system")
    tools = tuple(t for i, raw in enumerate(opt_list(body, "tools"))
                  if (t := _parse_tool(as_object(raw, f"tools.{i}"), f"tools.{i}.", warnings)))
    tool_choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop_sequences: expected an array of strings", param="stop_sequences")
    output_config = as_object(body.get("output_config") or {}, "output_config")
    metadata = as_object(body.get("metadata") or {}, "metadata")
    return Request(
        model=field_str(body, "model", ""),
        messages=messages,
        system=system_parts,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=opt_int(body, "max_tokens"),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        top_k=opt_int(body, "top_k"),
        stop=tuple(stop),
        response_format=_parse_output_format(output_config.get("format")),
        reasoning=_parse_thinking(body.get("thinking"), opt_str(output_config, "effort", "output_config.")),
        stream=bool(opt_bool(body, "stream")),
        user=opt_str(metadata, "user_id", "metadata."),
        warnings=tuple(warnings),
    )


def _parse_message(msg: JSON, where: str, warnings: list[str]) -> Message:
    role = msg.get("role")
    if role not in ("user", "assistant", "system"):
        raise BadRequest(f"{where}role: expected user, assistant or system", param=f"{where}role")
    content = msg.get("content")
    if isinstance(content, str):
        parts: tuple[Part, ...] = (Text(text=content),)
    elif isinstance(content, list):
        parts = tuple(p for i, b in enumerate(content)
                      if (p := _parse_block(as_object(b, f"{where}content.{i}"), f"{where}content.{i}.", warnings)))
    else:
        raise BadRequest(f"{where}content: expected a string or an array", param=f"{where}content")
    return Message(role=Role(role), content=parts)


def _parse_block(block: JSON, where: str, warnings: list[str]) -> Part | None:
    match block.get("type"):
        case "text":
            return Text(text=field_str(block, "text", where))
        case "image":
            return _parse_source(as_object(block.get("source"), f"{where}source"), where, image=True)
        case "document":
            return _parse_document(block, where)
        case "tool_use":
            return ToolCall(id=unsafe_tool_id(field_str(block, "id", where)), name=field_str(block, "name", where),
                            arguments=dumps(block.get("input") or {}))
        case "tool_result":
            return _parse_tool_result(block, where, warnings)
        case "thinking":
            return Reasoning(text=field_str(block, "thinking", where),
                             opaque=decode_signature(opt_str(block, "signature", where) or "", NAME))
        case "redacted_thinking":
            return Reasoning(text="", redacted=True, opaque=Opaque(origin=NAME, data=field_str(block, "data", where)))
        case "search_result":
            texts = [c.get("text", "") for c in block.get("content") or () if isinstance(c, dict)]
            return Text(text="\n".join(filter(None, [block.get("title"), block.get("source"), *texts])))
        case other:
            warnings.append(f"{where}type {other!r} has no equivalent and was dropped")
            return None


def _parse_source(source: JSON, where: str, *, image: bool) -> Image:
    kind = source.get("type")
    if kind == "base64":
        return Image(media_type=field_str(source, "media_type", f"{where}source."),
                     data=field_str(source, "data", f"{where}source."))
    if kind == "url":
        return Image(url=field_str(source, "url", f"{where}source."))
    raise BadRequest(f"{where}source.type: {kind!r} is not supported by the bridge", param=f"{where}source.type")


def _parse_document(block: JSON, where: str) -> Document:
    source = as_object(block.get("source"), f"{where}source")
    title = opt_str(block, "title", where)
    match source.get("type"):
        case "text":
            return Document(media_type="text/plain", text=field_str(source, "data", f"{where}source."), title=title)
        case "content":
            inner = source.get("content")
            text = inner if isinstance(inner, str) else "\n".join(
                c.get("text", "") for c in inner or () if isinstance(c, dict) and c.get("type") == "text")
            return Document(media_type="text/plain", text=text, title=title)
    src = _parse_source(source, where, image=False)
    return Document(media_type=src.media_type, data=src.data, url=src.url, title=title)


def _parse_tool_result(block: JSON, where: str, warnings: list[str]) -> ToolResult:
    content = block.get("content")
    if content is None:
        parts: tuple[Text | Image | Document, ...] = ()
    elif isinstance(content, str):
        parts = (Text(text=content),)
    elif isinstance(content, list):
        parsed = (_parse_block(as_object(c, f"{where}content.{i}"), f"{where}content.{i}.", warnings)
                  for i, c in enumerate(content))
        parts = tuple(p for p in parsed if isinstance(p, Text | Image | Document))
    else:
        raise BadRequest(f"{where}content: expected a string or an array", param=f"{where}content")
    return ToolResult(call_id=unsafe_tool_id(field_str(block, "tool_use_id", where)), content=parts,
                      is_error=bool(opt_bool(block, "is_error", where)))


def _parse_tool(tool: JSON, where: str, warnings: list[str]) -> Tool | None:
    kind = tool.get("type")
    if kind not in (None, "custom"):  # server tools: web_search_20250305, bash_20250124, …
        warnings.append(f"{where}type {kind!r}: server tools have no equivalent and were dropped")
        return None
    schema = tool.get("input_schema")
    return Tool(name=field_str(tool, "name", where), description=opt_str(tool, "description", where),
                parameters=as_object(schema, f"{where}input_schema") if schema is not None else None,
                strict=opt_bool(tool, "strict", where))


def _parse_tool_choice(raw: Any) -> tuple[ToolChoice | None, bool | None]:
    if raw is None:
        return None, None
    choice = as_object(raw, "tool_choice")
    mode = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}.get(
        opt_str(choice, "type", "tool_choice.") or "")
    if mode is None:
        raise BadRequest("tool_choice.type: expected auto, any, tool or none", param="tool_choice.type")
    name = field_str(choice, "name", "tool_choice.") if mode == "tool" else None
    disable = opt_bool(choice, "disable_parallel_tool_use", "tool_choice.")
    return ToolChoice(mode=mode, name=name), (None if disable is None else not disable)


def _parse_thinking(raw: Any, effort: str | None) -> ReasoningConfig | None:
    if raw is None:
        return ReasoningConfig(effort=effort) if effort else None
    thinking = as_object(raw, "thinking")
    match thinking.get("type"):
        case "enabled":
            return ReasoningConfig(effort=effort, budget_tokens=opt_int(thinking, "budget_tokens", "thinking."))
        case "adaptive" | "between_tools":
            return ReasoningConfig(effort=effort)
        case "disabled":
            return ReasoningConfig(enabled=False)
    raise BadRequest("thinking.type: expected enabled, adaptive or disabled", param="thinking.type")


def _parse_output_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = as_object(raw, "output_config.format")
    if fmt.get("type") != "json_schema":
        raise BadRequest("output_config.format.type: expected json_schema", param="output_config.format.type")
    return ResponseFormat(type="json_schema", schema=as_object(fmt.get("schema"), "output_config.format.schema"))


# --- request: IR → wire -------------------------------------------------------------------------


def render_request(req: Request, ctx: Context) -> JSON:
    """Render an IR request for an Anthropic upstream; ``ctx.warnings`` collects what was lost."""
    system = [{"type": "text", "text": p.text} for p in req.system if p.text.strip()]
    messages: list[JSON] = []
    for msg, hoisted in system_in_place(req.messages, ctx):
        if hoisted:  # Anthropic takes system messages in the conversation from Opus 4.8 on only
            system += [{"type": "text", "text": p.text} for p in msg.content if isinstance(p, Text) and p.text.strip()]
            continue
        blocks = [b for p in _tool_results_first(msg) if (b := _render_part(p, ctx))]
        if not blocks:
            continue  # Anthropic rejects empty messages (formats.md §7.1)
        if messages and messages[-1]["role"] == msg.role.value:
            messages[-1]["content"] += blocks  # Anthropic merges consecutive turns anyway
        else:
            messages.append({"role": msg.role.value, "content": blocks})
    body: JSON = {"model": req.model, "messages": messages,
                  "max_tokens": req.max_tokens or ctx.default_max_tokens}
    if req.response_format and req.response_format.type == "json_object":
        system.append({"type": "text", "text": "Respond with a single JSON object and nothing else."})
        ctx.warnings.append("response_format json_object approximated by a system instruction")
    elif req.response_format and req.response_format.type == "json_schema" and req.response_format.schema:
        body["output_config"] = {"format": {"type": "json_schema", "schema": req.response_format.schema}}
    if system:
        body["system"] = system
    _render_tools(req, body)
    thinking = _render_thinking(req, body["max_tokens"], ctx)
    if thinking:
        body["thinking"] = thinking
        if body.get("tool_choice", {}).get("type") in ("any", "tool"):
            body["tool_choice"]["type"] = "auto"  # manual thinking rejects forced tools (§1.4)
            body["tool_choice"].pop("name", None)
            ctx.warnings.append("forced tool_choice downgraded to auto: incompatible with thinking")
    if thinking and (req.temperature is not None or req.top_p is not None or req.top_k is not None):
        ctx.warnings.append("temperature/top_p/top_k dropped: Anthropic thinking does not allow them")
    elif not thinking:
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)  # Anthropic range is 0–1 (§5.2)
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.top_k is not None:
            body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if ctx.prompt_cache:
        _place_breakpoints(body)
    if req.stream:
        body["stream"] = True
    return body


def _tool_results_first(msg: Message) -> list[Part]:
    # Tool results must open the user turn that follows the tool calls (formats.md §7.2).
    if msg.role is not Role.USER:
        return list(msg.content)
    return sorted(msg.content, key=lambda p: not isinstance(p, ToolResult))


def _render_part(part: Part, ctx: Context) -> JSON | None:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text} if text.strip() else None
        case Image():
            return _render_image(part)
        case Document():
            return _render_document(part)
        case ToolCall(id=id_, name=name, arguments=args, kind=kind, namespace=namespace):
            name = wire_tool_name(flat_tool_name(namespace, name))
            if kind is ToolKind.CUSTOM:
                tool_input: JSON | None = {"input": args}
            else:
                tool_input = loads_object(args)
                if tool_input is None:
                    ctx.warnings.append(f"tool call {id_}: arguments are not a JSON object; sent as _raw")
                    tool_input = {"_raw": args}
            return {"type": "tool_use", "id": safe_tool_id(id_), "name": name, "input": tool_input}
        case ToolResult(call_id=call_id, content=content, is_error=is_error):
            rendered = [b for p in content if (b := _render_part(p, ctx))]
            block: JSON = {"type": "tool_result", "tool_use_id": safe_tool_id(call_id), "content": rendered}
            if is_error:
                block["is_error"] = True
            return block
        case Reasoning(text=text, opaque=opaque, redacted=redacted):
            if opaque is None or opaque.origin != NAME:
                ctx.warnings.append("reasoning from another provider dropped: its signature is not Anthropic's")
                return None
            if redacted:
                return {"type": "redacted_thinking", "data": opaque.data}
            return {"type": "thinking", "thinking": text, "signature": opaque.data}
    return None


def _render_image(img: Image) -> JSON:
    if img.data is not None:
        media, data = img.media_type or "", img.data
    else:
        parsed = parse_data_url(img.url or "")
        if parsed is None:
            return {"type": "image", "source": {"type": "url", "url": img.url}}
        media, data = parsed
    media = "image/jpeg" if media == "image/jpg" else media  # a common misspelling Anthropic rejects
    if media not in _MEDIA_TYPES:
        raise BadRequest(f"image type {media!r} is not supported by Anthropic (jpeg, png, gif, webp)")
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


def _render_document(doc: Document) -> JSON:
    if doc.text is not None:
        source: JSON = {"type": "text", "media_type": "text/plain", "data": doc.text}
    elif doc.data is not None:
        source = {"type": "base64", "media_type": doc.media_type or "application/pdf", "data": doc.data}
    else:
        source = {"type": "url", "url": doc.url}
    block: JSON = {"type": "document", "source": source}
    if doc.title:
        block["title"] = doc.title
    return block


def _place_breakpoints(body: JSON) -> None:
    """Anthropic caches a prefix only where a ``cache_control`` breakpoint asks (at most 4; shorter than the
    model's minimum, it is ignored). Placed as Claude Code places them for a long agent session (issue
    17): the stable part — the last tool, the last system block — and the moving end of the conversation
    — the last message's last block, which the next request reads, and the previous user turn's, which
    this one reads (when a turn added more blocks than the API looks back over). Only for clients that
    set none: an Anthropic client's own request passes through as it is."""
    marks: list[JSON] = []
    for key in ("tools", "system"):
        if body.get(key):
            marks.append(body[key][-1])
    messages: list[JSON] = body["messages"]
    previous_user = next((m for m in reversed(messages[:-1]) if m["role"] == "user"), None)
    for message in (messages[-1], previous_user) if messages else ():
        block = next((b for b in reversed(message["content"]) if _cacheable(b)), None) if message else None
        if block is not None and all(block is not mark for mark in marks):
            marks.append(block)
    for block in marks[:_MAX_BREAKPOINTS]:
        block["cache_control"] = {"type": "ephemeral"}


def _cacheable(block: JSON) -> bool:
    """Thinking blocks cannot carry a breakpoint, nor can an empty text block."""
    return block.get("type") in _CACHEABLE and (block.get("type") != "text" or bool(block.get("text")))


def _render_tools(req: Request, body: JSON) -> None:
    tools = []
    for tool in req.tools:
        if tool.kind is ToolKind.CUSTOM:  # freeform tool: one string argument (formats.md §5.3)
            schema: JSON = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
        else:
            schema = tool.parameters or {"type": "object", "properties": {}}
        entry: JSON = {"name": wire_tool_name(flat_tool_name(tool.namespace, tool.name)), "input_schema": schema}
        if tool.description:
            entry["description"] = tool.description
        if tool.strict is not None:
            entry["strict"] = tool.strict
        tools.append(entry)
    if not tools:
        return  # a tool_choice without tools means nothing to Anthropic
    body["tools"] = tools
    choice = req.tool_choice
    if choice is None and req.parallel_tool_calls is None:
        return
    wire: JSON = {"type": {"auto": "auto", "required": "any", "tool": "tool", "none": "none"}[
        choice.mode if choice else "auto"]}
    if choice and choice.name:
        wire["name"] = wire_tool_name(choice.name)
    if req.parallel_tool_calls is False and wire["type"] != "none":
        wire["disable_parallel_tool_use"] = True
    body["tool_choice"] = wire


def _render_thinking(req: Request, max_tokens: int, ctx: Context) -> JSON | None:
    cfg = req.reasoning
    if cfg is None or not cfg.enabled or cfg.effort == "none":
        return None
    budget = cfg.budget_tokens or _EFFORT_BUDGET.get(cfg.effort or "medium", 8192)
    budget = min(budget, max_tokens - 1)
    if budget < 1024:
        ctx.warnings.append(f"thinking dropped: max_tokens {max_tokens} leaves no room for a 1024-token budget")
        return None
    return {"type": "enabled", "budget_tokens": budget}


# --- upstream policy: credentials, pass-through, models list --------------------------------------


def auth_headers(api_key: str | None, auth: str | None) -> dict[str, str]:
    """The credential header for an Anthropic upstream: ``x-api-key`` unless ``auth`` says otherwise."""
    return auth_header(api_key, auth or "x-api-key")


def passes_through(body: bytes, flavor: str) -> bool:
    """Whether a request already in this format suits a flavoured upstream as is (no flavours here)."""
    return True


def _parse_count_request(body: JSON) -> Request:
    return parse_request({"max_tokens": 1, **body})  # a count request has no max_tokens


# POST /v1/messages/count_tokens: the request without max_tokens, the answer {"input_tokens": N}
TOKEN_COUNT = TokenCount(parse=_parse_count_request, render=lambda n: {"input_tokens": n})


def render_models(names: list[str], created: int) -> JSON:
    """``GET /v1/models`` in Anthropic's shape, for the model names the config serves."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    data = [{"type": "model", "id": n, "display_name": n, "created_at": stamp} for n in names]
    return {"data": data, "has_more": False, "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None}
