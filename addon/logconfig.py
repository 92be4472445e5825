"""Logging a user steers from ``config.yaml``: level, request/response bodies, a rotating file.

``logging: {level, log_request_body, log_response_body, file, max_bytes, backups}``. Bodies are logged
``none`` (the default), ``truncated`` (the first :data:`TRUNCATE_AT` characters) or ``full`` (at most
``max_bytes``, the rotation size: one record never outgrows a log file); secrets are redacted in every
mode (:mod:`addon.redact`). A streamed body is logged once the stream has ended, from a bounded copy
kept on the side, so logging never delays a byte. Text from peers in a log line goes through
:func:`clean`, so a model name or an upstream message cannot forge a line.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["BODY_MODES", "LEVELS", "TRUNCATE_AT", "LogSettings", "BodyRecorder", "apply", "body_for_log", "clean"]

BODY_MODES = ("none", "truncated", "full")
LEVELS = ("debug", "info", "warning", "error")
TRUNCATE_AT = 2000
_HANDLER_NAME = "bridge-config-file"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str = "info"
    log_request_body: str = "none"
    log_response_body: str = "none"
    file: str | None = None
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3


def clean(text: object, limit: int = 300) -> str:
    """A peer's text fit for one log line: control characters escaped (a newline cannot start a forged
    line), at most ``limit`` characters."""
    out = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))
    return out if len(out) <= limit else out[:limit] + f"… [{len(out) - limit} more]"


def body_for_log(body: bytes, mode: str, redact: Callable[[str], str], max_bytes: int) -> str | None:
    """The body as it may be logged in ``mode`` (``full``: at most ``max_bytes``), or None when bodies are
    not logged."""
    if mode == "none":
        return None
    cap = TRUNCATE_AT * 4 if mode == "truncated" else max_bytes
    text = body[:cap].decode("utf-8", "replace")
    if mode == "truncated" and len(text) > TRUNCATE_AT:
        return redact(text[:TRUNCATE_AT]) + f"… [{len(text) - TRUNCATE_AT} more characters]"
    more = f"… [{len(body) - cap} more bytes]" if len(body) > cap else ""
    return redact(text) + more


class BodyRecorder:
    """A side copy of a streamed body (for the log or a recorded flow), at most ``limit`` bytes; what
    did not fit is counted in ``dropped``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.dropped = 0

    def add(self, data: bytes | Iterable[bytes]) -> None:
        for chunk in [data] if isinstance(data, bytes) else data:
            room = self._limit - self._size
            if room <= 0:
                self.dropped += len(chunk)
                continue
            if len(chunk) > room:
                self.dropped += len(chunk) - room
                chunk = chunk[:room]
            self._parts.append(chunk)
            self._size += len(chunk)

    def body(self) -> bytes:
        if self.dropped:
            return b"".join(self._parts) + f"\n\n: [{self.dropped} more bytes not kept]\n\n".encode()
        return b"".join(self._parts)


def apply(settings: LogSettings, logger: logging.Logger) -> None:
    """Set the bridge logger's level and (re)place its rotating file handler."""
    logger.setLevel(settings.level.upper())
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    if settings.file:
        handler = logging.handlers.RotatingFileHandler(settings.file, maxBytes=settings.max_bytes,
                                                       backupCount=settings.backups, encoding="utf-8")
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
