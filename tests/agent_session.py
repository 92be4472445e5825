"""A coding agent's session, turn by turn, through the bridge, for each client format (issue 17).

Each client is shaped like the real one (``client-shapes/``): a long stable prefix (system prompt,
tools), then turns of reasoning, text and tool calls whose results go back, each request the whole
conversation so far, rebuilt from the answers the client got, through its official SDK:

* ``anthropic``: Claude Code: two system blocks (the last with ``cache_control``), a ``role: "system"``
  message after the first prompt, thinking, ``cache_control`` on the last block of the last message,
  ``X-Claude-Code-Session-Id``; a tool name only Anthropic takes (over 64 characters).
* ``responses``: the Codex CLI: developer and user context items, no ``instructions``, reasoning with
  ``encrypted_content`` sent back, a freeform ``apply_patch`` tool, ``prompt_cache_key`` and
  ``session-id`` naming the conversation, ``store: false``.
* ``chat``: an SDK Chat client: a system message, function tools, streamed with usage, no session id.
* ``gemini``: the Gemini CLI: ``systemInstruction``, ``functionDeclarations`` (one dotted name), thoughts
  included, the streamed turn sent back one Content per chunk as the SDK's chat helper does, no session id.

After turn 12 each client but the Gemini CLI adds a system note within the conversation (Claude Code a
``role: "system"`` message, Codex a developer message, Chat a system message). The mock's script
(``reply_for``) is the same for every pair. ``Seen`` is the usage the client's SDK
reported, in one shape: total input, cache reads and writes (None where the format has no field).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types as gtypes

from tests import mock_cache
from tests.conftest import CLIENT_KEY, upstream_urls
from tests.mock_upstream import Reply, ToolCallSpec

__all__ = ["CLIENTS", "TURNS", "Seen", "reply_for", "client_for"]

CLIENTS = ("anthropic", "responses", "chat", "gemini")
TURNS = 20
NOTE_AFTER = 12  # after this turn a system note joins the conversation (Codex: a developer message)
_WORDS = ("the of to and a in is it that for on are with as be at this from def return self import class if "
          "else while None print len range path file line error value result config request stream tool").split()


def filler(seed: int, size: int) -> str:
    rng = random.Random(seed)
    lines, n = [], 0
    while n < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines)[:size]


SYSTEM = filler(1, 24_000)  # ~6,000 tokens: an agent's instructions
SHELL = {"type": "object", "properties": {"command": {"type": "string", "description": "The command to run."},
                                          "timeout": {"type": "integer"}}, "required": ["command"]}
READ = {"type": "object", "properties": {"path": {"type": "string"}, "offset": {"type": "integer"}},
        "required": ["path"]}
SEARCH = {"type": "object", "properties": {"query": {"type": "string"}, "glob": {"type": "string"}},
          "required": ["query"]}
FUNCTIONS = [("run_shell", "Run a shell command in the workspace. " + filler(2, 1500), SHELL),
             ("read_file", "Read a file of the workspace. " + filler(3, 1200), READ),
             ("search_code", "Search the workspace. " + filler(4, 1000), SEARCH)]
ODD_NAME = {"anthropic": "mcp__workspace_tools__summarize_the_changes_of_the_current_branch_against_its_base",
            "chat": "mcp__workspace_tools__summarize_the_changes_of_the_branch_now",
            "gemini": "workspace.summarize_changes", "responses": "summarize_changes"}


def reply_for(turn: int, client: str) -> Reply:
    """What the upstream answers on ``turn`` (1-based): reasoning and text, and a tool call except every
    fifth turn (then the user asks for the next step); two calls at once on turn 7 (not for Codex, which
    asks for one at a time); Codex's freeform apply_patch every fourth."""
    reasoning, text = f"Step {turn}: what next? " + filler(100 + turn, 200), f"Working on step {turn}."
    if turn % 5 == 0:
        return Reply(reasoning=reasoning, signature=f"sig-{turn}-" + "Q" * 40, text=f"Step {turn} is done.")
    calls = [ToolCallSpec(id=f"call_{turn}a", name="run_shell" if turn % 2 else "read_file",
                          arguments={"command": f"pytest -q tests/test_{turn}.py"} if turn % 2 else
                          {"path": f"src/module_{turn}.py"})]
    if client == "responses" and turn % 4 == 0:
        calls = [ToolCallSpec(id=f"call_{turn}p", name="apply_patch", kind="custom",
                              arguments=f"*** Begin Patch\n*** Update File: src/m{turn}.py\n@@\n-old\n+new\n"
                                        "*** End Patch\n")]
    elif turn == 7 and client != "responses":
        calls.append(ToolCallSpec(id=f"call_{turn}b", name="search_code", arguments={"query": "def main"}))
    return Reply(reasoning=reasoning, signature=f"sig-{turn}-" + "Q" * 40, text=text, tool_calls=calls)


