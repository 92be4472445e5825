"""Gemini requests: wire ⇄ IR, the headers a Gemini upstream takes, its models list and token count.

Reading (gemini.md §2): every field in camelCase or snake_case (the Python SDK nests snake_case), ints
as floats or strings; ``contents`` in a room of its own (``contents.py``: parts, signatures, call ids).

Writing (§9): ``systemInstruction``, ``contents`` (empty parts and contents left out: the API refuses
them, §5.2), tool results as ``functionResponse`` parts first in their user content, names and schemas
Gemini accepts (``wire_tool_name``, ``schema.for_gemini``), Gemini's own signatures put back on the part
they came on; the first call of each model turn in the current loop signed, with the sentinel when no
signature of Gemini's is known (§7).
"""

from __future__ import annotations

import mimetypes
from typing import Any

from ...errors import BadRequest, Unsupported
from ...ir import (
    Document,
    Image,
    Message,
    Opaque,
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
    flat_tool_name,
    loads_object,
    parse_data_url,
    reasoning_effort,
    system_in_place,
)
from . import schema as schemas
from .contents import parse_contents
from .wire import (
    NAME,
    SKIP_SIGNATURE,
    get,
    get_float,
    get_int,
    get_list,
    get_obj,
    get_str,
    standard_b64,
    wire_tool_name,
)

AUTH_HEADERS: tuple[str, ...] = ("x-goog-api-key", "authorization")  # OAuth (Vertex, Code Assist) is Bearer
# Headers only a Google upstream understands (dropped toward another format).
OWN_HEADERS: tuple[str, ...] = ("x-goog-api-client", "x-goog-user-project", "x-gemini-api-privileged-user-id")
REQUIRED_HEADERS: dict[str, str] = {}

# Request fields the IR carries (gemini.md §2.1); any other is reported as dropped.
_TRANSLATED = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model",
               "system_instruction", "tool_config", "generation_config"}
_GENERATION = {"maxOutputTokens", "temperature", "topP", "topK", "stopSequences", "candidateCount",
               "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig"}
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}
# IR effort → Gemini 3 thinkingLevel: LOW and HIGH, the two every Gemini 3 model takes (Pro has no other).
_EFFORT_LEVEL = {"none": "LOW", "minimal": "LOW", "low": "LOW", "medium": "HIGH", "high": "HIGH", "xhigh": "HIGH",
                 "max": "HIGH"}
# IR effort → Gemini 2.x thinkingBudget (budgets the 2.5 models document; -1 is "dynamic").
_EFFORT_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576, "max": 24576}
_MAX_STOPS = 5  # stopSequences the API takes
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}  # IR tool_choice → mode (§9.4)


# --- request: wire → IR -------------------------------------------------------------------------


def parse_request(body: JSON) -> Request:
    """Parse a GenerateContentRequest. The model and stream flag are in its path (``Operation``), so
    ``model`` is left empty for the caller to fill. Raises :class:`BadRequest` naming the field."""
    warnings = [f"{key} has no equivalent and was dropped" for key in body if key not in _TRANSLATED]
    if get(body, "cachedContent"):
        raise Unsupported("cachedContent: a Gemini context cache cannot be sent to another API; send the "
                          "whole conversation", param="cachedContent")
    contents = get(body, "contents")
    if not isinstance(contents, list):
        raise BadRequest("contents: expected an array", param="contents")
    messages = parse_contents(contents, warnings)
    system = _parse_system(get(body, "systemInstruction"))
    tools = _parse_tools(get_list(body, "tools", ""), warnings)
    tools, choice = _parse_tool_config(get_obj(body, "toolConfig", ""), tools, warnings)
    config = get_obj(body, "generationConfig", "")
    warnings += [f"generationConfig.{key} has no equivalent and was dropped" for key in config
                 if key not in _GENERATION and _camel(key) not in _GENERATION]
    candidates = get_int(config, "candidateCount", "generationConfig.")
    if candidates is not None and candidates > 1:
        raise Unsupported("generationConfig.candidateCount: only 1 can be translated to another API",
                          param="generationConfig.candidateCount")
    stops = get_list(config, "stopSequences", "generationConfig.")
    if not all(isinstance(s, str) for s in stops):
        raise BadRequest("generationConfig.stopSequences: expected an array of strings",
                         param="generationConfig.stopSequences")
    return Request(
        model=str(body.get("model") or "").removeprefix("models/"),
        messages=tuple(messages),
        system=system,
        tools=tuple(tools),
        tool_choice=choice,
        max_tokens=get_int(config, "maxOutputTokens", "generationConfig."),
        temperature=get_float(config, "temperature", "generationConfig."),
        top_p=get_float(config, "topP", "generationConfig."),
        top_k=get_int(config, "topK", "generationConfig."),
        stop=tuple(stops),
        response_format=_parse_response_format(config, warnings),
        reasoning=_parse_thinking(get_obj(config, "thinkingConfig", "generationConfig.")),
        warnings=tuple(warnings),
    )


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


