"""Secrets (issue 5, part 4): no key in the logs, mitmdump's output, a recorded flow or an error message.

One ``mitmdump`` runs the bridge with everything turned up: the bridge's log at debug level with request
and response bodies logged ``full`` to a file, mitmproxy's own terminal log at debug level with
``flow_detail=1`` (mitmdump's default, what ``./bridge.sh run`` gets), and ``-w`` recording every flow.
Requests carry every kind of key: the upstream key (from the env var named by ``api_key_env``), client
keys (``client_keys_env``) in ``x-api-key`` and in ``Authorization: Bearer``, a wrong client key, and
key-like query parameters (``?key=``, ``?api_key=``); the upstream answers some of them with an error
(before the stream, and inside it) whose message echoes the upstream key. Streamed and not, translated
and pass-through, all four client formats (a Gemini client's key in ``x-goog-api-key`` or alone in
``?key=``, as Google's own examples send it).

Then each key is searched for in: the bridge's log file, mitmdump's stdout/stderr, the raw bytes of
the ``.flow`` file, every string and bytes value of every flow read back with ``FlowReader``
(``flow.get_state()`` recursively, so ``flow.metadata`` and whatever lands there later is covered),
and the bodies the clients received (for the upstream key: a client must never learn it). The test is
not vacuous: the upstream key and the query keys must have reached the mock upstream, the client keys
must have been accepted (200) while the wrong one got 401, the log must hold the logged bodies and the
recording one flow per request. The keys are obviously fake and never shaped like ``sk-…``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mitmproxy import io as mitm_io

from tests.conftest import ConfiguredBridge
from tests.mock_upstream import MockUpstream, Reply

UPSTREAM_ENV, CLIENT_A_ENV, CLIENT_B_ENV = "SECRETS_TEST_UPSTREAM_KEY", "SECRETS_TEST_CLIENT_A", "SECRETS_TEST_CLIENT_B"
UPSTREAM_SECRET = "FAKEUPSTREAM-7d3e1a-not-a-real-key"
CLIENT_A = "FAKECLIENTA-51c0-not-a-real-key"  # sent as x-api-key
CLIENT_B = "FAKECLIENTB-9ab2-not-a-real-key"  # sent as Authorization: Bearer
WRONG_CLIENT = "FAKEWRONGCLIENT-44e1-not-a-real-key"  # refused, and never written anywhere either
QUERY_KEY = "FAKEQUERYKEY-1f2e-not-real"  # ?key=
QUERY_API_KEY = "FAKEQUERYAPIKEY-3c4d-not-real"  # ?api_key=
KEYS = {"upstream key": UPSTREAM_SECRET, "client key (x-api-key)": CLIENT_A, "client key (bearer)": CLIENT_B,
        "wrong client key": WRONG_CLIENT, "?key=": QUERY_KEY, "?api_key=": QUERY_API_KEY}
MARKER = "secrets-test-marker-text"  # in every request body: shows the bodies were logged and recorded


@dataclass
class Case:
    name: str
    client: str  # anthropic | chat | responses | gemini
    model: str  # "to-chat", "to-anthropic" or "to-gemini": the upstream's format
    stream: bool
    auth: dict[str, str]
    query: str = ""
    reply: Reply | None = None
    status: int = 200


PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
X_API_KEY = {"x-api-key": CLIENT_A}
X_GOOG = {"x-goog-api-key": CLIENT_A}
BEARER = {"authorization": f"Bearer {CLIENT_B}"}


def _echo(**fields: Any) -> Reply:
    return Reply(error_message=f"invalid x-api-key {UPSTREAM_SECRET} (and {QUERY_KEY})", **fields)


CASES = [
    Case("anthropic→chat", "anthropic", "to-chat", False, X_API_KEY, f"?key={QUERY_KEY}"),
    Case("anthropic→chat streamed", "anthropic", "to-chat", True, BEARER, f"?api_key={QUERY_API_KEY}"),
    Case("anthropic pass-through", "anthropic", "to-anthropic", False, BEARER, f"?key={QUERY_KEY}"),
    Case("anthropic pass-through streamed", "anthropic", "to-anthropic", True, X_API_KEY, f"?api_key={QUERY_API_KEY}"),
    Case("chat→anthropic", "chat", "to-anthropic", False, BEARER, f"?api_key={QUERY_API_KEY}"),
    Case("chat→anthropic streamed", "chat", "to-anthropic", True, X_API_KEY, f"?key={QUERY_KEY}"),
    Case("chat pass-through streamed", "chat", "to-chat", True, BEARER, f"?key={QUERY_KEY}"),
    Case("responses→chat streamed", "responses", "to-chat", True, BEARER, f"?key={QUERY_KEY}"),
    Case("translated 401 echoing the key", "anthropic", "to-chat", False, X_API_KEY, f"?key={QUERY_KEY}",
         _echo(status=401), 401),
    Case("pass-through 401 echoing the key", "chat", "to-chat", False, BEARER, f"?key={QUERY_KEY}",
         _echo(status=401), 401),
    Case("translated stream error echoing the key", "chat", "to-anthropic", True, BEARER, f"?key={QUERY_KEY}",
         _echo(error_after=3)),
    Case("pass-through stream error echoing the key", "anthropic", "to-anthropic", True, X_API_KEY,
         f"?api_key={QUERY_API_KEY}", _echo(error_after=3)),
    Case("wrong client key", "anthropic", "to-chat", False, {"x-api-key": WRONG_CLIENT}, f"?key={QUERY_KEY}",
         None, 401),
    Case("wrong client bearer", "chat", "to-chat", True, {"authorization": f"Bearer {WRONG_CLIENT}"}, "", None, 401),
    Case("gemini→chat", "gemini", "to-chat", False, X_GOOG, f"?key={QUERY_KEY}"),
    Case("gemini→anthropic streamed, the client key only in ?key=", "gemini", "to-anthropic", True, {},
         f"?key={CLIENT_B}"),
    Case("gemini pass-through streamed", "gemini", "to-gemini", True, X_GOOG, f"?key={QUERY_KEY}"),
    Case("gemini pass-through, the client key only in ?key=", "gemini", "to-gemini", False, {}, f"?key={CLIENT_B}"),
    Case("chat→gemini", "chat", "to-gemini", False, BEARER, f"?api_key={QUERY_API_KEY}"),
    Case("gemini 401 passed through echoing the key", "gemini", "to-gemini", False, X_GOOG, f"?key={QUERY_KEY}",
         _echo(status=401), 401),
    Case("translated gemini stream error echoing the key", "anthropic", "to-gemini", True, X_API_KEY,
         f"?key={QUERY_KEY}", _echo(error_after=2)),
    Case("wrong gemini client key", "gemini", "to-chat", False, {"x-goog-api-key": WRONG_CLIENT}, "", None, 401),
]


def path_for(case: Case) -> str:
    """The client's path and query: Gemini's names the model and the method, and a stream's framing."""
    if case.client != "gemini":
        return PATHS[case.client] + case.query
    method, alt = ("streamGenerateContent", "alt=sse&") if case.stream else ("generateContent", "")
    return f"/v1beta/models/{case.model}:{method}?{alt}{case.query.lstrip('?')}"


