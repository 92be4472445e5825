"""Record the fixture collection in ``flows/`` from live sessions: ``.venv/bin/python -m flows.make_fixtures [NAME …]``.

Starts the mock upstream (``tests/mock_upstream.py``) on 127.0.0.1:18301 and, for each fixture file,
a real ``mitmdump -s addon/bridge.py --set bridge_config=flows/config.yaml -w …`` on 127.0.0.1:18300;
drives the official SDKs (or the Claude Code / Codex / Gemini CLIs) through it with a scripted mock answer per
request, stops mitmdump (which writes the file) and moves the file into ``flows/``. The flows are the
bridge's own recordings: nothing here edits them. Without names, every fixture is recorded again;
``--list`` prints the names. A fixture whose difference is an intended change is re-blessed with
``./bridge.sh bless`` instead (same recording, today's translation).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx2
from google import genai
from google.genai import types as gtypes

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import BridgeProcess  # noqa: E402
from tests.mock_upstream import MockUpstream, Reply, ToolCallSpec  # noqa: E402
from tests.test_codex_cli import EXEC_JS, run_builtin, run_codex  # noqa: E402
from tests.test_e2e import CLOCK, WEATHER  # noqa: E402
from tests.test_e2e_matrix import MAX_TOKENS, ask, user  # noqa: E402
from tests.test_gemini_cli import run_gemini  # noqa: E402

FLOWS = ROOT / "flows"
CONFIG = FLOWS / "config.yaml"
MOCK_PORT = 18301  # flows/config.yaml points every endpoint here
BRIDGE_PORT = 18300
MITMDUMP = Path(sys.executable).parent / "mitmdump"
CLAUDE = Path(os.environ.get("CLAUDE_BIN") or ROOT / ".tmp/claude-code/node_modules/.bin/claude")
CODEX = Path(os.environ.get("CODEX_BIN") or ROOT / ".tmp/codex/node_modules/.bin/codex")
GEMINI = Path(os.environ.get("GEMINI_BIN") or ROOT / ".tmp/gemini/node_modules/.bin/gemini")
CLIENTS = ("anthropic", "chat", "responses")
UPSTREAMS = ("anthropic", "chat", "responses", "codex")
CLIENT_KEY = "fixture-client-key"  # what every client here presents; tests/test_replay.py looks for it
# The Gemini client's fixtures whose key goes as ``?key=`` (as Google's REST examples send it) instead of the
# SDK's ``x-goog-api-key``: one translated, one passed through (where the client's key goes on upstream).
KEY_IN_QUERY = ("chat", "gemini")

# Usage in each upstream's own wire shape (70 uncached + 30 cached input tokens, 20 output).
USAGE: dict[str, dict[str, Any]] = {
    "anthropic": {"input_tokens": 70, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 0,
                  "output_tokens": 20},
    "chat": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
             "prompt_tokens_details": {"cached_tokens": 30}},
    "responses": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 30}, "output_tokens": 20,
                  "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 120}}
USAGE["codex"] = USAGE["responses"]
USAGE["gemini"] = {"promptTokenCount": 100, "cachedContentTokenCount": 30, "candidatesTokenCount": 12,
                   "thoughtsTokenCount": 8, "totalTokenCount": 120}  # candidates leave the thoughts out
# What each client asks for to get reasoning (the upstream then gets its own format's setting).
REASONING_ASK: dict[str, dict[str, Any]] = {
    "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
    "chat": {"reasoning_effort": "low"},
    "responses": {"reasoning": {"effort": "low", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}}
GEMINI_TOOLS = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(
    name=str(t["name"]), description=str(t["description"]), parameters_json_schema=t["schema"])
    for t in (WEATHER, CLOCK)])]
GEMINI_THINKING = gtypes.ThinkingConfig(include_thoughts=True, thinking_level=gtypes.ThinkingLevel.LOW)


@dataclass(frozen=True)
class Bridge:
    url: str  # all that tests.test_e2e_matrix.ask needs of a BridgeProcess


BRIDGE = cast(BridgeProcess, Bridge(f"http://127.0.0.1:{BRIDGE_PORT}"))


# --- the sessions -------------------------------------------------------------------------------


def tool_results(client: str, results: list[tuple[str | None, str, str]]) -> list[Any]:
    """The results of the calls (call id, tool name, output) the way each client format sends them."""
    if client == "anthropic":
        return [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": out}
                                             for call_id, _, out in results]}]
    if client == "chat":
        return [{"role": "tool", "tool_call_id": call_id, "content": out} for call_id, _, out in results]
    return [{"type": "function_call_output", "call_id": call_id, "output": out} for call_id, _, out in results]


def pair_session(client: str, upstream: str) -> Callable[[MockUpstream], None]:
    """A streamed text turn; a tool round trip (two parallel calls, then their results, not streamed);
    a reasoning turn (streamed) and the next turn that sends the reasoning back (not streamed)."""
    model = f"{upstream}-fixture-model"
    usage = USAGE[upstream]

    def run(mock: MockUpstream) -> None:
        mock.next_reply(Reply(text="Hello, wörld! Ünïcode ✓ from the mock.", usage=usage))
        ask(client, BRIDGE, True, [user("Say hello.")], system="Be brief.", model=model)

        mock.next_reply(Reply(text="Let me look both up.", usage=usage, tool_calls=[
            ToolCallSpec("call_fx_weather", "get_weather", {"city": "Oslo", "units": "metric"}),
            ToolCallSpec("call_fx_time", "get_time", {"tz": "Europe/Oslo"})]))
        question = user("Weather and time in Oslo?")
        calls = ask(client, BRIDGE, True, [question], tools=True, model=model)
        (weather, name_1, _), (clock, name_2, _) = calls.calls
        history = [question, *calls.turn, *tool_results(client, [(weather, name_1, "-3°C, snow"),
                                                                 (clock, name_2, "12:00")])]
        mock.next_reply(Reply(text="It is -3°C with snow, and noon.", usage=usage))
        ask(client, BRIDGE, False, history, tools=True, model=model)

        mock.next_reply(Reply(reasoning="The user wants a prime; 7 is prime.", signature=f"opaque-{upstream}-1",
                              text="7", usage=usage))
        question = user("Name a prime number.")
        thought = ask(client, BRIDGE, True, [question], model=model, **REASONING_ASK[client])
        mock.next_reply(Reply(text="11", usage=usage))
        ask(client, BRIDGE, False, [question, *thought.turn, user("Another one?")], model=model,
            **REASONING_ASK[client])
    return run


def _key_in_query(request: httpx2.Request) -> None:
    """The SDK's ``x-goog-api-key`` header moved into the URL as ``?key=`` (before the request is sent)."""
    key = request.headers.pop("x-goog-api-key")
    request.url = request.url.copy_add_param("key", key)


