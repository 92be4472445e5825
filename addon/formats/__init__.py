"""The wire formats the bridge speaks: the registry. Each package exports the names
:class:`~addon.formats.api.Format` lists; adding a format is its package and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from . import anthropic, chat, gemini, responses
from .api import EventEmitter, EventParser, Format, Operation, TokenCount

__all__ = ["FALLBACK", "FORMATS", "EventEmitter", "EventParser", "Format", "Operation", "TokenCount",
           "answering", "get", "marked"]

# In the order requests are recognised, and unknown paths claimed: the more specific prefix first.
FORMATS: dict[str, Format] = {anthropic.NAME: anthropic, gemini.NAME: gemini, responses.NAME: responses,
                              chat.NAME: chat}
FALLBACK = chat.NAME  # answers what no format claims (a probe, a refusal before the path is known)


def get(name: str) -> Format:
    return FORMATS[name]


def marked(headers: Mapping[str, str]) -> str | None:
    """The format whose own headers a request carries, if any. ``headers`` looks up lowercase names."""
    return next((f.NAME for f in FORMATS.values() if any(h in headers for h in f.HEADER_MARKS)), None)


def answering(path: str, headers: Mapping[str, str]) -> str | None:
    """The format whose errors answer a request no format recognised: one whose own headers it carries,
    else the one whose prefix its path is under; None when the path is under no format's prefix (the
    request is not an API request)."""
    claimant = next((f.NAME for f in FORMATS.values() if f.claims(path)), None)
    return claimant and (marked(headers) or claimant)
