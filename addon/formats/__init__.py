"""The wire formats the bridge speaks, by name. Each module exports the same set of names."""

from __future__ import annotations

from types import ModuleType

from . import anthropic, chat

__all__ = ["FORMATS", "get"]

FORMATS: dict[str, ModuleType] = {anthropic.NAME: anthropic, chat.NAME: chat}


def get(name: str) -> ModuleType:
    return FORMATS[name]