def _genai(key_in_query: bool) -> genai.Client:
    """google-genai on the bridge (the SDK's default API version, /v1), no retries; the key in its
    ``x-goog-api-key`` header or, with ``key_in_query``, as ``?key=``."""
    http = httpx2.Client(timeout=20, event_hooks={"request": [_key_in_query]} if key_in_query else {})
    return genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(base_url=BRIDGE.url, httpx_client=http))


def gemini_session(upstream: str) -> Callable[[MockUpstream], None]:
    """:func:`pair_session`'s five turns from google-genai's chat helper (``client.chats``), which keeps the
    history as Gemini clients do (the model's turn one Content per streamed chunk, thought signatures
    included): system as ``systemInstruction``, tools as ``functionDeclarations``, results as
    ``functionResponse`` parts naming their calls, reasoning asked for with ``thinkingConfig``."""
    model = f"{upstream}-fixture-model"
    usage = USAGE[upstream]

    def run(mock: MockUpstream) -> None:
        client = _genai(key_in_query=upstream in KEY_IN_QUERY)

        def chat(**config: Any) -> Any:
            return client.chats.create(model=model, config=gtypes.GenerateContentConfig(**config))

        mock.next_reply(Reply(text="Hello, wörld! Ünïcode ✓ from the mock.", usage=usage))
        said = "".join(c.text or "" for c in chat(system_instruction="Be brief.", max_output_tokens=MAX_TOKENS)
                       .send_message_stream("Say hello."))
        if said != "Hello, wörld! Ünïcode ✓ from the mock.":
            raise RuntimeError(f"gemini-to-{upstream}: the text turn said {said!r}")

        mock.next_reply(Reply(text="Let me look both up.", usage=usage, tool_calls=[
            ToolCallSpec("call_fx_weather", "get_weather", {"city": "Oslo", "units": "metric"}),
            ToolCallSpec("call_fx_time", "get_time", {"tz": "Europe/Oslo"})]))
        tools = chat(tools=GEMINI_TOOLS, max_output_tokens=MAX_TOKENS)
        calls = [call for chunk in tools.send_message_stream("Weather and time in Oslo?")
                 for call in chunk.function_calls or ()]
        if [c.name for c in calls] != ["get_weather", "get_time"]:
            raise RuntimeError(f"gemini-to-{upstream}: the calls were {calls}")
        mock.next_reply(Reply(text="It is -3°C with snow, and noon.", usage=usage))
        tools.send_message([gtypes.Part(function_response=gtypes.FunctionResponse(
            id=call.id, name=call.name, response={"output": out})) for call, out in zip(calls, ("-3°C, snow", "12:00"),
                                                                                       strict=True)])

        mock.next_reply(Reply(reasoning="The user wants a prime; 7 is prime.", signature=f"opaque-{upstream}-1",
                              text="7", usage=usage))
        thinking = chat(thinking_config=GEMINI_THINKING, max_output_tokens=2048)
        list(thinking.send_message_stream("Name a prime number."))
        mock.next_reply(Reply(text="11", usage=usage))
        thinking.send_message("Another one?")
    return run


