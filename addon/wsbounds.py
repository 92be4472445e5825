"""What a WebSocket connection the bridge serves may hold: memory set by the config, never by a peer.

mitmproxy's WebSocket layer joins a message's frames before its hook runs and keeps every message on
the flow for as long as the connection lives. For the connections the bridge serves (``wsfront.py``):

* **a message** from the client is cut at ``max_request_bytes`` while it arrives, inside the layer (a
  guarded wrap of the private ``WebsocketLayer.relay_messages``): both sides are closed with 1009;
* **the messages kept on the flow** (what mitmweb shows and ``-w`` records) stop at
  ``max_answer_bytes`` in all; when no flow is kept, only the newest is.

``tests/test_bounds.py`` pins the private names, so a mitmproxy upgrade that moves them fails loudly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

import wsproto.events
from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.websocket import WebsocketEndHook, WebsocketLayer
from wsproto.connection import ConnectionState

__all__ = ["WebSocketBounds", "install"]

logger = logging.getLogger("bridge")

_LIMITS: dict[str, int] = {}  # flow id → the bound on one client message


def install() -> None:
    """Wrap ``WebsocketLayer.relay_messages``: after each event, a client message still being joined is
    checked against its flow's bound."""
    original = WebsocketLayer.relay_messages
    if getattr(original, "_bridge_patched", False):
        return

    def relay_messages(self: Any, event: Any) -> Generator[Any, Any, None]:
        yield from original(self, event)
        limit = _LIMITS.get(self.flow.id)
        if limit is None or sum(map(len, self.client_ws.frame_buf)) <= limit:
            return
        yield from _close(self, f"a message is over {limit} bytes (max_request_bytes)")

    relay_messages._bridge_patched = True  # type: ignore[attr-defined]
    WebsocketLayer.relay_messages = relay_messages  # type: ignore[method-assign]


def _close(layer: Any, reason: str) -> Generator[Any, Any, None]:
    """Both sides closed with 1009, as the layer closes on a close frame, and the flow ended."""
    client_ws, server_ws = layer.client_ws, layer.server_ws
    client_ws.frame_buf = [b""]
    for ws in (client_ws, server_ws):
        if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            yield ws.send2(wsproto.events.CloseConnection(code=1009, reason=reason))
        yield commands.CloseConnection(ws.conn)
    websocket = layer.flow.websocket
    websocket.timestamp_end, websocket.closed_by_client = time.time(), False
    websocket.close_code, websocket.close_reason = 1009, reason
    logger.info("websocket closed by the bridge (1009): %s", reason)
    yield WebsocketEndHook(layer.flow)
    layer.flow.live = False
    layer._handle_event = layer.done


class WebSocketBounds:
    """A mitmproxy addon: the bounds above, for the flows :meth:`serve` registered."""

    def __init__(self, recording: Callable[[], bool], kept_limit: Callable[[], int]) -> None:
        self._recording = recording
        self._kept_limit = kept_limit
        self._kept: dict[str, int] = {}  # flow id → bytes of messages kept on it
        self._full: set[str] = set()  # flows that keep no more (said once in the log)

    def serve(self, flow: http.HTTPFlow, message_limit: int) -> None:
        _LIMITS[flow.id] = message_limit
        self._kept[flow.id] = 0

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.id not in self._kept or flow.websocket is None:
            return
        messages = flow.websocket.messages
        if not self._recording():
            del messages[:-1]  # the hook reads the newest; nobody reads the rest
            return
        kept = self._kept[flow.id] + len(messages[-1].content)
        if kept <= self._kept_limit() and flow.id not in self._full:  # a prefix of the connection, no gaps
            self._kept[flow.id] = kept
            return
        messages.pop()  # still sent on: only the flow's copy is left out
        if flow.id not in self._full:
            self._full.add(flow.id)
            logger.info("websocket %s: messages past max_answer_bytes are not kept on the flow", flow.id[:8])

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        _LIMITS.pop(flow.id, None)
        self._kept.pop(flow.id, None)
        self._full.discard(flow.id)

    def response(self, flow: http.HTTPFlow) -> None:
        """An upgrade that got no 101 never becomes a WebSocket: nothing to bound, nothing to keep."""
        if flow.id in self._kept and (flow.response is None or flow.response.status_code != 101):
            self.websocket_end(flow)

    def error(self, flow: http.HTTPFlow) -> None:  # the upgrade, or the connection, failed: it is over
        self.websocket_end(flow)
