"""Prometheus metrics (``prometheus_client``, a registry of the bridge's own), answered at the route the
config names (``metrics: {path: /metrics}``; none by default), subject to the access rule like every request.

One call per finished request (:meth:`Metrics.finished`, from :func:`~addon.flowlog.log_flow`) and two
per streamed answer (:meth:`Metrics.stream_opened` / :meth:`Metrics.stream_closed`, from ``respond.py``).
Every label value is bounded: formats and endpoint and client names come from the registry and the
config; an error kind from a fixed list; a model name from a client only when the config routes it
(an endpoint's ``models`` glob — every name, for an endpoint without one — or a rewrite rule's source
or target), up to ``max_models`` distinct names; every other name is ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import disable_created_metrics as _disable_created_metrics

from . import routing
from .config import Config
from .errors import kind_for_status
from .ir import Usage
from .relay import Job

__all__ = ["METRICS", "Metrics", "ModelLabels", "Outcome", "OTHER", "attempt_result", "outcome",
           "stream_error_kind"]

# No *_created series beside every counter and histogram: half the text, nothing Prometheus needs.
_disable_created_metrics()  # type: ignore[no-untyped-call]
OTHER = "other"  # a model name the labels do not keep
NONE = "-"  # no such thing: no endpoint (a rejected request), no model, no client
_REFUSED_CACHE = 10_000  # model names remembered as "other" (past it, matched again each time)

# What a request's labels are made of (requests and tokens): all from the config or the registry.
_LABELS = ("client_format", "upstream_format", "endpoint", "model", "upstream_model", "client")
_TIMING = ("client_format", "upstream_format", "endpoint")
# Seconds. First byte: a cached short answer is tens of ms, a long prompt on a busy upstream many seconds.
_FIRST_BYTE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended, for its labels: ``label`` (ok, local, rejected, unreachable, an HTTP error's
    kind, stream_error, client_disconnected), the stream error's kind if one ended the stream, and what
    it says of the endpoint (health.py): it answered (True), it failed (False), nothing (None)."""

    label: str
    stream_error: str | None = None
    endpoint_ok: bool | None = True


# The bridge's own words for a stream that ended in error (errors raised in sse.py, jsonarray.py,
# sequence.py, adapter.py, the formats' parsers, relay.py's stall event), by kind; anything else is
# the upstream's own error event.
_STREAM_KINDS = (
    ("timeout", re.compile(r"the upstream stream stalled")),
    ("limit", re.compile(r"upstream SSE event exceeds|the answer is larger than this bridge keeps|the upstream's "
                         r"compressed stream expands past|upstream answer has more than|an object in the "
                         r"upstream's JSON-array stream is over")),
    ("incomplete", re.compile(r"upstream \w+ stream ended (before|without)|upstream response has status")),
    ("invalid", re.compile(r"upstream sent an SSE event that is not|upstream SSE line is not valid UTF-8|the "
                           r"upstream's compressed stream is corrupt")),
    ("bridge", re.compile(r"the bridge failed")),
)
# Kinds after which the endpoint counts as failing: what it sent, or failed to send, broke the stream.
_ENDPOINT_KINDS = {"cut", "timeout", "incomplete", "invalid", "upstream_error"}


def stream_error_kind(message: str) -> str:
    """The kind of a streamed answer's error, from its message (the summary's outcome after ``error: ``)."""
    return next((kind for kind, pattern in _STREAM_KINDS if pattern.match(message)), "upstream_error")


