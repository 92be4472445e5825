"""A small blocking WebSocket client for the tests (wsproto over a socket): what Codex does on its
WebSocket transport — an upgrade, text messages out, each server text frame read as it comes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)


class Rejected(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upgrade refused: HTTP {status}: {body[:300]!r}")
        self.status, self.body = status, body


class WSClient:
    """``WSClient(port, path, headers)`` connects and upgrades (raises :class:`Rejected` otherwise)."""

    def __init__(self, port: int, path: str = "/v1/responses", headers: dict[str, str] | None = None,
                 sock: socket.socket | None = None, timeout: float = 20.0) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.closed: CloseConnection | None = None
        self.pongs: list[bytes] = []
        self._pending: list[Event] = []  # received, not yet handed out (frames())
        extra = list((headers or {}).items())
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target=path, extra_headers=extra)))
        status, body = None, b""
        while status is None or (status != 101 and not self._body_done):
            events = self._receive()
            for i, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    self._pending = events[i + 1:]  # frames that came with the 101
                    return
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    self._body_done = not event.has_body
                elif isinstance(event, RejectData):
                    body += event.data
                    self._body_done = event.body_finished
        raise Rejected(status, body)

    _body_done = False

    def _receive(self) -> list[Event]:
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def ping(self, payload: bytes) -> None:
        self.sock.sendall(self.ws.send(Ping(payload=payload)))

    def frames(self) -> Iterator[str]:
        """Each text frame from the server, as it arrives, until the server closes. Events one read brought
        beyond the frame handed out stay pending, so a caller that stops after a frame loses none of them."""
        text: list[str] = []
        while self.closed is None:
            if not self._pending:
                self._pending = self._receive()
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, TextMessage):
                    text.append(event.data)
                    if event.message_finished:
                        yield "".join(text)
                        text = []
                elif isinstance(event, Pong):
                    self.pongs.append(bytes(event.payload))
                elif isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = event
                    return

    def response(self) -> list[dict[str, Any]]:
        """The events of one response: up to and including its terminal event or an error frame."""
        out: list[dict[str, Any]] = []
        for frame in self.frames():
            event = json.loads(frame)
            out.append(event)
            if event.get("type") in ("response.completed", "response.failed", "response.incomplete", "error"):
                return out
        raise AssertionError(f"the server closed ({self.closed}) after {out}")

    def close(self) -> None:
        try:
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        except OSError:  # already gone
            pass
        self.sock.close()
