"""Per-flow body limits inside mitmproxy's own body reader: memory is set by the config, never by a peer.

mitmproxy buffers a request body whole before the ``request`` hook, and a non-streamed answer whole
before the ``response`` hook; its only bounds are two global options (``body_size_limit``, which fails
a flow with its HTML page, and ``stream_large_bodies``, which would send a request upstream before the
bridge has read and translated it). Both directions go through one private method,
``HttpStream.check_body_size``, called before the hooks when a ``Content-Length`` is known and after
every chunk otherwise. This module wraps it, for the flows the bridge registers, with:

* **a request limit**: past it the flow gets the bridge's answer (413 in the client's format);
* **refusal without reading**: a request answered at its headers (401, 403, 413 by its length) keeps
  nothing of its body: each chunk is dropped as it arrives, the answer goes out after the last one
  (so the client reads it normally), and past ``discard`` dropped bytes the answer goes out at once and
  the connection closes;
* **an answer limit**: a buffered upstream answer past it fails the flow with the bridge's answer (502
  in the client's format) and closes the upstream connection.

Flows the bridge did not register keep mitmproxy's own behaviour.

Before any of that, a message head: mitmproxy's HTTP/1 reader keeps reading a request or response head
that never ends ("FIXME: protect against header size DoS" in its source), so a peer could fill the
memory before any hook, the access rule's included, ever runs. Heads are cut at :data:`MAX_HEAD`: a
client gets 431 and the connection closes; an upstream's answer fails as a protocol error (502 in the
client's format, errorpage.py). ``tests/test_bounds.py`` pins the private names used here, so a
mitmproxy upgrade that moves them fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import HttpStream, SendHttp
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestProtocolError,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server, make_error_response

__all__ = ["install", "limit", "refuse", "answer", "forget", "Policy", "MAX_HEAD", "DISCARD"]

MAX_HEAD = 64 * 1024  # a request or response head (a real one is a few KB; nginx allows 32 KB)
# What a refused request may still send before its connection closes: a client that writes its whole
# body before it reads (most SDKs) gets its 401/413 then, not a reset, when the body is no bigger.
DISCARD = 1024 * 1024


@dataclass(slots=True, kw_only=True)
class Policy:
    """What one flow may hold. ``too_large()`` makes the request's answer once ``request_limit`` is
    passed; ``answer_limit(response)`` says how much of that answer may be buffered (None: no limit, it is
    streamed), and ``answer_too_large(limit)`` makes the client's answer when it is passed."""

    request_limit: int | None = None
    too_large: Callable[[], http.Response] | None = None
    discard: int | None = None  # set once the request is answered: its body is dropped, at most this much
    dropped: int = 0
    answer_limit: Callable[[http.Response], int | None] | None = None
    answer_too_large: Callable[[int], http.Response] | None = None


_policies: dict[int, Policy] = {}  # id(request) → its policy


def limit(request: http.Request, policy: Policy) -> None:
    _policies[id(request)] = policy


def refuse(request: http.Request, discard: int) -> None:
    """The request already has its answer (``flow.response``): drop its body as it comes, at most
    ``discard`` bytes of it; past that, answer at once and close the connection."""
    policy = _policies.setdefault(id(request), Policy())
    policy.discard = discard


def answer(request: http.Request, limit_for: Callable[[http.Response], int | None],
           too_large: Callable[[int], http.Response]) -> None:
    """Bound this request's answer while it is buffered: ``limit_for(response)`` bytes (None: it is
    streamed, not buffered); past it the client gets ``too_large(limit)``."""
    policy = _policies.setdefault(id(request), Policy())
    policy.answer_limit, policy.answer_too_large = limit_for, too_large


def forget(request: http.Request) -> None:
    _policies.pop(id(request), None)


def _request_body(stream: Any, policy: Policy) -> Generator[Any, Any, bool]:
    buf = stream.request_body_buf
    if policy.discard is None and policy.request_limit is not None and len(buf) > policy.request_limit:
        assert policy.too_large is not None
        stream.flow.response = policy.too_large()
        policy.discard = policy.request_limit + DISCARD
    if policy.discard is None:
        return False
    policy.dropped += len(buf)
    buf.clear()
    if policy.dropped <= policy.discard:
        return False
    yield from _answer_now(stream, f"request body dropped after {policy.dropped} bytes", request=True)
    return True


