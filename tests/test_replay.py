"""Every recorded flow in ``flows/`` is translated again by today's code and must come out as recorded.

For each flow the bridge handled (``flow.metadata["bridge_client_request"]``), ``addon.replay.rerun``
plans the client's recorded request with ``flows/config.yaml`` (and the ids and clock the recording
made), and translates the upstream's recorded answer. The upstream request (URL and body bytes) must
equal ``flow.request``, the client response (status and body bytes) ``flow.response``. A failure
prints ``replay.differences``: JSON path by path, SSE event by event, so it names the field. An
intended change is re-blessed with ``./bridge.sh bless`` (README "Recorded flows and replay").

A WebSocket connection (Codex's built-in provider) is a flow of its own, holding every message; its turns are
HTTP flows like the rest. Its check feeds the recorded client messages to today's ``addon.wssession.Session``
(``replay.rerun_websocket``): the body it would send each turn over HTTP must equal the client request recorded
in that connection's turn flows, and what it answers itself (the warm-up) the frames recorded.

Also: no fixture holds a key (WebSocket messages included), and each comparison does report a change (so
the replay tests can fail).
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anthropic
import httpx2
import pytest
from mitmproxy import http, io

from addon import replay
from addon.access import CREDENTIAL_HEADERS
from addon.config import Config, load_config
from addon.wssession import Session
from tests.conftest import MITMDUMP, ROOT, free_ports

FLOWS = ROOT / "flows"
FIXTURES = sorted(FLOWS.glob("*.flow"))
# Things shaped like an API key or a bearer token (a redacted value is "[REDACTED]", which none match).
KEY_SHAPES = re.compile(rb"sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
                        rb"|AIza[0-9A-Za-z_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
# The keys make_fixtures.py and the tests' clients present: none may survive in a fixture.
KNOWN_KEYS = (b"fixture-client-key", b"client-key", b"test-upstream-key")
# Where clients put keys besides a body: headers (Gemini's x-goog-api-key too) and URL query parameters
# (Gemini's ?key=). Listed here as well as taken from the bridge, so the check does not shrink with it.
KEY_HEADERS = {*CREDENTIAL_HEADERS, "authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"}
KEY_QUERY = {"key", "api_key", "api-key", "apikey", "access_token", "token"}
REDACTED = "[REDACTED]"
# A key-carrying query parameter anywhere in any text of a flow whose value is not the redaction mark.
QUERY_KEY_SHAPE = re.compile(rb"[?&](?i:key|api_key|api-key|apikey|access_token|token)=(?!\[REDACTED\]|%5BREDACTED%5D)"
                             rb"[^&#\s\"']+")


@cache
def config() -> Config:
    return load_config(str(FLOWS / "config.yaml"), environ={})


@cache
def read(path: Path) -> list[http.HTTPFlow]:
    with open(path, "rb") as f:
        return [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]


def bridge_flows() -> Iterator[Any]:
    """Every flow with a client request the bridge recorded. Not a WebSocket connection's own flow: its client
    request is the upgrade, which is never translated (its turns are flows of their own, which are here; the
    connection is checked by ``test_websocket_replay_makes_the_recorded_turns``)."""
    for path in FIXTURES:
        for n, flow in enumerate(read(path)):
            if replay.CLIENT_REQUEST in flow.metadata:
                yield pytest.param(path, n, id=f"{path.stem}[{n}]")


def websocket_flows() -> Iterator[Any]:
    for path in FIXTURES:
        for n, flow in enumerate(read(path)):
            if flow.websocket is not None:
                yield pytest.param(path, n, id=f"{path.stem}[{n}]")


def turns_of(path: Path, connection: http.HTTPFlow) -> list[http.HTTPFlow]:
    """The HTTP turn flows of a recorded WebSocket connection, in the order they were made."""
    return sorted((f for f in read(path) if f.websocket is None
                   and f.metadata.get("bridge", {}).get("connection") == connection.id[:8]),
                  key=lambda f: f.timestamp_created)


def compare_websocket(path: Path, connection: http.HTTPFlow) -> list[str]:
    """Where today's Session, fed the connection's recorded messages, makes other turns than its turn flows
    hold (the body and the headers ``client_metadata`` asks for), or answers a message itself otherwise."""
    assert connection.websocket is not None
    messages = [(m.from_client, m.text) for m in connection.websocket.messages if m.is_text]
    again = replay.rerun_websocket(messages, config().max_request_bytes)
    turns = turns_of(path, connection)
    out: list[str] = []
    if len(turns) != len(again.turns):
        out.append(f"turns sent over HTTP: recorded {len(turns)}, now {len(again.turns)}")
    for n, (turn, now) in enumerate(zip(turns, again.turns, strict=False)):
        client = turn.metadata[replay.CLIENT_REQUEST]
        if client["content"] != now.content():
            out += replay.differences(f"turn {n} request", client["content"], now.content()) or [
                f"turn {n} request: same JSON, different bytes"]
        headers = {k.lower(): v for k, v in client["headers"]}
        out += [f"turn {n} request header {k}: recorded {headers.get(k)!r}, now {v!r}"
                for k, v in now.headers.items() if headers.get(k) != v]
    for n, (recorded, frames) in enumerate(again.answered):
        if len(recorded) != len(frames):
            out.append(f"answer {n}: recorded {len(recorded)} frames, now {len(frames)}")
        for i, (a, b) in enumerate(zip(recorded, frames, strict=False)):
            if a != b:
                out += replay.differences(f"answer {n} frame {i}", a.encode(), b.encode()) or [
                    f"answer {n} frame {i}: same JSON, different bytes"]
    return out


def compare(flow: http.HTTPFlow) -> list[str]:
    """Where today's translation of the recorded exchange differs from the recording (empty: nowhere)."""
    again = replay.rerun(config(), flow.metadata)
    out: list[str] = []
    if again.upstream_url is not None:
        if flow.request.url != again.upstream_url:
            out.append(f"upstream request URL: recorded {flow.request.url}, now {again.upstream_url}")
        recorded = flow.request.get_content(strict=False)
        if recorded != again.upstream_body:
            out += replay.differences("upstream request", recorded, again.upstream_body) or [
                "upstream request: same JSON, different bytes"]
    elif flow.metadata.get(replay.UPSTREAM_RESPONSE) is not None:
        out.append("upstream request: recorded one, now the bridge answers by itself")
    if again.client_body is not None:
        assert flow.response is not None
        if flow.response.status_code != again.client_status:
            out.append(f"client response status: recorded {flow.response.status_code}, now {again.client_status}")
        recorded = flow.response.get_content(strict=False)
        if recorded != again.client_body:
            out += replay.differences("client response", recorded, again.client_body,
                                      again.client_content_type) or ["client response: same JSON, different bytes"]
    return out


