"""Gemini answers: GenerateContentResponse bodies and streams, wire ⇄ IR (gemini.md §3, §4, §9.11).

Theory of operation
-------------------
Every stream chunk is a whole GenerateContentResponse holding only new parts; usage is cumulative on
every chunk; a functionCall arrives whole in one part; ``finishReason`` comes once, on the last chunk;
there is no end sentinel. :class:`StreamParser` keeps one text-or-reasoning block open (consecutive
parts of one kind are one block, as clients concatenate them), sends each call as start, one delta and
stop, and finishes at ``finishReason``. A ``thoughtSignature`` is the IR's carrier: a reasoning block,
stopped with ``Opaque(origin="gemini")``, right before the part the signature rode on (the thought
summary before it, if any, is that block's text). :func:`response_events` is the parser fed one chunk.

:class:`StreamEmitter` writes one chunk per text or thought delta and one per call (calls are buffered
until whole: a Gemini client never sees argument fragments), then a last chunk with ``finishReason``
and the final usage, framed as SSE or as a JSON array (``ctx.framing``). Gemini's own signatures go on
the next part that is not a thought, as received; reasoning of another origin rides, as
``wire.encode_carried``, on the first functionCall after it, else on an empty text part at the end
(Gemini CLI keeps the signatures of calls in its history, gemini.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import ErrorKind, UpstreamError, UpstreamProtocolError
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
from ...sse import SSEEvent
from ..common import JSON, Context, dumps, flat_tool_name, json_str, loads, loads_object, tool_lookup, warn
from .errors import error_body, sse, stream_error
from .wire import NAME, Carried, count, encode_carried, get, one_line, wire_tool_name

__all__ = ["is_answer", "rename_model", "response_events", "render_response", "StreamParser", "StreamEmitter",
           "block_channel"]


def is_answer(first: JSON, stream: bool) -> bool:
    """Whether a whole answer (``stream``: its first chunk, the same shape) is Gemini's: candidates or a
    prompt block, with the metadata every Gemini answer carries, and none of the others' ``type`` or
    ``object``."""
    body = isinstance(first.get("candidates"), list) or isinstance(first.get("promptFeedback"), dict)
    meta = any(key in first for key in ("usageMetadata", "modelVersion", "responseId"))
    return body and meta and "type" not in first and "object" not in first


def rename_model(obj: JSON, new: str) -> bool:
    """A pass-through answer or chunk after a model rewrite: ``modelVersion`` says the client's model."""
    if isinstance(obj.get("modelVersion"), str) and obj["modelVersion"] != new:
        obj["modelVersion"] = new
        return True
    return False


# gemini.md §3.2 / §9.10. A call ends with STOP: tool use is told from the parts.
_FINISH_TO_IR = {
    "STOP": StopReason.END_TURN, "MAX_TOKENS": StopReason.MAX_TOKENS,
    "CONTINUATION": StopReason.MAX_TOKENS,  # stopped at a per-request limit: to other clients, a length stop
    **{reason: StopReason.REFUSAL for reason in (
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "LANGUAGE", "MODEL_ARMOR", "JAILBREAK")},
    **{reason: StopReason.OTHER for reason in (
        "OTHER", "FINISH_REASON_UNSPECIFIED", "NO_IMAGE", "IMAGE_OTHER", "ESCALATION", "PUP_LIMITED_DISABLED")},
}
# Finish reasons that say the answer failed: a retryable upstream error, or the request's fault.
_FINISH_ERRORS = {
    "MALFORMED_FUNCTION_CALL": (502, ErrorKind.API_ERROR, "the model wrote a function call that is not valid"),
    "UNEXPECTED_TOOL_CALL": (502, ErrorKind.API_ERROR, "the model called a tool it was not offered"),
    "TOO_MANY_TOOL_CALLS": (502, ErrorKind.API_ERROR, "the model made too many tool calls"),
    "MALFORMED_RESPONSE": (502, ErrorKind.API_ERROR, "the model's answer was malformed"),
    "MISSING_THOUGHT_SIGNATURE": (400, ErrorKind.INVALID_REQUEST, "a function call in the history lacks its "
                                  "thought signature"),
}
_IR_TO_FINISH = {
    StopReason.END_TURN: "STOP", StopReason.STOP_SEQUENCE: "STOP", StopReason.TOOL_USE: "STOP",
    StopReason.PAUSE: "STOP", StopReason.OTHER: "STOP", StopReason.MAX_TOKENS: "MAX_TOKENS",
    StopReason.CONTEXT_EXCEEDED: "MAX_TOKENS", StopReason.REFUSAL: "SAFETY",
}
# Gemini CLI takes a SAFETY finish with no text for a broken stream (gemini.md §9.10): say something.
_DECLINED = "The model declined to respond."


