"""Claude Code itself, through a real mitmdump running the bridge, against Chat, Responses, Codex and Gemini upstreams.

The real client is the strictest oracle we have: it sends what Claude Code 2.1 sends (system blocks
with cache_control, a system message inside ``messages``, adaptive thinking, a dozen tools with
JSON Schema 2020-12) and needs a well-formed Anthropic stream back. Needs the ``claude`` binary:
``CLAUDE_BIN``, or ``.tmp/claude-code/node_modules/.bin/claude`` (``.ci/run`` installs it there with
npm). Without it the test is skipped, unless ``BRIDGE_REQUIRE_CLIENTS=1`` (set in CI) makes that a
failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLIENT_KEY, ROOT, UPSTREAM_KEY, require_cli
from tests.mock_upstream import Reply, ToolCallSpec, gemini_signature

CLAUDE = Path(os.environ.get("CLAUDE_BIN") or ROOT / ".tmp/claude-code/node_modules/.bin/claude")


@pytest.fixture
def claude() -> Path:
    return require_cli(CLAUDE, "Claude Code", "@anthropic-ai/claude-code")


def run_claude(claude: Path, base_url: str, tmp_path: Path, prompt: str = "Write bridge-ok to proof.txt with a "
               "shell command.") -> tuple[dict, Path]:
    """One headless task (``-p``, Bash allowed) in a throwaway HOME: its JSON result, and its directory."""
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": base_url,
           "ANTHROPIC_API_KEY": CLIENT_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_AUTOUPDATER": "1"}
    run = subprocess.run([str(claude), "-p", prompt, "--output-format", "json", "--allowedTools", "Bash"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout), work


@pytest.mark.parametrize("upstream", ["chat", "responses", "codex"])
def test_claude_code_runs_a_shell_command(claude: Path, mock, bridge, tmp_path: Path, upstream: str) -> None:
    proc = bridge(upstream)
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    mock.next_reply(Reply(text="I'll run it.", reasoning="The user wants a file.", signature="enc-cc-1",
                          tool_calls=[ToolCallSpec("call_cc1", "Bash", {
                              "command": command, "description": "Write the proof file"})]))
    mock.next_reply(Reply(text="The command printed bridge-ok."))
    result, work = run_claude(claude, proc.url, tmp_path)
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "The command printed bridge-ok."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran

    first, second = mock.requests
    for rec in (first, second):
        assert rec.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert CLIENT_KEY not in rec.all_header_values
    if upstream == "chat":
        for rec in (first, second):
            assert rec.path.startswith("/v1/chat/completions")
            assert rec.json["stream"] is True and rec.json["stream_options"] == {"include_usage": True}
            assert "Bash" in [t["function"]["name"] for t in rec.json["tools"]]
        assistant, tool = second.json["messages"][-2:]
        assert assistant["tool_calls"][0]["id"] == "call_cc1"
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])["command"] == command
        assert tool == {"role": "tool", "tool_call_id": "call_cc1", "content": "bridge-ok"}
        assert assistant["reasoning_content"] == "The user wants a file."  # echoed by Claude Code, restored
        return
    # Responses, or the ChatGPT Codex backend's flavour of it
    path = "/backend-api/codex/responses" if upstream == "codex" else "/v1/responses"
    for rec in (first, second):
        assert rec.path.startswith(path)
        assert rec.json["store"] is False and rec.json["stream"] is True
        assert "Bash" in [t["name"] for t in rec.json["tools"]]
        if upstream == "codex":
            assert rec.json["instructions"] and "max_output_tokens" not in rec.json
    call = next(i for i in second.json["input"] if i.get("type") == "function_call")
    output = next(i for i in second.json["input"] if i.get("type") == "function_call_output")
    assert call["call_id"] == "call_cc1" and json.loads(call["arguments"])["command"] == command
    assert output["call_id"] == "call_cc1" and output["output"] == "bridge-ok"
    # Claude Code echoed the thinking block the bridge made of the reasoning item: the upstream gets
    # its own encrypted_content back, unchanged.
    reasoning = next(i for i in second.json["input"] if i.get("type") == "reasoning")
    assert reasoning["encrypted_content"] == "enc-cc-1"


def test_claude_code_stops_at_once_when_the_upstream_is_down(claude: Path, bridge_config, tmp_path: Path) -> None:
    """Issue 14, item 5: a refused connection got a retryable 502 and Claude Code retried silently for
    minutes (11 attempts, 182 s measured); ``x-should-retry: false`` makes its SDK give up at once."""
    from tests.conftest import free_ports
    dead = free_ports(1)[0]
    proc = bridge_config({"endpoints": [{"name": "down", "url_openai": f"http://127.0.0.1:{dead}/v1"}]},
                         fresh_process=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": proc.url,
           "ANTHROPIC_API_KEY": "unused", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    run = subprocess.run([str(claude), "-p", "hi", "--output-format", "json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 1
    result = json.loads(run.stdout)
    assert result["is_error"] is True and "the upstream could not be reached" in result["result"]
    assert proc.log().count("status 502") == 1  # one attempt, no retry


def test_claude_code_runs_parallel_calls_of_a_chat_upstream(claude: Path, mock, bridge, tmp_path: Path) -> None:
    """Issue 13: a Chat upstream's calls stay open to its finish (servers may interleave them); Claude
    Code's content blocks come one at a time, so the second is held and sent whole after the first."""
    proc = bridge("chat")
    mock.next_reply(Reply(text="Running both.", tool_calls=[
        ToolCallSpec("call_p1", "Bash", {"command": "echo one > one.txt", "description": "one"}),
        ToolCallSpec("call_p2", "Bash", {"command": "echo two > two.txt", "description": "two"})]))
    mock.next_reply(Reply(text="Both files written."))
    result, work = run_claude(claude, proc.url, tmp_path, "Write one.txt and two.txt.")
    assert result["result"] == "Both files written."
    assert (work / "one.txt").read_text() == "one\n" and (work / "two.txt").read_text() == "two\n"
    results = [m for m in mock.requests[-1].json["messages"] if m["role"] == "tool"]
    assert sorted(m["tool_call_id"] for m in results) == ["call_p1", "call_p2"]



