"""The Codex CLI itself, through a real mitmdump running the bridge, against Anthropic, Chat and Gemini upstreams.

Codex speaks only the Responses API. With its default model it sends its tools as ``namespace`` tools
in an ``additional_tools`` input item and reaches the shell through a freeform JavaScript tool,
``exec``; with ``-m gpt-5.5`` it sends flat tools and a JSON ``exec_command``. Both must work. Needs
the ``codex`` binary: ``CODEX_BIN``, or ``.tmp/codex/node_modules/.bin/codex`` (``.ci/run`` installs
it); skipped without it unless ``BRIDGE_REQUIRE_CLIENTS=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, UPSTREAM_KEY, require_cli
from tests.mock_upstream import Reply, ToolCallSpec, gemini_signature

CODEX = Path(os.environ.get("CODEX_BIN") or ROOT / ".tmp/codex/node_modules/.bin/codex")
COMMAND = "echo bridge-ok > proof.txt && cat proof.txt"
# The default model's shell: JavaScript for Codex's `exec` tool, calling its nested exec_command.
EXEC_JS = f"const r = await tools.exec_command({{cmd: {json.dumps(COMMAND)}}});\ntext(r);"


@pytest.fixture
def codex() -> Path:
    return require_cli(CODEX, "Codex CLI", "@openai/codex")


def run_codex(codex: Path, base_url: str, tmp_path: Path, model: str | None) -> tuple[list[dict], str, Path]:
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(f'''model_provider = "bridge"
approval_policy = "never"
sandbox_mode = "danger-full-access"
[analytics]
enabled = false
[model_providers.bridge]
name = "bridge"
base_url = "{base_url}/v1"
env_key = "BRIDGE_CLIENT_KEY"
wire_api = "responses"
''')
    last = tmp_path / "last.txt"
    args = [str(codex), "exec", "--skip-git-repo-check", "--json", "-o", str(last)]
    args += ["-m", model] if model else []
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home), "BRIDGE_CLIENT_KEY": "client-key"}
    run = subprocess.run([*args, "Write bridge-ok to proof.txt with a shell command."], cwd=work, env=env,
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return events, last.read_text() if last.exists() else "", work


@pytest.mark.parametrize("model", [None, "gpt-5.5"], ids=["default-model", "gpt-5.5"])
@pytest.mark.parametrize("upstream", ["anthropic", "chat"])
def test_codex_runs_a_shell_command(codex: Path, mock, bridge, tmp_path: Path, upstream: str,
                                    model: str | None) -> None:
    proc = bridge(upstream)
    call = (ToolCallSpec("call_cx1", "exec", {"input": EXEC_JS}) if model is None
            else ToolCallSpec("call_cx1", "exec_command", {"cmd": COMMAND}))
    mock.next_reply(Reply(text=None, reasoning="I should run the command.", signature="sig-codex-1",
                          tool_calls=[call]))
    mock.next_reply(Reply(text="Done: the file says bridge-ok."))
    events, last, work = run_codex(codex, proc.url, tmp_path, model)

    assert any(e["type"] == "turn.completed" for e in events), events
    assert not any(e["type"] == "turn.failed" for e in events), events
    assert last.strip() == "Done: the file says bridge-ok."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran

    first, second = mock.requests[-2:]
    for rec in (first, second):
        assert UPSTREAM_KEY in rec.all_header_values and "client-key" not in rec.all_header_values
    if upstream == "anthropic":
        assert second.path.startswith("/v1/messages")
        tools = {t["name"]: t for t in first.json["tools"]}
        assistant, results = second.json["messages"][-2:]
        thinking = [b for b in assistant["content"] if b["type"] == "thinking"]
        assert thinking == [{"type": "thinking", "thinking": "I should run the command.", "signature": "sig-codex-1"}]
        calls = [b for b in assistant["content"] if b["type"] == "tool_use"]
        assert [(c["id"], c["name"]) for c in calls] == [("call_cx1", call.name)]
        result = next(b for b in results["content"] if b["type"] == "tool_result")
        assert result["tool_use_id"] == "call_cx1"
        assert "bridge-ok" in json.dumps(result["content"])
    else:
        assert second.path.startswith("/v1/chat/completions")
        tools = {t["function"]["name"]: t["function"] for t in first.json["tools"]}
        assistant = next(m for m in second.json["messages"] if m["role"] == "assistant")
        assert assistant["reasoning_content"] == "I should run the command."
        assert [(c["id"], c["function"]["name"]) for c in assistant["tool_calls"]] == [("call_cx1", call.name)]
        result = next(m for m in second.json["messages"] if m["role"] == "tool")
        assert result["tool_call_id"] == "call_cx1" and "bridge-ok" in result["content"]
    assert call.name in tools
    if model is None:  # the freeform tool travels as a function with one string argument
        schema = tools["exec"].get("input_schema") or tools["exec"].get("parameters")
        assert schema["required"] == ["input"]


def test_codex_fails_fast_with_the_documented_retry_settings(codex: Path, bridge_config, tmp_path: Path) -> None:
    """Issue 14, item 5: Codex retries every 5xx (here 30 requests over 26 s) and ignores
    x-should-retry; with ``request_max_retries = 0`` and ``stream_max_retries = 0`` in its provider (the
    README's advice when failing fast matters more than riding out a blip) it gives up at once."""
    from tests.conftest import free_ports
    dead = free_ports(1)[0]
    proc = bridge_config({"endpoints": [{"name": "down", "url_openai": f"http://127.0.0.1:{dead}/v1"}]},
                         fresh_process=True)
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "local"\napproval_policy = "never"\nsandbox_mode = "danger-full-access"\n'
        '[analytics]\nenabled = false\n[model_providers.local]\nname = "local"\n'
        f'base_url = "{proc.url}/v1"\nenv_key = "LOCAL_API_KEY"\nwire_api = "responses"\n'
        "request_max_retries = 0\nstream_max_retries = 0\n")
    run = subprocess.run([str(codex), "exec", "--skip-git-repo-check", "--json", "hi"], cwd=tmp_path,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home),
                              "LOCAL_API_KEY": "unused"},
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 1
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    failed = [e for e in events if e.get("type") == "turn.failed"]
    assert failed and "the upstream could not be reached" in failed[0]["error"]["message"]
    assert proc.log().count("status 502") == 1


