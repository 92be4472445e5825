"""addon/adapter.py's coalesce_reads: the body pieces mitmproxy's HTTP/1 reader makes of one read of an
upstream's answer go on as one, the same bytes in the same order, before whatever follows them; and the
private mitmproxy names it relies on are still there. End to end (every stream through a real mitmdump
with the wrap installed): tests/test_e2e_matrix.py, tests/test_faults.py, tests/test_slow_client.py.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Generator
from typing import Any

import pytest
from mitmproxy.connection import Client, Server
from mitmproxy.options import Options
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    RequestEndOfMessage,
    RequestHeaders,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Connection
from mitmproxy.test import tutils

from addon import adapter
from addon.adapter import coalesce_reads

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class PlainClient(Http1Client):
    """mitmproxy's reader as it is, whatever is installed on Http1Client."""

    read_body = Http1Connection.read_body  # type: ignore[assignment]


def chunked(events_: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events_) + b"0\r\n\r\n"


def drive(gen: Generator[Any, Any, Any]) -> list[Any]:
    out = []
    try:
        command = gen.send(None)
        while True:
            out.append(command)
            command = gen.send(None)
    except StopIteration:
        return out


def answer(reads: list[bytes], cls: type[Http1Client]) -> list[list[Any]]:
    """The commands an upstream connection yields for each read of its answer (the head in the first)."""
    ctx = Context(Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), timestamp_start=0), Options())
    ctx.server = Server(address=("127.0.0.1", 3))
    conn = cls(ctx)
    drive(conn.handle_event(events.Start()))
    drive(conn.handle_event(RequestHeaders(1, tutils.treq(content=b""), end_stream=False)))
    drive(conn.handle_event(RequestEndOfMessage(1)))
    return [drive(conn.handle_event(events.DataReceived(ctx.server, data))) for data in reads]


def received(commands_: list[Any]) -> list[Any]:
    return [c.event for c in commands_ if isinstance(c, ReceiveHttp)]


def pieces(commands_: list[Any]) -> list[bytes]:
    return [e.data for e in received(commands_) if isinstance(e, ResponseData)]


@pytest.fixture(autouse=True)
def installed() -> None:
    coalesce_reads()


def test_installed_once_on_upstream_connections_only() -> None:
    wrapped = Http1Client.read_body
    coalesce_reads()
    assert Http1Client.read_body is wrapped and getattr(wrapped, "_bridge_patched", False)
    assert not getattr(Http1Connection.read_body, "_bridge_patched", False)  # clients' requests: as they were


def test_a_burst_in_one_read_is_one_piece() -> None:
    sse = [b"data: {\"n\": %d}\n\n" % i for i in range(50)]
    [plain] = answer([HEAD + chunked(sse)], PlainClient)
    [merged] = answer([HEAD + chunked(sse)], Http1Client)
    assert pieces(plain) == sse
    assert pieces(merged) == [b"".join(sse)]
    kinds = [type(e) for e in received(merged)]
    assert kinds == [ResponseHeaders, ResponseData, ResponseEndOfMessage]  # the data before the end
    assert [type(c) for c in merged if not isinstance(c, ReceiveHttp)] == \
        [type(c) for c in plain if not isinstance(c, ReceiveHttp)]


def test_a_single_piece_goes_on_as_it_came() -> None:
    reads = [HEAD, b"9\r\ndata: a\n\n\r\n", b"9\r\ndata: b\n\n\r\n", b"0\r\n\r\n"]
    plain, merged = answer(reads, PlainClient), answer(reads, Http1Client)
    assert [pieces(r) for r in merged] == [pieces(r) for r in plain] == [[], [b"data: a\n\n"], [b"data: b\n\n"], []]


@pytest.mark.parametrize("seed", range(40))
def test_any_split_into_reads_gives_the_same_bytes_at_most_one_piece_a_read(seed: int) -> None:
    rng = random.Random(seed)
    sse = [b"data: " + bytes(rng.choice(b"abc\xc3\xa9 ") for _ in range(rng.randint(0, 40))) + b"\n\n"
           for _ in range(rng.randint(1, 30))]
    wire = HEAD + chunked(sse)
    cuts = sorted(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(1, 12))))
    reads = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    plain, merged = answer(reads, PlainClient), answer(reads, Http1Client)
    for p, m in zip(plain, merged, strict=True):
        assert len(pieces(m)) <= 1
        assert b"".join(pieces(m)) == b"".join(pieces(p))  # what each read handed on, in order
        assert [type(e) for e in received(m) if not isinstance(e, ResponseData)] == \
            [type(e) for e in received(p) if not isinstance(e, ResponseData)]
    assert b"".join(b"".join(pieces(m)) for m in merged) == b"".join(sse)


def test_pieces_before_a_protocol_error_go_on_first() -> None:
    reads = [HEAD + b"9\r\ndata: a\n\n\r\n9\r\ndata: b\n\n\r\nzz\r\n"]
    [merged] = answer(reads, Http1Client)
    assert pieces(merged) == [b"data: a\n\ndata: b\n\n"]
    i = next(i for i, c in enumerate(merged) if isinstance(c, ReceiveHttp) and isinstance(c.event, ResponseData))
    assert any(isinstance(c, commands.CloseConnection) for c in merged[i + 1:])
    assert isinstance(received(merged)[-1], ResponseProtocolError)


def test_the_private_mitmproxy_names_coalescing_needs_are_still_there() -> None:
    """The reader still makes one piece per chunk with this line, and a changed one is refused loudly."""
    assert inspect.isgeneratorfunction(Http1Connection.read_body)
    assert adapter._PIECE_LINE in inspect.getsource(Http1Connection.read_body)
    # the class as its file has it: bodylimit.py wraps read_headers
    assert "self.state = self.read_body" in inspect.getsource(Http1Client)


def test_a_reader_it_does_not_know_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(self: Any, event: Any) -> Generator[Any, Any, None]:
        yield from ()

    monkeypatch.setattr(Http1Client, "read_body", other)
    with pytest.raises(RuntimeError, match="not the one the bridge"):
        coalesce_reads()
