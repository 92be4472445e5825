"""Logging a user steers from ``config.yaml``: level, request/response bodies, a rotating file.

``logging: {level, log_request_body, log_response_body, file, max_bytes, backups}``. Bodies are logged
``none`` (the default), ``truncated`` (the first :data:`TRUNCATE_AT` characters) or ``full``; secrets
are redacted in every mode: the values of every key the config names (upstream and client keys) and
anything shaped like a common API key or bearer token. A streamed body is logged once the stream
has ended, from a bounded copy kept on the side, so logging never delays a byte.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BODY_MODES", "CREDENTIAL_HEADERS", "LogSettings", "BodyRecorder", "Redactor", "apply", "body_for_log",
           "query_secrets", "redacted_url"]

BODY_MODES = ("none", "truncated", "full")
LEVELS = ("debug", "info", "warning", "error")
TRUNCATE_AT = 2000

_KEY_SHAPES = re.compile(
    r"(sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}|AIza[0-9A-Za-z_-]{20,})")
_HANDLER_NAME = "bridge-config-file"
# Headers and query parameters that carry credentials: blanked before a flow is kept or written.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "proxy-authorization", "x-goog-api-key", "api-key", "cookie")
_KEY_PARAMS = re.compile(r"([?&](?:key|api_key|api-key|apikey|access_token|token)=)([^&#]*)", re.IGNORECASE)


def query_secrets(url: str) -> list[str]:
    """The values of a URL's key-like query parameters (redacted wherever an upstream echoes them)."""
    return [m.group(2) for m in _KEY_PARAMS.finditer(url) if m.group(2)]


def redacted_url(url: str) -> str:
    """The URL with key-like query parameters blanked (``?key=…`` as some providers take it)."""
    return _KEY_PARAMS.sub(r"\1[REDACTED]", url)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    level: str = "info"
    log_request_body: str = "none"
    log_response_body: str = "none"
    file: str | None = None
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3


class Redactor:
    """Replaces secrets in text: the configured keys' values (read from the environment now) and
    key-shaped strings."""

    def __init__(self, env_names: Iterable[str], values: Iterable[str] = ()) -> None:
        found = [*(os.environ.get(name) for name in env_names), *values]
        self._secrets = sorted({v for v in found if v and len(v) >= 4}, key=len, reverse=True)

    def also(self, values: Iterable[str]) -> Redactor:
        """This redactor, plus more secrets (a request's own key-like query parameters)."""
        return Redactor((), [*self._secrets, *values])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return _KEY_SHAPES.sub("[REDACTED]", text)

    def bytes(self, data: bytes) -> bytes:
        """The same for a body; bytes that are not UTF-8 pass through unchanged."""
        return self(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def body_for_log(body: bytes, mode: str, redact: Redactor) -> str | None:
    """The body as it may be logged in ``mode``, or None when bodies are not logged."""
    if mode == "none":
        return None
    text = body.decode("utf-8", "replace")
    if mode == "truncated" and len(text) > TRUNCATE_AT:
        text = text[:TRUNCATE_AT] + f"… [{len(text) - TRUNCATE_AT} more characters]"
    return redact(text)


class BodyRecorder:
    """A side copy of a streamed body for the log, bounded in ``truncated`` mode."""

    def __init__(self, mode: str) -> None:
        self._limit = TRUNCATE_AT * 4 if mode == "truncated" else None  # bytes; decoding may shrink it
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes | Iterable[bytes]) -> None:
        for chunk in [data] if isinstance(data, bytes) else data:
            if self._limit is not None and self._size >= self._limit:
                return
            self._parts.append(chunk)
            self._size += len(chunk)

    def body(self) -> bytes:
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
