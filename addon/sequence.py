"""Blocks as a client format can take them: overlapping ones in turn where it must, none left open.

Theory of operation
-------------------
Upstreams may overlap blocks: OpenRouter's Responses stream opens its message while its reasoning
item is still open, and some Chat servers interleave the argument fragments of parallel tool calls.
The IR carries that as it is (every block event names its block). What a client can take depends on
its format, which puts each block on a *channel* (``block_channel``): blocks on different channels
may overlap, blocks on one channel must come one at a time. An Anthropic client's content blocks are
all one channel; a Chat client has one for text, one for reasoning and one per tool call (each has its
own index); a Responses client has one per item. So :class:`BlockOrder`

* lets a block pass straight through, live, when its channel is free (always, when nothing overlaps);
* holds a block that starts while another block of its channel is open (its start, its deltas, its
  stop) until that one stops; then that channel's held blocks go out in the order they started, whole
  ones at once, and the first still open becomes the one passing through;
* stops, before ``Finish``, every block still open (a stream cut by ``max_tokens`` in the middle of a
  tool call's arguments), and sends every held one, so the client's answer lists them all.

What is held counts against the answer's budget (``max_answer_bytes``): past it the stream ends with
the client's error event, as when any translator would have to keep more than that.
"""

from __future__ import annotations

from collections.abc import Callable

from .formats.common import Budget
from .ir import BlockDelta, BlockStart, BlockStop, Event, Finish

__all__ = ["BlockOrder"]


class BlockOrder:
    """IR events in, the same events out in an order the client format takes. Sans I/O."""

    def __init__(self, budget: Budget, channel: Callable[[BlockStart], str] | None = None) -> None:
        """``channel``: the client format's ``block_channel`` (None: every block a channel of its own)."""
        self._budget = budget
        self._channel = channel
        self._passing: dict[str, int] = {}  # channel → the block passing through on it
        self._open: dict[int, None] = {}  # blocks passed on, not stopped, in start order
        self._held: dict[int, tuple[str, list[Event]]] = {}  # blocks waiting (by id), in start order
        self.held = self._held  # read-only for the translator: while it is empty, a delta passes as it is

    def order(self, events: list[Event]) -> list[Event]:
        """``feed`` for a parser's batch; most are one delta with nothing held, which passes as it is."""
        if len(events) == 1 and type(events[0]) is BlockDelta and not self._held:
            return events
        return [ordered for ev in events for ordered in self.feed(ev)]

    def feed(self, event: Event) -> list[Event]:
        match event:
            case BlockStart(block_id=bid):
                channel = self._channel(event) if self._channel else str(bid)
                if channel in self._passing or any(ch == channel for ch, _ in self._held.values()):
                    self._held[bid] = (channel, [event])
                    return []
                self._passing[channel] = bid
                self._open[bid] = None
                return [event]
            case BlockDelta(block_id=bid) | BlockStop(block_id=bid) if bid in self._held:
                if isinstance(event, BlockDelta):
                    self._budget.take(event.text)
                self._held[bid][1].append(event)
                return []
            case BlockStop(block_id=bid) if bid in self._open:
                del self._open[bid]
                channel = next(ch for ch, b in self._passing.items() if b == bid)
                del self._passing[channel]
                return [event, *self._release(channel)]
            case Finish():
                return [*self._flush(), event]
        return [event]

    def _release(self, channel: str) -> list[Event]:
        """The channel's held blocks that can go now: whole ones in start order, up to the first still open."""
        out: list[Event] = []
        while channel not in self._passing:
            bid = next((b for b, (ch, _) in self._held.items() if ch == channel), None)
            if bid is None:
                break
            events = self._held.pop(bid)[1]
            out += events
            if not isinstance(events[-1], BlockStop):
                self._passing[channel] = bid
                self._open[bid] = None
        return out

    def _flush(self) -> list[Event]:
        """At the finish: every block still open stopped, every held one sent whole, in start order."""
        out: list[Event] = [BlockStop(block_id=bid) for bid in self._open]
        for bid, (_, events) in self._held.items():
            out += events
            if not isinstance(events[-1], BlockStop):
                out.append(BlockStop(block_id=bid))
        self._open.clear()
        self._passing.clear()
        self._held.clear()
        return out
