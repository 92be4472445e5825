"""What both rooms of the Responses format share: its name and the text of a reasoning item, read and written."""

from __future__ import annotations

from ..common import JSON

NAME = "responses"


def _reasoning_text(item: JSON) -> str:
    """Summary texts joined (what the stream parser also produces), else the raw reasoning text."""
    summary = [s.get("text", "") for s in item.get("summary") or () if isinstance(s, dict)] \
        if isinstance(item.get("summary"), list) else []
    if summary:
        return "\n\n".join(summary)
    return "\n\n".join(c.get("text", "") for c in item.get("content") or () if isinstance(c, dict))


def _summary(text: str) -> list[JSON]:
    return [{"type": "summary_text", "text": text}] if text else []
