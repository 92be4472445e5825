"""A failed upstream connection answered in the client's format instead of mitmproxy's HTML page.

mitmproxy 12 answers a request whose upstream cannot be reached (refused, DNS, TLS, timeout) with
its own ``502`` HTML page, and the ``error`` hook cannot replace it (mitmproxy PR #7999 is open). An
LLM client then shows an HTML blob, or fails to parse it. This module installs one guarded patch:
around ``Http1Server.send``, the point where mitmproxy writes that page to an HTTP/1 client, it
writes the bridge's own error (the client's error JSON, same status) for the requests the bridge has
registered, and leaves everything else to mitmproxy. ``tests/test_errorpage.py`` checks the private
names it relies on and the behaviour end to end, so a mitmproxy upgrade that moves them fails loudly.

The same point sees an upstream that breaks off mid-stream (connection lost, or the relay giving
up): mitmproxy would just cut the client's connection, which some SDKs take for a finished stream.
For a registered stream the patch writes the client format's error event as a last chunk and ends
the chunked body cleanly, so the client reads an honest error.

HTTP/2 clients still get mitmproxy's page and a reset stream (its h2 layer offers no such point);
the LLM clients we know of speak HTTP/1.1 to a plain-HTTP bridge. Requests that fail over go through
the relay, which answers in the client's format anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import http
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

__all__ = ["install", "expect", "expect_cut", "forget", "Renderer"]

Renderer = Callable[[int, str], tuple[int, str, bytes]]  # (status, mitmproxy's message) → status, type, body

_renderers: dict[int, Renderer] = {}  # id(request) → how its client wants an error
_tails: dict[int, Callable[[str], bytes]] = {}  # id(request) → the last bytes of its stream if cut (message)


def expect(request: http.Request, render: Renderer) -> None:
    """Answer this request's connection failure with ``render`` (until :func:`forget`)."""
    _renderers[id(request)] = render


def expect_cut(request: http.Request, tail: Callable[[str], bytes]) -> None:
    """If this request's streamed answer breaks off, end it with ``tail(mitmproxy's message)``."""
    _tails[id(request)] = tail


def forget(request: http.Request) -> None:
    _renderers.pop(id(request), None)
    _tails.pop(id(request), None)


def install() -> None:
    """Patch once; idempotent (mitmproxy reloads scripts)."""
    original = _http1.Http1Server.send
    if getattr(original, "_bridge_patched", False):
        return

    def send(self: Any, event: Any) -> Generator[Any, Any, None]:
        # Used once: the error ends the exchange (the error hook has already run; it cannot forget).
        failed = isinstance(event, ResponseProtocolError) and self.request is not None
        render = _renderers.pop(id(self.request), None) if failed else None
        tail = _tails.pop(id(self.request), None) if failed else None
        writable = self.conn.state & ConnectionState.CAN_WRITE
        if tail is not None and self.response and writable and \
                "chunked" in self.response.headers.get("transfer-encoding", "").lower():
            data = tail(event.message)
            if data:
                yield commands.SendData(self.conn, b"%x\r\n%s\r\n" % (len(data), data))
            yield commands.SendData(self.conn, b"0\r\n\r\n")  # a clean end, after the error event
            yield commands.CloseConnection(self.conn)
            return
        if render is not None and not self.response and writable:
            status = event.code.http_status_code()
            if status is not None:
                code, content_type, body = render(status, event.message)
                response = http.Response.make(code, body, {"content-type": content_type, "connection": "close"})
                yield commands.SendData(self.conn, http1.assemble_response(response))  # type: ignore[no-untyped-call]
                yield commands.CloseConnection(self.conn)
                return
        yield from original(self, event)

    send._bridge_patched = True  # type: ignore[attr-defined]
    _http1.Http1Server.send = send  # type: ignore[method-assign]
