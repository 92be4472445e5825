"""The hostile benchmark (issue 12): ``./bridge.sh bench limits [--quick] [--cases PATTERN,…] [--all] [--list]``.

Full sizes of what ``tests/test_limits.py`` checks at CI sizes: a 5 GB stream to each client format, a
1 GB non-streamed answer to each, 1 GiB request bodies (content-length and chunked; on an open bridge,
and on one with ``client_keys_env`` with and without the key), and decompression bombs both ways
(4 GiB answers and streams in gzip, zstd and brotli; 4 GiB requests in gzip and zstd). One table row
per case: the outcome the client saw, whether it is the contract's, the bytes moved (client → bridge,
bridge → client, upstream wire), mitmdump's peak RSS growth during the case (``VmHWM`` after resetting
it through ``/proc/PID/clear_refs``), the duration, and whether the growth stayed under the bound
(300 MiB). Exit status 1 when a bound is missed or an outcome is not the contract's.

mitmdump runs under an address-space cap (``--cap-gib``, default 4, through ``prlimit``): a bridge that
tries to keep GBs fails with MemoryError or dies, reported as the case's outcome, and the next case
gets a new mitmdump. The upstream is ``tests/hostile.py``'s, in a thread of this process.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import ConfiguredBridge  # noqa: E402
from tests.hostile import (  # noqa: E402
    PATHS,
    TERMINAL,
    Answer,
    GiB,
    HostileUpstream,
    Live,
    MiB,
    Outcome,
    PeakRss,
    bound_problems,
    client_headers,
    config_for,
    expect_complete,
    expect_error_answer,
    expect_error_event,
    expect_failed_stream,
    expect_refused,
    post,
    request_body,
    request_bomb,
    stream_error_message,
)

BOUND_MIB = 300
LIMIT = 32 * MiB  # max_request_bytes: both bridges here have the default
KEY_ENV = "HOSTILE_CLIENT_KEY"
KEY = "hostile-client-key-4f9a1c7e2b"
SMALL = Answer("chat", size=1024).model  # what a request the bridge should refuse asks for
SHORT = {"anthropic": "A", "chat": "C", "responses": "R"}


@dataclass(frozen=True)
class Sizes:
    stream: int
    answer: int
    request: int
    bomb: int


FULL = Sizes(stream=5_000_000_000, answer=1_000_000_000, request=GiB, bomb=4 * GiB)
QUICK = Sizes(stream=512 * MiB, answer=400 * MiB, request=400 * MiB, bomb=2 * GiB)

Send = Callable[[int], Outcome]
Check = Callable[[Outcome], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    client: str
    bridge: str  # "open" (default limits) or "keyed" (client_keys_env set)
    expect: str  # the contract's outcome, in words
    make: Callable[[Sizes, HostileUpstream], tuple[Send, Check, Answer | None]]
    default: bool = True  # in the default set (else --all or --cases)


def either(*problems: list[str]) -> list[str]:
    """Met when any of the alternatives is met (each a list of problems, empty when met)."""
    if any(not p for p in problems):
        return []
    return ["neither: " + " / ".join("; ".join(p) for p in problems)]


def _ask(client: str, answer: Answer, key: str | None = None) -> Send:
    return lambda port: post(port, PATHS[client], request_body(client, answer.model, stream=answer.mode == "sse"),
                             client_headers(client, key), timeout=120 + answer.size / 20e6)


def stream_case(client: str, up: str, kind: str = "text", relay: bool = False, default: bool = True,
                name: str | None = None) -> Case:
    tag = name or f"stream-{SHORT[client]}-{SHORT[up]}{'-' + kind if kind != 'text' else ''}{'-relay' if relay else ''}"
    passthrough = client == up

    def make(s: Sizes, up_: HostileUpstream) -> tuple[Send, Check, Answer | None]:
        answer = Answer(up, "sse", kind, s.stream, relay=relay)
        if client != "responses":
            return _ask(client, answer), lambda out: expect_complete(client, out, s.stream), answer
        if passthrough:  # the bridge need keep nothing: complete, or failed at max_answer_bytes
            return _ask(client, answer), lambda out: either(
                expect_complete(client, out, s.stream), expect_failed_stream(out, "max_answer_bytes")), answer
        return _ask(client, answer), lambda out: expect_failed_stream(out, "max_answer_bytes"), answer

    expect = (f"{TERMINAL[client]}" if client != "responses" else
              "response.completed or .failed" if passthrough else "response.failed (max_answer_bytes)")
    return Case(tag, client, "open", expect, make, default)


def answer_case(client: str, up: str, kind: str = "text", encoding: str = "identity", framing: str = "chunked",
                relay: bool = False, default: bool = True) -> Case:
    bomb = encoding != "identity"
    name = (f"{'bomb-answer-' + encoding if bomb else 'answer'}-{SHORT[client]}-{SHORT[up]}"
            f"{'-' + kind if kind != 'text' else ''}-{framing}{'-relay' if relay else ''}")

    def make(s: Sizes, up_: HostileUpstream) -> tuple[Send, Check, Answer | None]:
        answer = Answer(up, "json", kind, s.bomb if bomb else s.answer, encoding, framing, relay=relay)
        up_.prepare(answer)
        return _ask(client, answer), lambda out: expect_error_answer(client, out, 502, "max_answer_bytes"), answer

    return Case(name, client, "open", "HTTP 502 (max_answer_bytes)", make, default)


def stream_bomb_case(client: str, up: str, encoding: str, kind: str = "giant", default: bool = True) -> Case:
    def make(s: Sizes, up_: HostileUpstream) -> tuple[Send, Check, Answer | None]:
        answer = Answer(up, "sse", kind, s.bomb, encoding)
        up_.prepare(answer)
        if kind == "giant":  # one event of GBs: only an error can end it
            return _ask(client, answer), lambda out: expect_error_event(client, out), answer
        # valid events, only compressed: a complete stream or the client's error event (see README of issue 12)
        return _ask(client, answer), lambda out: either(
            expect_complete(client, out, s.bomb), expect_error_event(client, out)), answer

    name = f"bomb-stream-{encoding}-{SHORT[client]}-{SHORT[up]}{'' if kind == 'giant' else '-' + kind}"
    expect = "the client's error event" if kind == "giant" else f"{TERMINAL[client]} or error event"
    return Case(name, client, "open", expect, make, default)


def request_case(client: str, framing: str, bridge: str, key: bool, encoding: str | None = None,
                 default: bool = True) -> Case:
    status = 401 if bridge == "keyed" and not key else 413
    who = "open" if bridge == "open" else "key" if key else "nokey"
    name = f"{'bomb-request-' + encoding if encoding else 'request'}-{SHORT[client]}-{framing}-{who}"

    def make(s: Sizes, up_: HostileUpstream) -> tuple[Send, Check, Answer | None]:
        body = request_bomb(client, SMALL, s.bomb, encoding) if encoding else \
            request_body(client, SMALL, size=s.request)
        headers = client_headers(client, KEY if key else None, encoding)

        def send(port: int) -> Outcome:
            return post(port, PATHS[client], body, headers, chunked=framing == "chunked")

        # a content-length (or a missing key) is refused at the headers: the client cannot have sent the
        # limit's worth (kernel buffers take ~10 MB); chunked, once the limit is crossed, not much later
        sent_below = None if encoding else LIMIT if framing == "length" or status == 401 else 2 * LIMIT
        return send, lambda out: expect_refused(client, out, status, may_reset=encoding is None,
                                                sent_below=sent_below), None

    expect = f"HTTP {status}" + (" (or reset), early" if encoding is None else "")
    return Case(name, client, bridge, expect, make, default)


CASES: list[Case] = [
    stream_case("anthropic", "chat"),
    stream_case("chat", "anthropic"),
    stream_case("responses", "chat"),
    stream_case("anthropic", "responses", default=False),
    stream_case("chat", "responses", "tool", default=False),
    stream_case("anthropic", "chat", "tool", default=False),
    stream_case("responses", "anthropic", "tool", default=False),
    stream_case("anthropic", "anthropic", default=False),
    stream_case("chat", "chat", default=False),
    stream_case("responses", "responses", default=False),
    stream_case("chat", "anthropic", relay=True, default=False),
    answer_case("anthropic", "chat", framing="length"),
    answer_case("chat", "responses"),
    answer_case("responses", "anthropic", "tool"),
    answer_case("chat", "chat", framing="length", default=False),
    answer_case("anthropic", "chat", relay=True, default=False),
    request_case("anthropic", "length", "open", False),
    request_case("chat", "chunked", "open", False),
    request_case("anthropic", "length", "keyed", True),
    request_case("chat", "chunked", "keyed", True),
    request_case("anthropic", "length", "keyed", False),
    request_case("chat", "chunked", "keyed", False),
    answer_case("anthropic", "responses", encoding="gzip", framing="length"),
    answer_case("chat", "anthropic", encoding="zstd"),
    answer_case("responses", "chat", encoding="br", framing="length"),
    answer_case("chat", "anthropic", encoding="gzip", relay=True, default=False),
    stream_bomb_case("anthropic", "chat", "gzip"),
    stream_bomb_case("chat", "responses", "zstd"),
    stream_bomb_case("responses", "anthropic", "br"),
    stream_bomb_case("anthropic", "chat", "zstd", kind="text", default=False),
    request_case("anthropic", "length", "open", False, "gzip"),
    request_case("chat", "length", "open", False, "zstd"),
    request_case("anthropic", "length", "keyed", True, "gzip"),
    request_case("anthropic", "length", "keyed", False, "gzip"),
    request_case("chat", "chunked", "keyed", False, "zstd"),
]


@dataclass
class Row:
    case: str
    expect: str
    outcome: str = ""
    as_contract: bool = False
    sent: int = 0
    received: int = 0
    upstream: int | None = None  # bytes the upstream wrote for this case (None: the request never reached it)
    growth_mib: float = 0.0
    baseline_mib: float = 0.0
    seconds: float = 0.0
    bound_met: bool = False
    problems: list[str] = field(default_factory=list)


def outcome_of(out: Outcome, client: str, exited: int | None) -> str:
    """What the client saw, in a few words."""
    if exited is not None:
        how = f"signal {signal.Signals(-exited).name}" if exited < 0 else f"exit {exited}"
        crash = f"mitmdump died ({how})"
    else:
        crash = ""
    if out.status is None:
        what = "reset while sending" if out.send_error else f"no answer ({out.read_error})"
    elif out.headers.get("content-type", "").startswith("text/event-stream"):
        last = out.last_event
        message = stream_error_message(client, out)
        end = f"error event: {message[:60]}" if message else (last.name if last else "no events")
        what = f"{out.status} stream → {end}{'' if out.complete else ', cut'}"
    else:
        body = out.json
        message = body.get("error", {}).get("message") if isinstance(body, dict) and \
            isinstance(body.get("error"), dict) else None
        what = f"HTTP {out.status}" + (f": {str(message)[:60]}" if message else f", {human(out.received)} body")
        if out.early:
            what += " (early)"
    return f"{crash}; {what}" if crash else what


def human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def run_case(case: Case, sizes: Sizes, upstream: HostileUpstream, live: Live) -> Row:
    row = Row(case.name, case.expect)
    send, check, answer = case.make(sizes, upstream)
    bridge = live.get()
    before = {id(s) for s in upstream.served}  # the deque keeps them alive: ids stay unique
    started = time.monotonic()
    with PeakRss(bridge.proc.pid) as rss:
        out = send(bridge.port)
    row.seconds = time.monotonic() - started
    time.sleep(0.2)  # the upstream notes what it wrote
    exited = bridge.proc.poll()
    row.growth_mib, row.baseline_mib = rss.growth_mib, rss.baseline_mib
    bound = bound_problems(rss, bridge.proc, BOUND_MIB)
    row.bound_met = not bound
    contract = check(out)
    row.as_contract = not contract
    row.problems = bound + contract
    row.outcome = outcome_of(out, case.client, exited)
    row.sent, row.received = out.sent, out.received
    new = [s for s in upstream.served if id(s) not in before]
    if answer is not None:
        row.upstream = sum(s.answer_bytes for s in new if s.model == answer.model)
    else:
        row.upstream = sum(s.request_bytes for s in new if s.model == SMALL) or None
    return row


COLUMNS = ("case", "expected", "outcome", "as contract", "sent", "received", "upstream", "RSS +MiB", "s",
           f"< {BOUND_MIB} MiB")


def cells(r: Row) -> tuple[str, ...]:
    return (r.case, r.expect, r.outcome, "yes" if r.as_contract else "NO", human(r.sent), human(r.received),
            human(r.upstream), f"{r.growth_mib:.1f}", f"{r.seconds:.1f}", "met" if r.bound_met else "MISSED")


def table(rows: list[Row]) -> str:
    data = [COLUMNS, *(cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in data) for i in range(len(COLUMNS))]
    right = {4, 5, 6, 7, 8}
    lines = []
    for n, row in enumerate(data):
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                           strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./bridge.sh bench limits", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes: 512 MiB streams, 400 MiB answers and requests, 2 GiB bombs")
    ap.add_argument("--cases", help="comma-separated names or globs (e.g. 'stream-*,bomb-answer-gzip-*'); "
                                    "any case, also those outside the default set")
    ap.add_argument("--all", action="store_true", help="every case, not only the default set")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--cap-gib", type=float, default=4.0, help="mitmdump's address-space cap (default 4 GiB)")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (mitmdump logs)")
    args = ap.parse_args(argv)
    if args.list:
        for c in CASES:
            print(f"{c.name:40} {c.bridge:6} {'default' if c.default else 'extra  '}  expects {c.expect}")
        return 0
    chosen = [c for c in CASES if c.default or args.all]
    if args.cases:
        pats = args.cases.split(",")
        chosen = [c for c in CASES if any(fnmatch.fnmatchcase(c.name, p) for p in pats)]
        if not chosen:
            print(f"no case matches {args.cases!r}; --list shows them", file=sys.stderr)
            return 2
    sizes = QUICK if args.quick else FULL
    cap = int(args.cap_gib * GiB)
    workdir = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    counter = itertools.count()
    print(f"bridge limits benchmark: {len(chosen)} cases, streams {human(sizes.stream)}, answers "
          f"{human(sizes.answer)}, requests {human(sizes.request)}, bombs {human(sizes.bomb)} decoded; mitmdump "
          f"capped at {args.cap_gib:g} GiB of address space; bound {BOUND_MIB} MiB of RSS growth", flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    with HostileUpstream() as upstream:
        def starter(config: dict[str, object], env: dict[str, str] | None) -> Callable[[], ConfiguredBridge]:
            def start() -> ConfiguredBridge:
                n = next(counter)
                wd = workdir / f"mitmdump-{n}"
                wd.mkdir()
                return ConfiguredBridge(f"limits-{n}", wd, config, ("reverse:http://127.0.0.1:9",), env)
            return start

        bridges = {"open": Live(starter(config_for(upstream), None), cap),
                   "keyed": Live(starter(config_for(upstream, client_keys_env=[KEY_ENV]), {KEY_ENV: KEY}), cap,
                                 key=KEY)}
        try:
            for case in chosen:
                row = run_case(case, sizes, upstream, bridges[case.bridge])
                rows.append(row)
                print(f"{row.case}: {row.outcome} | {human(row.sent)} sent, {human(row.received)} received | "
                      f"RSS +{row.growth_mib:.1f} MiB | {row.seconds:.1f} s"
                      + (f" | {'; '.join(row.problems)}" if row.problems else ""), flush=True)
        finally:
            for live in bridges.values():
                live.stop()
    print()
    print(table(rows))
    missed = [r for r in rows if not r.bound_met]
    wrong = [r for r in rows if not r.as_contract]
    restarts = sum(max(0, b.started - 1) for b in bridges.values())
    print(f"\n{len(rows)} cases in {time.monotonic() - started:.0f} s: {len(rows) - len(missed)} within the "
          f"{BOUND_MIB} MiB bound, {len(rows) - len(wrong)} as the contract says; mitmdump restarted {restarts}× "
          f"(a crash, or memory kept after a case)")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    if args.keep:
        print(f"mitmdump logs: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if missed or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
