"""Several bridge instances behind HAProxy (issue 18, item 4): ``deploy/haproxy.cfg`` as shipped, in
front of two bridges, one of which dies in the middle of streaming load.

HAProxy runs in the foreground with the repository's config file unchanged: the addresses it binds and
balances over come from the environment variables the file reads (``BRIDGE_LB_BIND``, ``BRIDGE1_ADDR``,
``BRIDGE2_ADDR``, ``BRIDGE_LB_STATS``, ``BRIDGE_LB_STATS_SOCKET``), all on 127.0.0.1. Both bridges
translate for the same mock upstream, one Chat Completions endpoint.

The run (``test_an_instance_dies_mid_stream``, once with SIGKILL, once with SIGINT as Ctrl-C sends):

1. Six Anthropic streams are opened one after the other through the balancer, each held by the mock
   after its first text deltas; ``leastconn`` puts three on each instance (the ``x-bridge-instance``
   header the config adds says which).
2. Health checks of ``bridge1`` are paused (HAProxy's ``disable health``: the server counts as up, as it
   does in the fraction of a second before its checks notice), then ``bridge1`` is stopped. Its three
   streams must fail visibly: an error while reading (the chunked body cut short), no ``message_stop``,
   only the text sent before the stop. New requests now go to the dead instance first (it has the
   fewest open streams): each must be retried on ``bridge2`` (``retry-on conn-failure``, ``option
   redispatch 1``) and succeed: 200, its whole text, its terminal event, one request upstream each. The
   stats socket counts one redispatch per request.
3. Checks resume: ``bridge1`` must go DOWN by its health check (``L4CON``, logged), and the next wave of
   requests goes straight to ``bridge2``, with no further retry.
4. The held streams are released: the three on ``bridge2`` end complete. HAProxy's log tells the same
   story, request by request: three cut by their server (``SD--``), eight redispatched, the rest whole.

``test_a_drained_instance_finishes_its_streams_and_gets_no_new_ones`` is the restart without a break: an
instance set to ``drain`` through the stats socket gets no new request, finishes its stream, then stops.
``test_a_codex_websocket_stays_on_its_instance_and_starts_over_on_another``: a Codex WebSocket session
lives on one instance with the context the bridge keeps for it; when that instance dies, Codex's way
back (a new connection, ``previous_response_not_found``, the whole history again) works on the other.

Clients: the official ``anthropic`` (Anthropic client, translated to Chat) and ``openai`` (Chat, passed
through) SDKs with ``max_retries=0``, so every success is the balancer's doing, and httpx reading the
held streams' SSE line by line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ROOT, UPSTREAM_KEY_ENV, ConfiguredBridge, free_ports
from tests.mock_upstream import MockUpstream
from tests.ws_client import WSClient

CONFIG = ROOT / "deploy" / "haproxy.cfg"
HELD = 6  # streams open through the balancer when an instance dies, three on each
HELD_EVENTS = 4  # upstream events each held stream gets before the mock holds it (role + 3 deltas)
WAVE = 8  # requests in each wave after the stop
# clients at once in a wave: fewer than the streams held on the survivor, so that while the checks are
# paused every request finds the dead instance with fewer connections and is sent there first
AT_ONCE = 3
PIECE = 7  # characters per upstream delta
WAIT = 10.0  # seconds allowed for anything awaited below (a failure, not a measurement)
# option httplog: "… bridge bridges/<server> Tq/Tw/Tc/Tr/Ta <status> <bytes> - - <term> a/f/b/s/<retries> …"
LOGGED = re.compile(r" bridge bridges/(\S+) \S+ (\d{3}) \d+ \S+ \S+ (\S{4}) \d+/\d+/\d+/\d+/(\+?\d+) ")


def held_text(i: int) -> str:
    return "".join(f"<held{i}:{n:02d}>" for n in range(12))


def before_hold(i: int) -> str:
    """What held stream ``i`` shows before the mock holds it: the deltas of its first events but the role's."""
    return held_text(i)[:PIECE * (HELD_EVENTS - 1)]


