"""Load (issue 5, part 5): 100 concurrent streams through one mitmdump, and memory over one long stream.

The mock upstream here answers each request with text derived from a marker in the request itself
(so replies cannot be handed to the wrong request, whatever order the requests arrive in), and holds
every answer after its first event until all 100 requests have arrived: they are then truly in
flight at the same time, through one mitmdump. Each client must get exactly its own text, in order,
in a stream that obeys its format's grammar. The mix: Anthropic and Responses clients translated to
a Chat upstream, and Chat clients passed through to it.

Memory: one translated stream of about 40 MB (60,000 events), sampling mitmdump's VmRSS while it
flows. The bound: RSS may grow by at most 20 MB over the baseline taken once the stream is running
(issue 7's target is < 20 MB growth over a 100 MB stream). Keeping the body — upstream bytes,
translated bytes, or both — would add at least the stream's 40 MB, so the bound tells buffering from
allocator noise with a wide margin either way.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ConfiguredBridge
from tests.mock_upstream import MockUpstream, Recorded, Reply
from tests.stream_grammar import (
    check_anthropic_stream,
    check_chat_stream,
    check_responses_stream,
    fold_anthropic,
    fold_chat,
)

CONCURRENT = 100
_MARK = re.compile(r"LOAD-MARK\[([A-Za-z0-9-]+)\]")
PIECES = 60  # text deltas per concurrent answer


def expected_text(marker: str) -> str:
    return "".join(f"<{marker}:{n:02d}>" for n in range(PIECES))


class MarkerMock(MockUpstream):
    """Answers each request by the marker in its body; ``gate`` (when set) holds every answer after
    its first event until ``gate_count`` requests have arrived."""

    def __init__(self) -> None:
        super().__init__()
        self._server.socket.listen(256)  # socketserver's backlog is 5: 100 connects at once overflow it
        self._local = threading.local()
        self.gate: threading.Event | None = None
        self.gate_count = 0
        self.gate_times: list[float] = []  # when the first request arrived, when the gate opened
        self.long_reply: Reply | None = None

    def _record(self, rec: Recorded) -> None:
        super()._record(rec)
        self._local.rec = rec  # the handler takes its reply next, in this same thread
        if self.gate is not None and not self.gate.is_set():
            arrived = len(self.requests)
            if arrived == 1 or arrived >= self.gate_count:
                self.gate_times.append(time.monotonic())
            if arrived >= self.gate_count:
                self.gate.set()

    def _take_reply(self) -> Reply:
        if self.long_reply is not None:
            return self.long_reply
        match = _MARK.search(self._local.rec.body.decode())
        assert match, "a request without a marker"
        marker = match.group(1)
        piece = len(f"<{marker}:00>")  # one delta per numbered piece
        reply = Reply(text=expected_text(marker), piece=piece)
        if self.gate is not None:
            reply.hold_after, reply.release = 1, self.gate
        return reply


@pytest.fixture(scope="module")
def marker_mock() -> Iterator[MarkerMock]:
    with MarkerMock() as server:
        yield server


@pytest.fixture(scope="module")
def load_bridge(bridge_config: Callable[..., ConfiguredBridge], marker_mock: MarkerMock) -> ConfiguredBridge:
    return bridge_config({"endpoints": [{"name": "chat-upstream", "url_openai": f"{marker_mock.url}/v1",
                                         "api_key_env": "UPSTREAM_KEY"}]}, fresh_process=True)


def request_for(i: int, marker: str) -> tuple[str, str, dict[str, Any]]:
    """(client format, path, body): Anthropic and Responses translated, Chat passed through."""
    text = f"Please answer LOAD-MARK[{marker}]"
    match i % 3:
        case 0:
            return "anthropic", "/v1/messages", {"model": "m", "max_tokens": 100, "stream": True,
                                                 "messages": [{"role": "user", "content": text}]}
        case 1:
            return "chat", "/v1/chat/completions", {"model": "m", "stream": True,
                                                    "messages": [{"role": "user", "content": text}]}
    return "responses", "/v1/responses", {"model": "m", "stream": True, "input": text}


def streamed_text(client: str, raw: bytes) -> str:
    """The answer's text, after checking the client format's grammar; a stream ending in error fails."""
    if client == "anthropic":
        final = fold_anthropic(check_anthropic_stream(raw))
        assert "error" not in final, final
        return "".join(b["text"] for b in final["content"] if b["type"] == "text")
    if client == "chat":
        final = fold_chat(check_chat_stream(raw))
        assert "error" not in final and final["finish_reason"] == "stop", final
        return str(final["content"])
    events = check_responses_stream(raw)
    assert events[-1]["type"] == "response.completed", events[-1]
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def test_100_concurrent_streams_each_get_their_own_text_in_order(load_bridge: ConfiguredBridge,
                                                                  marker_mock: MarkerMock) -> None:
    marker_mock.reset()
    marker_mock.gate, marker_mock.gate_count, marker_mock.gate_times = threading.Event(), CONCURRENT, []
    markers = [f"r{i:03d}-{i * 7919 % 10007:05d}" for i in range(CONCURRENT)]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[str, bytes, float]:
        fmt, path, body = request_for(i, markers[i])
        async with client.stream("POST", path, json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
            assert resp.status_code == 200, await resp.aread()
            first = None
            chunks = []
            async for chunk in resp.aiter_raw():
                first = first or time.monotonic()
                chunks.append(chunk)
        return fmt, b"".join(chunks), first or 0.0

    async def all_of_them() -> list[tuple[str, bytes, float]]:
        limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=load_bridge.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(CONCURRENT)))

    started = time.monotonic()
    try:
        results = asyncio.run(all_of_them())
    finally:
        marker_mock.gate.set()
        marker_mock.gate = None
    elapsed = time.monotonic() - started
    # Every answer waited at the gate for the 100th request (a hold gives up after 10 s): the gate
    # opening sooner means all 100 were in flight through mitmdump at once.
    assert len(marker_mock.requests) == CONCURRENT
    first, opened = marker_mock.gate_times
    assert opened - first < 10, f"{opened - first:.1f} s from the first to the 100th request upstream"
    for i, (fmt, raw, _) in enumerate(results):
        assert streamed_text(fmt, raw) == expected_text(markers[i]), f"request {i} ({fmt}) got another's text"
    print(f"\n{CONCURRENT} concurrent streams in {elapsed:.1f} s")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


LONG_EVENTS = 60_000
LONG_PIECE = 500  # characters of text per event: about 40 MB of SSE in all
GROWTH_LIMIT_MB = 20


def test_memory_stays_flat_over_a_long_translated_stream(load_bridge: ConfiguredBridge,
                                                         marker_mock: MarkerMock) -> None:
    marker_mock.reset()
    piece = "".join(chr(0x41 + n % 26) for n in range(LONG_PIECE - 8))
    text = "".join(f"{n:07d}|{piece}" for n in range(LONG_EVENTS))  # numbered: order is checkable
    marker_mock.long_reply = Reply(text=text, piece=LONG_PIECE)
    pid = load_bridge.proc.pid
    samples: list[tuple[int, int]] = []  # (client bytes so far, RSS KiB)
    received = 0
    got_text: list[str] = []
    try:
        body = {"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "long"}]}
        started = time.monotonic()
        with httpx.Client(base_url=load_bridge.url, timeout=120) as client, \
                client.stream("POST", "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
            assert resp.status_code == 200
            buffer = b""
            last_sample = 0.0
            for chunk in resp.iter_raw():
                received += len(chunk)
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:  # text deltas only: the grammar was checked on smaller streams above
                    if b'"text_delta"' in event:
                        got_text.append(json.loads(event.split(b"data: ", 1)[1])["delta"]["text"])
                now = time.monotonic()
                if now - last_sample > 0.05:
                    samples.append((received, _rss_kib(pid)))
                    last_sample = now
            assert buffer == b"" and b"message_stop" in event
        elapsed = time.monotonic() - started
    finally:
        marker_mock.long_reply = None
    assert "".join(got_text) == text, "the long stream arrived incomplete or out of order"
    # baseline: once the first 2 MB went through (interpreter, TLS-free connection and codec state warm)
    warm = [rss for n, rss in samples if n >= 2 * 1024 * 1024]
    assert len(warm) >= 10, f"too few RSS samples ({len(samples)}) to judge"
    growth_mb = (max(warm) - warm[0]) / 1024
    print(f"\nlong stream: {received / 1e6:.1f} MB to the client in {elapsed:.1f} s, {len(samples)} RSS samples, "
          f"RSS {warm[0] / 1024:.0f} → max {max(warm) / 1024:.0f} MB (growth {growth_mb:.1f} MB)")
    assert received > 35e6
    assert growth_mb < GROWTH_LIMIT_MB, \
        f"mitmdump's RSS grew by {growth_mb:.1f} MB over a {received / 1e6:.0f} MB stream"