def _parse_system(raw: Any) -> tuple[Text, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):  # not the REST shape, but what an SDK's config takes
        return (Text(text=raw),) if raw else ()
    content = as_object(raw, "systemInstruction")
    texts = []
    for i, part in enumerate(get_list(content, "parts", "systemInstruction.")):
        text = get_str(as_object(part, f"systemInstruction.parts.{i}"), "text", f"systemInstruction.parts.{i}.")
        if text:
            texts.append(Text(text=text))
    return tuple(texts)


def _parse_tools(raw: list[Any], warnings: list[str]) -> list[Tool]:
    tools: list[Tool] = []
    for i, entry in enumerate(raw):
        tool, where = as_object(entry, f"tools.{i}"), f"tools.{i}."
        for key in tool:
            if key not in ("functionDeclarations", "function_declarations"):
                warnings.append(f"{where}{key}: built-in Gemini tools have no equivalent and were dropped")
        for j, decl in enumerate(get_list(tool, "functionDeclarations", where)):
            decl, here = as_object(decl, f"{where}functionDeclarations.{j}"), f"{where}functionDeclarations.{j}."
            json_schema, openapi = get(decl, "parametersJsonSchema"), get(decl, "parameters")
            if json_schema is not None:
                params: JSON | None = schemas.from_gemini(as_object(json_schema, f"{here}parametersJsonSchema"), False)
            elif openapi is not None:
                params = schemas.from_gemini(as_object(openapi, f"{here}parameters"), True)
            else:
                params = None
            tools.append(Tool(name=get_str(decl, "name", here, required=True) or "",
                              description=get_str(decl, "description", here), parameters=params))
    return tools


def _parse_tool_config(config: JSON, tools: list[Tool], warnings: list[str]) -> tuple[list[Tool], ToolChoice | None]:
    """gemini.md §9.4. Several allowed names with ANY: only those tools are offered, one must be called."""
    calling = get_obj(config, "functionCallingConfig", "toolConfig.")
    if not calling:
        return tools, None
    mode = (get_str(calling, "mode", "toolConfig.functionCallingConfig.") or "AUTO").upper()
    allowed = get_list(calling, "allowedFunctionNames", "toolConfig.functionCallingConfig.")
    if mode == "NONE":
        return tools, ToolChoice(mode="none")
    if mode not in ("AUTO", "ANY", "VALIDATED", "MODE_UNSPECIFIED"):
        raise BadRequest("toolConfig.functionCallingConfig.mode: expected AUTO, ANY, NONE or VALIDATED",
                         param="toolConfig.functionCallingConfig.mode")
    if allowed:
        tools = [t for t in tools if t.name in allowed]
    if mode != "ANY":
        return tools, ToolChoice(mode="auto")
    if len(allowed) == 1 and isinstance(allowed[0], str):
        return tools, ToolChoice(mode="tool", name=allowed[0])
    return tools, ToolChoice(mode="required")


def _parse_response_format(config: JSON, warnings: list[str]) -> ResponseFormat | None:
    mime = get_str(config, "responseMimeType", "generationConfig.")
    json_schema, openapi = get(config, "responseJsonSchema"), get(config, "responseSchema")
    if json_schema is not None:
        return ResponseFormat(type="json_schema", schema=schemas.from_gemini(
            as_object(json_schema, "generationConfig.responseJsonSchema"), False))
    if openapi is not None:
        return ResponseFormat(type="json_schema", schema=schemas.from_gemini(
            as_object(openapi, "generationConfig.responseSchema"), True))
    if mime == "application/json":
        return ResponseFormat(type="json_object")
    if mime not in (None, "text/plain"):
        warnings.append(f"generationConfig.responseMimeType {mime!r} has no equivalent and was dropped")
    return None


