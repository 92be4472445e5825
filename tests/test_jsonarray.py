"""Gemini's JSON-array stream split into its objects (``addon/jsonarray.py``), and the model renamer that
uses it on a pass-through stream: every split of the bytes gives the same objects, and every byte
comes back out, in order."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.errors import UpstreamProtocolError
from addon.formats import gemini
from addon.jsonarray import ArraySplitter
from addon.translate import ModelRenamer

# Strings that look like structure: braces, quotes and backslashes inside text are text.
TRICKY = ['a "quoted" {brace}', "back\\slash \\", 'end}"{', "ünïcode ✓ \u2028", "[1, 2]", ""]
OBJECTS = [{"candidates": [{"content": {"parts": [{"text": t}], "role": "model"}}], "modelVersion": "up-001"}
           for t in TRICKY] + [{"nested": {"a": [{"b": {}}]}, "modelVersion": "up-001"}]


def array(objects: list[dict], pretty: bool) -> bytes:
    """Framed as the API frames it: pretty-printed with ``,\\r\\n`` between objects, or compact."""
    if pretty:
        return ("[" + ",\r\n".join(json.dumps(o, indent=2) for o in objects) + "]").encode()
    return ("[" + ",".join(json.dumps(o, separators=(",", ":")) for o in objects) + "]").encode()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def run(chunks: list[bytes], limit: int = 1 << 20) -> list[tuple[bool, bytes]]:
    splitter = ArraySplitter(limit)
    out = [piece for chunk in chunks for piece in splitter.feed(chunk)]
    return out + splitter.close()


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_every_byte_boundary(pretty: bool) -> None:
    data = array(OBJECTS, pretty)
    for cut in range(len(data) + 1):
        out = run([data[:cut], data[cut:]])
        assert b"".join(b for _, b in out) == data, cut
        assert [json.loads(b) for whole, b in out if whole] == OBJECTS, cut


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12), pretty=st.booleans())
def test_random_splits(cuts: list[int], pretty: bool) -> None:
    data = array(OBJECTS, pretty)
    out = run(split(data, cuts))
    assert b"".join(b for _, b in out) == data
    assert [json.loads(b) for whole, b in out if whole] == OBJECTS
    assert all(not b.strip(b"[],\r\n ") for whole, b in out if not whole)  # only framing between objects


def test_a_backslash_at_the_end_of_a_chunk_escapes_the_next_one() -> None:
    data = b'[{"text": "a\\"}"}]'  # the quote after the backslash is text, so is the brace
    cut = data.index(b"\\") + 1
    out = run([data[:cut], data[cut:]])
    assert [json.loads(b) for whole, b in out if whole] == [{"text": 'a"}'}]


def test_an_unfinished_object_comes_back_as_it_is() -> None:
    assert run([b'[{"a": 1},\r\n{"b": "{']) == [(False, b"["), (True, b'{"a": 1}'), (False, b",\r\n"),
                                                (False, b'{"b": "{')]


def test_an_object_over_the_limit_is_the_upstreams_fault() -> None:
    splitter = ArraySplitter(64)
    splitter.feed(b'[{"text": "' + b"x" * 40)
    with pytest.raises(UpstreamProtocolError, match="over 64 bytes"):
        splitter.feed(b"x" * 40)


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_the_renamer_puts_the_clients_model_in_every_object_and_keeps_the_framing(pretty: bool) -> None:
    data = array(OBJECTS, pretty)
    renamer = ModelRenamer("up", "client-model", gemini.rename_model, "json-array")
    out = b"".join(piece for i in range(0, len(data), 7) for piece in renamer.feed(data[i:i + 7]))
    out += b"".join(renamer.close())
    got = json.loads(out)
    assert got == [{**o, "modelVersion": "client-model"} for o in OBJECTS]
    assert out.count(b",\r\n" if pretty else b"},{") == len(OBJECTS) - 1  # the separators as they came
    assert renamer.body(data) == out  # a recorded answer, replayed, renamed the same


@pytest.mark.parametrize("cut", [0, 1, 30, 60, 200])
def test_a_cut_array_is_closed_with_the_error_as_its_last_element(cut: int) -> None:
    """Only whole objects go on, so wherever the upstream broke off, what the client has plus the tail is
    one JSON array: the objects that came whole, then the error."""
    data = array(OBJECTS, pretty=True)[:cut]
    renamer = ModelRenamer("", "", lambda obj, new: False, "json-array")
    sent = b"".join(renamer.feed(data))
    error = gemini.render_stream_error(UpstreamProtocolError("the upstream stream broke off"))
    whole = json.loads(sent + renamer.tail(error))
    assert whole[-1]["error"]["message"] == "the upstream stream broke off"
    assert whole[:-1] == OBJECTS[:len(whole) - 1] and sent.count(b'"modelVersion"') == len(whole) - 1
