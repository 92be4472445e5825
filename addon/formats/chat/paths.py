"""How OpenAI Chat Completions shows on HTTP: the requests that are in it, the URL an upstream of it is
asked at."""

from __future__ import annotations

from collections.abc import Mapping

from ...ir import Request
from ..api import Operation
from ..common import JSON
from .wire import NAME

SERVES = "POST /v1/chat/completions, GET /v1/models"  # for the error that answers a path no format serves
HEADER_MARKS: tuple[str, ...] = ()  # OpenAI's clients send nothing the others do not
TOKEN_COUNT = None  # Chat Completions has no token-counting operation


def recognise(method: str, path: str, query: str, headers: Mapping[str, str]) -> Operation | None:
    """``POST …/chat/completions``; ``GET …/v1/models`` (the OpenAI-shaped models list)."""
    if method == "GET" and path.endswith("/v1/models"):
        return Operation(NAME, "models")
    if path.endswith("/chat/completions"):  # under any base: /v1, /openai/v1, Gemini's /v1beta/openai
        return Operation(NAME, "generate" if method == "POST" else "unknown")
    return None


def claims(path: str) -> bool:
    """Any path under ``/v1/`` no other format recognised: OpenAI's API prefix."""
    return "/v1/" in f"{path}/"


def upstream_url(base: str, model: str, stream: bool, kind: str) -> str:
    return base + "/chat/completions"


def streams(body: JSON, req: Request) -> bool:
    return body.get("stream") is True


def probe_model(flavor: str | None) -> str:
    return "gpt-5-mini"