MESSAGE = "the mock upstream says no"


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {json.dumps(data)}\n\n".encode()


def _try(client: str, model: str, stream: bool, **extra: Any) -> None:
    """One SDK request whose failure is the point: the SDK's exception is expected and ignored."""
    try:
        ask(client, BRIDGE, stream, [user("hi")], model=model, **extra)
    except Exception:  # the error is what the flow records
        pass


def _raw(path: str, body: bytes, content_type: str = "application/json") -> None:
    """A request no SDK would send (the bridge must reject it in the client's format)."""
    httpx2.post(BRIDGE.url + path, content=body, timeout=20,
                headers={"content-type": content_type, "authorization": f"Bearer {CLIENT_KEY}"})


def faults_session(mock: MockUpstream) -> None:
    """One flow per fault of README "Failure behaviour" that a recording can hold (see flows/README.md)."""
    # Before the first byte: HTTP errors from the upstream.
    mock.next_reply(Reply(status=429, error_message=MESSAGE + ": slow down", headers={"retry-after": "17"}))
    _try("anthropic", "chat-fault-429", True)
    mock.next_reply(Reply(status=500, raw_error=b"<html><body><h1>500 Internal Server Error</h1>"
                                                b"nginx upstream trouble</body></html>"))
    _try("chat", "anthropic-fault-500-html", False)
    mock.next_reply(Reply(status=503, error_message=MESSAGE + ": overloaded", headers={"retry-after": "9"}))
    _try("anthropic", "responses-fault-503", False)  # OpenAI's 503 is Anthropic's 529
    mock.next_reply(Reply(status=500, raw_error=b""))
    _try("responses", "chat-fault-500-empty", True)
    mock.next_reply(Reply(status=400, error_message=MESSAGE + ": the prompt is too long"))
    _try("responses", "anthropic-fault-400", True)
    # After the first byte: the stream goes wrong.
    mock.next_reply(Reply(text="abcdefgh", error_after=4, error_message=MESSAGE + ": overloaded mid-stream",
                          error_type="overloaded_error"))
    _try("chat", "anthropic-fault-error-event", True)
    mock.next_reply(Reply(text="abcdefgh", error_after=5, error_message=MESSAGE + ": rate limited mid-stream",
                          error_type="rate_limit_exceeded"))
    _try("anthropic", "responses-fault-response-failed", True)
    mock.next_reply(Reply(text="abcdefgh", error_after=2, error_message=MESSAGE + ": error chunk"))
    _try("responses", "chat-fault-error-chunk", True)
    mock.next_reply(Reply(text="abcdefgh", end_after=5))  # the body ends cleanly, no message_stop
    _try("responses", "anthropic-fault-no-terminal-event", True)
    mock.next_reply(Reply(text="abcdefgh", inject_after=2, inject=b"data: [DONE]\n\n"))  # no finish_reason
    _try("anthropic", "chat-fault-premature-done", True)
    mock.next_reply(Reply(text="abcdefgh", inject_after=5, inject=b"event: response.output_text.delta\n"
                                                                  b"data: {this is not json\n\n"))
    _try("chat", "responses-fault-garbage-not-json", True)
    mock.next_reply(Reply(text="abcdefgh", inject_after=2, inject=b'data: {"x": "\xff\xfe\xfd"}\n\n'))
    _try("responses", "chat-fault-garbage-not-utf8", True)
    mock.next_reply(Reply(text="abcdefgh", cut_after=4))  # the connection is lost mid-stream
    _try("anthropic", "chat-fault-cut-mid-stream", True)
    stalled = mock.next_reply(Reply(text="abcdefgh", hold_after=3))  # silent past the endpoint's idle_timeout
    _try("anthropic", "stall-fault-silent-stream", True)
    stalled.release.set()
    # No upstream answer at all, or no upstream needed: the bridge answers.
    _try("anthropic", "refused-fault-model", True)  # closed-port endpoint: nothing listens
    _try("anthropic", "nobody-serves-this-model", False)  # no endpoint: 404 naming the endpoints
    _try("responses", "anthropic-fault-previous-response-id", False, previous_response_id="resp_earlier")
    _raw("/v1/messages", b'{"model": "chat-fault-bad-json", "messages": [')  # invalid JSON: 400
    _raw("/v1/chat/completions", b"model=chat-fault-form", "application/x-www-form-urlencoded")  # 415
    _raw("/v1/embeddings", b'{"model": "chat-fault-unknown-path", "input": "hi"}')  # no such API here: 404


