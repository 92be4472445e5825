"""Hardening (issue 12), end to end: each item of "What was observed", through a real mitmdump.

Limits are set small in the config (1 MiB) so every bound is crossed quickly; the memory each bound
keeps is measured at scale in tests/test_limits.py and ``./bridge.sh bench limits``. All addresses
are loopback: a remote peer is simulated on the flow in tests/test_guard.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ConfiguredBridge
from tests.mock_upstream import MockUpstream, Reply

UPSTREAM_ENV, CLIENT_ENV = "HARDENING_UPSTREAM_KEY", "HARDENING_CLIENT_KEY"
UPSTREAM_SECRET = "FAKEUPSTREAM-hardening-5e1a-not-a-real-key"
CLIENT_KEY = "FAKECLIENT-hardening-77c2-not-a-real-key"
LIMIT = 1024 * 1024
PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
CLIENTS = ("anthropic", "chat", "responses")
# model → the upstream format that serves it
MODELS = {"anthropic": "to-anthropic", "chat": "to-chat", "responses": "to-responses"}


def config(mock: MockUpstream, tmp: Path, **top: Any) -> dict[str, Any]:
    return {
        "max_request_bytes": LIMIT, "max_answer_bytes": LIMIT,
        "logging": {"log_request_body": "full", "max_bytes": 64 * 1024, "file": str(tmp / "bridge.log")},
        "endpoints": [
            {"name": "chat-up", "models": ["to-chat"], "url_openai": f"{mock.url}/v1", "api_key_env": UPSTREAM_ENV},
            {"name": "anthropic-up", "models": ["to-anthropic"], "url_anthropic": mock.url,
             "api_key_env": UPSTREAM_ENV},
            {"name": "responses-up", "models": ["to-responses"], "url_openai": f"{mock.url}/v1",
             "openai_preference": "responses", "api_key_env": UPSTREAM_ENV},
        ],
        **top,
    }


ENV = {UPSTREAM_ENV: UPSTREAM_SECRET, CLIENT_ENV: CLIENT_KEY}


@pytest.fixture(scope="module")
def plain(bridge_config: Callable[..., ConfiguredBridge], mock_upstream: MockUpstream,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfiguredBridge]:
    """No client keys; recording (-w) and mitmproxy's most verbose output, to look for keys in them."""
    tmp = tmp_path_factory.mktemp("hardening")
    proc = bridge_config(config(mock_upstream, tmp), env=ENV, fresh_process=True,
                         modes=(f"reverse:http://127.0.0.1:{mock_upstream.port}",),
                         args=["-w", str(tmp / "rec.flow"), "--set", "flow_detail=4"])
    proc.flow_file = tmp / "rec.flow"  # type: ignore[attr-defined]
    proc.bridge_log = tmp / "bridge.log"  # type: ignore[attr-defined]
    yield proc


@pytest.fixture(scope="module")
def keyed(bridge_config: Callable[..., ConfiguredBridge], mock_upstream: MockUpstream,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfiguredBridge]:
    tmp = tmp_path_factory.mktemp("hardening-keyed")
    yield bridge_config(config(mock_upstream, tmp, client_keys_env=[CLIENT_ENV]), env=ENV, fresh_process=True,
                        modes=(f"reverse:http://127.0.0.1:{mock_upstream.port}",))


def body(client: str, model: str, stream: bool = False, text: str = "hi") -> dict[str, Any]:
    if client == "anthropic":
        b: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    elif client == "chat":
        b = {"model": model, "messages": [{"role": "user", "content": text}]}
    else:
        b = {"model": model, "input": text}
    return {**b, "stream": True} if stream else b


def error_message(client: str, data: Any) -> str:
    return str(data["error"]["message"])


