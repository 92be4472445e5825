"""What both rooms of the Anthropic format share: its name (the origin tag of its opaque reasoning) and
the tool names it accepts."""

from __future__ import annotations

import re

from ..common import hashed_name

NAME = "anthropic"
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,128}")  # formats.md §5.3; fullmatch: "$" would let a "\n" through


def wire_tool_name(name: str) -> str:
    """A tool name Anthropic accepts (≤128 chars of [A-Za-z0-9_-]: a Gemini client's may hold dots);
    deterministic, so a call's name maps back (``tool_lookup``)."""
    return name if _NAME_OK.fullmatch(name) else hashed_name(name, r"[^A-Za-z0-9_-]", 128)
