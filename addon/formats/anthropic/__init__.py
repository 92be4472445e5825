"""Anthropic Messages API ⇄ IR: requests, responses, stream events and errors.

Wire reference: formats.md §1 (fields), §4.2 (stream grammar), §5 (mappings). The module exports the
same names as its siblings: ``parse_request``, ``render_request``, ``response_events``,
``render_response``, ``StreamParser``, ``StreamEmitter``, ``parse_error``, ``render_error``.
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
    TOKEN_COUNT,
    auth_headers,
    parse_request,
    passes_through,
    render_models,
    render_request,
)
from .wire import NAME

__all__ = [
    "NAME", "is_answer", "block_channel",
    "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
    "HEADER_MARKS", "SERVES", "TOKEN_COUNT", "rename_model", "recognise", "claims", "upstream_url", "streams",
    "probe_model",
]
