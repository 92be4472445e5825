"""What every format module shares: the translation context, field readers, ids and opaque carriers.

Nothing here knows a particular wire format; the helpers exist so that the three format modules
validate input the same way and name the offending field in the same words.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import BadRequest, BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError
from ..ir import Message, Opaque, ReasoningConfig, Request, Role, Text, Tool

__all__ = [
    "JSON", "Context", "field_str", "field_list", "opt_str", "opt_int", "opt_float", "opt_bool",
    "opt_list", "parse_data_url", "data_url", "encode_signature", "decode_signature", "safe_tool_id", "unsafe_tool_id",
    "dumps", "dump_bytes", "loads", "json_str", "loads_object", "event_json", "json_or_none", "plain_error",
    "flat_tool_name", "hashed_name", "tool_lookup", "AUTH_SCHEMES", "auth_header", "Budget", "AnswerTooLarge", "warn",
    "DEFAULT_MAX_ANSWER_BYTES",
    "InputUnwrapper", "is_redacted_signature", "reasoning_effort", "rename_model",
]

JSON = dict[str, Any]
DEFAULT_MAX_ANSWER_BYTES = 32 * 1024 * 1024
_MAX_WARNINGS = 32  # an upstream may name a thousand unknown block types: the log line stays one line


class AnswerTooLarge(BridgeError):
    """The answer passed what the bridge keeps of one answer (``max_answer_bytes``)."""

    status = 502
    kind = ErrorKind.API_ERROR


class Budget:
    """What the translators of one answer may keep: the text a Responses client's final event repeats,
    the thinking a Chat client gets whole at its end, a freeform call whose shape is unexpected.
    Streams pass through in constant memory otherwise; this is what keeps those cases bounded too.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self.limit = limit
        self.used = 0

    def take(self, text: str) -> None:
        """Count ``text`` as kept; raises :class:`AnswerTooLarge` once the total passes the limit."""
        self.used += len(text)
        if self.used > self.limit:
            raise AnswerTooLarge(f"the answer is larger than this bridge keeps of one answer (max_answer_bytes: "
                                 f"{self.limit} bytes, for the client's final event)")


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
    flavor: str | None = None  # "codex": the upstream is the ChatGPT Codex backend (formats.md §6.6)
    framing: str = "sse"  # how the client's stream is framed: "sse", or "json-array" (Operation.framing)
    prompt_cache: bool = False  # place prompt-cache breakpoints for an upstream that caches only where asked
    warnings: list[str] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)  # what the answer's translators may keep


AUTH_SCHEMES = ("bearer", "x-api-key", "api-key", "x-goog-api-key")  # endpoint `auth`: how its key is sent


def auth_header(api_key: str | None, auth: str) -> dict[str, str]:
    """The header that carries an endpoint's key: ``Authorization: Bearer`` (OpenAI and most), ``x-api-key``
    (Anthropic) or ``api-key`` (Azure OpenAI); none without a key."""
    if not api_key:
        return {}
    if auth == "bearer":
        return {"authorization": f"Bearer {api_key}"}
    return {auth: api_key}


def warn(ctx: Context, text: str) -> None:
    """Report a loss once, and at most :data:`_MAX_WARNINGS` of them (an answer's are the upstream's doing)."""
    if text not in ctx.warnings and len(ctx.warnings) < _MAX_WARNINGS:
        ctx.warnings.append(text)


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


def opt_list(obj: JSON, key: str, where: str = "") -> list[Any]:
    """An optional array: ``[]`` when absent or null."""
    value = obj.get(key)
    if value is None:
        return []
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


def encode_signature(opaque: Opaque | None, *, redacted: bool = False) -> str:
    """Wrap a foreign opaque payload (or none) so it survives a round trip through a client.

    ``redacted`` marks an Anthropic ``redacted_thinking`` block for a format whose reasoning has no
    flag of its own to say so (a Responses reasoning item); :func:`is_redacted_signature` reads it.
    """
    body: dict[str, Any] = {"o": opaque.origin, "d": opaque.data} if opaque else {"o": None, "d": None}
    if redacted:
        body["r"] = 1
    raw = json.dumps(body, separators=(",", ":")).encode()
    return _ENVELOPE + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _envelope(signature: str) -> dict[str, Any] | None:
    if not signature.startswith(_ENVELOPE):
        return None
    payload = signature[len(_ENVELOPE):]
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    return body if isinstance(body, dict) else None


