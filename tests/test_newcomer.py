"""A newcomer's first hour (issue 14): what ./bridge.sh does when followed literally.

Each test runs the real script or mitmdump as a subprocess on loopback: the reverse target ``run``
derives from the config, the probes a client sends before its first request, ``record`` writing
outside the fixtures, ``check`` from another directory, and replaying without the upstream's key.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ConfiguredBridge, free_ports
from tests.mock_upstream import MockUpstream, Reply

BRIDGE_SH = ROOT / "bridge.sh"


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int, Path]]]:
    """``./bridge.sh CMD …`` on a free port with its own confdir; stopped with Ctrl-C (SIGINT)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
        port = free_ports(1)[0]
        log = tmp_path / f"out-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(BRIDGE_SH), *args, "--listen-port", str(port), "--set",
                                     f"confdir={tmp_path / 'confdir'}"], cwd=tmp_path, stdout=out,
                                    stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        started.append(proc)
        wait_port(port, proc)
        return proc, port, log

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)


def test_run_takes_its_reverse_target_from_the_config(script, tmp_path: Path, mock: MockUpstream) -> None:
    """Item 1: the banner named 127.0.0.1:11434 whatever the config said."""
    config = tmp_path / "mine.yaml"
    config.write_text(f"endpoints:\n  - name: m\n    url_openai: {mock.url}/v1\n")
    _, port, _ = script("run", "--set", f"bridge_config={config}")
    with httpx.Client(timeout=10) as http:
        r = http.post(f"http://127.0.0.1:{port}/api/generate", json={"model": "x"})  # not an API the bridge has
        assert r.status_code == 404 and mock.last.path == "/api/generate"  # it went to the config's server
        # and the bridge is loaded (a script option given twice once kept mitmproxy from loading it at all)
        assert http.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path"), [("HEAD", "/api/hello"), ("GET", "/health"), ("GET", "/healthz")])
def test_what_clients_probe_is_answered_here(bridge_config: Callable[..., ConfiguredBridge], method: str,
                                            path: str) -> None:
    """Item 1: Claude Code's HEAD /api/hello went to the reverse target (a connection error each start);
    GET /health got mitmproxy's HTML 502."""
    dead = free_ports(1)[0]
    proc = bridge_config({"endpoints": [{"name": "e", "url_openai": f"http://127.0.0.1:{dead}/v1"}]},
                         modes=(f"reverse:http://127.0.0.1:{dead}",))
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        r = http.request(method, path)
    assert r.status_code == 200  # nothing listens at the reverse target: the bridge answered
    assert r.content == (b"" if method == "HEAD" else b'{"status":"ok"}')


def test_record_writes_outside_the_fixtures(script, tmp_path: Path, mock: MockUpstream) -> None:
    """Item 4: recordings went into flows/, which the replay tests read and git tracks."""
    name = f"newcomer-test-{os.getpid()}"
    target = ROOT / "recordings" / f"{name}.flow"
    config = tmp_path / "mine.yaml"
    config.write_text(f"endpoints:\n  - name: m\n    url_openai: {mock.url}/v1\n")
    try:
        proc, port, _ = script("record", name, "--set", f"bridge_config={config}")
        mock.next_reply(Reply(text="recorded"))
        with httpx.Client(timeout=10) as http:
            r = http.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        assert target.exists() and target.stat().st_size > 0
        assert not (ROOT / "flows" / f"{name}.flow").exists()
        ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=ROOT)
        assert ignored.returncode == 0, "recordings/ must be ignored by git"
    finally:
        target.unlink(missing_ok=True)