def test_the_collection_is_there() -> None:
    """The starter collection (flows/README.md) exists and every fixture is listed in the README."""
    names = {p.name for p in FIXTURES}
    pairs = {f"{c}-to-{u}.flow" for c in ("anthropic", "chat", "responses", "gemini")
             for u in ("anthropic", "chat", "responses", "codex", "gemini")} - {"gemini-to-gemini.flow"}
    assert pairs | {"gemini-to-gemini.flow", "faults.flow", "claude-code-to-chat.flow", "codex-cli-to-anthropic.flow",
                    "gemini-cli-to-anthropic.flow"} | set(CODEX_WS) <= names
    readme = (FLOWS / "README.md").read_text()
    assert [n for n in sorted(names) if f"`{n}`" not in readme] == [], "fixtures missing from flows/README.md"
    assert sum(p.stat().st_size for p in FIXTURES) < 4_000_000, "keep flows/ small"


CODEX_WS = {f"codex-ws-to-{u}.flow": u for u in ("anthropic", "chat", "responses", "codex", "gemini")}


@pytest.mark.parametrize("name", CODEX_WS)
def test_a_codex_websocket_fixture_holds_the_connection_and_its_turns(name: str) -> None:
    """Codex's built-in provider over its WebSocket: one connection flow with every message (the warm-up,
    then two turns, each sent as only what is new), and its two turns as HTTP flows to the named upstream,
    the second carrying the whole history."""
    flows = read(FLOWS / name)
    (connection,) = [f for f in flows if f.websocket is not None]
    assert connection.websocket is not None and connection.metadata["bridge"]["operation"] == "websocket"
    sent = [json.loads(m.text) for m in connection.websocket.messages if m.from_client]
    assert [m.get("generate") for m in sent] == [False, None, None]
    got = [json.loads(m.text) for m in connection.websocket.messages if not m.from_client]
    done = [e["response"]["id"] for e in got if e["type"] == "response.completed"]
    assert [m.get("previous_response_id") for m in sent] == [None, *done[:2]] and len(done) == 3
    turns = turns_of(FLOWS / name, connection)
    assert len(turns) == 2 and len(flows) == 3
    for turn in turns:
        summary = turn.metadata["bridge"]
        assert (summary["transport"], summary["endpoint"], summary["status"]) == (
            "websocket", f"mock-{CODEX_WS[name]}", 200), summary
    first, second = (json.loads(t.metadata[replay.CLIENT_REQUEST]["content"]) for t in turns)
    assert "previous_response_id" not in first and "previous_response_id" not in second
    assert second["input"][:len(first["input"])] == first["input"]  # the history, then the call and its output
    assert [i["type"] for i in sent[2]["input"]] == [i["type"] for i in second["input"][-len(sent[2]["input"]):]]