def decode_signature(signature: str, native_origin: str) -> Opaque | None:
    """Undo :func:`encode_signature`; any other non-empty string is the native format's own."""
    if not signature.startswith(_ENVELOPE):
        return Opaque(origin=native_origin, data=signature) if signature else None
    body = _envelope(signature)
    if body is None or not isinstance(body.get("o"), str):
        return None
    return Opaque(origin=body["o"], data=str(body.get("d") or ""))


def is_redacted_signature(signature: str) -> bool:
    body = _envelope(signature)
    return body is not None and body.get("r") == 1


# --- tool call ids ------------------------------------------------------------------------------
# Anthropic requires ^[a-zA-Z0-9_-]+$. Foreign ids that do not match are encoded reversibly, so the
# upstream that minted them gets them back unchanged on the next turn, with no state kept.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: "$" would let a trailing "\n" through
_ID_PREFIX = "bridgeid_"


def safe_tool_id(call_id: str) -> str:
    if _SAFE_ID.fullmatch(call_id) and not call_id.startswith(_ID_PREFIX):
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


# --- reasoning effort ---------------------------------------------------------------------------
# OpenAI formats take an effort word; an Anthropic thinking budget maps to the nearest one (formats.md §5.7).
_BUDGET_EFFORT = ((2048, "low"), (8192, "medium"), (24576, "high"))


def reasoning_effort(cfg: ReasoningConfig | None) -> str | None:
    """The effort word for an OpenAI upstream, or None to leave the model's default."""
    if cfg is None or not cfg.enabled:
        return None
    if cfg.effort:
        return cfg.effort
    if cfg.budget_tokens:
        return next((e for limit, e in _BUDGET_EFFORT if cfg.budget_tokens <= limit), "xhigh")
    return None


# --- JSON ---------------------------------------------------------------------------------------


