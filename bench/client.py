"""A raw asyncio HTTP/1.1 client for the benchmark: as little client work per byte as possible.

One request per connection (``Connection: close``), so the answer ends at EOF whatever its framing.
While the answer streams, the client only stamps each ``read`` (``time.monotonic_ns``, the clock the
mock upstream stamps its events with) and keeps the bytes; de-chunking, order checks and latencies
are worked out after the answer has ended, so every configuration pays the same small client cost.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import time
from dataclasses import dataclass, field

__all__ = ["Result", "fetch", "dechunk"]

_SEQ = re.compile(rb" w(\d{6})")
_STAMPED = re.compile(rb" w(\d{6})T(\d{19})")
# What ends a complete answer, per client format; and what an in-stream error looks like.
# (Peers write JSON with spaces after the colons.)
_END = {"anthropic": re.compile(rb'"type":\s*"message_stop"'), "chat": re.compile(rb"data: \[DONE\]"),
        "responses": re.compile(rb'"type":\s*"response\.completed"')}
_ERR = re.compile(rb'event: error|"type":\s*"error"|response\.failed|data: \{"error"')


@dataclass
class Result:
    status: int = 0
    t_start: int = 0  # ns, before the request is written
    t_end: int = 0  # ns, EOF
    nbytes: int = 0  # raw bytes after the headers
    reads: list[tuple[int, int]] = field(default_factory=list)  # (ns, raw bytes received so far)
    error: str | None = None
    order_ok: bool | None = None
    ttft_ms: float | None = None  # request start → first text delta
    event_latency_ms: list[float] = field(default_factory=list)  # per stamped delta: receive − send

    @property
    def total_ms(self) -> float:
        return (self.t_end - self.t_start) / 1e6


def dechunk(raw: bytes) -> tuple[bytes, list[tuple[int, int, int]], bool]:
    """(payload, [(raw offset, payload offset, length)] per chunk, whether the terminator came)."""
    out: list[bytes] = []
    segs: list[tuple[int, int, int]] = []
    pos = plen = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(out), segs, False
        size = int(raw[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out), segs, True
        start = eol + 2
        out.append(raw[start:start + size])
        segs.append((start, plen, size))
        plen += size
        pos = start + size + 2


async def fetch(host: str, port: int, path: str, body: bytes, headers: dict[str, str], *, fmt: str,
                expect_events: int, stamped: bool = False, keep: bool = True, timeout: float = 120.0) -> Result:
    """POST ``body``; read the whole answer; check it is complete, error-free and in order.

    ``keep=False`` (the 100 MB stream) keeps only the last 64 KiB, and checks only the end.
    """
    res = Result()
    head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close", "accept-encoding: identity"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    res.t_start = time.monotonic_ns()
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    except OSError as e:
        res.error = f"connect: {e}"
        res.t_end = time.monotonic_ns()
        return res
    chunks: list[bytes] = []
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            header = await reader.readuntil(b"\r\n\r\n")
            res.status = int(header.split(b" ", 2)[1])
            chunked = b"transfer-encoding: chunked" in header.lower()
            n = 0
            reads = res.reads
            tail = b""
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    break
                n += len(data)
                reads.append((time.monotonic_ns(), n))
                if keep:
                    chunks.append(data)
                else:
                    tail = (tail + data)[-65536:]
                # Some servers keep the connection open despite "connection: close" (claude-code-router
                # for its keep-alive timeout, 72 s): a chunked body ends at its terminator.
                if chunked and data.endswith(b"0\r\n\r\n") and (not keep or dechunk(b"".join(chunks))[2]):
                    break
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        res.error = f"{type(e).__name__}: {e}"
    finally:
        res.t_end = time.monotonic_ns()
        writer.close()
    res.nbytes = n if res.status else 0
    if res.error:
        return res
    raw = b"".join(chunks) if keep else tail
    _check(res, raw, chunked, fmt, expect_events, stamped, keep)
    return res


def _check(res: Result, raw: bytes, chunked: bool, fmt: str, expect_events: int, stamped: bool,
           whole: bool) -> None:
    if res.status != 200:
        res.error = f"HTTP {res.status}: {raw[:200]!r}"
        return
    if chunked and whole:
        payload, segs, terminated = dechunk(raw)
        if not terminated:
            res.error = "chunked body ended without its terminator"
            return
    else:
        payload, segs = raw, [(0, 0, len(raw))]
        if chunked and not raw.endswith(b"0\r\n\r\n"):
            res.error = "chunked body ended without its terminator"
            return
    if not _END[fmt].search(payload, max(0, len(payload) - 200_000)):
        res.error = f"answer incomplete: no {_END[fmt].pattern.decode()} at its end"
        return
    if _ERR.search(payload[:2000]) or _ERR.search(payload[-2000:]):
        res.error = f"error event in the answer: {payload[-300:]!r}"
        return
    if not whole:
        return
    # The first expect_events sequence numbers are the deltas (Responses repeats the text in .done events).
    seqs = [int(m[1]) for _, m in zip(range(expect_events), _SEQ.finditer(payload), strict=False)]
    res.order_ok = seqs == list(range(expect_events))
    if not res.order_ok:
        res.error = f"deltas missing or out of order: {len(seqs)} of {expect_events} seen"
        return
    starts = [s[1] for s in segs]
    ends = [n for _, n in res.reads]
    first = _SEQ.search(payload)
    if first is not None:
        res.ttft_ms = (_arrival(res, segs, first.end(), starts, ends) - res.t_start) / 1e6
    if stamped:
        for _, m in zip(range(expect_events), _STAMPED.finditer(payload), strict=False):
            res.event_latency_ms.append((_arrival(res, segs, m.end(), starts, ends) - int(m[2])) / 1e6)


def _arrival(res: Result, segs: list[tuple[int, int, int]], payload_end: int, starts: list[int],
             ends: list[int]) -> int:
    """When the byte just before payload offset ``payload_end`` was read (``ends``: bytes read so far
    after each read; ``starts``: each chunk's payload offset)."""
    last = payload_end - 1
    i = max(0, bisect.bisect_right(starts, last) - 1)
    raw_start, pay_start, _ = segs[i]
    raw_offset = raw_start + (last - pay_start)
    j = bisect.bisect_right(ends, raw_offset)
    return res.reads[min(j, len(res.reads) - 1)][0]
