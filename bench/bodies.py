"""Request bodies for the benchmark: a small one per client format, and w4's ~500 KB Claude Code request.

The large body follows the real Claude Code request in ``/work/shared/client-shapes/claude-code.json``
(system blocks with ``cache_control``, a ``role: "system"`` message, 12 tools with JSON schemas,
thinking blocks with signatures, tool_use / tool_result turns), with the shape's elided texts filled
in, more tools (as MCP servers add them) and a long history of file reads and shell commands. The
Chat and Responses versions are that same request rendered by the bridge's own translators, so the
three clients send the same conversation.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

__all__ = ["small_body", "large_body", "SHAPE_PATH"]

SHAPE_PATH = Path("/work/shared/client-shapes/claude-code.json")
_ELIDED = re.compile(r"^<text, (\d+) chars>$")
_WORDS = ("the of to and a in is it you that he was for on are with as I his they be at one have this from "
          "def return self import class if else for while None True False print len range path file line "
          "error value result config request response stream event model token tool call").split()


def _filler(rng: random.Random, n: int) -> str:
    """Prose and code with newlines, quotes and indentation: what JSON escaping really meets."""
    out: list[str] = []
    size = 0
    while size < n:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
        if rng.random() < 0.3:
            line = "    " + line.replace(" ", "_", 2) + '("' + rng.choice(_WORDS) + '")'
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)[:n]


def _fill(obj: Any, rng: random.Random) -> Any:
    if isinstance(obj, str):
        m = _ELIDED.match(obj)
        return _filler(rng, int(m[1])) if m else obj
    if isinstance(obj, list):
        return [_fill(v, rng) for v in obj]
    if isinstance(obj, dict):
        return {k: _fill(v, rng) for k, v in obj.items()}
    return obj


def _fallback_shape() -> dict[str, Any]:
    """Used when the recorded shape is not on this machine: the same structure, smaller."""
    schema = {"type": "object", "properties": {"command": {"type": "string", "description": "<text, 300 chars>"}},
              "required": ["command"]}
    return {"model": "claude-opus-5-5", "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": "<text, 74 chars>"},
                       {"type": "text", "text": "<text, 7012 chars>", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": f"Tool{i}", "description": "<text, 1500 chars>", "input_schema": schema}
                      for i in range(12)],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "<text, 580 chars>"}]}],
            "thinking": {"type": "adaptive"}, "metadata": {"user_id": "<text, 150 chars>"}}


def large_body(model: str, target_bytes: int = 500_000, seed: int = 7) -> dict[str, Any]:
    """An Anthropic Messages request of about ``target_bytes``, shaped like Claude Code's."""
    rng = random.Random(seed)
    try:
        shape = json.loads(SHAPE_PATH.read_text())["requests"][-1]["body"]
    except (OSError, ValueError, KeyError, IndexError):
        shape = _fallback_shape()
    body: dict[str, Any] = _fill(copy.deepcopy(shape), rng)
    body["model"] = model
    body["stream"] = True
    tools = body["tools"]
    for i in range(28):  # MCP servers add tools: Claude Code sessions with 40+ are common
        extra = copy.deepcopy(tools[i % len(tools)])
        extra["name"] = f"mcp__srv{i // 7}__{extra['name'].lower()}_{i}"
        extra["description"] = _filler(rng, 800)
        tools.append(extra)
    # History: keep the shape's first turns (and its system message), then append read / shell rounds
    # until the size is reached; every call is answered, as the bridge requires.
    messages: list[dict[str, Any]] = body["messages"]
    if messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": [{"type": "text", "text": _filler(rng, 200)}]})
    n = 0
    while len(json.dumps(body)) < target_bytes:
        call_id = f"toolu_bench{n:020d}"
        name, args = (("Read", {"file_path": f"/repo/src/module_{n}.py"}) if n % 2 == 0 else
                      ("Bash", {"command": f"grep -rn 'pattern_{n}' src | head -50", "description": "Search"}))
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": _filler(rng, 300), "signature": f"benchsig{n:040d}"},
            {"type": "text", "text": _filler(rng, 160)},
            {"type": "tool_use", "id": call_id, "name": name, "input": args}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": _filler(rng, rng.randint(2500, 6000))}]})
        n += 1
    messages.append({"role": "user", "content": [{"type": "text", "text": "Now fix the failing test."}]})
    return body


def small_body(fmt: str, model: str) -> dict[str, Any]:
    """A one-message streaming request in the client format ``fmt``."""
    if fmt == "anthropic":
        return {"model": model, "max_tokens": 1024, "stream": True,
                "messages": [{"role": "user", "content": "Say hello."}]}
    if fmt == "chat":
        return {"model": model, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Say hello."}]}
    if fmt == "responses":
        return {"model": model, "stream": True, "input": "Say hello."}
    if fmt == "gemini":  # the model and the stream flag are in Gemini's path
        return {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}
    raise ValueError(fmt)


def in_format(fmt: str, anthropic_body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic request rendered as ``fmt`` by the bridge's own translators."""
    if fmt == "anthropic":
        return anthropic_body
    from addon.formats import anthropic, get
    from addon.formats.common import Context

    request = anthropic.parse_request(copy.deepcopy(anthropic_body))
    counter = iter(range(10**9))
    ctx = Context(new_id=lambda prefix: f"{prefix}bench{next(counter):08d}", created=1_700_000_000, request=request)
    out = get(fmt).render_request(request, ctx)
    if fmt != "gemini":  # Gemini's stream flag is in its path
        out["stream"] = True
    if fmt == "chat":
        out["stream_options"] = {"include_usage": True}
    return out
