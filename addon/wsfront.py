"""The bridge's own WebSocket endpoint for Responses clients (Codex's WebSocket transport).

mitmproxy relays a WebSocket between a client and a server; it cannot be the server. So an upgrade to
``…/responses`` is sent (by :mod:`addon.forward`) to this endpoint, a loopback listener inside
mitmproxy's event loop, with an unguessable ticket in its path. mitmproxy still owns the client side:
the connection shows in mitmweb with its messages, and is recorded like any other.

Each ``response.create`` becomes what :class:`~addon.wssession.Session` says: a warm-up or an error
answered here, or an ordinary ``POST …/responses`` sent back through the bridge's own listener (as
a reverse-mode request, or through it as a proxy in regular and upstream mode). That request is routed,
translated, failed over, logged, recorded and shown like any HTTP request — the access rule admits it
by its ticket — and its Responses events go to the client, as they arrive, one text frame each.
A turn routed unchanged to an endpoint that serves this transport itself is relayed on the upstream's
own WebSocket instead (``router``, :mod:`addon.wsupstream`), which then keeps the state. Turns on one
connection run one at a time, in order. A client message is bounded by ``max_request_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from .relay import HOP_HEADERS
from .sse import SSEDecoder
from .wssession import Forward, Session, error_frame
from .wsupstream import Joiner, SocketRefused, SocketTarget, UpstreamSocket

__all__ = ["TICKET_HEADER", "TURN", "WS_URL", "Ticket", "WebSocketFront"]

logger = logging.getLogger("bridge")

TICKET_HEADER = "x-bridge-ws-ticket"  # on the turns this endpoint sends back through the bridge
TURN = "bridge_ws_turn"  # flow.metadata of a turn the access rule admitted by its ticket: its connection
CLIENT = "bridge_client"  # flow.metadata: the named client the access rule let in (config ``clients``)
WS_URL = "bridge_ws_url"  # flow.metadata of an upgrade: the URL the client asked for
_HEAD_LIMIT = 64 * 1024  # the upgrade request's head, as the bridge bounds every head
_TICKET_TTL = 60.0  # seconds an admitted upgrade has to arrive here
_ERROR_BODY_LIMIT = 64 * 1024
_QUEUED = 16  # messages waiting for the turn in flight: Codex sends one at a time
# Upgrade headers that belong to the hop or to the WebSocket handshake, not to the turns sent over HTTP.
_HANDSHAKE = HOP_HEADERS | {"content-encoding", "accept-encoding", "openai-beta"}


@dataclass
class Ticket:
    """What an admitted upgrade needs: where its turns go (``url``, through ``proxy`` in regular and
    upstream mode), the client's headers they carry, and the bound on a message."""

    url: str
    headers: list[tuple[str, str]]
    limit: int
    proxy: str | None = None
    connection: str = ""  # the upgrade flow's id: each turn's log line and flow name it
    client: str | None = None  # the named client whose key let the upgrade in (config ``clients``)
    issued: float = field(default_factory=time.monotonic)
    connected: bool = False


# A turn whose endpoint serves Responses over WebSocket: where it goes as one (forward.py), else None.
Router = Callable[[dict[str, Any], Ticket], SocketTarget | None]


