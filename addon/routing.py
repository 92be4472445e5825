"""Which format a client speaks, and which endpoint and upstream format serve it."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, Endpoint

__all__ = ["CLIENT_PATHS", "Route", "detect_format", "route"]

# Path suffixes, so a client whose base URL carries a prefix (/openai/v1/..., /backend-api/codex/...)
# is recognised too. The query string is ignored here and kept on the way upstream.
CLIENT_PATHS = (("/v1/messages", "anthropic"), ("/v1/chat/completions", "chat"), ("/responses", "responses"))
# What is appended to an endpoint's base URL for each upstream format.
_UPSTREAM_PATHS = {"anthropic": "/v1/messages", "chat": "/chat/completions", "responses": "/responses"}


def detect_format(method: str, path: str) -> str | None:
    """The client format of a request, from its method and path (query string ignored)."""
    if method != "POST":
        return None
    bare = path.split("?", 1)[0].rstrip("/")
    return next((name for suffix, name in CLIENT_PATHS if bare.endswith(suffix)), None)


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    client_format: str
    upstream_format: str
    url: str  # without the query string
    flavor: str | None = None  # "codex": the ChatGPT backend's rules on top of Responses

    @property
    def passthrough(self) -> bool:
        return self.client_format == self.upstream_format


def _offers(ep: Endpoint) -> list[tuple[str, str, str | None]]:
    """(format, base URL, flavor) the endpoint offers, in the order the bridge prefers them."""
    out: list[tuple[str, str, str | None]] = []
    if ep.url_openai:
        out.append(("responses" if ep.openai_preference == "responses" else "chat", ep.url_openai, None))
    if ep.url_codex:
        out.append(("responses", ep.url_codex, "codex"))
    if ep.url_anthropic:
        out.append(("anthropic", ep.url_anthropic, None))
    return out


def route(config: Config, client_format: str) -> Route:
    """The first endpoint serves; a URL in the client's own format wins (no translation)."""
    ep = config.endpoints[0]
    offers = _offers(ep)
    fmt, base, flavor = next((o for o in offers if o[0] == client_format), offers[0])
    return Route(endpoint=ep, client_format=client_format, upstream_format=fmt,
                 url=base + _UPSTREAM_PATHS[fmt], flavor=flavor)
