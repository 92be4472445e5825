"""The endpoint self-test, ``python -m addon.check``: run as a subprocess and through ``main``, against
local mock upstreams (all good, a dual-URL endpoint, the Codex backend), an upstream answering in the
wrong format, a refused connection, a silent one, an upstream 401, and config mistakes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from addon.check import Row, main, pick_model, table
from addon.config import Endpoint
from tests import mock_upstream as mu
from tests.conftest import free_ports
from tests.mock_upstream import MockUpstream, Reply, ToolCallSpec

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "CHECK_TEST_KEY"
KEY = "sk-check-SECRET-4711"


def run_check(config: Path, *args: str, env: dict[str, str] | None = None,
              unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in {**os.environ, KEY_ENV: KEY, **(env or {})}.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "addon.check", str(config), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path, *endpoints: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"endpoints": list(endpoints)}))  # JSON is YAML
    return path


def rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """The table as {(endpoint, check): [result, http, latency, detail]}, parsed by the header's columns."""
    lines = stdout.splitlines()
    head = lines[0]
    starts = [head.index(h) for h in ("ENDPOINT", "CHECK", "RESULT", "HTTP", "LATENCY", "DETAIL")]
    out = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        out[(cells[0], cells[1])] = cells[2:]
    return out


def refused_port() -> int:
    return free_ports(1)[0]  # nothing listens there


