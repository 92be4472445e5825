"""In-process micro-benchmark of the pure translators: no network, no mitmproxy.

``python -m bench.micro [--events N] [--repeat R] [--profile PAIR]``

For every (client, upstream) pair of formats, an upstream stream of N text deltas and one tool call
(with N/4 argument fragments) is rendered by the upstream format's own ``StreamEmitter``, then fed
to :class:`~addon.translate.StreamTranslator` one event per call, as mitmproxy hands over a chunked
upstream (one HTTP chunk per event). Prints upstream events per second and µs per event (best of
R). Also times ``Exchange.start`` (parse + render) on w4's ~500 KB Claude Code-shaped request for
each client format, toward a Chat and an Anthropic upstream, and ``ModelRenamer`` (a pass-through
stream whose model was rewritten). ``--profile A→C`` prints a cProfile of one pair instead.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import itertools
import json
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addon import translate  # noqa: E402
from addon.formats import FORMATS, Format, Operation  # noqa: E402
from addon.formats.common import Context  # noqa: E402
from addon.ir import (  # noqa: E402
    BlockDelta,
    BlockKind,
    BlockStart,
    BlockStop,
    Event,
    Finish,
    MessageStart,
    StopReason,
    Usage,
    UsageUpdate,
)
from bench.bodies import in_format, large_body, small_body  # noqa: E402

SHORT = {"anthropic": "A", "chat": "C", "responses": "R", "gemini": "G"}
LONG = {v: k for k, v in SHORT.items()}
TOOLS = {"anthropic": [{"name": "run", "description": "Run", "input_schema": {"type": "object"}}],
         "chat": [{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}],
         "responses": [{"type": "function", "name": "run", "parameters": {"type": "object"}}],
         "gemini": [{"functionDeclarations": [{"name": "run", "parametersJsonSchema": {"type": "object"}}]}]}


def op(client: str) -> Operation | None:
    """What a format that puts the model and stream flag in its path (Gemini) has there."""
    return Operation(client, "generate", model="bench-model", stream=True) if client == "gemini" else None


def ctx() -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):024d}", created=1_700_000_000)


def ir_events(n: int) -> list[Event]:
    """A typical coding-agent answer: text, then a tool call streamed in fragments."""
    events: list[Event] = [MessageStart(id="msg_bench", model="bench-model", usage=Usage(input_tokens=1000)),
                           BlockStart(block_id=0, kind=BlockKind.TEXT)]
    events += [BlockDelta(block_id=0, text=f" w{i:06d}") for i in range(n)]
    events += [BlockStop(block_id=0),
               BlockStart(block_id=1, kind=BlockKind.TOOL_CALL, tool_call_id="call_bench", tool_name="run")]
    args = json.dumps({"command": "x" * (n // 4 * 3)})
    events += [BlockDelta(block_id=1, text=args[i:i + 3]) for i in range(0, len(args), 3)]
    events += [BlockStop(block_id=1), UsageUpdate(usage=Usage(output_tokens=n)),
               Finish(stop_reason=StopReason.TOOL_USE)]
    return events


def upstream_chunks(upstream: Format, n: int) -> list[bytes]:
    """The upstream's SSE, one event per chunk, rendered by the upstream format's own emitter."""
    request = upstream.parse_request({**small_body(upstream.NAME, "bench-model"), "tools": TOOLS[upstream.NAME]})
    emitter = upstream.StreamEmitter(dataclasses.replace(ctx(), request=request))
    return [b for ev in ir_events(n) for b in emitter.feed(ev)]


def client_body(client: str) -> bytes:
    return json.dumps({**small_body(client, "bench-model"), "tools": TOOLS[client]}).encode()


def run_pair(client: str, upstream: str, chunks: list[bytes]) -> tuple[float, int]:
    """Seconds to translate the whole stream, and client bytes produced."""
    exchange, _ = translate.Exchange.start(FORMATS[client], FORMATS[upstream], client_body(client), ctx(),
                                           op=op(client))
    t = exchange.stream()
    start = time.process_time()
    size = 0
    for chunk in chunks:
        for b in t.feed(chunk):
            size += len(b)
    for b in t.close():
        size += len(b)
    elapsed = time.process_time() - start
    if t.failed is not None or not t.finished:
        raise RuntimeError(f"{client} ← {upstream}: stream did not finish cleanly: {t.failed}")
    return elapsed, size


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=2000, help="text deltas per stream (default 2000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", metavar="PAIR", help="cProfile one pair, e.g. A→C or A-C (client, upstream)")
    args = ap.parse_args(argv)
    streams = {name: upstream_chunks(fmt, args.events) for name, fmt in FORMATS.items()}
    if args.profile:
        client, upstream = (LONG[x] for x in args.profile.replace("→", "-").split("-"))
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.repeat):
            run_pair(client, upstream, streams[upstream])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    print(f"stream translation, {args.events} text deltas + a tool call, one upstream event per feed "
          f"(best of {args.repeat})")
    print(f"{'pair':6} {'events':>7} {'events/s':>10} {'µs/event':>9} {'MB/s out':>9}")
    for client, upstream in itertools.product(FORMATS, FORMATS):
        if client == upstream:
            continue
        chunks = streams[upstream]
        secs = best(functools.partial(lambda c, u, ch: run_pair(c, u, ch)[0], client, upstream, chunks), args.repeat)
        _, size = run_pair(client, upstream, chunks)
        print(f"{SHORT[client]}→{SHORT[upstream]:4} {len(chunks):7} {len(chunks) / secs:10,.0f} "
              f"{secs / len(chunks) * 1e6:9.2f} {size / secs / 1e6:9.1f}")
    for upstream in FORMATS:  # pass-through with a model rewrite: only events naming the model are parsed
        chunks = streams[upstream]

        def renamed(ch: list[bytes] = chunks, fmt: Format = FORMATS[upstream]) -> float:
            r = translate.ModelRenamer("upstream-model", "client-model", fmt.rename_model)
            start = time.process_time()
            for chunk in ch:
                r.feed(chunk)
            r.close()
            return time.process_time() - start

        secs = best(renamed, args.repeat)
        print(f"{SHORT[upstream]}={SHORT[upstream]:4} {len(chunks):7} {len(chunks) / secs:10,.0f} "
              f"{secs / len(chunks) * 1e6:9.2f} {'':>9}  (pass-through, model renamed)")
    anthropic_body = large_body("bench-model")
    print(f"\nrequest rewrite: Exchange.start on the ~500 KB Claude Code-shaped request (best of {args.repeat})")
    print(f"{'pair':6} {'bytes in':>9} {'bytes out':>9} {'ms':>7}")
    for client in FORMATS:
        body = json.dumps(in_format(client, anthropic_body)).encode()
        for upstream in ("chat", "anthropic"):
            if client == upstream:
                continue
            out_len = len(translate.Exchange.start(FORMATS[client], FORMATS[upstream], body, ctx(), op=op(client))[1])

            def start(c: str = client, u: str = upstream, b: bytes = body) -> float:
                t0 = time.process_time()
                translate.Exchange.start(FORMATS[c], FORMATS[u], b, ctx(), op=op(c))
                return time.process_time() - t0

            ms = best(start, args.repeat) * 1e3
            print(f"{SHORT[client]}→{SHORT[upstream]:4} {len(body):9,} {out_len:9,} {ms:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
