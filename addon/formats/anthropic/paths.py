"""How the Anthropic Messages API shows on HTTP: the requests that are in it, the URL an upstream of
it is asked at."""

from __future__ import annotations

from collections.abc import Mapping

from ...ir import Request
from ..api import Operation
from ..common import JSON
from .wire import NAME

SERVES = "POST /v1/messages, /v1/messages/count_tokens"  # for the error that answers a path no format serves
HEADER_MARKS: tuple[str, ...] = ("anthropic-version", "x-api-key")
_PATHS = (("/v1/messages/count_tokens", "count_tokens"), ("/v1/messages", "generate"))


def recognise(method: str, path: str, query: str, headers: Mapping[str, str]) -> Operation | None:
    """``POST …/v1/messages`` and ``…/count_tokens``; ``GET …/v1/models`` with Anthropic's headers."""
    if method == "GET" and path.endswith("/v1/models"):
        return Operation(NAME, "models") if any(h in headers for h in HEADER_MARKS) else None
    kind = next((k for suffix, k in _PATHS if path.endswith(suffix)), None)
    if kind is None:
        return None
    return Operation(NAME, kind if method == "POST" else "unknown")


def claims(path: str) -> bool:
    """No prefix of its own: ``/v1/`` is OpenAI's too, so only Anthropic's headers say a path is its."""
    return False


def upstream_url(base: str, model: str, stream: bool, kind: str) -> str:
    return base + ("/v1/messages/count_tokens" if kind == "count_tokens" else "/v1/messages")


def streams(body: JSON, req: Request) -> bool:
    return body.get("stream") is True


def probe_model(flavor: str | None) -> str:
    return "claude-haiku-4-5"
