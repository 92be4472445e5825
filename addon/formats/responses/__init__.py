"""OpenAI Responses ⇄ IR: requests, response objects, stream events and errors.

Wire reference: formats.md §3 (items, tools), §4.4 (stream grammar, SDK checks), §5 (mappings), §6 (Codex).

Theory of operation: an answer is a list of output items (message, reasoning, function_call,
custom_tool_call), each streamed as ``output_item.added`` → deltas → ``output_item.done``; the IR has
one block per item (a message's opens at its first text). :class:`StreamParser` takes from ``.done``
whatever the deltas did not carry, and a terminal event emits whole any item of its ``output`` the
stream never announced: so :func:`response_events` is the parser fed one terminal event, not a second
path. :class:`StreamEmitter` and :func:`render_response` build items with the same helpers, and the
terminal event carries the full ``output`` (the SDK uses it as is; Codex keeps ``.done`` items only).
The ChatGPT Codex backend (``ctx.flavor == "codex"``) adds rules (§6.6): always streamed, never stored,
``instructions`` present, no sampling or token limits.
"""

from ..chat import auth_headers, render_models  # the same OpenAI credentials and model list
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
from .paths import HEADER_MARKS, SERVES, TOKEN_COUNT, claims, probe_model, recognise, streams, upstream_url
from .request import AUTH_HEADERS, OWN_HEADERS, REQUIRED_HEADERS, parse_request, passes_through, render_request
from .wire import NAME

__all__ = [
    "NAME", "is_answer", "block_channel",
    "parse_request", "render_request", "response_events", "render_response",
    "StreamParser", "StreamEmitter", "parse_error", "render_error", "render_stream_error",
    "AUTH_HEADERS", "OWN_HEADERS", "REQUIRED_HEADERS", "auth_headers", "passes_through", "render_models",
    "HEADER_MARKS", "SERVES", "TOKEN_COUNT", "rename_model", "recognise", "claims", "upstream_url", "streams",
    "probe_model",
]