def claude_code_session(mock: MockUpstream) -> None:
    """Claude Code 2.x runs one shell command (tests/test_claude_code.py's scenario) against the Chat upstream."""
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    mock.next_reply(Reply(text="I'll run it.", reasoning="The user wants a file.", usage=USAGE["chat"],
                          tool_calls=[ToolCallSpec("call_cc1", "Bash", {
                              "command": command, "description": "Write the proof file"})]))
    mock.next_reply(Reply(text="The command printed bridge-ok.", usage=USAGE["chat"]))
    with tempfile.TemporaryDirectory() as tmp:
        work, home = Path(tmp, "work"), Path(tmp, "home")
        work.mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": BRIDGE.url,
               "ANTHROPIC_API_KEY": CLIENT_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "DISABLE_AUTOUPDATER": "1"}
        run = subprocess.run([str(CLAUDE), "-p", "Write bridge-ok to proof.txt with a shell command.",
                              "--output-format", "json", "--allowedTools", "Bash", "--model", "claude-sonnet-4-5"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=180,
                             stdin=subprocess.DEVNULL)
        if run.returncode != 0 or json.loads(run.stdout)["result"] != "The command printed bridge-ok.":
            raise RuntimeError(f"Claude Code failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")


def codex_cli_session(mock: MockUpstream) -> None:
    """The Codex CLI (default model: freeform ``exec`` tool) runs one shell command against the Anthropic upstream."""
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    exec_js = f"const r = await tools.exec_command({{cmd: {json.dumps(command)}}});\ntext(r);"
    mock.next_reply(Reply(text=None, reasoning="I should run the command.", signature="sig-codex-1",
                          usage=USAGE["anthropic"], tool_calls=[ToolCallSpec("call_cx1", "exec", {"input": exec_js})]))
    mock.next_reply(Reply(text="Done: the file says bridge-ok.", usage=USAGE["anthropic"]))
    with tempfile.TemporaryDirectory() as tmp:
        _, _, work = run_codex(CODEX, BRIDGE.url, Path(tmp), None)  # raises if Codex fails
        if not (work / "proof.txt").exists():
            raise RuntimeError("Codex ran but did not write proof.txt")


def gemini_cli_session(mock: MockUpstream) -> None:
    """Gemini CLI 0.61 runs one shell command (tests/test_gemini_cli.py's scenario) with its Gemini 3 model
    (``-m gemini-3-flash-preview``: thinkingLevel HIGH, includeThoughts) against the Anthropic upstream; the
    mock answers thinking with a signature and a ``run_shell_command`` call, then text."""
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    mock.next_reply(Reply(text=None, reasoning="The user wants a file.", signature="sig-gemini-cli-1",
                          usage=USAGE["anthropic"], tool_calls=[ToolCallSpec("call_gc1", "run_shell_command", {
                              "command": command, "description": "Write the proof file"})]))
    mock.next_reply(Reply(text="The command printed bridge-ok.", usage=USAGE["anthropic"]))
    with tempfile.TemporaryDirectory() as tmp:
        run = run_gemini(GEMINI, BRIDGE.url, Path(tmp), "gemini-3-flash-preview")
        result = run.result()  # raises unless the run succeeded without error reports
        if result["response"] != "The command printed bridge-ok." or not (run.work / "proof.txt").exists():
            raise RuntimeError(f"Gemini CLI did not finish the task: {result.get('response')!r}")


def codex_catalog(path: Path, model: str) -> None:
    """A model catalog for Codex (``model_catalog_json``) whose one model is its default model of the bundled
    catalog (the listed one of lowest ``priority``) named ``model``: with ``-m model`` Codex then asks as it does
    with its default model (code mode's freeform ``exec``, Responses-lite, its developer messages), under a name
    flows/config.yaml routes. Its base instructions are cut to their first paragraph: the rest, 20 KB of prose,
    would be in each file five times (both turns' requests as sent and as translated, and the message)."""
    home = path.parent / "catalog-home"
    home.mkdir()
    run = subprocess.run([str(CODEX), "debug", "models", "--bundled"], capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home)},
                         stdin=subprocess.DEVNULL, check=True)
    listed = [m for m in json.loads(run.stdout)["models"] if m.get("visibility") == "list"]
    default = min(listed, key=lambda m: m["priority"])
    instructions = default["base_instructions"].split("\n\n", 1)[0]
    messages = {**default["model_messages"], "instructions_template": instructions}  # the same text, used first
    path.write_text(json.dumps({"models": [{**default, "slug": model, "display_name": model,
                                            "base_instructions": instructions, "model_messages": messages}]}))


