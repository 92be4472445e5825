"""What the speed work of docs/benchmark.md ("Where a stream's CPU goes") relies on: the SSE decoder reads
events as the specification does however they are split (its "\n" lines are read inline), and the test that
sends an integer orjson would misread to the json module sends every such integer and little else."""

from __future__ import annotations

import json
import random
import re

import pytest

from addon.formats.common import _long_integer, loads
from addon.sse import SSEDecoder, SSEEvent


def decoded(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    events = [ev for chunk in chunks for ev in decoder.feed(chunk)] + decoder.close()
    return [(ev.event, ev.data) for ev in events]


def reference(wire: bytes) -> list[tuple[str | None, str]]:
    """The WHATWG event-stream interpretation, written plainly: lines end at CRLF, LF or CR; an empty line
    dispatches the event; a last event without its empty line is dispatched at the end (as ``close`` does)."""
    events: list[tuple[str | None, str]] = []
    data: list[str] = []
    name: str | None = None
    for line in [*re.split(r"\r\n|\r|\n", wire.decode("utf-8")), ""]:
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            data, name = [], None
        elif not line.startswith(":"):
            field, sep, value = line.partition(":")
            value = value[1:] if sep and value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
    return events


PIECES = [b"data: {\"a\": 1}\n\n", b"event: delta\ndata: {\"b\": \"\xc3\xa9\"}\n\n", b"data: [DONE]\n\n",
          b": comment\n\n", b"id: 7\ndata: x\n\n", b"data: one\ndata: two\n\n", b"event:tight\ndata:tight\n\n",
          b"data: " + b"x" * 300 + b"\n\n", b"\n\n", b"data: a\r\n\r\n", b"retry: 5\n\n", b"data:  two spaces\n\n",
          b"event: a:b\ndata: c\n\n", b"event: only\n\n", b"event: g\r\ndata: {\"c\": 2}\r\n\r\n", b"data\n\n",
          b"data: mixed\r\n\n", b"data: cr\r\r", b"event: e\nevent: f\ndata: last name wins\n\n",
          b"data: \xe2\x82\xac\n\n", b"data: no blank line yet\n"]


@pytest.mark.parametrize("seed", range(400))
def test_events_decode_as_the_specification_reads_them_however_split(seed: int) -> None:
    rng = random.Random(seed)
    events = [rng.choice(PIECES) for _ in range(rng.randint(1, 12))]
    wire = b"".join(events)
    cuts = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(0, 6))))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    expected = reference(wire)
    for split in (chunks, [wire], events):  # events: one chunk each, as upstreams send them
        assert decoded(split) == expected


def test_events_are_named_tuples_of_name_and_data() -> None:
    [event] = SSEDecoder().feed(b"event: x\ndata: y\n\n")
    assert event == SSEEvent("x", "y") and event.event == "x" and event.data == "y"


@pytest.mark.parametrize("text", [
    "123456789012345678901234", "-123456789012345678901234", "[1,-12345678901234567890123]",
    '{"a":\t99999999999999999999}', '{"a": [1, 2, 18446744073709551616]}', '\n-9223372036854775809'])
def test_an_integer_past_64_bits_goes_to_the_json_module(text: str) -> None:
    assert _long_integer(text) and _long_integer(text.encode())
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    '{"id": "chatcmpl-000000000000000000000001"}', '{"id": "toolu_bench0000000000000000000000"}',
    '{"n": 12345678901234567890.5}', '{"n": 12345678901234567890e2}', '{"n": 1234567890123456789E-2}',
    '{"created": 1700000000, "n": 123456789012345678}', '{"t": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669'
    '\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"}'])
def test_digits_that_are_no_such_integer_stay_with_orjson(text: str) -> None:
    assert not _long_integer(text)
    assert loads(text) == json.loads(text)