@pytest.mark.parametrize(("path", "n"), list(websocket_flows()))
def test_websocket_replay_makes_the_recorded_turns(path: Path, n: int) -> None:
    connection = read(path)[n]
    assert turns_of(path, connection), f"{path.name} flow {n}: a connection without turn flows"
    diffs = compare_websocket(path, connection)
    assert not diffs, (f"{path.name} flow {n} (WebSocket connection {connection.id[:8]}): today's session makes "
                       f"other turns of its messages than recorded ({len(diffs)}):\n  " + "\n  ".join(diffs))


def test_a_changed_websocket_expansion_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The WebSocket check can fail: a Session that keeps the last response's id but not its context sends
    the second turn with only what Codex sent, and the check names the turn and the field."""
    path = FLOWS / "codex-ws-to-chat.flow"
    connection = next(f for f in read(path) if f.websocket is not None)
    assert compare_websocket(path, connection) == []
    keep = Session._keep
    monkeypatch.setattr(Session, "_keep", lambda self, response_id, context: keep(self, response_id, []))
    diffs = compare_websocket(path, connection)
    assert len(diffs) == 1 and diffs[0].startswith("turn 1 request: $.input: recorded ["), diffs


@pytest.mark.parametrize(("path", "n"), list(bridge_flows()))
def test_replay_matches_the_recording(path: Path, n: int) -> None:
    flow = read(path)[n]
    diffs = compare(flow)
    assert not diffs, (f"{path.name} flow {n} ({flow.comment}): today's translation differs from the "
                       f"recording ({len(diffs)}):\n  " + "\n  ".join(diffs)
                       + "\nIf the change is intended: ./bridge.sh bless " + str(path.relative_to(ROOT)))


def _strings(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, str):
        yield value.encode("utf-8", "surrogateescape")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_no_fixture_holds_a_key(path: Path) -> None:
    for n, flow in enumerate(read(path)):
        assert_no_key(flow, f"{path.name} flow {n}")


def assert_no_key(flow: http.HTTPFlow, where: str) -> None:
    """No credential header or query parameter unredacted, nothing shaped like a key anywhere in the flow:
    a WebSocket connection's upgrade request and every message of it included."""
    client = flow.metadata.get(replay.CLIENT_REQUEST, {})
    headers = [(k.decode(), v.decode()) for k, v in flow.request.headers.fields]
    headers += [tuple(pair) for pair in client.get("headers", [])]
    for name, value in headers:
        if name.lower() in KEY_HEADERS:
            assert value == REDACTED, f"{where}: header {name} is not redacted"
    for url in (flow.request.url, client.get("url", "")):  # the upstream's URL and the client's
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if name.lower() in KEY_QUERY:
                assert value == REDACTED, f"{where}: query parameter {name} of {url.split('?')[0]} is not redacted"
    for text in _strings(flow.get_state()):  # request, response, metadata, comment: everything
        found = KEY_SHAPES.search(text) or QUERY_KEY_SHAPE.search(text)
        assert found is None, f"{where}: something shaped like a key: {found.group()[:12]!r}…"
        for key in KNOWN_KEYS:
            assert key not in text, f"{where}: the key {key!r} is in the flow"


