"""Which format a client speaks, and which endpoint and upstream format serve it."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, Endpoint
from .formats import anthropic, chat

__all__ = ["Route", "detect_format", "route"]

# Path suffixes, so a client whose base URL carries a prefix (/openai/v1/...) is recognised too.
_CLIENT_PATHS = ((anthropic.PATH, anthropic.NAME), ("/v1" + chat.PATH, chat.NAME))


def detect_format(method: str, path: str) -> str | None:
    """The client format of a request, from its method and path (query string ignored)."""
    if method != "POST":
        return None
    bare = path.split("?", 1)[0].rstrip("/")
    return next((name for suffix, name in _CLIENT_PATHS if bare.endswith(suffix)), None)


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    client_format: str
    upstream_format: str
    url: str  # without the query string

    @property
    def passthrough(self) -> bool:
        return self.client_format == self.upstream_format


def route(config: Config, client_format: str) -> Route:
    """The first endpoint serves; its URL in the client's own format wins (no translation)."""
    ep = config.endpoints[0]
    urls = {anthropic.NAME: ep.url_anthropic, chat.NAME: ep.url_openai}
    upstream_format = client_format if urls[client_format] else next(f for f, u in urls.items() if u)
    base = urls[upstream_format] or ""
    path = anthropic.PATH if upstream_format == anthropic.NAME else chat.PATH
    return Route(endpoint=ep, client_format=client_format, upstream_format=upstream_format, url=base + path)
