"""Failover under load (issue 12, item 4): 300 concurrent streams through the failover relay.

Two endpoints serve the model, so every request goes through the relay (addon/relay.py). The first is a
mock upstream that answers each request with text derived from a marker in the request (a reply cannot
reach the wrong client) and holds every answer after its first event until all 300 requests have
arrived: the streams are then truly in flight at the same time, each holding an upstream connection
of the relay. Each client must get status 200 and exactly its own text, in a stream that obeys its
format's grammar, and the second endpoint must see no request. With httpx's default pool (100
connections) the 101st attempt waited for a free connection and, after ``connect_timeout``, failed over
and then failed with a 502 claiming a first-byte timeout.

The relay's own limits are tested directly too: a pool timeout is reported as what it is, and the
relay raises the process's soft open-file limit to what ``max_relay_connections`` needs.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from addon.relay import Attempt, Job, Relay
from tests.conftest import ROOT, UPSTREAM_KEY_ENV, ConfiguredBridge
from tests.mock_upstream import MockUpstream
from tests.test_load import MarkerMock, expected_text, request_for, streamed_text

CONCURRENT = 300
HOLD_CAP = 30.0  # seconds a held answer waits for the gate at most (the mock's own cap is 10 s)
CONNECT_TIMEOUT = 5  # the endpoints'; with a full pool it was also the wait for a free connection
# mitmdump holds four open files per relayed stream (client, to the relay, the relay's end, upstream);
# this process two (its client's, the mock's end).
MITMDUMP_FDS = 4 * CONCURRENT
TEST_FDS = 2 * CONCURRENT + 512


class Gate(threading.Event):
    """The mock's hold (``Reply.release``), with a longer cap than the mock's, counting holds that gave
    up: an answer released by the cap rather than by the 300th request means they did not overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.gave_up = 0
        self._lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        opened = super().wait(HOLD_CAP)
        if not opened:
            with self._lock:
                self.gave_up += 1
        return opened


@pytest.fixture(scope="module")
def slow_first() -> Iterator[MarkerMock]:
    with MarkerMock() as server:
        server._server.socket.listen(1024)  # 300 connects at once; socketserver's backlog is 5
        yield server


@pytest.fixture(scope="module")
def spare_second() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def failover_bridge(bridge_config: Callable[..., ConfiguredBridge], slow_first: MarkerMock,
                    spare_second: MockUpstream) -> ConfiguredBridge:
    """Started before the test raises its own open-file limit: mitmdump inherits the machine's, and
    the relay must raise it itself. max_relay_connections is left at its default."""
    return bridge_config({"endpoints": [
        {"name": "first", "url_openai": f"{slow_first.url}/v1", "api_key_env": UPSTREAM_KEY_ENV,
         "connect_timeout": CONNECT_TIMEOUT},
        {"name": "second", "url_openai": f"{spare_second.url}/v1", "api_key_env": UPSTREAM_KEY_ENV,
         "connect_timeout": CONNECT_TIMEOUT}]}, fresh_process=True)


def _open_file_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) 'Max open files' of a process (Linux)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft) if soft.isdigit() else 2**62, int(hard) if hard.isdigit() else 2**62
    raise AssertionError("no 'Max open files' line")


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw[:300].decode(errors="replace")


