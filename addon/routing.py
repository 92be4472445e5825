"""Which API a request is for, and which endpoint and upstream format serve it.

Endpoints are tried by priority (then file order); the first whose ``models`` globs match the model
serves it. A URL in the client's own format wins (pass-through); otherwise the bridge translates to
a format the endpoint has, in the order of ``config.URL_KEYS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import formats
from .config import PROBE_PATHS, READY_PATHS, Config, Endpoint
from .errors import BridgeError, ErrorKind
from .formats import Operation

__all__ = ["Operation", "Route", "NoEndpoint", "detect", "route", "candidates", "no_endpoint", "serve_metrics"]

# What clients probe before their first request (Claude Code: HEAD /api/hello), what load balancers and
# people ask (liveness, readiness: health.py) and the config's metrics route (metrics.py): answered by
# the bridge itself, never forwarded. Path → operation kind.
_LOCAL = {**dict.fromkeys(PROBE_PATHS, "probe"), **dict.fromkeys(READY_PATHS, "ready")}
_local = dict(_LOCAL)


def serve_metrics(path: str | None) -> None:
    """The config's metrics route (``metrics.path``; None: none), answered like the probes from now on."""
    global _local
    _local = {**_LOCAL, path: "metrics"} if path else dict(_LOCAL)


def detect(method: str, path: str, headers: Mapping[str, str]) -> Operation | None:
    """The API operation a request is, as the first format that recognises it says (paths are matched
    by their ending, so a base URL with a prefix works: ``/openai/v1/…``, ``/backend-api/codex/…``);
    a path under a format's prefix that none serves is that format's "unknown"; None: not an API
    request. ``headers`` looks up lowercase names."""
    bare, _, query = path.partition("?")
    bare = bare.rstrip("/")
    if method in ("GET", "HEAD") and (local := _local.get(bare)) is not None:
        return Operation(formats.marked(headers) or formats.FALLBACK, local)
    for f in formats.FORMATS.values():
        if (op := f.recognise(method, bare, query, headers)) is not None:
            return op
    fmt = formats.answering(bare, headers)
    return Operation(fmt, "unknown") if fmt else None


class NoEndpoint(BridgeError):
    """No endpoint serves the model: the message names it and every endpoint with what it serves."""

    status = 404
    kind = ErrorKind.NOT_FOUND


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    client_format: str
    upstream_format: str
    base: str  # the endpoint's base URL for that format (the format appends its path: upstream_url)
    upstream_model: str
    flavor: str | None = None  # "codex": the ChatGPT backend's rules on top of Responses

    @property
    def passthrough(self) -> bool:
        return self.client_format == self.upstream_format


def candidates(config: Config, client_format: str, model: str) -> list[Route]:
    """Every endpoint that serves the model, in the order to try them."""
    routes = []
    for ep in config.endpoints:
        if not ep.serves(model):
            continue
        offer = next((o for o in ep.offers if o.format == client_format), ep.offers[0])
        routes.append(Route(endpoint=ep, client_format=client_format, upstream_format=offer.format, base=offer.base,
                            upstream_model=ep.upstream_model(model), flavor=offer.flavor))
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