def wave_text(wave: str) -> str:
    return "".join(f"<{wave}:{n:02d}>" for n in range(6))


def haproxy_binary() -> str:
    """haproxy from PATH or Debian's place; a skip when missing (a failure when BRIDGE_REQUIRE_CLIENTS=1)."""
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.access(p, os.X_OK)), None)
    if found is None:
        if os.environ.get("BRIDGE_REQUIRE_CLIENTS") == "1":
            pytest.fail("haproxy not found on PATH or at /usr/sbin/haproxy (.ci/run installs it)")
        pytest.skip("haproxy not installed (apt-get install haproxy)")
    return found


class Balancer:
    """``haproxy -db -f deploy/haproxy.cfg`` (foreground, logging to its stdout), its addresses in the
    environment; the runtime API through the stats socket."""

    def __init__(self, binary: str, workdir: Path, servers: list[int]) -> None:
        self.port, stats_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_path = workdir / "haproxy.sock"
        self.log_path = workdir / "haproxy.log"
        env = {**os.environ, "BRIDGE_LB_BIND": f"127.0.0.1:{self.port}",
               "BRIDGE_LB_STATS": f"127.0.0.1:{stats_port}", "BRIDGE_LB_STATS_SOCKET": str(self.socket_path)}
        for n, port in enumerate(servers, 1):
            env[f"BRIDGE{n}_ADDR"] = f"127.0.0.1:{port}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not start (exit {self.proc.returncode}):\n{self.log()}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return self.socket_path.exists()
        except OSError:
            return False

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(WAIT)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend ``bridges``: server name (and ``BACKEND``) → its CSV fields."""
        text = self.command("show stat").removeprefix("# ")
        rows = {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "bridges"}
        assert {"bridge1", "bridge2", "BACKEND"} <= set(rows), repr(text)
        return rows

    def wait_for(self, server: str, status: str, scur: str | None = None) -> dict[str, str]:
        """The server's stats once its status is ``status`` (and its current sessions ``scur``)."""
        deadline = time.monotonic() + WAIT
        while (row := self.stats()[server])["status"] != status or scur not in (None, row["scur"]):
            if time.monotonic() > deadline:
                raise AssertionError(f"{server} is {row['status']} with {row['scur']} sessions, not {status} "
                                     f"({scur}), after {WAIT} s:\n{self.log()}")
            time.sleep(0.05)
        return row

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Short: a unix socket's path must fit in 107 bytes, pytest's tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="bridge-lb-") as d:
        yield Path(d)


@dataclass
class HeldStream:
    """One Anthropic stream through the balancer, read line by line in its own thread."""

    index: int
    instance: str = ""
    status: int = 0
    events: list[str] = field(default_factory=list)  # the data events' types, in order
    text: str = ""  # the text deltas so far
    error: str | None = None  # what reading it raised
    flowing: threading.Event = field(default_factory=threading.Event)  # every delta before the hold came
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, url: str) -> None:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": True,
                "messages": [{"role": "user", "content": f"held stream {self.index}"}]}
        try:
            with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=WAIT * 2,
                              headers={"anthropic-version": "2023-06-01", "x-api-key": "unused"}) as resp:
                self.status, self.instance = resp.status_code, resp.headers.get("x-bridge-instance", "")
                for line in resp.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line.removeprefix("data: "))
                    self.events.append(event["type"])
                    if event["type"] == "content_block_delta":
                        self.text += event["delta"].get("text", "")
                        if len(self.text) >= len(before_hold(self.index)):
                            self.flowing.set()
        except httpx.HTTPError as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.flowing.set()
            self.done.set()


@dataclass(frozen=True)
class Outcome:
    """One SDK request after the stop: who served it, its status, what it streamed, how it ended."""

    instance: str
    status: int
    text: str
    end: str  # Anthropic: the last event's type; Chat: the finish_reason


