"""The side-by-side benchmark: ``./bridge.sh bench [--quick] [--reps N] [--json FILE] [--peers]``.

Starts, in one run, the fast mock upstream (``bench/upstream.py``), a plain ``mitmdump`` reverse
proxy with streaming on and no addon, and ``mitmdump`` with the bridge (one process, routing by model
name: ``chat-*`` to the mock's Chat Completions API, ``anth-*`` to its Anthropic API). Then every
workload runs against every configuration, the configurations shuffled anew in each repetition so
that machine drift hits all alike, and a table per workload gives medians and ratios to the floors:
the client straight to the upstream (``direct``) and plain mitmdump (``mitmdump``) carrying the
same upstream format.

Workloads (README "Benchmark"): w1 one 2,000-event stream, no delay; w2 50 events 5 ms apart, each
stamped with its send time by the mock; w3 20 concurrent w1 streams; w4 a ~500 KB Claude Code-shaped
request with a 5-event answer; w5 a 100 MB stream (peak RSS growth of the proxy, from ``VmHWM`` after
resetting it through ``/proc/PID/clear_refs``). Proxy CPU per request is read from
``/proc/PID/task/*/schedstat`` (ns, every thread).

Several instances (when HAProxy is installed; ``--no-balancer`` leaves them out): two more bridges and two
HAProxy processes running ``deploy/haproxy.cfg`` as shipped (its addresses from the environment), one
with both server slots on the same bridge (``haproxy 1×A→C``: what the balancer's hop costs) and one
over both bridges (``haproxy 2×A→C``). They run w1, w2 and w3 in the Claude Code case (A→C); their
proxy CPU is every process's on the path (bridges and HAProxy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import peers  # noqa: E402
from bench.bodies import in_format, large_body, small_body  # noqa: E402
from bench.client import Result, fetch  # noqa: E402

MITMDUMP = Path(sys.executable).parent / "mitmdump"
PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
PREFIX = {"anthropic": "anth", "chat": "chat"}
HEADERS = {"anthropic": {"anthropic-version": "2023-06-01", "x-api-key": "bench-client"},
           "chat": {"authorization": "Bearer bench-client"}, "responses": {"authorization": "Bearer bench-client"}}
SHORT = {"anthropic": "A", "chat": "C", "responses": "R"}
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
BALANCED = ("w1", "w2", "w3")  # the workloads the balancer configurations run


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


class Procs:
    """Every process the run starts, stopped (SIGINT, then kill) at the end, by pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str],
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env or {})})
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def start_mock(procs: Procs) -> int:
    proc, log = procs.start("upstream", [sys.executable, "-u", "-m", "bench.upstream", "--port", "0"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = log.read_text()
        if text.startswith("PORT "):
            return int(text.split()[1])
        if proc.poll() is not None:
            raise RuntimeError(f"mock upstream exited:\n{text}")
        time.sleep(0.05)
    raise RuntimeError("mock upstream did not start")


def mitmdump_args(port: int, upstream: int, confdir: Path) -> list[str]:
    # The same flags for plain mitmdump and the bridge: lazy connections (the bridge sets it anyway),
    # no per-flow console output.
    return [str(MITMDUMP), "--mode", f"reverse:http://127.0.0.1:{upstream}", "--listen-host", "127.0.0.1",
            "--listen-port", str(port), "--set", f"confdir={confdir}", "--set", "connection_strategy=lazy",
            "--set", "flow_detail=0", "--set", "termlog_verbosity=warn"]


def start_plain(procs: Procs, upstream: int) -> tuple[int, int]:
    port = free_port()
    confdir = procs.workdir / "confdir-plain"
    confdir.mkdir()
    # stream_large_bodies=1: a chunked SSE answer has no expected size, so mitmproxy buffers the first
    # bytes, then finds the buffer over 1 byte and streams from there on (w2 shows it: first-token
    # latency well under the stream's 250 ms).
    proc, log = procs.start("mitmdump-plain",
                            [*mitmdump_args(port, upstream, confdir), "--set", "stream_large_bodies=1"])
    wait_port(port, proc, log)
    return port, proc.pid


def start_bridge(procs: Procs, upstream: int, profile: str | None, name: str = "bridge") -> tuple[int, int]:
    port = free_port()
    confdir = procs.workdir / f"confdir-{name}"
    confdir.mkdir()
    config = {"endpoints": [
        {"name": "chat", "url_openai": f"http://127.0.0.1:{upstream}/v1", "models": ["chat-*"]},
        {"name": "anthropic", "url_anthropic": f"http://127.0.0.1:{upstream}", "models": ["anth-*"]}]}
    cfg = procs.workdir / "bridge.yaml"
    cfg.write_text(json.dumps(config, indent=2))  # JSON is YAML
    args = [*mitmdump_args(port, upstream, confdir), "-s", str(ROOT / "addon" / "bridge.py"),
            "--set", f"bridge_config={cfg}"]
    if profile:  # cProfile of the whole mitmdump process, written when it exits
        args = [sys.executable, "-m", "cProfile", "-o", profile, *args]
    proc, log = procs.start(f"mitmdump-{name}", args)
    wait_port(port, proc, log)
    return port, proc.pid


def haproxy_binary() -> str | None:
    found = shutil.which("haproxy")
    return found or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def _servers_up(stats_socket: Path) -> bool:
    """Whether every server of the backend ``bridges`` passed its health check (the stats socket's
    ``show stat``)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(stats_socket))
            s.sendall(b"show stat\n")
            text = b"".join(iter(lambda: s.recv(65536), b"")).decode()
    except OSError:
        return False
    rows = [r for r in csv.DictReader(io.StringIO(text.removeprefix("# "))) if r["pxname"] == "bridges"
            and r["svname"] not in ("FRONTEND", "BACKEND")]
    return bool(rows) and all(r["check_status"] == "L7OK" for r in rows)


def start_balancer(procs: Procs, name: str, binary: str, servers: tuple[int, int]) -> tuple[int, int]:
    """HAProxy with ``deploy/haproxy.cfg`` as shipped, its two server slots on these bridge ports; once
    both passed their health check."""
    port, stats = free_port(), free_port()
    stats_socket = procs.workdir / f"{name}.sock"
    env = {"BRIDGE_LB_BIND": f"127.0.0.1:{port}", "BRIDGE_LB_STATS": f"127.0.0.1:{stats}",
           "BRIDGE_LB_STATS_SOCKET": str(stats_socket), "BRIDGE1_ADDR": f"127.0.0.1:{servers[0]}",
           "BRIDGE2_ADDR": f"127.0.0.1:{servers[1]}"}
    proc, log = procs.start(name, [binary, "-db", "-f", str(HAPROXY_CFG)], env)
    wait_port(port, proc, log)
    deadline = time.monotonic() + 15
    while not _servers_up(stats_socket):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the bridges did not pass HAProxy's health check:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return port, proc.pid


def start_balanced(procs: Procs, upstream: int, names: list[str]) -> list[Config]:
    """The balancer configurations named (``haproxy 1×A→C``, ``haproxy 2×A→C``): two more
    bridges, and a HAProxy for each configuration."""
    binary = haproxy_binary()
    if binary is None:
        print("balancer: haproxy not installed (apt-get install haproxy): no multi-instance figures", flush=True)
        return []
    bridges = [start_bridge(procs, upstream, None, f"bridge-lb{n}")
               for n in range(1, 2 + any(name.startswith("haproxy 2×") for name in names))]
    configs = []
    for name in names:
        (b1, pid1), (b2, pid2) = bridges[0], bridges[-1]  # 1×: both slots on the first bridge
        two = name.startswith("haproxy 2×")
        port, pid = start_balancer(procs, "haproxy-2" if two else "haproxy-1", binary, (b1, b2 if two else b1))
        configs.append(Config(name, "balancer", port, "anthropic", "chat", pid1, extra_pids=(pid2, pid) if two
                              else (pid,)))
    return configs


def start_peers(procs: Procs, upstream: int) -> list[Config]:
    """The peers that are installed and start; each one that cannot run says why."""
    configs: list[Config] = []
    for name, why in peers.available().items():
        if why:
            print(f"peer {name}: {why}", flush=True)
            continue
        port = free_port()
        try:
            if name == "litellm":
                pid = peers.start_litellm(procs, upstream, port)
                configs += [Config("litellm A→C", "peer", port, "anthropic", "chat", pid),
                            Config("litellm C→A", "peer", port, "chat", "anthropic", pid),
                            Config("litellm R→C", "peer", port, "responses", "chat", pid)]
            else:
                pid = peers.start_ccr(procs, upstream, port)
                configs.append(Config("ccr A→C", "peer", port, "anthropic", "chat", pid, tag="mock,"))
        except RuntimeError as e:
            print(f"peer {name}: did not start: {str(e)[:500]}", flush=True)
    return configs


# --- /proc ------------------------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in ns."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


# --- configurations and workloads ---------------------------------------------------------------------


@dataclass
class Config:
    name: str
    kind: str  # direct | mitmdump | bridge | peer
    port: int
    client: str  # client format
    upstream: str  # upstream format (the mock's API that answers)
    pid: int | None = None
    tag: str = ""  # put before the model name (claude-code-router's "provider,model")
    extra_pids: tuple[int, ...] = ()  # more processes on the path, their CPU counted too (the balancer's)

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.pid, *self.extra_pids) if p]

    @property
    def floor(self) -> str:
        return f"mitmdump {SHORT[self.upstream]}"

    @property
    def direct(self) -> str:
        return f"direct {SHORT[self.upstream]}"


@dataclass
class Workload:
    name: str
    title: str
    events: int
    size: int = 8
    delay_us: int = 0
    stamp: bool = False
    concurrency: int = 1
    large: bool = False  # the ~500 KB request
    keep: bool = True  # keep the answer for the order check (not for 100 MB)
    reps: int = 10
    proxies_only: bool = False
    timeout: float = 120.0  # per request, seconds

    def model(self, upstream: str) -> str:
        return f"{PREFIX[upstream]}-e{self.events}-b{self.size}-d{self.delay_us}-t{int(self.stamp)}"


def workloads(quick: bool, reps: int | None) -> list[Workload]:
    def r(full: int, q: int) -> int:
        return reps or (q if quick else full)

    mb = 25 if quick else 100
    size = 8192
    return [
        Workload("w1", "one 2,000-event stream, no delay (throughput)", 2000, reps=r(15, 5)),
        Workload("w2", "50 events 5 ms apart (latency added to the first token and to each event)", 50,
                 delay_us=5000, stamp=True, reps=r(7, 3)),
        Workload("w3", "20 concurrent 2,000-event streams", 2000, concurrency=20, reps=r(5, 2)),
        Workload("w4", "~500 KB Claude Code-shaped request, 5-event answer (request rewrite)", 5, large=True,
                 reps=r(15, 5)),
        Workload("w5", f"one {mb} MB stream ({size} B per event): peak RSS growth of the proxy",
                 mb * 1024 * 1024 // size, size=size, keep=False, reps=r(3, 1), timeout=60.0),
    ]


@dataclass
class Sample:
    ms: float
    errors: int = 0
    cpu_ms: float | None = None
    ttft_ms: float | None = None
    ev_median: float | None = None
    ev_p99: float | None = None
    ev_max: float | None = None
    rss_growth_mb: float | None = None
    first_error: str | None = None


class Bodies:
    """Request bytes per (client format, workload, upstream), built once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], bytes] = {}
        self._large: dict[str, Any] | None = None

    def get(self, client: str, wl: Workload, upstream: str, tag: str = "") -> bytes:
        model = tag + wl.model(upstream)
        key = (client, model, str(wl.large))
        if key not in self._cache:
            if wl.large:
                if self._large is None:
                    self._large = large_body("placeholder")
                body = in_format(client, {**self._large, "model": model})
            else:
                body = small_body(client, model)
            self._cache[key] = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return self._cache[key]


