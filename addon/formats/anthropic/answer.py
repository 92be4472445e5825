"""Anthropic Messages answers: responses, stream events and errors, wire ⇄ IR."""

from __future__ import annotations

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
from ..common import (
    JSON,
    Context,
    InputUnwrapper,
    dumps,
    encode_signature,
    event_json,
    flat_tool_name,
    json_or_none,
    json_str,
    loads_object,
    plain_error,
    safe_tool_id,
    tool_lookup,
    warn,
)
from .wire import NAME, wire_tool_name


def is_answer(first: JSON, stream: bool) -> bool:
    """Whether a whole answer (``stream``: its first event) is in this format, by what only its answers
    carry: how a replayed answer already in the client's format is told from an upstream one."""
    return first.get("type") == "message_start" if stream else first.get("type") == "message"


# formats.md §1.7 / §5.8
_STOP_TO_IR = {
    "end_turn": StopReason.END_TURN, "max_tokens": StopReason.MAX_TOKENS,
    "tool_use": StopReason.TOOL_USE, "stop_sequence": StopReason.STOP_SEQUENCE,
    "refusal": StopReason.REFUSAL, "pause_turn": StopReason.PAUSE,
    "model_context_window_exceeded": StopReason.CONTEXT_EXCEEDED,
}
_IR_TO_STOP = {v: k for k, v in _STOP_TO_IR.items()} | {StopReason.OTHER: "end_turn"}

# formats.md §1.8
_ERROR_TYPE = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error", ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.BILLING: "billing_error", ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error", ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error", ErrorKind.API_ERROR: "api_error",
    ErrorKind.TIMEOUT: "timeout_error", ErrorKind.OVERLOADED: "overloaded_error",
}
_ERROR_KIND = {v: k for k, v in _ERROR_TYPE.items()}


# --- response: wire → IR ------------------------------------------------------------------------


def _usage_to_ir(usage: JSON) -> Usage:
    details = usage.get("output_tokens_details") or {}
    return Usage(input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens"),
                 cache_read_tokens=usage.get("cache_read_input_tokens"),
                 cache_write_tokens=usage.get("cache_creation_input_tokens"),
                 reasoning_tokens=details.get("thinking_tokens"))


def _finish_event(stop_reason: str | None, stop_sequence: str | None) -> Finish:
    return Finish(stop_reason=_STOP_TO_IR.get(stop_reason or "", StopReason.OTHER),
                  raw_stop_reason=stop_reason, stop_sequence=stop_sequence)


def response_events(body: JSON, ctx: Context) -> list[Event]:
    """A non-streamed ``Message`` as the IR events its stream would have produced."""
    parser = StreamParser(ctx)
    events: list[Event] = [MessageStart(id=str(body.get("id", "")), model=str(body.get("model", "")),
                                        usage=_usage_to_ir(body.get("usage") or {}))]
    for index, block in enumerate(body.get("content") or ()):
        events += parser.block_events(index, block)
    events.append(_finish_event(body.get("stop_reason"), body.get("stop_sequence")))
    return events


