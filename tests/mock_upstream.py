"""A scripted mock LLM upstream that speaks Anthropic Messages, OpenAI Chat Completions and Responses.

``POST /v1/messages`` answers in the Anthropic format, ``POST …/chat/completions`` in the Chat format,
``POST …/responses`` in the Responses format (formats.md §3, §4.4). ``POST …/backend-api/codex/responses``
plays the ChatGPT Codex backend: it refuses what that backend refuses (formats.md §6.6) with HTTP 400
and a FastAPI-style ``{"detail": …}`` body, and otherwise answers like Responses.
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": <the body's length in bytes>}`` (no
scripted reply is taken). Every POST is recorded (method, path with query, headers, raw body, parsed
JSON). Each answer comes from the next :class:`Reply` queued with :meth:`MockUpstream.next_reply` (a
default text reply when the queue is empty) and is rendered in the format of the path: one JSON body,
or, when the request says ``"stream": true``, real SSE over chunked transfer encoding with one write
and flush per event. Faults: an HTTP error status with the format's error JSON, an in-stream error
(Responses: ``response.failed``), a connection cut mid-stream (no chunked terminator), a stream
that ends cleanly before its terminal event, and raw bytes injected mid-stream (garbage, ``[DONE]``).

Run standalone: ``python -m tests.mock_upstream --port 8001`` (answers every request with a default
text reply; Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ToolCallSpec", "Reply", "Recorded", "MockUpstream", "ANTHROPIC_TO_CHAT_STOP",
           "RESPONSES_INCOMPLETE_REASON", "CODEX_PATH", "COUNT_TOKENS_PATH", "count_tokens_answer"]

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
    reasoning: str | None = None  # Anthropic thinking / Chat reasoning_content / Responses reasoning summary
    signature: str = "mock-signature"  # the Anthropic thinking signature; Responses: the encrypted_content
    redacted: str | None = None  # Anthropic only: a redacted_thinking block's data, after the thinking
    tool_calls: Sequence[ToolCallSpec] = ()
    stop: str | None = None  # Anthropic value, mapped for Chat (a Chat value goes out as is); None: by content
    usage: dict[str, Any] | None = None  # wire usage in the upstream's own format
    model: str = "mock-upstream-model"
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    status: int = 200  # >= 400: answer the format's error JSON with error_message
    error_message: str = "mock upstream error"
    error_type: str | None = None  # default: by status
    error_json: dict[str, Any] | None = None  # the whole error body, instead of one built from the fields above
    raw_error: bytes | None = None  # an error body that is not the format's JSON (e.g. a proxy's HTML page)
    error_after: int | None = None  # streamed: after N events send the format's in-stream error, then end
    # (Anthropic event: error, Chat data: {"error": …}, Responses response.failed with error_type as its code)
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

    def wire_stop(self, fmt: str) -> str:
        stop = self.stop or ("tool_use" if self.tool_calls else "end_turn")
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


def error_body(fmt: str, reply: Reply, status: int) -> dict[str, Any]:
    if reply.error_json is not None:
        return reply.error_json
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
    Responses ``response.failed`` whose ``response.error`` has the code and message)."""
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

    def do_GET(self) -> None:
        self._send_json(404, {"error": {"message": f"no route for GET {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        body = self._read_body()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        self.server.mock._record(Recorded(method="POST", path=self.path, body=body, json=parsed,
                                          headers={k.lower(): v for k, v in self.headers.items()}))
        bare = self.path.split("?", 1)[0].rstrip("/")
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
        reply = self.server.mock._take_reply()
        if bare.endswith(CODEX_PATH) and (refusal := codex_refusal(parsed)) is not None:
            self._send_json(400, {"detail": refusal})
            return
        if reply.raw_body is not None:
            self._send_raw(reply.status, reply.raw_body, reply.headers.get("content-type", "text/plain"), reply)
            return
        if reply.status >= 400 and reply.raw_error is not None:
            self._send_raw(reply.status, reply.raw_error, reply.headers.get("content-type", "text/html"), reply)
            return
        if reply.status >= 400:
            self._send_json(reply.status, error_body(fmt, reply, reply.status), reply)
            return
        stream = isinstance(parsed, dict) and parsed.get("stream") is True
        request = parsed if isinstance(parsed, dict) else {}
        if not stream or reply.as_json:
            bodies = {"anthropic": anthropic_body, "chat": chat_body, "responses": responses_body}
            self._send_json(200, responses_body(reply, request) if fmt == "responses" else bodies[fmt](reply), reply)
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        if fmt == "anthropic":
            events = anthropic_events(reply)
        elif fmt == "chat":
            events = chat_events(reply, include_usage)
        else:
            events = responses_events(reply, request)
        if reply.error_after is not None:
            events = [*events[:reply.error_after], stream_error_event(fmt, reply, reply.error_after)]
        if reply.inject_after is not None:
            events = [*events[:reply.inject_after], reply.inject]
        if reply.keepalive:
            events = [b": keep-alive\n\n" + e for e in events]
        if reply.crlf:
            events = [e.replace(b"\n", b"\r\n") for e in events]
        self._send_stream(events, reply)

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

    def _send_stream(self, events: list[bytes], reply: Reply) -> None:
        try:
            self._write_events(events, reply)
        except OSError:  # BrokenPipeError, ConnectionResetError: the bridge closed the connection
            reply.aborted.set()
            self.close_connection = True

    def _write_events(self, events: list[bytes], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
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
