"""addon.sse: the incremental SSE decoder and the encoder (formats.md §4.1, §7.8-§7.10).

Every table case is fed whole, one byte at a time, at every two-way split, and with trailing data
(h11's ``tr()`` pattern, style.md item 13), and must give the same events each way.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.errors import UpstreamProtocolError
from addon.sse import SSEDecoder, SSEEvent, encode_event

E = SSEEvent

# (name, wire bytes, events after feed + close)
CASES = [
    ("data only", b"data: hello\n\n", [E(None, "hello")]),
    ("event name", b"event: message_start\ndata: {}\n\n", [E("message_start", "{}")]),
    ("two events", b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", [E("a", "1"), E("b", "2")]),
    ("crlf", b"event: a\r\ndata: x\r\n\r\n", [E("a", "x")]),
    ("cr only", b"event: a\rdata: x\r\rdata: y\r\r", [E("a", "x"), E(None, "y")]),
    ("mixed line ends", b"data: a\r\ndata: b\rdata: c\n\r\n", [E(None, "a\nb\nc")]),
    ("comment lines", b": keepalive\ndata: x\n: another\n\n", [E(None, "x")]),
    ("comment-only event dispatches nothing", b": ping\n\n", []),
    ("multi-line data", b"data: first\ndata: second\ndata: third\n\n", [E(None, "first\nsecond\nthird")]),
    ("data without space", b"data:{\"a\":1}\n\n", [E(None, '{"a":1}')]),
    ("only one space stripped", b"data:  two spaces\n\n", [E(None, " two spaces")]),
    ("colon inside the value", b"event: a:b\ndata: x: y\n\n", [E("a:b", "x: y")]),
    ("id, retry and unknown fields ignored", b"id: 7\nretry: 100\nfoo: bar\ndata: x\n\n", [E(None, "x")]),
    ("event name without data is dropped and does not leak", b"event: a\n\ndata: x\n\n", [E(None, "x")]),
    ("several blank lines", b"\n\n\ndata: x\n\n\n\n", [E(None, "x")]),
    ("multibyte utf-8", "data: héllo 🌍 日本\n\n".encode(), [E(None, "héllo 🌍 日本")]),
    ("final event without blank line", b"data: a\n\ndata: last", [E(None, "a"), E(None, "last")]),
    ("final event with one newline", b"event: e\ndata: last\n", [E("e", "last")]),
    ("final event ending in cr", b"data: last\r", [E(None, "last")]),
    ("done sentinel is plain data", b"data: [DONE]\n\n", [E(None, "[DONE]")]),
    # gemini.md §4.6: a failed stream may end in a raw, pretty-printed JSON error instead of an event
    ("raw JSON error tail", b'data: {"a":1}\n\n{\n  "error": {\n    "code": 503,\n    "message": "busy: try"\n  }\n}\n',
     [E(None, '{"a":1}'), E("error", '{"error":{"code":503,"message":"busy: try"}}')]),
    ("raw JSON error tail, crlf", b'data: x\r\n\r\n{\r\n  "error": {\r\n    "code": 429\r\n  }\r\n}\r\n',
     [E(None, "x"), E("error", '{"error":{"code":429}}')]),
    ("raw JSON error tail in a list of one", b'data: x\n\n[{\n  "error": {"code": 500}\n}]\n',
     [E(None, "x"), E("error", '{"error":{"code":500}}')]),
    ("a raw JSON tail that is no error is ignored", b'data: x\n\n{\n  "note": 1\n}\n', [E(None, "x")]),
    ("stray lines before an event are forgotten", b'{"error": {"code": 1}}\ndata: x\n\n', [E(None, "x")]),
]
IDS = [c[0] for c in CASES]
TERMINATED = [c for c in CASES if c[1].endswith((b"\n\n", b"\r\r", b"\r\n\r\n"))]


def run(chunks: list[bytes], decoder: SSEDecoder | None = None) -> list[SSEEvent]:
    decoder = decoder or SSEDecoder()
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


@pytest.mark.parametrize(("name", "wire", "expected"), CASES, ids=IDS)
def test_whole(name: str, wire: bytes, expected: list[SSEEvent]) -> None:
    assert run([wire]) == expected


@pytest.mark.parametrize(("name", "wire", "expected"), CASES, ids=IDS)
def test_one_byte_at_a_time(name: str, wire: bytes, expected: list[SSEEvent]) -> None:
    assert run([wire[i:i + 1] for i in range(len(wire))]) == expected


@pytest.mark.parametrize(("name", "wire", "expected"), CASES, ids=IDS)
def test_every_two_way_split(name: str, wire: bytes, expected: list[SSEEvent]) -> None:
    for i in range(len(wire) + 1):
        assert run([wire[:i], wire[i:]]) == expected, f"split at {i}"


@pytest.mark.parametrize(("name", "wire", "expected"), TERMINATED, ids=[c[0] for c in TERMINATED])
def test_with_trailing_data(name: str, wire: bytes, expected: list[SSEEvent]) -> None:
    """The case's events come out of feed(); an incomplete event after it waits for close()."""
    decoder = SSEDecoder()
    assert decoder.feed(wire + b"data: tail") == expected
    assert decoder.close() == [E(None, "tail")]