def _parse_thinking(config: JSON) -> ReasoningConfig | None:
    """gemini.md §9.7: budget 0 is off, -1 dynamic; a level is an effort; ``includeThoughts`` alone asks
    for reasoning the client wants to see."""
    if not config:
        return None
    where = "generationConfig.thinkingConfig."
    budget = get_int(config, "thinkingBudget", where)
    level = get_str(config, "thinkingLevel", where)
    if budget == 0:
        return ReasoningConfig(enabled=False)
    effort = _LEVELS.get(level.upper()) if level else None
    if level and effort is None and level.upper() != "THINKING_LEVEL_UNSPECIFIED":
        raise BadRequest(f"{where}thinkingLevel: expected one of {', '.join(_LEVELS)}", param=f"{where}thinkingLevel")
    if budget is None and effort is None and get(config, "includeThoughts") is not True:
        return None
    return ReasoningConfig(effort=effort, budget_tokens=budget if budget and budget > 0 else None)


# --- request: IR → wire -------------------------------------------------------------------------


def render_request(req: Request, ctx: Context) -> JSON:
    """Render an IR request for a Gemini upstream; ``ctx.warnings`` collects what was lost. The model
    and the stream flag go into the URL (``upstream_url``), not the body."""
    system = [{"text": p.text} for p in req.system if p.text]
    names = {c.id: flat_tool_name(c.namespace, c.name)  # functionResponse.name is required (§6.1)
             for m in req.messages for c in m.content if isinstance(c, ToolCall)}
    contents: list[JSON] = []
    for msg, hoisted in system_in_place(req.messages, ctx):
        if hoisted:  # Gemini has no system role inside contents
            system += [{"text": p.text} for p in msg.content if isinstance(p, Text) and p.text]
            continue
        parts = _model_parts(msg, ctx) if msg.role is Role.ASSISTANT else _user_parts(msg, names, ctx)
        if parts:  # "contents.parts must not be empty" (§5.2)
            contents.append({"role": "model" if msg.role is Role.ASSISTANT else "user", "parts": parts})
    _sign_calls(contents)
    body: JSON = {"contents": contents}
    if system:
        body["systemInstruction"] = {"role": "user", "parts": system}
    _render_tools(req, body, ctx)
    config = _generation_config(req, ctx)
    if config:
        body["generationConfig"] = config
    if req.user:
        ctx.warnings.append("user has no Gemini equivalent and was dropped")
    return body


def _user_parts(msg: Message, names: dict[str, str], ctx: Context) -> list[JSON]:
    # Results first, as many as the calls they answer, then the rest of the turn (§9.5).
    results: list[JSON] = []
    rest: list[JSON] = []
    for part in msg.content:
        if isinstance(part, ToolResult):
            results.append(_function_response(part, names))
            media = [p for p in part.content if isinstance(p, Image | Document)]
            if media:  # every Gemini model takes them as parts of the turn (functionResponse.parts: Gemini 3 only)
                rest.append({"text": f"[attachments of tool result {part.call_id}]"})
                rest += [_media(p) for p in media]
        elif isinstance(part, Text):
            if part.text:
                rest.append({"text": part.text})
        elif isinstance(part, Image | Document):
            rest.append(_media(part))
        else:
            ctx.warnings.append(f"a {type(part).__name__} in a user turn has no Gemini equivalent and was dropped")
    return results + rest


def _function_response(result: ToolResult, names: dict[str, str]) -> JSON:
    """``name`` is required, and A/C/R results carry only the id: it comes from the call (§6.1)."""
    text = "\n".join(p.text for p in result.content if isinstance(p, Text))
    return {"functionResponse": {"id": result.call_id, "name": wire_tool_name(names.get(result.call_id, "")),
                                 "response": {"error" if result.is_error else "output": text}}}


