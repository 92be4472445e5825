"""What both rooms of the Chat Completions format share: its name, the tool names it accepts, and the
text of a thinking part."""

from __future__ import annotations

import re
from typing import Any

from ..common import hashed_name

NAME = "chat"
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing "\n" through


def wire_tool_name(name: str) -> str:
    """A tool name Chat accepts (≤64 chars of [A-Za-z0-9_-]); deterministic, so it maps back."""
    return name if _NAME_OK.fullmatch(name) else hashed_name(name, r"[^A-Za-z0-9_-]", 64)


def thinking_text(part: dict[str, Any]) -> str:
    """The text of a ``thinking`` content part: Mistral Magistral's ``{"type": "thinking", "thinking":
    [{"type": "text", "text": …}]}``, or a plain string in ``thinking``."""
    inner = part.get("thinking")
    if isinstance(inner, str):
        return inner
    texts = [p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None
             for p in (inner if isinstance(inner, list) else ())]
    return "".join(t for t in texts if isinstance(t, str))