def result_text(call_id: str) -> str:
    """A tool's output: ~1,500 characters, the same for the same call every time it is sent."""
    return f"[{call_id}]\n" + filler(zlib.crc32(call_id.encode()), 1500)


@dataclass(frozen=True)
class Seen:
    total: int
    read: int
    written: int | None


def client_for(fmt: str, model: str, session: str) -> Any:
    """A client of ``fmt`` that asks for ``model`` in the session named ``session``; ``connect(url)`` before
    its first ``turn()``, and again after the bridge moved."""
    return {"anthropic": ClaudeCode, "responses": Codex, "chat": ChatClient, "gemini": GeminiCli}[fmt](model, session)


class ClaudeCode:
    def __init__(self, model: str, session: str) -> None:
        self.model, self.session = model, session
        self.system = [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                       {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
        self.tools = [{"name": n, "description": d, "input_schema": s} for n, d, s in FUNCTIONS]
        self.tools.append({"name": ODD_NAME["anthropic"], "description": "Summarize the branch.",
                           "input_schema": {"type": "object", "properties": {}}})
        self.messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\n" + filler(5, 800)
                                          + "\n</system-reminder>"},
                                         {"type": "text", "text": f"Fix the failing tests ({session})."}]},
            {"role": "system", "content": "The user's working directory is /work/project."}]
        self.metadata = {"user_id": f"user_0123_account__session_{session}"}

    def connect(self, url: str) -> None:
        self.sdk = anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0, timeout=30,
                                       default_headers={"X-Claude-Code-Session-Id": self.session})

    def turn(self) -> tuple[list[str], Seen]:
        for m in self.messages:  # the breakpoint moves to the end, as Claude Code moves it
            if isinstance(m["content"], list):
                m["content"] = [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]
        last = next(m for m in reversed(self.messages) if isinstance(m["content"], list))
        last["content"][-1]["cache_control"] = {"type": "ephemeral"}
        with self.sdk.messages.stream(model=self.model, max_tokens=32000, system=self.system,
                                      tools=self.tools, messages=self.messages,
                                      thinking={"type": "adaptive"},
                                      metadata=self.metadata) as stream:
            message = stream.get_final_message()
        blocks: list[dict[str, Any]] = []
        calls = []
        for block in message.content:
            if block.type == "thinking":
                blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
            elif block.type == "text":
                blocks.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
                calls.append(block.id)
        self.messages.append({"role": "assistant", "content": blocks})
        u = message.usage
        read, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
        return calls, Seen(u.input_tokens + read + written, read, written)

    def results(self, calls: list[str]) -> None:
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": c, "content": result_text(c)} for c in calls]})

    def say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})

    def note(self, text: str) -> None:
        self.messages.append({"role": "system", "content": text})


class Codex:
    def __init__(self, model: str, session: str) -> None:
        self.model, self.session = model, session
        self._kinds: dict[str, str] = {}
        self.tools: list[dict[str, Any]] = [{"type": "function", "name": n, "description": d, "parameters": s,
                                             "strict": False} for n, d, s in FUNCTIONS]
        self.tools.append({"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
                           "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"}})
        self.tools.append({"type": "function", "name": ODD_NAME["responses"], "description": "Summarize.",
                           "parameters": {"type": "object", "properties": {}}, "strict": False})
        self.input: list[dict[str, Any]] = [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": SYSTEM}]},
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "<permissions instructions>sandbox: workspace-write"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": filler(6, 800)}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": f"Fix the failing tests ({session})."}]}]

    def connect(self, url: str) -> None:
        self.sdk = openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30,
                                 default_headers={"session-id": self.session, "originator": "codex_exec"})

    def turn(self) -> tuple[list[str], Seen]:
        with self.sdk.responses.stream(
                model=self.model, input=self.input, tools=self.tools,
                tool_choice="auto", parallel_tool_calls=False, reasoning={"effort": "medium", "summary": "auto"},
                store=False, include=["reasoning.encrypted_content"], prompt_cache_key=self.session,
                text={"verbosity": "low"}) as stream:
            response = stream.get_final_response()
        calls = []
        for item in response.output:
            self.input.append(item.model_dump(mode="json", exclude_none=True))
            if item.type in ("function_call", "custom_tool_call"):
                calls.append((item.type, item.call_id))
        u = response.usage
        assert u is not None
        written = u.input_tokens_details.cache_write_tokens
        self._kinds = {call_id: kind for kind, call_id in calls}
        return [c for _, c in calls], Seen(u.input_tokens, u.input_tokens_details.cached_tokens, written)

    def results(self, calls: list[str]) -> None:
        for c in calls:
            kind = "custom_tool_call_output" if self._kinds.get(c) == "custom_tool_call" else "function_call_output"
            self.input.append({"type": kind, "call_id": c, "output": result_text(c)})

    def say(self, text: str) -> None:
        self.input.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})

    def note(self, text: str) -> None:
        self.input.append({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]})