def _model_parts(msg: Message, ctx: Context) -> list[JSON]:
    parts: list[JSON] = []
    pending: str | None = None  # Gemini's signature, for the next part that is not a thought
    # In a turn with calls Gemini signs the first functionCall (gemini.md §7). A client format that keeps
    # reasoning apart from the text (Chat's thinking_blocks) loses that place: the one signature before the
    # first call waits for it, past any text.
    hold = _one_signature_before_first_call(msg)
    for part in msg.content:
        match part:
            case Reasoning(opaque=Opaque(origin=origin, data=data)) if origin == NAME:
                if data and pending:  # two in a row: the first rode on a part the IR has no place for
                    parts.append({"text": "", "thoughtSignature": pending})
                pending = data or pending
                continue  # the summary text is not sent back (Gemini CLI drops thought parts too)
            case Reasoning(opaque=None):
                continue
            case Reasoning():  # never send one vendor's blob to another (formats.md §5.7)
                ctx.warnings.append("reasoning from another provider dropped: its signature is not Gemini's")
                continue
            case Text(text=text):
                if not text:
                    continue
                wire: JSON = {"text": text}
            case ToolCall():
                wire = {"functionCall": _function_call(part, ctx)}
            case Image() | Document():
                wire = _media(part)
            case _:
                ctx.warnings.append(f"a {type(part).__name__} in an assistant turn has no Gemini equivalent")
                continue
        if pending and (not hold or isinstance(part, ToolCall)):
            wire["thoughtSignature"] = pending
            pending = None
        hold = hold and not isinstance(part, ToolCall)
        parts.append(wire)
    if pending:  # a signature after the last part: the API's own shape for a text answer (§4.3)
        parts.append({"text": "", "thoughtSignature": pending})
    return parts


def _one_signature_before_first_call(msg: Message) -> bool:
    first = next((i for i, p in enumerate(msg.content) if isinstance(p, ToolCall)), None)
    signed = [p for p in msg.content[:first] if isinstance(p, Reasoning) and p.opaque is not None
              and p.opaque.origin == NAME and p.opaque.data] if first is not None else []
    return len(signed) == 1


def _function_call(call: ToolCall, ctx: Context) -> JSON:
    if call.kind is ToolKind.CUSTOM:  # a freeform tool travels as a function of one string (formats.md §5.3)
        args: JSON | None = {"input": call.arguments}
    else:
        args = loads_object(call.arguments)
        if args is None:
            ctx.warnings.append(f"tool call {call.id}: arguments are not a JSON object; sent as _raw")
            args = {"_raw": call.arguments}
    return {"id": call.id, "name": wire_tool_name(flat_tool_name(call.namespace, call.name)), "args": args}


def _sign_calls(contents: list[JSON]) -> None:
    """Gemini 3 checks the current turn: after the last user content with ordinary content, the first
    functionCall of every model content must carry a signature (gemini.md §7). History from a client of
    another format has none of Gemini's: the documented sentinel stands in, as Gemini CLI does. It goes
    on every turn, not only the current one (earlier turns are not checked), so that a turn is rendered
    the same when it is older: the prompt cache reads the previous request's bytes (issue 17)."""
    for content in contents:
        if content["role"] != "model":
            continue
        first = next((p for p in content["parts"] if "functionCall" in p), None)
        if first is not None and "thoughtSignature" not in first:
            first["thoughtSignature"] = SKIP_SIGNATURE


def _media(part: Image | Document) -> JSON:
    if isinstance(part, Document) and part.text is not None:
        return {"text": part.text}
    media_type, data, url = part.media_type, part.data, part.url
    if data is None and url is not None and (parsed := parse_data_url(url)):
        media_type, data = parsed
    if data is not None:
        default = "image/png" if isinstance(part, Image) else "application/pdf"
        return {"inlineData": {"mimeType": media_type or default, "data": standard_b64(data)}}
    guessed = mimetypes.guess_type(url or "")[0]
    default = "image/jpeg" if isinstance(part, Image) else "application/pdf"
    return {"fileData": {"mimeType": media_type or guessed or default, "fileUri": url}}


