"""Chat Completions answers: responses, stream chunks and errors, wire ⇄ IR."""

from __future__ import annotations

from dataclasses import dataclass
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
    plain_error,
    tool_lookup,
)
from .wire import NAME, thinking_text, wire_tool_name


def is_answer(first: JSON, stream: bool) -> bool:
    """Whether a whole answer (``stream``: its first event) is in this format, by what only its answers
    carry: how a replayed answer already in the client's format is told from an upstream one."""
    return first.get("object") == "chat.completion.chunk" if stream else first.get("object") == "chat.completion"


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


_MAX_CALLS = 100_000  # tool calls open at once in one answer: each is remembered until the finish


def content_parts(parts: list[Any]) -> list[tuple[str, str]]:
    """A ``content`` given as a list, as (``text`` | ``reasoning`` | ``refusal``, its text) pieces:
    text parts, Mistral Magistral's ``{"type": "thinking", "thinking": [{"type": "text", …}]}`` (or a
    string), and OpenAI's refusal parts. Anything else carries nothing the IR has."""
    out: list[tuple[str, str]] = []
    for part in parts:
        if isinstance(part, str):
            out.append(("text", part))
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "thinking":
            out.append(("reasoning", thinking_text(part)))
        elif kind in ("text", "output_text") and isinstance(part.get("text"), str):
            out.append(("text", part["text"]))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(("refusal", part["refusal"]))
    return [(kind, text) for kind, text in out if text]


@dataclass(slots=True)
class _Call:
    """A tool call being streamed: its block, and how its fragments are read."""

    block_id: int
    call_id: str
    unwrap: InputUnwrapper | None  # a client's freeform tool: {"input": "…"} → the raw input
    has_args: bool = False


class StreamParser:
    """Chat chunks → IR events.

    Text and reasoning are one open block at a time (switching between them closes the other; a tool
    call closes them too). Tool calls are followed by ``index`` and stay open until the finish, since
    some servers interleave the argument fragments of parallel calls; a new ``id`` at an index in use
    (some compatible servers reuse index 0) starts a new call. ``Finish`` is emitted at ``[DONE]`` or
    end of stream, so the trailing usage chunk is included; a ``refusal`` (OpenAI's, as text with
    ``finish_reason: stop``) makes the finish a refusal.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tools = tool_lookup(ctx, wire_tool_name)
        self._started = False
        self._next_id = 0
        self._text_block: tuple[int, BlockKind] | None = None  # the open text or reasoning block
        self._calls: dict[Any, _Call] = {}  # the open tool calls, by index
        self._signature: Opaque | None = None
        self._refused = False
        self._finish: str | None = None
        self._done = False

    def feed(self, sse: SSEEvent) -> list[Event]:
        if self._done:
            return []
        data = sse.data
        if data[:1] != "{" and data.strip() == "[DONE]":  # an object (every other event) is never "[DONE]"
            return self.close()
        return self.chunk_events(event_json(data))

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._finish is None:
            raise UpstreamProtocolError("upstream Chat stream ended before a finish_reason")
        self._done = True
        reason = _FINISH_TO_IR.get(self._finish, StopReason.OTHER)
        if self._refused and reason is StopReason.END_TURN:
            reason = StopReason.REFUSAL  # OpenAI refuses in `refusal` text and says only "stop"
        return [*self._close_all(), Finish(stop_reason=reason, raw_stop_reason=self._finish)]

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
                events += self._close_all()
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
            if isinstance(block, dict) and self._text_block and self._text_block[1] is BlockKind.REASONING:
                self._signature = decode_signature(str(block.get("signature") or ""), "anthropic")
        content = delta.get("content")
        pieces = content_parts(content) if isinstance(content, list) else []  # Mistral's Magistral, OpenAI's parts
        if isinstance(content, str) and content:
            pieces.append(("text", content))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            pieces.append(("refusal", refusal))
        for kind, text in pieces:
            self._refused = self._refused or kind == "refusal"
            events += self._text(BlockKind.REASONING if kind == "reasoning" else BlockKind.TEXT, text)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                events += self._tool_fragment(call)
        return events

    def _text(self, kind: BlockKind, text: str) -> list[Event]:
        events: list[Event] = []
        if self._text_block is None or self._text_block[1] is not kind:
            events += self._close_text()
            events.append(BlockStart(block_id=self._next_id, kind=kind))
            self._text_block = (self._next_id, kind)
            self._next_id += 1
        events.append(BlockDelta(block_id=self._text_block[0], text=text))
        return events

    def _tool_fragment(self, call: JSON) -> list[Event]:
        index = call.get("index", 0)
        index = index if isinstance(index, int | str) else 0
        function = call.get("function") or {}
        events: list[Event] = []
        open_call = self._calls.get(index)
        new_id = call.get("id") or None
        if open_call is None or (new_id is not None and new_id != open_call.call_id):
            events += self._close_text()
            if open_call is not None:  # a new call at an index in use: the old one is done
                events += self._close_call(index)
            if len(self._calls) >= _MAX_CALLS:
                raise UpstreamProtocolError(f"upstream answer has more than {_MAX_CALLS} tool calls open")
            call_id = str(new_id or self._ctx.new_id("call_"))
            name = str(function.get("name", ""))
            tool = self._tools.get(name)
            kind = tool.kind if tool else ToolKind.FUNCTION
            events.append(BlockStart(block_id=self._next_id, kind=BlockKind.TOOL_CALL, tool_call_id=call_id,
                                     tool_name=tool.name if tool else name, tool_kind=kind,
                                     tool_namespace=tool.namespace if tool else None))
            open_call = self._calls[index] = _Call(
                self._next_id, call_id, InputUnwrapper(self._ctx.budget) if kind is ToolKind.CUSTOM else None)
            self._next_id += 1
        args = function.get("arguments")
        if isinstance(args, str) and args:
            open_call.has_args = True
            text = open_call.unwrap.feed(args) if open_call.unwrap else args
            if text:
                events.append(BlockDelta(block_id=open_call.block_id, text=text))
        return events

    def _close_all(self) -> list[Event]:
        return [*self._close_text(), *(ev for index in list(self._calls) for ev in self._close_call(index))]

    def _close_text(self) -> list[Event]:
        if self._text_block is None:
            return []
        bid, kind = self._text_block
        self._text_block = None
        opaque = self._signature or (Opaque(origin=NAME, data="") if kind is BlockKind.REASONING else None)
        self._signature = None
        return [BlockStop(block_id=bid, opaque=opaque)]

    def _close_call(self, index: Any) -> list[Event]:
        call = self._calls.pop(index)
        rest = call.unwrap.close() if call.unwrap else ("" if call.has_args else "{}")
        # the unstreamable rest of a freeform input, or {} for a call with no arguments
        events: list[Event] = [BlockDelta(block_id=call.block_id, text=rest)] if rest else []
        return [*events, BlockStop(block_id=call.block_id)]


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
                    self._ctx.budget.take(text)  # kept for the thinking block at its end
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



def block_channel(start: BlockStart) -> str:
    """Text and reasoning are one field each (two text blocks would mix); each tool call carries its own
    index, so overlapping calls pass as they come (sequence.py)."""
    if start.kind is BlockKind.TOOL_CALL:
        return f"call {start.block_id}"
    return start.kind.value


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
