"""What the rooms of the Gemini format share: its name, field names in both casings, the tool names it
accepts, and how a ``thoughtSignature`` is read and written (gemini.md §2.2, §6.4, §7)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from ...errors import BadRequest
from ...ir import Opaque
from ..common import JSON, decode_signature, encode_signature, hashed_name, is_redacted_signature

NAME = "gemini"
# "the documented sentinel" for a function call the model did not produce (gemini.md §7): the API skips
# the signature check for it. It is also valid URL-safe base64, so the Python SDK takes it as bytes.
SKIP_SIGNATURE = "skip_thought_signature_validator"

# gemini.md §6.4: the live API's rule (letter or "_" first; letters, digits, "_", ".", "-"; ≤64) and the
# proto's (≤63) intersected. Colons, which the 3.3.0 docstring allows and the live API refuses, are out.
_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,62}")  # fullmatch: "$" would let a trailing "\n" through


def wire_tool_name(name: str) -> str:
    """A tool name Gemini accepts; deterministic, so a call's name maps back (``tool_lookup``)."""
    return name if _NAME_OK.fullmatch(name) else hashed_name(name, r"[^A-Za-z0-9_.\-]", 63, lead=r"[A-Za-z_]")


# --- field names: camelCase on the wire, snake_case from the Python SDK (gemini.md §2.2) ----------

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake(camel: str) -> str:
    return _SNAKE.sub("_", camel).lower()


def get(obj: JSON, camel: str) -> Any:
    """A field by its REST name, or by the proto name the Python SDK sends below the top level."""
    value = obj.get(camel)
    return obj.get(snake(camel)) if value is None else value


def get_obj(obj: JSON, camel: str, where: str) -> JSON:
    """An optional object field: ``{}`` when absent."""
    value = get(obj, camel)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}{camel}: expected an object", param=f"{where}{camel}")
    return value


def get_list(obj: JSON, camel: str, where: str) -> list[Any]:
    value = get(obj, camel)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}{camel}: expected an array", param=f"{where}{camel}")
    return value


def get_str(obj: JSON, camel: str, where: str, required: bool = False) -> str | None:
    value = get(obj, camel)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where}{camel}: expected a string", param=f"{where}{camel}")
    return value


def get_int(obj: JSON, camel: str, where: str) -> int | None:
    """An integer field; proto3 JSON also writes int64 as a string, and the Python SDK sends ``topK``
    as a float (gemini.md §2.2)."""
    value = get(obj, camel)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{where}{camel}: expected an integer", param=f"{where}{camel}")
    return value


def get_float(obj: JSON, camel: str, where: str) -> float | None:
    value = get(obj, camel)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"{where}{camel}: expected a number", param=f"{where}{camel}")
    return float(value)


def count(value: Any) -> int | None:
    """A token count from an answer: a number, or a numeric string (proto3 int64), else unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# Characters JSON leaves raw that the official stream readers take for line ends: the Python SDK splits
# lines with str.splitlines (U+0085, U+2028, U+2029), Gemini CLI's regex stops "." at U+2028/U+2029.
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")


def one_line(json_text: str) -> bytes:
    """JSON text as the bytes of one line every official Gemini stream reader reads whole. A lone
    surrogate (JSON may escape one) cannot be UTF-8: it is written back as its escape."""
    if _LINE_BREAKS.search(json_text):
        json_text = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)
    return json_text.encode("utf-8", "backslashreplace")


def standard_b64(data: str) -> str:
    """Base64 in the standard alphabet with padding: the Python SDK sends URL-safe (gemini.md §2.2),
    while a data URL or an Anthropic ``source.data`` needs the standard one."""
    text = data.strip().replace("-", "+").replace("_", "/")
    return text + "=" * (-len(text) % 4)


# --- thought signatures (gemini.md §7, formats.md §5.7) -------------------------------------------
# A signature Gemini made goes back to Gemini exactly as received. Reasoning of another origin (a
# Claude thinking block, a Responses reasoning item, a Chat server's reasoning_content) reaches a
# Gemini client as a signature of the bridge's own: standard base64 of a JSON list of
# [bridge1. envelope, reasoning text] pairs. The text rides along because Gemini CLI drops thought
# parts from the history it sends (gemini.md §7), and Anthropic wants its thinking back complete.
_CARRIED = b'[["bridge1.'


@dataclass(frozen=True, slots=True)
class Carried:
    """Reasoning of another origin, as it travels in a Gemini client's ``thoughtSignature``."""

    opaque: Opaque
    text: str
    redacted: bool = False


def encode_carried(blocks: list[Carried]) -> str:
    pairs = [[encode_signature(b.opaque, redacted=b.redacted), b.text] for b in blocks]
    return base64.b64encode(json.dumps(pairs, separators=(",", ":"), ensure_ascii=False).encode()).decode()


def read_signature(value: Any) -> str | list[Carried] | None:
    """A client's ``thoughtSignature``: Gemini's own (the string as sent), the bridge's carried
    reasoning, or None for the sentinel, a missing value and anything that is not base64."""
    if not isinstance(value, str) or not value or value == SKIP_SIGNATURE:
        return None
    try:
        raw = base64.b64decode(standard_b64(value), validate=True)
    except (ValueError, binascii.Error):
        return None
    if not raw.startswith(_CARRIED):
        return value
    try:
        pairs = json.loads(raw)
    except ValueError:
        return None
    carried = []
    for pair in pairs if isinstance(pairs, list) else ():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            continue
        opaque = decode_signature(pair[0], NAME)
        if opaque is not None and opaque.origin != NAME:
            carried.append(Carried(opaque, pair[1], is_redacted_signature(pair[0])))
    return carried
