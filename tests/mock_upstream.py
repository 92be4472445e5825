"""A scripted mock LLM upstream that speaks Anthropic Messages, OpenAI Chat Completions, Responses and Gemini.

``POST /v1/messages`` answers in the Anthropic format, ``POST …/chat/completions`` in the Chat format,
``POST …/responses`` in the Responses format (formats.md §3, §4.4). ``POST …/backend-api/codex/responses``
plays the ChatGPT Codex backend: it refuses what that backend refuses (formats.md §6.6) with HTTP 400
and a FastAPI-style ``{"detail": …}`` body, and otherwise answers like Responses; with
``MockUpstream.codex_tokens`` set it takes only those bearer tokens (and ``codex_account`` in
``chatgpt-account-id``), answering others 401 as an expired ChatGPT login.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": <the body's length in bytes>}`` (no
scripted reply is taken).
``POST /{v1beta|v1}/models/{model}:generateContent`` answers one Gemini GenerateContentResponse,
``:streamGenerateContent?alt=sse`` SSE (one ``data:`` event per chunk, closed without a sentinel) and
``:streamGenerateContent`` without ``alt`` a streamed JSON array; ``:countTokens`` answers
``{"totalTokens": <the body's length>}``; ``GET …/models`` lists models (gemini.md §1.1, §3, §4). Gemini
requests are first checked the way the real API checks them and refused with its 400 INVALID_ARGUMENT
messages (gemini.md §5.2, ``gemini_refusal``); ``MockUpstream.gemini_api_key`` makes the key required (§1.2).
Every POST (and Gemini GET) is recorded (method, path with query, headers, raw body, parsed JSON). Each
answer comes from the next :class:`Reply` queued with :meth:`MockUpstream.next_reply` (a default text reply
when the queue is empty) and is rendered in the format of the path: one JSON body, or, when the request
asks for a stream (``"stream": true``; Gemini: the method), real SSE over chunked transfer encoding with one
write and flush per event. Faults: an HTTP error status with the format's error JSON, an in-stream error
(Responses: ``response.failed``; Gemini: ``data: {"error": …}``), a connection cut mid-stream (no chunked
terminator), a stream that ends cleanly before its terminal event, and raw bytes injected mid-stream
(garbage, ``[DONE]``). With ``MockUpstream.cache`` set (a :class:`~tests.mock_cache.PromptCache`), a reply
that scripts no usage reports the usage a caching upstream would: its input counts from the prompt
cache's model of that API (and Anthropic's 400 for more than 4 breakpoints).

Run standalone: ``python -m tests.mock_upstream --port 8001`` (answers every request with a default
text reply; Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto import events as wsevents

from tests.mock_cache import PromptCache, TooManyBreakpoints

__all__ = ["ToolCallSpec", "Reply", "Recorded", "MockUpstream", "ANTHROPIC_TO_CHAT_STOP",
           "RESPONSES_INCOMPLETE_REASON", "CODEX_PATH", "COUNT_TOKENS_PATH", "count_tokens_answer",
           "GEMINI_FINISH", "GEMINI_STATUS", "GEMINI_MODELS", "GEMINI_RESPONSE_ID", "SKIP_SIGNATURE",
           "gemini_signature", "gemini_usage", "gemini_body", "gemini_chunks", "gemini_events", "gemini_error",
           "gemini_refusal", "gemini_key_refusal"]

ANTHROPIC_TO_CHAT_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                          "tool_use": "tool_calls", "refusal": "content_filter"}
_ANTHROPIC_ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 429: "rate_limit_error", 500: "api_error",
                         529: "overloaded_error"}
_CHAT_ERROR_TYPE = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                    500: "server_error", 503: "server_error"}
_CHAT_ERROR_CODE = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
# A stop reason (Anthropic or Chat value) that ends a Responses answer as response.incomplete, and the
# incomplete_details.reason it gives; every other stop is status completed (formats.md §5.8).
RESPONSES_INCOMPLETE_REASON = {"max_tokens": "max_output_tokens", "length": "max_output_tokens",
                               "model_context_window_exceeded": "max_output_tokens",
                               "refusal": "content_filter", "content_filter": "content_filter"}
CODEX_PATH = "/backend-api/codex/responses"
CACHE_OUTPUT_TOKENS = 20  # the output a caching mock reports (its input counts come from the cache model)
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


def count_tokens_answer(body: bytes) -> int:
    """What ``POST /v1/messages/count_tokens`` answers as ``input_tokens``: the request body's length in
    bytes, so a test can tell a forwarded count from the bridge's own estimate (about a quarter of it)."""
    return len(body)


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call. ``kind="custom"`` is a freeform tool's call (Codex's apply_patch/exec): ``arguments``
    is then the raw input string, answered by Responses as a ``custom_tool_call``, and by Anthropic and
    Chat, which have no freeform tools, as a function call with the arguments ``{"input": <string>}``
    (how the bridge offers a freeform tool to them)."""

    id: str
    name: str
    arguments: dict[str, Any] | str  # an object is sent as JSON; a string is sent as is
    kind: str = "function"  # or "custom"

    @property
    def arguments_json(self) -> str:
        """The function arguments as JSON text (a custom call's input wrapped as {"input": …})."""
        if self.kind == "custom":
            return json.dumps({"input": self.arguments})
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    @property
    def custom_input(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """What the mock answers to one request, independent of the wire format it is rendered in."""

    text: str | None = "Hello from the mock."
    # Anthropic thinking / Chat reasoning_content / Responses reasoning summary / Gemini thought parts (only when
    # the request sets thinkingConfig.includeThoughts, as the API does; thoughtsTokenCount either way)
    reasoning: str | None = None
    # the Anthropic thinking signature; Responses: the encrypted_content; Gemini: thoughtSignature is its base64
    # (gemini_signature), on the first functionCall part or else the last part, "" for none
    signature: str = "mock-signature"
    redacted: str | None = None  # Anthropic only: a redacted_thinking block's data, after the thinking
    tool_calls: Sequence[ToolCallSpec] = ()
    # Anthropic value, mapped for Chat (a Chat value goes out as is) and for Gemini (GEMINI_FINISH; an upper-case
    # value goes out as is, e.g. "RECITATION"); None: by content
    stop: str | None = None
    usage: dict[str, Any] | None = None  # wire usage in the upstream's own format (Gemini: the final usageMetadata)
    model: str = "mock-upstream-model"
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    status: int = 200  # >= 400: answer the format's error JSON with error_message
    error_message: str = "mock upstream error"
    error_type: str | None = None  # default: by status (Gemini: the `status` name, e.g. "RESOURCE_EXHAUSTED")
    error_json: dict[str, Any] | None = None  # the whole error body, instead of one built from the fields above
    raw_error: bytes | None = None  # an error body that is not the format's JSON (e.g. a proxy's HTML page)
    error_after: int | None = None  # streamed: after N events send the format's in-stream error, then end
    # (Anthropic event: error, Chat data: {"error": …}, Responses response.failed with error_type as its code,
    # Gemini data: {"error": …} or an array element, 503 UNAVAILABLE unless error_type names another status)
    cut_after: int | None = None  # streamed: close the socket after N events, no chunked terminator
    end_after: int | None = None  # streamed: end the body cleanly after N events (terminal events lost)
    hold_after: int | None = None  # streamed: after N events wait until `release` is set (max 10 s)
    release: threading.Event = field(default_factory=threading.Event)
    aborted: threading.Event = field(default_factory=threading.Event)  # set when the peer went away mid-stream
    piece: int = 4  # characters per text/reasoning delta
    split: int | None = None  # streamed: write each event in chunks of this many bytes (splits UTF-8)
    crlf: bool = False  # streamed: CRLF line endings
    keepalive: bool = False  # streamed: a ": keep-alive" comment before every event (as OpenRouter does)
    as_json: bool = False  # answer one JSON body even when the request asks for a stream
    raw_body: bytes | None = None  # a 2xx/3xx answer sent as is (status, headers), not the format's JSON
    # streamed: after inject_after events write the raw bytes `inject` (garbage, a premature [DONE], an error
    # event the format builder does not make), then end the body cleanly
    inject: bytes = b""
    inject_after: int | None = None
    gemini_ids: bool = False  # Gemini: send functionCall.id (the Developer API sends none, gemini.md §6.1)
    # Gemini: a blocked prompt, a 200 with promptFeedback.blockReason (e.g. "PROHIBITED_CONTENT") and no candidates
    block_reason: str | None = None

    def wire_stop(self, fmt: str) -> str:
        stop = self.stop or ("tool_use" if self.tool_calls else "end_turn")
        if fmt == "gemini":
            return stop if stop.isupper() else GEMINI_FINISH.get(stop, "OTHER")
        return stop if fmt == "anthropic" else ANTHROPIC_TO_CHAT_STOP.get(stop, stop)

    def responses_status(self) -> tuple[str, str | None]:
        """(status, incomplete_details.reason) of the Responses answer."""
        reason = RESPONSES_INCOMPLETE_REASON.get(self.stop or "")
        return ("incomplete", reason) if reason else ("completed", None)


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any

    @property
    def all_header_values(self) -> str:
        return "\n".join(self.headers.values())


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _thirds(text: str) -> list[str]:
    n = max(len(text) // 3, 1)
    return [text[:n], text[n:2 * n], text[2 * n:]]


# --- Anthropic Messages rendering ---------------------------------------------------------------


def anthropic_usage(reply: Reply) -> dict[str, Any]:
    return dict(reply.usage) if reply.usage is not None else {"input_tokens": 12, "output_tokens": 7}


def anthropic_body(reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        content.append({"type": "thinking", "thinking": reply.reasoning, "signature": reply.signature})
    if reply.redacted is not None:
        content.append({"type": "redacted_thinking", "data": reply.redacted})
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name,
                        "input": json.loads(call.arguments_json)})
    return {"id": "msg_mock0001", "type": "message", "role": "assistant", "model": reply.model,
            "content": content, "stop_reason": reply.wire_stop("anthropic"), "stop_sequence": None,
            "usage": anthropic_usage(reply)}


def anthropic_events(reply: Reply) -> list[bytes]:
    usage = anthropic_usage(reply)
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    message = {"id": "msg_mock0001", "type": "message", "role": "assistant", "model": reply.model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": message}),
                                                ("ping", {"type": "ping"})]

    def block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        events.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                      for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    index = 0
    if reply.reasoning is not None:
        block(index, {"type": "thinking", "thinking": "", "signature": ""},
              [{"type": "thinking_delta", "thinking": p} for p in _pieces(reply.reasoning, reply.piece)]
              + [{"type": "signature_delta", "signature": reply.signature}])
        index += 1
    if reply.redacted is not None:
        block(index, {"type": "redacted_thinking", "data": reply.redacted}, [])
        index += 1
    if reply.text is not None:
        block(index, {"type": "text", "text": ""},
              [{"type": "text_delta", "text": p} for p in _pieces(reply.text, reply.piece)])
        index += 1
    for call in reply.tool_calls:
        # The API streams an empty input as one empty fragment; the block start's input {} stands.
        fragments = [""] if call.arguments == {} else ["", *_thirds(call.arguments_json)]
        block(index, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
              [{"type": "input_json_delta", "partial_json": p} for p in fragments])
        index += 1
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.wire_stop("anthropic"), "stop_sequence": None},
                                     "usage": {"output_tokens": usage.get("output_tokens", 0)}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


# --- Chat Completions rendering -----------------------------------------------------------------


def chat_usage(reply: Reply) -> dict[str, Any]:
    return dict(reply.usage) if reply.usage is not None else {"prompt_tokens": 12, "completion_tokens": 7,
                                                              "total_tokens": 19}


def chat_body(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments_json}}
                                 for c in reply.tool_calls]
    return {"id": "chatcmpl-mock0001", "object": "chat.completion", "created": 1700000000, "model": reply.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": reply.wire_stop("chat")}],
            "usage": chat_usage(reply), "system_fingerprint": None}


