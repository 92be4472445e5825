"""What the bridge remembers about one flow between its hooks: the plan (and its failover
alternatives), the translation, the redactors, the relay job. Never stored in the flow itself."""

from __future__ import annotations

import time
from typing import Any

from mitmproxy import http

from .plan import Plan, Summary
from .redact import Redactor, redacted_url
from .relay import Job
from .translate import SSE_TYPE, ModelRenamer, StreamTranslator

__all__ = ["FlowState", "pairs"]


def pairs(headers: http.Headers) -> list[tuple[str, str]]:
    """Header (name, value) pairs as sent, repeats included (what the access rule and redaction read)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.fields]


class FlowState:
    __slots__ = ("exchange", "job", "plans", "redact", "renamer", "scrub", "started", "streamed", "summary",
                 "upstream_head")

    def __init__(self, p: Plan, redact: Redactor, scrub: Redactor) -> None:
        self.redact = redact  # every key known and key shapes: never in a log, a flow or an error
        self.scrub = scrub  # the keys this request involves, in every encoding: never in any byte of the answer
        self.summary: Summary = p.summary
        self.exchange = p.exchange
        self.renamer = p.renamer()
        self.streamed: StreamTranslator | ModelRenamer | None = None
        self.started = time.monotonic()
        self.job: Job | None = None  # set when the request goes through the failover relay
        self.plans = [p, *p.fallbacks]
        self.upstream_head: dict[str, Any] | None = None  # the upstream's status and headers, as they came

    def settle(self) -> None:
        """After the relay chose an endpoint: translate with what was planned for that one."""
        if self.job is None or self.job.winner is None:
            return
        if self.job.secrets:  # what the relay's credentials sent (a ChatGPT login, refreshed in flight too)
            self.redact = self.redact.also(self.job.secrets)
            self.scrub = self.scrub.also(self.job.secrets)
        chosen = self.plans[self.job.winner]
        self.exchange = chosen.exchange
        self.renamer = chosen.renamer()
        self.summary.update(chosen.summary)
        if len(self.plans) > 1:
            self.summary["attempts"] = len(self.job.failures) + 1

    def streams(self, resp: http.Response) -> bool:
        """Whether this answer goes to the client live, through a :class:`~addon.adapter.StreamAdapter`
        (else it is read whole, within ``max_answer_bytes``, and answered in ``response``)."""
        self.settle()
        content_type: str = resp.headers.get("content-type", "")
        if resp.status_code >= 400:
            return False
        if self.exchange is not None:
            return bool(self.exchange.client_stream and self.exchange.is_stream(content_type))
        return content_type.startswith(SSE_TYPE) or self.plans[0].framing == "json-array"

    def show_winner(self, flow: http.HTTPFlow) -> None:
        """A relayed flow went to the relay's loopback URL: it shows (and records) what was sent to the
        endpoint that answered instead, or the last one tried."""
        job = self.job
        if job is None:
            return
        p = self.plans[job.winner if job.winner is not None else job.attempts[-1].index]
        if p.url:
            flow.request.url = redacted_url(p.url)
        if p.body is not None:
            flow.request.content = p.body