def anthropic_request(url: str, marker: str) -> Outcome:
    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=WAIT * 2)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=256, stream=True, messages=[{"role": "user", "content": marker}])
    text, last = "", ""
    for event in raw.parse():
        last = event.type
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
    return Outcome(raw.headers.get("x-bridge-instance", ""), raw.status_code, text, last)


def chat_request(url: str, marker: str) -> Outcome:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=WAIT * 2)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5", stream=True, messages=[{"role": "user", "content": marker}])
    text, finish = "", ""
    for chunk in raw.parse():
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return Outcome(raw.headers.get("x-bridge-instance", ""), raw.status_code, text, finish)


def wave(url: str, mock: MockUpstream, name: str) -> list[Outcome]:
    """WAVE requests, AT_ONCE at a time, alternately Anthropic (translated to Chat) and Chat (passed through),
    every one answered by the mock with ``wave_text(name)``."""
    for _ in range(WAVE):
        mock.next_reply(text=wave_text(name), piece=PIECE)
    calls = [anthropic_request if i % 2 == 0 else chat_request for i in range(WAVE)]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        return list(pool.map(lambda i: calls[i](url, f"{name}{i}"), range(WAVE)))


def complete(name: str, i: int) -> Outcome:
    """What request ``i`` of a wave must get: 200 from the survivor, the whole text, the terminal event."""
    return Outcome("bridge2", 200, wave_text(name), "message_stop" if i % 2 == 0 else "stop")


