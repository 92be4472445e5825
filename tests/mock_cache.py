"""How the real APIs cache prompts, as a model the mock upstream answers usage from (issue 17).

A prompt is read as a sequence of *segments* in the order the API renders it (tools, system, then the
conversation, one segment per block or item), each the JSON of what was sent, in the order it was sent,
minus ``cache_control``; a token is 4 bytes. What each API then caches:

* **Anthropic** (only where asked): a breakpoint is a block with ``cache_control`` (or the last block,
  with the top-level ``cache_control``); more than 4 is a 400, as the API answers. A request reads the
  longest prefix some earlier request wrote, looked for at every block boundary up to 20 blocks before
  each of its breakpoints; it writes the prefix up to each breakpoint that is at least ``min_tokens`` long.
  The thinking and tool-choice settings and the model are part of the conversation's prefix.
* **OpenAI** (Chat, Responses, the Codex backend: automatic): the longest prefix shared with a prompt the
  same machine saw, from 1024 tokens on, in steps of 128. Requests are routed by their first 256 tokens
  and ``prompt_cache_key``; without a key, a prefix many sessions share (an agent's system prompt) spills
  over ``machines`` machines, so the mock sends such a request to one of them at random (seeded).
* **Gemini** (implicit): the longest prefix shared with any earlier prompt of the model, from
  ``min_tokens`` on.

The usage is the upstream's wire usage; ``log`` keeps each request's (format, read, written, total).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PromptCache", "CacheRecord", "TooManyBreakpoints", "MAX_BREAKPOINTS", "LOOKBACK", "bare",
           "anthropic_segments", "openai_prompt", "gemini_prompt"]

MAX_BREAKPOINTS = 4
LOOKBACK = 20  # block boundaries Anthropic checks before each breakpoint
_OPENAI_MIN, _OPENAI_STEP = 1024, 128
_ROUTE_BYTES = 256 * 4


class TooManyBreakpoints(ValueError):
    """More ``cache_control`` blocks than Anthropic takes; the message is the API's."""


@dataclass(frozen=True)
class CacheRecord:
    fmt: str
    total: int  # input tokens, cached or not
    read: int
    written: int


def _tokens(n_bytes: int) -> int:
    return n_bytes // 4


def _seg(value: Any) -> bytes:
    return json.dumps(bare(value), ensure_ascii=False, separators=(",", ":")).encode()


def bare(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: bare(v) for k, v in value.items() if k != "cache_control"}
    return [bare(v) for v in value] if isinstance(value, list) else value


def _blocks(content: Any) -> list[Any]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and "cache_control" in block


def anthropic_segments(body: dict[str, Any]) -> tuple[list[bytes], list[int]]:
    """The prompt's segments and the indexes of its breakpoints."""
    segments: list[bytes] = [_seg({"model": body.get("model")})]
    marks: list[int] = []

    def add(value: Any, marked: bool) -> None:
        segments.append(_seg(value))
        if marked:
            marks.append(len(segments) - 1)

    for tool in body.get("tools") or []:
        add(tool, _marked(tool))
    for block in _blocks(body.get("system")):
        add(block, _marked(block))
    # Changing thinking or tool choice invalidates the cached conversation, not tools and system.
    segments.append(_seg({"thinking": body.get("thinking"), "tool_choice": body.get("tool_choice")}))
    for message in body.get("messages") or []:
        for i, block in enumerate(_blocks(message.get("content"))):
            add({"role": message.get("role"), "turn": i == 0, "block": block}, _marked(block))
    if body.get("cache_control") and len(segments) > 1:
        marks.append(len(segments) - 1)
    if len(marks) > MAX_BREAKPOINTS:
        raise TooManyBreakpoints(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                                 f"Found {len(marks)}.")
    return segments, sorted(set(marks))