def test_codex_runs_parallel_calls_that_overlap(codex: Path, mock, bridge, tmp_path: Path) -> None:
    """Issue 13: a Chat upstream's parallel calls stay open to its finish, so Codex sees two function_call
    items overlap (each event names its item); both must run and both results go back."""
    proc = bridge("chat")
    calls = [ToolCallSpec("call_p1", "exec_command", {"cmd": "echo one > one.txt"}),
             ToolCallSpec("call_p2", "exec_command", {"cmd": "echo two > two.txt"})]
    mock.next_reply(Reply(text=None, tool_calls=calls))
    mock.next_reply(Reply(text="Both files written."))
    events, last, work = run_codex(codex, proc.url, tmp_path, "gpt-5.5")
    assert any(e["type"] == "turn.completed" for e in events) and last.strip() == "Both files written."
    assert (work / "one.txt").read_text() == "one\n" and (work / "two.txt").read_text() == "two\n"
    results = [m for m in mock.requests[-1].json["messages"] if m["role"] == "tool"]
    assert sorted(m["tool_call_id"] for m in results) == ["call_p1", "call_p2"]


def run_builtin(codex: Path, tmp_path: Path, model: str | None, config: str, env: dict[str, str]
                ) -> tuple[list[dict], str, Path, float]:
    """The task with Codex's built-in provider (``config`` points it at the bridge): it opens a WebSocket to
    ``…/responses`` first. Returns the events, stderr, the work directory and the session's seconds."""
    home, work = tmp_path / "builtin-home", tmp_path / "builtin-work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(f'{config}\napproval_policy = "never"\nsandbox_mode = "danger-full-access"\n'
                                      '[analytics]\nenabled = false\n')
    args = [str(codex), "exec", "--skip-git-repo-check", "--json", *(["-m", model] if model else [])]
    started = time.monotonic()
    run = subprocess.run([*args, "Write bridge-ok to proof.txt with a shell command."], cwd=work,
                         env={"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
                              "CODEX_API_KEY": "client-key", **env},
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")], run.stderr, work, elapsed


def script_shell_task(mock, model: str | None) -> ToolCallSpec:
    call = (ToolCallSpec("call_ws1", "exec", EXEC_JS, kind="custom") if model is None
            else ToolCallSpec("call_ws1", "exec_command", {"cmd": COMMAND}))
    mock.next_reply(Reply(text=None, reasoning="I should run the command.", signature="sig-ws-1", tool_calls=[call]))
    mock.next_reply(Reply(text="Done: the file says bridge-ok."))
    return call


def assert_over_websocket(events: list[dict], stderr: str, work: Path, log: str, turns: int,
                          relayed: bool = False) -> None:
    """The task ran, and every turn went over the one WebSocket: no fallback, no retry, no 426. Relayed:
    the upstream's own WebSocket took every message, the warm-up too; else each turn came back as HTTP."""
    assert not any(e["type"] == "turn.failed" for e in events), events
    texts = [e["item"].get("text") for e in events if e.get("type") == "item.completed"]
    assert "Done: the file says bridge-ok." in texts, events
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran
    assert "Falling back" not in stderr and "Reconnecting" not in stderr, stderr[-3000:]
    assert log.count("websocket responses | connection opened") == 1, log[-3000:]
    assert "status 426" not in log, log[-3000:]
    assert log.count("| a websocket turn of ") == (0 if relayed else turns), log[-3000:]
    assert log.count("websocket relay | endpoint") == (turns + 1 if relayed else 0), log[-3000:]


@pytest.mark.parametrize("model", [None, "gpt-5.5"], ids=["default-model", "gpt-5.5"])
@pytest.mark.parametrize("upstream", ["anthropic", "chat", "responses", "codex"])
def test_codex_builtin_provider_runs_over_websocket(codex: Path, mock, bridge_config, tmp_path: Path,
                                                    upstream: str, model: str | None) -> None:
    """Issue 16: Codex's built-in provider (``openai_base_url``) keeps its WebSocket; each ``response.create``
    is routed and translated like an HTTP request. Two turns (the warm-up is answered by the bridge), the
    second sent by Codex as only what is new, reaching the upstream as the whole history — except on the
    Codex backend, which serves WebSocket itself: there the connection is relayed, the warm-up and the
    incremental turns as Codex sent them. The session is as quick as the same task over HTTP with a
    custom provider."""
    urls = {"anthropic": {"url_anthropic": mock.url}, "chat": {"url_openai": f"{mock.url}/v1"},
            "responses": {"url_openai": f"{mock.url}/v1", "openai_preference": "responses"},
            "codex": {"url_codex": f"{mock.url}/backend-api/codex"}}[upstream]
    proc = bridge_config({"endpoints": [{"name": "mock", **urls, "api_key_env": "UPSTREAM_KEY"}]}, fresh_process=True)
    call = script_shell_task(mock, model)
    events, stderr, work, ws_seconds = run_builtin(codex, tmp_path, model, f'openai_base_url = "{proc.url}/v1"', {})
    relayed = upstream == "codex"
    assert_over_websocket(events, stderr, work, proc.log(), turns=2, relayed=relayed)

    first, second = mock.requests[-2:]
    assert len(mock.requests) == (3 if relayed else 2)  # the warm-up goes only to an upstream that keeps state
    for rec in (first, second):
        assert UPSTREAM_KEY in rec.all_header_values and "client-key" not in rec.all_header_values
        assert ("previous_response_id" in rec.body.decode()) is relayed
    sent = second.body.decode()
    assert "bridge-ok" in sent  # the call's output: Codex sent only that (and, over HTTP, the call)
    assert first.body.decode().count("Write bridge-ok to proof.txt") == 1
    # the history before them: the bridge's over HTTP; relayed, the upstream has it already
    assert sent.count("Write bridge-ok to proof.txt") == (0 if relayed else 1)
    if upstream == "responses":
        assert call.name in sent and "sig-ws-1" in sent  # its own encrypted reasoning, sent back

    mock.reset()
    script_shell_task(mock, model)
    _, _, _, http_seconds = run_builtin_over_http(codex, proc.url, tmp_path, model)
    assert ws_seconds < http_seconds + 1.0, (ws_seconds, http_seconds)


def run_builtin_over_http(codex: Path, base_url: str, tmp_path: Path, model: str | None
                          ) -> tuple[list[dict], str, Path, float]:
    """The same task with a custom provider, which speaks HTTP only: the baseline for the session's time."""
    (tmp_path / "http").mkdir()
    started = time.monotonic()
    events, last, work = run_codex(codex, base_url, tmp_path / "http", model)
    return events, last, work, time.monotonic() - started


def test_codex_builtin_provider_runs_over_websocket_in_regular_mode(codex: Path, mock, bridge_config,
                                                                    tmp_path: Path) -> None:
    """As a proxy (``HTTPS_PROXY`` and mitmproxy's CA): the WebSocket to wss://api.openai.com is the bridge's,
    and its turns reach the configured upstream."""
    proc = bridge_config({"endpoints": [{"name": "mock", "url_anthropic": mock.url, "api_key_env": "UPSTREAM_KEY"}]},
                         modes=["regular"], fresh_process=True)
    script_shell_task(mock, None)
    ca = proc.workdir / "confdir" / "mitmproxy-ca-cert.pem"
    events, stderr, work, _ = run_builtin(codex, tmp_path, None, "", {
        "HTTPS_PROXY": proc.url, "CODEX_CA_CERTIFICATE": str(ca), "NO_PROXY": ""})
    assert_over_websocket(events, stderr, work, proc.log(), turns=2)
    assert [r.path.split("?")[0] for r in mock.requests] == ["/v1/messages", "/v1/messages"]


@pytest.mark.parametrize("model", [None, "gpt-5.5"], ids=["default-model", "gpt-5.5"])
def test_codex_runs_a_shell_command_against_gemini(codex: Path, mock, bridge, tmp_path: Path,
                                                   model: str | None) -> None:
    """A Gemini upstream with thinking on (Codex asks for reasoning), which refuses what the API refuses: tool
    names and schemas it does not take, a call in the current turn without its thoughtSignature. Codex's
    freeform tools (``exec``, ``apply_patch``) and its namespace tools must arrive as function declarations,
    and the signature, which Codex keeps as a reasoning item's encrypted_content, must come back on the call.
    Gemini sends no call ids: the pairing is by name and order."""
    proc = bridge("gemini")
    call = (ToolCallSpec("unused-gemini-sends-no-id", "exec", {"input": EXEC_JS}) if model is None
            else ToolCallSpec("unused-gemini-sends-no-id", "exec_command", {"cmd": COMMAND}))
    first_reply = mock.next_reply(Reply(text=None, reasoning="I should run the command.", signature="sig-codex-g1",
                                        tool_calls=[call]))
    mock.next_reply(Reply(text="Done: the file says bridge-ok.", signature="sig-codex-g2"))
    events, last, work = run_codex(codex, proc.url, tmp_path, model)

    assert any(e["type"] == "turn.completed" for e in events), events
    assert not any(e["type"] == "turn.failed" for e in events), events
    assert last.strip() == "Done: the file says bridge-ok."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    # Gemini's thought parts, shown as Codex's reasoning
    assert [i["text"] for i in items if i["type"] == "reasoning"] == [first_reply.reasoning]

    first, second = mock.requests
    for rec in (first, second):
        assert rec.path.startswith("/v1beta/models/") and rec.path.endswith(":streamGenerateContent?alt=sse")
        assert rec.headers["x-goog-api-key"] == UPSTREAM_KEY and "client-key" not in rec.all_header_values
        assert rec.json["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
        assert rec.json["systemInstruction"]["parts"]  # Codex's instructions or developer messages
        tools = {d["name"]: d for d in rec.json["tools"][0]["functionDeclarations"]}
        assert call.name in tools and all("parametersJsonSchema" in d for d in tools.values())
        freeform = "exec" if model is None else "apply_patch"  # a custom tool: a function of one string
        schema = tools[freeform]["parametersJsonSchema"]
        assert schema["required"] == ["input"] and schema["properties"]["input"]["type"] == "string"
        if model is None:  # the namespace tools of the additional_tools item, flattened
            assert any("__" in name for name in tools), sorted(tools)
    model_turn, answer = second.json["contents"][-2:]
    assert model_turn["role"] == "model" and answer["role"] == "user"
    [signed] = [p for p in model_turn["parts"] if "functionCall" in p]
    assert signed["thoughtSignature"] == gemini_signature(first_reply)  # Gemini's own, back on its call
    assert (signed["functionCall"]["name"], signed["functionCall"]["args"]) == (call.name, call.arguments)
    [response] = [p["functionResponse"] for p in answer["parts"] if "functionResponse" in p]
    assert response["name"] == call.name and response.get("id") == signed["functionCall"].get("id")
    assert "bridge-ok" in response["response"]["output"]