class ChatClient:
    def __init__(self, model: str, session: str) -> None:
        self.model = model
        self.tools = [{"type": "function", "function": {"name": n, "description": d, "parameters": s}}
                      for n, d, s in FUNCTIONS]
        self.tools.append({"type": "function", "function": {"name": ODD_NAME["chat"], "description": "Summarize.",
                                                            "parameters": {"type": "object", "properties": {}}}})
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                               {"role": "user", "content": f"Fix the failing tests ({session})."}]

    def connect(self, url: str) -> None:
        self.sdk = openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)

    def turn(self) -> tuple[list[str], Seen]:
        with self.sdk.chat.completions.stream(model=self.model, messages=self.messages,
                                              tools=self.tools,
                                              stream_options={"include_usage": True}) as stream:
            completion = stream.get_final_completion()
        message = completion.choices[0].message
        turn: dict[str, Any] = {"role": "assistant", "content": message.content}
        calls = [c for c in message.tool_calls or [] if c.type == "function"]
        if calls:
            turn["tool_calls"] = [{"id": c.id, "type": "function",
                                   "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                  for c in calls]
        self.messages.append(turn)
        u = completion.usage
        assert u is not None, "no usage (the client asked for it)"
        details = u.prompt_tokens_details
        written = details.cache_write_tokens if details else None
        return [c.id for c in calls], Seen(u.prompt_tokens, (details.cached_tokens or 0) if details else 0, written)

    def results(self, calls: list[str]) -> None:
        self.messages += [{"role": "tool", "tool_call_id": c, "content": result_text(c)} for c in calls]

    def say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def note(self, text: str) -> None:
        self.messages.append({"role": "system", "content": text})


class GeminiCli:
    def __init__(self, model: str, session: str) -> None:
        self.model = model
        declarations = [gtypes.FunctionDeclaration(name=n, description=d, parameters_json_schema=s)
                        for n, d, s in FUNCTIONS]
        declarations.append(gtypes.FunctionDeclaration(name=ODD_NAME["gemini"], description="Summarize.",
                                                       parameters_json_schema={"type": "object", "properties": {}}))
        self.config = gtypes.GenerateContentConfig(
            system_instruction=SYSTEM, tools=[gtypes.Tool(function_declarations=declarations)], temperature=1,
            top_p=0.95, top_k=64, thinking_config=gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=8192))
        self.contents: list[gtypes.Content] = [gtypes.Content(role="user", parts=[
            gtypes.Part(text=filler(7, 800)), gtypes.Part(text=f"Fix the failing tests ({session}).")])]
        self._names: dict[str, str] = {}

    def connect(self, url: str) -> None:
        self.sdk = genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(base_url=url))

    def turn(self) -> tuple[list[str], Seen]:
        chunks = list(self.sdk.models.generate_content_stream(model=self.model, contents=self.contents,
                                                              config=self.config))
        calls = []
        for chunk in chunks:
            content = chunk.candidates[0].content if chunk.candidates else None
            if content and content.parts:
                self.contents.append(content)
                for part in content.parts:
                    if part.function_call:
                        key = part.function_call.id or f"{part.function_call.name}#{len(self._names)}"
                        self._names[key] = str(part.function_call.name)
                        calls.append(key)
        usage = next(c.usage_metadata for c in reversed(chunks) if c.usage_metadata)
        return calls, Seen(usage.prompt_token_count or 0, usage.cached_content_token_count or 0, None)

    def results(self, calls: list[str]) -> None:
        parts = [gtypes.Part(function_response=gtypes.FunctionResponse(
            id=None if "#" in c else c, name=self._names[c], response={"output": result_text(c)})) for c in calls]
        self.contents.append(gtypes.Content(role="user", parts=parts))

    def say(self, text: str) -> None:
        self.contents.append(gtypes.Content(role="user", parts=[gtypes.Part(text=text)]))


# --- running sessions through a bridge -------------------------------------------------------------

UPSTREAMS = ("anthropic", "chat", "responses", "codex", "gemini")
# The format each upstream's requests are in, and the client format it passes through untranslated.
_WIRE = {"anthropic": "anthropic", "chat": "chat", "responses": "responses", "codex": "responses", "gemini": "gemini"}
PAIRS = tuple((c, u) for c in CLIENTS for u in UPSTREAMS if c != u)