def outcome(summary: Mapping[str, Any], status: int | None, streamed: bool, every_attempt_failed: bool) -> Outcome:
    """What a finished request's summary (plan.Summary, after flowlog.log_flow) says about how it ended."""
    mode = str(summary.get("mode", ""))
    if mode.startswith("local"):
        return Outcome("local", endpoint_ok=None)
    if mode == "rejected":
        return Outcome("rejected", endpoint_ok=None)
    if every_attempt_failed:
        return Outcome("unreachable", endpoint_ok=False)
    said = str(summary.get("outcome", ""))
    if said.startswith("failed: "):  # mitmproxy's error hook: a connection lost, on one side or the other
        if "client" in said.lower():  # "Client disconnected.", "stream reset by client (…)"
            return Outcome("client_disconnected", "client_disconnected", True) if streamed else \
                Outcome("client_disconnected", endpoint_ok=None)  # before the answer: nothing learned
        return Outcome("stream_error", "cut", False) if streamed else Outcome("unreachable", endpoint_ok=False)
    if streamed and said.startswith("error: "):
        kind = stream_error_kind(said[7:])
        return Outcome("stream_error", kind, kind not in _ENDPOINT_KINDS)
    if status is None:
        return Outcome("unreachable", endpoint_ok=False)
    if status >= 400:
        return Outcome(kind_for_status(status).value, endpoint_ok=status != 429 and status < 500)
    return Outcome("ok")


# The failover relay's words for an attempt it gave up on (relay.py, ``Job.failures``), by how they begin.
_ATTEMPT_RESULTS = (("HTTP 429", "http_429"), ("HTTP 5", "http_5xx"), ("no connection within", "connect_timeout"),
                    ("no response within", "first_byte_timeout"), ("request not sent within", "send_timeout"),
                    ("no free relay connection", "no_free_connection"), ("ConnectError", "unreachable"),
                    ("ConnectTimeout", "unreachable"))


def attempt_result(reason: str) -> str:
    """Why the failover relay gave up on an attempt (its words in ``Job.failures``, endpoint name removed)."""
    return next((result for start, result in _ATTEMPT_RESULTS if reason.startswith(start)), "error")


class ModelLabels:
    """Model names as label values: those the config routes, up to ``limit`` distinct, the rest ``other``.
    A name kept stays kept (its series exist); a reload only changes which new names may join."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._globs: tuple[str, ...] = ("*",)
        self._names: frozenset[str] = frozenset()
        self._kept: set[str] = set()
        self._refused: set[str] = set()

    def use(self, config: Config, limit: int) -> None:
        globs: list[str] = []
        for ep in config.endpoints:
            globs += ep.models or ("*",)  # an endpoint without models serves every name
            globs += (source for source, _ in ep.rewrite)
        self._globs = tuple(dict.fromkeys(globs))
        self._names = frozenset(target for ep in config.endpoints for _, target in ep.rewrite)
        self.limit = limit
        self._refused.clear()

    def __call__(self, model: Any) -> str:
        if not isinstance(model, str) or not model:
            return NONE
        if model in self._kept:
            return model
        if model in self._refused or len(self._kept) >= self.limit:
            return OTHER
        if model in self._names or any(fnmatchcase(model, g) for g in self._globs):
            self._kept.add(model)
            return model
        if len(self._refused) < _REFUSED_CACHE:
            self._refused.add(model)
        return OTHER


class _Children[M: (Counter, Histogram)]:
    """A metric's labelled children, looked up once per distinct label values: prometheus_client checks
    and locks on every ``labels()`` (1.7 µs here), a dict lookup is 0.1 µs. Bounded as the labels are."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


class _Flow(Protocol):
    """What the streams gauge needs of a flow (mitmproxy's HTTPFlow)."""

    id: str
    live: bool