def _render_tools(req: Request, body: JSON, ctx: Context) -> None:
    declarations = []
    for tool in req.tools:
        entry: JSON = {"name": wire_tool_name(flat_tool_name(tool.namespace, tool.name))}
        if tool.description:
            entry["description"] = tool.description
        if tool.kind is ToolKind.CUSTOM:
            entry["parametersJsonSchema"] = {"type": "object", "properties": {"input": {"type": "string"}},
                                             "required": ["input"]}
        elif tool.parameters is not None:
            entry["parametersJsonSchema"] = schemas.for_gemini(tool.parameters)
        declarations.append(entry)
    if req.parallel_tool_calls is False:
        ctx.warnings.append("parallel_tool_calls: Gemini has no switch for it; dropped")
    if not declarations:
        return
    body["tools"] = [{"functionDeclarations": declarations}]
    choice = req.tool_choice
    if choice is None:
        return
    calling: JSON = {"mode": _MODES.get(choice.mode, "AUTO")}
    if choice.mode == "tool" and choice.name:
        named = next((t for t in req.tools if choice.name in (t.name, flat_tool_name(t.namespace, t.name))), None)
        calling["allowedFunctionNames"] = [wire_tool_name(flat_tool_name(named.namespace, named.name) if named
                                                          else choice.name)]
    body["toolConfig"] = {"functionCallingConfig": calling}


def _generation_config(req: Request, ctx: Context) -> JSON:
    config: JSON = {}
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.top_k is not None:
        config["topK"] = req.top_k
    if req.stop:
        config["stopSequences"] = list(req.stop[:_MAX_STOPS])
        if len(req.stop) > _MAX_STOPS:
            ctx.warnings.append(f"stop sequences beyond the first {_MAX_STOPS} dropped ({len(req.stop)} given)")
    fmt = req.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema:
            config["responseJsonSchema"] = schemas.for_gemini(fmt.schema)
    thinking = _thinking_config(req, ctx)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _generation(model: str) -> int | None:
    """The Gemini generation a model name says (2 or 3: they take different thinking knobs), or None."""
    name = model.removeprefix("models/")
    if not name.startswith("gemini-") or not name[7:8].isdigit():
        return None
    return int(name[7])


def _thinking_config(req: Request, ctx: Context) -> JSON | None:
    """gemini.md §9.7: ``thinkingBudget`` for Gemini 2.x, ``thinkingLevel`` for Gemini 3 and later, never
    both (as Gemini CLI chooses by model name); a model of no known generation gets only
    ``includeThoughts``. Thoughts are asked for whenever reasoning is on, so the client can see them."""
    cfg = req.reasoning
    if cfg is None:
        return None
    generation = _generation(req.model)
    if not cfg.enabled or cfg.effort == "none":
        if generation == 2:
            # 2.5 Pro cannot stop thinking: its least budget is 128 (0 is refused)
            return {"thinkingBudget": 128 if "-pro" in req.model else 0}
        ctx.warnings.append(f"thinking cannot be turned off for {req.model}; left at the model's least"
                            if generation else "thinking off: left to the model's default")
        return {"thinkingLevel": "LOW"} if generation else None
    config: JSON = {"includeThoughts": True}
    if generation == 2:
        config["thinkingBudget"] = cfg.budget_tokens or _EFFORT_BUDGET.get(cfg.effort or "", -1)
    elif generation is not None:
        effort = reasoning_effort(cfg)
        if effort:
            config["thinkingLevel"] = _EFFORT_LEVEL.get(effort, "HIGH")
    return config


# --- upstream policy: credentials, pass-through, models list, token count ------------------------


def auth_headers(api_key: str | None, auth: str | None) -> dict[str, str]:
    """The credential header for a Gemini upstream: ``x-goog-api-key`` unless ``auth`` says otherwise."""
    return auth_header(api_key, auth or "x-goog-api-key")


def passes_through(body: bytes, flavor: str) -> bool:
    """Whether a request already in this format suits a flavoured upstream as is (no flavours here)."""
    return True


def render_models(names: list[str], created: int) -> JSON:
    """``GET /v1beta/models`` in Gemini's shape (gemini.md §1.1)."""
    return {"models": [{"name": f"models/{n}", "baseModelId": n, "version": "bridge", "displayName": n,
                        "supportedGenerationMethods": ["generateContent", "countTokens"]} for n in names]}


def _parse_count_request(body: JSON) -> Request:
    """``{contents}`` or ``{generateContentRequest: {model, contents, …}}``; the latter wins (§1.1)."""
    inner = get(body, "generateContentRequest")
    if inner is not None:
        return parse_request(as_object(inner, "generateContentRequest"))
    return parse_request({"contents": get(body, "contents") or []})


# POST …:countTokens: the answer {"totalTokens": N}
TOKEN_COUNT = TokenCount(parse=_parse_count_request, render=lambda n: {"totalTokens": n})
