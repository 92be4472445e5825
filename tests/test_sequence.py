"""BlockOrder (addon/sequence.py): overlapping blocks in the order a client format takes them."""

from __future__ import annotations

import pytest

from addon.formats import FORMATS
from addon.formats.common import AnswerTooLarge, Budget
from addon.ir import BlockDelta, BlockKind, BlockStart, BlockStop, Event, Finish, StopReason
from addon.sequence import BlockOrder

TEXT, CALL = BlockKind.TEXT, BlockKind.TOOL_CALL
FINISH = Finish(stop_reason=StopReason.END_TURN)


def start(bid: int, kind: BlockKind = TEXT) -> BlockStart:
    if kind is CALL:
        return BlockStart(block_id=bid, kind=kind, tool_call_id=f"c{bid}", tool_name="f")
    return BlockStart(block_id=bid, kind=kind)


def delta(bid: int, text: str) -> BlockDelta:
    return BlockDelta(block_id=bid, text=text)


def stop(bid: int) -> BlockStop:
    return BlockStop(block_id=bid)


def run(client: str, events: list[Event], budget: Budget | None = None) -> list[list[Event]]:
    """What comes out for each event fed, one list per event."""
    order = BlockOrder(budget or Budget(), FORMATS[client].block_channel)
    return [order.feed(ev) for ev in events]


def test_without_overlap_every_event_goes_out_as_it_comes() -> None:
    events: list[Event] = [start(0, BlockKind.REASONING), delta(0, "hm"), stop(0), start(1), delta(1, "Hi"), stop(1),
                           start(2, CALL), delta(2, "{}"), stop(2), FINISH]
    for client in FORMATS:
        assert run(client, events) == [[ev] for ev in events], client


def test_an_anthropic_client_gets_an_overlapping_block_whole_when_the_open_one_stops() -> None:
    events: list[Event] = [start(0, BlockKind.REASONING), delta(0, "a"), start(1), delta(1, "Hi"), delta(0, "b"),
                           stop(0), delta(1, "!"), stop(1), FINISH]
    out = run("anthropic", events)
    assert out[:5] == [[events[0]], [events[1]], [], [], [events[4]]]
    assert out[5] == [stop(0), start(1), delta(1, "Hi")]  # block 1 so far, then it passes live
    assert out[6:] == [[delta(1, "!")], [stop(1)], [FINISH]]


def test_held_blocks_go_out_in_the_order_they_started() -> None:
    events: list[Event] = [start(0), start(1, CALL), start(2, CALL), delta(2, "{}"), stop(2), delta(1, "{"),
                           delta(0, "x"), stop(0), delta(1, "}"), stop(1)]
    out = run("anthropic", events)
    assert out[-3] == [stop(0), start(1, CALL), delta(1, "{")]  # block 2 started later: it waits for 1
    assert out[-2:] == [[delta(1, "}")], [stop(1), start(2, CALL), delta(2, "{}"), stop(2)]]


@pytest.mark.parametrize("client", ["chat", "responses"])
def test_formats_that_can_interleave_get_overlapping_calls_as_they_come(client: str) -> None:
    events: list[Event] = [start(0, CALL), delta(0, "{"), start(1, CALL), delta(1, "{"), delta(0, "}"), stop(0),
                           delta(1, "}"), stop(1), FINISH]
    assert run(client, events) == [[ev] for ev in events]


def test_a_chat_client_takes_one_text_block_at_a_time() -> None:
    out = run("chat", [start(0), start(1), delta(1, "b"), delta(0, "a"), stop(0), FINISH])
    assert out == [[start(0)], [], [], [delta(0, "a")], [stop(0), start(1), delta(1, "b")], [stop(1), FINISH]]


def test_the_finish_stops_open_blocks_and_sends_held_ones() -> None:
    out = run("anthropic", [start(0, CALL), delta(0, '{"a"'), start(1, CALL), delta(1, '{"b"'), FINISH])
    assert out[-1] == [stop(0), start(1, CALL), delta(1, '{"b"'), stop(1), FINISH]


def test_what_is_held_counts_against_the_budget() -> None:
    order = BlockOrder(Budget(10), FORMATS["anthropic"].block_channel)
    order.feed(start(0))
    order.feed(delta(0, "x" * 100))  # passing through live: not kept, not counted
    order.feed(start(1))
    order.feed(delta(1, "y" * 10))
    with pytest.raises(AnswerTooLarge, match="max_answer_bytes"):
        order.feed(delta(1, "y"))