# orjson: a 500 KB Claude Code request is parsed 3× and written 20× faster than with the json module
# (README "Benchmark", w4). What orjson refuses or misreads and the json module takes (a lone surrogate, an
# integer past 64 bits, NaN in input) goes to the json module, so nothing a client sends is treated differently.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
# orjson reads an integer past 64 bits as a float, silently: such an integer has 19 digits or more. Digits are
# found by mapping each to "0" and searching for 19 zeros (0.4 µs a stream event; a regex took 3 µs, a third of
# the event's whole translation, and 4.5 ms to find nothing in 500 KB), then each run is looked at: only one
# where a number can start (not "toolu_0000…" or "sig000…" inside a string) and that is no float's goes to the
# json module. False alarms (such digits inside a string after a space) only cost its slower reading.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN = b"0" * 19
_ZEROS = re.compile(rb"0+")
_NUMBER_START = frozenset(b"[:, \t\r\n")  # what may come right before a JSON number (or its minus sign)
# One json encoder for every fallback: json.dumps with options builds a new JSONEncoder each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the APIs themselves send)."""
    try:
        return orjson.dumps(obj, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return _ENCODER.encode(obj)


def dump_bytes(obj: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes, for a whole body (a lone surrogate stays a JSON escape)."""
    try:
        return orjson.dumps(obj, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return _ASCII_ENCODER.encode(obj).encode()


def loads(data: str | bytes) -> Any:
    """Parse JSON; raises ``ValueError`` with the json module's message when it is not JSON.

    What orjson refuses gets a second, strict reading by the json module: escapes of lone surrogates
    pass (JSON allows them), but ``NaN``, ``Infinity`` and numbers beyond a double are not JSON and would
    quietly become ``null`` on the way out, and nesting deeper than the interpreter's stack is refused.
    """
    if not _long_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _long_integer(data: str | bytes) -> bool:
    """Whether ``data`` may hold an integer orjson would misread: a run of 19 digits or more where a number can
    start, not followed by a fraction or an exponent."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    zeros = raw.translate(_DIGITS_AS_ZERO)  # a C loop: 0.2 ms a 500 KB body, where a regex scan took 4.5 ms
    start = zeros.find(_NINETEEN)
    while start >= 0:  # the leftmost 19 zeros from where the search began: a run's start
        end = _ZEROS.match(zeros, start).end()  # type: ignore[union-attr]
        first = start - 1 if start and raw[start - 1] == 0x2D else start  # a minus sign: the number's own
        if (first == 0 or raw[first - 1] in _NUMBER_START) and raw[end:end + 1] not in (b".", b"e", b"E"):
            return True
        start = zeros.find(_NINETEEN, end)
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is beyond a double's range")
    return value


def json_str(text: str) -> str:
    """``dumps(text)`` for a string, without the encoder's dispatch: for templates of hot stream events."""
    return _encode_str(text)


_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what dumps uses for a str (non-ASCII kept)


def loads_object(text: str) -> JSON | None:
    """Tool arguments as an object, or None when they are not a JSON object (e.g. truncated)."""
    try:
        value = loads(text) if text.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def event_json(text: str) -> JSON:
    """The JSON object in an upstream SSE event's data; anything else is a protocol error."""
    try:
        value = loads(text)
    except ValueError:
        raise UpstreamProtocolError(f"upstream sent an SSE event that is not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise UpstreamProtocolError("upstream sent an SSE event that is not a JSON object")
    return value


# --- tools across formats -----------------------------------------------------------------------
# Responses groups tools in namespaces; the other formats have one flat list. The default namespace
# Codex uses ("functions") flattens to the bare name, any other to "<namespace>__<name>".
_DEFAULT_NAMESPACE = "functions"


def flat_tool_name(namespace: str | None, name: str) -> str:
    return name if not namespace or namespace == _DEFAULT_NAMESPACE else f"{namespace}__{name}"


def hashed_name(name: str, bad: str, limit: int, lead: str = "") -> str:
    """A tool name a format refuses, made one it takes: ``bad`` characters (a regex class) become ``_``,
    ``lead`` (a regex) must match the start or ``_`` is put before, and the end is a hash of the original,
    within ``limit`` characters. Deterministic, so a call's name maps back (:func:`tool_lookup`)."""
    safe = re.sub(bad, "_", name)
    if lead and not re.match(lead, safe):
        safe = "_" + safe
    return safe[:limit - 9] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]


def tool_lookup(ctx: Context, wire_name: Callable[[str], str] = lambda n: n) -> dict[str, Tool]:
    """The client's tools by the name this format gives them on the wire (to map calls back)."""
    tools = ctx.request.tools if ctx.request else ()
    return {wire_name(flat_tool_name(t.namespace, t.name)): t for t in tools}


_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class InputUnwrapper:
    """Stream the string in ``{"input": "…"}`` out of JSON fragments, escapes undone, as they arrive.

    A freeform (custom) tool travels to formats without custom tools as a function with one string
    argument ``input``; its call's arguments come back as JSON text in fragments. ``feed`` returns
    the raw input decoded so far, so a client that knows the tool as custom sees it live. If the
    model wrote anything other than that shape, ``close`` returns the best reading of the whole text.
    """

    _START = re.compile(r'^\s*\{\s*"input"\s*:\s*"')
    _SPECIAL = re.compile(r'[\\"]')

    def __init__(self, budget: Budget | None = None) -> None:
        self._budget = budget or Budget()
        self._raw: list[str] = []  # kept only while close() may need it: before and outside the expected shape
        self._head = ""  # text before the string value begins
        self._state = "seek"  # seek | str | esc | done | failed
        self._pending = ""  # an escape sequence split across fragments
        self._emitted = False

    def feed(self, fragment: str) -> str:
        if self._state in ("seek", "failed"):
            self._budget.take(fragment)
            self._raw.append(fragment)
        if self._state == "seek":
            self._head += fragment
            m = self._START.match(self._head)
            if m is None:
                if len(self._head) > 64 or not '{"input":"'.startswith(re.sub(r"\s", "", self._head)[:10]):
                    self._state = "failed"
                return ""
            self._state, fragment = "str", self._head[m.end():]
        if self._state not in ("str", "esc"):
            return ""
        out = self._decode(fragment)
        self._emitted = self._emitted or bool(out)
        return out

    def close(self) -> str:
        """Whatever the fragments hold that ``feed`` could not stream (a shape it did not expect)."""
        if self._state in ("str", "esc", "done") or self._emitted:
            return ""
        raw = "".join(self._raw)
        parsed = loads_object(raw)
        value = parsed.get("input") if parsed is not None else None
        return value if isinstance(value, str) else raw

    def _decode(self, text: str) -> str:
        out: list[str] = []
        text = self._pending + text
        self._pending = ""
        i = 0
        while i < len(text) and self._state != "done":
            m = self._SPECIAL.search(text, i)
            if m is None:
                out.append(text[i:])
                break
            out.append(text[i:m.start()])
            if m.group() == '"':
                self._state = "done"
                break
            esc = text[m.start():m.start() + 12]  # room for a \uXXXX\uXXXX surrogate pair
            if len(esc) < 2 or (esc[1] == "u" and len(esc) < 6):
                self._pending = text[m.start():]
                break
            if esc[1] == "u":
                code = int(esc[2:6], 16)
                if 0xD800 <= code < 0xDC00:  # a high surrogate: wait for its low half
                    if len(esc) < 12:
                        self._pending = text[m.start():]
                        break
                    low = int(esc[8:12], 16) if esc[6:8] == "\\u" else 0
                    if 0xDC00 <= low < 0xE000:
                        out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                        i = m.start() + 12
                        continue
                out.append(chr(code))
                i = m.start() + 6
            else:
                out.append(_JSON_ESCAPES.get(esc[1], esc[1]))
                i = m.start() + 2
        return "".join(out)


def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def plain_error(status: int, data: Any, body: bytes) -> UpstreamError:
    """An error body that is not in the format's own shape: ``{"error": "…"}`` (Ollama), ``{"detail": …}``
    (FastAPI, the ChatGPT backend), ``{"message": …}``, an HTML page or nothing at all."""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if isinstance(data.get(key), str) and data[key]:
                return UpstreamError(data[key], status=status)
    text = body.decode("utf-8", "replace").strip()[:500]
    return UpstreamError(text or f"upstream returned HTTP {status} with no body", status=status)


def rename_model(obj: JSON, new: str) -> bool:
    """Put back the model name the client asked for, where each format reports it: top level (Chat,
    Responses objects, Anthropic messages), ``message`` (Anthropic message_start) or ``response``
    (Responses stream events). Whatever the upstream called it (often a dated name, not the one it
    was asked for) is replaced. Returns whether anything changed."""
    changed = False
    for holder in (obj, obj.get("message"), obj.get("response")):
        if isinstance(holder, dict) and isinstance(holder.get("model"), str) and holder["model"] != new:
            holder["model"] = new
            changed = True
    return changed


def system_in_place(messages: tuple[Message, ...], ctx: Context) -> list[tuple[Message, bool]]:
    """The messages of a request for a format whose system prompt stands apart from the conversation
    (Anthropic's ``system``, Gemini's ``systemInstruction``), each with whether it goes there: a system
    message before the conversation does; one within it, with ``ctx.prompt_cache``, stays where it is as
    a user turn wrapped in ``<system-reminder>`` (as Claude Code writes such notes), because moving it to
    the top would change the start of every later request and so lose the cached conversation."""
    out: list[tuple[Message, bool]] = []
    started = False
    for msg in messages:
        if msg.role is not Role.SYSTEM:
            started = True
        elif started and ctx.prompt_cache:
            texts = [p.text for p in msg.content if isinstance(p, Text) and p.text.strip()]
            msg = Message(role=Role.USER,
                          content=tuple(Text(text=f"<system-reminder>\n{t}\n</system-reminder>") for t in texts))
        out.append((msg, msg.role is Role.SYSTEM))
    return out