class StreamParser:
    """Anthropic SSE events → IR events. Blocks the IR cannot carry (server tools) are skipped."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._next_id = 0
        self._blocks: dict[int, int] = {}  # wire index → block id, for blocks we carry
        self._signature: dict[int, Opaque] = {}
        self._argless: set[int] = set()  # tool blocks whose arguments have not begun
        self._unwrap: dict[int, InputUnwrapper] = {}  # calls of freeform tools: {"input": …} → raw input
        self._tools = tool_lookup(ctx, wire_tool_name)
        self._stop: tuple[str | None, str | None] | None = None
        self._done = False

    def feed(self, sse: SSEEvent) -> list[Event]:
        data = event_json(sse.data)
        match data.get("type"):
            case "message_start":
                msg = data.get("message") or {}
                return [MessageStart(id=str(msg.get("id", "")), model=str(msg.get("model", "")),
                                     usage=_usage_to_ir(msg.get("usage") or {}))]
            case "content_block_start":
                return self.block_events(data.get("index", -1), data.get("content_block") or {}, whole=False)
            case "content_block_delta":
                return self._delta(data.get("index", -1), data.get("delta") or {})
            case "content_block_stop":
                bid = self._blocks.pop(data.get("index", -1), None)
                return [] if bid is None else self._stop_block(bid)
            case "message_delta":
                delta = data.get("delta") or {}
                self._stop = (delta.get("stop_reason"), delta.get("stop_sequence"))
                return [UsageUpdate(usage=_usage_to_ir(data.get("usage") or {}))]
            case "message_stop":
                return self._finish()
            case "error":
                err = data.get("error") or {}
                kind = _ERROR_KIND.get(err.get("type", ""), ErrorKind.API_ERROR)
                self._done = True
                return [StreamError(status=_status_for(kind), kind=kind, message=str(err.get("message", "")))]
        return []  # ping and event types added after this was written

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._stop is None:
            raise UpstreamProtocolError("upstream Anthropic stream ended before message_stop")
        return self._finish()

    def _finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        reason, sequence = self._stop or (None, None)
        if reason is None:
            raise UpstreamProtocolError("upstream Anthropic stream ended without a stop_reason")
        return [_finish_event(reason, sequence)]

    def block_events(self, index: int, block: JSON, whole: bool = True) -> list[Event]:
        """Events for a block start; with ``whole`` (non-streamed body) also its content and stop."""
        kind = block.get("type")
        bid = self._next_id
        if kind == "text":
            events: list[Event] = [BlockStart(block_id=bid, kind=BlockKind.TEXT)]
            text = block.get("text") or ""
        elif kind == "thinking":
            events = [BlockStart(block_id=bid, kind=BlockKind.REASONING)]
            text = block.get("thinking") or ""
            if block.get("signature"):
                self._signature[bid] = Opaque(origin=NAME, data=block["signature"])
        elif kind == "redacted_thinking":
            events = [BlockStart(block_id=bid, kind=BlockKind.REASONING, redacted=True)]
            text = ""
            self._signature[bid] = Opaque(origin=NAME, data=str(block.get("data", "")))
        elif kind == "tool_use":
            name = str(block.get("name", ""))
            tool = self._tools.get(name)
            start = BlockStart(block_id=bid, kind=BlockKind.TOOL_CALL, tool_call_id=str(block.get("id", "")),
                               tool_name=tool.name if tool else name, tool_namespace=tool.namespace if tool else None,
                               tool_kind=tool.kind if tool else ToolKind.FUNCTION)
            events = [start]
            if start.tool_kind is ToolKind.CUSTOM:
                self._unwrap[bid] = InputUnwrapper(self._ctx.budget)
            else:
                self._argless.add(bid)
            tool_input = block.get("input")
            text = dumps(tool_input if isinstance(tool_input, dict) else {}) if whole or tool_input else ""
            text = self._args(bid, text)
        else:
            warn(self._ctx, f"upstream content block {kind!r} has no equivalent and was dropped")
            return []
        self._next_id += 1
        self._blocks[index] = bid
        if text:
            events.append(BlockDelta(block_id=bid, text=text))
        if whole:
            events += self._stop_block(bid)
            del self._blocks[index]
        return events

    def _delta(self, index: int, delta: JSON) -> list[Event]:
        bid = self._blocks.get(index)
        if bid is None:
            return []
        match delta.get("type"):
            case "text_delta":
                text = delta.get("text") or ""
            case "thinking_delta":
                text = delta.get("thinking") or ""
            case "input_json_delta":
                text = self._args(bid, delta.get("partial_json") or "")
            case "signature_delta":
                self._signature[bid] = Opaque(origin=NAME, data=str(delta.get("signature", "")))
                return []
            case _:
                return []  # citations_delta and future delta types carry no IR content
        return [BlockDelta(block_id=bid, text=text)] if text else []

    def _args(self, bid: int, fragment: str) -> str:
        if fragment:
            self._argless.discard(bid)
        unwrap = self._unwrap.get(bid)
        return unwrap.feed(fragment) if unwrap else fragment

    def _stop_block(self, bid: int) -> list[Event]:
        events: list[Event] = []
        if bid in self._argless:  # a tool_use without input deltas means {}: clients must not see ""
            events.append(BlockDelta(block_id=bid, text="{}"))
            self._argless.discard(bid)
        unwrap = self._unwrap.pop(bid, None)
        rest = unwrap.close() if unwrap else ""
        if rest:
            events.append(BlockDelta(block_id=bid, text=rest))
        return [*events, BlockStop(block_id=bid, opaque=self._signature.pop(bid, None))]


# --- response: IR → wire ------------------------------------------------------------------------


def _usage_to_wire(usage: Usage) -> JSON:
    wire: JSON = {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0}
    if usage.cache_write_tokens is not None:
        wire["cache_creation_input_tokens"] = usage.cache_write_tokens
    if usage.cache_read_tokens is not None:
        wire["cache_read_input_tokens"] = usage.cache_read_tokens
    if usage.reasoning_tokens is not None:
        wire["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return wire


def _signature_for(opaque: Opaque | None) -> str:
    return opaque.data if opaque and opaque.origin == NAME else encode_signature(opaque)


def _content_block(part: Text | ToolCall | Reasoning) -> JSON:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case ToolCall(id=id_, name=name, arguments=args, kind=kind, namespace=namespace):
            parsed = {"input": args} if kind is ToolKind.CUSTOM else loads_object(args)
            return {"type": "tool_use", "id": safe_tool_id(id_), "name": flat_tool_name(namespace, name),
                    "input": parsed if parsed is not None else {"_raw": args}}
        case Reasoning(text=text, opaque=opaque, redacted=True):
            return {"type": "redacted_thinking", "data": _signature_for(opaque)}
        case Reasoning(text=text, opaque=opaque):
            return {"type": "thinking", "thinking": text, "signature": _signature_for(opaque)}
    raise TypeError(part)


def render_response(resp: Response, ctx: Context) -> JSON:
    return {
        "id": _message_id(resp.id, ctx), "type": "message", "role": "assistant",
        "model": ctx.client_model or resp.model,
        "content": [_content_block(p) for p in resp.content if not (isinstance(p, Text) and not p.text)],
        "stop_reason": _IR_TO_STOP[resp.stop_reason], "stop_sequence": resp.stop_sequence,
        "usage": _usage_to_wire(resp.usage),
    }


def _message_id(upstream_id: str, ctx: Context) -> str:
    return upstream_id if upstream_id.startswith("msg_") else ctx.new_id("msg_")


class StreamEmitter:
    """IR events → Anthropic SSE bytes, in the grammar the SDK's ``MessageStream`` accepts (§4.2)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._index = 0
        self._open: dict[int, tuple[int, BlockStart]] = {}  # block id → (wire index, start)
        self._usage = Usage()

    def feed(self, event: Event) -> list[bytes]:
        match event:
            case MessageStart(id=id_, model=model, usage=usage):
                self._usage = usage
                message: JSON = {"id": _message_id(id_, self._ctx), "type": "message", "role": "assistant",
                           "content": [], "model": self._ctx.client_model or model, "stop_reason": None,
                           "stop_sequence": None, "usage": _usage_to_wire(usage)}
                return [_event("message_start", {"type": "message_start", "message": message})]
            case BlockStart(block_id=bid, redacted=True):
                self._open[bid] = (-1, event)  # sent whole at its stop, when its data is known
                return []
            case BlockStart(block_id=bid, kind=kind):
                self._open[bid] = (self._index, event)
                self._index += 1
                if kind is BlockKind.TEXT:
                    block: JSON = {"type": "text", "text": ""}
                elif kind is BlockKind.REASONING:
                    block = {"type": "thinking", "thinking": "", "signature": ""}
                else:
                    block = {"type": "tool_use", "id": safe_tool_id(event.tool_call_id or ""),
                             "name": flat_tool_name(event.tool_namespace, event.tool_name or ""), "input": {}}
                out = [_event("content_block_start", {"type": "content_block_start",
                                                      "index": self._index - 1, "content_block": block})]
                if event.tool_kind is ToolKind.CUSTOM:  # freeform input travels as {"input": "..."}
                    out.append(self._json_delta(self._index - 1, '{"input":"'))
                return out
            case BlockDelta(block_id=bid, text=text):
                index, start = self._open[bid]
                if start.kind is BlockKind.TEXT:
                    return [_delta_event(index, "text_delta", "text", text)]
                if start.kind is BlockKind.REASONING:
                    return [_delta_event(index, "thinking_delta", "thinking", text)]
                return [self._json_delta(index, json_str(text)[1:-1] if start.tool_kind is ToolKind.CUSTOM
                                         else text)]
            case BlockStop(block_id=bid, opaque=opaque):
                return self._stop_block(bid, opaque)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merged(usage)
                return []
            case Finish(stop_reason=reason, stop_sequence=sequence):
                delta = {"stop_reason": _IR_TO_STOP[reason], "stop_sequence": sequence}
                return [_event("message_delta", {"type": "message_delta", "delta": delta,
                                                 "usage": _usage_to_wire(self._usage)}),
                        _event("message_stop", {"type": "message_stop"})]
            case StreamError():
                return [render_stream_error(UpstreamError(event.message, status=event.status,
                                                          kind=ErrorKind(event.kind)))]
        return []

    def _stop_block(self, bid: int, opaque: Opaque | None) -> list[bytes]:
        index, start = self._open.pop(bid)
        out = []
        if start.redacted:
            index = self._index
            self._index += 1
            out.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                      "content_block": {"type": "redacted_thinking",
                                                                        "data": _signature_for(opaque)}}))
        elif start.kind is BlockKind.REASONING:
            delta = {"type": "signature_delta", "signature": _signature_for(opaque)}
            out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                      "delta": delta}))
        elif start.tool_kind is ToolKind.CUSTOM:
            out.append(self._json_delta(index, '"}'))
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return out

    @staticmethod
    def _json_delta(index: int, fragment: str) -> bytes:
        return _delta_event(index, "input_json_delta", "partial_json", fragment)


