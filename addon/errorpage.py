"""A failed upstream connection answered in the client's format instead of mitmproxy's HTML page.

mitmproxy 12 answers a request whose upstream cannot be reached (refused, DNS, TLS, timeout) with
its own ``502`` HTML page, and the ``error`` hook cannot replace it (mitmproxy PR #7999 is open). An
LLM client then shows an HTML blob, or fails to parse it. This module installs one guarded patch:
around ``Http1Server.send``, the point where mitmproxy writes that page to an HTTP/1 client, it
writes the bridge's own error (the client's error JSON, same status) for the requests the bridge has
registered, and leaves everything else to mitmproxy. ``tests/test_errorpage.py`` checks the private
names it relies on and the behaviour end to end, so a mitmproxy upgrade that moves them fails loudly.

HTTP/2 clients still get mitmproxy's page (its h2 layer offers no such point); the LLM clients we
know of speak HTTP/1.1 to a plain-HTTP bridge. Requests that fail over go through the relay, which
answers in the client's format anyway.
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

__all__ = ["install", "expect", "forget", "Renderer"]

Renderer = Callable[[int, str], tuple[int, str, bytes]]  # (status, mitmproxy's message) → status, type, body

_renderers: dict[int, Renderer] = {}  # id(request) → how its client wants an error


def expect(request: http.Request, render: Renderer) -> None:
    """Answer this request's connection failure with ``render`` (until :func:`forget`)."""
    _renderers[id(request)] = render


def forget(request: http.Request) -> None:
    _renderers.pop(id(request), None)


def install() -> None:
    """Patch once; idempotent (mitmproxy reloads scripts)."""
    original = _http1.Http1Server.send
    if getattr(original, "_bridge_patched", False):
        return

    def send(self: Any, event: Any) -> Generator[Any, Any, None]:
        # Used once: the error ends the exchange (the error hook may already have run).
        render = (_renderers.pop(id(self.request), None)
                  if isinstance(event, ResponseProtocolError) and self.request is not None else None)
        if render is not None and not self.response and self.conn.state & ConnectionState.CAN_WRITE:
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