def body_for(case: Case) -> dict[str, Any]:
    text = f"{MARKER}: {case.name}"
    if case.client == "gemini":  # the model and the stream flag are in the path
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if case.client == "anthropic":
        body: dict[str, Any] = {"model": case.model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    elif case.client == "chat":
        body = {"model": case.model, "messages": [{"role": "user", "content": text}]}
    else:
        body = {"model": case.model, "input": text}
    if case.stream:
        body["stream"] = True
    return body


@dataclass
class Run:
    bridge: ConfiguredBridge
    log_file: Path
    flow_file: Path
    answers: list[tuple[Case, int, bytes]]
    upstream_requests: list[Any]


@pytest.fixture(scope="module")
def run(bridge_config: Callable[..., ConfiguredBridge], mock_upstream: MockUpstream,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Every case through one mitmdump, which is then stopped so that the recording is complete."""
    mock = mock_upstream
    mock.reset()
    tmp = tmp_path_factory.mktemp("secrets")
    log_file, flow_file = tmp / "bridge.log", tmp / "rec.flow"
    config = {
        "client_keys_env": [CLIENT_A_ENV, CLIENT_B_ENV],
        "logging": {"level": "debug", "log_request_body": "full", "log_response_body": "full",
                    "file": str(log_file)},
        "endpoints": [
            {"name": "chat-upstream", "models": ["to-chat"], "url_openai": f"{mock.url}/v1",
             "api_key_env": UPSTREAM_ENV},
            {"name": "anthropic-upstream", "models": ["to-anthropic"], "url_anthropic": mock.url,
             "api_key_env": UPSTREAM_ENV},
            {"name": "gemini-upstream", "models": ["to-gemini"], "url_gemini": mock.url, "api_key_env": UPSTREAM_ENV},
        ],
    }
    env = {UPSTREAM_ENV: UPSTREAM_SECRET, CLIENT_A_ENV: CLIENT_A, CLIENT_B_ENV: CLIENT_B}
    bridge = bridge_config(config, env=env, fresh_process=True,
                           args=["-w", str(flow_file), "--set", "termlog_verbosity=debug", "--set", "flow_detail=1"])
    answers = []
    for case in CASES:  # one connection each: test_recorded_pass_through_stream_keeps_the_connection_usable
        if case.status != 401 or case.reply is not None:  # a refused request leaves no reply unused
            mock.next_reply(case.reply or Reply(text=f"answer for {case.name}"))
        with httpx.Client(base_url=bridge.url, timeout=20) as client:
            resp = client.post(path_for(case), json=body_for(case),
                               headers={"anthropic-version": "2023-06-01", **case.auth} if case.client == "anthropic"
                               else case.auth)
            answers.append((case, resp.status_code, resp.content))
    upstream_requests = mock.requests
    bridge.stop()  # flushes the -w recording
    mock.reset()
    yield Run(bridge, log_file, flow_file, answers, upstream_requests)


def test_every_request_was_answered_as_expected(run: Run) -> None:
    for case, status, body in run.answers:
        assert status == case.status, f"{case.name}: HTTP {status}: {body[:500]!r}"
        if case.stream and status == 200:
            assert body.startswith((b"event:", b"data:")), f"{case.name}: not a stream: {body[:300]!r}"
        if status == 200 and not case.stream:  # its own answer, not the one scripted for another case
            assert case.name.encode() in body.replace(b"\\u2192", "→".encode()) or case.reply, case.name


def test_the_keys_reached_the_upstream_and_the_client_keys_did_not(run: Run) -> None:
    """Not vacuous: the upstream key was really sent (and so really had to be hidden). A client's
    credentials go nowhere, in any header or query parameter (issue 12, item 8)."""
    expected = [c for c in CASES if c.status != 401 or c.reply is not None]  # refused ones never left
    assert len(run.upstream_requests) == len(expected)
    for case, rec in zip(expected, run.upstream_requests, strict=True):
        sent = rec.headers.get("authorization", "") + rec.headers.get("x-api-key", "") + rec.headers.get(
            "x-goog-api-key", "")
        assert UPSTREAM_SECRET in sent, f"{case.name}: the upstream got no key: {rec.headers}"
        assert "key=" not in rec.path, f"{case.name}: a client's key parameter went upstream: {rec.path}"
        for key in (CLIENT_A, CLIENT_B, WRONG_CLIENT, QUERY_KEY, QUERY_API_KEY):
            assert key not in rec.all_header_values, f"{case.name}: a client key went upstream"
        assert MARKER.encode() in rec.body


def _strings(value: Any, path: str = "flow") -> Iterator[tuple[str, str]]:
    """Every str (and bytes, decoded) in a flow's state, with where it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, f"{path} key")
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, bytes):
        yield path, value.decode("latin-1")
    elif isinstance(value, str):
        yield path, value


def _leaks(text: str, keys: dict[str, str]) -> list[str]:
    return [name for name, key in keys.items() if key in text]


def test_no_key_in_the_bridge_log_file(run: Run) -> None:
    files = sorted(run.log_file.parent.glob(run.log_file.name + "*"))  # with rotated backups
    text = "".join(f.read_text(errors="replace") for f in files)
    assert MARKER in text and "format conversion" in text, "bodies and request lines were not logged"
    assert "request body to the upstream" in text
    leaks = {name: [line[:300] for line in text.splitlines() if key in line][:3]
             for name, key in KEYS.items() if key in text}
    assert not leaks, f"keys in the bridge's log file: {json.dumps(leaks, indent=1)}"


def test_no_key_in_mitmdump_output(run: Run) -> None:
    text = run.bridge.log()  # mitmdump's stdout and stderr
    assert MARKER in text, "mitmdump's output does not hold the bridge's body logs"
    leaks = {name: [line[:300] for line in text.splitlines() if key in line][:3]
             for name, key in KEYS.items() if key in text}
    assert not leaks, f"keys in mitmdump's stdout/stderr: {json.dumps(leaks, indent=1)}"


def test_no_key_in_the_recorded_flow_file(run: Run) -> None:
    raw = run.flow_file.read_bytes()
    assert MARKER.encode() in raw
    leaks = [name for name, key in KEYS.items() if key.encode() in raw]
    assert not leaks, f"keys in the raw bytes of {run.flow_file.name}: {leaks}"


def test_no_key_anywhere_in_the_flows_read_back(run: Run) -> None:
    with open(run.flow_file, "rb") as f:
        flows = list(mitm_io.FlowReader(f).stream())
    assert len(flows) == len(CASES), f"{len(flows)} flows recorded for {len(CASES)} requests"
    found: list[str] = []
    for flow in flows:
        state = flow.get_state()
        assert "bridge" in state["metadata"], f"not a flow the bridge handled: {flow.request.url}"
        for where, text in _strings(state):
            found += [f"{name} in {where} ({flow.request.method} {flow.request.path[:60]})"
                      for name in _leaks(text, KEYS)]
    assert not found, "keys in the recorded flows:\n" + "\n".join(found[:40])


def test_no_upstream_key_in_what_the_clients_received(run: Run) -> None:
    """An upstream that echoes its key in an error must not hand the bridge's key to the client."""
    leaks = [case.name for case, _, body in run.answers if UPSTREAM_SECRET.encode() in body]
    assert not leaks, f"the upstream key reached the client in: {leaks}"


def test_recorded_pass_through_stream_keeps_the_connection_usable(
        bridge_config: Callable[..., ConfiguredBridge], mock: MockUpstream, tmp_path: Path) -> None:
    """With ``-w``, a pass-through stream is recorded through the bridge's stream callable; its end must
    not add a second chunked terminator, or the next answer on the same (keep-alive) connection, as an
    SDK's connection pool reuses it, starts with a stray ``0``."""
    config = {"endpoints": [{"name": "a", "url_anthropic": mock.url, "api_key_env": UPSTREAM_ENV}]}
    bridge = bridge_config(config, env={UPSTREAM_ENV: UPSTREAM_SECRET}, fresh_process=True,
                           args=["-w", str(tmp_path / "rec.flow")])
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=bridge.url, timeout=20, headers={"anthropic-version": "2023-06-01"}) as client:
        streamed = client.post("/v1/messages", json={**body, "stream": True})
        assert streamed.status_code == 200 and streamed.content.endswith(b"event: message_stop\n"
                                                                         b"data: {\"type\": \"message_stop\"}\n\n")
        after = client.post("/v1/messages", json=body)  # the same connection
        assert after.status_code == 200, after.content
    bridge.stop()
