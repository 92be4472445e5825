"""One Responses-over-WebSocket connection, sans I/O: what each client message becomes (codex-websocket.md).

Codex sends every turn as a ``response.create`` message: the Responses body plus ``"type"``. A
:class:`Session` turns each into one of three things:

* a warm-up (``generate: false``) answered here with an empty completed response, as the real backend
  does, so nothing reaches an upstream;
* an HTTP request body for the bridge's own ``POST …/responses`` (the message without ``type``,
  ``generate`` and ``previous_response_id``, its ``input`` expanded), with the headers that the
  ``ws_request_header_<name>`` keys of ``client_metadata`` stand for;
* an error frame, in the shape Codex reads on this transport.

Codex's later messages carry only what is new since the last response on the connection, with that
response's id in ``previous_response_id``. The session keeps the last response's whole context —
its input, expanded, and its output items — so the bridge sends every upstream the whole history,
whatever the upstream keeps. Only the newest response is kept (Codex never points further back), and
only up to ``limit`` bytes; an id the session does not hold gets ``previous_response_not_found``,
on which Codex opens a new connection and sends everything again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .formats.common import Context
from .formats.responses import StreamEmitter
from .ir import Finish, MessageStart, StopReason, Usage
from .sse import SSEDecoder

__all__ = ["Forward", "Local", "Session", "error_frame", "events_of"]

_NOT_SENT = ("type", "generate", "previous_response_id")  # message keys that are the transport's, not the body's
_ENDS = ('"response.completed"', '"response.failed"', '"response.incomplete"', '"error"')  # quick test first
_HEADER_KEY = "ws_request_header_"  # client_metadata keys that stand in for an HTTP header (codex-websocket.md §1.3)


@dataclass(frozen=True, slots=True)
class Forward:
    """A turn for the bridge's HTTP side: the body to POST and the headers the message asked for."""

    body: dict[str, Any]
    headers: dict[str, str]

    def content(self) -> bytes:
        """The body as the turn's HTTP request carries it."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Local:
    """A turn answered here: the frames to send (text), in order."""

    frames: list[str]


def error_frame(status: int, message: str, code: str | None = None, kind: str | None = None,
                headers: dict[str, str] | None = None) -> str:
    """``{"type": "error", "status", "error": {type, code, message}, "headers"}``. ``status`` decides
    what Codex does: 5xx and some codes make it reconnect and resend, 4xx fail the turn (§1.4)."""
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return json.dumps({"type": "error", "status": status,
                       "error": {"type": kind, "code": code or kind, "message": message},
                       "headers": headers or {}}, separators=(",", ":"))


def events_of(sse: bytes) -> list[str]:
    """The ``data`` of each SSE event: one WebSocket text frame each."""
    decoder = SSEDecoder()
    return [ev.data for ev in decoder.feed(sse) + decoder.close()]


@dataclass
class Session:
    """The state of one connection: the newest response's id and context, within ``limit`` bytes."""

    limit: int
    new_id: Callable[[str], str]
    now: Callable[[], int]
    _last_id: str | None = None
    _context: list[Any] = field(default_factory=list)  # the input and output of the last response
    _pending: list[Any] | None = None  # the expanded input of the turn in flight

    def turn(self, text: str, message: Any = None) -> Forward | Local:
        """What a client text frame asks for (``message``: its JSON, when the caller has read it already)."""
        if message is None:
            try:
                message = json.loads(text)
            except ValueError:
                return Local([error_frame(400, "the message is not JSON")])
        if not isinstance(message, dict) or message.get("type") != "response.create":
            kind = message.get("type") if isinstance(message, dict) else None
            return Local([error_frame(400, f"the bridge answers response.create messages, not {kind!r}",
                                      code="unsupported_message")])
        previous = message.get("previous_response_id")
        new_input = _input(message)
        if new_input is None:
            return Local([error_frame(400, "input: expected a string or an array of items")])
        if previous is not None:
            if previous != self._last_id:
                return Local([error_frame(400, f"previous_response_id {previous!r} is not the last response on "
                                               "this connection, which is all the bridge keeps; send the whole "
                                               "input", code="previous_response_not_found")])
            new_input = self._context + new_input
        if message.get("generate") is False:
            return Local(self._warm_up(str(message.get("model") or ""), new_input))
        body = {k: v for k, v in message.items() if k not in _NOT_SENT}
        body["input"], body["stream"] = new_input, True
        self._pending = new_input
        metadata = message.get("client_metadata")
        headers = {k[len(_HEADER_KEY):].replace("_", "-"): str(v) for k, v in metadata.items()
                   if k.startswith(_HEADER_KEY)} if isinstance(metadata, dict) else {}
        return Forward(body, headers)

    def track(self, message: dict[str, Any]) -> None:
        """A turn an upstream answers over its own WebSocket (it keeps the state): only what a later turn
        over HTTP would build on is kept, from the response it ends with (:meth:`finished`)."""
        new_input, previous = _input(message), message.get("previous_response_id")
        if new_input is None or (previous is not None and previous != self._last_id):
            self._pending = None
            return
        self._pending = (self._context if previous is not None else []) + new_input

    def finished(self, response: Any) -> None:
        """The turn in flight ended with ``response`` (a ``response.completed`` event's): it becomes the
        context the next message builds on. Any other end forgets it."""
        pending, self._pending = self._pending, None
        output = response.get("output") if isinstance(response, dict) else None
        if pending is None or not isinstance(output, list) or not isinstance(response.get("id"), str):
            self._forget()
            return
        self._keep(response["id"], pending + output)

    def failed(self) -> None:
        self._pending = None
        self._forget()

    def ended(self, frame: str) -> bool:
        """Whether ``frame``, an event of the turn in flight, ends its response: a completed one becomes the
        context (:meth:`finished`), a failed or incomplete one, or an error frame (an upstream that serves
        WebSocket sends its own), is forgotten (:meth:`failed`)."""
        if not any(kind in frame for kind in _ENDS):
            return False
        try:
            event = json.loads(frame)
        except ValueError:
            return False
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "response.completed":
            self.finished(event.get("response"))
            return True
        if kind in ("response.failed", "response.incomplete", "error"):
            self.failed()
            return True
        return False

    def _warm_up(self, model: str, context: list[Any]) -> list[str]:
        """An empty completed response (created, in_progress, completed; no output), as Codex expects."""
        emitter = StreamEmitter(Context(new_id=self.new_id, created=self.now()))
        sse = b"".join(emitter.feed(MessageStart(id="", model=model, usage=Usage(input_tokens=0, output_tokens=0)))
                       + emitter.feed(Finish(stop_reason=StopReason.END_TURN)))
        frames = events_of(sse)
        completed = json.loads(frames[-1])["response"]
        self._keep(completed["id"], context)
        return frames

    def _keep(self, response_id: str, context: list[Any]) -> None:
        if len(json.dumps(context, separators=(",", ":"))) > self.limit:
            self._forget()  # Codex is told so on its next incremental message, and resends it all
            return
        self._last_id, self._context = response_id, context

    def _forget(self) -> None:
        self._last_id, self._context = None, []


def _input(message: dict[str, Any]) -> list[Any] | None:
    """A message's ``input`` as items (a string is one user message); None if it is neither."""
    value = message.get("input", [])
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return value if isinstance(value, list) else None