def chat_events(reply: Reply, include_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-mock0001", "object": "chat.completion.chunk", "created": 1700000000,
            "model": reply.model, "system_fingerprint": None}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    first_content = "" if reply.text is not None or not reply.tool_calls else None
    chunks = [chunk({"role": "assistant", "content": first_content, "refusal": None})]
    if reply.reasoning is not None:
        chunks += [chunk({"reasoning_content": p}) for p in _pieces(reply.reasoning, reply.piece)]
    if reply.text is not None:
        chunks += [chunk({"content": p}) for p in _pieces(reply.text, reply.piece)]
    for i, call in enumerate(reply.tool_calls):
        chunks.append(chunk({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                   for p in _thirds(call.arguments_json)]
    chunks.append(chunk({}, reply.wire_stop("chat")))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": chat_usage(reply)})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


# --- Responses rendering ------------------------------------------------------------------------


def responses_usage(reply: Reply) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    return {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19}


def response_object(reply: Reply, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                    request: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Response (formats.md §3.4); like the API it echoes some request settings."""
    request = request or {}
    reason = reply.responses_status()[1] if status == "incomplete" else None
    return {"id": "resp_mock0001", "object": "response", "created_at": 1700000000, "status": status,
            "background": False, "error": None, "incomplete_details": {"reason": reason} if reason else None,
            "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
            "model": reply.model, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "store": request.get("store", True),
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
            "top_p": 1.0, "truncation": "disabled", "usage": usage, "metadata": {}}


def _reasoning_item(reply: Reply, done: bool) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": reply.reasoning}] if done else []
    item: dict[str, Any] = {"id": "rs_mock0001", "type": "reasoning", "summary": summary}
    if done:  # the encrypted payload is whole only in output_item.done (formats.md §3.2)
        item["encrypted_content"] = reply.signature
    return item


def _message_item(text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": "msg_mock0001", "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(call: ToolCallSpec, n: int, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if call.kind == "custom":
        return {"id": f"ctc_mock{n:04d}", "type": "custom_tool_call", "status": status, "call_id": call.id,
                "name": call.name, "input": call.custom_input if done else ""}
    return {"id": f"fc_mock{n:04d}", "type": "function_call", "status": status, "call_id": call.id,
            "name": call.name, "arguments": call.arguments_json if done else ""}


def responses_output(reply: Reply) -> list[dict[str, Any]]:
    status = reply.responses_status()[0]
    output = []
    if reply.reasoning is not None:
        output.append(_reasoning_item(reply, True))
    if reply.text is not None:
        output.append(_message_item(reply.text, "incomplete" if status == "incomplete" else "completed"))
    output += [_call_item(call, n, True) for n, call in enumerate(reply.tool_calls, 1)]
    return output


def responses_body(reply: Reply, request: dict[str, Any] | None = None) -> dict[str, Any]:
    return response_object(reply, reply.responses_status()[0], responses_output(reply), responses_usage(reply),
                           request)


def responses_events(reply: Reply, request: dict[str, Any] | None = None) -> list[bytes]:
    """The Responses stream (formats.md §4.4): lifecycle events, each output item bracketed by
    output_item.added/.done with its deltas between, then the terminal event with the full output."""
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    status, _ = reply.responses_status()
    shell = response_object(reply, "in_progress", [], None, request)
    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    done_items = responses_output(reply)
    index = 0
    if reply.reasoning is not None:
        item, ref = done_items[index], {"item_id": "rs_mock0001", "output_index": index}
        emit("response.output_item.added", output_index=index, item=_reasoning_item(reply, False))
        emit("response.reasoning_summary_part.added", **ref, summary_index=0, part={"type": "summary_text", "text": ""})
        for piece in _pieces(reply.reasoning, reply.piece):
            emit("response.reasoning_summary_text.delta", **ref, summary_index=0, delta=piece)
        emit("response.reasoning_summary_text.done", **ref, summary_index=0, text=reply.reasoning)
        emit("response.reasoning_summary_part.done", **ref, summary_index=0,
             part={"type": "summary_text", "text": reply.reasoning})
        emit("response.output_item.done", output_index=index, item=item)
        index += 1
    if reply.text is not None:
        item, ref = done_items[index], {"item_id": "msg_mock0001", "output_index": index}
        emit("response.output_item.added", output_index=index, item=_message_item(None, "in_progress"))
        emit("response.content_part.added", **ref, content_index=0,
             part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        for piece in _pieces(reply.text, reply.piece):
            emit("response.output_text.delta", **ref, content_index=0, delta=piece, logprobs=[])
        emit("response.output_text.done", **ref, content_index=0, text=reply.text, logprobs=[])
        emit("response.content_part.done", **ref, content_index=0, part=item["content"][0])
        emit("response.output_item.done", output_index=index, item=item)
        index += 1
    for n, call in enumerate(reply.tool_calls, 1):
        item = done_items[index]
        ref = {"item_id": item["id"], "output_index": index}
        emit("response.output_item.added", output_index=index, item=_call_item(call, n, False))
        if call.kind == "custom":
            for piece in _thirds(call.custom_input):
                emit("response.custom_tool_call_input.delta", **ref, delta=piece)
            emit("response.custom_tool_call_input.done", **ref, input=call.custom_input)
        else:
            for piece in _thirds(call.arguments_json):
                emit("response.function_call_arguments.delta", **ref, delta=piece)
            emit("response.function_call_arguments.done", **ref, name=call.name, arguments=call.arguments_json)
        emit("response.output_item.done", output_index=index, item=item)
        index += 1
    final = response_object(reply, status, done_items, responses_usage(reply), request)
    emit("response.completed" if status == "completed" else "response.incomplete", response=final)
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def codex_refusal(body: Any) -> str | None:
    """What the ChatGPT Codex backend says (HTTP 400 ``{"detail": …}``) to a body it refuses (§6.6)."""
    if not isinstance(body, dict):
        return "Invalid request body"
    if body.get("store") is not False:  # public Responses defaults store to true
        return "Store must be set to false"
    if body.get("stream") is not True:
        return "Stream must be set to true"
    if not isinstance(body.get("instructions"), str):
        return "Instructions are required"
    for key in ("max_output_tokens", "temperature", "top_p"):
        if key in body:
            return f"Unsupported parameter: {key}"
    return None


# --- Gemini rendering (gemini.md §3, §4) ----------------------------------------------------------

# POST /{v1beta|v1}/models/{model}:{method} (gemini.md §1.1: both API versions are in use; tuned models too)
GEMINI_POST_PATH = re.compile(r"/(v1beta|v1)/((?:models|tunedModels)/[^/:]+):(generateContent|streamGenerateContent|"
                              r"countTokens)$")
GEMINI_MODELS_PATH = re.compile(r"/(v1beta|v1)/models(?:/([^/:]+))?$")
GEMINI_RESPONSE_ID = "mockGeminiResponse0001"
# The sentinel the API accepts in place of a signature for history it did not produce (gemini.md §7).
SKIP_SIGNATURE = "skip_thought_signature_validator"
# A stop reason as scripted (Anthropic or Chat value) → finishReason (gemini.md §3.2, §9.10). A turn that calls
# functions ends with STOP: the API has no tool-use reason (§3.1).
GEMINI_FINISH = {"end_turn": "STOP", "stop_sequence": "STOP", "pause_turn": "STOP", "tool_use": "STOP",
                 "stop": "STOP", "tool_calls": "STOP", "max_tokens": "MAX_TOKENS", "length": "MAX_TOKENS",
                 "model_context_window_exceeded": "MAX_TOKENS", "refusal": "SAFETY", "content_filter": "SAFETY"}
# HTTP status → google.rpc status name (gemini.md §5.1)
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}
GEMINI_MODELS = ("gemini-3-pro-preview", "gemini-3-flash-preview", "gemini-2.5-pro", "gemini-2.5-flash")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name)


def _field(obj: Any, snake: str) -> Any:
    """A request field under either spelling: the API reads camelCase and snake_case names at every level
    (gemini.md §2.2), and google-genai really sends snake_case below the top level."""
    if not isinstance(obj, dict):
        return None
    return obj[snake] if snake in obj else obj.get(_camel(snake))


def _thinking_config(request: Any) -> Any:
    return _field(_field(request, "generation_config"), "thinking_config")


def gemini_signature(reply: Reply) -> str | None:
    """The ``thoughtSignature`` the mock sends for ``reply.signature`` (None for ``""``): bytes on the wire, so
    base64, standard alphabet with padding as the API writes it (gemini.md §2.2). The Python SDK sends it back
    URL-safe: compare decoded bytes."""
    return base64.b64encode(reply.signature.encode()).decode() if reply.signature else None


def gemini_usage(reply: Reply) -> dict[str, Any]:
    """The final usageMetadata: the scripted one, or a default (gemini.md §3.3: candidates exclude thoughts)."""
    if reply.usage is not None:
        return dict(reply.usage)
    usage: dict[str, Any] = {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]}
    if reply.reasoning is not None:
        usage |= {"thoughtsTokenCount": 5, "totalTokenCount": 24}
    return usage


def _usage_so_far(usage: dict[str, Any], k: int, n: int) -> dict[str, Any]:
    """Chunk k of n: usage is cumulative on every chunk (gemini.md §4.3 item 6), so the prompt and thoughts are
    whole from the first chunk and the candidates grow to the final count, which only the last chunk has. A
    client that adds chunks up, or keeps the first, gets a wrong count."""
    if k >= n or "candidatesTokenCount" not in usage:
        return dict(usage)
    whole = int(usage["candidatesTokenCount"])
    partial = dict(usage, candidatesTokenCount=whole * k // n)
    if "totalTokenCount" in usage:
        partial["totalTokenCount"] = int(usage["totalTokenCount"]) - whole + partial["candidatesTokenCount"]
    return partial


def _gemini_args(call: ToolCallSpec) -> Any:
    try:
        return json.loads(call.arguments_json)  # an object, unless the script asks for broken arguments
    except ValueError:
        return call.arguments_json


def _call_parts(reply: Reply) -> list[dict[str, Any]]:
    """Whole functionCall parts (gemini.md §4.3 item 3); only the first carries the signature (§7, §6.2), and
    no id unless the script asks (the Developer API sends none, §6.1)."""
    parts: list[dict[str, Any]] = []
    for n, call in enumerate(reply.tool_calls):
        function_call: dict[str, Any] = {"name": call.name, "args": _gemini_args(call)}
        if reply.gemini_ids:
            function_call = {"id": call.id, **function_call}
        part: dict[str, Any] = {"functionCall": function_call}
        if n == 0 and (signature := gemini_signature(reply)):
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _gemini_response(reply: Reply, parts: list[dict[str, Any]] | None, usage: dict[str, Any],
                     finish: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {}
    if parts is None:  # a blocked prompt: a 200 with promptFeedback and no candidates (gemini.md §3.1)
        response["promptFeedback"] = {"blockReason": reply.block_reason}
    else:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = reply.wire_stop("gemini")
        response["candidates"] = [candidate]
    return response | {"usageMetadata": usage, "modelVersion": reply.model, "responseId": GEMINI_RESPONSE_ID}


def _thought_parts(reply: Reply, request: Any) -> bool:
    """Thought parts only when the request asks for them (gemini.md §4.3 item 1); thoughtsTokenCount either way."""
    return reply.reasoning is not None and bool(_field(_thinking_config(request), "include_thoughts"))


def gemini_body(reply: Reply, request: Any = None) -> dict[str, Any]:
    """One GenerateContentResponse (gemini.md §3). Without calls the signature rides on the last part, after
    any thought part (§7)."""
    if reply.block_reason is not None:
        return _gemini_response(reply, None, gemini_usage(reply))
    parts: list[dict[str, Any]] = []
    if _thought_parts(reply, request):
        parts.append({"text": reply.reasoning, "thought": True})
    if reply.text is not None:
        parts.append({"text": reply.text})
    parts += _call_parts(reply)
    if not reply.tool_calls:
        if not parts or parts[-1].get("thought"):
            parts.append({"text": ""})
        if signature := gemini_signature(reply):
            parts[-1]["thoughtSignature"] = signature
    return _gemini_response(reply, parts, gemini_usage(reply))


def gemini_chunks(reply: Reply, request: Any = None) -> list[dict[str, Any]]:
    """The stream's GenerateContentResponse chunks (gemini.md §4.3): thought pieces, text pieces, the calls whole
    in one chunk, then a last chunk with an empty text part (carrying the signature when there is no call, as
    Gemini 3 does) and the finishReason; cumulative usage on each."""
    usage = gemini_usage(reply)
    if reply.block_reason is not None:
        return [_gemini_response(reply, None, usage)]
    chunk_parts: list[list[dict[str, Any]]] = []
    if _thought_parts(reply, request):
        chunk_parts += [[{"text": p, "thought": True}] for p in _pieces(reply.reasoning or "", reply.piece)]
    if reply.text is not None:
        chunk_parts += [[{"text": p}] for p in _pieces(reply.text, reply.piece)]
    if reply.tool_calls:
        chunk_parts.append(_call_parts(reply))
    last: dict[str, Any] = {"text": ""}
    if not reply.tool_calls and (signature := gemini_signature(reply)):
        last["thoughtSignature"] = signature
    chunk_parts.append([last])
    n = len(chunk_parts)
    return [_gemini_response(reply, parts, _usage_so_far(usage, k, n), finish=k == n)
            for k, parts in enumerate(chunk_parts, 1)]


def gemini_events(chunks: list[dict[str, Any]], sse: bool) -> list[bytes]:
    """With ``alt=sse`` one ``data: {…}`` event per chunk, no event names, no sentinel (gemini.md §4.1);
    without it one JSON array, written an element at a time, the ``]`` last (§4.2)."""
    if sse:
        return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
    return [(b"[" if n == 0 else b",\r\n") + json.dumps(c).encode() for n, c in enumerate(chunks)] + [b"]"]


def gemini_error(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """Google's error body (gemini.md §5.1): ``error`` first, with a numeric code, or the SDK misreads it (§4.4)."""
    return {"error": {"code": code, "message": message, "status": status or GEMINI_STATUS.get(code, "UNKNOWN")}}


def gemini_model(model_id: str) -> dict[str, Any]:
    """A Model as ``GET /v1beta/models`` lists it (gemini.md §1.1)."""
    return {"name": f"models/{model_id}", "version": "001", "displayName": model_id,
            "description": f"{model_id}, served by the mock upstream", "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"],
            "temperature": 1.0, "maxTemperature": 2.0, "topP": 0.95, "topK": 64, "thinking": True}


def gemini_stream_error(reply: Reply) -> dict[str, Any]:
    """The error a live stream ends with (gemini.md §4.6): 503 UNAVAILABLE, or the status named by error_type."""
    code = next((c for c, name in GEMINI_STATUS.items() if name == reply.error_type), 503)
    return reply.error_json or gemini_error(code, reply.error_message, reply.error_type)


def gemini_models_page(models: Sequence[str], query: dict[str, list[str]]) -> dict[str, Any]:
    """One page of the models list: ``pageSize`` (default 50, max 1000) and ``pageToken`` (gemini.md §1.1)."""
    size = min(int((query.get("pageSize") or ["50"])[0]), 1000)
    start = int((query.get("pageToken") or ["0"])[0] or 0)
    page: dict[str, Any] = {"models": [gemini_model(m) for m in models[start:start + size]]}
    if start + size < len(models):
        page["nextPageToken"] = str(start + size)
    return page


# --- Gemini: what the real API refuses (gemini.md §5.2) ---------------------------------------------

_BAD_KEY = "API key not valid. Please pass a valid API key."
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
           "or other form of API consumer identity to call this API.")
