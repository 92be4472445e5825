"""Fold IR stream events into one IR response: the only way a non-streamed response is built.

Every upstream answer, streamed or not, becomes IR events first (a JSON body through its format's
``response_events``); a client that did not ask for a stream gets ``render_response(accumulate(...))``.
So the streamed and the non-streamed answer come from one code path and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ErrorKind, UpstreamError, UpstreamProtocolError
from .ir import (
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
    StreamError,
    Text,
    ToolCall,
    Usage,
    UsageUpdate,
)

__all__ = ["Accumulator", "accumulate"]


class Accumulator:
    """Incremental fold: ``feed`` events as they come, ``result()`` once the stream has finished."""

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._usage = Usage()
        self._blocks: dict[int, tuple[BlockStart, list[str]]] = {}
        self._content: dict[int, Text | ToolCall | Reasoning] = {}  # by block id, in start order
        self._finish: Finish | None = None
        self._error: StreamError | None = None

    def feed(self, event: Event) -> None:
        match event:
            case MessageStart(id=id_, model=model, usage=usage):
                self._id, self._model = id_, model
                self._usage = self._usage.merged(usage)
            case BlockStart(block_id=bid):
                self._blocks[bid] = (event, [])
                self._content[bid] = _part(event, "", None)  # its place: blocks may overlap, start order holds
            case BlockDelta(block_id=bid, text=text):
                self._blocks[bid][1].append(text)
            case BlockStop(block_id=bid, opaque=opaque):
                start, parts = self._blocks.pop(bid)
                self._content[bid] = _part(start, "".join(parts), opaque)
            case UsageUpdate(usage=usage):
                self._usage = self._usage.merged(usage)
            case Finish():
                for bid in list(self._blocks):  # a block the upstream never stopped still belongs to the answer
                    start, parts = self._blocks.pop(bid)
                    self._content[bid] = _part(start, "".join(parts), None)
                self._finish = event
            case StreamError():
                self._error = event

    def result(self) -> Response:
        """The folded response. Raises the stream's error, or a protocol error if it never finished."""
        if self._error is not None:
            e = self._error
            raise UpstreamError(e.message, status=e.status, kind=ErrorKind(e.kind))
        if self._finish is None:
            raise UpstreamProtocolError("upstream response ended before it finished")
        return Response(
            id=self._id, model=self._model, content=tuple(self._content.values()),
            stop_reason=self._finish.stop_reason, raw_stop_reason=self._finish.raw_stop_reason,
            stop_sequence=self._finish.stop_sequence, usage=self._usage,
        )


def _part(start: BlockStart, text: str, opaque: Opaque | None) -> Text | ToolCall | Reasoning:
    if start.kind is BlockKind.TEXT:
        return Text(text=text)
    if start.kind is BlockKind.REASONING:
        return Reasoning(text=text, opaque=opaque, redacted=start.redacted)
    return ToolCall(id=start.tool_call_id or "", name=start.tool_name or "", arguments=text,
                    kind=start.tool_kind, namespace=start.tool_namespace)


def accumulate(events: Iterable[Event]) -> Response:
    """Fold a complete event sequence. Raises :class:`BridgeError` on a failed or unfinished one."""
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    return acc.result()