def post(proc: ConfiguredBridge, client: str, payload: Any, headers: dict[str, str] | None = None,
         path: str | None = None, **kw: Any) -> httpx.Response:
    hdrs = {"anthropic-version": "2023-06-01"} if client == "anthropic" else {}
    with httpx.Client(base_url=proc.url, timeout=30) as http:
        if not isinstance(payload, dict):  # bytes, or an iterator of them (sent chunked)
            return http.post(path or PATHS[client], content=payload,
                             headers={"content-type": "application/json", **hdrs, **(headers or {})}, **kw)
        return http.post(path or PATHS[client], json=payload, headers={**hdrs, **(headers or {})}, **kw)


# --- 1. the Responses emitter keeps at most max_answer_bytes -------------------------------------

BIG_TEXT = "0123456789abcdef" * (2 * LIMIT // 16)  # 2 MiB: past the 1 MiB limit


def test_a_responses_client_stream_past_the_limit_fails_with_its_error_event(plain, mock) -> None:
    mock.next_reply(Reply(text=BIG_TEXT, piece=16384))
    client = openai.OpenAI(base_url=plain.url + "/v1", api_key="k", max_retries=0)
    events = list(client.responses.create(model="to-chat", input="hi", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert "max_answer_bytes" in (events[-1].response.error.message or "")  # type: ignore[union-attr]
    assert not any(e.type == "response.completed" for e in events)


@pytest.mark.parametrize("client", ["anthropic", "chat"])
def test_other_clients_get_the_whole_long_stream(plain, mock, client: str) -> None:
    """What needs no keeping is not limited: the same 2 MiB stream arrives whole."""
    mock.next_reply(Reply(text=BIG_TEXT, piece=16384))
    if client == "anthropic":
        sdk = anthropic.Anthropic(base_url=plain.url, api_key="k", max_retries=0)
        with sdk.messages.stream(model="to-chat", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
    else:
        oai = openai.OpenAI(base_url=plain.url + "/v1", api_key="k", max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in oai.chat.completions.create(
            model="to-anthropic", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices)
    assert text == BIG_TEXT


# --- 2./5. request bodies: bounded before they are read; no key, no reading ----------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_a_request_over_the_limit_is_a_413_in_the_clients_format(plain, mock, client: str) -> None:
    payload = body(client, MODELS["chat"], text="x" * (LIMIT + 10))
    r = post(plain, client, payload)
    assert r.status_code == 413, r.text[:300]
    assert "max_request_bytes" in error_message(client, r.json())
    assert not mock.requests


def test_a_chunked_request_over_the_limit_is_a_413(plain, mock) -> None:
    data = json.dumps(body("chat", "to-chat", text="y" * (2 * LIMIT))).encode()
    r = post(plain, "chat", iter(data[i:i + 65536] for i in range(0, len(data), 65536)))  # type: ignore[arg-type]
    assert r.status_code == 413 and "max_request_bytes" in r.json()["error"]["message"]
    assert not mock.requests


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_compressed_request_that_expands_past_the_limit_is_a_413(plain, mock, encoding: str) -> None:
    """Issue 12 item 2: a 65 KB zstd request grew RSS by 4 GB."""
    import zstandard
    raw = json.dumps(body("chat", "to-chat", text="z" * (8 * LIMIT))).encode()
    packed = gzip.compress(raw) if encoding == "gzip" else zstandard.ZstdCompressor().compress(raw)
    assert len(packed) < LIMIT // 8
    r = post(plain, "chat", packed, {"content-encoding": encoding})
    assert r.status_code == 413, r.text[:300]
    assert not mock.requests


def test_a_compressed_request_within_the_limit_is_served(plain, mock) -> None:
    mock.next_reply(Reply(text="decoded fine"))
    packed = gzip.compress(json.dumps(body("chat", "to-anthropic")).encode())
    r = post(plain, "chat", packed, {"content-encoding": "gzip"})
    assert r.status_code == 200 and "decoded fine" in r.text
    assert mock.last.json["model"] == "to-anthropic"


def test_an_unknown_content_encoding_is_a_415_and_a_corrupt_one_a_400(plain, mock) -> None:
    r = post(plain, "chat", b"\x00\x01", {"content-encoding": "snappy"})
    assert r.status_code == 415 and "snappy" in r.json()["error"]["message"]
    r = post(plain, "chat", b"this is not gzip", {"content-encoding": "gzip"})
    assert r.status_code == 400 and "not valid gzip" in r.json()["error"]["message"]
    assert not mock.requests


@pytest.mark.parametrize("client", CLIENTS)
def test_without_a_key_the_answer_is_a_401_and_the_body_is_never_forwarded(keyed, mock, client: str) -> None:
    r = post(keyed, client, body(client, "to-chat", text="w" * (LIMIT // 2)))
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert not mock.requests


def _raw_exchange(port: int, head: bytes, body_bytes: int) -> bytes:
    """Send a request head and up to ``body_bytes`` of its body (stopping when the bridge answers or
    closes), then read what came back."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(head)
        chunk = b"b" * 65536
        try:
            for _ in range(body_bytes // len(chunk)):
                s.sendall(chunk)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass  # the bridge stopped reading: it has answered
        try:
            while data := s.recv(65536):
                received += data
        except (ConnectionResetError, TimeoutError):
            pass
    return received


def test_a_huge_body_without_a_key_is_answered_and_closed_without_being_read(keyed, mock) -> None:
    """Issue 12 item 2: a 1 GiB body without a key was read whole (+1.9 GB) before its 401."""
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1073741824\r\n\r\n")
    answer = _raw_exchange(keyed.port, head, 8 * LIMIT)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"client key" in answer
    assert not mock.requests


# --- 3. non-streamed answers are bounded --------------------------------------------------------

@pytest.mark.parametrize(("client", "model"), [("anthropic", "to-chat"), ("chat", "to-chat"),
                                               ("responses", "to-anthropic")])
def test_an_answer_over_the_limit_is_a_502_in_the_clients_format(plain, mock, client: str, model: str) -> None:
    mock.next_reply(Reply(text=BIG_TEXT))
    r = post(plain, client, body(client, model))
    assert r.status_code == 502, r.text[:300]
    assert "max_answer_bytes" in error_message(client, r.json())


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_a_compressed_answer_that_explodes_is_a_502(plain, mock, encoding: str) -> None:
    """Issue 12 item 3: a 1.6 MB gzip answer took the bridge to 3.0 GB."""
    import brotli
    import zstandard
    raw = b'{"id":"x","choices":[{"message":{"content":"' + b"a" * (64 * LIMIT) + b'"}}]}'
    packed = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstandard.ZstdCompressor().compress}[encoding](raw)
    mock.next_reply(Reply(raw_body=packed, headers={"content-type": "application/json", "content-encoding": encoding}))
    r = post(plain, "anthropic", body("anthropic", "to-chat"))
    assert r.status_code == 502 and "max_answer_bytes" in r.json()["error"]["message"], r.text[:300]


def test_a_compressed_stream_that_explodes_ends_with_the_error_event(plain, mock) -> None:
    event = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + b"q" * 1000 + b'"}}]}\n\n'
    packed = gzip.compress(b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
                           + event * 40_000)  # 40 MB in one compressed chunk
    mock.next_reply(Reply(raw_body=packed, headers={"content-type": "text/event-stream",
                                                    "content-encoding": "gzip"}))
    r = post(plain, "anthropic", body("anthropic", "to-chat", stream=True))
    assert r.status_code == 200
    assert r.text.rstrip().endswith("}") and "event: error" in r.text and "expands past" in r.text


# --- 5./6. no key in an answer's headers or error fields ------------------------------------------

ECHO_HEADERS = {"www-authenticate": f'Bearer error="invalid_token", key="{UPSTREAM_SECRET}"',
                "set-cookie": f"session={UPSTREAM_SECRET}; Path=/", "x-echo": f"your key: {UPSTREAM_SECRET}"}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("upstream", ["chat", "anthropic", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_echoing_its_key_in_headers_never_reaches_the_client(plain, mock, client: str, upstream: str,
                                                                          stream: bool) -> None:
    """Issue 12 item 5: every format, translated and pass-through, streamed or not."""
    mock.next_reply(Reply(text="fine", headers=ECHO_HEADERS))
    r = post(plain, client, body(client, MODELS[upstream], stream=stream))
    assert r.status_code == 200, r.text[:300]
    everything = json.dumps(list(r.headers.multi_items())) + r.text
    assert UPSTREAM_SECRET not in everything
    assert "[REDACTED]" in r.headers["x-echo"] and r.headers["set-cookie"].startswith("session=[REDACTED]")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_keeps_its_key_out_of_location(plain, mock, client: str) -> None:
    mock.next_reply(Reply(status=307, raw_body=b"", headers={"location": f"http://127.0.0.1:9/?key={UPSTREAM_SECRET}"}))
    r = post(plain, client, body(client, "to-chat"))
    assert UPSTREAM_SECRET not in json.dumps(list(r.headers.multi_items())) + r.text
    if client != "chat":  # translated: the redirect is the upstream's, a 502 (a Chat client's is passed on)
        assert r.status_code == 502 and "redirect" in error_message(client, r.json())
    else:
        assert r.status_code == 307


@pytest.mark.parametrize("client", CLIENTS)
def test_no_error_field_carries_a_key(plain, mock, client: str) -> None:
    """Issue 12 item 6: a Responses client behind a Chat upstream got the key in param and code."""
    mock.next_reply(Reply(status=400, error_json={"error": {"message": "bad", "type": "invalid_request_error",
                                                            "param": UPSTREAM_SECRET, "code": UPSTREAM_SECRET}}))
    r = post(plain, client, body(client, "to-chat"))
    assert r.status_code == 400 and UPSTREAM_SECRET not in r.text, r.text


def test_nothing_recorded_or_printed_holds_a_key(plain, mock) -> None:
    """Issue 12 item 5: headers and the saved upstream answer in -w flows, and mitmdump's own output at
    flow_detail 4 (every header and body it prints)."""
    mock.next_reply(Reply(text="fine", headers=ECHO_HEADERS))
    post(plain, "anthropic", body("anthropic", "to-anthropic"))
    mock.next_reply(Reply(text=f"the key is {UPSTREAM_SECRET}", headers=ECHO_HEADERS))
    post(plain, "chat", body("chat", "to-chat"))
    mock.next_reply(Reply(status=401, error_message=f"invalid key {UPSTREAM_SECRET}", headers=ECHO_HEADERS))
    post(plain, "responses", body("responses", "to-chat", stream=True))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and plain.log().count("status 401") < 1:
        time.sleep(0.05)
    time.sleep(0.3)  # the -w writer flushes per flow
    recorded = plain.flow_file.read_bytes()  # type: ignore[attr-defined]
    assert recorded and UPSTREAM_SECRET.encode() not in recorded
    assert "[REDACTED]" in plain.log() and UPSTREAM_SECRET not in plain.log()


# --- 7./8. one access rule on every path; client keys go nowhere ----------------------------------

@pytest.mark.parametrize("path", ["/api/generate", "/V1/chat/completions", "/", "/v1/embeddings"])
def test_every_path_needs_the_client_key(keyed, mock, path: str) -> None:
    """Issue 12 item 7: without a key, /api/generate and /V1/chat/completions reached the reverse target."""
    with httpx.Client(base_url=keyed.url, timeout=10) as http:
        r = http.post(path, json={"model": "x"})
    assert r.status_code == 401 and "client key" in r.json()["error"]["message"]
    assert not mock.requests


def test_with_the_key_other_paths_reach_the_reverse_target_without_it(keyed, mock) -> None:
    with httpx.Client(base_url=keyed.url, timeout=10) as http:
        http.post(f"/api/generate?key={CLIENT_KEY}&keep=1", json={"model": "x"},
                  headers={"x-api-key": CLIENT_KEY, "cookie": f"k={CLIENT_KEY}"})
    (rec,) = mock.requests
    assert rec.path == "/api/generate?keep=1"
    assert CLIENT_KEY not in rec.all_header_values


@pytest.mark.parametrize(("client", "model"), [("anthropic", "to-anthropic"), ("anthropic", "to-chat"),
                                               ("chat", "to-chat"), ("responses", "to-anthropic")])
def test_a_client_key_goes_upstream_in_no_header_or_parameter(keyed, mock, client: str, model: str) -> None:
    """Issue 12 item 8: ?key=, &api_key=, api-key, x-goog-api-key, cookie and proxy-authorization."""
    mock.next_reply(Reply(text="ok"))
    headers = {"x-api-key": CLIENT_KEY, "api-key": CLIENT_KEY, "x-goog-api-key": CLIENT_KEY,
               "cookie": f"session={CLIENT_KEY}", "proxy-authorization": f"Bearer {CLIENT_KEY}"}
    r = post(keyed, client, body(client, model), headers, path=f"{PATHS[client]}?key={CLIENT_KEY}&api_key={CLIENT_KEY}")
    assert r.status_code == 200, r.text[:300]
    (rec,) = mock.requests
    assert CLIENT_KEY not in rec.path and CLIENT_KEY not in rec.all_header_values
    assert UPSTREAM_SECRET in rec.all_header_values  # the endpoint's own key went instead


# --- 9. logs stay bounded -------------------------------------------------------------------------

def test_a_logged_body_is_cut_at_the_rotation_size_and_a_rejected_one_is_not_logged(plain, mock) -> None:
    start = len(plain.log())
    mock.next_reply(Reply(text="ok"))
    post(plain, "chat", body("chat", "to-chat", text="L" * (LIMIT // 2)))  # 512 KiB: within the limit
    post(plain, "chat", body("chat", "to-chat", text="R" * (2 * LIMIT)))  # rejected: 413
    plain.wait_for_log("status 413", start)
    log = "".join(p.read_text() for p in plain.bridge_log.parent.glob("bridge.log*"))  # type: ignore[attr-defined]
    assert max(len(line) for line in log.splitlines()) < 64 * 1024 + 500  # logging.max_bytes, and the line's head
    assert "LLLLLLLL" in log and "more bytes]" in log
    assert "RRRRRRRR" not in log


# --- 10. pass-through streams are scrubbed event by event ------------------------------------------

@pytest.mark.parametrize("form", ["plain", "base64"])
def test_a_key_split_across_chunks_of_a_pass_through_stream_is_blanked(plain, mock, form: str) -> None:
    echoed = UPSTREAM_SECRET if form == "plain" else base64.b64encode(UPSTREAM_SECRET.encode()).decode()
    mock.next_reply(Reply(text=f"look: {echoed} !", piece=1000, split=5))  # written 5 bytes at a time
    r = post(plain, "anthropic", body("anthropic", "to-anthropic", stream=True))
    assert r.status_code == 200 and "message_stop" in r.text
    assert echoed not in r.text and "look: [REDACTED] !" in r.text


# --- 11. the smaller items ----------------------------------------------------------------------------

def test_a_model_name_cannot_forge_a_log_line(plain, mock) -> None:
    start = len(plain.log())
    r = post(plain, "chat", body("chat", "to-chat\n2026-12-06 INFO forged | status 200"))
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]
    log = plain.wait_for_log("status 400", start)
    assert not any(line.startswith("2026-12-06 INFO forged") for line in log.splitlines())
    assert not mock.requests


def test_a_model_named_twice_is_a_400_and_goes_nowhere(plain, mock) -> None:
    """Issue 12 item 11: routed on the last, forwarded with both; an upstream keeping the first served a
    model the globs never allowed."""
    raw = b'{"model": "forbidden-model", "messages": [{"role": "user", "content": "hi"}], "model": "to-chat"}'
    r = post(plain, "chat", raw)
    assert r.status_code == 400 and "'model' more than once" in r.json()["error"]["message"]
    assert not mock.requests


@pytest.mark.parametrize(("raw", "needle"), [
    (b'{"model": "to-chat", "temperature": NaN, "messages": []}', "NaN"),
    (b'{"model": "to-chat", "temperature": 1e400, "messages": []}', "range"),
    (b'{"model": "to-chat", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "messages": []}', "deep"),
    (b'{"model": "to-chat\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
], ids=["NaN", "1e400", "deep", "lone surrogate"])
def test_what_json_cannot_carry_is_a_400_before_the_upstream(plain, mock, raw: bytes, needle: str) -> None:
    r = post(plain, "chat", raw)
    assert r.status_code == 400, r.text[:300]
    assert needle in r.json()["error"]["message"]
    assert not mock.requests


@pytest.mark.parametrize("client", ["anthropic", "responses"])
def test_a_non_json_success_from_the_upstream_is_its_fault_not_the_clients(plain, mock, client: str) -> None:
    """Issue 12 item 11: it became a 400 "request body is not valid JSON", blaming the client."""
    mock.next_reply(Reply(raw_body=b"<html>maintenance</html>", headers={"content-type": "text/html"}))
    r = post(plain, client, body(client, "to-chat"))
    assert r.status_code == 502 and "upstream's answer is not valid JSON" in error_message(client, r.json())


def _http10_stream(port: int) -> bytes:
    """A streamed Anthropic request as an HTTP/1.0 client sends it, and all it gets until the close."""
    payload = json.dumps(body("anthropic", "to-chat", stream=True)).encode()
    head = (b"POST /v1/messages HTTP/1.0\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"anthropic-version: 2023-06-01\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n")
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + payload)
        while data := s.recv(65536):
            raw += data
    return raw


def test_an_http_10_client_gets_a_stream_it_can_read(plain, mock) -> None:
    """Issue 12 item 11: HTTP/1.0 clients were sent transfer-encoding: chunked."""
    mock.next_reply(Reply(text="hello old client", piece=100))
    head_part, _, rest = _http10_stream(plain.port).partition(b"\r\n\r\n")
    assert b"200" in head_part.split(b"\r\n")[0]
    assert b"transfer-encoding" not in head_part.lower()
    assert rest.rstrip().endswith(b'data: {"type":"message_stop"}') and b"hello old client" in rest


def test_an_http_10_client_whose_stream_breaks_off_still_gets_the_error_event(plain, mock) -> None:
    """Its body ends when the connection does, so a bare cut would look like a complete answer."""
    mock.next_reply(Reply(text="partial answer " * 20, piece=10, cut_after=4))
    rest = _http10_stream(plain.port).partition(b"\r\n\r\n")[2]
    assert b"message_stop" not in rest
    assert b"event: error" in rest and b"broke off" in rest


def test_a_request_head_that_never_ends_is_cut(plain) -> None:
    """mitmproxy reads a request head without a bound (its own FIXME): 300 MB of one header took 300 MB,
    before any hook (the access rule's included) could run. Now: 431 past 64 KiB, and the connection closes."""
    received = b""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-long: ")
        try:
            for _ in range(200):  # up to 12.5 MiB
                s.sendall(b"a" * 65536)
        except (ConnectionResetError, BrokenPipeError):
            pass
        try:
            while data := s.recv(65536):
                received += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert received.startswith(b"HTTP/1.1 431"), received[:100]


def test_an_upstream_head_that_never_ends_is_a_502_in_the_clients_format(bridge_config, tmp_path) -> None:
    import threading
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-long: ")
                for _ in range(200):
                    conn.sendall(b"b" * 65536)
            except OSError:
                pass  # the bridge closed it: what this test wants
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proc = bridge_config({"endpoints": [{"name": "endless", "url_openai": f"http://127.0.0.1:{port}/v1"}]})
    r = post(proc, "anthropic", body("anthropic", "any-model"))
    thread.join(10)
    server.close()
    assert r.status_code == 502 and r.json()["type"] == "error", r.text[:300]
    assert "head is over" in r.json()["error"]["message"]
