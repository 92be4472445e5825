"""Google Gemini API (``generateContent``) ⇄ IR: requests, responses, stream chunks and errors.

Wire reference: gemini.md (§1 endpoints, §2 requests, §3 answers, §4 streams, §5 errors, §6 function
calling, §7 thought signatures, §9 mapping to the IR). Same exported names as the sibling packages.

Theory of operation
-------------------
* The model and the stream flag are in the path (``paths.recognise`` puts them in the
  :class:`~addon.formats.api.Operation`); a stream asked for without ``alt=sse`` is answered as a JSON
  array (``Operation.framing`` → ``Context.framing``). Upstreams are always asked for SSE.
* Field names are read in both casings (the Python SDK nests snake_case), written in camelCase.
* Tool schemas go to Gemini as ``parametersJsonSchema`` (``schema.py``); tool names Gemini refuses are
  rewritten deterministically (``wire.wire_tool_name``) and mapped back on the answer. Calls without an
  id (the API gives none) get one; ``functionResponse.name``, which Gemini requires, comes from the call.
* Thought signatures ride in the IR without changing it: a ``Reasoning`` whose opaque is
  ``Opaque(origin="gemini")`` right before the part the signature came on, and back on that part for a
  Gemini upstream. Reasoning of another origin (a Claude signature, Codex's ``encrypted_content``)
  reaches a Gemini client inside a ``thoughtSignature`` of the bridge's (base64 of ``bridge1.``
  envelopes with their text), on the first call after it, and comes back from it. A current turn with
  calls but none of Gemini's signatures gets the documented sentinel (§7).
* Usage: Gemini's ``promptTokenCount`` includes cached tokens and ``candidatesTokenCount`` excludes
  thoughts; the IR's ``input_tokens`` excludes cached ones and its output includes reasoning.
"""

from .answer import (
    StreamEmitter,
    StreamParser,
    block_channel,
    is_answer,
    rename_model,
    render_response,
    response_events,
)
from .errors import parse_error, render_error, render_stream_error
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