_BAD_NAME = ("Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
             "underscores (_), dots (.) or dashes (-), with a maximum length of 64.")
_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_BAD_ROLE = "Please use a valid role: user, model."
_NO_CALL_TURN = "Please ensure that function response turn comes immediately after a function call turn."
_COUNT_MISMATCH = ("Please ensure that the number of function response parts is equal to the number of function "
                   "call parts of the function call turn.")
_INVALID = "Request contains an invalid argument."
_MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required for "
                      "tools to work correctly, and missing thought_signature may lead to degraded model "
                      "performance. Additional data, function call `default_api:{name}` , position {position}. "
                      "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
_PART_DATA = ("text", "inline_data", "file_data", "function_call", "function_response", "executable_code",
              "code_execution_result", "tool_call", "tool_response")  # Part's oneof `data` (gemini.md §2.4)

# The request messages as the proto parser knows them (snake_case names; gemini.md §2, SDK 3.3.0 types and its
# Developer-API converters). `stream` is not a field (the method says it, §1.1); `model` is one in the proto
# (countTokens' generateContentRequest carries it, §1.1), so it is not refused, though clients send it in the
# path only. Kinds: "scalar", "scalar[]", "any" (free JSON, not walked: args, response,
# parametersJsonSchema…), "bytes" (base64), "string[]" (Schema.enum), a message name, "Msg[]", "map:Msg".
_S, _SS, _ANY = "scalar", "scalar[]", "any"
_GEMINI_MESSAGES: dict[str, dict[str, str]] = {
    "GenerateContentRequest": {
        "model": _S, "contents": "Content[]", "system_instruction": "Content", "tools": "Tool[]",
        "tool_config": "ToolConfig", "safety_settings": "any[]", "generation_config": "GenerationConfig",
        "cached_content": _S, "labels": _ANY, "service_tier": _S, "store": _S, "continuation_token": _ANY},
    "CountTokensRequest": {"contents": "Content[]", "generate_content_request": "GenerateContentRequest"},
    "Content": {"role": _S, "parts": "Part[]"},
    "Part": {"text": _S, "inline_data": "Blob", "file_data": _ANY, "function_call": "FunctionCall",
             "function_response": "FunctionResponse", "executable_code": _ANY, "code_execution_result": _ANY,
             "tool_call": _ANY, "tool_response": _ANY, "thought": _S, "thought_signature": "bytes",
             "video_metadata": _ANY, "media_resolution": _ANY, "part_metadata": _ANY},
    "Blob": {"mime_type": _S, "data": "bytes", "display_name": _S},
    # partialArgs / willContinue are Vertex-only (gemini.md §4.3): unknown here
    "FunctionCall": {"id": _S, "name": _S, "args": _ANY},
    "FunctionResponse": {"id": _S, "name": _S, "response": _ANY, "parts": "any[]", "will_continue": _S,
                         "scheduling": _S},
    "Tool": {"function_declarations": "FunctionDeclaration[]", "google_search": _ANY, "google_search_retrieval": _ANY,
             "code_execution": _ANY, "url_context": _ANY, "file_search": _ANY, "google_maps": _ANY,
             "computer_use": _ANY, "mcp_servers": "any[]"},
    "FunctionDeclaration": {"name": _S, "description": _S, "parameters": "Schema", "parameters_json_schema": _ANY,
                            "response": "Schema", "response_json_schema": _ANY, "behavior": _S},
    "ToolConfig": {"function_calling_config": "FunctionCallingConfig", "retrieval_config": _ANY,
                   "include_server_side_tool_invocations": _S},
    "FunctionCallingConfig": {"mode": _S, "allowed_function_names": _SS},
    "GenerationConfig": {
        "temperature": _S, "top_p": _S, "top_k": _S, "candidate_count": _S, "max_output_tokens": _S,
        "stop_sequences": _SS, "response_logprobs": _S, "logprobs": _S, "presence_penalty": _S,
        "frequency_penalty": _S, "seed": _S, "response_mime_type": _S, "response_schema": "Schema",
        "response_json_schema": _ANY, "response_modalities": _SS, "media_resolution": _S, "speech_config": _ANY,
        "thinking_config": "ThinkingConfig", "image_config": _ANY, "enable_enhanced_civic_answers": _S,
        "audio_transcription_config": _ANY},
    "ThinkingConfig": {"include_thoughts": _S, "thinking_budget": _S, "thinking_level": _S},
    # The OpenAPI-subset Schema of `parameters` (gemini.md §6.5); additionalProperties, $schema, const,
    # exclusiveMinimum… are not fields of it, so the API answers "Unknown name" (§5.2).
    "Schema": {"type": _S, "format": _S, "title": _S, "description": _S, "nullable": _S, "enum": "string[]",
               "items": "Schema", "min_items": _S, "max_items": _S, "min_length": _S, "max_length": _S,
               "pattern": _S, "minimum": _S, "maximum": _S, "min_properties": _S, "max_properties": _S,
               "properties": "map:Schema", "required": _SS, "property_ordering": _SS, "any_of": "Schema[]",
               "default": _ANY, "example": _ANY, "ref": _S, "defs": "map:Schema"},
}