def test_key_check_finds_a_key() -> None:
    """The scan above is not blind: a bearer token in a body is found, and a Gemini ``?key=`` in a URL."""
    assert KEY_SHAPES.search(b'{"note": "Authorization: Bearer abcdefgh12345678"}')
    assert not KEY_SHAPES.search(b"authorization: [REDACTED]")
    assert QUERY_KEY_SHAPE.search(b"/v1beta/models/m:streamGenerateContent?alt=sse&key=abc")
    assert QUERY_KEY_SHAPE.search(b"/v1beta/models/m:generateContent?KEY=abc")
    assert not QUERY_KEY_SHAPE.search(b"/v1beta/models/m:streamGenerateContent?alt=sse&key=[REDACTED]")
    assert not QUERY_KEY_SHAPE.search(b"/v1beta/models/m:generateContent?key=%5BREDACTED%5D")


def test_key_check_reads_websocket_connections() -> None:
    """A Codex connection's upgrade carried the client's key (recorded blanked), and the scan reads every
    message of the connection: a key in one is found."""
    connection = copy.deepcopy(next(f for f in read(FLOWS / "codex-ws-to-anthropic.flow") if f.websocket))
    assert connection.request.headers["authorization"] == REDACTED and connection.websocket is not None
    assert_no_key(connection, "the connection")
    message = connection.websocket.messages[0]  # Codex's warm-up
    message.content = message.text.replace('"model":', '"note":"fixture-client-key","model":', 1).encode()
    with pytest.raises(AssertionError, match="the key b'fixture-client-key' is in the flow"):
        assert_no_key(connection, "the connection")


def test_gemini_keys_are_recorded_redacted() -> None:
    """The check has something to bite on: fixtures whose Gemini client sent its key as ``?key=`` (translated,
    and passed through, where the client's key went upstream too) and as ``x-goog-api-key``, each blanked."""
    for fixture in ("gemini-to-chat.flow", "gemini-to-gemini.flow"):
        for flow in read(FLOWS / fixture):
            client = flow.metadata[replay.CLIENT_REQUEST]
            assert ("key", REDACTED) in parse_qsl(urlsplit(client["url"]).query), client["url"]
    passed_on = read(FLOWS / "gemini-to-gemini.flow")[0].request.url  # pass-through: the key went on upstream
    assert ("key", REDACTED) in parse_qsl(urlsplit(passed_on).query), passed_on
    translated = read(FLOWS / "gemini-to-chat.flow")[0].request.url  # translated: no client key goes on
    assert "key=" not in translated, translated
    headers = read(FLOWS / "gemini-to-anthropic.flow")[0].metadata[replay.CLIENT_REQUEST]["headers"]
    assert ["x-goog-api-key", REDACTED] in headers, headers


def _first(fixture: str) -> tuple[http.HTTPFlow, http.Response]:
    """A copy of the fixture's first flow with an upstream answer, and its response."""
    flow = copy.deepcopy(next(f for f in read(FLOWS / fixture) if replay.UPSTREAM_RESPONSE in f.metadata))
    assert flow.response is not None
    return flow, flow.response