class Metrics:
    def __init__(self) -> None:
        self.enabled = False  # metrics: in the config; otherwise nothing is counted and there is no route
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("bridge_requests", "Requests finished, by client and upstream format, endpoint, "
                                "model asked and sent, client, HTTP status and outcome",
                                [*_LABELS, "status", "outcome"], registry=r)
        self.tokens = Counter("bridge_tokens", "Tokens the upstreams reported for translated answers, by kind "
                              "(input excludes cached input: cache_read and cache_write)", ["kind", *_LABELS],
                              registry=r)
        self.first_byte = Histogram("bridge_time_to_first_byte_seconds", "From the request's first byte to the "
                                    "answer's headers, for requests that went upstream", _TIMING,
                                    buckets=_FIRST_BYTE_BUCKETS, registry=r)
        self.duration = Histogram("bridge_request_duration_seconds", "From the request's first byte to its end "
                                  "(a stream's last byte), for requests that went upstream", _TIMING,
                                  buckets=_DURATION_BUCKETS, registry=r)
        self.attempts = Counter("bridge_failover_attempts", "Attempts the failover relay made, by endpoint and "
                                "result: answered, or why it moved on", ["endpoint", "result"], registry=r)
        self.stream_errors = Counter("bridge_stream_errors", "Streamed answers that ended in error, by kind (cut, "
                                     "upstream_error, timeout, limit, incomplete, invalid, client_disconnected, "
                                     "bridge)", ["kind", *_TIMING], registry=r)
        self.reloads = Counter("bridge_config_reloads", "Config reloads after a change of the file, by result",
                               ["result"], registry=r)
        self.streams_open = Gauge("bridge_streams_open", "Streamed answers in flight now", registry=r)
        self.streams_open.set_function(self._streams_open)
        self.models = ModelLabels()
        self._requests, self._tokens = _Children(self.requests), _Children(self.tokens)
        self._first_byte, self._duration = _Children(self.first_byte), _Children(self.duration)
        self._open: dict[str, _Flow] = {}  # streamed answers in flight, by flow id
        self._prune_at = 1024

    def use(self, config: Config) -> None:
        """The config in force: whether there is a route, where, and which model names are kept."""
        settings = config.metrics
        self.enabled = settings is not None
        if settings is not None:
            self.models.use(config, settings.max_models)
        routing.serve_metrics(settings.path if settings is not None else None)

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "failure").inc()

    def finished(self, summary: Mapping[str, Any], status: int | None, usage: Usage | None,
                 first_byte: float | None, duration: float, result: Outcome, job: Job | None = None) -> None:
        """One finished request (seconds for the times), as log_flow saw it."""
        s, model = summary, self.models
        labels = (s.get("client_format") or NONE, s.get("upstream_format") or NONE, s.get("endpoint") or NONE,
                  model(s.get("model")), model(s.get("upstream_model")), s.get("client") or NONE)
        self._requests(*labels, str(status) if status is not None else NONE, result.label).inc()
        if usage is not None:
            for kind, count in zip(_TOKEN_KINDS, (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                                                  usage.cache_write_tokens, usage.reasoning_tokens), strict=True):
                if count:
                    self._tokens(kind, *labels).inc(count)
        if job is not None:
            self._attempts(job)
        if s.get("mode") not in ("pass-through", "conversion"):
            return  # answered here: no upstream, nothing to time
        timing = labels[:3]
        if first_byte is not None:
            self._first_byte(*timing).observe(first_byte)
        self._duration(*timing).observe(duration)
        if result.stream_error is not None:
            self.stream_errors.labels(result.stream_error, *timing).inc()

    def _attempts(self, job: Job) -> None:
        for attempt, failure in zip(job.attempts, job.failures, strict=False):
            reason = failure.removeprefix(f"{attempt.name}: ")
            if not reason.startswith("not tried"):
                self.attempts.labels(attempt.name, attempt_result(reason)).inc()
        if len(job.failures) < len(job.attempts):  # the attempt after the last failure answered
            self.attempts.labels(job.attempts[len(job.failures)].name, "answered").inc()

    def stream_opened(self, flow: _Flow) -> None:
        """A streamed answer began (respond.py); :meth:`stream_closed` when it ends, however it ends."""
        if not self.enabled:
            return
        self._open[flow.id] = flow
        if len(self._open) >= self._prune_at:  # a flow whose end no hook saw: gone once it is no longer live
            self._streams_open()
            self._prune_at = max(1024, 2 * len(self._open))

    def stream_closed(self, flow: _Flow) -> None:
        self._open.pop(flow.id, None)

    def _streams_open(self) -> float:
        stale = [key for key, flow in self._open.items() if not flow.live]
        for key in stale:
            del self._open[key]
        return float(len(self._open))

    def answer(self) -> tuple[int, str, bytes]:
        """The answer to ``GET`` of the metrics route: the exposition text."""
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)


METRICS = Metrics()  # the process's: fed by settings.py, flowlog.py and respond.py, read by plan.py