def _is_base64(text: str) -> bool:
    """What a bytes field accepts: standard or URL-safe base64, padded or not (gemini.md §2.2)."""
    core = text.rstrip("=")
    return (len(text) - len(core) <= 2 and len(core) % 4 != 1
            and re.fullmatch(r"[A-Za-z0-9+/_-]*", core) is not None)


def _parse_violations(obj: dict[str, Any], message: str, path: str) -> list[tuple[str, str]]:
    """What the proto JSON parser refuses in ``obj`` (a ``message``), as (field, description) pairs: unknown
    names under either spelling, a list for a field that is not repeated, a non-string enum value, bytes that
    are not base64 (gemini.md §5.2, §2.2). Unknown fields are refused at every level, not dropped: the
    "Unknown name … Cannot find field" of §5.2 and §6.5 is the proto parser's answer to any of them (§2.1)."""
    fields = _GEMINI_MESSAGES[message]
    at = f" at '{path}'" if path else ""  # the top level has no path in Google's message
    found: list[tuple[str, str]] = []
    for key, value in obj.items():
        snake = _snake(key)
        if snake not in fields or key not in (snake, _camel(snake)):
            found.append((path, f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'))
            continue
        kind, here = fields[snake], f"{path}.{snake}" if path else snake
        repeated, base = kind.endswith("[]"), kind.removesuffix("[]")
        if isinstance(value, list) and not repeated and base != _ANY:
            found.append((path, f'Invalid JSON payload received. Unknown name "{key}"{at}: Proto field is not '
                                f"repeating, cannot start list."))
            continue
        items = list(enumerate(value)) if repeated and isinstance(value, list) else [(None, value)]
        for i, item in items:
            where = here if i is None else f"{here}[{i}]"
            if base == "bytes" and isinstance(item, str) and not _is_base64(item):
                found.append((where, f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for "
                                     f'"{item}"'))
            elif base == "string" and not isinstance(item, str):
                found.append((where, f"Invalid value at '{where}' (TYPE_STRING), {json.dumps(item)}"))
            elif base in _GEMINI_MESSAGES and isinstance(item, dict):
                found += _parse_violations(item, base, where)
            elif base.startswith("map:") and isinstance(item, dict):
                for j, entry in enumerate(item.values()):
                    if isinstance(entry, dict):
                        found += _parse_violations(entry, base[4:], f"{where}[{j}].value")
    return found


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _role(content: dict[str, Any]) -> Any:
    return _field(content, "role") or "user"  # "If not set, the service will default to 'user'" (§2.3)


def _proto_problems(body: dict[str, Any]) -> list[str]:
    """The request validator's findings, each ``<field path>: <reason>`` (gemini.md §5.2, §2.3, §2.4, §6.4)."""
    problems: list[str] = []
    contents = _field(body, "contents")
    if not isinstance(contents, list) or not contents:
        problems.append("contents: contents is not specified")
    for i, content in enumerate(contents if isinstance(contents, list) else []):
        parts = _field(content, "parts")
        if not isinstance(parts, list) or not parts:
            problems.append(f"contents[{i}].parts: contents.parts must not be empty.")
            continue
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            if all(_field(part, name) is None for name in _PART_DATA):  # e.g. a thoughtSignature alone
                problems.append(f"contents[{i}].parts[{j}].data: required oneof field 'data' must have one "
                                f"initialized field")
            response = _field(part, "function_response")
            if isinstance(response, dict) and not _field(response, "name"):  # required (§6.1, pitfall 14)
                problems.append(f"contents[{i}].parts[{j}].function_response.name: Name cannot be empty.")
    for i, tool in enumerate(_dicts(_field(body, "tools"))):
        for j, declaration in enumerate(_dicts(_field(tool, "function_declarations"))):
            name = _field(declaration, "name")
            if not isinstance(name, str) or not _VALID_NAME.fullmatch(name):  # §6.4, the live API's rule
                problems.append(f"tools[{i}].function_declarations[{j}].name: {_BAD_NAME}")
    return problems


def _json_schema_problem(schema: Any, path: str = "") -> str | None:
    """``parametersJsonSchema`` is validated as JSON Schema (gemini.md §6.5, §5.2): a draft-04 boolean
    ``exclusiveMinimum`` is refused, for one."""
    if isinstance(schema, list):
        items: list[tuple[str, Any]] = [(str(i), v) for i, v in enumerate(schema)]
    elif isinstance(schema, dict):
        items = list(schema.items())
    else:
        return None
    for key, value in items:
        here = f"{path}.{key}" if path else key
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(schema, dict) and key in ("exclusiveMinimum", "exclusiveMaximum", "minimum", "maximum") \
                and not numeric:
            return f"value at {here} must be a number"
        if problem := _json_schema_problem(value, here):
            return problem
    return None


def _schema_problem(body: dict[str, Any]) -> str | None:
    for tool in _dicts(_field(body, "tools")):
        for declaration in _dicts(_field(tool, "function_declarations")):
            if problem := _json_schema_problem(_field(declaration, "parameters_json_schema")):
                return problem
    return None


def _role_problem(contents: list[dict[str, Any]]) -> str | None:
    # §2.3: no system or tool role inside contents; the API answers this for "assistant", "system", …
    return _BAD_ROLE if any(_role(c) not in ("user", "model") for c in contents) else None


def _calls(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for p in _dicts(_field(content, "parts")) if isinstance(c := _field(p, "function_call"), dict)]


def _function_turn_problem(contents: list[dict[str, Any]]) -> str | None:
    """Function responses must follow the model's call turn, one per call (§5.2, §6.2, §9.5) and answer a call
    by name (§6.1: the name is how the API pairs them; Vertex answers a bare INVALID_ARGUMENT to a wrong one)."""
    for i, content in enumerate(contents):
        responses = [r for p in _dicts(_field(content, "parts"))
                     if isinstance(r := _field(p, "function_response"), dict)]
        if not responses or _role(content) == "model":
            continue
        calls: list[dict[str, Any]] = []
        k = i - 1
        while k >= 0 and _role(contents[k]) == "model":  # one turn may span several model contents (§2.3)
            calls = _calls(contents[k]) + calls
            k -= 1
        if not calls:
            return _NO_CALL_TURN
        if len(responses) != len(calls):
            return _COUNT_MISMATCH
        if any(_field(r, "name") not in {_field(c, "name") for c in calls} for r in responses):
            return _INVALID
    return None


def _thinking_on(body: dict[str, Any], model: str) -> bool:
    """Thinking is on when thinkingConfig turns it on, and always on a Gemini 3 model (gemini.md §7, §2.7:
    thinkingBudget 0 is off)."""
    config = _thinking_config(body)
    budget = _field(config, "thinking_budget")
    try:
        if budget is not None and float(budget) == 0:
            return False
    except (TypeError, ValueError):  # not a number: the thinking config alone says thinking is on
        pass
    if _field(config, "thinking_level") or budget is not None or _field(config, "include_thoughts"):
        return True
    return model.startswith("gemini-3")


def _signature_problem(body: dict[str, Any], contents: list[dict[str, Any]], model: str) -> str | None:
    """gemini.md §7: only the current turn is validated, from the last user content that holds more than
    function responses; in it the first functionCall part of each model step must carry a thoughtSignature
    (the sentinel passes). The position is the content's, counted from 1 (Inference from the real messages:
    "position 2" for contents[1])."""
    if not _thinking_on(body, model):
        return None
    start = max((i for i, c in enumerate(contents) if _role(c) == "user"
                 and any(_field(p, "function_response") is None for p in _dicts(_field(c, "parts")))), default=-1)
    first_of_step = True
    for i in range(start + 1, len(contents)):
        if _role(contents[i]) != "model":
            first_of_step = True
            continue
        for part in _dicts(_field(contents[i], "parts")):
            call = _field(part, "function_call")
            if isinstance(call, dict) and first_of_step:
                first_of_step = False
                if not _field(part, "thought_signature"):
                    return _MISSING_SIGNATURE.format(name=_field(call, "name"), position=i + 1)
    return None


def _invalid(message: str, violations: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    body = gemini_error(400, message, "INVALID_ARGUMENT")
    if violations:  # how Google details parse errors (gemini.md §5.1: BadRequest fieldViolations)
        body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
            {"field": f, "description": d} if f else {"description": d} for f, d in violations]}]
    return body


