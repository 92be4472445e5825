"""What both rooms of the Chat Completions format share: its name and the tool names it accepts."""

from __future__ import annotations

import hashlib
import re

NAME = "chat"
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing "\n" through


def wire_tool_name(name: str) -> str:
    """A tool name Chat accepts (≤64 chars of [A-Za-z0-9_-]); deterministic, so it maps back."""
    if _NAME_OK.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:55] + "_" + digest
