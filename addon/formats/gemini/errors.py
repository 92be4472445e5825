"""Gemini errors: ``{"error": {"code", "message", "status"}}`` ⇄ the bridge's error kinds (gemini.md §5).

One table per direction. Google names an error by its canonical ``status`` (INVALID_ARGUMENT,
RESOURCE_EXHAUSTED, …); the HTTP status keeps its class on the way through, since every SDK decides
retries by it (§5.3). A wrong API key is Google's 400 INVALID_ARGUMENT with the reason API_KEY_INVALID:
other clients see it as the authentication failure it is.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import BridgeError, ErrorKind, UpstreamError, kind_for_status
from ...ir import StreamError
from ..common import JSON, dumps, json_or_none, plain_error
from .wire import one_line

__all__ = ["parse_error", "render_error", "render_stream_error", "error_body", "stream_error", "sse"]

# gemini.md §5.1: canonical status → kind.
_STATUS_KIND = {
    "INVALID_ARGUMENT": ErrorKind.INVALID_REQUEST, "OUT_OF_RANGE": ErrorKind.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BILLING, "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorKind.PERMISSION, "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMIT, "CANCELLED": ErrorKind.API_ERROR, "INTERNAL": ErrorKind.API_ERROR,
    "UNKNOWN": ErrorKind.API_ERROR, "ABORTED": ErrorKind.API_ERROR, "UNAVAILABLE": ErrorKind.OVERLOADED,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
}
# gemini.md §5.3: kind → (HTTP status, canonical status) a Gemini client is answered with.
_KIND_WIRE = {
    ErrorKind.INVALID_REQUEST: (400, "INVALID_ARGUMENT"), ErrorKind.AUTHENTICATION: (401, "UNAUTHENTICATED"),
    ErrorKind.BILLING: (400, "FAILED_PRECONDITION"), ErrorKind.PERMISSION: (403, "PERMISSION_DENIED"),
    ErrorKind.NOT_FOUND: (404, "NOT_FOUND"), ErrorKind.REQUEST_TOO_LARGE: (400, "INVALID_ARGUMENT"),
    ErrorKind.RATE_LIMIT: (429, "RESOURCE_EXHAUSTED"), ErrorKind.API_ERROR: (500, "INTERNAL"),
    ErrorKind.TIMEOUT: (504, "DEADLINE_EXCEEDED"), ErrorKind.OVERLOADED: (503, "UNAVAILABLE"),
}
# A server error whose HTTP status is kept: Google's name for that status (§5.1), INTERNAL for the rest (502).
_SERVER_STATUS = {503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DELAY = re.compile(r"(\d{1,9})(?:\.\d+)?s")  # a google.protobuf.Duration in JSON: "34.4s"


def _kind(name: Any, status: int) -> ErrorKind:
    """The kind the canonical status names, unless the HTTP status is of the other class (4xx/5xx)."""
    kind = _STATUS_KIND.get(name) if isinstance(name, str) else None
    if kind is None or (_KIND_WIRE[kind][0] >= 500) != (status >= 500):
        return kind_for_status(status)
    return kind


def _key_invalid(err: JSON) -> bool:
    details = err.get("details")
    return isinstance(details, list) and any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID"
                                             for d in details)


def _unwrap(data: Any) -> Any:
    """Errors are sometimes a one-element list (gemini.md §4.6; the SDK's APIError unwraps it too)."""
    return data[0] if isinstance(data, list) and len(data) == 1 else data


def parse_error(status: int, body: bytes) -> UpstreamError:
    """An upstream HTTP error response, whatever its body, as an :class:`UpstreamError`."""
    data = _unwrap(json_or_none(body))
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return plain_error(status, data, body)
    message = str(err.get("message") or f"upstream error {status}")
    if _key_invalid(err):
        return UpstreamError(message, status=401, kind=ErrorKind.AUTHENTICATION)
    return UpstreamError(message, status=status, kind=_kind(err.get("status"), status), retry_after=_retry_after(err))


def _retry_after(err: JSON) -> int | None:
    """Whole seconds (rounded up) of a ``RetryInfo.retryDelay`` detail: Google's Retry-After (§5.1)."""
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            m = _DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if m:
                return int(m.group(1)) + (1 if "." in m.group(0) else 0)
    return None


def stream_error(err: JSON) -> StreamError:
    """An ``{"error": …}`` object inside a 200 stream."""
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    kind = _STATUS_KIND.get(str(err.get("status"))) or (kind_for_status(status) if status else ErrorKind.API_ERROR)
    return StreamError(status=status or _KIND_WIRE[kind][0], kind=kind.value,
                       message=str(err.get("message") or f"upstream error ({err.get('status') or code})"))


def error_body(err: BridgeError) -> tuple[int, JSON]:
    """Status and body; ``error`` is the first key and ``code`` a number, as the Python SDK needs (§4.4)."""
    status, name = _KIND_WIRE[err.kind]
    if err.kind is ErrorKind.API_ERROR and err.status >= 500:
        status = err.status  # 502 (the upstream's fault) stays what it is
        name = _SERVER_STATUS.get(status, name)  # an Anthropic 503 "api_error" is still UNAVAILABLE, not INTERNAL
    body: JSON = {"code": status, "message": err.message, "status": name}
    if err.param:
        body["details"] = [{"@type": _BAD_REQUEST, "fieldViolations": [{"field": err.param,
                                                                          "description": err.message}]}]
    return status, {"error": body}


def render_error(err: BridgeError) -> tuple[int, JSON]:
    """Status and body for an error answered before any response byte went to the client."""
    return error_body(err)


def sse(data: bytes) -> bytes:
    """One event the way both official parsers read it: ``data: `` + one line of JSON + CRLF CRLF (§4.1)."""
    return b"data: " + data + b"\r\n\r\n"


def render_stream_error(err: BridgeError) -> bytes:
    """A stream error as an SSE event (what a stream asked for with ``alt=sse`` ends with; the emitter
    writes it as an array element for a JSON-array stream)."""
    return sse(one_line(dumps(error_body(err)[1])))
