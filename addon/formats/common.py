"""What every format module shares: the translation context, field readers, ids and opaque carriers.

Nothing here knows a particular wire format; the helpers exist so that the three format modules
validate input the same way and name the offending field in the same words.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, UpstreamProtocolError
from ..ir import Opaque, Request

__all__ = [
    "JSON", "Context", "field_str", "field_list", "opt_str", "opt_int", "opt_float", "opt_bool",
    "parse_data_url", "data_url", "encode_signature", "decode_signature", "safe_tool_id",
    "unsafe_tool_id", "dumps", "loads_object", "event_json",
]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """Everything a translator needs beyond its input; injected so translators stay pure.

    ``request`` is the IR of the client's request (tool names, include_usage); ``client_model`` is
    the model name the client asked for and sees in the answer; ``new_id(prefix)`` makes ids and
    ``created`` is the Unix time to stamp on responses.
    """

    new_id: Callable[[str], str]
    created: int = 0
    request: Request | None = None
    client_model: str | None = None
    default_max_tokens: int = 8192
    max_tokens_limit: int | None = None
    drop_params: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)


# --- field readers: every bad field becomes a BadRequest naming it ------------------------------


def field_str(obj: JSON, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key}: expected a string", param=f"{where}{key}")
    return value


def field_list(obj: JSON, key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise BadRequest(f"{where}{key}: expected an array", param=f"{where}{key}")
    return value


def opt_str(obj: JSON, key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{where}{key}: expected a string", param=f"{where}{key}")
    return value


def opt_int(obj: JSON, key: str, where: str = "") -> int | None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise BadRequest(f"{where}{key}: expected an integer", param=f"{where}{key}")
    return value


def opt_float(obj: JSON, key: str, where: str = "") -> float | None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise BadRequest(f"{where}{key}: expected a number", param=f"{where}{key}")
    return None if value is None else float(value)


def opt_bool(obj: JSON, key: str, where: str = "") -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{where}{key}: expected a boolean", param=f"{where}{key}")
    return value


def as_object(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object", param=where)
    return value


# --- data URLs ----------------------------------------------------------------------------------

_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*?);base64,(.*)$", re.DOTALL)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<type>[;params];base64,<data>`` → (media type without params, data); else None."""
    m = _DATA_URL.match(url)
    return (m.group(1).strip().lower(), m.group(3)) if m else None


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


# --- opaque carriers ----------------------------------------------------------------------------
# A signature the bridge hands to a client that echoes it back (Claude Code echoes thinking blocks
# verbatim). "bridge1." cannot begin a real Anthropic signature: "." is not in base64's alphabet.
_ENVELOPE = "bridge1."


def encode_signature(opaque: Opaque | None) -> str:
    """Wrap a foreign opaque payload (or none) so it survives a round trip through a client."""
    body = {"o": opaque.origin, "d": opaque.data} if opaque else {"o": None, "d": None}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return _ENVELOPE + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_signature(signature: str, native_origin: str) -> Opaque | None:
    """Undo :func:`encode_signature`; any other non-empty string is the native format's own."""
    if not signature.startswith(_ENVELOPE):
        return Opaque(origin=native_origin, data=signature) if signature else None
    payload = signature[len(_ENVELOPE):]
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("o"), str):
        return None
    return Opaque(origin=body["o"], data=str(body.get("d") or ""))


# --- tool call ids ------------------------------------------------------------------------------
# Anthropic requires ^[a-zA-Z0-9_-]+$. Foreign ids that do not match are encoded reversibly, so the
# upstream that minted them gets them back unchanged on the next turn, with no state kept.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_ID_PREFIX = "bridgeid_"


def safe_tool_id(call_id: str) -> str:
    if _SAFE_ID.match(call_id) and not call_id.startswith(_ID_PREFIX):
        return call_id
    return _ID_PREFIX + base64.urlsafe_b64encode(call_id.encode()).decode().rstrip("=")


def unsafe_tool_id(call_id: str) -> str:
    if not call_id.startswith(_ID_PREFIX):
        return call_id
    payload = call_id[len(_ID_PREFIX):]
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, binascii.Error):
        return call_id


# --- JSON ---------------------------------------------------------------------------------------


def dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the APIs themselves send)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def loads_object(text: str) -> JSON | None:
    """Tool arguments as an object, or None when they are not a JSON object (e.g. truncated)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def event_json(text: str) -> JSON:
    """The JSON object in an upstream SSE event's data; anything else is a protocol error."""
    try:
        value = json.loads(text)
    except ValueError:
        raise UpstreamProtocolError(f"upstream sent an SSE event that is not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise UpstreamProtocolError("upstream sent an SSE event that is not a JSON object")
    return value