def endpoints(mock_url: str, key_env: str, prompt_cache: str) -> list[dict[str, Any]]:
    """One endpoint per upstream, each serving the model ``up-<upstream>`` (the Codex backend over HTTP)."""
    urls = upstream_urls(mock_url)
    urls["codex"] = {**urls["codex"], "websocket": False}
    return [{"name": f"up-{u}", **urls[u], "models": [f"up-{u}"], "api_key_env": key_env,
             "prompt_cache": prompt_cache} for u in UPSTREAMS]


def extends(upstream: str, before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Why ``after`` does not repeat ``before`` byte for byte as its prefix (breakpoints aside), or None:
    every field but the conversation the same, the conversation rendered the same up to where ``before``
    ended, segment by segment as the cache reads it (tests/mock_cache.py)."""
    fmt = _WIRE[upstream]
    conversation = {"anthropic": "messages", "chat": "messages", "responses": "input", "gemini": "contents"}[fmt]
    rest = [{k: mock_cache.bare(v) for k, v in body.items() if k != conversation} for body in (before, after)]
    if rest[0] != rest[1]:
        keys = sorted(k for k in rest[0].keys() | rest[1].keys() if rest[0].get(k) != rest[1].get(k))
        return f"fields besides {conversation} changed: {keys}"
    if fmt == "anthropic":
        old, new = mock_cache.anthropic_segments(before)[0], mock_cache.anthropic_segments(after)[0]
        same = new[:len(old)] == old
    else:
        render = {"chat": lambda b: mock_cache.openai_prompt("chat", b),
                  "responses": lambda b: mock_cache.openai_prompt("responses", b),
                  "gemini": lambda b: mock_cache.gemini_prompt("", b)}[fmt]
        old_bytes, new_bytes = render(before), render(after)
        same = new_bytes.startswith(old_bytes)
    return None if same else f"the {conversation} so far were rendered differently"


@dataclass(frozen=True)
class Turn:
    pair: tuple[str, str]
    turn: int
    body: dict[str, Any]  # what the upstream got
    seen: Seen  # the usage the client's SDK reported
    cache: Any  # the mock's CacheRecord: what the upstream reported


def run(mock: Any, connect: Any, pairs: tuple[tuple[str, str], ...] = PAIRS, turns: int = TURNS,
        restart_after: int | None = None, tag: str = "") -> list[Turn]:
    """Every pair's session, turn by turn (all pairs' turn n before any pair's n+1); ``connect()`` gives
    the bridge's URL, and is called again (to restart the bridge) after turn ``restart_after``."""
    url = connect()
    sessions = {}
    for n, (c, u) in enumerate(pairs):
        session = f"0b6f3c7e-8d4a-4f2b-9c1d-{tag}{n:012d}"[:36]
        sessions[(c, u)] = client_for(c, f"up-{u}", session)
        sessions[(c, u)].connect(url)
    out: list[Turn] = []
    for turn in range(1, turns + 1):
        if restart_after is not None and turn == restart_after + 1:
            url = connect()
            for s in sessions.values():
                s.connect(url)
        for (c, u), s in sessions.items():
            mock.next_reply(reply_for(turn, c))
            calls, seen = s.turn()
            out.append(Turn((c, u), turn, mock.last.json, seen, mock.cache.log[-1]))
            if calls:
                s.results(calls)
            else:
                s.say(f"Good. Now step {turn + 1}: " + filler(200 + turn, 300))
            if turn == NOTE_AFTER and hasattr(s, "note"):  # (Gemini has no system role within contents)
                s.note("The user switched the approval mode to: ask before every command.")
    return out


def read_share(turns: list[Turn], pair: tuple[str, str], start: int = 3) -> float:
    """The share of the upstream's input tokens read from its cache, from turn ``start`` on."""
    mine = [t.cache for t in turns if t.pair == pair and t.turn >= start]
    return sum(r.read for r in mine) / max(sum(r.total for r in mine), 1)


# Input prices relative to uncached input: a cache read costs a tenth (Anthropic, OpenAI's GPT-5 family,
# Gemini 2.5+); an Anthropic 5-minute cache write 1.25.
READ_PRICE, WRITE_PRICE = 0.1, 1.25


def input_cost(turns: list[Turn], pair: tuple[str, str]) -> float:
    mine = [t.cache for t in turns if t.pair == pair]
    return sum(r.total - r.read - r.written + READ_PRICE * r.read + WRITE_PRICE * r.written for r in mine)