class WebSocketFront:
    def __init__(self) -> None:
        self.router: Router = lambda message, ticket: None
        self.verify = True  # the upstream's TLS certificate (mitmproxy's ssl_insecure turns it off)
        self._server: asyncio.Server | None = None
        self._tickets: dict[str, Ticket] = {}
        self._clients: dict[str | None, httpx.AsyncClient] = {}  # by proxy
        self.port = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def admit(self, ticket: Ticket) -> str:
        """A path for an upgrade the bridge has let in: ``/ws/<ticket>``."""
        now = time.monotonic()
        for name in [n for n, t in self._tickets.items() if not t.connected and now - t.issued > _TICKET_TTL]:
            del self._tickets[name]
        name = secrets.token_urlsafe(24)
        self._tickets[name] = ticket
        return f"/ws/{name}"

    def admitted(self, name: str) -> Ticket | None:
        """The ticket of a turn's connection, if it is live here (the access rule's exception)."""
        ticket = self._tickets.get(name)
        if ticket is None or not ticket.connected:
            return None
        return ticket

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        name: str | None = None
        try:
            name, ticket = await self._handshake(reader, writer, ws)
            if name is not None and ticket is not None:
                await _Connection(ws, reader, writer, ticket, name, self._client(ticket.proxy), self).run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # a bug here must not take the event loop's other work with it
            logger.exception("the bridge's websocket endpoint failed on a connection")
        finally:
            if name is not None:
                self._tickets.pop(name, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         ws: WSConnection) -> tuple[str | None, Ticket | None]:
        head = await reader.readuntil(b"\r\n\r\n")
        ws.receive_data(head)
        for event in ws.events():
            if isinstance(event, Request):
                name = event.target.rsplit("/", 1)[-1]
                ticket = self._tickets.get(name)
                if ticket is None or ticket.connected:
                    writer.write(ws.send(RejectConnection(status_code=404)))
                    return None, None
                ticket.connected = True
                writer.write(ws.send(AcceptConnection()))
                await writer.drain()
                return name, ticket
        return None, None

    def _client(self, proxy: str | None) -> httpx.AsyncClient:
        if proxy not in self._clients:
            # No read timeout: a turn streams as long as the upstream does (the bridge has its own limits).
            self._clients[proxy] = httpx.AsyncClient(proxy=proxy, timeout=httpx.Timeout(10.0, read=None),
                                                     trust_env=False)
        return self._clients[proxy]