def codex_ws_session(upstream: str) -> Callable[[MockUpstream], None]:
    """The Codex CLI's built-in provider (``openai_base_url``, ``CODEX_API_KEY``) over its WebSocket, routed
    to ``upstream`` by ``-m UPSTREAM-ws-model`` (Codex's default model under that name, :func:`codex_catalog`):
    the warm-up, then two turns (tests/test_codex_cli.py's scenario): thinking + a call of the freeform
    ``exec`` tool, then text; Codex sends the second turn as only what is new (``previous_response_id``)."""
    model = f"{upstream}-ws-model"
    usage = USAGE[upstream]

    def run(mock: MockUpstream) -> None:
        mock.next_reply(Reply(text=None, reasoning="I should run the command.", signature=f"sig-ws-{upstream}",
                              usage=usage, tool_calls=[ToolCallSpec("call_ws1", "exec", EXEC_JS, kind="custom")]))
        mock.next_reply(Reply(text="Done: the file says bridge-ok.", usage=usage))
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp, "catalog.json")
            codex_catalog(catalog, model)
            config = f'openai_base_url = "{BRIDGE.url}/v1"\nmodel_catalog_json = "{catalog}"'
            events, stderr, work, _ = run_builtin(CODEX, Path(tmp), model, config,
                                                  {"CODEX_API_KEY": CLIENT_KEY})  # raises if Codex fails
            wrote = (work / "proof.txt").exists()
        items = [e["item"] for e in events if e.get("type") == "item.completed"]
        said = [i.get("text") for i in items if i["type"] in ("agent_message", "error")]  # an error: e.g. no metadata
        if said != ["Done: the file says bridge-ok."] or not wrote:
            raise RuntimeError(f"codex-ws-to-{upstream}: Codex did not finish the task: {events}")
        if "Falling back" in stderr or "Reconnecting" in stderr:  # every turn on the one WebSocket
            raise RuntimeError(f"codex-ws-to-{upstream}: Codex left the WebSocket:\n{stderr[-3000:]}")
    return run


