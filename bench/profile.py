"""Where a stream's CPU goes: ``.venv/bin/python -m bench.profile [--pairs A→C,R→C] [--requests N] [--pyspy]``.

Starts the benchmark's mock upstream, a plain ``mitmdump`` and the bridge (``bench/run.py``'s helpers and
flags), both with ``bench/probe.py`` loaded, then sends ``--requests`` requests per configuration (w1's
2,000-event stream by default; ``--delay-us`` paces the events so that each arrives in a read of its own, as
at a model's pace; ``--large`` sends w4's ~500 KB request), the configurations interleaved, and prints per
configuration:

* proxy CPU per request (median, ``/proc/PID/task/*/schedstat``) and its difference to the plain
  mitmdump that reads the same upstream format, in µs per event;
* what ``bench/probe.py`` saw: socket reads and body pieces per answer (how many times mitmproxy's
  layers, and the stream callable, ran per read), the CPU time of the bridge's stream callable, of its
  flow hooks (per request, and hook by hook below the table) and of each socket write;
* with ``--pyspy``: py-spy samples of each configuration alone (``py-spy record``, 2,000 Hz, only while
  its requests run), each sample put under the part of the code it was in (the innermost frame that
  belongs to a part: the bridge's modules, mitmproxy's layers, h11, asyncio), scaled to µs per event with
  the configuration's CPU per request. The probe's timers are off then (their clock calls would be the
  hot spot), so its CPU-time columns read 0: run once with and once without ``--pyspy``.

``--plain-script`` / ``--bridge-script`` load one more script into either mitmdump (e.g.
``bench/mitmproxy_patch.py``: plain mitmdump with docs/mitmproxy-patch-coalesce.diff). ``--keep DIR`` keeps
py-spy's collapsed stacks. Needs py-spy (``.venv/bin/pip install py-spy``). Measurement only: nothing here
changes what the bridge does.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.client import fetch  # noqa: E402
from bench.run import (  # noqa: E402
    HEADERS,
    PATHS,
    Bodies,
    Procs,
    Workload,
    cpu_ns,
    free_port,
    mitmdump_args,
    start_mock,
    wait_port,
)

LONG = {"A": "anthropic", "C": "chat", "R": "responses"}
PROBE = ROOT / "bench" / "probe.py"

# (substring of a frame as py-spy writes it, "function (path/file.py:line)", part), tried innermost frame
# first; the first frame that matches any rule names the part. Order matters only within one frame.
PARTS: tuple[tuple[str, str], ...] = (
    ("addon/sse.py", "bridge: SSE decoder"),
    ("addon/formats/common.py", "bridge: JSON (formats/common)"),
    ("answer.py", "bridge: format parser/emitter"),
    ("addon/sequence.py", "bridge: block order"),
    ("addon/translate.py", "bridge: translate glue"),
    ("addon/redact.py", "bridge: scrub"),
    ("addon/logconfig.py", "bridge: body recorder"),
    ("addon/decompress.py", "bridge: decode"),
    ("addon/adapter.py", "bridge: adapter glue"),
    ("addon/ir.py", "bridge: IR"),
    ("bench/probe.py", "probe (measurement)"),
    ("(addon/", "bridge: other hooks"),
    ("(h11/", "mitmproxy: h11 (chunked body reader)"),
    ("mitmproxy/proxy/layers/http/_http1.py", "mitmproxy: HTTP/1 layer"),
    ("mitmproxy/proxy/layers/http/", "mitmproxy: HTTP layer (stream, hooks)"),
    ("mitmproxy/proxy/server.py", "mitmproxy: connection I/O"),
    ("mitmproxy/proxy/", "mitmproxy: layer machinery"),
    ("mitmproxy/", "mitmproxy: other"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
)


def part_of(stack: str) -> str:
    """The part a collapsed stack (``frame;frame;…``, outermost first) was sampled in."""
    for frame in reversed(stack.split(";")):
        for needle, part in PARTS:
            if needle in frame:
                return part
    return "other"


def read_collapsed(path: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[stack] += int(n)
    return counts


def mitmdump(procs: Procs, upstream: int, bridge: bool, env: dict[str, str],
             scripts: tuple[str, ...] = ()) -> tuple[int, int]:
    port = free_port()
    confdir = procs.workdir / f"confdir-{'bridge' if bridge else 'plain'}"
    confdir.mkdir()
    args = mitmdump_args(port, upstream, confdir)
    if bridge:
        config = {"endpoints": [
            {"name": "chat", "url_openai": f"http://127.0.0.1:{upstream}/v1", "models": ["chat-*"]},
            {"name": "anthropic", "url_anthropic": f"http://127.0.0.1:{upstream}", "models": ["anth-*"]}]}
        cfg = procs.workdir / "bridge.yaml"
        cfg.write_text(json.dumps(config))
        args += ["-s", str(ROOT / "addon" / "bridge.py"), "--set", f"bridge_config={cfg}"]
    else:
        args += ["--set", "stream_large_bodies=1"]
    for script in scripts:
        args += ["-s", str(Path(script).resolve())]
    args += ["-s", str(PROBE)]  # after the bridge: it times the bridge's stream callable
    proc, log = procs.start("bridge" if bridge else "plain", args, env)
    wait_port(port, proc, log)
    return port, proc.pid


def pyspy_binary() -> str:
    for candidate in (Path(sys.executable).parent / "py-spy", ROOT / ".tmp" / "pyspy" / "bin" / "py-spy"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    return found


async def run(args: argparse.Namespace, work: Path) -> int:
    procs = Procs(work)
    wl = Workload("w4" if args.large else "w1", "", args.events, delay_us=args.delay_us, large=args.large)
    bodies = Bodies()
    try:
        mock = start_mock(procs)
        timers = "0" if args.pyspy else "1"  # under py-spy the probe's clock calls would be the hot spot
        plain_env = {"BRIDGE_PROBE": str(work / "probe-plain.jsonl"), "BRIDGE_PROBE_TIMERS": timers}
        bridge_env = {"BRIDGE_PROBE": str(work / "probe-bridge.jsonl"), "BRIDGE_PROBE_TIMERS": timers}
        plain_port, plain_pid = mitmdump(procs, mock, False, plain_env, tuple(args.plain_script))
        bridge_port, bridge_pid = mitmdump(procs, mock, True, bridge_env, tuple(args.bridge_script))
        configs: list[tuple[str, str, str, int, int]] = []  # name, client, upstream, port, pid
        for up in sorted({LONG[p.split("→")[1]] for p in args.pairs}):
            configs.append((f"mitmdump {up[0].upper()}", up, up, plain_port, plain_pid))
        for pair in args.pairs:
            c, u = (LONG[x] for x in pair.split("→"))
            configs.append((f"bridge {pair}", c, u, bridge_port, bridge_pid))

        async def one(client: str, upstream: str, port: int, pid: int) -> tuple[float, str | None]:
            body = bodies.get(client, wl, upstream)
            cpu0 = cpu_ns(pid)
            r = await fetch("127.0.0.1", port, PATHS[client], body, HEADERS[client], fmt=client,
                            expect_events=wl.events)
            return (cpu_ns(pid) - cpu0) / 1e3, r.error

        for _, c, u, port, pid in configs:  # warm-up
            for _ in range(3):
                await one(c, u, port, pid)
        cpu: dict[str, list[float]] = {name: [] for name, *_ in configs}
        probes: dict[str, list[dict[str, int]]] = {name: [] for name, *_ in configs}
        files = {plain_pid: work / "probe-plain.jsonl", bridge_pid: work / "probe-bridge.jsonl"}
        rng = random.Random(1)
        for _ in range(args.requests):  # interleaved, a new order each round: drift hits all alike
            order = configs[:]
            rng.shuffle(order)
            for name, c, u, port, pid in order:
                before = len(files[pid].read_text().splitlines()) if files[pid].exists() else 0
                us, err = await one(c, u, port, pid)
                if err:
                    print(f"{name}: {err}", file=sys.stderr)
                cpu[name].append(us)
                probes[name] += [json.loads(x) for x in files[pid].read_text().splitlines()[before:]]
        stacks: dict[str, collections.Counter[str]] = {}
        spy = pyspy_binary() if args.pyspy else None
        for name, c, u, port, pid in configs if spy else ():  # one configuration at a time under py-spy
            raw = work / f"{name.replace(' ', '_').replace('→', '-')}.txt"
            sampler = subprocess.Popen([str(spy), "record", "-p", str(pid), "-r", str(args.rate), "--nonblocking",
                                        "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            time.sleep(0.8)
            for _ in range(args.requests):
                await one(c, u, port, pid)
            sampler.send_signal(signal.SIGINT)
            sampler.wait(30)
            stacks[name] = read_collapsed(raw)
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(raw, Path(args.keep) / raw.name)
    finally:
        procs.stop()

    floors = {name.split()[1]: statistics.median(cpu[name]) for name, *_ in configs if name.startswith("mitmdump")}
    paced = f", {args.delay_us} µs apart" if args.delay_us else ", back to back (w1)"
    print(f"\nproxy CPU per request ({args.events} events{paced}), median of {args.requests}")
    print("(µs/event: CPU ÷ events; Δ: over the plain mitmdump reading the same upstream format; reads and pieces:"
          " socket reads of the\nupstream's answer and the body pieces mitmproxy made of them; callable: CPU time in "
          "the bridge's stream callable;\nwrite: CPU time in asyncio socket writes, per write)")
    print(f"{'configuration':16} {'CPU ms':>7} {'µs/event':>9} {'Δ µs/event':>11} {'reads':>6} {'pieces':>7} "
          f"{'upstream KB':>11} {'callable µs/ev':>14} {'hooks µs':>8} {'writes':>6} {'µs/write':>8}")
    for name, _, u, *_ in configs:
        med = statistics.median(cpu[name])
        floor = floors[u[0].upper()]
        p = probes[name] or [dict.fromkeys(("reads", "pieces", "bytes", "callable_ns", "calls", "write_ns", "writes",
                                            "hooks_ns", "hooks"), 0)]

        def m(key: str, p: list[dict[str, int]] = p) -> float:
            return statistics.median(x[key] for x in p)

        print(f"{name:16} {med / 1e3:7.1f} {med / args.events:9.2f} {(med - floor) / args.events:+11.2f} "
              f"{m('reads'):6.0f} {m('pieces'):7.0f} {m('bytes') / 1024:11.0f} "
              f"{m('callable_ns') / 1e3 / args.events:14.2f} {m('hooks_ns') / 1e3:8.0f} {m('writes'):6.0f} "
              f"{m('write_ns') / 1e3 / max(1, m('writes')):8.2f}")
    print("\nthe bridge's flow hooks, CPU µs per request (median; a response hook counts toward the next request)")
    for name, *_ in configs:
        hooks = sorted({k for x in probes[name] for k in x if "." in k})
        if hooks:
            print(f"  {name:16} " + "  ".join(f"{k} {statistics.median(x.get(k, 0) for x in probes[name]) / 1e3:.0f}"
                                              for k in hooks))
    for name, *_ in configs:
        counts = stacks.get(name)
        if not counts:
            continue
        total = sum(counts.values())
        per_event = statistics.median(cpu[name]) / args.events
        parts: collections.Counter[str] = collections.Counter()
        for stack, n in counts.items():
            parts[part_of(stack)] += n
        print(f"\n{name}: {total} samples, {per_event:.2f} µs of CPU per event")
        for part, n in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {part:40} {100 * n / total:5.1f} %  {per_event * n / total:6.2f} µs/event")
        if args.top:
            leaves: collections.Counter[str] = collections.Counter()
            for stack, n in counts.items():
                leaves[stack.split(";")[-1]] += n
            print("  top frames (self):")
            for frame, n in leaves.most_common(args.top):
                print(f"    {100 * n / total:5.1f} %  {frame[:150]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--pairs", default="A→C,R→C,C→A", help="client→upstream pairs, e.g. A→C,R→C (A-C works too)")
    ap.add_argument("--requests", type=int, default=40, help="w1 requests per configuration (default 40)")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--delay-us", type=int, default=0,
                    help="the mock sleeps this long after each event (≥ 1 ms in effect: asyncio's timer), so that "
                         "each event arrives in a read of its own, as at a model's pace; try --events 300")
    ap.add_argument("--large", action="store_true", help="send w4's ~500 KB Claude Code-shaped request (try "
                                                         "--events 5: the request rewrite, hook by hook)")
    ap.add_argument("--pyspy", action="store_true", help="sample each configuration with py-spy")
    ap.add_argument("--rate", type=int, default=2000, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=0, help="also list the N frames most often innermost")
    ap.add_argument("--keep", metavar="DIR", help="keep py-spy's collapsed stacks here")
    ap.add_argument("--plain-script", action="append", default=[], metavar="FILE",
                    help="also load this script into the plain mitmdump (an experiment: a patch, a busy callable)")
    ap.add_argument("--bridge-script", action="append", default=[], metavar="FILE",
                    help="also load this script into the bridge's mitmdump, after the bridge")
    args = ap.parse_args(argv)
    args.pairs = [p.replace("-", "→") for p in args.pairs.split(",")]
    with tempfile.TemporaryDirectory(prefix="bridge-profile-") as d:
        return asyncio.run(run(args, Path(d)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    sys.exit(main())