def _write(path: Path, flows: list[http.HTTPFlow]) -> None:
    with open(path, "wb") as f:
        writer = io.FlowWriter(f)  # type: ignore[no-untyped-call]
        for flow in flows:
            writer.add(flow)


def test_a_changed_upstream_request_is_reported_by_field() -> None:
    """The replay test can fail: change one field of a recorded upstream request and the comparison
    names that field's JSON path, with both values."""
    flow, _ = _first("anthropic-to-chat.flow")
    assert compare(flow) == []
    body = json.loads(flow.request.get_content() or b"")
    body["max_completion_tokens"] = body["max_completion_tokens"] + 1
    body["messages"][-1]["content"] = "something else"
    flow.request.content = json.dumps(body).encode()
    diffs = compare(flow)
    assert any("$.max_completion_tokens: recorded" in d and d.startswith("upstream request") for d in diffs), diffs
    assert any("$.messages[1].content: recorded \"something else\"" in d for d in diffs), diffs
    assert len(diffs) == 2, diffs


def test_a_changed_client_stream_is_reported_by_event() -> None:
    """A streamed client response that differs is reported event by event, with the field inside it."""
    flow, response = _first("chat-to-anthropic.flow")
    recorded = response.get_content() or b""
    assert recorded.startswith(b"data: ")
    response.content = recorded.replace(b'"finish_reason":"stop"', b'"finish_reason":"length"', 1)
    assert response.get_content() != recorded
    diffs = compare(flow)
    assert len(diffs) == 1 and re.search(r"client response event \d+ \(message\): "
                                         r"\$\.choices\[0\]\.finish_reason: recorded \"length\", now \"stop\"",
                                         diffs[0]), diffs


def test_a_changed_status_is_reported() -> None:
    flow, response = _first("faults.flow")
    assert compare(flow) == []
    recorded = response.status_code
    response.status_code = 418
    assert f"client response status: recorded 418, now {recorded}" in compare(flow)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_each_flow_once(path: Path) -> None:
    """No flow twice in a file (``mitmdump -nr … -w`` writes a flow with a response and an error twice;
    ``bridge.sh bless`` keeps one)."""
    ids = [flow.id for flow in read(path)]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate flows"


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"})


def test_mitmdump_replay_logs_the_changed_field(tmp_path: Path) -> None:
    """``mitmdump -nr x.flow -s addon/bridge.py``: a flow that matches is said to match, and a changed
    recorded field is logged by its path."""
    good, changed = (copy.deepcopy(f) for f in read(FLOWS / "anthropic-to-chat.flow")[:2])
    body = json.loads(changed.request.get_content() or b"")
    body["stream_options"] = {"include_usage": False}
    changed.request.content = json.dumps(body).encode()
    path = tmp_path / "x.flow"
    _write(path, [good, changed])
    run = _run([str(MITMDUMP), "-n", "-r", str(path), "-s", "addon/bridge.py",
                "--set", "bridge_config=flows/config.yaml", "--set", "flow_detail=0"])
    assert run.returncode == 0, run.stdout + run.stderr
    log = run.stdout + run.stderr
    assert log.count("today's translation matches the recording") == 1, log
    assert "1 difference(s) from the recording" in log, log
    assert "upstream request: $.stream_options.include_usage: recorded false, now true" in log, log


