"""Liveness and readiness, answered by the bridge itself (``routing.py``, ``plan.py``), never forwarded.

Liveness (``/health``, ``/healthz``, ``/api/hello``): the process answers, with its config; always 200.
Readiness (``/ready``, ``/readyz``): the config in force (its file, when it was loaded, the last reload
that failed) and each endpoint's last known state, from what the bridge saw of real requests (no probe
of its own reaches an upstream):

* ``ok``: its last answer came (any status but 429 or 5xx; a stream that ended well, or that the client
  or the bridge's own limits ended);
* ``failing``: its last attempt failed — no connection, no answer in time, a 429 or a 5xx, a stream
  that broke off, stalled, or carried the upstream's error;
* ``resting``: the failover relay tries it last until ``resting_until`` (a 429 or 5xx with
  ``Retry-After``, ``relay.py``);
* ``unknown``: no request has reached it since the bridge started.

The rule: 503 when no config is loaded, or when every endpoint is down at once; else 200. An endpoint
is down while it rests, and for :data:`DOWN_FOR` seconds after a failure: past that its state stays
``failing`` but no longer counts, so that a balancer that took the bridge out lets requests in again to
find out whether the upstream is back (the bridge never probes upstreams itself).

What is recorded comes from :func:`~addon.flowlog.log_flow` (every finished request, and each attempt
the failover relay gave up on): one dictionary write per request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import Config

__all__ = ["DOWN_FOR", "HEALTH", "Health", "Seen", "rfc3339"]

DOWN_FOR = 30.0  # seconds a failure counts toward "every endpoint is down"
_JSON = "application/json"


def rfc3339(t: float) -> str:
    """A wall-clock time as RFC 3339 UTC, to the millisecond: ``2025-01-02T03:04:05.678Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Seen:
    """The last thing one endpoint did: answered (``ok``) or failed, with the status (None: no answer),
    when (wall clock), and what went wrong."""

    ok: bool
    status: int | None
    at: float
    error: str | None = None


class Health:
    def __init__(self) -> None:
        self.path: str | None = None  # the config file in force
        self.loaded_at: float | None = None
        self.reload_error: tuple[str, float] | None = None  # the last reload that failed, until one succeeds
        self._seen: dict[str, Seen] = {}
        # endpoint name → monotonic time until which the failover relay tries it last (relay.py)
        self.resting: Callable[[], Mapping[str, float]] = dict

    def loaded(self, config: Config, now: float | None = None) -> None:
        """A config was loaded (at startup, or a reload that succeeded)."""
        self.path, self.loaded_at, self.reload_error = config.path, time.time() if now is None else now, None
        names = {ep.name for ep in config.endpoints}
        self._seen = {name: seen for name, seen in self._seen.items() if name in names}

    def reload_failed(self, message: str, now: float | None = None) -> None:
        self.reload_error = (message, time.time() if now is None else now)

    def record(self, endpoint: str, ok: bool, status: int | None, error: str | None = None,
               now: float | None = None) -> None:
        self._seen[endpoint] = Seen(ok, status, time.time() if now is None else now, error and error[:300])

    def report(self, config: Config | None, now: float | None = None, mono: float | None = None
               ) -> tuple[bool, dict[str, Any]]:
        """(ready, the body of ``/ready``). ``now``: wall clock, ``mono``: monotonic (for the relay's rests)."""
        now = time.time() if now is None else now
        mono = time.monotonic() if mono is None else mono
        loaded = {"path": self.path, "loaded_at": rfc3339(self.loaded_at) if self.loaded_at else None,
                  "reload_error": {"message": self.reload_error[0], "at": rfc3339(self.reload_error[1])}
                  if self.reload_error else None}
        if config is None:
            return False, {"status": "not ready", "reason": "no config loaded", "config": loaded, "endpoints": []}
        resting = self.resting()
        endpoints: list[dict[str, Any]] = []
        for ep in config.endpoints:
            seen = self._seen.get(ep.name)
            entry: dict[str, Any] = {"name": ep.name, "state": "unknown", "down": False}
            if seen is not None:
                entry.update(state="ok" if seen.ok else "failing", down=not seen.ok and now - seen.at < DOWN_FOR,
                             last_status=seen.status, last_at=rfc3339(seen.at), last_error=seen.error)
            until = resting.get(ep.name, 0.0)
            if until > mono:
                entry.update(state="resting", down=True, resting_until=rfc3339(now + until - mono))
            endpoints.append(entry)
        down = [e for e in endpoints if e["down"]]
        ready = len(down) < len(endpoints)
        reason = "every endpoint is down: " + ", ".join(f"{e['name']} ({e['state']})" for e in down) if not ready \
            else f"{len(endpoints) - len(down)} of {len(endpoints)} endpoints not known to be down"
        return ready, {"status": "ready" if ready else "not ready", "reason": reason, "config": loaded,
                       "endpoints": endpoints}

    def answer(self, config: Config | None) -> tuple[int, str, bytes]:
        """The answer to ``GET /ready``: 200 when ready, else 503; the report as JSON either way."""
        ready, body = self.report(config)
        return (200 if ready else 503), _JSON, json.dumps(body).encode()


HEALTH = Health()  # the process's: fed by settings.py and flowlog.py, read by plan.py