def _finish_reason(reason: StopReason, raw: str | None) -> str:
    """The upstream's own finish reason when it was Gemini's and means the same (RECITATION stays
    RECITATION), else the table's. CONTINUATION is never sent to a client that did not ask for it."""
    if raw and raw != "CONTINUATION" and _FINISH_TO_IR.get(raw) is reason:
        return raw
    return _IR_TO_FINISH[reason]


# --- usage (gemini.md §3.3, §9.8) -----------------------------------------------------------------


def _usage_to_ir(meta: Any) -> Usage:
    """promptTokenCount includes the cached tokens (the IR's input_tokens do not) and, with server-side
    tools, toolUsePromptTokenCount adds to it; output is candidates plus thoughts."""
    if not isinstance(meta, dict):
        return Usage()
    prompt, cached = count(meta.get("promptTokenCount")), count(meta.get("cachedContentTokenCount"))
    tool = count(meta.get("toolUsePromptTokenCount")) or 0
    candidates, thoughts = count(meta.get("candidatesTokenCount")), count(meta.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=None if prompt is None else max(prompt + tool - (cached or 0), 0),
        output_tokens=None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0),
        cache_read_tokens=cached, reasoning_tokens=thoughts)


def _usage_to_wire(usage: Usage) -> JSON:
    prompt, thoughts = usage.total_input, usage.reasoning_tokens or 0
    candidates = max((usage.output_tokens or 0) - thoughts, 0)
    wire: JSON = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
                  "totalTokenCount": prompt + candidates + thoughts}
    if usage.cache_read_tokens is not None:
        wire["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens is not None:
        wire["thoughtsTokenCount"] = thoughts
    return wire


# --- answer: wire → IR --------------------------------------------------------------------------


def response_events(body: JSON, ctx: Context) -> list[Event]:
    """A non-streamed GenerateContentResponse as the IR events its stream would have produced."""
    parser = StreamParser(ctx)
    return parser.chunk_events(body) + parser.close()


def _chunk(data: str) -> JSON:
    try:
        value = loads(data)
    except ValueError:
        raise UpstreamProtocolError(f"upstream sent an SSE event that is not JSON: {data[:200]!r}") from None
    if isinstance(value, list) and len(value) == 1:  # [{"error": …}] (gemini.md §4.6)
        value = value[0]
    if not isinstance(value, dict):
        raise UpstreamProtocolError("upstream sent an SSE event that is not a JSON object")
    return value


class StreamParser:
    """Gemini SSE events (``alt=sse``) → IR events; a sans-I/O machine with one open text-or-reasoning
    block (``_open``), the signature of the thought summary in it (``_signature``) and the phase
    ``_started``/``_done``."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tools = tool_lookup(ctx, wire_tool_name)  # upstream names are the rendered ones
        self._next_id = 0
        self._started = False
        self._done = False
        self._open: tuple[int, BlockKind] | None = None
        self._signature: str | None = None  # one that rode on a thought part of the open reasoning block
        self._calls = 0

    def feed(self, event: SSEEvent) -> list[Event]:
        if self._done:
            return []
        return self.chunk_events(_chunk(event.data))

    def close(self) -> list[Event]:
        if self._done:
            return []
        if not self._started:
            raise UpstreamProtocolError("upstream Gemini stream ended before any answer")
        raise UpstreamProtocolError("upstream Gemini stream ended before a finishReason")

    def chunk_events(self, chunk: JSON) -> list[Event]:
        if self._done:
            return []
        if isinstance(chunk.get("error"), dict):
            self._done = True
            return [stream_error(chunk["error"])]
        events: list[Event] = []
        usage = _usage_to_ir(chunk.get("usageMetadata"))
        if not self._started:
            self._started = True
            model = str(chunk.get("modelVersion") or "").removeprefix("models/")
            events.append(MessageStart(id=str(chunk.get("responseId") or ""), model=model, usage=usage))
        elif "usageMetadata" in chunk:
            events.append(UsageUpdate(usage=usage))  # cumulative: it replaces what came before
        candidates = [c for c in chunk.get("candidates") or () if isinstance(c, dict)]
        candidate = next((c for c in candidates if c.get("index", 0) == 0), None)  # candidateCount is 1
        if candidate is not None:
            content = candidate.get("content")
            for part in content.get("parts") or () if isinstance(content, dict) else ():
                if isinstance(part, dict):
                    events += self._part(part)
            if candidate.get("finishReason"):
                events += self._finish(str(candidate["finishReason"]))
        elif isinstance(chunk.get("promptFeedback"), dict) and chunk["promptFeedback"].get("blockReason"):
            # A blocked prompt is a 200 with no candidates (gemini.md §3.1): a refusal to other clients.
            self._done = True
            events.append(Finish(stop_reason=StopReason.REFUSAL, raw_stop_reason=str(chunk["promptFeedback"]
                                                                                   ["blockReason"])))
        return events

    def _part(self, part: JSON) -> list[Event]:
        signature = get(part, "thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        text = part.get("text")
        if part.get("thought") is True:
            return self._thought(text if isinstance(text, str) else "", signature)
        if text == "" and signature and self._open is not None and self._open[1] is BlockKind.TEXT:
            # A text answer's closing signature, on an empty last part (gemini.md §4.3 item 4): Gemini
            # validates only function calls' (§7), and no other format has a place after the text for
            # one (a thinking block there empties Claude Code's answer): not carried.
            return []
        events = self._close_text() if signature else []
        events += self._close_reasoning(signature)
        call = get(part, "functionCall")
        if isinstance(text, str):
            if text:
                events += self._text(BlockKind.TEXT, text)
        elif isinstance(call, dict):
            events += self._close_text()
            events += self._call(call)
        else:
            kinds = ", ".join(k for k in part if k not in ("thoughtSignature", "thought_signature")) or "empty"
            warn(self._ctx, f"upstream Gemini part ({kinds}) has no equivalent and was dropped")
        return events

    def _thought(self, text: str, signature: str | None) -> list[Event]:
        events = self._close_text()
        if signature and self._signature:  # a second signed thought: the first block is complete
            events += self._close_reasoning(None)
        if text or signature:
            events += self._text(BlockKind.REASONING, text)
        self._signature = signature or self._signature
        return events

    def _text(self, kind: BlockKind, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open[1] is not kind:
            events += self._close_text() + self._close_reasoning(None)
            self._open = (self._next_id, kind)
            events.append(BlockStart(block_id=self._next_id, kind=kind))
            self._next_id += 1
        if text:
            events.append(BlockDelta(block_id=self._open[0], text=text))
        return events

    def _close_text(self) -> list[Event]:
        if self._open is None or self._open[1] is not BlockKind.TEXT:
            return []
        bid, self._open = self._open[0], None
        return [BlockStop(block_id=bid)]

    def _close_reasoning(self, signature: str | None) -> list[Event]:
        """The open reasoning block stopped with its signature, or with ``signature`` (the next part's);
        with no reasoning open, a signature still gets its empty carrier block."""
        events: list[Event] = []
        if self._open is not None and self._open[1] is BlockKind.REASONING:
            bid, self._open = self._open[0], None
            own, self._signature = self._signature, None
            events.append(BlockStop(block_id=bid, opaque=Opaque(origin=NAME, data=own or signature or "")))
            if own is None or signature is None:
                return events
        if signature:
            bid, self._next_id = self._next_id, self._next_id + 1
            events += [BlockStart(block_id=bid, kind=BlockKind.REASONING),
                       BlockStop(block_id=bid, opaque=Opaque(origin=NAME, data=signature))]
        return events

    def _call(self, call: JSON) -> list[Event]:
        name = str(call.get("name") or "")
        tool = self._tools.get(name)
        kind = tool.kind if tool else ToolKind.FUNCTION
        args = call.get("args")
        args = args if isinstance(args, dict) else {}
        custom = args.get("input")  # a client's freeform tool, offered as a function of one string
        arguments = custom if kind is ToolKind.CUSTOM and isinstance(custom, str) else dumps(args)
        bid, self._next_id = self._next_id, self._next_id + 1
        self._calls += 1
        call_id = call.get("id")
        return [BlockStart(block_id=bid, kind=BlockKind.TOOL_CALL,
                           tool_call_id=call_id if isinstance(call_id, str) and call_id else self._ctx.new_id("call_"),
                           tool_name=tool.name if tool else name, tool_kind=kind,
                           tool_namespace=tool.namespace if tool else None),
                BlockDelta(block_id=bid, text=arguments), BlockStop(block_id=bid)]

    def _finish(self, raw: str) -> list[Event]:
        events = self._close_text() + self._close_reasoning(None)
        self._done = True
        if raw in _FINISH_ERRORS:
            status, kind, message = _FINISH_ERRORS[raw]
            return [*events, StreamError(status=status, kind=kind.value, message=f"{message} (finishReason {raw})")]
        reason = _FINISH_TO_IR.get(raw, StopReason.OTHER)
        if reason is StopReason.END_TURN and self._calls:
            reason = StopReason.TOOL_USE
        return [*events, Finish(stop_reason=reason, raw_stop_reason=raw)]


# --- answer: IR → wire --------------------------------------------------------------------------


@dataclass(slots=True)
class _Signer:
    """Where signatures go in what a Gemini client receives: Gemini's own on the next part that is not a
    thought, reasoning of another origin on the next functionCall, whatever is left on empty text parts
    at the end."""

    native: str | None = None
    carried: list[Carried] = field(default_factory=list)

    def reasoning(self, opaque: Opaque | None, text: str, redacted: bool) -> list[JSON]:
        """A reasoning block ended; returns parts to send now (a signature it displaces)."""
        if opaque is None or (opaque.origin == NAME and not opaque.data):
            return []
        if opaque.origin != NAME:
            self.carried.append(Carried(opaque, text, redacted))
            return []
        displaced = [{"text": "", "thoughtSignature": self.native}] if self.native else []
        self.native = opaque.data
        return displaced

    def sign(self, part: JSON, call: bool) -> JSON:
        if self.native:
            part["thoughtSignature"], self.native = self.native, None
        elif call and self.carried:
            part["thoughtSignature"], self.carried = encode_carried(self.carried), []
        return part

    def rest(self) -> list[JSON]:
        out = [{"text": "", "thoughtSignature": self.native}] if self.native else []
        if self.carried:
            out.append({"text": "", "thoughtSignature": encode_carried(self.carried)})
        self.native, self.carried = None, []
        return out


def _call_part(call_id: str, name: str, kind: ToolKind, arguments: str) -> JSON:
    args = {"input": arguments} if kind is ToolKind.CUSTOM else loads_object(arguments)
    # Arguments cut short (a max_tokens stop) are not an object: a Gemini client only takes objects.
    return {"functionCall": {"id": call_id, "name": name, "args": args if args is not None else {"_raw": arguments}}}


def _candidate(parts: list[JSON], finish: str | None) -> JSON:
    candidate: JSON = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


def render_response(resp: Response, ctx: Context) -> JSON:
    signer, parts, said = _Signer(), [], False
    for part in resp.content:
        match part:
            case Text(text=text) if text:
                parts.append(signer.sign({"text": text}, call=False))
                said = True
            case Reasoning(text=text, opaque=opaque, redacted=redacted):
                if text and not redacted:
                    parts.append({"text": text, "thought": True})
                parts += signer.reasoning(opaque, text, redacted)
            case ToolCall(id=call_id, name=name, arguments=args, kind=kind, namespace=namespace):
                parts.append(signer.sign(_call_part(call_id, flat_tool_name(namespace, name), kind, args), call=True))
    if resp.stop_reason is StopReason.REFUSAL and not said:
        parts.append({"text": _DECLINED})
    parts += signer.rest()
    return {"candidates": [_candidate(parts or [{"text": ""}], _finish_reason(resp.stop_reason, resp.raw_stop_reason))],
            "usageMetadata": _usage_to_wire(resp.usage), "modelVersion": ctx.client_model or resp.model,
            "responseId": resp.id or ctx.new_id("")}


@dataclass(slots=True)
class _Block:
    start: BlockStart
    texts: list[str] = field(default_factory=list)


class StreamEmitter:
    """IR events → Gemini chunks in the framing the client asked for (``ctx.framing``): SSE events of
    exactly ``data: `` + one line of JSON + CRLF CRLF (gemini.md §4.1, §4.4, §4.5), or one JSON array
    (``[``, objects separated by ``,\\r\\n``, ``]``, §4.2). Every chunk has non-empty parts and the usage
    known so far; the last has ``finishReason`` and the final usage."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._array = ctx.framing == "json-array"
        self._id: str | None = None
        self._model = ""
        self._tail = ""  # the chunk's JSON after its parts: index, usage, modelVersion, responseId
        self._usage = Usage()
        self._blocks: dict[int, _Block] = {}
        self._signer = _Signer()
        self._written = 0  # chunks written
        self._bracket = False  # "[" written (JSON array)
        self._said = False
        self._ended = False

    def feed(self, event: Event) -> list[bytes]:
        if self._ended:
            return []
        match event:
            case MessageStart(id=id_, model=model, usage=usage):
                self._start(id_, model)
                self._usage = self._usage.merged(usage)
                self._tail = ""
                return self._open_array()
            case BlockStart(block_id=bid):
                self._blocks[bid] = _Block(event)
                return []
            case BlockDelta(block_id=bid, text=text):
                return self._delta(self._blocks[bid], text)
            case BlockStop(block_id=bid, opaque=opaque):
                return self._stop(self._blocks.pop(bid), opaque)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merged(usage)
                self._tail = ""
                return []
            case Finish(stop_reason=reason, raw_stop_reason=raw):
                return self._finish(reason, raw)
            case StreamError():
                self._ended = True
                err = UpstreamError(event.message, status=event.status, kind=ErrorKind(event.kind))
                return [self._frame(one_line(dumps(error_body(err)[1])), last=True)]
        return []

    def _start(self, upstream_id: str, model: str) -> None:
        if self._id is None:
            self._id = upstream_id or self._ctx.new_id("")
            self._model = self._ctx.client_model or model

    def _open_array(self) -> list[bytes]:
        if not self._array or self._bracket:
            return []
        self._bracket = True
        return [b"["]

    def _delta(self, block: _Block, text: str) -> list[bytes]:
        kind = block.start.kind
        if kind is BlockKind.TOOL_CALL or kind is BlockKind.REASONING:
            self._ctx.budget.take(text)  # kept: a call goes whole at its stop, reasoning text in its carrier
            block.texts.append(text)
        if not text or kind is BlockKind.TOOL_CALL:
            return []
        if kind is BlockKind.REASONING:
            return [self._chunk(f'{{"text":{json_str(text)},"thought":true}}')]
        self._said = True
        if self._signer.native:
            return [self._chunk(dumps(self._signer.sign({"text": text}, call=False)))]
        return [self._chunk(f'{{"text":{json_str(text)}}}')]

    def _stop(self, block: _Block, opaque: Opaque | None) -> list[bytes]:
        start = block.start
        if start.kind is BlockKind.REASONING:
            displaced = self._signer.reasoning(opaque, "".join(block.texts), start.redacted)
            return [self._chunk(",".join(dumps(p) for p in displaced))] if displaced else []
        if start.kind is BlockKind.TEXT:
            return []
        name = flat_tool_name(start.tool_namespace, start.tool_name or "")
        part = _call_part(start.tool_call_id or "", name, start.tool_kind, "".join(block.texts))
        return [self._chunk(dumps(self._signer.sign(part, call=True)))]

    def _finish(self, reason: StopReason, raw: str | None) -> list[bytes]:
        self._start("", "")
        parts = [{"text": _DECLINED}] if reason is StopReason.REFUSAL and not self._said else []
        parts += self._signer.rest()
        out = self._open_array()
        out.append(self._chunk(",".join(dumps(p) for p in parts or [{"text": ""}]),
                               finish=_finish_reason(reason, raw), last=True))
        self._ended = True
        return out

    def _chunk(self, parts: str, finish: str | None = None, last: bool = False) -> bytes:
        """A GenerateContentResponse around ``parts`` (their JSON, comma-separated), written from a
        template: deltas are nearly every chunk, and building their dicts cost more than the rest."""
        self._start("", "")
        if not self._tail:
            usage = self._usage
            known = usage.input_tokens is not None or usage.output_tokens is not None
            self._tail = (f',"usageMetadata":{dumps(_usage_to_wire(usage))}' if known else "") + \
                f',"modelVersion":{json_str(self._model)},"responseId":{json_str(self._id or "")}}}'
        tail = self._tail
        if last and '"usageMetadata"' not in tail:  # the final usage is always there, 0 when unknown
            tail = f',"usageMetadata":{dumps(_usage_to_wire(self._usage))}' + tail
        head = '{"candidates":[{"content":{"role":"model","parts":['
        finish_field = f',"finishReason":{json_str(finish)}' if finish else ""
        text = f'{head}{parts}]}}{finish_field},"index":0}}]{tail}'
        return self._frame(one_line(text), last)

    def _frame(self, data: bytes, last: bool) -> bytes:
        """SSE, or an element of the JSON array (closing it after the last one)."""
        if not self._array:
            return sse(data)
        lead = b"" if self._written == 0 else b",\r\n"
        if not self._bracket:
            self._bracket, lead = True, b"["
        self._written += 1
        return lead + data + (b"]" if last else b"")


def block_channel(start: BlockStart) -> str:
    """Each chunk carries whole parts and a call goes whole at its stop, so calls may overlap anything.
    Text, and reasoning, are one channel each: two text blocks at once would mix their words."""
    if start.kind is BlockKind.TOOL_CALL:
        return f"call {start.block_id}"
    return start.kind.value