def openai_prompt(fmt: str, body: dict[str, Any]) -> bytes:
    """The prompt as rendered: tools, then instructions and the input (Responses) or the messages (Chat)."""
    parts = [_seg({"model": body.get("model")})] + [_seg(t) for t in body.get("tools") or []]
    if fmt == "chat":
        parts += [_seg(m) for m in body.get("messages") or []]
    else:
        parts.append(_seg({"instructions": body.get("instructions")}))
        given = body.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        parts += [_seg(item) for item in items]
    return b"".join(parts)


def gemini_prompt(model: str, body: dict[str, Any]) -> bytes:
    parts = [_seg({"model": model}), _seg(body.get("systemInstruction")), _seg(body.get("tools"))]
    parts += [_seg(c) for c in body.get("contents") or []]
    return b"".join(parts)


def _common(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of a and b (bisected: memcmp does the work)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class PromptCache:
    min_tokens: int = 1024  # Anthropic's and Gemini's minimum cacheable prefix (both vary by model)
    machines: int = 4
    seed: int = 0
    log: list[CacheRecord] = field(default_factory=list)
    _written: set[bytes] = field(default_factory=set)
    _seen: dict[tuple[Any, ...], list[bytes]] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def usage(self, fmt: str, body: dict[str, Any], output_tokens: int, model: str = "") -> dict[str, Any]:
        """The wire usage of ``fmt`` ("anthropic", "chat", "responses", "gemini") for this request, which the
        cache then remembers. Raises :class:`TooManyBreakpoints`."""
        with self._lock:
            if fmt == "anthropic":
                total, read, written = self._anthropic(body)
            elif fmt == "gemini":
                total, read, written = self._longest(("gemini", model), gemini_prompt(model, body), self.min_tokens)
            else:
                prompt = openai_prompt(fmt, body)
                key = body.get("prompt_cache_key")
                route = hashlib.sha256(prompt[:_ROUTE_BYTES]).hexdigest()
                machine = 0 if key else self._rng.randrange(self.machines)
                total, read, written = self._longest(("openai", body.get("model"), key, route, machine), prompt,
                                                     _OPENAI_MIN, _OPENAI_STEP)
            self.log.append(CacheRecord(fmt, total, read, written))
        return _wire(fmt, total, read, written, output_tokens)

    def _anthropic(self, body: dict[str, Any]) -> tuple[int, int, int]:
        segments, marks = anthropic_segments(body)
        ends, hashes, size, digest = [], [], 0, b""
        for seg in segments:
            size += len(seg)
            digest = hashlib.sha256(digest + seg).digest()
            ends.append(_tokens(size))
            hashes.append(digest)
        read = 0
        for mark in marks:
            for j in range(mark, max(mark - LOOKBACK, 0) - 1, -1):
                if hashes[j] in self._written:
                    read = max(read, ends[j])
                    break
        written_to = read
        for mark in marks:
            if ends[mark] >= self.min_tokens and ends[mark] > read:
                self._written.add(hashes[mark])
                written_to = max(written_to, ends[mark])
        return ends[-1], read, written_to - read

    def _longest(self, where: tuple[Any, ...], prompt: bytes, minimum: int, step: int = 1) -> tuple[int, int, int]:
        seen = self._seen.setdefault(where, [])
        common = _tokens(max((_common(prompt, p) for p in seen), default=0))
        read = 0 if common < minimum else minimum + (common - minimum) // step * step
        seen.append(prompt)
        del seen[:-32]
        return _tokens(len(prompt)), read, 0


def _wire(fmt: str, total: int, read: int, written: int, out: int) -> dict[str, Any]:
    if fmt == "anthropic":
        return {"input_tokens": total - read - written, "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read, "output_tokens": out}
    if fmt == "chat":
        return {"prompt_tokens": total, "completion_tokens": out, "total_tokens": total + out,
                "prompt_tokens_details": {"cached_tokens": read}}
    if fmt == "gemini":
        usage = {"promptTokenCount": total, "candidatesTokenCount": out, "totalTokenCount": total + out}
        return usage | ({"cachedContentTokenCount": read} if read else {})
    return {"input_tokens": total, "input_tokens_details": {"cached_tokens": read}, "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": total + out}
