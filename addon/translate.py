"""One exchange, translated: client request → upstream request, upstream answer → client answer.

Pure glue between the format modules, used by the mitmproxy addon, by replays and by benchmarks
alike. Nothing here imports mitmproxy.

Theory of operation
-------------------
``Exchange.start`` parses the client's body once into the IR and renders it for the upstream.
The answer comes back either as a stream, fed chunk by chunk to :class:`StreamTranslator`
(SSE decoder → upstream ``StreamParser`` → client ``StreamEmitter``), or whole, through
:meth:`Exchange.translate_body`, which runs the same parser and emitter over the whole body (or a
JSON body's ``response_events``) and, for a client that did not ask for a stream, folds the events
with :func:`accumulate`. Errors before the first byte become an HTTP error in the client's format;
errors after it become the client format's in-stream error event, and the stream ends there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .accumulate import accumulate
from .errors import BadRequest, BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError
from .formats import FORMATS, EventEmitter, EventParser, Format, Operation
from .formats.common import JSON, Budget, Context, dump_bytes, dumps, loads, rename_model
from .ir import (
    BlockDelta,
    Event,
    Finish,
    MessageStart,
    Request,
    Role,
    StreamError,
    Text,
    ToolCall,
    ToolResult,
    Usage,
    UsageUpdate,
)
from .jsonarray import ArraySplitter
from .sequence import BlockOrder
from .sse import DEFAULT_MAX_EVENT_SIZE, SSEDecoder, SSEEvent, encode_event

__all__ = ["Exchange", "ModelRenamer", "StreamTranslator", "answer_format", "cut_tail", "error_response",
           "parse_answer_body", "parse_json_body", "usage_of"]

SSE_TYPE = "text/event-stream"
JSON_TYPE = "application/json"


def _json_object(body: bytes, fault: type[BridgeError], what: str) -> JSON:
    try:
        value = loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise fault(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise fault(f"{what} must be a JSON object")
    return value


def parse_json_body(body: bytes) -> JSON:
    """The request body as a JSON object, or a :class:`BadRequest` saying what is wrong with it."""
    return _json_object(body, BadRequest, "request body")


def parse_answer_body(body: bytes) -> JSON:
    """An upstream's whole 2xx answer as a JSON object; anything else is the upstream's fault (502)."""
    return _json_object(body, UpstreamProtocolError, "the upstream's answer")


def answer_format(content_type: str, body: bytes) -> str | None:
    """Which format a whole answer is in, from the marks only that format's answers carry; None if
    none fits. A replayed answer may be an upstream's or one the bridge already translated."""
    stream = content_type.startswith(SSE_TYPE)
    try:
        if stream:
            decoder = SSEDecoder()
            events = decoder.feed(body[:65536]) + decoder.close()
            first = json.loads(events[0].data) if events else None
        else:
            first = json.loads(body)
    except (ValueError, BridgeError):
        return None
    if not isinstance(first, dict):
        return None
    return next((f.NAME for f in FORMATS.values() if f.is_answer(first, stream)), None)


def error_response(client: Format, err: BridgeError) -> tuple[int, str, bytes]:
    """(status, content type, body) of an error answered in the client's format."""
    status, body = client.render_error(err)
    return status, JSON_TYPE, dump_bytes(body)


def conversation_key(request: Request) -> str:
    """A prompt cache key for a client that names neither a key nor a session (an SDK's Chat client, the
    Gemini CLI): a hash of its system text and first message, which every request of one conversation
    repeats, so that all of them reach the machine that caches its prefix (OpenAI routes by the key)."""
    texts = [p.text for p in request.system]
    for message in request.messages:
        texts += [p.text for p in message.content if isinstance(p, Text)]
        if message.role is not Role.SYSTEM:
            break
    return "bridge-" + hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:32]


