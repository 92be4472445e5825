"""A WebSocket to an upstream that serves Responses over WebSocket itself (the Codex backend, OpenAI).

When a Codex connection's turn is routed, unchanged, to such an endpoint (``websocket`` in the config),
the bridge relays it as a WebSocket instead of sending it over HTTP whole: the upstream keeps the
connection's state, so ``previous_response_id`` and Codex's incremental input go on as they are. The
endpoint's key, headers and model rewrite apply to the upgrade and to each message, as they would to an
HTTP request. One message from the upstream is bounded by ``limit`` (``max_answer_bytes``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

__all__ = ["Joiner", "SocketRefused", "SocketTarget", "UpstreamSocket"]


class Joiner:
    """A WebSocket's text messages joined from their frames, each within ``limit`` characters (a peer
    never sets how much is held)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pieces: list[str] = []
        self._size = 0

    def add(self, frame: TextMessage) -> str | None:
        """The whole message once its last frame is in, else None; :class:`OverflowError` past the limit."""
        self._pieces.append(frame.data)
        self._size += len(frame.data)
        if self._size > self.limit:
            raise OverflowError(f"a message is over {self.limit} bytes")
        if not frame.message_finished:
            return None
        text, self._pieces, self._size = "".join(self._pieces), [], 0
        return text


class SocketRefused(Exception):
    """The upstream did not take the upgrade (its status), or could not be reached (0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status or 'no connection'}: {reason}")
        self.status = status


@dataclass(frozen=True, slots=True)
class SocketTarget:
    """Where a turn goes over WebSocket and as what: the upgrade's URL and headers, the message to send,
    and how a frame from the upstream is shown to the client (the model name put back)."""

    url: str
    headers: tuple[tuple[str, str], ...]
    message: str
    endpoint: str
    model: str  # as the client asked, for the log
    rename: Callable[[dict[str, Any]], bool] | None = None
    connect_timeout: float = 10.0
    limit: int = 32 * 1024 * 1024

    def shown(self, frame: str) -> str:
        """The frame with the client's model name back in it, when a rewrite applies."""
        if self.rename is None or '"model' not in frame:
            return frame
        try:
            event = json.loads(frame)
        except ValueError:
            return frame
        target = event.get("response") if isinstance(event, dict) else None
        if isinstance(target, dict) and self.rename(target):
            return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        return frame


class UpstreamSocket:
    def __init__(self, target: SocketTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ws: WSConnection) -> None:
        self.key = (target.url, target.headers)  # a later turn with the same key reuses this connection
        self._reader, self._writer, self._ws = reader, writer, ws
        self._limit = target.limit
        self.closed = False

    @classmethod
    async def open(cls, target: SocketTarget, verify: bool = True) -> UpstreamSocket:
        parts = urlsplit(target.url)
        tls = parts.scheme == "wss"
        context = None
        if tls:
            context = ssl.create_default_context(cafile=certifi.where())
            if not verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                parts.hostname, parts.port or (443 if tls else 80), ssl=context, limit=64 * 1024),
                target.connect_timeout)
        except (OSError, TimeoutError) as e:
            raise SocketRefused(0, str(e) or type(e).__name__) from None
        ws = WSConnection(ConnectionType.CLIENT)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [(k.encode(), v.encode()) for k, v in target.headers]
        writer.write(ws.send(Request(host=parts.netloc, target=path, extra_headers=headers)))
        status = 0
        while True:
            data = await asyncio.wait_for(reader.read(65536), target.connect_timeout)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return cls(target, reader, writer, ws)
                if isinstance(event, RejectConnection):
                    status = event.status_code
            if status or not data:
                writer.close()
                raise SocketRefused(status, "the upgrade was refused" if status else "the connection closed")

    async def send(self, text: str) -> None:
        self._writer.write(self._ws.send(TextMessage(data=text)))
        await self._writer.drain()

    async def frames(self) -> AsyncIterator[str]:
        """Each text message from the upstream, as it arrives, until it closes (then ``closed``)."""
        joiner = Joiner(self._limit)
        while not self.closed:
            data = await self._reader.read(65536)
            self._ws.receive_data(data or None)
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    try:
                        text = joiner.add(event)
                    except OverflowError:
                        self.close()
                        return
                    if text is not None:
                        yield text
                elif isinstance(event, Ping):
                    self._writer.write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close()
            if not data:
                self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