def test_bless_rewrites_a_fixture_with_todays_translation(tmp_path: Path) -> None:
    """``./bridge.sh bless FILE`` replaces the file with today's translation of each recorded exchange:
    a flow changed in memory matches again afterwards, every flow is kept once (the cut stream of
    faults.flow has a response and an error), and nothing else about the flows changes."""
    flows = [copy.deepcopy(f) for f in read(FLOWS / "faults.flow")]
    victim = next(f for f in flows if f.metadata.get(replay.UPSTREAM_RESPONSE) and f.response
                  and f.response.status_code == 429)
    assert victim.response is not None
    victim.response.content = b'{"changed": true}'
    path = tmp_path / "faults.flow"
    _write(path, flows)
    assert compare(victim) != []

    run = _run([str(ROOT / "bridge.sh"), "bless", str(path)])

    assert run.returncode == 0, run.stdout + run.stderr
    blessed = read(path)
    assert [f.id for f in blessed] == [f.id for f in flows]
    assert all(compare(f) == [] for f in blessed)
    for old, new in zip(flows, blessed, strict=True):
        assert new.metadata[replay.CLIENT_REQUEST] == old.metadata[replay.CLIENT_REQUEST]
        assert new.metadata.get(replay.UPSTREAM_RESPONSE) == old.metadata.get(replay.UPSTREAM_RESPONSE)
        assert new.comment == old.comment
    answer = next(f for f in blessed if f.id == victim.id).response
    assert answer is not None and answer.status_code == 429


class _ServerReplay:
    """``mitmdump -s addon/bridge.py --server-replay FILE`` on a free loopback port: answers come from
    the recording, nothing is sent upstream (``server_replay_extra=404``)."""

    def __init__(self, fixture: Path, workdir: Path, *options: str) -> None:
        self.port = free_ports(1)[0]
        self.log = workdir / "mitmdump.log"
        args = [str(MITMDUMP), "-s", "addon/bridge.py", "--set", "bridge_config=flows/config.yaml",
                "--mode", "reverse:http://127.0.0.1:9", "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
                "--set", f"confdir={workdir / 'confdir'}", "--server-replay", str(fixture),
                "--set", "server_replay_reuse=true", "--set", "server_replay_extra=404", *options]
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_server_replay_answers_the_recorded_requests_offline(tmp_path: Path) -> None:
    """Without ``server_replay_ignore_content``: each recorded client request, sent again, gets the
    answer recorded for it (the translation is the same, so the body matches), and a request that
    matches nothing gets a 404 in the client's format."""
    fixture = FLOWS / "anthropic-to-chat.flow"
    server = _ServerReplay(fixture, tmp_path)
    try:
        for flow in read(fixture):
            sent = flow.metadata[replay.CLIENT_REQUEST]
            path = "/" + sent["url"].split("://", 1)[1].partition("/")[2]
            headers = {k: v for k, v in sent["headers"] if k.lower() not in (*CREDENTIAL_HEADERS, "host",
                                                                              "content-length")}
            got = httpx2.post(server.url + path, content=sent["content"], headers=headers, timeout=20)
            assert flow.response is not None
            assert (got.status_code, got.content) == (flow.response.status_code, flow.response.content)
        other = httpx2.post(server.url + "/v1/messages", timeout=20, json={
            "model": "chat-fixture-model", "max_tokens": 10, "messages": [{"role": "user", "content": "new"}]})
        assert other.status_code == 404 and other.json()["type"] == "error", other.text
    finally:
        server.stop()
    log = server.log.read_text()
    assert log.count("[replay]      << 200") == len(read(fixture)), log  # answered from the file


def test_server_replay_serves_a_live_sdk_client_offline(tmp_path: Path) -> None:
    """README's offline demo: with ``server_replay_ignore_content`` a live Anthropic SDK client asking
    something new gets the first recorded answer (a streamed text turn), translated from Chat."""
    server = _ServerReplay(FLOWS / "anthropic-to-chat.flow", tmp_path, "--set", "server_replay_ignore_content=true")
    try:
        client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=20)
        with client.messages.stream(model="chat-fixture-model", max_tokens=64,
                                    messages=[{"role": "user", "content": "Something never recorded"}]) as s:
            message = s.get_final_message()
    finally:
        server.stop()
    assert [b.text for b in message.content if b.type == "text"] == ["Hello, wörld! Ünïcode ✓ from the mock."]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 70, 20)
    assert "[replay]" in server.log.read_text()
