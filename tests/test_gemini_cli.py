"""Gemini CLI itself, through a real mitmdump running the bridge, against every upstream format.

Gemini CLI 0.61 (npm ``@google/gemini-cli``) is the Gemini format's strictest client: it sends 15 tools
with ``parametersJsonSchema``, ``thinkingConfig`` with ``includeThoughts``, keeps the signature of every
function call in its history, and its stream reader takes nothing but the API's own SSE (clients.md,
gemini.md §4.5, §8). Needs the ``gemini`` binary: ``GEMINI_BIN``, or ``.tmp/gemini/node_modules/.bin/gemini``
(``.ci/run`` installs it there with npm); skipped without it unless ``BRIDGE_REQUIRE_CLIENTS=1``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, ROOT, UPSTREAM_KEY, require_cli
from tests.mock_upstream import Recorded, Reply, ToolCallSpec, gemini_signature

GEMINI = Path(os.environ.get("GEMINI_BIN") or ROOT / ".tmp/gemini/node_modules/.bin/gemini")
COMMAND = "echo bridge-ok > proof.txt && cat proof.txt"
PROMPT = "Write bridge-ok to proof.txt with a shell command."
MODEL = "gemini-3-flash-preview"  # a Gemini 3 name: the CLI asks for thinkingLevel HIGH and thoughts
# $HOME/.gemini/settings.json (clients.md): API-key auth (the environment alone says "gateway", which headless
# mode refuses), no usage statistics, no update checks.
SETTINGS = {"security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False}}
# What the CLI's model router (a non-streaming generateContent with responseJsonSchema, when no -m is given)
# expects back, and the model it then picks for a score of 10 (clients.md).
ROUTER_ANSWER = {"complexity_reasoning": "A single shell command.", "complexity_score": 10}
ROUTER_MODEL = "gemini-3.5-flash-lite"
ROUTED_MODEL = "gemini-3.8-flash"


@pytest.fixture
def gemini() -> Path:
    return require_cli(GEMINI, "Gemini CLI", "@google/gemini-cli@0.61.0")


@dataclass
class GeminiRun:
    """A finished headless run: the process, the CLI's error reports ($TMPDIR), the working directory."""

    process: subprocess.CompletedProcess[str]
    reports: str
    work: Path

    def result(self) -> dict[str, Any]:
        """The ``-o json`` result of a run that succeeded."""
        run = self.process
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + self.reports
        assert not self.reports, self.reports  # exit 0 also follows an invalid stream it gave up on (clients.md)
        result: dict[str, Any] = json.loads(run.stdout[run.stdout.find("{"):])
        return result