@dataclass(slots=True)
class Exchange:
    """A request on its way through the bridge: formats of both sides and the translation context."""

    client: Format
    upstream: Format
    ctx: Context
    request: Request
    warnings: list[str] = field(default_factory=list)
    upstream_stream: bool = False  # whether the upstream was asked for a stream
    usage: Usage = field(default_factory=Usage)  # what the answer reported, for the log line
    redact: Callable[[str], str] = str  # blanks secrets an upstream echoes in its error messages

    @classmethod
    def start(cls, client: Format, upstream: Format, body: bytes | JSON, ctx: Context, *,
              upstream_model: str | None = None, show_upstream_model: bool = False,
              redact: Callable[[str], str] = str, op: Operation | None = None,
              cache_key: str | None = None) -> tuple[Exchange, bytes]:
        """Parse the client body (or take it parsed) and render the upstream body.

        ``upstream_model`` is what the upstream is asked for (a model rewrite); answers show the
        client's own model name unless ``show_upstream_model``. ``op`` carries the model and stream
        flag of a format that puts them in the path. ``cache_key``: the upstream's prompt cache key when
        the body names none (the client's session); with ``ctx.prompt_cache`` and neither, one derived
        from the conversation (:func:`conversation_key`). Raises :class:`BridgeError`.
        """
        data = body if isinstance(body, dict) else parse_json_body(body)
        try:
            request = client.parse_request(data)
        except (TypeError, AttributeError, KeyError, ValueError) as e:
            # A shape the parser's own checks did not name: still the client's input, still a 400.
            raise BadRequest(f"request body has a field of an unexpected type or shape ({type(e).__name__}: {e})"
                             ) from None
        if ctx.prompt_cache and request.cache_key is None:  # the client's session, or its conversation
            request = replace(request, cache_key=cache_key or conversation_key(request))
        if op is not None and op.model is not None:
            request = replace(request, model=op.model)
        if op is not None and op.stream is not None:
            request = replace(request, stream=op.stream)
        if op is not None:
            ctx = replace(ctx, framing=op.framing)
        _check_tool_results(request)
        warnings = list(request.warnings)
        limit = ctx.max_tokens_limit
        default_max = min(ctx.default_max_tokens, limit) if limit else ctx.default_max_tokens
        wire_request = replace(request, model=upstream_model) if upstream_model and upstream_model != request.model \
            else request  # (dataclasses.replace: 4 µs of a small request's 25)
        if limit and request.max_tokens and request.max_tokens > limit:
            warnings.append(f"max_tokens {request.max_tokens} clamped to the endpoint's limit {limit}")
            wire_request = replace(wire_request, max_tokens=limit)
        shown = wire_request.model if show_upstream_model else request.model
        ctx = replace(ctx, request=request, client_model=shown, default_max_tokens=default_max, warnings=warnings)
        upstream_body = upstream.render_request(wire_request, ctx)
        for key in ctx.drop_params:
            if upstream_body.pop(key, None) is not None:
                warnings.append(f"{key} dropped (endpoint drop_params)")
        exchange = cls(client, upstream, ctx, request, warnings,
                       upstream_stream=upstream.streams(upstream_body, wire_request), redact=redact)
        return exchange, dump_bytes(upstream_body)

    @property
    def client_stream(self) -> bool:
        return self.request.stream

    @property
    def client_stream_type(self) -> str:
        """The content type of the client's translated stream: SSE, or JSON for a JSON-array stream."""
        return SSE_TYPE if self.ctx.framing == "sse" else JSON_TYPE

    def is_stream(self, content_type: str) -> bool:
        """Whether a 2xx upstream answer is SSE: by its type or, when it has none (the ChatGPT backend
        has been seen to omit it, formats.md §6.6), by whether a stream was asked for."""
        return content_type.startswith(SSE_TYPE) or (not content_type and self.upstream_stream)

    def stream(self) -> StreamTranslator:
        return StreamTranslator(self.upstream.StreamParser(self.ctx), self.client.StreamEmitter(self.ctx), self.redact,
                                max_event=self.ctx.budget.limit, order=self._order())

    def _order(self) -> BlockOrder:
        return BlockOrder(self.ctx.budget, self.client.block_channel)

    def error(self, err: BridgeError) -> tuple[int, str, bytes]:
        return error_response(self.client, _redacted(err, self.redact))

    def translate_body(self, status: int, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        """A whole upstream answer → (status, content type, body) for the client."""
        if status >= 400:
            return self.error(self.upstream.parse_error(status, body))
        if status >= 300:  # a client of another API could not follow it (and the bridge does not)
            return self.error(UpstreamProtocolError(f"the upstream answered HTTP {status} (a redirect), which the "
                                                    "bridge does not follow: check the endpoint's URL"))
        if not self.client_stream:
            try:
                events = self._events(content_type, body)
                return 200, JSON_TYPE, dump_bytes(self.client.render_response(accumulate(events), self.ctx))
            except BridgeError as e:
                return self.error(e)
        if self.is_stream(content_type):
            translator = self.stream()
            return 200, self.client_stream_type, b"".join(translator.feed(body) + translator.close())
        emitter, order = self.client.StreamEmitter(self.ctx), self._order()
        try:
            events = order.order(self._events(content_type, body))
        except BridgeError as e:
            return self.error(e)
        return 200, self.client_stream_type, b"".join(b for ev in events for b in emitter.feed(ev))

    def _events(self, content_type: str, body: bytes) -> list[Event]:
        if self.is_stream(content_type):
            parser = self.upstream.StreamParser(self.ctx)
            decoder = SSEDecoder()
            sse = decoder.feed(body) + decoder.close()
            events = [ev for s in sse for ev in parser.feed(s)] + parser.close()
        else:
            events = self.upstream.response_events(parse_answer_body(body), self.ctx)
        self.usage = merged_usage(self.usage, events)
        return events


def usage_of(fmt: Format, content_type: str, body: bytes, ctx: Context) -> Usage:
    """The usage a whole answer in ``fmt`` reports (an answer replayed as it was recorded); unknown when
    it cannot be read."""
    try:
        if content_type.startswith(SSE_TYPE):
            parser, decoder = fmt.StreamParser(ctx), SSEDecoder(ctx.budget.limit)
            events = [ev for sse in decoder.feed(body) + decoder.close() for ev in parser.feed(sse)]
        else:
            events = fmt.response_events(parse_answer_body(body), ctx)
    except BridgeError:
        return Usage()
    return merged_usage(Usage(), events)


def _check_tool_results(request: Request) -> None:
    """A tool result must answer a call made earlier in the conversation; every API rejects an orphan
    (formats.md §7.2-7.4), and saying so here names it in the client's own terms."""
    calls: set[str] = set()
    for turn, msg in enumerate(request.messages):
        for part in msg.content:
            if isinstance(part, ToolCall):
                calls.add(part.id)
            elif isinstance(part, ToolResult) and part.call_id not in calls:
                raise BadRequest(f"messages: the tool result for call {part.call_id!r} (turn {turn}) answers no "
                                 "earlier tool call", param="messages")


def merged_usage(usage: Usage, events: list[Event]) -> Usage:
    for ev in events:
        if isinstance(ev, MessageStart | UsageUpdate):
            usage = usage.merged(ev.usage)
    return usage


_NOTABLE = (MessageStart, UsageUpdate, StreamError, Finish)  # stream events the translator itself acts on


def _joined(out: list[bytes]) -> list[bytes]:
    """The events of one network chunk as one piece: mitmproxy sends each list item as its own HTTP
    chunk through its layers and its own socket write, which cost more than the translation itself
    (README "Benchmark": a socket write per event was a third of the bridge's CPU on w1)."""
    return [b"".join(out)] if out else []


def _redacted(err: BridgeError, redact: Callable[[str], str]) -> BridgeError:
    """The error with any secret in any of its strings blanked (in place: each error is made for one
    answer). An upstream may echo a key in its ``param`` or ``code`` as well as in its message."""
    message = redact(err.message)
    if message != err.message:
        err.message, err.args = message, (message,)
    err.param = redact(err.param) if err.param else err.param
    err.code = redact(err.code) if err.code else err.code
    return err


class StreamTranslator:
    """Upstream SSE bytes in, client SSE bytes out, one call per network chunk.

    ``feed`` never returns ``b""`` (mitmproxy would end a chunked body there); it returns a list,
    empty or of one item: everything the chunk produced. After an error the client's error event is
    emitted once and further input is ignored, so a client never sees a stream that looks complete
    when it is not.
    """

    def __init__(self, parser: EventParser, emitter: EventEmitter, redact: Callable[[str], str] = str,
                 max_event: int = DEFAULT_MAX_EVENT_SIZE, order: BlockOrder | None = None) -> None:
        """``max_event``: the largest upstream event read whole; a Responses upstream's closing events each
        repeat the whole answer, so the endpoint's answer limit (``max_answer_bytes``) is the natural one.
        ``order`` puts the parser's blocks in the order the client's format takes them (sequence.py)."""
        self._redact = redact
        self._order = order or BlockOrder(Budget())
        self._decoder = SSEDecoder(max_event)
        self._parser = parser
        self._emitter = emitter
        self.failed: BridgeError | None = None
        self.finished = False
        self.usage = Usage()

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed or self.finished:
            return []
        out: list[bytes] = []
        try:
            self._translate(self._decoder.feed(data), out)
            if self._decoder.error is not None and not (self.failed or self.finished):
                raise self._decoder.error  # a bad line after good events: those went out first
        except BridgeError as e:
            out += self._fail(e)
        return _joined(out)

    def close(self) -> list[bytes]:
        """End of the upstream body: flush, and fail the stream if the upstream never finished."""
        if self.failed or self.finished:
            return []
        out: list[bytes] = []
        try:
            self._translate(self._decoder.close(), out)
            if not (self.failed or self.finished):
                out += self._emit(self._parser.close())
        except BridgeError as e:
            out += self._fail(e)
        return _joined(out)

    def abort(self, err: BridgeError) -> list[bytes]:
        """The upstream broke off: the client's error event, unless the stream had already ended."""
        return [] if self.failed or self.finished else self._fail(err)

    def _translate(self, events: list[SSEEvent], out: list[bytes]) -> None:
        # One event at a time: what came before a bad event in the same chunk still reaches the client.
        parse, emit, held = self._parser.feed, self._emitter.feed, self._order.held
        for sse in events:
            parsed = parse(sse)
            if len(parsed) == 1 and type(parsed[0]) is BlockDelta and not held:
                out += emit(parsed[0])  # nearly every event: a delta that the order passes and nothing acts on
                continue
            out += self._emit(parsed)
            if self.failed or self.finished:
                return

    def _emit(self, events: list[Event]) -> list[bytes]:
        events = self._order.order(events)
        # One pass over the events' types (mostly a single BlockDelta) instead of one per question.
        error: StreamError | None = None
        finish = False
        for ev in events:
            if isinstance(ev, _NOTABLE):
                if isinstance(ev, StreamError):
                    error = error or ev
                elif isinstance(ev, Finish):
                    finish = True
                else:
                    self.usage = self.usage.merged(ev.usage)
        if error is not None:
            message = self._redact(error.message)
            if message != error.message:  # an upstream that echoes a key in its error event
                events = [replace(ev, message=message) if ev is error else ev for ev in events]
            self.failed = BridgeError(message, status=error.status, kind=ErrorKind(error.kind))
        elif finish:
            self.finished = True
        out: list[bytes] = []
        feed = self._emitter.feed
        for ev in events:
            out += feed(ev)
        return out

    def _fail(self, err: BridgeError) -> list[bytes]:
        # The emitter renders it, so the error event fits the stream so far (Responses needs its
        # response.created first, and the same response id).
        self.failed = err = _redacted(err, self._redact)
        return self._emitter.feed(StreamError(status=err.status, kind=err.kind.value, message=err.message))


def cut_tail(translator: StreamTranslator | ModelRenamer | None, client: Format) -> Callable[[str], bytes]:
    """What ends a client stream whose upstream broke off (given the reason): the client format's error
    event, from the translator when there is one so it fits the stream so far."""
    def tail(message: str) -> bytes:
        err = UpstreamError(f"the upstream stream broke off: {message}", status=502)
        if isinstance(translator, StreamTranslator):
            return b"".join(translator.abort(err))
        if isinstance(translator, ModelRenamer):
            return translator.tail(client.render_stream_error(err))
        return b"\n\n" + client.render_stream_error(err)  # the blank line ends an event the cut left half-written
    return tail


class ModelRenamer:
    """A pass-through answer after a model rewrite: the client sees the model name it asked for.

    Streams are re-framed event by event (a JSON-array stream object by object, its separators kept);
    only what carries a model is parsed. Same shape as :class:`StreamTranslator`, so the addon treats
    both alike. A JSON-array stream goes through one even without a rename: only whole objects go on,
    so a stream cut short can still be closed as an array, its error the last element (:meth:`tail`).
    """

    def __init__(self, upstream_model: str, client_model: str,
                 rename: Callable[[JSON, str], bool] = rename_model, framing: str = "sse") -> None:
        """``rename``: the client format's ``rename_model`` (where its answers name the model)."""
        self._new = client_model  # upstream_model is what was asked for; answers often say more
        self._rename = rename
        self._decoder = SSEDecoder()
        self._array = ArraySplitter(DEFAULT_MAX_EVENT_SIZE) if framing == "json-array" else None
        self._last = b""  # the last byte of the array sent that is not white space
        self.failed: BridgeError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._array is not None:
            out = [self._object(b) if whole else b for whole, b in self._array.feed(data)]
            self._last = next((s.rstrip()[-1:] for s in reversed(out) if s.strip()), self._last)
            return _joined(out)
        return _joined([self._event(ev) for ev in self._decoder.feed(data)])

    def close(self) -> list[bytes]:
        if self._array is not None:
            return _joined([b for _, b in self._array.close()])
        return _joined([self._event(ev) for ev in self._decoder.close()])

    def tail(self, error_event: bytes) -> bytes:
        """What ends the stream after a cut: the client's error event (an SSE event, as formats render
        it), or, in a JSON array, its data as the last element and the array closed."""
        if self._array is None:
            return b"\n\n" + error_event  # the blank line ends an event the cut left half-written
        element = b"".join(line[5:].strip() for line in error_event.splitlines() if line.startswith(b"data:"))
        opening = {b"": b"[", b"[": b"", b",": b""}.get(self._last, b",")  # after an object: a comma first
        return opening + element + b"]"

    def _object(self, raw: bytes) -> bytes:
        if b'"model' in raw:
            try:
                obj = loads(raw)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and self._rename(obj, self._new):
                return dump_bytes(obj)
        return raw

    def _event(self, ev: SSEEvent) -> bytes:
        if '"model' in ev.data:  # "model", "modelVersion"
            try:
                obj = loads(ev.data)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and self._rename(obj, self._new):
                return encode_event(dumps(obj), ev.event)
        return encode_event(ev.data, ev.event)

    def body(self, body: bytes) -> bytes:
        """A whole answer: JSON, SSE, a JSON-array stream, or anything else (left as it is)."""
        if self._array is not None:
            return b"".join(self.feed(body) + self.close())
        try:
            obj = loads(body)
        except ValueError:
            if body.lstrip().startswith((b"data:", b"event:")):
                return b"".join(self.feed(body) + self.close())
            return body
        return dump_bytes(obj) if isinstance(obj, dict) and self._rename(obj, self._new) else body
