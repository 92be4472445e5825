"""OpenAI Chat Completions ⇄ IR: requests, responses, stream chunks and errors.

Wire reference: formats.md §2 (fields), §4.3 (stream grammar), §5 (mappings). Same exported names as
the sibling modules.

Reasoning has no slot in the Chat wire format. Like LiteLLM, the bridge uses two de-facto
extensions: ``reasoning_content`` (the text; DeepSeek, vLLM and others send it) and
``thinking_blocks`` (Anthropic-style blocks with their signatures, so a client can send them back and
a later turn reaches an Anthropic upstream intact). Upstreams that say ``reasoning`` are read too.
"""

from ..common import rename_model  # the model sits where the shared reader looks
from .answer import (
    StreamEmitter,
    StreamParser,
    block_channel,
    is_answer,
    parse_error,
    render_error,
    render_response,
    render_stream_error,
    response_events,
)
from .paths import (
    HEADER_MARKS,
    SERVES,
    TOKEN_COUNT,
    claims,
    probe_model,
    recognise,
    streams,
    upstream_url,
)
from .request import (
    AUTH_HEADERS,
    OWN_HEADERS,
    REQUIRED_HEADERS,
    auth_headers,
    parse_request,
    passes_through,
    render_models,
    render_request,
)
from .wire import NAME, wire_tool_name

__all__ = [
    "NAME", "is_answer", "block_channel",
    "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
    "HEADER_MARKS", "SERVES", "TOKEN_COUNT", "rename_model", "recognise", "claims", "upstream_url", "streams",
    "probe_model",
    "wire_tool_name",
]