def _answer_body(stream: Any, policy: Policy) -> Generator[Any, Any, bool]:
    flow = stream.flow
    limit = policy.answer_limit(flow.response) if policy.answer_limit and flow.response else None
    if limit is None:
        return False
    size: int | None = len(stream.response_body_buf)
    if not size:
        try:
            size = expected_http_body_size(flow.request, flow.response)
        except ValueError:
            return False
    if size is None or size <= limit:
        return False
    assert policy.answer_too_large is not None
    flow.response = policy.answer_too_large(limit)
    stream.response_body_buf.clear()
    message = f"the upstream's answer exceeds {limit} bytes"
    # the upstream connection first: nothing more of this answer is wanted
    yield SendHttp(RequestProtocolError(stream.stream_id, message, ErrorCode.RESPONSE_TOO_LARGE), stream.context.server)
    stream.server_state = stream.state_errored
    flow.error = mflow.Error(message)
    yield HttpErrorHook(flow)  # the addon logs it with the status the client gets
    yield from _answer_now(stream, message, request=False)
    return True


def _answer_now(stream: Any, message: str, *, request: bool) -> Generator[Any, Any, None]:
    """Send ``flow.response`` now; a request whose body was not read to its end closes its HTTP/1
    connection after it (an HTTP/2 stream just ends: the peer's further data is dropped)."""
    flow = stream.flow
    response, sid, client = flow.response, stream.stream_id, stream.context.client
    stream.client_state = stream.state_errored  # the rest of the request body is ignored
    if request and not flow.error:
        flow.error = mflow.Error(message)
        yield HttpErrorHook(flow)
    body = response.raw_content or b""
    yield SendHttp(ResponseHeaders(sid, response, end_stream=not body), client)
    if body:
        yield SendHttp(ResponseData(sid, body), client)
        yield SendHttp(ResponseEndOfMessage(sid), client)
    if request and not (flow.request.is_http2 or flow.request.is_http3):
        yield SendHttp(ResponseProtocolError(sid, message, ErrorCode.REQUEST_TOO_LARGE), client)
    stream.server_state = stream.state_errored
    flow.live = False
    forget(flow.request)


def _cap_heads() -> None:
    server_original, client_original = Http1Server.read_headers, Http1Client.read_headers

    def server_read_headers(self: Any, event: Any) -> Generator[Any, Any, None]:
        yield from server_original(self, event)
        if self.state == self.read_headers and len(self.buf) > MAX_HEAD:  # still no end of the head
            yield commands.SendData(self.conn, make_error_response(431, f"request head over {MAX_HEAD} bytes"))
            yield commands.CloseConnection(self.conn)
            self.buf = type(self.buf)()  # what it held is dropped now, not when the connection object goes
            self.state = self.done

    def client_read_headers(self: Any, event: Any) -> Generator[Any, Any, None]:
        yield from client_original(self, event)
        if self.state == self.read_headers and len(self.buf) > MAX_HEAD and self.stream_id is not None and \
                isinstance(event, events.DataReceived):
            yield commands.CloseConnection(self.conn)
            yield ReceiveHttp(ResponseProtocolError(self.stream_id, f"the upstream's response head is over "
                                                    f"{MAX_HEAD} bytes", ErrorCode.GENERIC_SERVER_ERROR))
            self.state = self.done

    Http1Server.read_headers = server_read_headers  # type: ignore[method-assign]
    Http1Client.read_headers = client_read_headers  # type: ignore[method-assign]


def install() -> None:
    """Patch once; idempotent (mitmproxy reloads scripts)."""
    original = HttpStream.check_body_size
    if getattr(original, "_bridge_patched", False):
        return
    _cap_heads()

    def check_body_size(self: Any, request: bool) -> Generator[Any, Any, bool]:
        policy = _policies.get(id(self.flow.request)) if getattr(self, "flow", None) is not None else None
        if policy is None:
            return (yield from original(self, request))
        if request:
            return (yield from _request_body(self, policy))
        return (yield from _answer_body(self, policy))

    check_body_size._bridge_patched = True  # type: ignore[attr-defined]
    HttpStream.check_body_size = check_body_size  # type: ignore[method-assign]
