"""What both rooms of the Anthropic format share: its name (the origin tag of its opaque reasoning)."""

from __future__ import annotations

NAME = "anthropic"