def run_gemini(gemini: Path, base_url: str, tmp_path: Path, model: str | None) -> GeminiRun:
    """One headless task (``-p … --yolo --skip-trust -o json``) in a throwaway HOME, ``-m model`` unless None."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True)
    (home / "tmp").mkdir()
    work.mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home / "tmp"),
           "GOOGLE_GEMINI_BASE_URL": base_url, "GEMINI_API_KEY": CLIENT_KEY, "GEMINI_CLI_NO_RELAUNCH": "1"}
    args = [str(gemini), "-p", PROMPT, "--yolo", "--skip-trust", "-o", "json", *(["-m", model] if model else [])]
    run = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    reports = "".join(p.read_text(errors="replace")[-2000:] for p in (home / "tmp").glob("gemini-client-error-*"))
    return GeminiRun(run, reports, work)


def shell_call(call_id: str) -> ToolCallSpec:
    return ToolCallSpec(call_id, "run_shell_command", {"command": COMMAND, "description": "Write the proof file"})


def upstream_keyed(rec: Recorded) -> None:
    """The bridge's key for the upstream reached it; the client's key did not."""
    assert UPSTREAM_KEY in rec.all_header_values and CLIENT_KEY not in rec.all_header_values


def tokens(result: dict[str, Any], model: str) -> dict[str, int]:
    """What the CLI counted for ``model`` (it files stats under the answer's modelVersion)."""
    assert model in result["stats"]["models"], result["stats"]["models"].keys()
    counted: dict[str, int] = result["stats"]["models"][model]["tokens"]
    return counted


def anthropic_turn(first: Recorded, second: Recorded, reply: Reply, call: ToolCallSpec) -> None:
    """Anthropic: the tools as tools, the thinking block back first with its signature, then the tool_use,
    then a tool_result for the same id."""
    for rec in (first, second):
        assert rec.path.startswith("/v1/messages")
        assert rec.json["stream"] is True and rec.json["thinking"]["type"] == "enabled"
        tools = {t["name"]: t for t in rec.json["tools"]}
        assert tools["run_shell_command"]["input_schema"]["required"] == ["command"]
    assert first.json["system"]  # the CLI's systemInstruction
    assistant, results = second.json["messages"][-2:]
    assert assistant["role"] == "assistant" and results["role"] == "user"
    assert [b["type"] for b in assistant["content"]] == ["thinking", "tool_use"]
    assert assistant["content"][0] == {"type": "thinking", "thinking": reply.reasoning, "signature": reply.signature}
    use = assistant["content"][1]
    assert (use["id"], use["name"], use["input"]) == (call.id, call.name, call.arguments)
    [result] = [b for b in results["content"] if b["type"] == "tool_result"]
    assert result["tool_use_id"] == call.id and "bridge-ok" in json.dumps(result["content"])


def chat_turn(first: Recorded, second: Recorded, reply: Reply, call: ToolCallSpec) -> None:
    """Chat: tool_calls on the assistant message, a tool message for the same id, the reasoning back."""
    for rec in (first, second):
        assert rec.path.startswith("/v1/chat/completions")
        assert rec.json["stream"] is True and rec.json["stream_options"] == {"include_usage": True}
        tools = {t["function"]["name"]: t["function"] for t in rec.json["tools"]}
        assert tools["run_shell_command"]["parameters"]["required"] == ["command"]
        assert rec.json["reasoning_effort"] == "high"  # the CLI's thinkingLevel HIGH
        assert rec.json["messages"][0]["role"] == "system"  # the CLI's systemInstruction
    assistant, tool = second.json["messages"][-2:]
    assert [(c["id"], c["function"]["name"]) for c in assistant["tool_calls"]] == [(call.id, call.name)]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == call.arguments
    assert assistant["reasoning_content"] == reply.reasoning  # carried through the CLI's history
    assert tool["role"] == "tool" and tool["tool_call_id"] == call.id and "bridge-ok" in tool["content"]


def responses_turn(first: Recorded, second: Recorded, reply: Reply, call: ToolCallSpec, codex: bool) -> None:
    """Responses (and the Codex backend): the reasoning item back with its encrypted_content, the
    function_call and its function_call_output under the upstream's call_id."""
    path = "/backend-api/codex/responses" if codex else "/v1/responses"
    for rec in (first, second):
        assert rec.path.startswith(path)
        assert rec.json["stream"] is True and rec.json["store"] is False
        assert "reasoning.encrypted_content" in rec.json["include"]
        tools = {t["name"]: t for t in rec.json["tools"]}
        assert tools["run_shell_command"]["parameters"]["required"] == ["command"]
        assert rec.json["reasoning"]["effort"] == "high"  # the CLI's thinkingLevel HIGH
        assert rec.json["instructions"]  # the CLI's systemInstruction (the Codex backend requires it)
    items = second.json["input"]
    kinds = [i["type"] for i in items if i.get("type") != "message"]
    assert kinds == ["reasoning", "function_call", "function_call_output"]
    reasoning, fc, output = (next(i for i in items if i.get("type") == k) for k in kinds)
    assert reasoning["encrypted_content"] == reply.signature
    assert (fc["call_id"], fc["name"], json.loads(fc["arguments"])) == (call.id, call.name, call.arguments)
    assert output["call_id"] == call.id and "bridge-ok" in output["output"]


@pytest.mark.parametrize("upstream", ["anthropic", "chat", "responses", "codex"])
def test_gemini_cli_runs_a_shell_command(gemini: Path, mock, bridge, tmp_path: Path, upstream: str) -> None:
    """A one-tool task with -m: the upstream's call (after reasoning with a signature) runs in the CLI's shell
    and its result goes back under the upstream's own call id, the reasoning with it as that upstream needs
    it (the CLI drops thought parts from its history: the bridge's thoughtSignature must carry it)."""
    proc = bridge(upstream)
    call = shell_call("call_gc1")
    first_reply = mock.next_reply(Reply(text=None, reasoning="The user wants a file.", signature="sig-gem-1",
                                        tool_calls=[call]))
    mock.next_reply(Reply(text="The command printed bridge-ok."))
    run = run_gemini(gemini, proc.url, tmp_path, MODEL)
    result, work = run.result(), run.work

    assert result["response"] == "The command printed bridge-ok."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"  # the tool call really ran
    assert result["stats"]["tools"]["byName"]["run_shell_command"]["success"] == 1
    # the mock's default usage, 12 in and 7 out per answer, summed by the CLI over the two turns
    counted = tokens(result, MODEL)
    assert (counted["prompt"], counted["candidates"]) == (24, 14), counted
    first, second = mock.requests
    for rec in (first, second):
        upstream_keyed(rec)
        assert rec.json["model"] == MODEL
    if upstream == "anthropic":
        anthropic_turn(first, second, first_reply, call)
    elif upstream == "chat":
        chat_turn(first, second, first_reply, call)
    else:
        responses_turn(first, second, first_reply, call, codex=upstream == "codex")


@pytest.mark.parametrize("upstream", ["anthropic", "codex"])
def test_gemini_cli_model_router_goes_through_the_bridge(gemini: Path, mock, bridge, tmp_path: Path,
                                                         upstream: str) -> None:
    """Without -m the CLI first asks its router model, non-streaming, for JSON matching responseJsonSchema; only
    an answer it parses sends the turn to the model a score of 10 picks (else gemini-3.1-pro-preview)."""
    proc = bridge(upstream)
    call = shell_call("call_gr1")
    mock.next_reply(Reply(text=json.dumps(ROUTER_ANSWER)))
    mock.next_reply(Reply(text=None, tool_calls=[call]))
    mock.next_reply(Reply(text="Routed and done."))
    run = run_gemini(gemini, proc.url, tmp_path, None)
    result, work = run.result(), run.work

    assert result["response"] == "Routed and done."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"
    router, first, second = mock.requests
    for rec in (router, first, second):
        upstream_keyed(rec)
    # the router's question: not streamed by the client (the Codex backend is always asked for a stream), its
    # responseJsonSchema as structured output, with the CLI's upper-case OpenAPI type names lowered
    assert router.json["model"] == ROUTER_MODEL and "tools" not in router.json
    if upstream == "anthropic":
        assert router.path.startswith("/v1/messages") and not router.json.get("stream")
        schema = router.json["output_config"]["format"]["schema"]
    else:
        assert router.path.startswith("/backend-api/codex/responses")
        assert router.json["text"]["format"]["type"] == "json_schema"
        schema = router.json["text"]["format"]["schema"]
    assert schema["type"] == "object" and schema["required"] == list(ROUTER_ANSWER)
    assert {k: v["type"] for k, v in schema["properties"].items()} == {"complexity_reasoning": "string",
                                                                       "complexity_score": "integer"}
    # the CLI parsed the router's answer: the turn went to the model a score of 10 picks
    assert (first.json["model"], second.json["model"]) == (ROUTED_MODEL, ROUTED_MODEL)
    assert (tokens(result, ROUTER_MODEL)["candidates"], tokens(result, ROUTED_MODEL)["candidates"]) == (7, 14)
    if upstream == "anthropic":
        [result_block] = [b for b in second.json["messages"][-1]["content"] if b["type"] == "tool_result"]
        assert result_block["tool_use_id"] == call.id
    else:
        output = next(i for i in second.json["input"] if i.get("type") == "function_call_output")
        assert output["call_id"] == call.id and "bridge-ok" in output["output"]


def test_gemini_cli_passes_through_to_a_gemini_upstream(gemini: Path, mock, bridge, tmp_path: Path) -> None:
    """Gemini to Gemini: on a Gemini 3 model thinking is always on, so the upstream (the mock, as the API does)
    refuses a current turn whose function call lacks its thoughtSignature. The CLI keeps the signature of
    every call in its history: it must come back exactly as the upstream sent it."""
    proc = bridge("gemini")
    call = shell_call("unused-the-api-sends-no-id")
    first_reply = mock.next_reply(Reply(text=None, reasoning="The user wants a file.", signature="sig-gem-pass",
                                        tool_calls=[call]))
    mock.next_reply(Reply(text="Passed through and done."))
    run = run_gemini(gemini, proc.url, tmp_path, MODEL)
    # first, as a wrong URL is what breaks the run: the client's own, the bridge's alt=sse not added to it
    assert [r.path for r in mock.requests][:1] == [f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"]
    result, work = run.result(), run.work

    assert result["response"] == "Passed through and done."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"
    first, second = mock.requests
    for rec in (first, second):
        assert rec.path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        assert rec.headers["x-goog-api-key"] == UPSTREAM_KEY and CLIENT_KEY not in rec.all_header_values
        config = rec.json["generationConfig"]["thinkingConfig"]
        assert config == {"includeThoughts": True, "thinkingLevel": "HIGH"}
        declarations = rec.json["tools"][0]["functionDeclarations"]
        shell = next(d for d in declarations if d["name"] == "run_shell_command")
        assert shell["parametersJsonSchema"]["required"] == ["command"]
    model_turn, answer = second.json["contents"][-2:]
    assert model_turn["role"] == "model" and answer["role"] == "user"
    [signed] = [p for p in model_turn["parts"] if "functionCall" in p]
    assert signed["thoughtSignature"] == gemini_signature(first_reply)
    assert base64.b64decode(signed["thoughtSignature"]) == b"sig-gem-pass"
    assert (signed["functionCall"]["name"], signed["functionCall"]["args"]) == (call.name, call.arguments)
    [response] = [p["functionResponse"] for p in answer["parts"] if "functionResponse" in p]
    assert response["name"] == call.name and response.get("id") == signed["functionCall"].get("id")
    assert "bridge-ok" in response["response"]["output"]
    # passed on as sent: filed under the upstream's modelVersion, with its usage (12 prompt, 7 candidates and,
    # with reasoning, 5 thoughts per answer)
    counted = tokens(result, first_reply.model)
    assert (counted["prompt"], counted["candidates"], counted["thoughts"]) == (24, 14, 5), counted
