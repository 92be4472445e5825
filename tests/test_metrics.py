"""Health, readiness and Prometheus metrics (issue 18, items 1 and 2): addon/health.py, addon/metrics.py.

The pure parts first (outcome and stream-error kinds, failover results, bounded model labels, the
streams gauge, the readiness rule, the config key, the routes and the access rule on them), then end
to end through a real mitmdump driven by the official SDKs: known requests (streamed and not, translated
and passed through, a 5xx, a cut stream, an upstream error event, a client that goes away, a closed
port, a 429 that fails over and rests), then the metrics route fetched as ``curl`` would and checked by
value against what was sent, tokens included, and ``/ready`` checked endpoint by endpoint.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from addon import routing
from addon.config import ConfigError, load_config, parse_config
from addon.guard import Guard
from addon.health import DOWN_FOR, Health
from addon.ir import Usage
from addon.metrics import OTHER, Metrics, ModelLabels, Outcome, attempt_result, outcome, stream_error_kind
from addon.relay import Attempt, Job
from addon.routing import Operation, detect
from tests.conftest import ConfiguredBridge, free_ports
from tests.mock_upstream import MockUpstream
from tests.test_guard import KEY, KEY_ENV, flow

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(autouse=True)
def _no_metrics_route_left() -> Any:
    """Metrics.use() sets the route routing.detect answers (process-wide): none before and after each test."""
    routing.serve_metrics(None)
    yield
    routing.serve_metrics(None)


def config(text: str, environ: dict[str, str] | None = None) -> Any:
    return parse_config(yaml.compose(text), "config.yaml", environ or {})


class Scrape:
    """One exposition text, parsed by prometheus_client's own parser: samples by name and exact labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def get(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels (None: no such series)."""
        found = [v for n, ls, v in self.samples if n == name and ls == labels]
        assert len(found) <= 1
        return found[0] if found else None

    def where(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name`` whose labels include these, by its labels."""
        return {tuple(sorted(ls.items())): v for n, ls, v in self.samples
                if n == name and all(ls.get(k) == v2 for k, v2 in labels.items())}


# --- pure parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "kind"), [
    ("the upstream stream stalled: no data for 2 s", "timeout"),
    ("upstream SSE event exceeds 1024 bytes", "limit"),
    ("the answer is larger than this bridge keeps of one answer (max_answer_bytes: 10 bytes)", "limit"),
    ("the upstream's compressed stream expands past 16777216 bytes in one chunk", "limit"),
    ("upstream answer has more than 100000 tool calls open", "limit"),
    ("an object in the upstream's JSON-array stream is over 5 bytes", "limit"),
    ("upstream Chat stream ended before a finish_reason", "incomplete"),
    ("upstream Anthropic stream ended without a stop_reason", "incomplete"),
    ("upstream response has status 'in_progress', not a finished one", "incomplete"),
    ("upstream sent an SSE event that is not JSON: 'x'", "invalid"),
    ("upstream SSE line is not valid UTF-8: …", "invalid"),
    ("the upstream's compressed stream is corrupt: bad", "invalid"),
    ("the bridge failed on this stream (KeyError: 'x')", "bridge"),
    ("Overloaded", "upstream_error"),
    ("the model stalled", "upstream_error"),  # the bridge's words only, at the start
])
def test_stream_error_kind(message: str, kind: str) -> None:
    assert stream_error_kind(message) == kind


@pytest.mark.parametrize(("summary", "status", "streamed", "every_failed", "expected"), [
    ({"mode": "local"}, 200, False, False, Outcome("local", None, None)),
    ({"mode": "local estimate"}, 200, False, False, Outcome("local", None, None)),
    ({"mode": "rejected", "error": "x"}, 401, False, False, Outcome("rejected", None, None)),
    ({"mode": "conversion", "outcome": "HTTP 200"}, 200, False, False, Outcome("ok", None, True)),
    ({"mode": "conversion", "outcome": "streamed"}, 200, True, False, Outcome("ok", None, True)),
    ({"mode": "pass-through"}, 200, False, False, Outcome("ok", None, True)),
    ({"mode": "conversion", "outcome": "error: bad"}, 400, False, False, Outcome("invalid_request", None, True)),
    ({"mode": "conversion", "outcome": "error: slow down"}, 429, False, False, Outcome("rate_limit", None, False)),
    ({"mode": "pass-through"}, 500, False, False, Outcome("api_error", None, False)),
    ({"mode": "pass-through"}, 529, False, False, Outcome("overloaded", None, False)),
    ({"mode": "conversion"}, 502, False, True, Outcome("unreachable", None, False)),
    ({"mode": "pass-through", "outcome": "failed: [Errno 111] Connect call failed"}, 502, False, False,
     Outcome("unreachable", None, False)),
    ({"mode": "conversion", "outcome": "failed: server closed connection"}, 200, True, False,
     Outcome("stream_error", "cut", False)),
    ({"mode": "conversion", "outcome": "failed: Client disconnected."}, 200, True, False,
     Outcome("client_disconnected", "client_disconnected", True)),
    ({"mode": "conversion", "outcome": "failed: stream reset by client (CANCEL)"}, 200, True, False,
     Outcome("client_disconnected", "client_disconnected", True)),
    ({"mode": "conversion", "outcome": "failed: Client disconnected."}, None, False, False,
     Outcome("client_disconnected", None, None)),
    ({"mode": "conversion", "outcome": "error: Overloaded"}, 200, True, False,
     Outcome("stream_error", "upstream_error", False)),
    ({"mode": "conversion", "outcome": "error: the upstream stream stalled: no data for 1 s"}, 200, True, False,
     Outcome("stream_error", "timeout", False)),
    ({"mode": "conversion", "outcome": "error: the answer is larger than this bridge keeps"}, 200, True, False,
     Outcome("stream_error", "limit", True)),
    ({"mode": "pass-through"}, None, False, False, Outcome("unreachable", None, False)),
])
def test_outcome(summary: dict[str, Any], status: int | None, streamed: bool, every_failed: bool,
                 expected: Outcome) -> None:
    assert outcome(summary, status, streamed, every_failed) == expected


@pytest.mark.parametrize(("reason", "result"), [
    ("HTTP 429", "http_429"), ("HTTP 503", "http_5xx"), ("no connection within 5 s", "connect_timeout"),
    ("no response within 600 s", "first_byte_timeout"), ("request not sent within 5 s", "send_timeout"),
    ("no free relay connection within 10 s (max_relay_connections 1000)", "no_free_connection"),
    ("ConnectError: [Errno 111] Connection refused", "unreachable"), ("the ChatGPT login expired", "error"),
])
def test_attempt_result(reason: str, result: str) -> None:
    assert attempt_result(reason) == result


def test_model_labels_keep_what_the_config_routes_up_to_the_cap() -> None:
    labels = ModelLabels()
    labels.use(config("""
endpoints:
  - name: a
    url_openai: http://a.test/v1
    models: ["claude-*", "gpt-4o"]
    model_rewrite: {enabled: true, rules: [{source_pattern: "gpt-*", target_model: qwen3-coder}]}
"""), limit=4)
    assert [labels(m) for m in ("claude-x", "mistral-large", "qwen3-coder", "gpt-5", "claude-y", "claude-z")] == \
        ["claude-x", OTHER, "qwen3-coder", "gpt-5", "claude-y", OTHER]  # the fifth routed name: past the cap
    assert labels("claude-x") == "claude-x"  # a kept name stays kept
    assert [labels(m) for m in (None, "", 42)] == ["-", "-", "-"]
    # an endpoint without models serves every name: each is kept, up to the cap
    everything = ModelLabels()
    everything.use(config("endpoints:\n  - name: a\n    url_openai: http://a.test/v1\n"), limit=2)
    assert [everything(m) for m in ("m1", "m2", "m3", "m1")] == ["m1", "m2", OTHER, "m1"]


def _job(names: list[str], failures: list[str]) -> Job:
    return Job([Attempt(name=n, url="http://x.test", headers=[], body=b"", connect_timeout=1.0,
                        first_byte_timeout=1.0, index=i) for i, n in enumerate(names)], failures=failures)


def test_metrics_count_one_finished_request_by_value() -> None:
    m = Metrics()
    m.use(config("metrics: {max_models: 10}\nendpoints:\n  - name: a\n    url_openai: http://a.test/v1\n"
                 "  - name: b\n    url_anthropic: http://b.test\n"))
    summary = {"client_format": "anthropic", "upstream_format": "chat", "endpoint": "b", "model": "claude-x",
               "upstream_model": "qwen", "mode": "conversion", "outcome": "streamed", "client": "alice",
               "attempts": 2}
    usage = Usage(input_tokens=20, output_tokens=5, cache_read_tokens=10, cache_write_tokens=0, reasoning_tokens=2)
    job = _job(["a", "b"], ["a: HTTP 429"])
    for _ in range(2):
        m.finished(summary, 200, usage, 0.04, 0.7, outcome(summary, 200, True, False), job)
    m.finished({"client_format": "chat", "operation": "probe", "mode": "local"}, 200, None, 0.0, 0.001,
               Outcome("local", None, None))
    s = Scrape(m.answer()[2].decode())
    labels = {"client_format": "anthropic", "upstream_format": "chat", "endpoint": "b", "model": "claude-x",
              "upstream_model": "qwen", "client": "alice"}
    assert s.get("bridge_requests_total", **labels, status="200", outcome="ok") == 2
    assert s.get("bridge_requests_total", client_format="chat", upstream_format="-", endpoint="-", model="-",
                 upstream_model="-", client="-", status="200", outcome="local") == 1
    assert {dict(k)["kind"]: v for k, v in s.where("bridge_tokens_total").items()} == \
        {"input": 40, "output": 10, "cache_read": 20, "reasoning": 4}  # a zero or unknown count adds no series
    timing = {"client_format": "anthropic", "upstream_format": "chat", "endpoint": "b"}
    assert s.get("bridge_time_to_first_byte_seconds_bucket", **timing, le="0.025") == 0
    assert s.get("bridge_time_to_first_byte_seconds_bucket", **timing, le="0.05") == 2
    assert s.get("bridge_time_to_first_byte_seconds_sum", **timing) == pytest.approx(0.08)
    assert s.get("bridge_request_duration_seconds_bucket", **timing, le="0.5") == 0
    assert s.get("bridge_request_duration_seconds_bucket", **timing, le="1.0") == 2
    assert s.get("bridge_request_duration_seconds_count", **timing) == 2
    assert s.where("bridge_time_to_first_byte_seconds_count") == {tuple(sorted(timing.items())): 2}  # not local
    assert s.get("bridge_failover_attempts_total", endpoint="a", result="http_429") == 2
    assert s.get("bridge_failover_attempts_total", endpoint="b", result="answered") == 2
    assert "bridge_requests_created" not in s.text  # no *_created series


def test_failover_attempts_not_tried_are_not_attempts() -> None:
    m = Metrics()
    m.use(config("metrics: {}\nendpoints:\n  - name: a\n    url_openai: http://a.test/v1\n"))
    busy = "no free relay connection within 10 s (max_relay_connections 1)"
    m.finished({"mode": "conversion"}, 502, None, None, 10.0, Outcome("unreachable", None, False),
               _job(["a", "b"], [f"a: {busy}", f"b: not tried ({busy})"]))
    assert Scrape(m.answer()[2].decode()).where("bridge_failover_attempts_total") == \
        {(("endpoint", "a"), ("result", "no_free_connection")): 1}


def test_the_streams_gauge_cannot_leak() -> None:
    m = Metrics()
    m.use(config("metrics: {}\nendpoints:\n  - name: a\n    url_openai: http://a.test/v1\n"))
    flows = [SimpleNamespace(id=f"f{i}", live=True) for i in range(4)]
    for f in flows:
        m.stream_opened(f)
    m.stream_closed(flows[0])
    m.stream_closed(flows[0])  # twice (response and error): once
    flows[1].live = False  # ended without either hook (mitmproxy dropped it): not counted any more
    assert Scrape(m.answer()[2].decode()).get("bridge_streams_open") == 2
    m.stream_closed(flows[2])
    m.stream_closed(flows[3])
    assert Scrape(m.answer()[2].decode()).get("bridge_streams_open") == 0
    off = Metrics()  # without metrics in the config nothing is tracked
    off.stream_opened(SimpleNamespace(id="x", live=True))
    assert Scrape(off.answer()[2].decode()).get("bridge_streams_open") == 0


def test_readiness_rule() -> None:
    cfg = config("endpoints:\n  - name: a\n    url_openai: http://a.test/v1\n"
                 "  - name: b\n    url_anthropic: http://b.test\n")
    h = Health()
    assert h.report(None)[0] is False and h.report(None)[1]["reason"] == "no config loaded"
    h.loaded(cfg, now=1000.0)
    ready, body = h.report(cfg, now=1001.0, mono=50.0)
    assert ready and body["endpoints"] == [{"name": "a", "state": "unknown", "down": False},
                                           {"name": "b", "state": "unknown", "down": False}]
    assert body["config"] == {"path": "config.yaml", "loaded_at": "1970-01-01T00:16:40.000Z", "reload_error": None}
    h.record("a", False, 502, "failed: refused", now=1002.0)
    h.resting = lambda: {"b": 80.0}  # the relay's rest, in monotonic time: 30 s from mono 50
    ready, body = h.report(cfg, now=1003.0, mono=50.0)
    assert not ready and body["status"] == "not ready"
    assert body["reason"] == "every endpoint is down: a (failing), b (resting)"
    assert body["endpoints"][0] == {"name": "a", "state": "failing", "down": True, "last_status": 502,
                                    "last_at": "1970-01-01T00:16:42.000Z", "last_error": "failed: refused"}
    assert body["endpoints"][1] == {"name": "b", "state": "resting", "down": True,
                                    "resting_until": "1970-01-01T00:17:13.000Z"}
    assert h.answer(cfg)[0] in (200, 503)
    # the rest is over, and a failure older than DOWN_FOR no longer counts: ready again, to find out
    ready, body = h.report(cfg, now=1002.0 + DOWN_FOR, mono=80.0)
    assert ready and [(e["state"], e["down"]) for e in body["endpoints"]] == [("failing", False), ("unknown", False)]
    h.record("b", True, 200, now=1004.0)
    assert h.report(cfg, now=1005.0, mono=60.0)[1]["endpoints"][1]["state"] == "resting"  # the relay still rests it
    h.resting = dict
    assert h.report(cfg, now=1005.0, mono=60.0)[1]["endpoints"][1] == {
        "name": "b", "state": "ok", "down": False, "last_status": 200, "last_at": "1970-01-01T00:16:44.000Z",
        "last_error": None}
    h.reload_failed("config.yaml:3: endpoints[0].url_openai: bad", now=1006.0)
    assert h.report(cfg)[1]["config"]["reload_error"] == {"message": "config.yaml:3: endpoints[0].url_openai: bad",
                                                         "at": "1970-01-01T00:16:46.000Z"}
    assert h.report(cfg)[0]  # the previous config stays in force: still ready
    h.loaded(config("endpoints:\n  - name: c\n    url_openai: http://c.test/v1\n"), now=1007.0)
    assert h.reload_error is None and "a" not in h._seen  # gone from the config: forgotten


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


ONE = "endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1/v1\n"


def test_metrics_key(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, ONE), environ={}).metrics is None  # off by default
    on = load_config(_write(tmp_path, "metrics: {}\n" + ONE), environ={}).metrics
    assert on is not None and (on.path, on.max_models) == ("/metrics", 100)
    own = load_config(_write(tmp_path, "metrics: {path: /internal/prom/, max_models: 7}\n" + ONE), environ={}).metrics
    assert own is not None and (own.path, own.max_models) == ("/internal/prom", 7)


@pytest.mark.parametrize(("text", "message"), [
    ("metrics: /metrics\n", "config.yaml:1: metrics: must be a mapping of keys to values"),
    ("metrics: {port: 9464}\n", "config.yaml:1: metrics.port: unknown key (allowed: max_models, path)"),
    ("metrics:\n  path: metrics\n", "config.yaml:2: metrics.path: must be a path such as /metrics, got 'metrics'"),
    ("metrics: {path: /}\n", "config.yaml:1: metrics.path: must be a path such as /metrics, got '/'"),
    ("metrics: {path: '/m?x=1'}\n", "metrics.path: must be a path such as /metrics, got '/m?x=1'"),
    ("metrics: {path: 9}\n", "config.yaml:1: metrics.path: must be a non-empty string"),
    ("metrics: {path: /readyz}\n", "config.yaml:1: metrics.path: /readyz is already the bridge's health or "
                                   "readiness route"),
    ("metrics: {path: /health}\n", "metrics.path: /health is already the bridge's health or readiness route"),
    ("metrics: {path: /v1/metrics}\n", "config.yaml:1: metrics.path: /v1/metrics is under a client API's paths"),
    ("metrics: {path: /v1beta/models}\n", "metrics.path: /v1beta/models is under a client API's paths"),
    ("metrics:\n  max_models: 0\n", "config.yaml:2: metrics.max_models: must be a positive integer"),
    ("metrics: {max_models: many}\n", "config.yaml:1: metrics.max_models: must be a positive integer"),
])
def test_metrics_key_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text + ONE), environ={})
    assert str(e.value).startswith(str(tmp_path / "config.yaml"))
    assert message in str(e.value)


def test_routes() -> None:
    m = Metrics()
    assert detect("GET", "/ready", {}) == Operation("chat", "ready")
    assert detect("HEAD", "/readyz/", {"anthropic-version": "x"}) == Operation("anthropic", "ready")
    assert detect("POST", "/ready", {}) is None  # not the bridge's: the reverse target's
    assert detect("GET", "/metrics", {}) is None  # no metrics in the config: not the bridge's either
    m.use(config("metrics: {path: /prom}\n" + ONE))
    assert detect("GET", "/prom", {}) == Operation("chat", "metrics")
    assert detect("GET", "/metrics", {}) is None
    assert detect("GET", "/health", {}) == Operation("chat", "probe")
    m.use(config(ONE))  # a reload without metrics: the route is gone
    assert detect("GET", "/prom", {}) is None


@pytest.mark.parametrize("path", ["/ready", "/readyz", "/metrics", "/health"])
def test_the_routes_obey_the_access_rule(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Nothing is exempt: a remote peer without keys configured gets 403; with keys, no key is a 401."""
    open_cfg = config("metrics: {}\n" + ONE)
    refused = flow(path, method="GET")
    Guard(lambda: open_cfg, lambda f: True).requestheaders(refused)
    assert refused.response is not None and refused.response.status_code == 403
    monkeypatch.setenv(KEY_ENV, KEY)
    keyed = config(f"metrics: {{}}\nclient_keys_env: [{KEY_ENV}]\n" + ONE, {KEY_ENV: KEY})
    for peer in (("127.0.0.1", 5000), ("203.0.113.9", 40000)):
        without = flow(path, method="GET", peer=peer)
        Guard(lambda: keyed, lambda f: True).requestheaders(without)
        assert without.response is not None and without.response.status_code == 401
        with_key = flow(path, method="GET", peer=peer, headers={"authorization": f"Bearer {KEY}"})
        Guard(lambda: keyed, lambda f: True).requestheaders(with_key)
        assert with_key.response is None


# --- end to end -----------------------------------------------------------------------------------


class Probe:
    """GETs of the bridge's own routes, counted: each is a request the metrics count too (outcome local)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers, self.local = url, headers or {}, 0

    def get(self, path: str, method: str = "GET") -> httpx.Response:
        r = httpx.request(method, self.url + path, headers=self.headers, timeout=10)
        self.local += 1
        return r

    def scrape(self) -> Scrape:
        r = self.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
        return Scrape(r.text)

    def until(self, check: Any, timeout: float = 10.0) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            s = self.scrape()
            if check(s):
                return s
            assert time.monotonic() < deadline, s.text
            time.sleep(0.05)


def test_metrics_and_readiness_by_value(bridge_config: Any, mock: MockUpstream,
                                        mocks: tuple[MockUpstream, MockUpstream, MockUpstream]) -> None:
    limited, backup, anthro = mocks
    dead = free_ports(1)[0]  # nothing listens there
    cfg = {"metrics": {"path": "/metrics", "max_models": 6}, "endpoints": [
        {"name": "chatty", "url_openai": f"{mock.url}/v1", "models": ["claude-*", "gpt-*"],
         "model_rewrite": {"enabled": True, "rules": [{"source_pattern": "claude-*",
                                                       "target_model": "upstream-chat-model"}]}},
        {"name": "dead", "url_anthropic": f"http://127.0.0.1:{dead}", "models": ["dead-*"]},
        {"name": "limited", "url_anthropic": limited.url, "models": ["lim-*"]},
        {"name": "backup", "url_anthropic": backup.url, "models": ["lim-*"]},
        {"name": "anthro", "url_anthropic": anthro.url, "models": ["opus-*"]},
    ]}
    b: ConfiguredBridge = bridge_config(cfg, fresh_process=True)
    probe = Probe(b.url)
    a = anthropic.Anthropic(base_url=b.url, api_key="unused", max_retries=0)
    o = openai.OpenAI(base_url=f"{b.url}/v1", api_key="unused", max_retries=0)
    started = time.monotonic()

    # Anthropic client → Chat upstream (translated), on endpoint chatty: a 5xx, a cut stream, an error event
    mock.next_reply(status=500, error_message="boom")
    with pytest.raises(anthropic.InternalServerError):
        a.messages.create(model="claude-metrics", max_tokens=64, messages=HELLO)
    mock.next_reply(cut_after=3)
    with pytest.raises(anthropic.APIStatusError), a.messages.stream(model="claude-metrics", max_tokens=64,
                                                                   messages=HELLO) as s:
        list(s)
    mock.next_reply(error_after=2, error_message="upstream overloaded")
    with pytest.raises(anthropic.APIStatusError), a.messages.stream(model="claude-metrics", max_tokens=64,
                                                                   messages=HELLO) as s:
        list(s)
    # a client that goes away mid-stream
    gone = mock.next_reply(hold_after=2)
    with httpx.stream("POST", f"{b.url}/v1/messages", headers={"anthropic-version": "2023-06-01"}, timeout=10,
                      json={"model": "claude-metrics", "max_tokens": 64, "stream": True, "messages": HELLO}) as r:
        assert r.status_code == 200
        next(r.iter_raw())
    probe.until(lambda s: s.get("bridge_stream_errors_total", kind="client_disconnected", client_format="anthropic",
                                upstream_format="chat", endpoint="chatty") == 1)
    gone.release.set()
    # two that go well, one of them streamed and held for 0.7 s while the streams gauge is read
    mock.next_reply(usage={"prompt_tokens": 30, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 10},
                           "completion_tokens_details": {"reasoning_tokens": 2}})
    assert a.messages.create(model="claude-metrics", max_tokens=64, messages=HELLO).usage.output_tokens == 5
    held = mock.next_reply(usage={"prompt_tokens": 40, "completion_tokens": 8}, hold_after=2)
    held_at = time.monotonic()
    texts: list[str] = []

    def read_held() -> None:
        with a.messages.stream(model="claude-metrics", max_tokens=64, messages=HELLO) as held_stream:
            texts.append(held_stream.get_final_text())
    reader = threading.Thread(target=read_held)
    reader.start()
    assert probe.until(lambda s: s.get("bridge_streams_open") == 1).get("bridge_streams_open") == 1
    time.sleep(max(0.0, 0.7 - (time.monotonic() - held_at)))
    held.release.set()
    reader.join(10)
    assert texts == ["Hello from the mock."]
    # Chat client → Chat upstream (passed through: the bridge reads no usage), streamed and not
    o.chat.completions.create(model="gpt-pass", messages=HELLO)
    assert "".join(c.choices[0].delta.content or "" for c in o.chat.completions.create(
        model="gpt-pass", messages=HELLO, stream=True) if c.choices) == "Hello from the mock."
    # Chat client → Anthropic upstream (translated): cache writes too
    anthro.next_reply(usage={"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 4,
                             "cache_creation_input_tokens": 6})
    assert o.chat.completions.create(model="opus-x", messages=HELLO).usage.prompt_tokens == 17
    # a closed port; a 429 that fails over (and rests limited for 120 s); a model no endpoint serves
    with pytest.raises(anthropic.InternalServerError):
        a.messages.create(model="dead-model", max_tokens=64, messages=HELLO)
    limited.next_reply(status=429, headers={"retry-after": "120"})
    assert a.messages.create(model="lim-model", max_tokens=64, messages=HELLO).content[0].text == \
        "Hello from the mock."
    assert len(limited.requests) == len(backup.requests) == 1
    with pytest.raises(anthropic.NotFoundError):
        a.messages.create(model="unrouted-xyz", max_tokens=64, messages=HELLO)
    # a routed model past max_models (6 names kept by now): counted as "other"
    mock.next_reply(usage={"prompt_tokens": 3, "completion_tokens": 2})
    a.messages.create(model="claude-second", max_tokens=64, messages=HELLO)
    elapsed = time.monotonic() - started

    local = probe.local  # GETs of /metrics so far: each counted before this one
    s = probe.scrape()
    print(s.text)  # the exposition, for the README sample (pytest -s)

    # requests, by every label
    def requests(cf: str, uf: str, ep: str, model: str, up: str, status: str, result: str) -> float | None:
        return s.get("bridge_requests_total", client_format=cf, upstream_format=uf, endpoint=ep, model=model,
                     upstream_model=up, client="-", status=status, outcome=result)
    got = {tuple(v for _, v in sorted(dict(k).items())): v for k, v in s.where("bridge_requests_total").items()}
    translated = ("anthropic", "chat", "chatty", "claude-metrics", "upstream-chat-model")
    assert requests(*translated, "500", "api_error") == 1
    assert requests(*translated, "200", "stream_error") == 2
    assert requests(*translated, "200", "client_disconnected") == 1
    assert requests(*translated, "200", "ok") == 2
    assert requests("anthropic", "chat", "chatty", OTHER, "upstream-chat-model", "200", "ok") == 1
    assert requests("chat", "chat", "chatty", "gpt-pass", "gpt-pass", "200", "ok") == 2
    assert requests("chat", "anthropic", "anthro", "opus-x", "opus-x", "200", "ok") == 1
    assert requests("anthropic", "anthropic", "dead", "dead-model", "dead-model", "502", "unreachable") == 1
    assert requests("anthropic", "anthropic", "backup", "lim-model", "lim-model", "200", "ok") == 1
    assert requests("anthropic", "-", "-", "-", "-", "404", "rejected") == 1
    assert requests("chat", "-", "-", "-", "-", "200", "local") == local
    assert len(got) == 11 and sum(got.values()) == 13 + local, got

    # tokens, by kind: what the upstreams reported, in the IR's terms (input excludes cached input)
    def tokens(cf: str, uf: str, ep: str, model: str, up: str) -> dict[str, float]:
        return {dict(k)["kind"]: v for k, v in s.where(
            "bridge_tokens_total", client_format=cf, upstream_format=uf, endpoint=ep, model=model,
            upstream_model=up, client="-").items()}
    assert tokens(*translated) == {"input": 20 + 40, "output": 5 + 8, "cache_read": 10, "reasoning": 2}
    assert tokens("anthropic", "chat", "chatty", OTHER, "upstream-chat-model") == {"input": 3, "output": 2}
    assert tokens("chat", "anthropic", "anthro", "opus-x", "opus-x") == \
        {"input": 7, "output": 3, "cache_read": 4, "cache_write": 6}
    assert len(s.where("bridge_tokens_total")) == 10  # none for pass-through, errors or the rest

    # histograms: every request that went upstream, by endpoint; the held stream in its own bucket
    chatty = {"client_format": "anthropic", "upstream_format": "chat", "endpoint": "chatty"}
    assert s.get("bridge_request_duration_seconds_count", **chatty) == 7
    assert s.get("bridge_request_duration_seconds_bucket", **chatty, le="0.5") == 6
    assert s.get("bridge_request_duration_seconds_bucket", **chatty, le="10.0") == 7
    assert 0.7 <= s.get("bridge_request_duration_seconds_sum", **chatty) <= elapsed  # type: ignore[operator]
    assert s.get("bridge_time_to_first_byte_seconds_count", **chatty) == 7
    assert s.get("bridge_time_to_first_byte_seconds_bucket", **chatty, le="0.5") == 7  # the held one's head came
    counts = {dict(k)["endpoint"] + "/" + dict(k)["client_format"]: v
              for k, v in s.where("bridge_request_duration_seconds_count").items()}
    assert counts == {"chatty/anthropic": 7, "chatty/chat": 2, "anthro/chat": 1, "dead/anthropic": 1,
                      "backup/anthropic": 1}  # nothing for the rejected request or the local answers

    # stream errors by kind; failover attempts; the gauge back to zero; no reload yet
    assert {dict(k)["kind"]: v for k, v in s.where("bridge_stream_errors_total", **chatty).items()} == \
        {"cut": 1, "upstream_error": 1, "client_disconnected": 1}
    assert len(s.where("bridge_stream_errors_total")) == 3
    assert s.where("bridge_failover_attempts_total") == {
        (("endpoint", "limited"), ("result", "http_429")): 1, (("endpoint", "backup"), ("result", "answered")): 1}
    assert s.get("bridge_streams_open") == 0
    assert s.where("bridge_config_reloads_total") == {}

    # readiness: each endpoint's last known state
    r = probe.get("/ready")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "ready" and body["reason"] == "3 of 5 endpoints not known to be down"
    assert body["config"]["path"] == str(b.config_path) and body["config"]["reload_error"] is None
    states = {e["name"]: e for e in body["endpoints"]}
    assert list(states) == ["chatty", "dead", "limited", "backup", "anthro"]
    assert {n: (e["state"], e["down"], e.get("last_status")) for n, e in states.items()} == {
        "chatty": ("ok", False, 200), "dead": ("failing", True, 502), "limited": ("resting", True, 429),
        "backup": ("ok", False, 200), "anthro": ("ok", False, 200)}
    assert "Connect call failed" in states["dead"]["last_error"] or "refused" in states["dead"]["last_error"]
    assert states["limited"]["last_error"] == "HTTP 429"
    rest_at = datetime.fromisoformat(states["limited"]["resting_until"]).timestamp()
    assert time.time() + 100 < rest_at <= time.time() + 120  # Retry-After: 120, from the 429 a moment ago
    head = probe.get("/readyz", method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert probe.get("/health").json() == {"status": "ok"}  # liveness, unchanged


def test_ready_follows_the_endpoints_and_the_reloads(bridge_config: Any, mock: MockUpstream) -> None:
    dead = free_ports(1)[0]
    only_dead = {"metrics": {}, "endpoints": [{"name": "dead", "url_openai": f"http://127.0.0.1:{dead}/v1"}]}
    b: ConfiguredBridge = bridge_config(only_dead, fresh_process=True)
    probe = Probe(b.url)
    first = probe.get("/ready").json()
    assert first["status"] == "ready" and first["endpoints"] == [{"name": "dead", "state": "unknown", "down": False}]
    o = openai.OpenAI(base_url=f"{b.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        o.chat.completions.create(model="any", messages=HELLO)
    r = probe.get("/ready")
    assert r.status_code == 503 and r.json()["reason"] == "every endpoint is down: dead (failing)"
    assert probe.get("/readyz", method="HEAD").status_code == 503

    log = len(b.log())
    b.write_config("endpoints: [\n")  # a broken edit: counted, shown, the previous config kept
    b.wait_for_log("config not reloaded", start=log)
    s = probe.scrape()
    assert s.where("bridge_config_reloads_total") == {(("result", "failure"),): 1}
    r = probe.get("/ready")
    assert r.status_code == 503 and r.json()["config"]["reload_error"]["message"].startswith(
        f"{b.config_path}: not valid YAML")

    log = len(b.log())
    b.write_config({"metrics": {}, "endpoints": [{"name": "alive", "url_openai": f"{mock.url}/v1"}]})
    b.wait_for_log("config reloaded", start=log)
    assert probe.scrape().where("bridge_config_reloads_total") == {(("result", "failure"),): 1,
                                                                  (("result", "success"),): 1}
    body = probe.get("/ready").json()
    assert (body["status"], body["config"]["reload_error"]) == ("ready", None)
    assert body["endpoints"] == [{"name": "alive", "state": "unknown", "down": False}]
    assert body["config"]["loaded_at"] > first["config"]["loaded_at"]


def test_routes_need_a_client_key_when_keys_are_set(bridge_config: Any, mock: MockUpstream) -> None:
    env = {"METRICS_TEST_CLIENT_KEY": "metrics-test-client-key-0123456789"}
    cfg = {"metrics": {"path": "/metrics"}, "client_keys_env": ["METRICS_TEST_CLIENT_KEY"],
           "endpoints": [{"name": "m", "url_openai": f"{mock.url}/v1"}]}
    b: ConfiguredBridge = bridge_config(cfg, env=env, fresh_process=True)
    for path in ("/ready", "/readyz", "/metrics", "/health", "/healthz"):
        r = httpx.get(b.url + path, timeout=10)
        assert r.status_code == 401, (path, r.text)
    keyed = Probe(b.url, {"authorization": f"Bearer {env['METRICS_TEST_CLIENT_KEY']}"})
    assert keyed.get("/ready").status_code == 200
    s = keyed.scrape()
    assert s.get("bridge_requests_total", client_format="chat", upstream_format="-", endpoint="-", model="-",
                 upstream_model="-", client="METRICS_TEST_CLIENT_KEY", status="200", outcome="local") == 1
    assert s.get("bridge_requests_total", client_format="chat", upstream_format="-", endpoint="-", model="-",
                 upstream_model="-", client="-", status="401", outcome="rejected") == 5