def test_check_runs_from_any_directory(tmp_path: Path) -> None:
    """Item 8: python -m addon.check worked only from the repo root with .venv/bin/python."""
    (tmp_path / "mine.yaml").write_text("endpoints:\n  - name: m\n    url_openai: http://127.0.0.1:9/v1\n")
    proc = subprocess.run([str(BRIDGE_SH), "check", "mine.yaml", "--offline"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "m " in proc.stdout and "checks, all passed" in proc.stdout


def test_replaying_needs_no_upstream_key(bridge_config: Callable[..., ConfiguredBridge], mock: MockUpstream) -> None:
    """Item 9: --server-replay refused to start: environment variable MOCK_API_KEY is not set."""
    config = {"endpoints": [{"name": "mock-chat", "url_openai": "http://127.0.0.1:18301/v1",
                             "api_key_env": "NEWCOMER_UNSET_KEY_VAR", "models": ["claude-*"]}]}
    assert "NEWCOMER_UNSET_KEY_VAR" not in os.environ
    proc = bridge_config(config, fresh_process=True, args=[
        "--server-replay", str(ROOT / "flows" / "anthropic-to-chat.flow"), "--set", "server_replay_reuse=true",
        "--set", "server_replay_ignore_content=true", "--set", "server_replay_ignore_port=true",
        "--set", "server_replay_extra=404"])
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        r = http.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                      json={"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                            "messages": [{"role": "user", "content": "Say hello."}]})
    assert r.status_code == 200 and "message_stop" in r.text
    assert "NEWCOMER_UNSET_KEY_VAR not set" in proc.log()
    # item 13: the recorded answer's usage is read, not "tokens ?"
    line = next(ln for ln in proc.wait_for_log("status 200").splitlines() if "status 200" in ln)
    assert "tokens 100/20" in line, line


def test_time_to_first_byte_never_exceeds_the_duration(bridge_config: Callable[..., ConfiguredBridge],
                                                       mock: MockUpstream) -> None:
    """Item 13: `first byte` was counted from the request's first byte, the total from the hook."""
    proc = bridge_config({"endpoints": [{"name": "m", "url_openai": f"{mock.url}/v1"}]})
    for _ in range(3):
        mock.next_reply(Reply(text="x" * 50, piece=5))
        start = len(proc.log())
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            http.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                      content=b'{"model": "m", "max_tokens": 5, "stream": true, "messages": ['
                              + b'{"role": "user", "content": "' + b"y" * 200_000 + b'"}]}')
        line = next(ln for ln in proc.wait_for_log("status 200", start).splitlines() if "status 200" in ln)
        first, total = (int(n) for n in re.search(r"first byte (\d+) ms \| (\d+) ms", line).groups())  # type: ignore
        assert first <= total, line


def test_models_lists_something_useful_for_the_shipped_config(bridge_config: Callable[..., ConfiguredBridge],
                                                             mock: MockUpstream) -> None:
    """Item 13: /v1/models was [] when `models` held only globs (the shipped config has no `models` at
    all, only rewrites): the model the rewrites name is listed, since a client may ask for it too."""
    proc = bridge_config((ROOT / "config.yaml").read_text().replace("http://127.0.0.1:11434", mock.url))
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        listed = http.get("/v1/models").json()
    assert [m["id"] for m in listed["data"]] == ["qwen3-coder"]


def test_the_console_shows_the_bridges_line_per_request(script, tmp_path: Path, mock: MockUpstream) -> None:
    """Item 7: the bridge's line drowned among mitmproxy's (connect, disconnect, `<< 200 OK (content
    missing)`); a failure's line said `status 404` without the upstream's words; body logs had no id."""
    config = tmp_path / "mine.yaml"
    config.write_text(f"logging: {{log_request_body: truncated}}\nendpoints:\n  - name: m\n"
                      f"    url_openai: {mock.url}/v1\n")
    _, port, log = script("run", "--set", f"bridge_config={config}")
    mock.next_reply(Reply(text="fine"))
    mock.next_reply(Reply(status=404, error_message="The model `m2` does not exist"))
    with httpx.Client(timeout=10) as http:
        for model in ("m", "m2"):
            http.post(f"http://127.0.0.1:{port}/v1/messages", headers={"anthropic-version": "2023-06-01"},
                      json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    deadline = time.monotonic() + 10
    while "status 404" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log.read_text()
    assert "client connect" not in text and "server disconnect" not in text and "<< 200" not in text
    lines = [ln for ln in text.splitlines() if "format conversion anthropic → chat" in ln]
    assert len(lines) == 2, text
    assert "status 404" in lines[1] and "The model `m2` does not exist" in lines[1]
    req = re.search(r"\| req ([0-9a-f-]{8})$", lines[0]).group(1)  # type: ignore[union-attr]
    assert f"request body from the client (anthropic) [req {req}]" in text