SESSIONS: dict[str, Callable[[MockUpstream], None]] = {
    f"{client}-to-{upstream}": pair_session(client, upstream) for client in CLIENTS for upstream in UPSTREAMS}
SESSIONS |= {f"{client}-to-gemini": pair_session(client, "gemini") for client in CLIENTS}
SESSIONS |= {f"gemini-to-{upstream}": gemini_session(upstream) for upstream in (*UPSTREAMS, "gemini")}
SESSIONS |= {"faults": faults_session, "claude-code-to-chat": claude_code_session,
             "codex-cli-to-anthropic": codex_cli_session, "gemini-cli-to-anthropic": gemini_cli_session}
SESSIONS |= {f"codex-ws-to-{upstream}": codex_ws_session(upstream) for upstream in (*UPSTREAMS, "gemini")}


# --- recording ----------------------------------------------------------------------------------


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mitmdump did not listen on {port} within {timeout} s")


def record(name: str, mock: MockUpstream, workdir: Path) -> Path:
    """Run one session through a fresh mitmdump writing ``flows/<name>.flow``."""
    out = workdir / f"{name}.flow"
    log = workdir / f"{name}.log"
    args = [str(MITMDUMP), "-s", str(ROOT / "addon/bridge.py"), "--set", f"bridge_config={CONFIG}",
            "--mode", f"reverse:http://127.0.0.1:{MOCK_PORT}", "--listen-host", "127.0.0.1",
            "--listen-port", str(BRIDGE_PORT), "--set", f"confdir={workdir / 'confdir'}", "-w", str(out)]
    with open(log, "wb") as f:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"})
    try:
        _wait_for_port(BRIDGE_PORT, proc)
        mock.reset()
        SESSIONS[name](mock)
        left = len(mock._replies)  # every scripted answer must have been asked for
        if left:
            raise RuntimeError(f"{name}: {left} scripted answer(s) never requested")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"mitmdump exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    target = FLOWS / f"{name}.flow"
    shutil.move(out, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="fixtures to record (default: all)")
    parser.add_argument("--list", action="store_true", help="print the fixture names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SESSIONS))
        return
    unknown = [n for n in args.names if n not in SESSIONS]
    if unknown:
        parser.error(f"unknown fixture(s) {', '.join(unknown)}; --list shows the names")
    with MockUpstream(port=MOCK_PORT) as mock, tempfile.TemporaryDirectory() as tmp:
        for name in args.names or SESSIONS:
            started = time.monotonic()
            target = record(name, mock, Path(tmp))
            print(f"{target.relative_to(ROOT)}: {target.stat().st_size} bytes, "
                  f"{time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