def gemini_refusal(body: Any, model: str, method: str = "generateContent") -> dict[str, Any] | None:
    """The 400 INVALID_ARGUMENT body the real API answers to this request (gemini.md §5.2), or None when it
    would take it. Parse errors first (all of them, one per line), then the validator's (``* …`` lines), then
    the first semantic refusal. ``countTokens`` gets the parse checks only."""
    if not isinstance(body, dict):
        return _invalid("Invalid JSON payload received. Unexpected token.")
    root = "CountTokensRequest" if method == "countTokens" else "GenerateContentRequest"
    if violations := _parse_violations(body, root, ""):
        return _invalid("\n".join(d for _, d in violations), violations)
    if method == "countTokens":
        return None
    if problems := _proto_problems(body):
        return _invalid("".join(f"* GenerateContentRequest.{p}\n" for p in problems))
    contents = _dicts(_field(body, "contents"))
    problem = (_schema_problem(body) or _role_problem(contents) or _function_turn_problem(contents)
               or _signature_problem(body, contents, model))
    return _invalid(problem) if problem else None


def gemini_key_refusal(headers: dict[str, str], query: dict[str, list[str]],
                       key: str | None) -> tuple[int, dict[str, Any]] | None:
    """When the mock requires ``key``: the key comes in ``x-goog-api-key``, ``?key=`` or as a bearer token
    (gemini.md §1.2). None given is 403 PERMISSION_DENIED; a wrong one is 400, not 401 (§1.2, pitfall 13)."""
    if key is None:
        return None
    given = headers.get("x-goog-api-key") or (query.get("key") or [""])[0]
    if not given and headers.get("authorization", "").lower().startswith("bearer "):
        given = headers["authorization"][7:].strip()
    if not given:
        return 403, gemini_error(403, _NO_KEY, "PERMISSION_DENIED")
    if given != key:
        body = gemini_error(400, _BAD_KEY, "INVALID_ARGUMENT")
        body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                     "domain": "googleapis.com",
                                     "metadata": {"service": "generativelanguage.googleapis.com"}}]
        return 400, body
    return None