def requests_logged(lb: Balancer, n: int) -> Counter[tuple[str, str, str, str]]:
    """(server, status, termination state, retries) of each request in HAProxy's log (``option httplog``),
    once there are ``n``: a termination state ``SD--`` is a server that went away while sending; a
    retries field ``+1`` a request redispatched to another server after one retry."""
    deadline = time.monotonic() + WAIT
    while True:
        found = Counter((m[1], m[2], m[3], m[4]) for m in LOGGED.finditer(lb.log()))
        if sum(found.values()) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def start_held(lb: Balancer, mock: MockUpstream, release: threading.Event, count: int) -> list[HeldStream]:
    """``count`` Anthropic streams opened one at a time (each flowing before the next): leastconn
    alternates between the instances. The mock holds each after HELD_EVENTS events until ``release``."""
    held = [HeldStream(i) for i in range(count)]
    for stream in held:
        mock.next_reply(text=held_text(stream.index), piece=PIECE, hold_after=HELD_EVENTS, release=release)
        threading.Thread(target=stream.run, args=(lb.url,), daemon=True).start()
        assert stream.flowing.wait(WAIT) and (stream.status, stream.error) == (200, None), stream
        assert stream.text == before_hold(stream.index), stream
    assert Counter(s.instance for s in held) == {"bridge1": count // 2, "bridge2": count // 2}
    return held


def two_bridges(bridge_config: Callable[..., ConfiguredBridge], mock: MockUpstream, workdir: Path
                ) -> tuple[list[ConfiguredBridge], Balancer]:
    binary = haproxy_binary()
    config = {"endpoints": [{"name": "mock-chat", "url_openai": f"{mock.url}/v1", "api_key_env": UPSTREAM_KEY_ENV}]}
    bridges = [bridge_config(config, fresh_process=True) for _ in range(2)]
    lb = Balancer(binary, workdir, [b.port for b in bridges])
    try:
        for name in ("bridge1", "bridge2"):
            assert lb.wait_for(name, "UP")["check_status"] == "L7OK"
    except BaseException:
        lb.stop()
        raise
    return bridges, lb


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_an_instance_dies_mid_stream(stop: str, bridge_config: Callable[..., ConfiguredBridge],
                                     mock: MockUpstream, workdir: Path) -> None:
    bridges, lb = two_bridges(bridge_config, mock, workdir)
    release = threading.Event()
    try:
        # 1. six held streams through the balancer, three on each instance
        held = start_held(lb, mock, release, HELD)
        assert len(mock.requests) == HELD

        # 2. bridge1 stops while its checks are paused (as in the moment before they notice)
        assert lb.command("disable health bridges/bridge1") == "\n"
        victim = bridges[0].proc
        victim.send_signal(signal.SIGKILL if stop == "SIGKILL" else signal.SIGINT)
        victim.wait(WAIT)
        # its streams fail where their clients see it: an error while reading, no message_stop, part of the text
        for stream in (s for s in held if s.instance == "bridge1"):
            assert stream.done.wait(WAIT), stream
            assert stream.error is not None and "incomplete chunked read" in stream.error, stream
            assert (stream.text, stream.events[-1]) == (before_hold(stream.index), "content_block_delta"), stream
        lb.wait_for("bridge1", "no check", scur="0")  # still in rotation, its streams gone
        before = lb.stats()
        # every new request goes to the dead instance first (fewest open streams), is redispatched and completes
        assert wave(lb.url, mock, "a") == [complete("a", i) for i in range(WAVE)]
        assert len(mock.requests) == HELD + WAVE  # none reached the upstream twice
        after = lb.stats()
        assert int(after["bridge1"]["wredis"]) - int(before["bridge1"]["wredis"]) == WAVE, after["bridge1"]
        assert int(after["bridge2"]["stot"]) - int(before["bridge2"]["stot"]) == WAVE, after["bridge2"]

        # 3. the checks resume and take bridge1 out; the next wave goes straight to bridge2
        assert lb.command("enable health bridges/bridge1") == "\n"
        assert lb.wait_for("bridge1", "DOWN")["check_status"] == "L4CON"
        assert "Server bridges/bridge1 is DOWN, reason: Layer4 connection problem" in lb.log()
        assert wave(lb.url, mock, "b") == [complete("b", i) for i in range(WAVE)]
        assert len(mock.requests) == HELD + 2 * WAVE
        assert lb.stats()["bridge1"]["wredis"] == after["bridge1"]["wredis"]  # not tried again

        # 4. the streams held on the survivor go on to the end, untouched
        release.set()
        for stream in (s for s in held if s.instance == "bridge2"):
            assert stream.done.wait(WAIT), stream
            assert (stream.error, stream.text, stream.events[-1]) == (None, held_text(stream.index),
                                                                      "message_stop"), stream
        # HAProxy's account agrees: three streams cut by their server, eight redispatched, the rest whole
        assert requests_logged(lb, HELD + 2 * WAVE) == {("bridge1", "200", "SD--", "0"): HELD // 2,
                                                        ("bridge2", "200", "----", "+1"): WAVE,
                                                        ("bridge2", "200", "----", "0"): HELD // 2 + WAVE}
    except BaseException:
        print(f"haproxy log:\n{lb.log()[-6000:]}")
        raise
    finally:
        release.set()
        lb.stop()


def test_a_drained_instance_finishes_its_streams_and_gets_no_new_ones(
        bridge_config: Callable[..., ConfiguredBridge], mock: MockUpstream, workdir: Path) -> None:
    """The rolling restart: ``set server … state drain``, wait for its streams to end, then stop it."""
    bridges, lb = two_bridges(bridge_config, mock, workdir)
    release = threading.Event()
    try:
        held = start_held(lb, mock, release, 2)
        assert lb.command("set server bridges/bridge1 state drain") == "\n"
        assert lb.stats()["bridge1"]["status"] == "DRAIN"
        assert wave(lb.url, mock, "c") == [complete("c", i) for i in range(WAVE)]  # none to bridge1
        release.set()
        for stream in held:
            assert stream.done.wait(WAIT), stream
            assert (stream.error, stream.text, stream.events[-1]) == (None, held_text(stream.index),
                                                                      "message_stop"), stream
        lb.wait_for("bridge1", "DRAIN", scur="0")
        bridges[0].stop()  # SIGINT: nothing of it is in flight
        assert bridges[0].proc.returncode == 0
        assert wave(lb.url, mock, "d") == [complete("d", i) for i in range(WAVE)]
        assert requests_logged(lb, 2 + 2 * WAVE) == {("bridge1", "200", "----", "0"): 1,
                                                     ("bridge2", "200", "----", "0"): 1 + 2 * WAVE}
    except BaseException:
        print(f"haproxy log:\n{lb.log()[-6000:]}")
        raise
    finally:
        release.set()
        lb.stop()


def responses_user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def holder(bridges: list[ConfiguredBridge]) -> int:
    """Which bridge took the WebSocket upgrade (its log says so): exactly one."""
    deadline = time.monotonic() + WAIT
    while not (took := [i for i, b in enumerate(bridges) if "websocket responses | connection opened" in b.log()]):
        assert time.monotonic() < deadline, "no bridge logged the upgrade"
        time.sleep(0.05)
    assert len(took) == 1, took
    return took[0]


def test_a_codex_websocket_stays_on_its_instance_and_starts_over_on_another(
        bridge_config: Callable[..., ConfiguredBridge], mock: MockUpstream, workdir: Path) -> None:
    """Codex's WebSocket transport through the balancer: the connection (and the context the bridge keeps
    for it) lives on one instance; when that instance dies, Codex's way back works through the survivor:
    a new connection, ``previous_response_not_found`` for the old id, then the whole history again."""
    bridges, lb = two_bridges(bridge_config, mock, workdir)
    create = {"type": "response.create", "model": "gpt-5", "stream": True, "store": False}
    try:
        ws = WSClient(lb.port)
        ws.send({**create, "input": [], "generate": False})
        warm = ws.response()[-1]["response"]["id"]
        mock.next_reply(text="one")
        ws.send({**create, "previous_response_id": warm, "input": [responses_user("first")]})
        first = ws.response()[-1]
        assert first["type"] == "response.completed", first
        mock.next_reply(text="two")
        ws.send({**create, "previous_response_id": first["response"]["id"], "input": [responses_user("second")]})
        second = ws.response()[-1]
        assert second["type"] == "response.completed", second
        # the instance holding the connection sent the whole history: it kept the context
        assert [(m["role"], m["content"]) for m in mock.last.json["messages"]] == [
            ("user", "first"), ("assistant", "one"), ("user", "second")]
        dead = holder(bridges)
        survivor = bridges[1 - dead]

        bridges[dead].proc.kill()
        bridges[dead].proc.wait(WAIT)
        assert list(ws.frames()) == [] and ws.closed is not None and ws.closed.code == 1006, ws.closed  # abnormal
        ws.sock.close()

        again = WSClient(lb.port)  # to the survivor: retried there while the dead one's checks catch up
        again.send({**create, "previous_response_id": second["response"]["id"], "input": [responses_user("third")]})
        (error,) = again.response()
        assert (error["type"], error["error"]["code"]) == ("error", "previous_response_not_found"), error
        mock.next_reply(text="three")
        history = [responses_user("first"), {"type": "message", "role": "assistant",
                                             "content": [{"type": "output_text", "text": "one"}]},
                   responses_user("second"), {"type": "message", "role": "assistant",
                                              "content": [{"type": "output_text", "text": "two"}]},
                   responses_user("third")]
        again.send({**create, "input": history})
        third = again.response()[-1]
        assert third["type"] == "response.completed", third
        assert third["response"]["output"][-1]["content"][0]["text"] == "three"
        assert [m["content"] for m in mock.last.json["messages"]] == ["first", "one", "second", "two", "third"]
        assert "websocket responses | connection opened" in survivor.log()
        again.close()
        assert len(mock.requests) == 3
    except BaseException:
        print(f"haproxy log:\n{lb.log()[-6000:]}")
        raise
    finally:
        lb.stop()
