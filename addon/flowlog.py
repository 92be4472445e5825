"""One log line per request, and the same summary on the flow (mitmweb's list, recorded flows).

Only names and numbers are logged, never a key; whatever came from a peer (a model name, an
upstream's message) goes through :func:`~addon.logconfig.clean`, so it cannot forge a line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mitmproxy import http

from .health import HEALTH
from .ir import Usage
from .logconfig import clean
from .metrics import METRICS, outcome
from .plan import Summary
from .relay import Job

__all__ = ["log_flow", "model_label"]

logger = logging.getLogger("bridge")


def model_label(summary: Summary) -> str:
    model, upstream = summary.get("model", "-"), summary.get("upstream_model")
    return clean(f"{model} → {upstream}" if upstream and upstream != model else model, 200)


def log_flow(flow: http.HTTPFlow, summary: Summary, status: int | None, usage: Usage | None,
             started: float, redact: Any = str, job: Job | None = None) -> None:
    """Formats, endpoint, models, status, tokens, time to first byte, duration; ``redact`` blanks
    secrets in the upstream's words (an outcome, an error). ``job``: the failover relay's attempts, when
    it made them. The same request goes to the metrics and its endpoint's state (:func:`observe`)."""
    s = summary
    for key in ("outcome", "error"):  # upstream words may echo a key
        if isinstance(s.get(key), str):
            s[key] = redact(s[key])
    tokens = f"tokens {usage.total_input}/{usage.output_tokens}" if usage and usage.output_tokens is not None \
        else "tokens ?"
    resp = flow.response
    first_byte = (round((resp.timestamp_start - flow.request.timestamp_start) * 1000)
                  if resp and resp.timestamp_start and flow.request.timestamp_start else None)
    ttfb = f"{first_byte} ms" if first_byte is not None else "-"
    outcome = s.get("outcome", "")
    notes = [outcome] if outcome.startswith(("error", "failed")) else []
    if s.get("mode") == "rejected":
        notes.append(f"rejected: {s.get('error')}")  # what was wrong, in the words the client got
    if s.get("transport") == "websocket":
        notes.append(f"a websocket turn of {s.get('connection', '?')}")
    if s.get("attempts", 1) > 1:
        notes.append(f"after {s['attempts']} attempts")
    notes += [f"dropped/approximated: {w}" for w in s.get("warnings", ())]
    mode = {"conversion": "format conversion"}.get(s.get("mode", "-"), s.get("mode", "-"))
    # From the request's first byte, as the time to first byte is: so the one never exceeds the other.
    since = flow.request.timestamp_start
    duration = (time.time() - since) * 1000 if since else (time.monotonic() - started) * 1000
    who = f" | client {s['client']}" if s.get("client") else ""  # a configured name, never the key
    logger.info("%s %s → %s | %s | endpoint %s%s | model %s | status %s | %s | first byte %s | %.0f ms%s | req %s",
                mode, s.get("client_format"), s.get("upstream_format", "-"), s.get("operation"),
                s.get("endpoint", "-"), who, model_label(s), status if status is not None else "-", tokens, ttfb,
                duration, "".join(f" | {clean(n, 500)}" for n in notes), flow.id[:8])
    # The same summary on the flow, for mitmweb's list and for recorded flows.
    s.update({"status": status, "duration_ms": round(duration), "first_byte_ms": first_byte})
    if usage is not None:
        s["usage"] = {"input": usage.total_input, "output": usage.output_tokens,
                      "cache_read": usage.cache_read_tokens, "reasoning": usage.reasoning_tokens}
    failed = status is None or status >= 400 or outcome.startswith(("error", "failed"))
    shown = status if status is not None else "failed"
    if str(s.get("mode", "")).startswith("local"):  # answered here: no upstream, no model, no tokens
        flow.comment = f"{s.get('client_format')} · {s.get('operation')} · {s.get('mode')} · {shown}"
    else:
        flow.comment = (f"{'✗ ' if failed else ''}{s.get('client_format')} → {s.get('upstream_format', '-')} · "
                        f"{s.get('endpoint', '-')} · {model_label(s)} · {shown} · {tokens}")
        if s.get("client"):
            flow.comment += f" · client {s['client']}"
        if s.get("transport") == "websocket":
            flow.comment += f" · websocket turn of {s.get('connection', '?')}"
    if failed:
        flow.marked = ":warning:"
    observe(flow, s, status, usage, duration / 1000, job, redact)


def observe(flow: http.HTTPFlow, s: Summary, status: int | None, usage: Usage | None, duration: float,
            job: Job | None, redact: Any = str) -> None:
    """A finished request in the metrics (metrics.py, when on) and its endpoints' last known state
    (health.py): the attempts the relay gave up on, then the endpoint that answered."""
    resp = flow.response
    streamed = resp is not None and callable(resp.stream)  # a StreamAdapter: the answer went out live
    every_failed = job is not None and len(job.failures) >= len(job.attempts)
    result = outcome(s, status, streamed, every_failed)
    if METRICS.enabled:
        start = flow.request.timestamp_start
        first_byte = resp.timestamp_start - start if resp is not None and resp.timestamp_start and start else None
        METRICS.finished(s, status, usage, first_byte, duration, result, job)
    for attempt, failure in zip(job.attempts if job else (), job.failures if job else (), strict=False):
        reason = failure.removeprefix(f"{attempt.name}: ")
        if not reason.startswith("not tried"):
            status_said = reason[5:8] if reason.startswith("HTTP ") else ""  # "HTTP 429", "HTTP 503"
            HEALTH.record(attempt.name, False, int(status_said) if status_said.isdigit() else None, redact(reason))
    endpoint = s.get("endpoint")
    if endpoint and result.endpoint_ok is not None and not every_failed:  # (every failure is recorded above)
        HEALTH.record(endpoint, result.endpoint_ok, status,
                      None if result.endpoint_ok else s.get("outcome") or f"HTTP {status}")
