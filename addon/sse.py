"""Incremental Server-Sent Events decoding and encoding, sans I/O.

Theory of operation
-------------------
mitmproxy hands the stream callable bytes at arbitrary boundaries: inside a ``data:`` line, between
``\\r`` and ``\\n``, inside a multibyte UTF-8 character. :class:`SSEDecoder` keeps the incomplete tail
in a buffer, splits only complete lines (``\\n``, ``\\r\\n`` or ``\\r``, as the WHATWG spec and both
official SDK decoders do), decodes each complete line as UTF-8, and dispatches an event at each
blank line. ``close()`` flushes a final event that lacks its blank line.

Some upstreams end a stream that failed with a raw JSON error instead of an event (the Gemini API's
pretty-printed ``{"error": {…}}``, gemini.md §4.6). Lines that are no SSE field are kept (a bounded
few) and, at the end, an ``{"error": …}`` object among them is dispatched as one last ``error`` event,
so the client learns what the upstream said instead of only that the stream stopped.

An event larger than ``max_event_size`` raises :class:`UpstreamProtocolError` rather than growing
the buffer without bound (h11's ``max_incomplete_event_size``).
"""

from __future__ import annotations

import json
from typing import NamedTuple

from .errors import UpstreamProtocolError

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "SSEEvent", "SSEDecoder", "encode_event"]

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024
_STRAY_LIMIT = 64 * 1024  # what is kept of lines that are no SSE field: room for an error, not a body


class SSEEvent(NamedTuple):
    """One event: its ``event:`` name (None without one) and its data lines joined. A named tuple: made for
    every event of every stream, and quicker to make than a frozen dataclass (0.1 against 0.35 µs)."""

    event: str | None
    data: str


_new_event = tuple.__new__  # SSEEvent without the keyword handling of its constructor


class SSEDecoder:
    """Feed bytes, get complete :class:`SSEEvent` values. One instance per stream."""

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._tail = b""
        self._pieces: list[bytes] = []  # chunks of one long line, joined once its end arrives
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0
        self._max = max_event_size
        self._stray: list[str] = []  # lines that are no SSE field since the last data line
        self._stray_size = 0
        self.error: UpstreamProtocolError | None = None  # a bad line, after events that came before it

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events this chunk completes. A bad line raises :class:`UpstreamProtocolError`; the
        events before it in the same chunk are returned first, with the error kept in ``error`` and
        raised by the next call."""
        if self.error is not None:
            raise self.error
        out: list[SSEEvent] = []
        try:
            self._feed(chunk, out)
        except UpstreamProtocolError as e:
            if not out:
                raise
            self.error = e
        return out

    def _feed(self, chunk: bytes, out: list[SSEEvent]) -> None:
        if b"\n" not in chunk and b"\r" not in chunk:
            # Still inside one line: keep the piece instead of re-joining a growing buffer (linear, not
            # quadratic, in the size of a large event).
            if chunk:
                self._pieces.append(chunk)
                self._size += len(chunk)
                if len(self._tail) + self._size > self._max:
                    raise UpstreamProtocolError(f"upstream SSE event exceeds {self._max} bytes")
            return
        if self._pieces:
            self._size -= sum(map(len, self._pieces))
            self._tail += b"".join(self._pieces)
            self._pieces = []
        buf = self._tail + chunk if self._tail else chunk
        if b"\r" not in buf:
            # The usual case, "\n" line ends only: split them off without keeping and stripping ends, and
            # take "data: " lines, "event: " lines and the blank line that ends an event (nearly every line)
            # without the general field parsing: what _line and _dispatch do, inline (a third quicker).
            lines = buf.split(b"\n")
            self._tail = lines.pop()  # what follows the last "\n": b"" or an unterminated line
            if self._tail and len(self._tail) + self._size > self._max:
                raise UpstreamProtocolError(f"upstream SSE event exceeds {self._max} bytes")
            data = self._data
            for raw in lines:
                if raw[:6] == b"data: ":
                    if self._stray:
                        self._stray, self._stray_size = [], 0
                    try:
                        data.append(raw[6:].decode("utf-8"))
                    except UnicodeDecodeError:
                        self._line(raw, out)  # raises, with the position in the whole line
                    self._size += len(raw)
                    if self._size > self._max:
                        raise UpstreamProtocolError(f"upstream SSE event exceeds {self._max} bytes")
                elif not raw:  # the end of an event
                    if data:
                        out.append(_new_event(SSEEvent, (self._event, data[0] if len(data) == 1 else "\n".join(data))))
                        data = self._data = []
                    self._event = None
                    self._size = 0
                elif raw[:7] == b"event: ":
                    try:
                        self._event = raw[7:].decode("utf-8")
                    except UnicodeDecodeError:
                        self._line(raw, out)  # raises, as above
                else:
                    self._line(raw, out)
                    data = self._data
            return
        lines = buf.splitlines(keepends=True)
        if not lines:
            return
        last = lines[-1]
        # An unterminated last line, or one ending in a lone "\r" whose "\n" may be in the next
        # chunk, waits for more bytes.
        if not last.endswith(b"\n"):
            self._tail = lines.pop()
            if len(self._tail) + self._size > self._max:
                raise UpstreamProtocolError(f"upstream SSE event exceeds {self._max} bytes")
        else:
            self._tail = b""
        for raw in lines:
            self._line(raw.rstrip(b"\r\n"), out)

    def close(self) -> list[SSEEvent]:
        """End of stream: the pending line and event are dispatched even without a blank line."""
        if self.error is not None:
            raise self.error
        out: list[SSEEvent] = []
        if self._pieces:
            self._size -= sum(map(len, self._pieces))
            self._tail += b"".join(self._pieces)
            self._pieces = []
        if self._tail:
            self._line(self._tail.rstrip(b"\r\n"), out)
            self._tail = b""
        self._dispatch(out)
        if self._stray:
            error = _error_object("\n".join(self._stray))
            if error is not None:
                out.append(SSEEvent("error", error))
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(out)
            return
        if raw[0] == 0x3A:  # ":" comment
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UpstreamProtocolError(f"upstream SSE line is not valid UTF-8: {e}") from None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._stray, self._stray_size = [], 0
            self._data.append(value)
            self._size += len(raw)
            if self._size > self._max:
                raise UpstreamProtocolError(f"upstream SSE event exceeds {self._max} bytes")
        elif name == "event":
            self._event = value
        elif name not in ("id", "retry") and self._stray_size + len(line) <= _STRAY_LIMIT:
            self._stray.append(line)  # not SSE: perhaps a raw JSON error tail
            self._stray_size += len(line)
        # "id", "retry" and unknown fields carry nothing a translator needs.

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(_new_event(SSEEvent, (self._event, "\n".join(self._data))))
        self._event = None
        self._data = []
        self._size = 0


def _error_object(text: str) -> str | None:
    """``text`` as compact JSON when it is an ``{"error": …}`` object (or a list of one), else None."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict) or not isinstance(obj.get("error"), dict | str):
        return None
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_event(data: str, event: str | None = None) -> bytes:
    """One SSE event, always terminated by a blank line (the SDKs drop an unterminated last event).

    ``data`` must not contain newlines; compact JSON never does. A lone surrogate (JSON may escape
    one, ``"\\ud800"``, and ``json.loads`` keeps it) cannot be UTF-8: it is written back as its JSON
    escape, so the event stays valid instead of crashing the stream.
    """
    text = f"data: {data}\n\n" if event is None else f"event: {event}\ndata: {data}\n\n"
    return text.encode("utf-8", "backslashreplace")