async def run_one(cfg: Config, wl: Workload, bodies: Bodies) -> Sample:
    body = bodies.get(cfg.client, wl, cfg.upstream, cfg.tag)
    path = PATHS[cfg.client]

    def one() -> Any:
        return fetch("127.0.0.1", cfg.port, path, body, HEADERS[cfg.client], fmt=cfg.client,
                     expect_events=wl.events, stamped=wl.stamp, keep=wl.keep, timeout=wl.timeout)

    rss_before = None
    if wl.name == "w5" and cfg.pid and reset_peak(cfg.pid):  # without the reset, VmHWM says nothing of this stream
        rss_before = status_kb(cfg.pid, "VmRSS")
    cpu0 = sum(cpu_ns(p) for p in cfg.pids)
    t0 = time.monotonic_ns()
    results: list[Result] = list(await asyncio.gather(*(one() for _ in range(wl.concurrency))))
    wall = (time.monotonic_ns() - t0) / 1e6
    s = Sample(ms=wall)
    if cfg.pids:
        s.cpu_ms = (sum(cpu_ns(p) for p in cfg.pids) - cpu0) / 1e6
    if rss_before is not None and cfg.pid:
        s.rss_growth_mb = (status_kb(cfg.pid, "VmHWM") - rss_before) / 1024
    errors = [r.error for r in results if r.error]
    s.errors, s.first_error = len(errors), (errors[0] if errors else None)
    if wl.concurrency == 1 and not errors:
        r = results[0]
        s.ms = r.total_ms
        s.ttft_ms = r.ttft_ms
        if r.event_latency_ms:
            lat = sorted(r.event_latency_ms)
            s.ev_median, s.ev_p99, s.ev_max = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))], lat[-1]
    return s


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


