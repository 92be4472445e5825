"""The access rule (:mod:`addon.access`) on everything the bridge receives, before any body is read.

A mitmproxy addon of its own, ahead of the bridge: every HTTP request at its headers (any path, any
host, any mode), every ``CONNECT`` (a tunnel is what regular and upstream mode would lend out), and
raw TCP/UDP flows (which have no HTTP hook). A refused request is answered in its client's format
(the API its path names, else OpenAI's error shape) and its body is dropped as it arrives, never kept
(:mod:`addon.bodylimit`). For requests let through, client keys are stripped from headers and query
on every path: they are the bridge's, not an upstream's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mitmproxy import connection, http, tcp, udp

from . import bodylimit, formats
from .access import check, identify, is_loopback, strip
from .config import Config
from .errors import BridgeError
from .flowlog import log_flow
from .flowstate import pairs
from .plan import Summary
from .routing import detect
from .translate import error_response
from .wsfront import CLIENT, TICKET_HEADER, TURN, Ticket

__all__ = ["Guard", "answer_refused"]

logger = logging.getLogger("bridge")


def _peer_is_loopback(conn: connection.Client) -> bool:
    return bool(conn.peername) and is_loopback(str(conn.peername[0]))


class Guard:
    def __init__(self, config: Callable[[], Config | None], claims: Callable[[http.HTTPFlow], bool],
                 admitted: Callable[[str], Ticket | None] = lambda ticket: None) -> None:
        """``claims(flow)``: the bridge handles this request (and drops client keys itself, after it has
        read the headers it routes by). ``admitted(ticket)``: a turn of a WebSocket connection this rule
        let in (``wsfront.py``), sent back through the bridge from loopback."""
        self._config = config
        self._claims = claims
        self._admitted = admitted
        # client connections whose CONNECT presented a client key, and the named client it is ("" for none)
        self._tunnels: dict[str, str] = {}

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        config = self._config()
        if config is None or flow.response or flow.error or not flow.live:
            return
        req = flow.request
        ticket = req.headers.pop(TICKET_HEADER, None)  # the bridge's own, never forwarded
        admitted = self._admitted(ticket) if ticket is not None and _peer_is_loopback(flow.client_conn) else None
        if admitted is not None:
            flow.metadata[TURN] = admitted.connection
            if admitted.client:
                flow.metadata[CLIENT] = admitted.client
            return
        err = check(config, pairs(req.headers), req.url, loopback=_peer_is_loopback(flow.client_conn),
                    tunnel_authorized=flow.client_conn.id in self._tunnels)
        if err is not None:
            self._refuse(flow, config, err)
            return
        if config.client_keys_env:
            client = identify(config, pairs(req.headers), req.url)
            name = client.name if client else self._tunnels.get(flow.client_conn.id)
            if name:
                flow.metadata[CLIENT] = name
            if not self._claims(flow):
                self._strip(flow, config)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A tunnel: let in by a client key in ``Proxy-Authorization``; without keys configured, from
        loopback; and, where keys are required, to an ``intercept_hosts`` host without one (the bridge
        handles every request inside it, and each must carry a key)."""
        config = self._config()
        if config is None or flow.response:
            return
        req = flow.request
        loopback = _peer_is_loopback(flow.client_conn)
        err = check(config, pairs(req.headers), "", loopback=loopback)
        if err is None:
            if config.client_keys_env:  # a key opened it: it counts for every request inside
                client = identify(config, pairs(req.headers), "")
                self._tunnels[flow.client_conn.id] = client.name if client else ""
            return
        if config.client_keys_env and req.host.lower() in config.intercept_hosts:
            return
        status = 407 if config.client_keys_env else 403
        headers = {"content-type": "text/plain"}
        if status == 407:
            headers["proxy-authenticate"] = 'Basic realm="bridge"'
        flow.response = http.Response.make(status, f"{err.message}\n", headers)
        logger.info("CONNECT %s refused (%d): %s", req.pretty_host, status, err.message)

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        self._raw(flow)

    def udp_start(self, flow: udp.UDPFlow) -> None:
        self._raw(flow)

    def _raw(self, flow: tcp.TCPFlow | udp.UDPFlow) -> None:
        """Raw traffic has no header to carry a key: only loopback clients (without keys) or a tunnel a
        key opened may send it."""
        config = self._config()
        if config is None or flow.client_conn.id in self._tunnels:
            return
        if not config.client_keys_env and _peer_is_loopback(flow.client_conn):
            return
        logger.info("raw %s traffic to %s refused: no client key", flow.type, flow.server_conn.address)
        flow.kill()  # type: ignore[no-untyped-call]

    def _refuse(self, flow: http.HTTPFlow, config: Config, err: BridgeError) -> None:
        req = flow.request
        op = detect(req.method, req.path, req.headers)
        client_format = op.client_format if op else formats.marked(req.headers) or formats.FALLBACK
        flow.response = answer_refused(flow, client_format, op.kind if op else "other", err)
        bodylimit.refuse(req, discard=min(config.max_request_bytes, bodylimit.DISCARD))

    @staticmethod
    def _strip(flow: http.HTTPFlow, config: Config) -> None:
        req = flow.request
        names, url = strip(pairs(req.headers), req.url, config.client_keys())
        for name in names:
            req.headers.pop(name, None)
        if url != req.url:
            req.url = url


def answer_refused(flow: http.HTTPFlow, client_format: str, operation: str, err: BridgeError) -> http.Response:
    """The answer to a request refused before it was read (its summary on the flow, its log line)."""
    flow.request.stream = False  # mitmproxy may have chosen to stream it (stream_large_bodies): not with an answer
    status, content_type, body = error_response(formats.get(client_format), err)
    summary = Summary(client_format=client_format, operation=operation, mode="rejected", error=err.message)
    flow.metadata["bridge"] = summary
    response = http.Response.make(status, body, {"content-type": content_type})
    flow.response = response  # log_flow reads the flow
    log_flow(flow, summary, status, None, time.monotonic())
    return response
