"""Responses API answers: responses, stream events and errors, wire ⇄ IR."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError, kind_for_status
from ...ir import (
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Event,
    Finish,
    MessageStart,
    Opaque,
    Reasoning,
    Response,
    StopReason,
    StreamError,
    Text,
    ToolCall,
    ToolKind,
    Usage,
    UsageUpdate,
)
from ...sse import SSEEvent, encode_event
from .. import chat
from ..chat import wire_tool_name
from ..common import (
    JSON,
    Context,
    InputUnwrapper,
    decode_signature,
    dumps,
    encode_signature,
    event_json,
    flat_tool_name,
    json_or_none,
    json_str,
    tool_lookup,
    warn,
)
from .wire import NAME, _reasoning_text, _summary


def is_answer(first: JSON, stream: bool) -> bool:
    """Whether a whole answer (``stream``: its first event) is in this format, by what only its answers
    carry: how a replayed answer already in the client's format is told from an upstream one."""
    return first.get("type") == "response.created" if stream else first.get("object") == "response"


_DECLINED = "The model declined to respond."

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
_MAX_ITEMS = 100_000  # output items one answer may have: the parser remembers each (~200 bytes) to the end
_ITEM_PREFIX = {BlockKind.TEXT: "msg_", BlockKind.REASONING: "rs_", BlockKind.TOOL_CALL: "fc_"}


# --- output items: one set of builders for the emitter and render_response ------------------------


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
    skipped with a warning. Items may overlap (OpenRouter opens its message while its reasoning is
    open): each is followed by its ``output_index``. A stream that ends without a terminal event is a
    protocol error.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tools = tool_lookup(ctx, wire_tool_name)  # upstream names are the rendered ones
        self._started = False
        self._done = False
        self._next_id = 0
        self._items: dict[Any, _Item] = {}  # the open items, by output_index
        self._seen: set[int] = set()  # output indexes already announced or skipped (at most _MAX_ITEMS)
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
        events = self._item_done(index, {}) if index in self._items else []  # the same index again: a new item
        if len(self._seen) >= _MAX_ITEMS:
            raise UpstreamProtocolError(f"upstream answer has more than {_MAX_ITEMS} output items")
        self._seen.add(index)
        if isinstance(wire.get("id"), str):
            self._seen_ids.add(wire["id"])
        kind = str(wire.get("type"))
        if kind not in ("message", "reasoning", "function_call", "custom_tool_call"):
            warn(self._ctx, f"upstream output item {kind!r} has no equivalent and was dropped")
            return events
        self._items[index] = item = _Item(index=index, type=kind)
        if kind == "message":
            return events
        if kind == "reasoning":
            return [*events, self._open(item, BlockStart(block_id=self._next_id, kind=BlockKind.REASONING))]
        self._tool_use = True
        return [*events, self._open(item, self._tool_start(wire, item))]

    def _tool_start(self, wire: JSON, item: _Item) -> BlockStart:
        name = str(wire.get("name", ""))
        namespace = wire.get("namespace") if isinstance(wire.get("namespace"), str) else None
        tool = self._tools.get(wire_tool_name(flat_tool_name(namespace, name)) if namespace else name)
        if item.type == "custom_tool_call":
            kind = ToolKind.CUSTOM
        else:
            kind = tool.kind if tool else ToolKind.FUNCTION
            if kind is ToolKind.CUSTOM:  # the client's freeform tool, called with {"input": "…"}
                item.unwrap = InputUnwrapper(self._ctx.budget)
        return BlockStart(block_id=self._next_id, kind=BlockKind.TOOL_CALL,
                          tool_call_id=str(wire.get("call_id") or self._ctx.new_id("call_")),
                          tool_name=tool.name if tool else name, tool_kind=kind,
                          tool_namespace=tool.namespace if tool else namespace)

    def _open(self, item: _Item, start: BlockStart) -> BlockStart:
        item.block_id = start.block_id
        self._next_id += 1
        return start

    def _delta(self, index: Any, data: JSON, item_type: str, source: str, part_key: str) -> list[Event]:
        item = self._items.get(index) if isinstance(index, int) else None
        text = data.get("delta")
        if item is None or item.type != item_type or not isinstance(text, str) or not text:
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
        bid = item.block_id
        if bid is None:  # a message's first text
            start = self._open(item, BlockStart(block_id=self._next_id, kind=BlockKind.TEXT))
            events.append(start)
            bid = start.block_id
        if item.unwrap is not None:
            text = item.unwrap.feed(text)
        if text:
            events.append(BlockDelta(block_id=bid, text=text))
        return events

    def _item_done(self, index: Any, wire: JSON) -> list[Event]:
        events: list[Event] = []
        if not isinstance(index, int) or index not in self._items:
            if index in self._seen:
                return []  # an item that was skipped at its start
            events = self._item_added(index, wire)  # a done without its added: the item comes whole
        item = self._items.pop(index, None)
        if item is None:
            return events
        if not item.streamed:
            rest = _item_content({"type": item.type, **wire})
            if rest:
                events += self._content(item, rest)
        if item.block_id is None:
            return events  # a message with no text
        if item.unwrap is not None and (tail := item.unwrap.close()):
            events.append(BlockDelta(block_id=item.block_id, text=tail))
        opaque = None
        if item.type == "reasoning":  # encrypted_content is complete only in .done (formats.md §7.22)
            opaque = decode_signature(str(wire.get("encrypted_content") or ""), NAME)
        return [*events, BlockStop(block_id=item.block_id, opaque=opaque)]

    def _terminal(self, kind: str, response: JSON) -> list[Event]:
        events = self._start(response)
        output = [o for o in response.get("output") or () if isinstance(o, dict)]
        for index in list(self._items):  # the upstream skipped output_item.done: finish with what is known
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
        self._output: dict[int, JSON] = {}  # done items, by output_index (items may overlap)
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

    def _done(self) -> list[JSON]:
        return [self._output[i] for i in sorted(self._output)]

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
        self._ctx.budget.take(text)  # kept: output_item.done and the terminal event repeat the whole item
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
        self._output[item.index] = wire
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
        return [*out, self._event(f"response.{status}", response=self._response(status, self._done(), self._usage))]

    def _fail(self, error: StreamError) -> list[bytes]:
        out = self._start("", "")
        response = self._response("failed", self._done())
        response["error"] = {"code": _KIND_TO_CODE.get(ErrorKind(error.kind), "server_error"),
                             "message": error.message}
        self._ended = True
        return [*out, self._event("response.failed", response=response)]



def block_channel(start: BlockStart) -> str:
    """Every event names its output item: overlapping items pass as they come (sequence.py)."""
    return f"item {start.block_id}"


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