def error_body(fmt: str, reply: Reply, status: int) -> dict[str, Any]:
    if reply.error_json is not None:
        return reply.error_json
    if fmt == "gemini":
        return gemini_error(status, reply.error_message, reply.error_type)
    if fmt == "anthropic":
        kind = reply.error_type or _ANTHROPIC_ERROR_TYPE.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": reply.error_message}, "request_id": "req_mock"}
    kind = reply.error_type or _CHAT_ERROR_TYPE.get(status, "invalid_request_error")
    code = _CHAT_ERROR_CODE.get(status)  # OpenAI's 401/404/429 say what happened in `code`
    if status == 429:
        kind = reply.error_type or "requests"
    return {"error": {"message": reply.error_message, "type": kind, "param": None, "code": code}}


def stream_error_event(fmt: str, reply: Reply, sequence_number: int = 0) -> bytes:
    """The in-stream error after a 200 (Anthropic ``event: error``; Chat ``data: {"error": …}``;
    Responses ``response.failed`` whose ``response.error`` has the code and message; Gemini
    ``data: {"error": …}``, gemini.md §4.6)."""
    if fmt == "gemini":
        return f"data: {json.dumps(gemini_stream_error(reply))}\n\n".encode()
    if fmt == "anthropic":
        return f"event: error\ndata: {json.dumps(error_body(fmt, reply, 529))}\n\n".encode()
    if fmt == "responses":
        failed = response_object(reply, "failed", [], None)
        failed["error"] = {"code": reply.error_type or "server_error", "message": reply.error_message}
        event = {"type": "response.failed", "sequence_number": sequence_number, "response": failed}
        return f"event: response.failed\ndata: {json.dumps(event)}\n\n".encode()
    return f"data: {json.dumps(error_body(fmt, reply, 500))}\n\n".encode()


