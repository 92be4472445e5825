"""How the Gemini API shows on HTTP: the model and the stream flag are in the path, the stream's framing
in the query (gemini.md §1.1, §4.2); the URL an upstream of it is asked at."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote

from ...ir import Request
from ..api import Operation
from ..common import JSON
from .wire import NAME

SERVES = ("POST /v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens; "
          "GET /v1beta/models")  # for the error that answers a path no format serves
HEADER_MARKS: tuple[str, ...] = ("x-goog-api-key",)

# …/{v1beta|v1}/models/{model}:{method}; tuned models live under tunedModels/ instead (§1.1).
_CALL = re.compile(r"/(?:v1beta|v1)/(models|tunedModels)/([^/:]+):([A-Za-z]+)$")
_LIST = re.compile(r"/(v1beta|v1)/models$")
_GEMINI_V1 = re.compile(r"/v1/(?:models|tunedModels)/[^/:]+:[A-Za-z]+$")
_METHODS = {"generateContent": ("generate", False), "streamGenerateContent": ("generate", True),
            "countTokens": ("count_tokens", None)}


def recognise(method: str, path: str, query: str, headers: Mapping[str, str]) -> Operation | None:
    """``POST …/v1beta/models/{model}:generateContent`` (and ``:streamGenerateContent``, ``:countTokens``,
    under ``/v1`` too, which the Python SDK calls by default); ``GET …/v1beta/models``, and ``GET
    …/v1/models`` when Gemini's key header or ``?key=`` says it is Gemini's (else it is OpenAI's)."""
    listing = _LIST.search(path)
    if listing:
        if listing.group(1) == "v1" and not ("x-goog-api-key" in headers or _has_key(query)):
            return None
        return Operation(NAME, "models" if method == "GET" else "unknown")
    call = _CALL.search(path)
    if call is None:
        return None
    collection, model, name = call.groups()
    kind, stream = _METHODS.get(name, ("unknown", None))
    if method != "POST" or kind == "unknown":
        return Operation(NAME, "unknown")
    model = unquote(model) if collection == "models" else f"tunedModels/{unquote(model)}"
    framing = "sse" if stream is not True or _alt(query) == "sse" else "json-array"
    return Operation(NAME, kind, model=model, stream=stream if kind == "generate" else False, framing=framing)


def _query(query: str) -> dict[str, str]:
    return {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}


def _alt(query: str) -> str:
    params = _query(query)
    return (params.get("alt") or params.get("$alt") or "").lower()  # Google takes "$alt" as well


def _has_key(query: str) -> bool:
    return "key" in _query(query)


def claims(path: str) -> bool:
    """Paths under ``/v1beta/`` (Google's prefix; OpenAI and Anthropic have none there), and a
    Gemini-shaped ``/v1/models/{model}:{method}``."""
    return "/v1beta/" in f"{path}/" or _GEMINI_V1.search(path) is not None


def upstream_url(base: str, model: str, stream: bool, kind: str) -> str:
    """``base`` has no version (as ``GOOGLE_GEMINI_BASE_URL``): ``{base}/v1beta/models/{model}:…``. A
    stream is always asked for as SSE (``alt=sse``), which is what the stream parser reads."""
    if model.startswith("tunedModels/"):
        resource = "tunedModels/" + quote(model[len("tunedModels/"):], safe="")
    else:
        resource = "models/" + quote(model.removeprefix("models/"), safe="")
    if kind == "count_tokens":
        return f"{base}/v1beta/{resource}:countTokens"
    if stream:
        return f"{base}/v1beta/{resource}:streamGenerateContent?alt=sse"
    return f"{base}/v1beta/{resource}:generateContent"


def streams(body: JSON, req: Request) -> bool:
    """A Gemini body has no stream flag: the URL says it, and the URL follows the request's."""
    return req.stream


def probe_model(flavor: str | None) -> str:
    return "gemini-2.5-flash"