async def run_all(configs: list[Config], wls: list[Workload], seed: int,
                  progress: Callable[[str], None]) -> dict[str, dict[str, list[Sample]]]:
    rng = random.Random(seed)
    bodies = Bodies()
    out: dict[str, dict[str, list[Sample]]] = {}
    for wl in wls:
        # w5: a Responses client's closing events repeat the whole text, 100 MB each; w3 and w5 run the
        # peers in the Claude Code case only (LiteLLM takes minutes over all of them).
        chosen = [c for c in configs if not (wl.proxies_only and c.kind == "direct")
                  and not (wl.name == "w5" and c.client == "responses")
                  and not (wl.name in ("w3", "w5") and c.kind == "peer" and not c.name.endswith("A→C"))
                  and not (c.kind == "balancer" and wl.name not in BALANCED)]
        t0 = time.monotonic()
        for c in chosen:  # warm-up, not counted (imports, first connection, caches)
            await run_one(c, Workload(**{**wl.__dict__, "concurrency": 1, "events": min(wl.events, 200)}), bodies)
        per: dict[str, list[Sample]] = {c.name: [] for c in chosen}
        given_up: set[str] = set()
        for _ in range(wl.reps):
            order = chosen[:]
            rng.shuffle(order)
            for c in order:
                if c.name in given_up:
                    continue
                sample = await run_one(c, wl, bodies)
                per[c.name].append(sample)
                if sample.errors and c.kind == "peer":  # a peer that fails (LiteLLM on w5) is not waited for again
                    given_up.add(c.name)
                    progress(f"{wl.name}: {c.name} failed ({(sample.first_error or '')[:120]}); not run again")
        out[wl.name] = per
        progress(f"{wl.name}: {wl.reps} reps × {len(chosen)} configurations in {time.monotonic() - t0:.1f} s")
    return out


