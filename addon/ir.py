"""The intermediate representation every wire format is parsed into and rendered from.

Theory of operation
-------------------
N formats meet in one typed model instead of N×N pairwise converters. A format module turns its
wire JSON into these objects (``parse_*``) and these objects into its wire JSON (``render_*``).

* A request is a :class:`Request`: system parts, a list of :class:`Message` whose content is a tuple
  of parts, tools, and the generation settings. Tool results live as :class:`ToolResult` parts in a
  user message (the Anthropic shape, which is the most structured of the three).
* A response is a stream of :data:`Event` values; a non-streamed response is the same events folded
  by :func:`addon.accumulate.accumulate`, so streaming and non-streaming output cannot drift apart.
  Blocks are named by a bridge-assigned ``block_id`` (Vercel AI SDK "stream parts"); at most one
  block is open at a time, which every client format requires.
* Opaque provider data (an Anthropic thinking signature, a redacted-thinking blob) rides in
  :class:`Opaque`, tagged with the format that produced it, so it is only ever replayed to that kind
  of upstream (formats.md §5.7).

Everything here is frozen; sequences are tuples. Nothing in this module does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Role", "StopReason", "BlockKind", "ToolKind", "Opaque",
    "Text", "Image", "Document", "ToolCall", "ToolResult", "Reasoning", "Part",
    "Message", "Tool", "ToolChoice", "ResponseFormat", "ReasoningConfig", "Request",
    "Usage", "Response",
    "MessageStart", "BlockStart", "BlockDelta", "BlockStop", "UsageUpdate", "Finish", "StreamError",
    "Event",
]

JSON = dict[str, Any]


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class StopReason(StrEnum):
    """The closed set of reasons a generation ends; each format maps its own values onto it."""

    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    TOOL_USE = "tool_use"
    STOP_SEQUENCE = "stop_sequence"
    REFUSAL = "refusal"
    PAUSE = "pause"
    CONTEXT_EXCEEDED = "context_exceeded"
    OTHER = "other"


class BlockKind(StrEnum):
    TEXT = "text"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"


class ToolKind(StrEnum):
    FUNCTION = "function"  # JSON-schema arguments
    CUSTOM = "custom"  # freeform string input (Responses/Chat custom tools)


# --- content parts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Opaque:
    """Provider-bound bytes we must carry untouched: ``origin`` is the format that produced them."""

    origin: str
    data: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """An image given either by ``url`` or by base64 ``data`` with its ``media_type``."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A file: base64 ``data`` with ``media_type`` (PDF), a ``url``, or plain ``text``."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    text: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A call the assistant made. ``arguments`` is the JSON text (or raw input for CUSTOM tools)."""

    id: str
    name: str
    arguments: str
    kind: ToolKind = ToolKind.FUNCTION
    namespace: str | None = None  # Responses namespace tools; other formats flatten the name


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    call_id: str
    content: tuple[Text | Image | Document, ...]
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reasoning:
    """Model reasoning. ``opaque`` is the provider's signature or redacted payload, if any."""

    text: str
    opaque: Opaque | None = None
    redacted: bool = False


Part = Text | Image | Document | ToolCall | ToolResult | Reasoning


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    role: Role
    content: tuple[Part, ...]


# --- request ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    name: str
    description: str | None = None
    parameters: JSON | None = None  # JSON Schema, kept intact
    kind: ToolKind = ToolKind.FUNCTION
    strict: bool | None = None
    namespace: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChoice:
    """``mode`` is auto | required | none | tool; ``name`` is set for mode ``tool``."""

    mode: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseFormat:
    """``type`` is text | json_object | json_schema."""

    type: str
    name: str | None = None
    schema: JSON | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningConfig:
    """``enabled`` False means explicitly off; ``effort`` and ``budget_tokens`` are hints."""

    enabled: bool = True
    effort: str | None = None
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat | None = None
    reasoning: ReasoningConfig | None = None
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in its stream (Chat stream_options)
    user: str | None = None
    cache_key: str | None = None  # OpenAI prompt_cache_key: routes requests to a warm prompt cache
    cache_retention: str | None = None  # OpenAI prompt_cache_retention: how long that cache is kept ("24h")
    warnings: tuple[str, ...] = ()  # what the parse dropped or approximated


# --- response -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts; None means unknown (not zero). ``input_tokens`` excludes cached tokens."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    def merged(self, newer: Usage) -> Usage:
        """Cumulative counts: a known newer value replaces the older one."""
        return Usage(
            input_tokens=_newer(self.input_tokens, newer.input_tokens),
            output_tokens=_newer(self.output_tokens, newer.output_tokens),
            cache_read_tokens=_newer(self.cache_read_tokens, newer.cache_read_tokens),
            cache_write_tokens=_newer(self.cache_write_tokens, newer.cache_write_tokens),
            reasoning_tokens=_newer(self.reasoning_tokens, newer.reasoning_tokens),
        )

    @property
    def total_input(self) -> int:
        return (self.input_tokens or 0) + (self.cache_read_tokens or 0) + (self.cache_write_tokens or 0)


def _newer(old: int | None, new: int | None) -> int | None:
    return old if new is None else new


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    id: str
    model: str
    content: tuple[Text | ToolCall | Reasoning, ...]
    stop_reason: StopReason
    raw_stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)


# --- stream events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStart:
    block_id: int
    kind: BlockKind
    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_kind: ToolKind = ToolKind.FUNCTION
    tool_namespace: str | None = None
    redacted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDelta:
    """Text, reasoning text, or a fragment of tool-call arguments, by the block's kind."""

    block_id: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStop:
    block_id: int
    opaque: Opaque | None = None  # a reasoning block's signature / redacted payload


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageUpdate:
    usage: Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish:
    stop_reason: StopReason
    raw_stop_reason: str | None = None
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    """The upstream failed after the stream began; rendered as the client format's error event.

    ``kind`` is an :class:`addon.errors.ErrorKind` value; ``status`` the HTTP status it implies.
    """

    status: int
    kind: str
    message: str


Event = MessageStart | BlockStart | BlockDelta | BlockStop | UsageUpdate | Finish | StreamError
