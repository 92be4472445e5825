"""Upstream failures answered in the client's format instead of mitmproxy's HTML page or a cut.

mitmproxy 12 answers a request whose upstream cannot be reached (refused, DNS, TLS) with its own
``502`` HTML page, and when an upstream breaks off mid-stream it cuts the client's connection, which
some SDKs take for a finished stream; the ``error`` hook can change neither (mitmproxy PR #7999 is
open). This module installs one guarded patch, around ``HttpStream.handle_protocol_error``: the one
place where mitmproxy turns an upstream failure into what the client is sent, for HTTP/1 and HTTP/2
clients alike. For the requests the bridge registered it sends, instead of mitmproxy's error,

* before the answer began: the bridge's error (the client's error JSON, same status);
* mid-stream: the client format's error event as the last data, then a clean end of the body.

Everything else mitmproxy does there (the error hook, dropping the stream) is left as it is.
``tests/test_errorpage.py`` pins the private names used here and checks the behaviour end to end,
over HTTP/1 and HTTP/2, so a mitmproxy upgrade that moves them fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy.layers.http import HttpStream, SendHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)

__all__ = ["install", "expect", "expect_cut", "take_cut", "forget", "lasting", "NO_RETRY", "Renderer"]

# The Anthropic and OpenAI SDKs (Python and TypeScript, so Claude Code too) read this header before
# their own retry rules: "false" ends the retries at once.
NO_RETRY = "x-should-retry"
# Connect failures that the next second will not cure: refused (nothing listens), a name that does not
# resolve, a certificate that does not verify. A timeout may be a busy host: it stays retryable.
_LASTING = ("refused", "errno 111", "name or service not known", "nodename nor servname", "no address associated",
            "certificate", "ssl", "tls")


def lasting(message: str) -> bool:
    """Whether a connect failure's message says the upstream will still be unreachable on a retry."""
    text = message.lower()
    return "timed out" not in text and "timeout" not in text and any(m in text for m in _LASTING)

Renderer = Callable[[int, str], tuple[int, str, bytes]]  # (status, message) → status, content type, body

_renderers: dict[int, Renderer] = {}  # id(request) → how its client wants an error
_tails: dict[int, Callable[[str], bytes]] = {}  # id(request) → the last bytes of its stream if cut (message)


def expect(request: http.Request, render: Renderer) -> None:
    """Answer this request's upstream failure before the answer began with ``render``."""
    _renderers[id(request)] = render


def expect_cut(request: http.Request, tail: Callable[[str], bytes]) -> None:
    """If this request's streamed answer breaks off, end it with ``tail(mitmproxy's message)``."""
    _tails[id(request)] = tail


def take_cut(request: http.Request) -> Callable[[str], bytes] | None:
    """The tail registered for this request, no longer registered."""
    return _tails.pop(id(request), None)


def forget(request: http.Request) -> None:
    _renderers.pop(id(request), None)
    _tails.pop(id(request), None)


def _answer(stream: Any, event: ResponseProtocolError) -> list[SendHttp] | None:
    """Before the answer began: the bridge's error in place of mitmproxy's page, or None. It also
    becomes ``flow.response``, so the error hook (and a recording, and mitmweb) see what the client got."""
    flow = stream.flow
    render = _renderers.pop(id(flow.request), None)
    status = event.code.http_status_code()
    if render is None or status is None:
        return None
    what = ("the upstream could not be reached" if event.code == ErrorCode.CONNECT_FAILED
            else "the upstream failed before its answer was complete")
    code, content_type, body = render(status, f"{what}: {event.message}")
    headers = {"content-type": content_type}
    if event.code == ErrorCode.CONNECT_FAILED and lasting(event.message):
        headers[NO_RETRY] = "false"  # the upstream is down, not busy: SDKs (Claude Code's too) stop retrying
    flow.response = response = http.Response.make(code, body, headers)
    client, sid = stream.context.client, stream.stream_id
    return [SendHttp(ResponseHeaders(sid, response, end_stream=False), client),
            SendHttp(ResponseData(sid, body), client), SendHttp(ResponseEndOfMessage(sid), client)]


def _ending(stream: Any, event: ResponseProtocolError, cut: SendHttp) -> list[SendHttp] | None:
    """Mid-stream: the client format's error event and a clean end in place of a cut, or None. A body
    that ends with its connection (HTTP/1.0) gets the error event, then the cut that ends it."""
    flow = stream.flow
    tail = _tails.pop(id(flow.request), None)
    if tail is None:
        return None
    http1 = not (flow.request.is_http2 or flow.request.is_http3)
    data = tail(event.message)
    client, sid = stream.context.client, stream.stream_id
    sent = [SendHttp(ResponseData(sid, data), client)] if data else []
    if http1 and "chunked" not in flow.response.headers.get("transfer-encoding", "").lower():
        return [*sent, cut]
    return [*sent, SendHttp(ResponseEndOfMessage(sid), client)]


def install() -> None:
    """Patch once; idempotent (mitmproxy reloads scripts)."""
    original = HttpStream.handle_protocol_error
    if getattr(original, "_bridge_patched", False):
        return

    def handle_protocol_error(self: Any, event: Any) -> Generator[Any, Any, None]:
        request = self.flow.request if getattr(self, "flow", None) is not None else None
        if request is None or (id(request) not in _renderers and id(request) not in _tails):
            yield from original(self, event)
            return
        if not isinstance(event, ResponseProtocolError):  # the client went away: nothing to tell it
            forget(request)
            yield from original(self, event)
            return
        # Before the answer began, decided now, so the error hook already sees the answer in the flow;
        # mid-stream, decided when mitmproxy would cut, after the error hook (the addon records the
        # stream there and may fix its tail) and before the original marks the stream errored.
        streaming = self.server_state == self.state_stream_response_body
        instead = None if streaming else _answer(self, event)
        steps = original(self, event)
        reply = None
        try:
            while True:  # the original's commands, with its error to the client swapped for ours
                try:
                    command = steps.send(reply)
                except StopIteration:
                    return
                if isinstance(command, SendHttp) and command.event is event:
                    instead = _ending(self, event, command) if streaming else instead
                    if instead is not None:
                        yield from instead  # SendHttp commands return nothing
                        reply = None
                        continue
                reply = yield command
        finally:
            forget(request)  # used once, or never: the exchange is over either way

    handle_protocol_error._bridge_patched = True  # type: ignore[attr-defined]
    HttpStream.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]