class _Connection:
    """One client connection: frames in, turns run one at a time, frames out."""

    def __init__(self, ws: WSConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ticket: Ticket, name: str, client: httpx.AsyncClient, front: WebSocketFront) -> None:
        self._ws, self._reader, self._writer = ws, reader, writer
        self._ticket, self._name, self._client, self._front = ticket, name, client, front
        self._upstream: UpstreamSocket | None = None  # the upstream's own WebSocket, once a turn needed it
        self._no_socket: set[str] = set()  # upstream URLs that refused a WebSocket: HTTP for them
        self._session = Session(limit=ticket.limit, new_id=_new_id, now=lambda: int(time.time()))
        self._turns: asyncio.Queue[str] = asyncio.Queue(_QUEUED)
        self._count = 0

    async def run(self) -> None:
        worker = asyncio.create_task(self._work())
        try:
            await self._read()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if self._upstream is not None:
                self._upstream.close()
            logger.info("websocket responses | connection closed | %d message(s)", self._count)

    async def _read(self) -> None:
        joiner = Joiner(self._ticket.limit)
        while True:
            data = await self._reader.read(65536)
            self._ws.receive_data(data or None)
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    try:
                        text = joiner.add(event)
                    except OverflowError as e:
                        self._close(1009, f"{e} (max_request_bytes)")
                        return
                    if text is None:
                        continue
                    if self._turns.full():
                        self._close(1008, f"more than {_QUEUED} messages wait for the turn in flight")
                        return
                    self._turns.put_nowait(text)
                elif isinstance(event, BytesMessage):
                    self._close(1003, "the Responses API takes text messages")
                    return
                elif isinstance(event, Ping):
                    self._writer.write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(Exception):
                        self._writer.write(self._ws.send(event.response()))
                    return
            if not data:
                return
            await self._writer.drain()

    def _close(self, code: int, reason: str) -> None:
        logger.info("websocket closed by the bridge (%d): %s", code, reason)
        self._writer.write(self._ws.send(CloseConnection(code=code, reason=reason)))

    async def _send(self, frames: list[str]) -> None:
        for frame in frames:
            self._writer.write(self._ws.send(TextMessage(data=frame)))
        await self._writer.drain()

    async def _work(self) -> None:
        while True:
            text = await self._turns.get()
            self._count += 1
            try:
                message = _json(text)
                target = self._socket_target(message)
                if target is not None and await self._relay(target, message):
                    continue
                turn = self._session.turn(text, message)
                if isinstance(turn, Forward):
                    await self._forward(turn)
                else:
                    await self._send(turn.frames)
            except ConnectionError:  # the client went away: its reader ends the connection
                return
            except Exception as e:  # a bug: this turn fails honestly, the connection goes on
                logger.exception("the bridge failed on a websocket turn")
                self._session.failed()
                await self._send([error_frame(500, f"the bridge failed on this turn ({type(e).__name__})")])

    def _socket_target(self, message: Any) -> SocketTarget | None:
        if not isinstance(message, dict) or message.get("type") != "response.create":
            return None
        target = self._front.router(message, self._ticket)
        return target if target is not None and target.url not in self._no_socket else None

    async def _relay(self, target: SocketTarget, message: dict[str, Any]) -> bool:
        """The turn over the upstream's own WebSocket; False if it takes none (then it goes over HTTP)."""
        upstream = self._upstream
        if upstream is None or upstream.closed or upstream.key != (target.url, target.headers):
            if upstream is not None:
                upstream.close()
            try:
                upstream = self._upstream = await UpstreamSocket.open(target, self._front.verify)
            except (SocketRefused, OSError, TimeoutError) as e:
                logger.info("websocket relay | endpoint %s | no WebSocket (%s): its turns go over HTTP",
                            target.endpoint, e)
                self._no_socket.add(target.url)
                self._upstream = None
                return False
        self._session.track(message)
        started, ended, last = time.monotonic(), False, "-"
        try:
            await upstream.send(target.message)
            async for frame in upstream.frames():
                frame = target.shown(frame)
                await self._send([frame])
                if self._ended(frame):
                    ended, last = True, frame[:80]
                    break
        except OSError as e:  # the upstream reset (or the client left: the error frame below finds out)
            logger.info("websocket relay | endpoint %s | the connection failed: %s", target.endpoint, e)
        if not ended:
            upstream.close()
            self._session.failed()
            await self._send([error_frame(502, "the upstream's WebSocket closed before the response ended")])
        logger.info("websocket relay | endpoint %s | model %s | %s | %.0f ms | connection %s", target.endpoint,
                    target.model, _terminal(last) if ended else "broke off", (time.monotonic() - started) * 1000,
                    self._ticket.connection)
        return True

    async def _forward(self, turn: Forward) -> None:
        """The turn through the bridge's HTTP side; its events out as they come."""
        headers = [(k, v) for k, v in self._ticket.headers if k.lower() not in turn.headers
                   and k.lower() not in _HANDSHAKE and not k.lower().startswith("sec-websocket")]
        headers += [*turn.headers.items(), ("content-type", "application/json"), ("accept", "text/event-stream"),
                    ("accept-encoding", "identity"), (TICKET_HEADER, self._name)]
        body = turn.content()
        ended = False
        try:
            async with self._client.stream("POST", self._ticket.url, headers=headers, content=body) as resp:
                if resp.status_code >= 400 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    await self._send([await _error_of(resp)])
                    self._session.failed()
                    return
                decoder = SSEDecoder()
                async for chunk in resp.aiter_raw():
                    frames = [ev.data for ev in decoder.feed(chunk)]
                    ended = any(self._ended(f) for f in frames) or ended
                    await self._send(frames)
                frames = [ev.data for ev in decoder.close()]
                ended = any(self._ended(f) for f in frames) or ended
                await self._send(frames)
        except httpx.HTTPError as e:
            logger.warning("websocket turn failed: %s", e)
        if not ended:  # never a turn that stops as if it were complete: Codex reconnects on a 5xx
            self._session.failed()
            await self._send([error_frame(502, "the bridge's stream for this turn broke off")])

    def _ended(self, frame: str) -> bool:
        """Whether ``frame`` ends the response (and, if it completed, remember it for the next turn)."""
        return self._session.ended(frame)


async def _error_of(resp: httpx.Response) -> str:
    """An HTTP error answer of the bridge (OpenAI's error shape) as the error frame Codex reads."""
    raw = b""
    async for chunk in resp.aiter_raw():
        raw += chunk
        if len(raw) > _ERROR_BODY_LIMIT:
            break
    try:
        err: Any = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        err = None
    if not isinstance(err, dict):
        err = {"message": raw[:500].decode("utf-8", "replace") or f"HTTP {resp.status_code}"}
    status = resp.status_code if resp.status_code >= 400 else 502
    headers = {k: v for k, v in resp.headers.items() if k.lower() in ("retry-after", "x-should-retry")}
    return error_frame(status, str(err.get("message")), code=err.get("code") or None, kind=err.get("type") or None,
                       headers=headers)


def _json(text: str) -> Any:
    """A message's JSON, or None when it is not JSON (the session answers that)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _terminal(frame: str) -> str:
    """The type of the event that ended a relayed turn, for the log."""
    for kind in ("response.completed", "response.incomplete", "response.failed", "error"):
        if f'"{kind}"' in frame:
            return kind
    return "ended"


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)