# --- report -----------------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}×"


def delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.2f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summarize(configs: list[Config], wls: list[Workload], data: dict[str, dict[str, list[Sample]]]
              ) -> tuple[str, dict[str, Any]]:
    by_name = {c.name: c for c in configs}
    text: list[str] = []
    summary: dict[str, Any] = {}
    for wl in wls:
        per = data.get(wl.name, {})
        m = {name: {k: med([getattr(s, k) for s in samples]) for k in Sample.__dataclass_fields__
                    if k != "first_error"} for name, samples in per.items()}
        summary[wl.name] = m
        errors = {name: sum(s.errors for s in samples) for name, samples in per.items()}
        first_err = {name: next((s.first_error for s in samples if s.first_error), None)
                     for name, samples in per.items()}
        text.append(f"\n{wl.name}: {wl.title} — median of {wl.reps}")
        rows = []
        for name in per:
            c, v = by_name[name], m[name]
            floor, direct = m.get(c.floor, {}), m.get(c.direct, {})
            if wl.name in ("w1", "w3"):
                events = wl.events * wl.concurrency
                rows.append([name, fmt(v["ms"]), fmt(events / v["ms"] * 1000 if v["ms"] else None, ",.0f"),
                             ratio(v["ms"], direct.get("ms")), ratio(v["ms"], floor.get("ms")),
                             fmt(v["cpu_ms"]), str(errors[name])])
            elif wl.name == "w2":
                rows.append([name, fmt(v["ttft_ms"], ".2f"), delta(v["ttft_ms"], floor.get("ttft_ms")),
                             fmt(v["ev_median"], ".2f"), delta(v["ev_median"], floor.get("ev_median")),
                             fmt(v["ev_p99"], ".2f"), fmt(v["ev_max"], ".2f"),
                             delta(v["ev_max"], floor.get("ev_max")), str(errors[name])])
            elif wl.name == "w4":
                rows.append([name, fmt(v["ms"], ".2f"), delta(v["ms"], floor.get("ms")), fmt(v["cpu_ms"]),
                             str(errors[name])])
            else:
                rows.append([name, fmt(v["ms"] / 1000 if v["ms"] else None, ".2f"),
                             fmt(wl.events * wl.size / 1024 / 1024 / (v["ms"] / 1000) if v["ms"] else None, ".0f"),
                             ratio(v["ms"], floor.get("ms")), fmt(v["rss_growth_mb"]), str(errors[name])])
        if wl.name in ("w1", "w3"):
            headers = ["configuration", "ms", "events/s", "×direct", "×mitmdump", "proxy CPU ms", "errors"]
        elif wl.name == "w2":
            headers = ["configuration", "first token ms", "Δ mitmdump", "event lat. med", "Δ mitmdump", "p99", "max",
                       "Δ max", "errors"]
        elif wl.name == "w4":
            headers = ["configuration", "total ms", "Δ mitmdump ms", "proxy CPU ms", "errors"]
        else:
            headers = ["configuration", "s", "MB/s", "×mitmdump", "RSS growth MB", "errors"]
        text.append(table(headers, rows))
        for name, err in first_err.items():
            if err:
                text.append(f"  {name}: first error: {err[:300]}")
    text.append(targets(configs, summary, data))
    return "\n".join(text), summary