def test_claude_code_runs_a_shell_command_against_gemini(claude: Path, mock, bridge, tmp_path: Path) -> None:
    """A Gemini upstream with thinking on (the mock, as the API, then refuses a current turn whose function
    call lacks its thoughtSignature) and its other rules: Claude Code's tool schemas and names must reach it
    as declarations it takes, and the signature Gemini put on the call must survive a trip through Claude
    Code's history. Gemini sends no call ids: the pairing is by name and order."""
    proc = bridge("gemini")
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    call = ToolCallSpec("unused-gemini-sends-no-id", "Bash", {"command": command,
                                                             "description": "Write the proof file"})
    first_reply = mock.next_reply(Reply(text="I'll run it.", reasoning="The user wants a file.",
                                        signature="gem-cc-1", tool_calls=[call]))
    # a text answer: Gemini 3 puts its signature on an empty text part after the text (gemini.md §4.3, §7)
    mock.next_reply(Reply(text="The command printed bridge-ok.", signature="gem-cc-2"))
    result, work = run_claude(claude, proc.url, tmp_path)
    assert result["subtype"] == "success" and result["is_error"] is False
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran

    first, second = mock.requests
    for rec in (first, second):
        assert rec.path.startswith("/v1beta/models/") and rec.path.endswith(":streamGenerateContent?alt=sse")
        assert rec.headers["x-goog-api-key"] == UPSTREAM_KEY and CLIENT_KEY not in rec.all_header_values
        assert rec.json["generationConfig"]["thinkingConfig"]["includeThoughts"] is True  # adaptive thinking
        assert rec.json["systemInstruction"]["parts"]  # the system blocks and the system message, hoisted
        declarations = {d["name"]: d for d in rec.json["tools"][0]["functionDeclarations"]}
        assert len(declarations) > 5 and all("parametersJsonSchema" in d for d in declarations.values())
        assert "command" in declarations["Bash"]["parametersJsonSchema"]["required"]
    model_turn, answer = second.json["contents"][-2:]
    assert model_turn["role"] == "model" and answer["role"] == "user"
    assert [p["text"] for p in model_turn["parts"] if p.get("text")] == [first_reply.text]
    [signed] = [p for p in model_turn["parts"] if "functionCall" in p]
    assert signed["thoughtSignature"] == gemini_signature(first_reply)  # Gemini's own, back on its call
    assert (signed["functionCall"]["name"], signed["functionCall"]["args"]) == (call.name, call.arguments)
    [response] = [p["functionResponse"] for p in answer["parts"] if "functionResponse" in p]
    assert response["name"] == "Bash" and response.get("id") == signed["functionCall"].get("id")
    assert response["response"] == {"output": "bridge-ok"}
    # last, as it fails on its own: the answer's text is Claude Code's result
    assert result["result"] == "The command printed bridge-ok.", result
