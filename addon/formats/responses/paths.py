"""How the OpenAI Responses API shows on HTTP: the requests that are in it (over HTTP; the Codex CLI's
WebSocket upgrade is recognised, and refused), the URL an upstream of it is asked at."""

from __future__ import annotations

from collections.abc import Mapping

from ...ir import Request
from ..api import Operation
from ..common import JSON
from .wire import NAME

SERVES = "POST /v1/responses"  # for the error that answers a path no format serves
HEADER_MARKS: tuple[str, ...] = ()
TOKEN_COUNT = None  # OpenAI's /v1/responses/input_tokens is not served (no client here uses it)


def recognise(method: str, path: str, query: str, headers: Mapping[str, str]) -> Operation | None:
    """``POST …/responses`` (``/v1/responses``, the Codex backend's ``/backend-api/codex/responses``)."""
    if not path.endswith("/responses"):
        return None
    if method == "POST":
        return Operation(NAME, "generate")
    if method == "GET" and headers.get("upgrade", "").lower() == "websocket":
        return Operation(NAME, "websocket")
    return Operation(NAME, "unknown")


def claims(path: str) -> bool:
    return "/v1/" in f"{path}/" and "/responses/" in f"{path}/"


def upstream_url(base: str, model: str, stream: bool, kind: str) -> str:
    return base + "/responses"


def streams(body: JSON, req: Request) -> bool:
    return body.get("stream") is True


def probe_model(flavor: str | None) -> str:
    return "gpt-5.5" if flavor == "codex" else "gpt-5-mini"