def targets(configs: list[Config], s: dict[str, Any], data: dict[str, dict[str, list[Sample]]]) -> str:
    """One line per target of issue 7: met / not met, with the figure."""
    lines = ["\nTargets (ratios and differences against plain mitmdump carrying the same upstream format)"]

    def get(w: str, name: str, k: str) -> float | None:
        value: float | None = s.get(w, {}).get(name, {}).get(k)
        return value

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else "met" if ok else "NOT met"

    bridge = [c for c in configs if c.kind == "bridge"]
    for c in bridge:
        passthrough = c.client == c.upstream
        limit = 1.05 if passthrough else 1.15
        a, b = get("w1", c.name, "ms"), get("w1", c.floor, "ms")
        ok = None if a is None or b is None else a / b <= limit
        lines.append(f"  w1 {c.name}: {ratio(a, b)} ≤ {limit}× — {verdict(ok)}")
    for c in bridge:
        a, b = get("w2", c.name, "ttft_ms"), get("w2", c.floor, "ttft_ms")
        e, f = get("w2", c.name, "ev_max"), get("w2", c.floor, "ev_max")
        ok1 = None if a is None or b is None else a - b <= 1.0
        ok2 = None if e is None or f is None else e - f <= 1.0
        lines.append(f"  w2 {c.name}: first token {delta(a, b)} ms ≤ +1 ms — {verdict(ok1)}; "
                     f"slowest event {delta(e, f)} ms ≤ +1 ms — {verdict(ok2)}")
    for c in bridge:
        a, b = get("w3", c.name, "ms"), get("w3", c.floor, "ms")
        errs = sum(x.errors for x in data.get("w3", {}).get(c.name, []))
        ok = None if a is None or b is None else (b / a >= 0.9 and errs == 0)
        lines.append(f"  w3 {c.name}: throughput {ratio(b, a)} of mitmdump ≥ 0.9×, {errs} errors/reorders — "
                     f"{verdict(ok)}")
    for c in bridge:
        a, b = get("w4", c.name, "ms"), get("w4", c.floor, "ms")
        ok = None if a is None or b is None else a - b <= 5.0
        lines.append(f"  w4 {c.name}: request rewrite {delta(a, b)} ms ≤ 5 ms — {verdict(ok)}")
    for c in bridge:
        g = get("w5", c.name, "rss_growth_mb")
        if c.name in s.get("w5", {}):
            lines.append(f"  w5 {c.name}: RSS growth {fmt(g)} MB < 20 MB — {verdict(None if g is None else g < 20)}")
    balanced = [c for c in configs if c.kind == "balancer" and any(c.name in s.get(w, {}) for w in BALANCED)]
    if balanced:
        lines.append("\nSeveral instances behind HAProxy (deploy/haproxy.cfg; time ratios, below 1 is faster)")
    for c in balanced:
        one = next((b.name for b in bridge if (b.client, b.upstream) == (c.client, c.upstream)), "")
        said = {"w1": f"w1 {ratio(get('w1', c.name, 'ms'), get('w1', one, 'ms'))} of {one}",
                 "w2": f"w2 first token {delta(get('w2', c.name, 'ttft_ms'), get('w2', one, 'ttft_ms'))} ms",
                 "w3": f"w3 {ratio(get('w3', c.name, 'ms'), get('w3', one, 'ms'))} of {one}, "
                       f"{ratio(get('w3', c.name, 'ms'), get('w3', c.floor, 'ms'))} of {c.floor}"}
        errs = sum(x.errors for w in BALANCED for x in data.get(w, {}).get(c.name, []))
        ran = [cell for w, cell in said.items() if c.name in s.get(w, {}) and one in s.get(w, {})]
        if not ran:
            ran = [f"no single bridge {SHORT[c.client]}→{SHORT[c.upstream]} in this run to compare with"]
        lines.append(f"  {c.name}: {'; '.join(ran)}; {errs} errors")
    metric = {"w1": "ms", "w2": "ttft_ms", "w3": "ms", "w4": "ms", "w5": "ms"}
    for p in (c for c in configs if c.kind == "peer"):
        ours = next((c for c in bridge if (c.client, c.upstream) == (p.client, p.upstream)), None)
        if ours is None:
            continue
        cells = []
        for w, k in metric.items():
            a, b = get(w, ours.name, k), get(w, p.name, k)
            if a is not None and b is not None:
                cells.append(f"{w} {b / a:.1f}×" if a else f"{w} -")
        wins = all(get(w, ours.name, k) < get(w, p.name, k)  # type: ignore[operator]
                   for w, k in metric.items() if get(w, ours.name, k) is not None and get(w, p.name, k) is not None)
        lines.append(f"  vs {p.name}: {ours.name} faster on every workload run — {verdict(wins if cells else None)}"
                     f" (peer time / bridge time: {', '.join(cells)})")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}, load {load[0]:.2f} {load[1]:.2f}")


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
        print(f"work directory (kept): {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="bridge-bench-") as d:
            yield Path(d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Side-by-side benchmark of the bridge (README: Benchmark).")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a 25 MB w5 (about a minute)")
    ap.add_argument("--reps", type=int, help="repetitions of every workload (overrides the defaults)")
    ap.add_argument("--only", help="comma-separated workloads to run, e.g. w1,w2")
    ap.add_argument("--configs", help="comma-separated substrings: only configurations whose name has one "
                                      "(the floors always run)")
    ap.add_argument("--json", help="also write the medians and every sample to this file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", help="run the bridge's mitmdump under cProfile, stats written to this file")
    ap.add_argument("--pyspy", metavar="FILE", help="sample the bridge's mitmdump with py-spy (from PATH or "
                                                    ".tmp/pyspy/bin) while the workloads run; collapsed stacks to FILE")
    ap.add_argument("--no-peers", action="store_true", help="leave out LiteLLM and claude-code-router even when "
                                                            "installed (bench/install_peers.sh)")
    ap.add_argument("--no-balancer", action="store_true", help="leave out the bridges behind HAProxy "
                                                               "(deploy/haproxy.cfg) even when haproxy is installed")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (process logs)")
    args = ap.parse_args(argv)
    wls = workloads(args.quick, args.reps)
    if args.only:
        wanted = set(args.only.split(","))
        wls = [w for w in wls if w.name in wanted]
    started = time.monotonic()
    print(f"bridge benchmark — {machine()}", flush=True)
    with workdir(args.keep) as wd:
        procs = Procs(wd)
        try:
            mock = start_mock(procs)
            plain_port, plain_pid = start_plain(procs, mock)
            bridge_port, bridge_pid = start_bridge(procs, mock, args.profile)
            configs = [
                Config("direct A", "direct", mock, "anthropic", "anthropic"),
                Config("direct C", "direct", mock, "chat", "chat"),
                Config("mitmdump A", "mitmdump", plain_port, "anthropic", "anthropic", plain_pid),
                Config("mitmdump C", "mitmdump", plain_port, "chat", "chat", plain_pid),
                Config("bridge A→A pass", "bridge", bridge_port, "anthropic", "anthropic", bridge_pid),
                Config("bridge C→C pass", "bridge", bridge_port, "chat", "chat", bridge_pid),
                Config("bridge A→C", "bridge", bridge_port, "anthropic", "chat", bridge_pid),
                Config("bridge C→A", "bridge", bridge_port, "chat", "anthropic", bridge_pid),
                Config("bridge R→C", "bridge", bridge_port, "responses", "chat", bridge_pid),
            ]
            keys = args.configs.split(",") if args.configs else None
            balanced = [name for name in ("haproxy 1×A→C", "haproxy 2×A→C")
                        if keys is None or any(k in name for k in keys)]
            if not args.no_balancer and balanced and any(w.name in BALANCED for w in wls):
                configs += start_balanced(procs, mock, balanced)
            if not args.no_peers:
                configs += start_peers(procs, mock)
            if keys:
                configs = [c for c in configs if c.kind in ("direct", "mitmdump") or any(k in c.name for k in keys)]
            print(f"started mock upstream :{mock}, mitmdump :{plain_port}, bridge :{bridge_port} "
                  f"in {time.monotonic() - started:.1f} s", flush=True)
            if args.pyspy:
                local = ROOT / ".tmp" / "pyspy" / "bin" / "py-spy"
                binary = str(local) if local.exists() else "py-spy"
                spy = subprocess.Popen([binary, "record", "-p", str(bridge_pid), "-r", "1000", "--nonblocking",
                                        "-f", "raw", "-o", str(Path(args.pyspy).resolve())], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                procs.procs.insert(0, spy)
                time.sleep(1.0)
            data = asyncio.run(run_all(configs, wls, args.seed, lambda s: print(s, flush=True)))
        finally:
            procs.stop()
    report, summary = summarize(configs, wls, data)
    print(report)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "medians": summary,
            "samples": {w: {n: [s.__dict__ for s in ss] for n, ss in per.items()} for w, per in data.items()}},
            indent=1))
    failed = any(s.errors for per in data.values() for ss in per.values() for s in ss)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