# --- the server ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one event, one segment

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _record(self, body: bytes, parsed: Any) -> None:
        self.server.mock._record(Recorded(method=self.command, path=self.path, body=body, json=parsed,
                                          headers={k.lower(): v for k, v in self.headers.items()}))

    def do_GET(self) -> None:
        bare, _, query = self.path.partition("?")
        if self.headers.get("upgrade", "").lower() == "websocket" and bare.rstrip("/").endswith("/responses"):
            self._serve_websocket()
            return
        route = GEMINI_MODELS_PATH.search(bare.rstrip("/"))
        if route is not None and route.group(1) == "v1" and "x-goog-api-key" not in self.headers \
                and "key" not in urllib.parse.parse_qs(query):
            route = None  # /v1/models is OpenAI's too: Gemini's only with a Gemini key
        if route is not None:
            self._record(b"", None)
            self._answer_gemini_models(route, urllib.parse.parse_qs(query))
            return
        self._send_json(404, {"error": {"message": f"no route for GET {self.path}", "type": "not_found"}})

    def _serve_websocket(self) -> None:
        """Responses over WebSocket, as the Codex backend and OpenAI serve it (codex-websocket.md §1): each
        ``response.create`` message is recorded (method ``WS``) and answered with the scripted reply's
        Responses events, one text frame each; a warm-up (``generate: false``) with an empty completed
        response, taking no reply. The connection keeps state: ``previous_response_id`` must name its
        last response, else ``previous_response_not_found``."""
        self.close_connection = True
        if not self.server.mock.websocket:
            self._send_json(404, {"error": {"message": "no WebSocket here", "type": "not_found"}})
            return
        if self.path.split("?")[0].rstrip("/").endswith(CODEX_PATH) and not self.server.mock.codex_authorized(
                self.headers):
            self._send_json(401, {"detail": "Your authentication token has expired."})
            return
        ws = WSConnection(ConnectionType.SERVER)
        head = f"GET {self.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        ws.receive_data((head + "\r\n").encode())
        if not any(isinstance(e, wsevents.Request) for e in ws.events()):
            return
        self.wfile.write(ws.send(wsevents.AcceptConnection()))
        self.wfile.flush()
        headers = {k.lower(): v for k, v in self.headers.items()}
        last: str | None = None
        text: list[str] = []
        while True:
            data = self.connection.recv(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, wsevents.TextMessage):
                    text.append(event.data)
                    if event.message_finished:
                        last = self._ws_turn(ws, "".join(text), headers, last)
                        text = []
                        if last == "cut":  # the scripted cut_after: the connection drops mid-answer
                            return
                elif isinstance(event, wsevents.Ping):
                    self.connection.sendall(ws.send(event.response()))
                elif isinstance(event, wsevents.CloseConnection):
                    self.connection.sendall(ws.send(event.response()))
                    return
            if not data:
                return

    def _ws_turn(self, ws: WSConnection, text: str, headers: dict[str, str], last: str | None) -> str | None:
        message = json.loads(text)
        self.server.mock._record(Recorded(method="WS", path=self.path, headers=headers, body=text.encode(),
                                          json=message))
        previous = message.get("previous_response_id")
        if previous is not None and previous != last:
            frames = [{"type": "error", "status": 400, "error": {
                "type": "invalid_request_error", "code": "previous_response_not_found",
                "message": f"Previous response with id '{previous}' not found."}}]
        elif message.get("generate") is False:
            frames = [json.loads(e.split(b"data: ", 1)[1]) for e in responses_events(Reply(text=None), message)]
            frames = [f for f in frames if f["type"] in ("response.created", "response.in_progress",
                                                            "response.completed")]
        else:
            reply = self.server.mock._take_reply()
            frames = [json.loads(e.split(b"data: ", 1)[1]) for e in responses_events(reply, message)]
            if reply.cut_after is not None:
                for frame in frames[:reply.cut_after]:
                    self.connection.sendall(ws.send(wsevents.TextMessage(data=json.dumps(frame))))
                return "cut"
        fresh = f"resp_ws{uuid.uuid4().hex[:20]}"  # each response its own id: the state check means something
        for frame in frames:
            if isinstance(frame.get("response"), dict):
                frame["response"]["id"] = fresh
            self.connection.sendall(ws.send(wsevents.TextMessage(data=json.dumps(frame))))
            if frame["type"] == "response.completed":
                last = fresh
        return last

    def do_POST(self) -> None:
        body = self._read_body()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        self._record(body, parsed)
        bare, _, query = self.path.partition("?")
        bare = bare.rstrip("/")
        if (route := GEMINI_POST_PATH.search(bare)) is not None:
            self._answer_gemini(route, urllib.parse.parse_qs(query), parsed, body)
            return
        if bare.endswith(COUNT_TOKENS_PATH):  # takes no scripted reply: the count is the body's size
            self._send_json(200, {"input_tokens": count_tokens_answer(body)})
            return
        if bare.endswith("/v1/messages"):
            fmt = "anthropic"
        elif bare.endswith("/chat/completions"):
            fmt = "chat"
        elif bare.endswith("/responses"):
            fmt = "responses"
        else:
            self._send_json(404, {"error": {"message": f"no route for POST {self.path}", "type": "not_found"}})
            return
        if bare.endswith(CODEX_PATH) and not self.server.mock.codex_authorized(self.headers):
            self._send_json(401, {"detail": "Your authentication token has expired. Please try signing in again."})
            return
        reply = self.server.mock._take_reply()
        if bare.endswith(CODEX_PATH) and (refusal := codex_refusal(parsed)) is not None:
            self._send_json(400, {"detail": refusal})
            return
        stream = isinstance(parsed, dict) and parsed.get("stream") is True
        request = parsed if isinstance(parsed, dict) else {}
        if (reply := self._cached(fmt, reply, request)) is None:
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))

        def answer() -> Any:
            if fmt == "responses":
                return responses_body(reply, request)
            return anthropic_body(reply) if fmt == "anthropic" else chat_body(reply)

        def events() -> list[bytes]:
            if fmt == "anthropic":
                return anthropic_events(reply)
            return chat_events(reply, include_usage) if fmt == "chat" else responses_events(reply, request)

        self._send_reply(fmt, reply, answer, events if stream else None)

    def _answer_gemini(self, route: re.Match[str], query: dict[str, list[str]], parsed: Any, body: bytes) -> None:
        """A Gemini POST: the key and the request checked as the real API checks them (a refused request takes
        no scripted reply), then countTokens' count or the next reply, as SSE with ``alt=sse`` and as a JSON
        array without it (gemini.md §4.2)."""
        mock = self.server.mock
        model, method = route.group(2).rpartition("/")[2], route.group(3)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if (key_refusal := gemini_key_refusal(headers, query, mock.gemini_api_key)) is not None:
            self._send_json(*key_refusal)
            return
        if (refusal := gemini_refusal(parsed, model, method)) is not None:
            self._send_json(400, refusal)
            return
        if method == "countTokens":  # like Anthropic's count: the body's size, unlike any local estimate
            self._send_json(200, {"totalTokens": count_tokens_answer(body)})
            return
        reply = self._cached("gemini", mock._take_reply(), parsed, model)
        if reply is None:
            return
        if method == "generateContent":
            self._send_reply("gemini", reply, lambda: gemini_body(reply, parsed), None)
            return
        sse = query.get("alt") == ["sse"]
        after = reply.error_after or 0
        array_error = (b",\r\n" if after else b"[") + json.dumps(gemini_stream_error(reply)).encode() + b"]"
        self._send_reply("gemini", reply, lambda: gemini_body(reply, parsed),
                         lambda: gemini_events(gemini_chunks(reply, parsed), sse),
                         "text/event-stream" if sse else "application/json; charset=UTF-8",
                         None if sse else array_error)

    def _cached(self, fmt: str, reply: Reply, request: Any, model: str = "") -> Reply | None:
        """The reply with the usage the mock's prompt cache reports, when it has one and the reply scripts
        none; None when the request was refused (too many Anthropic breakpoints, as the API refuses them)."""
        cache = self.server.mock.cache
        if cache is None or reply.usage is not None or reply.status >= 400:
            return reply
        try:
            usage = cache.usage(fmt, request if isinstance(request, dict) else {}, CACHE_OUTPUT_TOKENS, model)
        except TooManyBreakpoints as e:
            self._send_json(400, error_body(fmt, replace(reply, error_message=str(e)), 400))
            return None
        return replace(reply, usage=usage)

    def _answer_gemini_models(self, route: re.Match[str], query: dict[str, list[str]]) -> None:
        mock = self.server.mock
        headers = {k.lower(): v for k, v in self.headers.items()}
        if (key_refusal := gemini_key_refusal(headers, query, mock.gemini_api_key)) is not None:
            self._send_json(*key_refusal)
        elif route.group(2):  # any model id is served, as any is answered
            self._send_json(200, gemini_model(route.group(2)))
        else:
            self._send_json(200, gemini_models_page(mock.gemini_models, query))

    def _send_reply(self, fmt: str, reply: Reply, answer: Callable[[], Any], events: Callable[[], list[bytes]] | None,
                    content_type: str = "text/event-stream; charset=utf-8", error_event: bytes | None = None) -> None:
        """Answer with ``reply``: its raw body or error first, then one JSON body (``answer``) when no stream was
        asked for (``events`` None) or the reply says ``as_json``, else the stream with the reply's faults."""
        if reply.raw_body is not None:
            self._send_raw(reply.status, reply.raw_body, reply.headers.get("content-type", "text/plain"), reply)
            return
        if reply.status >= 400 and reply.raw_error is not None:
            self._send_raw(reply.status, reply.raw_error, reply.headers.get("content-type", "text/html"), reply)
            return
        if reply.status >= 400:
            self._send_json(reply.status, error_body(fmt, reply, reply.status), reply)
            return
        if events is None or reply.as_json:
            self._send_json(200, answer(), reply)
            return
        frames = events()
        if reply.error_after is not None:
            error = error_event if error_event is not None else stream_error_event(fmt, reply, reply.error_after)
            frames = [*frames[:reply.error_after], error]
        if reply.inject_after is not None:
            frames = [*frames[:reply.inject_after], reply.inject]
        if reply.keepalive:
            frames = [b": keep-alive\n\n" + e for e in frames]
        if reply.crlf:
            frames = [e.replace(b"\n", b"\r\n") for e in frames]
        self._send_stream(frames, reply, content_type)

    def _send_json(self, status: int, obj: Any, reply: Reply | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (reply.headers if reply else {}).items():
            self.send_header(name, value)
        self.end_headers()
        if reply is not None and reply.cut_after is not None:  # shorter than its content-length, then closed
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)
        self.wfile.flush()

    def _send_raw(self, status: int, data: bytes, content_type: str, reply: Reply | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in (reply.headers if reply else {}).items():
            if name.lower() != "content-type":  # e.g. retry-after on an HTML error page
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, events: list[bytes], reply: Reply,
                     content_type: str = "text/event-stream; charset=utf-8") -> None:
        try:
            self._write_events(events, reply, content_type)
        except OSError:  # BrokenPipeError, ConnectionResetError: the bridge closed the connection
            reply.aborted.set()
            self.close_connection = True

    def _write_events(self, events: list[bytes], reply: Reply, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        for n, event in enumerate(events):
            if n == reply.cut_after:
                self.close_connection = True  # FIN without the terminating 0-size chunk
                return
            if n == reply.end_after:
                break
            if n == reply.hold_after:
                reply.release.wait(10)
            step = reply.split or len(event)
            for piece in (event[i:i + step] for i in range(0, len(event), step)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                if reply.split:
                    time.sleep(0.0002)  # with TCP_NODELAY, most pieces reach the bridge one by one
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-stream (a test that stops reading) is not an error here

    def __init__(self, address: tuple[str, int], mock: MockUpstream) -> None:
        self.mock = mock
        super().__init__(address, _Handler)


class MockUpstream:
    """The server and its script. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._replies: list[Reply] = []
        self._requests: list[Recorded] = []
        self.gemini_api_key: str | None = None  # Gemini: the key every request must carry (None: any or none)
        self.gemini_models: list[str] = list(GEMINI_MODELS)  # Gemini: what GET /v1beta/models lists
        self.codex_tokens: set[str] | None = None  # the Codex backend: the bearer tokens it takes (None: any)
        self.websocket = True  # …/responses takes a WebSocket upgrade (False: 404, as most Responses servers)
        self.codex_account: str | None = None  # … and the chatgpt-account-id it wants with them
        self.cache: PromptCache | None = None  # answers usage as a caching upstream would (tests/mock_cache.py)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockUpstream:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mock-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- script and records ---

    def next_reply(self, reply: Reply | None = None, **fields: Any) -> Reply:
        """Queue the answer to the next request: a :class:`Reply`, or its fields as keywords."""
        reply = reply or Reply(**fields)
        with self._lock:
            self._replies.append(reply)
        return reply

    def reset(self) -> None:
        with self._lock:
            for reply in self._replies:
                reply.release.set()
            self._replies.clear()
            self._requests.clear()
            self.gemini_api_key = None
            self.gemini_models = list(GEMINI_MODELS)
            self.codex_tokens = None
            self.codex_account = None
            self.websocket = True
            self.cache = None

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Recorded:
        requests = self.requests
        assert requests, "the mock upstream received no request"
        return requests[-1]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    def codex_authorized(self, headers: Any) -> bool:
        """Whether a Codex backend request carries a token (and account) this mock takes."""
        with self._lock:
            tokens, account = self.codex_tokens, self.codex_account
        if tokens is None:
            return True
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and token in tokens and headers.get("chatgpt-account-id") == account

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    def _take_reply(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if self._replies else Reply()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    mock = MockUpstream(args.host, args.port)
    print(f"mock upstream listening on http://{args.host}:{mock.port}", flush=True)
    try:
        mock._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        mock._server.server_close()


if __name__ == "__main__":
    main()
