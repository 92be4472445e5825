"""Logging steered from config: level, bodies (none / truncated / full) with secrets redacted, a
rotating file, and the one-line-per-request summary that says "format conversion"."""

from __future__ import annotations

import time
from pathlib import Path

import anthropic
import pytest

from addon.config import ConfigError, load_config
from addon.logconfig import TRUNCATE_AT, BodyRecorder, body_for_log, clean
from addon.redact import Redactor
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.mock_upstream import Reply


def test_redactor_hides_configured_keys_and_key_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "plain-secret-value")
    redact = Redactor.from_env(["MY_KEY", "UNSET_ONE"])
    text = 'x plain-secret-value y sk-ant-fake_test_key_abcdefgh z "Bearer abc.def-ghi_jkl0123" sk-short'
    out = redact(text)
    assert "plain-secret-value" not in out and "sk-ant-fake" not in out and "abc.def-ghi_jkl" not in out
    assert out.count("[REDACTED]") == 3 and "sk-short" in out  # too short to be a key


@pytest.mark.parametrize(("mode", "expect"), [("none", None), ("full", "x" * 5000)])
def test_body_modes(mode: str, expect: str | None) -> None:
    assert body_for_log(b"x" * 5000, mode, Redactor(), 10_000) == expect


def test_truncated_body_says_how_much_was_cut() -> None:
    text = body_for_log("é".encode() * 3000, "truncated", Redactor(), 10_000)
    assert text is not None and text.startswith("é" * TRUNCATE_AT) and text.endswith("[1000 more characters]")


def test_a_full_body_is_cut_at_the_rotation_size() -> None:
    """Issue 12 item 9: a 1 GiB body once became one 1 GiB log record; a record never outgrows a file."""
    text = body_for_log(b"y" * 50_000, "full", Redactor(), 4096)
    assert text is not None and text == "y" * 4096 + "… [45904 more bytes]"


def test_recorder_keeps_at_most_its_limit_and_says_what_it_dropped() -> None:
    rec = BodyRecorder(TRUNCATE_AT * 4)
    for _ in range(10_000):
        rec.add(b"0123456789")
    body = rec.body()
    assert body.startswith(b"0123456789" * 800) and body.endswith(b"[92000 more bytes not kept]\n\n")
    whole = BodyRecorder(100)
    whole.add([b"a", b"b"])
    assert whole.body() == b"ab" and whole.dropped == 0


@pytest.mark.parametrize(("text", "expect"), [
    ("claude\n2026-12-06 INFO forged line", "claude\\n2026-12-06 INFO forged line"),
    ("a\r\x1b[31mred\u2028b", "a\\r\\x1b[31mred\\u2028b"),
    ("plain-model-name", "plain-model-name"),
])
def test_a_peers_text_cannot_forge_a_log_line(text: str, expect: str) -> None:
    assert clean(text) == expect and "\n" not in clean(text)


def test_a_peers_text_in_a_log_line_is_bounded() -> None:
    assert clean("m" * 1000, 300) == "m" * 300 + "… [700 more]"


@pytest.mark.parametrize(("text", "message"), [
    ("logging: {level: loud}", "logging.level: must be one of debug, info, warning, error"),
    ("logging: {log_request_body: some}", "logging.log_request_body: must be one of none, truncated, full"),
    ("logging: {colour: red}", "logging.colour: unknown key"),
    ("logging: {max_bytes: 0}", "logging.max_bytes: must be a positive integer"),
])
def test_logging_config_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1/v1\n{text}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path), environ={})
    assert message in str(e.value) and str(e.value).startswith(str(path))


def test_log_file_is_relative_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1/v1\nlogging: {file: logs/b.log}\n")
    assert load_config(str(path), environ={}).logging.file == str(tmp_path / "logs" / "b.log")


def _wait_for(path: Path, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = "".join(p.read_text(errors="replace") for p in sorted(path.parent.glob(path.name + "*")))
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged in {path}")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_full_body_logging_with_keys_redacted(bridge_config, mocks, tmp_path: Path, stream: bool) -> None:
    a, _, _ = mocks
    log = tmp_path / f"bridge-{stream}.log"
    proc = bridge_config({
        "client_keys_env": ["BRIDGE_TEST_CLIENT_KEY"],
        "logging": {"level": "info", "log_request_body": "full", "log_response_body": "full", "file": str(log)},
        "endpoints": [{"name": "chat-up", "url_openai": f"{a.url}/v1", "api_key_env": UPSTREAM_KEY_ENV}]},
        env={"BRIDGE_TEST_CLIENT_KEY": "ck-logging-7a1f9e"})
    a.next_reply(Reply(text="Logged answer ✓"))
    client = anthropic.Anthropic(base_url=proc.url, api_key="ck-logging-7a1f9e", max_retries=0)
    question = f"Please log this question {stream} sk-ant-fake_test_key_pretend0001"
    kwargs = {"model": "claude-log", "max_tokens": 30, "messages": [{"role": "user", "content": question}]}
    if stream:
        with client.messages.stream(**kwargs) as s:  # type: ignore[arg-type]
            assert s.get_final_message().content[0].text == "Logged answer ✓"
    else:
        assert client.messages.create(**kwargs).content[0].text == "Logged answer ✓"  # type: ignore[arg-type]

    text = _wait_for(log, "format conversion anthropic → chat")
    text = _wait_for(log, "response " + ("stream" if stream else "body") + " to the client")
    assert "request body from the client (anthropic)" in text and "request body to the upstream (chat)" in text
    assert f"Please log this question {stream}" in text  # the request body, as sent
    # the response, logged once the stream had ended: the events as the client got them (text deltas)
    pieces = ["Logg", "ed a", "nswe"] if stream else ["Logged answer ✓"]
    assert all(piece in text for piece in pieces)
    assert "ck-logging-7a1f9e" not in text and UPSTREAM_KEY not in text and "pretend0001" not in text
    assert "[REDACTED]" in text
    summary = next(line for line in text.splitlines() if "format conversion anthropic → chat" in line)
    assert "endpoint chat-up" in summary and "status 200" in summary and "model claude-log" in summary


def test_log_file_rotates_by_size(bridge_config, mocks, tmp_path: Path) -> None:
    a, _, _ = mocks
    log = tmp_path / "rotating.log"
    proc = bridge_config({"logging": {"log_request_body": "full", "file": str(log), "max_bytes": 2000, "backups": 2},
                          "endpoints": [{"name": "up", "url_openai": f"{a.url}/v1"}]})
    client = anthropic.Anthropic(base_url=proc.url, api_key="x", max_retries=0)
    for i in range(6):
        a.next_reply(Reply(text=f"answer {i}"))
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "y" * 600}])
    _wait_for(log, "format conversion")
    rotated = sorted(p.name for p in tmp_path.glob("rotating.log*"))
    assert rotated == ["rotating.log", "rotating.log.1", "rotating.log.2"]
    assert all(p.stat().st_size <= 2000 + 2500 for p in tmp_path.glob("rotating.log*"))


def test_a_local_answer_says_so_in_mitmwebs_list() -> None:
    """Issue 14, item 13: the /v1/models flow read `anthropic → - · - · - · 200 · tokens ?`."""
    from mitmproxy.test import tflow

    from addon.flowlog import log_flow
    f = tflow.tflow(resp=True)
    log_flow(f, {"client_format": "anthropic", "operation": "models", "mode": "local"}, 200, None, time.monotonic())
    assert f.comment == "anthropic · models · local · 200"