def test_300_concurrent_streams_through_the_relay_all_reach_the_first_endpoint(
        failover_bridge: ConfiguredBridge, slow_first: MarkerMock, spare_second: MockUpstream) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < TEST_FDS:
        pytest.skip(f"the hard open-file limit ({hard}) is below the {TEST_FDS} this test needs")
    # The relay raised mitmdump's own soft limit when it started (the machine's may be 1024).
    mitm_soft, mitm_hard = _open_file_limit(failover_bridge.proc.pid)
    if mitm_hard < MITMDUMP_FDS:
        pytest.skip(f"mitmdump's hard open-file limit ({mitm_hard}) is below the {MITMDUMP_FDS} it needs")
    assert mitm_soft >= MITMDUMP_FDS, f"mitmdump's soft open-file limit is {mitm_soft}"

    slow_first.reset()
    spare_second.reset()
    gate = Gate()
    slow_first.gate, slow_first.gate_count, slow_first.gate_times = gate, CONCURRENT, []
    markers = [f"f{i:03d}-{i * 7919 % 10007:05d}" for i in range(CONCURRENT)]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, bytes]:
        _, path, body = request_for(i, markers[i])
        async with client.stream("POST", path, json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
            return resp.status_code, await resp.aread()

    async def all_of_them() -> list[tuple[int, bytes] | BaseException]:
        limits = httpx.Limits(max_connections=4 * CONCURRENT, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=failover_bridge.url, timeout=60, limits=limits) as client:
            jobs = asyncio.gather(*(one(client, i) for i in range(CONCURRENT)), return_exceptions=True)
            return await asyncio.wait_for(jobs, 120)  # against hanging only

    # This process holds the client's 300 connections and the mock's 300 ends.
    if soft != resource.RLIM_INFINITY and soft < TEST_FDS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (TEST_FDS, hard))
    started = time.monotonic()
    try:
        results = asyncio.run(all_of_them())
    finally:
        gate.set()
        slow_first.gate = None
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    elapsed = time.monotonic() - started

    failed = Counter(f"{type(r).__name__}: {r}" if isinstance(r, BaseException) else f"{r[0]}: {_error_message(r[1])}"
                     for r in results if isinstance(r, BaseException) or r[0] != 200)
    assert not failed, f"{sum(failed.values())} of {CONCURRENT} failed:\n" + "\n".join(
        f"  {n} × {what}" for what, n in failed.most_common())
    assert not spare_second.requests, f"{len(spare_second.requests)} requests went to the second endpoint"
    arrived = Counter(m for r in slow_first.requests for m in markers if f"LOAD-MARK[{m}]" in r.body.decode())
    assert arrived == Counter(markers), "the first endpoint did not get each request exactly once"
    # Every answer was held after its first event until the 300th request arrived: all in flight at once.
    assert gate.gave_up == 0, f"{gate.gave_up} answers stopped waiting for the gate: the streams did not overlap"
    for i, result in enumerate(results):
        assert not isinstance(result, BaseException)
        fmt = request_for(i, markers[i])[0]
        assert streamed_text(fmt, result[1]) == expected_text(markers[i]), f"request {i} ({fmt}) got another's text"
    first, opened = slow_first.gate_times
    print(f"\n{CONCURRENT} concurrent relayed streams in {elapsed:.1f} s "
          f"(all {CONCURRENT} upstream after {opened - first:.1f} s)")


class _HeldUpstream:
    """A loopback HTTP/1.1 upstream that answers each request only once ``release`` is set."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        await self.release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()


def test_a_full_relay_pool_is_reported_as_such_and_the_other_endpoints_are_not_tried() -> None:
    async def scenario() -> tuple[Job, Job, httpx.Response, httpx.Response, int, int]:
        held, spare = _HeldUpstream(), _HeldUpstream()
        spare.release.set()
        servers = [await asyncio.start_server(u.handle, "127.0.0.1", 0) for u in (held, spare)]
        held_url, spare_url = (f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/v1/chat/completions"
                               for s in servers)
        relay = Relay()
        await relay.start(max_connections=1)

        def job() -> Job:  # connect (and pool) timeout 0.3 s, first-byte timeout 5 s
            return Job([Attempt("held", held_url, [("content-type", "application/json")], b"{}", 0.3, 5.0),
                        Attempt("spare", spare_url, [("content-type", "application/json")], b"{}", 0.3, 5.0,
                                index=1)])

        first, second = job(), job()
        try:
            async with httpx.AsyncClient(timeout=20) as client:
                holding = asyncio.create_task(client.post(relay.register(first), content=b"{}"))
                await asyncio.wait_for(held.connected.wait(), 10)  # the one connection is taken
                refused = await client.post(relay.register(second), content=b"{}")
                held.release.set()
                answered = await holding
        finally:
            await relay.stop()
            for s in servers:
                s.close()
        return first, second, answered, refused, held.connections, spare.connections

    first, second, answered, refused, held_connections, spare_connections = asyncio.run(scenario())
    busy = "no free relay connection within 0.3 s (max_relay_connections 1)"
    assert second.failures == [f"held: {busy}", f"spare: not tried ({busy})"]
    assert refused.status_code == 502
    assert answered.status_code == 200 and first.winner == 0 and first.failures == []
    assert busy in refused.json()["error"]["message"]
    assert held_connections == 1 and spare_connections == 0


def test_the_relay_raises_the_open_file_limit_it_needs() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    needed = 4 * 2000  # four open files per relayed stream
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-file limit ({hard}) is below {needed}")
    # In a child process: the limit is per process, and this one starts at 256.
    code = """if True:
        import asyncio, resource
        from addon.relay import Relay
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        async def main():
            relay = Relay()
            await relay.start(max_connections=2000)
            await relay.stop()
        asyncio.run(main())
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    """
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert int(out) >= needed