def _event(name: str, data: JSON) -> bytes:
    return encode_event(dumps(data), name)


def _delta_event(index: int, delta_type: str, key: str, text: str) -> bytes:
    """``_event("content_block_delta", {"type": …, "index": index, "delta": {"type": delta_type, key: text}})``
    byte for byte, from a template: deltas are nearly every event of a stream, and building and
    encoding the dicts cost more than the rest of their translation."""
    return encode_event(f'{{"type":"content_block_delta","index":{index:d},"delta":{{"type":"{delta_type}",'
                        f'"{key}":{json_str(text)}}}}}', "content_block_delta")



def block_channel(start: BlockStart) -> str:
    """Content blocks come one at a time, each indexed in turn: every block shares one channel, so
    overlapping upstream blocks are sent one after another (sequence.py)."""
    return "content"


# --- errors -------------------------------------------------------------------------------------


def _status_for(kind: ErrorKind) -> int:
    return {ErrorKind.OVERLOADED: 529, ErrorKind.API_ERROR: 500, ErrorKind.TIMEOUT: 504,
            ErrorKind.RATE_LIMIT: 429}.get(kind, 400)


def parse_error(status: int, body: bytes) -> UpstreamError:
    """An upstream HTTP error response, whatever its body, as an :class:`UpstreamError`."""
    data = json_or_none(body)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        kind = _ERROR_KIND.get(str(err.get("type")), kind_for_status(status))
        return UpstreamError(str(err.get("message") or f"upstream error {status}"), status=status, kind=kind)
    return plain_error(status, data, body)


def render_error(err: BridgeError) -> tuple[int, JSON]:
    """Status and body for an error answered before any response byte went to the client."""
    status = 529 if err.kind is ErrorKind.OVERLOADED and err.status == 503 else err.status
    return status, {"type": "error", "error": {"type": _ERROR_TYPE[err.kind], "message": err.message}}


def render_stream_error(err: BridgeError) -> bytes:
    return _event("error", render_error(err)[1])
