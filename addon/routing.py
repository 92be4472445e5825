"""Which API a request is for, and which endpoint and upstream format serve it.

Endpoints are tried by priority (then file order); the first whose ``models`` globs match the model
serves it. A URL in the client's own format wins (pass-through); otherwise the bridge translates to
a format the endpoint has, preferring ``url_openai``, then ``url_codex``, then ``url_anthropic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config import Config, Endpoint
from .errors import BridgeError, ErrorKind

__all__ = ["Operation", "Route", "NoEndpoint", "UPSTREAM_PATHS", "anthropic_headers", "detect", "route", "candidates",
           "no_endpoint", "offers"]

# Path suffixes, so a client whose base URL carries a prefix (/openai/v1/..., /backend-api/codex/...)
# is recognised too. The query string is ignored here and kept on the way upstream.
_POST_PATHS = (("/v1/messages/count_tokens", "anthropic", "count_tokens"), ("/v1/messages", "anthropic", "generate"),
               ("/v1/chat/completions", "chat", "generate"), ("/responses", "responses", "generate"))
# What clients probe before their first request (Claude Code: HEAD /api/hello) and what load balancers
# and people ask: answered by the bridge itself, never forwarded.
_PROBES = ("/health", "/healthz", "/api/hello")
# What is appended to an endpoint's base URL for each upstream format.
UPSTREAM_PATHS = {"anthropic": "/v1/messages", "chat": "/chat/completions", "responses": "/responses"}


@dataclass(frozen=True, slots=True)
class Operation:
    client_format: str
    kind: str  # generate | count_tokens | models | probe | unknown (a path under /v1/ that no API here has)


def anthropic_headers(headers: Mapping[str, str]) -> bool:
    """Whether a request carries Anthropic's own headers (what tells a models list or an unknown path
    which format to answer in). ``headers`` looks up lowercase names."""
    return "anthropic-version" in headers or "x-api-key" in headers


def detect(method: str, path: str, anthropic_headers: bool) -> Operation | None:
    """The API operation a request is, from method and path; ``GET …/v1/models`` is answered in the
    Anthropic shape when the request carries Anthropic headers, else in OpenAI's."""
    bare = path.split("?", 1)[0].rstrip("/")
    guess = "anthropic" if anthropic_headers else "responses" if "/responses/" in f"{bare}/" else "chat"
    if method == "GET" and bare.endswith("/v1/models"):
        return Operation(guess if guess != "responses" else "chat", "models")
    if method in ("GET", "HEAD") and bare in _PROBES:
        return Operation(guess if guess != "responses" else "chat", "probe")
    known = next((Operation(fmt, kind) for suffix, fmt, kind in _POST_PATHS if bare.endswith(suffix)), None)
    if method == "POST" and known:
        return known
    if "/v1/" in f"{bare}/" or known:  # under an API prefix, but nothing the bridge serves: say so, in its format
        return Operation(guess, "unknown")
    return None


class NoEndpoint(BridgeError):
    """No endpoint serves the model: the message names it and every endpoint with what it serves."""

    status = 404
    kind = ErrorKind.NOT_FOUND


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    client_format: str
    upstream_format: str
    url: str  # without the query string
    upstream_model: str
    flavor: str | None = None  # "codex": the ChatGPT backend's rules on top of Responses

    @property
    def passthrough(self) -> bool:
        return self.client_format == self.upstream_format


def offers(ep: Endpoint) -> list[tuple[str, str, str | None]]:
    """(format, base URL, flavor) the endpoint offers, in the order the bridge prefers them."""
    out: list[tuple[str, str, str | None]] = []
    if ep.url_openai:
        out.append(("responses" if ep.openai_preference == "responses" else "chat", ep.url_openai, None))
    if ep.url_codex:
        out.append(("responses", ep.url_codex, "codex"))
    if ep.url_anthropic:
        out.append(("anthropic", ep.url_anthropic, None))
    return out


def candidates(config: Config, client_format: str, model: str) -> list[Route]:
    """Every endpoint that serves the model, in the order to try them."""
    routes = []
    for ep in config.endpoints:
        if not ep.serves(model):
            continue
        offered = offers(ep)
        fmt, base, flavor = next((o for o in offered if o[0] == client_format), offered[0])
        routes.append(Route(endpoint=ep, client_format=client_format, upstream_format=fmt,
                            url=base + UPSTREAM_PATHS[fmt], upstream_model=ep.upstream_model(model), flavor=flavor))
    return routes


def route(config: Config, client_format: str, model: str) -> Route:
    """The endpoint that serves the model. Raises :class:`NoEndpoint` naming what was tried."""
    found = candidates(config, client_format, model)
    if not found:
        raise no_endpoint(config, model)
    return found[0]


def no_endpoint(config: Config, model: str) -> NoEndpoint:
    tried = "; ".join(f"{ep.name} (serves {', '.join(ep.models)})" for ep in config.endpoints)
    return NoEndpoint(f"no endpoint serves model {model!r}; tried: {tried}", param="model")