def test_events_are_dispatched_at_the_blank_line_not_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n") == []
    assert decoder.feed(b"\n") == [E("a", "1")]
    assert decoder.feed(b"data: 2\r\n\r\n") == [E(None, "2")]
    assert decoder.close() == []


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    """A "\\r" at the end of a chunk must not end the event when the next chunk starts with "\\n"."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [E(None, "a\nb")]


def test_split_multibyte_character_is_decoded_whole() -> None:
    text = "🌍日本é"
    wire = f"data: {text}\n\n".encode()
    for i in range(len(wire)):  # includes every position inside the 4-, 3- and 2-byte characters
        decoder = SSEDecoder()
        assert decoder.feed(wire[:i]) + decoder.feed(wire[i:]) == [E(None, text)], i


def test_close_is_idempotent_and_resets() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: x")
    assert decoder.close() == [E(None, "x")]
    assert decoder.close() == []


# --- limits and invalid input ---------------------------------------------------------------------


def test_oversize_event_in_one_chunk_raises() -> None:
    with pytest.raises(UpstreamProtocolError, match="exceeds 100 bytes"):
        SSEDecoder(max_event_size=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_oversize_unterminated_line_raises_before_its_end() -> None:
    """The buffer must not grow without bound while waiting for a line end."""
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(UpstreamProtocolError):
        for _ in range(50):
            decoder.feed(b"x" * 10)


def test_oversize_over_several_data_lines_raises() -> None:
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(UpstreamProtocolError):
        for _ in range(20):
            decoder.feed(b"data: 0123456789\n")


def test_size_limit_is_per_event() -> None:
    decoder = SSEDecoder(max_event_size=100)
    wire = b"data: " + b"y" * 80 + b"\n\n"
    events = run([wire] * 5, decoder)
    assert events == [E(None, "y" * 80)] * 5


@pytest.mark.parametrize("wire", [b"data: \xff\n\n", b"data: caf\xc3\n\n", b"event: \xe6\x97\n\ndata: x\n\n",
                                  b"data: \xed\xa0\x80\n\n"])  # lone byte, truncated char, surrogate
def test_invalid_utf8_raises(wire: bytes) -> None:
    with pytest.raises(UpstreamProtocolError, match="UTF-8"):
        run([wire])
    with pytest.raises(UpstreamProtocolError, match="UTF-8"):
        run([wire[i:i + 1] for i in range(len(wire))])


def test_invalid_utf8_in_final_unterminated_line_raises_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: \xff") == []
    with pytest.raises(UpstreamProtocolError):
        decoder.close()


# --- encoder --------------------------------------------------------------------------------------


def test_lone_surrogate_is_written_as_its_json_escape() -> None:
    data = json.dumps({"t": json.loads('"a\\ud800b"')}, ensure_ascii=False)  # what json.loads lets through
    wire = encode_event(data)
    assert wire == b'data: {"t": "a\\ud800b"}\n\n'
    assert json.loads(run([wire])[0].data) == {"t": "a\ud800b"}


def test_encode_event_shapes() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event('{"type":"ping"}', "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert encode_event("日本") == "data: 日本\n\n".encode()


# Surrogates are excluded: a lone one cannot be UTF-8 and is written as its JSON escape (tested below).
_line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=40)
_event = st.tuples(st.one_of(st.none(), _line_text), _line_text)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(_event, max_size=6), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_encode_decode_round_trip_at_any_split(events: list[tuple[str | None, str]], cuts: list[int]) -> None:
    wire = b"".join(encode_event(data, name) for name, data in events)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert run(chunks) == [E(name, data) for name, data in events]


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_events_before_a_bad_line_come_out_first_and_the_error_follows(crlf: bool) -> None:
    body = b"data: one\n\ndata: two\n\ndata: \xff\xfe\n\ndata: three\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(body.replace(b"\n", b"\r\n") if crlf else body) == [E(None, "one"), E(None, "two")]
    assert decoder.error is not None and "UTF-8" in str(decoder.error)
    with pytest.raises(UpstreamProtocolError, match="UTF-8"):
        decoder.feed(b"data: more\n\n")
    with pytest.raises(UpstreamProtocolError, match="UTF-8"):
        decoder.close()


def test_a_raw_tail_is_kept_only_up_to_its_bound() -> None:
    """What is no SSE field is kept for an error at the end, but never more than 64 KiB of it."""
    tail = b'{\n  "error": {"message": "' + b"x" * (70 * 1024) + b'"}\n}\n'
    assert run([b"data: x\n\n", tail]) == [E(None, "x")]
