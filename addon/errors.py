"""The one error family the bridge raises. Format modules render it in the client's shape.

A translator raises only :class:`BridgeError` subclasses; anything else escaping a translator is a
bug. Each error carries the HTTP status the client should see and a format-neutral ``kind``; each
``formats/<name>/answer.py`` maps that kind to its own error type names (``render_error``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ErrorKind", "BridgeError", "BadRequest", "Unsupported", "UpstreamError", "UpstreamProtocolError",
    "kind_for_status",
]


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    BILLING = "billing"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit"
    API_ERROR = "api_error"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"


_KIND_BY_STATUS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    402: ErrorKind.BILLING,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    413: ErrorKind.REQUEST_TOO_LARGE,
    429: ErrorKind.RATE_LIMIT,
    503: ErrorKind.OVERLOADED,
    504: ErrorKind.TIMEOUT,
    529: ErrorKind.OVERLOADED,
}


def kind_for_status(status: int) -> ErrorKind:
    """The error kind an HTTP status implies; unlisted 4xx are invalid requests, 5xx API errors."""
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return ErrorKind.INVALID_REQUEST if status < 500 else ErrorKind.API_ERROR


class BridgeError(Exception):
    """Base: ``status`` is the HTTP status for the client, ``message`` is safe to show it."""

    status: int = 500
    kind: ErrorKind = ErrorKind.API_ERROR

    def __init__(self, message: str, *, status: int | None = None, kind: ErrorKind | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.param = param
        self.code = code


class BadRequest(BridgeError):
    """The client's request is malformed; ``param`` names the offending field."""

    status = 400
    kind = ErrorKind.INVALID_REQUEST


class Unsupported(BadRequest):
    """The request uses a feature the chosen upstream format cannot express."""


class UpstreamError(BridgeError):
    """The upstream answered with an error; status and message are the upstream's. ``retry_after``: the
    seconds its body said to wait, for an API that says so in the body rather than a header (Google)."""

    def __init__(self, message: str, *, status: int, kind: ErrorKind | None = None,
                 param: str | None = None, code: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, status=status, kind=kind or kind_for_status(status),
                         param=param, code=code)
        self.retry_after = retry_after


class UpstreamProtocolError(BridgeError):
    """The upstream sent something its own format does not allow (bad JSON, broken event order)."""

    status = 502
    kind = ErrorKind.API_ERROR
