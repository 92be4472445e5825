"""Anthropic Messages API ⇄ IR: requests, responses, stream events and errors.

Wire reference: formats.md §1 (fields), §4.2 (stream grammar), §5 (mappings). The module exports the
same names as its siblings: ``parse_request``, ``render_request``, ``response_events``,
``render_response``, ``StreamParser``, ``StreamEmitter``, ``parse_error``, ``render_error``.
"""

from .answer import (
    ANSWER_MARK,
    STREAM_MARK,
    StreamEmitter,
    StreamParser,
    block_channel,
    parse_error,
    render_error,
    render_response,
    render_stream_error,
    response_events,
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
from .wire import NAME

__all__ = [
    "NAME", "ANSWER_MARK", "STREAM_MARK", "block_channel",
    "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
]
