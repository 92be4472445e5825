"""In-process micro-benchmark of the pure translators: no network, no mitmproxy.

``python -m bench.micro [--events N] [--repeat R] [--profile PAIR]``

For every (client, upstream) pair of formats, an upstream stream of N text deltas and one tool call
(with N/4 argument fragments) is rendered by the upstream format's own ``StreamEmitter``, then fed
to :class:`~addon.translate.StreamTranslator` one event per call, as mitmproxy hands over a chunked
upstream that sends at a model's pace (one HTTP chunk per event, one read each). Prints upstream events
per second and µs per event (best of R), and µs per event when the same bytes come in 64 KiB pieces cut
anywhere (a burst, as ``addon/adapter.py``'s ``coalesce_reads`` hands over what one read holds). Also
times ``Exchange.start`` (parse + render) on w4's ~500 KB Claude Code-shaped request for each client
format, toward a Chat and an Anthropic upstream, and ``ModelRenamer`` (a pass-through stream whose model
was rewritten). ``--profile A→C`` prints a cProfile of one pair instead; ``--stages A→C,R→C [--evict 8]``
times the stream callable stage by stage (docs/benchmark.md, "Where a stream's CPU goes").
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import itertools
import json
import pstats
import re
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


def in_reads(chunks: list[bytes], size: int = 65536) -> list[bytes]:
    """The same bytes in pieces of ``size``, cut anywhere (mid-event, mid-line, mid-character)."""
    wire = b"".join(chunks)
    return [wire[i:i + size] for i in range(0, len(wire), size)]


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


def stages(client: str, upstream: str, chunks: list[bytes], repeat: int, evict_mb: int) -> dict[str, float]:
    """µs per upstream event of the stream callable's work, stage by stage, each a longer pipeline run alone:
    the SSE decoder; and reading each event's JSON; and the upstream format's parser; and the block order and
    the client's emitter; the whole translator; the whole ``StreamAdapter`` (scrubbing a key, as in use).
    CPU time of the calls only; ``evict_mb``: that much memory is read between calls, as other processes do
    between the events of a stream at a model's pace (its caches are cold then)."""
    from addon.adapter import StreamAdapter
    from addon.formats.common import Budget, loads
    from addon.redact import Redactor
    from addon.sequence import BlockOrder
    from addon.sse import SSEDecoder

    other = bytearray(max(evict_mb, 1) << 20)
    scrub = Redactor.of(["sk-bench-upstream-key-0123456789abcdef"])

    def exchange() -> translate.Exchange:
        return translate.Exchange.start(FORMATS[client], FORMATS[upstream], client_body(client), ctx(),
                                        op=op(client))[0]

    def decode() -> Callable[[bytes], object]:
        return SSEDecoder().feed

    def decode_json() -> Callable[[bytes], object]:
        decoder = SSEDecoder()
        return lambda chunk: [loads(e.data) for e in decoder.feed(chunk) if e.data != "[DONE]"]

    def parse() -> Callable[[bytes], object]:
        decoder, parser = SSEDecoder(), FORMATS[upstream].StreamParser(exchange().ctx)
        return lambda chunk: [parser.feed(e) for e in decoder.feed(chunk)]

    def emit() -> Callable[[bytes], object]:
        ex = exchange()
        decoder, parser, emitter = SSEDecoder(), FORMATS[upstream].StreamParser(ex.ctx), ex.client.StreamEmitter(ex.ctx)
        order = BlockOrder(Budget(), ex.client.block_channel)
        return lambda chunk: [emitter.feed(ev) for e in decoder.feed(chunk) for ev in order.order(parser.feed(e))]

    def translator() -> Callable[[bytes], object]:
        return exchange().stream().feed

    def adapter() -> Callable[[bytes], object]:
        return StreamAdapter(exchange().stream(), lambda d: d, scrub, scrub)

    out: dict[str, float] = {}
    for name, make in (("SSE", decode), ("+JSON", decode_json), ("+parser", parse), ("+order, emitter", emit),
                       ("translator", translator), ("adapter", adapter)):
        fastest = float("inf")
        for _ in range(repeat):
            step, spent = make(), 0
            for chunk in chunks:
                if evict_mb:
                    other[::64]  # one read per cache line
                t0 = time.thread_time_ns()
                step(chunk)
                spent += time.thread_time_ns() - t0
            fastest = min(fastest, spent)
        out[name] = fastest / len(chunks) / 1e3
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=2000, help="text deltas per stream (default 2000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", metavar="PAIR", help="cProfile one pair, e.g. A→C or A-C (client, upstream)")
    ap.add_argument("--stages", metavar="PAIRS", help="time the stream callable stage by stage for these pairs "
                                                      "(e.g. A→C,R→C), one event per call and in 64 KiB reads")
    ap.add_argument("--evict", type=int, default=0, metavar="MB",
                    help="with --stages: read this much memory between calls (cold caches, as at a model's pace)")
    args = ap.parse_args(argv)
    streams = {name: upstream_chunks(fmt, args.events) for name, fmt in FORMATS.items()}
    if args.stages:
        cold = f", {args.evict} MB read between calls" if args.evict else ""
        print(f"the stream callable stage by stage, µs per upstream event (CPU of the calls, best of {args.repeat}"
              f"{cold}; each stage includes the ones before it)")
        for pair in args.stages.split(","):
            client, upstream = (LONG[x] for x in pair.replace("→", "-").split("-"))
            for label, chunks in (("1 event/call", streams[upstream]), ("64 KiB reads", in_reads(streams[upstream]))):
                times = stages(client, upstream, chunks, args.repeat, args.evict)
                n = len(streams[upstream])
                scale = len(chunks) / n  # per upstream event
                print(f"{SHORT[client]}→{SHORT[upstream]} {label:13} " +
                      "  ".join(f"{k} {v * scale:.2f}" for k, v in times.items()))
        return 0
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
    print(f"{'pair':6} {'events':>7} {'events/s':>10} {'µs/event':>9} {'MB/s out':>9} {'µs/event, 64 KiB reads':>23}")
    for client, upstream in itertools.product(FORMATS, FORMATS):
        if client == upstream:
            continue
        chunks = streams[upstream]
        secs = best(functools.partial(lambda c, u, ch: run_pair(c, u, ch)[0], client, upstream, chunks), args.repeat)
        burst = best(functools.partial(lambda c, u, ch: run_pair(c, u, ch)[0], client, upstream, in_reads(chunks)),
                     args.repeat)
        _, size = run_pair(client, upstream, chunks)
        print(f"{SHORT[client]}→{SHORT[upstream]:4} {len(chunks):7} {len(chunks) / secs:10,.0f} "
              f"{secs / len(chunks) * 1e6:9.2f} {size / secs / 1e6:9.1f} {burst / len(chunks) * 1e6:23.2f}")
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
    # The body's made-up ids ("toolu_bench000…") hold runs of 19 digits and more, which real ids (random
    # base62) all but never do; JSON reading looks at each such run (formats/common.loads): the same request
    # without them.
    body = re.sub(rb"0{10,}", lambda m: b"q" * len(m[0]), json.dumps(anthropic_body).encode())

    def start_plain(b: bytes = body) -> float:
        t0 = time.process_time()
        translate.Exchange.start(FORMATS["anthropic"], FORMATS["chat"], b, ctx())
        return time.process_time() - t0

    ms = best(start_plain, args.repeat) * 1e3
    print(f"A→C    {len(body):9,} {'':>9} {ms:7.2f}  (the same, ids without 19-digit runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