class _ForeignHandler(BaseHTTPRequestHandler):
    """Answers every POST in one fixed format, whatever the path: an upstream of the wrong kind."""

    protocol_version = "HTTP/1.1"
    server: _ForeignServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(404, "application/json", b'{"error": "not found"}')

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        reply, fmt = Reply(text="OK."), self.server.fmt
        if request.get("stream"):
            events = {"anthropic": lambda: mu.anthropic_events(reply), "chat": lambda: mu.chat_events(reply, True),
                      "responses": lambda: mu.responses_events(reply)}[fmt]()
            self._send(200, "text/event-stream", b"".join(events))
        else:
            body = {"anthropic": mu.anthropic_body, "chat": mu.chat_body, "responses": mu.responses_body}[fmt](reply)
            self._send(200, "application/json", json.dumps(body).encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ForeignServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        super().__init__(("127.0.0.1", 0), _ForeignHandler)


@pytest.fixture
def foreign() -> Iterator[Callable[[str], str]]:
    """Factory: ``foreign("chat")`` starts a server answering Chat JSON/SSE to every POST; returns its URL."""
    servers: list[_ForeignServer] = []

    def start(fmt: str) -> str:
        server = _ForeignServer(fmt)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def dual(mock: MockUpstream, **extra: Any) -> dict[str, Any]:
    return {"name": "dual", "url_anthropic": mock.url, "url_openai": f"{mock.url}/v1", "api_key_env": KEY_ENV, **extra}


# --- all good -------------------------------------------------------------------------------------


def test_dual_url_endpoint_passes_every_format_streamed_and_not(mock: MockUpstream, tmp_path: Path) -> None:
    config = write_config(tmp_path, dual(mock, models=["claude-*", "my-model"]))
    run = run_check(config)

    assert run.returncode == 0, run.stdout + run.stderr
    table_rows = rows(run.stdout)
    for check in ("config", "key", "reachable chat", "chat", "chat stream", "reachable anthropic", "anthropic",
                  "anthropic stream"):
        assert table_rows[("dual", check)][0] == "OK", (check, run.stdout)
    assert table_rows[("dual", "key")][3] == f"{KEY_ENV} is set"
    assert table_rows[("dual", "config")][3] == "offers chat, anthropic"
    for check in ("chat", "chat stream", "anthropic", "anthropic stream"):
        _, status, latency, detail = table_rows[("dual", check)]
        assert status == "200" and latency.endswith(" ms")
        assert detail.startswith('my-model: "Hello from the mock."'), detail  # the first literal `models` entry
    assert "first byte" in table_rows[("dual", "chat stream")][3]
    assert run.stdout.rstrip().endswith("8 checks, all passed")
    assert KEY not in run.stdout + run.stderr

    # What went upstream: the bridge's own rendering, headers and key, one tool, a small max_tokens.
    chat, chat_stream, anth, anth_stream = mock.requests
    assert [r.path for r in mock.requests] == ["/v1/chat/completions"] * 2 + ["/v1/messages"] * 2
    assert chat.headers["authorization"] == f"Bearer {KEY}" and "x-api-key" not in chat.headers
    assert anth.headers["x-api-key"] == KEY and anth.headers["anthropic-version"] == "2023-06-01"
    assert chat.json["max_completion_tokens"] == 16 and anth.json["max_tokens"] == 16
    assert chat.json["messages"] == [{"role": "user", "content": "Say OK."}]
    assert [t["function"]["name"] for t in chat.json["tools"]] == ["get_time"]
    assert [t["name"] for t in anth.json["tools"]] == ["get_time"]
    assert anth.json["tools"][0]["input_schema"]["required"] == ["timezone"]
    assert "stream" not in chat.json and "stream" not in anth.json
    assert chat_stream.json["stream"] is True and anth_stream.json["stream"] is True


def test_rewrite_headers_and_tool_call_answers(mock: MockUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    ep = {"name": "local", "url_openai": f"{mock.url}/v1", "headers": {"x-team": "blue"},
          "drop_params": ["max_completion_tokens"],
          "model_rewrite": {"rules": [{"source_pattern": "gpt-*", "target_model": "qwen3-coder"}]}}
    call = ToolCallSpec("call_1", "get_time", {"timezone": "UTC"})
    mock.next_reply(text=None, tool_calls=[call])
    mock.next_reply(text=None, tool_calls=[call])

    assert main([str(write_config(tmp_path, ep)), "--model", "gpt-5-mini"]) == 0  # in process
    out = capsys.readouterr().out
    table_rows = rows(out)
    assert table_rows[("local", "chat")][3] == "qwen3-coder: tool call get_time (tool_calls)"
    assert table_rows[("local", "chat stream")][3].startswith("qwen3-coder: tool call get_time (tool_calls)")
    assert table_rows[("local", "key")][3] == "none needed (no api_key_env)"
    for rec in mock.requests:
        assert rec.json["model"] == "qwen3-coder" and rec.headers["x-team"] == "blue"
        assert "authorization" not in rec.headers
        assert "max_completion_tokens" not in rec.json  # drop_params applies, as to translated requests


def test_codex_backend_endpoint_passes(mock: MockUpstream, tmp_path: Path) -> None:
    ep = {"name": "codex", "url_codex": f"{mock.url}/backend-api/codex", "api_key_env": KEY_ENV,
          "headers": {"chatgpt-account-id": "acct-1"}}
    run = run_check(write_config(tmp_path, ep))

    assert run.returncode == 0, run.stdout + run.stderr
    table_rows = rows(run.stdout)
    assert table_rows[("codex", "responses/codex folded")][:2] == ["OK", "200"]  # the backend only streams
    assert table_rows[("codex", "responses/codex stream")][:2] == ["OK", "200"]
    assert len(mock.requests) == 2
    for rec in mock.requests:  # the mock refuses (400) whatever the real backend refuses
        assert rec.path == mu.CODEX_PATH
        assert rec.json["store"] is False and rec.json["stream"] is True and rec.json["instructions"]
        assert "max_output_tokens" not in rec.json
        assert rec.headers["authorization"] == f"Bearer {KEY}" and rec.headers["chatgpt-account-id"] == "acct-1"
    assert KEY not in run.stdout + run.stderr


def test_responses_endpoint_passes(mock: MockUpstream, tmp_path: Path) -> None:
    ep = {"name": "resp", "url_openai": f"{mock.url}/v1", "openai_preference": "responses"}
    run = run_check(write_config(tmp_path, ep))
    assert run.returncode == 0, run.stdout + run.stderr
    assert {k[1] for k, v in rows(run.stdout).items() if v[0] == "OK"} >= {"responses", "responses stream"}
    assert [r.path for r in mock.requests] == ["/v1/responses"] * 2
    assert mock.requests[0].json["max_output_tokens"] == 16 and mock.requests[0].json["store"] is False


def test_gemini_endpoint_passes(mock: MockUpstream, tmp_path: Path) -> None:
    """A ``url_gemini`` endpoint: asked in its own format at its own path, the key in ``x-goog-api-key``."""
    mock.gemini_api_key = KEY
    ep = {"name": "gem", "url_gemini": mock.url, "api_key_env": KEY_ENV}
    run = run_check(write_config(tmp_path, ep))
    assert run.returncode == 0, run.stdout + run.stderr
    assert {k[1] for k, v in rows(run.stdout).items() if v[0] == "OK"} >= {"gemini", "gemini stream"}, run.stdout
    assert [r.path for r in mock.requests] == ["/v1beta/models/gemini-2.5-flash:generateContent",
                                               "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"]
    assert all(r.headers["x-goog-api-key"] == KEY and "authorization" not in r.headers for r in mock.requests)
    assert KEY not in run.stdout + run.stderr


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("expected", "answered", "url_key"), [
    ("anthropic", "chat", "url_anthropic"), ("chat", "anthropic", "url_openai"), ("responses", "chat", "url_openai"),
    ("chat", "responses", "url_openai"),
])
def test_an_upstream_answering_in_another_format_fails(foreign: Callable[[str], str], tmp_path: Path,
                                                       expected: str, answered: str, url_key: str) -> None:
    base = foreign(answered)
    ep = {"name": "odd", url_key: base if url_key == "url_anthropic" else f"{base}/v1",
          "openai_preference": "responses" if expected == "responses" else "chat_completions"}
    run = run_check(write_config(tmp_path, ep))

    assert run.returncode == 1, run.stdout + run.stderr
    table_rows = rows(run.stdout)
    assert table_rows[("odd", f"reachable {expected}")][0] == "OK"
    for check in (expected, f"{expected} stream"):
        result, status, _, detail = table_rows[("odd", check)]
        assert (result, status) == ("FAIL", "200") and detail.startswith(f"answer is not {expected}:"), detail
    assert run.stdout.rstrip().endswith("2 of 5 checks failed")


def test_refused_connection_fails_reachability_and_skips_the_format_checks(mock: MockUpstream, tmp_path: Path) -> None:
    port = refused_port()
    ep = {"name": "dual", "url_anthropic": mock.url, "url_openai": f"http://127.0.0.1:{port}/v1"}
    run = run_check(write_config(tmp_path, ep))

    assert run.returncode == 1, run.stdout + run.stderr
    table_rows = rows(run.stdout)
    assert table_rows[("dual", "reachable chat")][0] == "FAIL"
    assert table_rows[("dual", "reachable chat")][3] == (f"http://127.0.0.1:{port}/v1: connection refused; "
                                                         "chat checks skipped")
    assert ("dual", "chat") not in table_rows and ("dual", "chat stream") not in table_rows
    assert table_rows[("dual", "anthropic")][0] == table_rows[("dual", "anthropic stream")][0] == "OK"


def test_a_silent_upstream_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        ep = {"name": "slow", "url_openai": f"http://127.0.0.1:{listener.getsockname()[1]}/v1"}
        run = run_check(write_config(tmp_path, ep), "--timeout", "0.3")
    assert run.returncode == 1
    assert rows(run.stdout)[("slow", "reachable chat")][3].endswith("timeout after 0.3 s; chat checks skipped")


def test_upstream_401_shows_status_and_message_and_never_the_key(mock: MockUpstream, tmp_path: Path) -> None:
    for _ in range(2):  # an upstream echoing (part of) the key, as some do
        mock.next_reply(status=401, error_message=f"invalid x-api-key {KEY}")
    run = run_check(write_config(tmp_path, dual(mock)), "--endpoint", "dual")

    assert run.returncode == 1, run.stdout + run.stderr
    table_rows = rows(run.stdout)
    for check in ("chat", "chat stream"):
        assert table_rows[("dual", check)][:2] == ["FAIL", "401"]
        assert table_rows[("dual", check)][3] == "invalid x-api-key ***"
    assert table_rows[("dual", "anthropic")][0] == "OK"  # the queue is empty again: default replies
    assert KEY not in run.stdout + run.stderr


def test_an_error_inside_the_stream_fails(mock: MockUpstream, tmp_path: Path) -> None:
    mock.next_reply()  # non-streamed: fine
    mock.next_reply(error_after=2, error_message="the model is overloaded")
    ep = {"name": "a", "url_anthropic": mock.url}
    run = run_check(write_config(tmp_path, ep))
    assert run.returncode == 1
    assert rows(run.stdout)[("a", "anthropic stream")][::3] == ["FAIL", "error in the answer: the model is overloaded"]


def test_missing_env_var_is_a_config_error(tmp_path: Path) -> None:
    ep = {"name": "a", "url_anthropic": "http://127.0.0.1:9", "api_key_env": "CHECK_TEST_UNSET_VAR"}
    run = run_check(write_config(tmp_path, ep), unset=("CHECK_TEST_UNSET_VAR",))
    assert run.returncode == 2
    assert "environment variable CHECK_TEST_UNSET_VAR is not set" in run.stderr
    assert run.stdout == ""


def test_empty_key_fails_the_key_check(tmp_path: Path) -> None:
    ep = {"name": "a", "url_anthropic": "http://127.0.0.1:9", "api_key_env": KEY_ENV}
    run = run_check(write_config(tmp_path, ep), "--offline", env={KEY_ENV: ""})
    assert run.returncode == 1
    assert rows(run.stdout)[("a", "key")] == ["FAIL", "", "", f"{KEY_ENV} is empty"]


def test_bad_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("endpoints:\n  - name: a\n    url_openai: localhost:11434\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "endpoints[0].url_openai: must be an http(s) base URL" in err


def test_offline_checks_only_the_config(mock: MockUpstream, tmp_path: Path) -> None:
    config = write_config(tmp_path, dual(mock), {"name": "gone", "url_openai": f"http://127.0.0.1:{refused_port()}/v1"})
    run = run_check(config, "--offline")

    assert run.returncode == 0, run.stdout + run.stderr
    assert set(rows(run.stdout)) == {("dual", "config"), ("dual", "key"), ("gone", "config"), ("gone", "key")}
    assert mock.requests == []
    assert KEY not in run.stdout


def test_endpoint_option_limits_the_check(mock: MockUpstream, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"name": "good", "url_anthropic": mock.url},
                          {"name": "gone", "url_openai": f"http://127.0.0.1:{refused_port()}/v1"})
    run = run_check(config, "--endpoint", "good")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {k[0] for k in rows(run.stdout)} == {"good"}

    assert run_check(config).returncode == 1  # without it the refused endpoint fails

    unknown = run_check(config, "--endpoint", "nope")
    assert unknown.returncode == 2
    assert "no endpoint named 'nope'" in unknown.stderr and "good, gone" in unknown.stderr


# --- pure helpers ---------------------------------------------------------------------------------


def endpoint(url_key: str, **fields: Any) -> Endpoint:
    return Endpoint(name="a", urls=((url_key, "http://x"),), **fields)


def test_pick_model() -> None:
    assert pick_model(endpoint("url_anthropic"), "anthropic", None) == "claude-haiku-4-5"
    assert pick_model(endpoint("url_openai"), "chat", None) == "gpt-5-mini"
    assert pick_model(endpoint("url_codex"), "responses", "codex") == "gpt-5.5"
    ep = endpoint("url_openai", models=("gpt-*", "qwen3", "llama"), rewrite=(("claude-*", "q"),))
    assert pick_model(ep, "chat", None) == "qwen3"
    assert pick_model(ep, "chat", None, override="m") == "m"
    assert pick_model(endpoint("url_openai", models=("c-*",), rewrite=(("c-*", "q"),)),
                      "chat", None) == "q"


def test_table_layout() -> None:
    text = table([Row("ep", "chat", True, "fine", 200, 12), Row("endpoint-2", "chat stream", False, "boom", 401, 1234)])
    assert text.splitlines() == [
        "ENDPOINT    CHECK        RESULT  HTTP  LATENCY  DETAIL",
        "ep          chat         OK       200    12 ms  fine",
        "endpoint-2  chat stream  FAIL     401  1234 ms  boom",
        "",
        "1 of 2 checks failed",
    ]
