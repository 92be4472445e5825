"""Hostile traffic for the bridge's memory bounds (issue 12): a fast upstream, an RSS meter, a lean client.

Nothing here holds a large body: every body is a :class:`Body`, literal bytes and blocks repeated
``count`` times, so a 5 GB answer costs one 1 MiB block in memory and compresses in milliseconds.

**The upstream** (:class:`HostileUpstream`): asyncio on raw sockets in its own thread (or
``python -m tests.hostile --port 0`` as a process). The model name asked for is the control knob:
:class:`Answer` says what to answer (streamed or one JSON body; text deltas, one tool call's argument
deltas, or one giant delta event; N bytes of text or arguments; identity, gzip, zstd or brotli;
chunked or content-length) and is spelled into the model (``Answer.model``), so it survives every
translation the bridge makes. The request path picks the wire format (``/v1/messages`` Anthropic,
``…/chat/completions`` Chat, ``…/responses`` Responses). Streams go out about 1 MiB per write (about
128 events of 8 KiB of text), so GBs flow at loopback speed. A Responses stream is realistic: its
closing events (``output_text.done``, ``content_part.done``, ``output_item.done``,
``response.completed``) repeat the whole text, each one event of N bytes. Compressed answers (sent
whatever the request's ``accept-encoding``: the bridge asks for identity) are bombs by construction,
their text one repeated letter: a GiB of it is ~1 MB of gzip (deflate's limit is ~1:1000), ~33 KB of
zstd, ~2 KB of brotli, so one network read can expand to GBs.
Sequence numbers of Responses deltas repeat from block to block (the bridge does not read them).

**The meter** (:class:`PeakRss`): peak resident memory of a process during a ``with`` block, over its
level at the start. It resets the kernel's high-water mark (``echo 5 > /proc/PID/clear_refs``) and
reads ``VmHWM``; where that reset is refused it samples ``VmRSS`` every 10 ms instead. A thread
polls either every 10 ms so a process that dies mid-way still has a figure.

**The client** (:func:`post`): one HTTP/1.1 request per connection on a raw socket. The request body
is sent lazily (content-length or chunked) while watching for an early answer (a 413/401 before the
body is read) or a reset; the answer is read and thrown away, keeping counts, the first MiB of the
body and the last SSE events (their first MiB each): :class:`Outcome`.

API in brief::

    Answer(upstream, mode="sse"|"json", kind="text"|"tool"|"giant", size, encoding, framing, relay).model
    HostileUpstream() as up: up.url, up.port, up.prepare(answer), up.served
    render(answer, fmt) -> Body; compress(body, "gzip"|"zstd"|"br") -> bytes
    request_body(fmt, model, stream=True, size=0) -> Body; request_bomb(fmt, model, size, encoding) -> Body
    client_headers(fmt, key=None, encoding=None); post(port, path, body, headers, chunked=False) -> Outcome
    PeakRss(pid) as m: …; m.growth_mib     cap_address_space(pid, bytes)     address_space_cap(bytes)
    config_for(upstream, **top) -> bridge config; Live(start, cap, key).get() -> a live, lean bridge
    expect_complete / expect_failed_stream / expect_error_answer / expect_error_event / expect_refused /
    bound_problems -> list of problems (empty: as the contract says)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import resource
import select
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import brotli  # type: ignore[import-untyped]
import zstandard

__all__ = [
    "FORMATS", "PATHS", "TERMINAL", "MiB", "GiB", "Repeat", "Body", "compress", "Answer", "render",
    "HostileUpstream", "Served", "PeakRss", "rss_kib", "reset_peak", "cap_address_space", "address_space_cap",
    "Event", "Outcome", "post", "request_body", "request_bomb", "client_headers", "error_message",
    "stream_error_message",
    "config_for", "Bridge", "Live", "expect_complete", "expect_failed_stream", "expect_error_answer",
    "expect_error_event", "expect_refused", "bound_problems",
]

FORMATS = ("anthropic", "chat", "responses")
PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
# The event that ends a complete stream, per client format (as Outcome.events names it)
TERMINAL = {"anthropic": "message_stop", "chat": "[DONE]", "responses": "response.completed"}
MiB = 1 << 20
GiB = 1 << 30
BLOCK = MiB  # bytes per repeated block, about one write
_LETTERS = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 "  # nothing JSON escapes
_CREATED = 1_700_000_000


# --- bodies: literal parts and repeated blocks ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repeat:
    """``block`` written ``count`` times."""

    block: bytes
    count: int


class Body:
    """Bytes as a sequence of literal parts and :class:`Repeat` parts: any size, one block in memory."""

    __slots__ = ("parts", "size")

    def __init__(self, *parts: bytes | Repeat) -> None:
        merged: list[bytes | Repeat] = []
        for p in parts:
            if isinstance(p, Repeat):
                if p.count and p.block:
                    merged.append(p)
            elif p:
                if merged and isinstance(merged[-1], bytes):
                    merged[-1] += p
                else:
                    merged.append(p)
        self.parts: tuple[bytes | Repeat, ...] = tuple(merged)
        self.size = sum(len(p) if isinstance(p, bytes) else len(p.block) * p.count for p in self.parts)

    def chunks(self) -> Iterator[bytes]:
        """The bytes in order: each literal, then each repetition of a block (no copies made)."""
        for p in self.parts:
            if isinstance(p, bytes):
                yield p
            else:
                for _ in range(p.count):
                    yield p.block

    def head(self, n: int) -> bytes:
        out = b""
        for c in self.chunks():
            out += c[:n - len(out)]
            if len(out) >= n:
                break
        return out


def _raw_deflate(data: bytes) -> bytes:
    # A full flush ends byte-aligned with the dictionary reset: the output can be repeated as is.
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def compress(body: Body, encoding: str) -> bytes:
    """``body`` compressed as one gzip member / one zstd frame / one brotli stream (what a streaming
    decoder reads to the end). gzip repeats one deflate segment per block (instant at any size); zstd
    and brotli compress the whole (about 0.1 and 0.7 s per GiB)."""
    if encoding == "gzip":
        out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]
        crc = 0
        for p in body.parts:
            if isinstance(p, bytes):
                out.append(_raw_deflate(p))
                crc = zlib.crc32(p, crc)
            else:
                out.append(_raw_deflate(p.block) * p.count)
                for _ in range(p.count):
                    crc = zlib.crc32(p.block, crc)
        out.append(b"\x03\x00")  # the final (empty, fixed-Huffman) block
        out.append(struct.pack("<II", crc & 0xFFFFFFFF, body.size & 0xFFFFFFFF))
        return b"".join(out)
    if encoding == "zstd":
        z = zstandard.ZstdCompressor(level=1).compressobj()
        return b"".join([*(z.compress(c) for c in body.chunks()), z.flush()])
    if encoding == "br":
        b = brotli.Compressor(quality=3)  # ~400 bytes per GiB of repetitive text
        return b"".join([*(b.process(c) for c in body.chunks()), b.finish()])
    raise ValueError(f"unknown encoding {encoding!r}")


# --- what the upstream answers ---------------------------------------------------------------------------

_UP = {"a": "anthropic", "c": "chat", "r": "responses"}
_UP_LETTER = {v: k for k, v in _UP.items()}
_MODEL = re.compile(r"hxv?-[acr]-(?:sse|json)-(?:text|tool|giant)-\d+-(?:identity|gzip|zstd|br)-(?:chunked|length)"
                    r"-p\d+")
_MODEL_BYTES = re.compile(rb'"model"\s*:\s*"(hxv?-[^"]{1,200})"')


@dataclass(frozen=True)
class Answer:
    """What :class:`HostileUpstream` answers, spelled into the model name (``model``).

    ``upstream``: the format of the endpoint the bridge should route to (the config matches
    ``hx-<a|c|r>-*``; ``relay=True`` gives ``hxv-…``, for an endpoint whose ``idle_timeout`` sends the
    request through the bridge's failover relay). ``mode``: ``sse`` or ``json``. ``kind``: ``text``
    deltas, one ``tool`` call's argument deltas (arguments ``{"data": "<size bytes>"}``), or one
    ``giant`` text delta event holding all ``size`` bytes (a stream no bridge may buffer). ``size``:
    bytes of text or arguments, rounded up to whole blocks. ``piece``: characters per delta event.
    """

    upstream: str
    mode: str = "sse"
    kind: str = "text"
    size: int = MiB
    encoding: str = "identity"
    framing: str = "chunked"
    piece: int = 8192
    relay: bool = False

    @property
    def model(self) -> str:
        return (f"hx{'v' if self.relay else ''}-{_UP_LETTER[self.upstream]}-{self.mode}-{self.kind}-{self.size}-"
                f"{self.encoding}-{self.framing}-p{self.piece}")

    @classmethod
    def parse(cls, model: str) -> Answer | None:
        if not _MODEL.fullmatch(model):
            return None
        prefix, up, mode, kind, size, enc, framing, piece = model.split("-")
        return cls(_UP[up], mode, kind, int(size), enc, framing, int(piece[1:]), prefix == "hxv")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(deltas per block, blocks, bytes of text or arguments in all)."""
        per = max(1, BLOCK // self.piece)
        if self.size <= per * self.piece:
            per = max(1, math.ceil(self.size / self.piece))
        blocks = max(1, math.ceil(self.size / (per * self.piece)))
        return per, blocks, per * self.piece * blocks


_MARK = b"@@HX-FULL@@"  # stands for the whole text in a rendered event; replaced by a Repeat


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _ev(name: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, bytes) else _j(data)
    return (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + payload + b"\n\n"


def _piece_text(n: int) -> str:
    return (_LETTERS * (n // len(_LETTERS) + 1))[:n].decode()


def _expand(parts: Iterable[bytes | Repeat], full: Repeat) -> list[bytes | Repeat]:
    """Each ``_MARK`` in the literal parts becomes the whole text."""
    out: list[bytes | Repeat] = []
    for p in parts:
        if isinstance(p, Repeat):
            out.append(p)
            continue
        pieces = p.split(_MARK)
        for i, s in enumerate(pieces):
            if i:
                out.append(full)
            out.append(s)
    return out


def render(a: Answer, fmt: str, model: str | None = None) -> Body:
    """The decoded answer body for ``a`` in wire format ``fmt`` (the request path's)."""
    model = model or a.model
    per, blocks, total = a.shape
    # compressed: one letter, the highest ratio (a bomb); plain: varied text
    piece = _piece_text(a.piece) if a.encoding == "identity" else "x" * a.piece
    full = Repeat((piece * per).encode(), blocks)
    mark = _MARK.decode()
    tool = a.kind == "tool"
    args_open, args_close = '{"data":"', '"}'
    render_fn = {"anthropic": _anthropic, "chat": _chat, "responses": _responses}[fmt]
    if a.mode == "json":
        return Body(*_expand([render_fn(a, model, total, mark, tool, None, None, json_body=True)[0]], full))
    head, delta_of, tail = render_fn(a, model, total, mark, tool, args_open, args_close)
    if a.kind == "giant":
        middle: list[bytes | Repeat] = _expand([delta_of(mark)], full)
    else:
        middle = [Repeat(b"".join(delta_of(piece) for _ in range(per)), blocks)]
    return Body(*_expand([head], full), *middle, *_expand([tail], full))


_Delta = Callable[[str], bytes]


def _anthropic(a: Answer, model: str, total: int, mark: str, tool: bool, args_open: str | None,
               args_close: str | None, json_body: bool = False) -> tuple[bytes, _Delta, bytes]:
    usage = {"input_tokens": 10, "output_tokens": total // 4}
    stop = "tool_use" if tool else "end_turn"
    if json_body:
        block = ({"type": "tool_use", "id": "toolu_hx0001", "name": "hx_tool", "input": {"data": mark}} if tool
                 else {"type": "text", "text": mark})
        return _j({"id": "msg_hx0001", "type": "message", "role": "assistant", "model": model, "content": [block],
                   "stop_reason": stop, "stop_sequence": None, "usage": usage}), str.encode, b""
    message: dict[str, Any] = {"id": "msg_hx0001", "type": "message", "role": "assistant", "model": model,
                               "content": [], "stop_reason": None, "stop_sequence": None,
                               "usage": {"input_tokens": 10, "output_tokens": 1}}
    start = ({"type": "tool_use", "id": "toolu_hx0001", "name": "hx_tool", "input": {}} if tool
             else {"type": "text", "text": ""})

    def delta(t: str) -> bytes:
        d = {"type": "input_json_delta", "partial_json": t} if tool else {"type": "text_delta", "text": t}
        return _ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})

    head = (_ev("message_start", {"type": "message_start", "message": message})
            + _ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start})
            + (delta(args_open or "") if tool else b""))
    tail = ((delta(args_close or "") if tool else b"")
            + _ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": {"output_tokens": usage["output_tokens"]}})
            + _ev("message_stop", {"type": "message_stop"}))
    return head, delta, tail


def _chat(a: Answer, model: str, total: int, mark: str, tool: bool, args_open: str | None, args_close: str | None,
          json_body: bool = False) -> tuple[bytes, _Delta, bytes]:
    usage = {"prompt_tokens": 10, "completion_tokens": total // 4, "total_tokens": 10 + total // 4}
    finish = "tool_calls" if tool else "stop"
    call = {"id": "call_hx0001", "type": "function", "function": {"name": "hx_tool", "arguments": ""}}
    if json_body:
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else mark, "refusal": None}
        if tool:
            message["tool_calls"] = [{**call, "function": {"name": "hx_tool", "arguments": '{"data":"' + mark + '"}'}}]
        return _j({"id": "chatcmpl-hx0001", "object": "chat.completion", "created": _CREATED, "model": model,
                   "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                   "usage": usage}), str.encode, b""
    base = {"id": "chatcmpl-hx0001", "object": "chat.completion.chunk", "created": _CREATED, "model": model}

    def chunk(d: dict[str, Any], fin: str | None = None) -> bytes:
        return _ev(None, {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": fin}]})

    def delta(t: str) -> bytes:
        return chunk({"tool_calls": [{"index": 0, "function": {"arguments": t}}]} if tool else {"content": t})

    first = ({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]} if tool
             else {"role": "assistant", "content": ""})
    head = chunk(first) + (delta(args_open or "") if tool else b"")
    tail = ((delta(args_close or "") if tool else b"") + chunk({}, finish)
            + _ev(None, {**base, "choices": [], "usage": usage}) + b"data: [DONE]\n\n")
    return head, delta, tail


def _responses(a: Answer, model: str, total: int, mark: str, tool: bool, args_open: str | None,
               args_close: str | None, json_body: bool = False) -> tuple[bytes, _Delta, bytes]:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": total // 4,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10 + total // 4}
    args = '{"data":"' + mark + '"}'

    def response(status: str, output: list[Any], u: Any) -> dict[str, Any]:
        return {"id": "resp_hx0001", "object": "response", "created_at": _CREATED, "status": status, "error": None,
                "incomplete_details": None, "model": model, "output": output, "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": [], "usage": u}

    part_done = {"type": "output_text", "text": mark, "annotations": [], "logprobs": []}
    item_done: dict[str, Any] = (
        {"id": "fc_hx0001", "type": "function_call", "status": "completed", "call_id": "call_hx0001",
         "name": "hx_tool", "arguments": args} if tool else
        {"id": "msg_hx0001", "type": "message", "status": "completed", "role": "assistant", "content": [part_done]})
    if json_body:
        return _j(response("completed", [item_done], usage)), str.encode, b""
    seq = iter(range(1 << 62))

    def ev(kind: str, **fields: Any) -> bytes:
        return _ev(kind, {"type": kind, "sequence_number": next(seq), **fields})

    item_added: dict[str, Any] = (
        {**item_done, "status": "in_progress", "arguments": ""} if tool else
        {**item_done, "status": "in_progress", "content": []})
    ref = {"item_id": item_done["id"], "output_index": 0}
    head = ev("response.created", response=response("in_progress", [], None))
    head += ev("response.in_progress", response=response("in_progress", [], None))
    head += ev("response.output_item.added", output_index=0, item=item_added)
    if tool:
        head += ev("response.function_call_arguments.delta", **ref, delta=args_open)
    else:
        head += ev("response.content_part.added", **ref, content_index=0,
                   part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    delta_seq = next(seq)  # every delta of a block shares it: blocks are repeated as they are

    def delta(t: str) -> bytes:
        if tool:
            return _ev("response.function_call_arguments.delta",
                       {"type": "response.function_call_arguments.delta", "sequence_number": delta_seq, **ref,
                        "delta": t})
        return _ev("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": delta_seq,
                                                  **ref, "content_index": 0, "delta": t, "logprobs": []})

    if tool:
        tail = ev("response.function_call_arguments.delta", **ref, delta=args_close)
        tail += ev("response.function_call_arguments.done", **ref, name="hx_tool", arguments=args)
    else:
        tail = ev("response.output_text.done", **ref, content_index=0, text=mark, logprobs=[])
        tail += ev("response.content_part.done", **ref, content_index=0, part=part_done)
    tail += ev("response.output_item.done", output_index=0, item=item_done)
    tail += ev("response.completed", response=response("completed", [item_done], usage))
    return head, delta, tail


# --- the upstream server ---------------------------------------------------------------------------------


@dataclass
class Served:
    """One request the upstream answered (or began to)."""

    path: str
    model: str | None = None
    request_bytes: int = 0  # body bytes read from the bridge
    request_encoding: str = ""
    answer_bytes: int = 0  # wire bytes written (after compression and framing)
    finished: bool = False  # the whole answer was written
    aborted: str | None = None  # the bridge went away mid-answer


def _format_of(path: str) -> str | None:
    bare = path.split("?", 1)[0].rstrip("/")
    if bare.endswith("/v1/messages"):
        return "anthropic"
    if bare.endswith("/chat/completions"):
        return "chat"
    if bare.endswith("/responses"):
        return "responses"
    return None


def _decode_prefix(data: bytes, encoding: str) -> bytes:
    """The first bytes of a compressed request body, bounded (a bomb must not explode here)."""
    with contextlib.suppress(Exception):
        match encoding.strip().lower():
            case "gzip" | "x-gzip":
                return zlib.decompressobj(47).decompress(data, MiB)
            case "deflate":
                return zlib.decompressobj().decompress(data, MiB)
            case "zstd":
                return zstandard.ZstdDecompressor().decompressobj().decompress(data[:4096])[:MiB]
            case "br":
                return bytes(brotli.Decompressor().process(data[:4096], output_buffer_limit=MiB))[:MiB]
            case "" | "identity":
                return data
    return b""


class HostileUpstream:
    """The fast upstream: ``with HostileUpstream() as up: …`` (a thread with its own event loop).

    ``served`` lists the last 256 requests (:class:`Served`). ``prepare(answer)`` renders and
    compresses an answer ahead of time (compressed answers are cached: they are small), so that a
    measurement does not include making it. A request whose model is no :class:`Answer` gets a short
    text answer in the path's format (streamed when the body asks ``"stream": true``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.served: deque[Served] = deque(maxlen=256)
        self._cache: dict[tuple[str, str], bytes] = {}
        self._cache_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> HostileUpstream:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, self.host, self.port, limit=MiB, backlog=256))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:  # reported to start()'s caller
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="hostile-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._loop = None

    def prepare(self, answer: Answer, fmt: str | None = None) -> int:
        """Render (and compress) ``answer`` for wire format ``fmt`` now; the wire size in bytes."""
        return self._wire(answer, fmt or answer.upstream).size

    def _wire(self, a: Answer, fmt: str) -> Body:
        if a.encoding == "identity":
            return render(a, fmt)
        key = (a.model, fmt)
        with self._cache_lock:
            data = self._cache.get(key)
            if data is None:
                if sum(map(len, self._cache.values())) > 256 * MiB:
                    self._cache.clear()
                data = self._cache[key] = compress(render(a, fmt), a.encoding)
        return Body(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        writer.transport.set_write_buffer_limits(high=4 * MiB)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                served = Served(path, request_encoding=headers.get("content-encoding", ""))
                self.served.append(served)
                prefix = await self._read_body(reader, headers, served)
                await self._answer(writer, method, path, headers, prefix, served)
                if headers.get("connection", "").lower() == "close" or not served.finished:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError) as e:
            if self.served and not self.served[-1].finished:
                self.served[-1].aborted = type(e).__name__
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str], served: Served) -> bytes:
        """Read and discard the body, keeping its first MiB (where the model is)."""
        prefix = bytearray()

        def take(data: bytes) -> None:
            served.request_bytes += len(data)
            if len(prefix) < MiB:
                prefix.extend(data[:MiB - len(prefix)])

        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                while size:
                    data = await reader.read(min(size, MiB))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", size)
                    take(data)
                    size -= len(data)
                await reader.readline()
        else:
            left = int(headers.get("content-length") or 0)
            while left:
                data = await reader.read(min(left, MiB))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                take(data)
                left -= len(data)
        return bytes(prefix)

    async def _answer(self, writer: asyncio.StreamWriter, method: str, path: str, headers: Mapping[str, str],
                      prefix: bytes, served: Served) -> None:
        fmt = _format_of(path)
        if method != "POST" or fmt is None:
            msg = _j({"error": {"message": f"hostile upstream: no route for {method} {path}", "type": "not_found"}})
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(msg), msg))
            await writer.drain()
            served.finished = True
            return
        plain = _decode_prefix(prefix, headers.get("content-encoding", ""))
        m = _MODEL_BYTES.search(plain)
        served.model = m[1].decode() if m else None
        answer = Answer.parse(served.model or "")
        if answer is None:  # not ours: a short, proper answer
            stream = re.search(rb'"stream"\s*:\s*true', plain) is not None
            answer = Answer(fmt, "sse" if stream else "json", size=64, piece=16)
        body = await asyncio.to_thread(self._wire, answer, fmt) if answer.encoding != "identity" else \
            self._wire(answer, fmt)
        head = [b"HTTP/1.1 200 OK",
                b"content-type: " + (b"text/event-stream" if answer.mode == "sse" else b"application/json"),
                b"cache-control: no-cache"]
        if answer.encoding != "identity":
            head.append(b"content-encoding: " + answer.encoding.encode())
        chunked = answer.framing == "chunked"
        head.append(b"transfer-encoding: chunked" if chunked else b"content-length: %d" % body.size)
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        for c in body.chunks():
            if chunked:
                writer.writelines((b"%x\r\n" % len(c), c, b"\r\n"))
            else:
                writer.write(c)
            served.answer_bytes += len(c)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        served.finished = True


# --- resident memory -----------------------------------------------------------------------------------


def rss_kib(pid: int, key: str = "VmRSS") -> int | None:
    """A ``/proc/PID/status`` size in KiB (``VmRSS``, ``VmHWM``, …); None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0, own processes); False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = rss_kib(pid, "VmHWM"), rss_kib(pid)
    return hwm is not None and rss is not None and hwm <= rss + 1024  # the reset took


class PeakRss:
    """``with PeakRss(pid) as m: …`` then ``m.growth_mib``: peak RSS during the block over RSS at its start.

    ``method`` is ``"VmHWM"`` (the kernel's high-water mark, reset on entry: no peak is missed) or
    ``"VmRSS sampled"`` (every ``interval`` s, where the reset is refused). ``died`` says the process
    was gone at the end; its figure is then the last one read.
    """

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline_kib = 0
        self.peak_kib = 0
        self.method = "VmHWM"
        self.died = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> int | None:
        return rss_kib(self.pid, "VmHWM" if self.method == "VmHWM" else "VmRSS")

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            value = self._read()
            if value is None:
                self.died = True
                return
            self.peak_kib = max(self.peak_kib, value)

    def __enter__(self) -> PeakRss:
        self.baseline_kib = rss_kib(self.pid) or 0
        if not reset_peak(self.pid):
            self.method = "VmRSS sampled"
        self.peak_kib = self.baseline_kib
        self._thread = threading.Thread(target=self._poll, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        value = self._read()
        if value is None:
            self.died = True
        else:
            self.peak_kib = max(self.peak_kib, value)

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.baseline_kib) / 1024

    @property
    def baseline_mib(self) -> float:
        return self.baseline_kib / 1024


def cap_address_space(pid: int, limit: int) -> None:
    """Cap a running process's address space (``RLIMIT_AS``): past it, allocations fail (MemoryError)
    instead of the machine running out of memory."""
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


def address_space_cap(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen`` that caps the child's address space."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return cap


# --- the client ---------------------------------------------------------------------------------------------


@dataclass
class Event:
    """One SSE event of an answer: its name (the ``event:`` line; for data-only events ``[DONE]``,
    ``error`` for ``{"error": …}``, else ``data``), its size and its first ``keep`` bytes."""

    name: str
    size: int
    head: bytes

    @property
    def whole(self) -> bool:
        return len(self.head) >= self.size

    def data(self) -> Any:
        """The event's data as JSON (None if cut or not JSON)."""
        if not self.whole:
            return None
        for line in self.head.split(b"\n"):
            if line.startswith(b"data:"):
                with contextlib.suppress(ValueError):
                    return json.loads(line[5:])
        return None


@dataclass
class Outcome:
    """What a client saw of one exchange, at a bounded cost in memory."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sent: int = 0  # request body bytes written to the socket
    body_size: int = 0  # request body size (the whole, as meant to be sent)
    early: bool = False  # the answer began before the request body was all sent: sending stopped
    send_error: str | None = None  # the connection was reset or closed while sending
    read_error: str | None = None  # …while reading the answer (or the read timed out)
    received: int = 0  # answer body bytes (de-chunked)
    complete: bool = False  # the answer's framing ended properly (last chunk, content-length, or EOF)
    head: bytes = b""  # the first MiB of the answer body
    events: int = 0
    last_events: list[Event] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def json(self) -> Any:
        if self.received > len(self.head):
            return None
        with contextlib.suppress(ValueError):
            return json.loads(self.head)
        return None

    @property
    def last_event(self) -> Event | None:
        return self.last_events[-1] if self.last_events else None

    def describe(self) -> str:
        """One line for reports and assertion messages."""
        parts = [f"status {self.status}", f"sent {self.sent:,}/{self.body_size:,}", f"received {self.received:,}"]
        if self.early:
            parts.append("answered early")
        if self.send_error:
            parts.append(f"send: {self.send_error}")
        if self.read_error:
            parts.append(f"read: {self.read_error}")
        if self.events:
            tail = ", ".join(f"{e.name}({e.size:,} B)" for e in self.last_events[-4:])
            parts.append(f"{self.events:,} events, last: {tail}")
        elif self.head:
            parts.append(f"body {self.head[:300]!r}")
        parts.append("complete" if self.complete else "incomplete")
        return "; ".join(parts)


class _Events:
    """Splits an SSE body at blank lines (``\\n\\n``) as it arrives; keeps the last few events' heads."""

    def __init__(self, out: Outcome, keep: int, last: int) -> None:
        self.out = out
        self.keep = keep
        self.last: deque[Event] = deque(maxlen=last)
        self._head = bytearray()
        self._size = 0
        self._nl = False  # the current event's last byte is "\n"

    def _add(self, data: bytes, start: int, end: int) -> None:
        if end <= start:
            return
        room = self.keep - len(self._head)
        if room > 0:
            self._head += data[start:min(end, start + room)]
        self._size += end - start
        self._nl = data[end - 1] == 0x0A

    def _finish(self) -> None:
        head = bytes(self._head).rstrip(b"\n")
        size = self._size - (1 if self._nl else 0)
        self._head.clear()
        self._size, self._nl = 0, False
        if not head.strip():
            return
        name = "data"
        if head.startswith(b"event:"):
            name = head[6:head.find(b"\n") if b"\n" in head else None].strip().decode("utf-8", "replace")
        elif head.startswith(b"data: [DONE]"):
            name = "[DONE]"
        elif head.startswith(b'data: {"error"') or head.startswith(b'data:{"error"'):
            name = "error"
        self.out.events += 1
        self.out.event_counts[name] = self.out.event_counts.get(name, 0) + 1
        self.last.append(Event(name, size, head))

    def feed(self, data: bytes) -> None:
        pos = 0
        if self._nl and data[:1] == b"\n":
            self._finish()
            pos = 1
        while True:
            i = data.find(b"\n\n", pos)
            if i < 0:
                self._add(data, pos, len(data))
                return
            self._add(data, pos, i)
            self._finish()
            pos = i + 2

    def close(self) -> None:
        if self._size:
            self._finish()
        self.out.last_events = list(self.last)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    return sock.recv(MiB)


def post(port: int, path: str, body: Body | bytes, headers: Mapping[str, str] | None = None, *,
         chunked: bool = False, timeout: float = 300.0, idle: float = 60.0, keep_event: int = MiB,
         last_events: int = 8, host: str = "127.0.0.1") -> Outcome:
    """POST ``body`` (sent lazily; ``chunked`` or with its content-length) and read the answer, keeping
    only an :class:`Outcome`. Sending stops as soon as an answer arrives (``early``) or the peer resets
    the connection (``send_error``); what answer arrived is read either way. ``idle``: seconds of
    silence that end the read (``read_error``); ``timeout``: the whole exchange."""
    body = body if isinstance(body, Body) else Body(body)
    out = Outcome(body_size=body.size)
    deadline = time.monotonic() + timeout
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "connection: close", "accept-encoding: identity"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("transfer-encoding: chunked" if chunked else f"content-length: {body.size}")
    started = time.monotonic()
    sock = socket.create_connection((host, port), timeout=10)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MiB)
        pending: Iterator[bytes] = iter([("\r\n".join(lines) + "\r\n\r\n").encode()])
        framed = _framed(body, chunked)
        head_sent = False
        try:
            for piece in (p for src in (pending, framed) for p in src):
                view = memoryview(piece)
                while view:
                    readable, writable, _ = select.select([sock], [sock], [], max(0.1, deadline - time.monotonic()))
                    if readable:  # the bridge answered (or hung up) before the body was all sent
                        out.early = True
                        break
                    if not writable:
                        raise TimeoutError("send timed out")
                    sock.settimeout(max(0.1, deadline - time.monotonic()))
                    n = sock.send(view[:256 * 1024])
                    view = view[n:]
                    if head_sent:
                        out.sent += n
                if out.early:
                    break
                if not head_sent:
                    head_sent = True
                    out.sent = 0
        except OSError as e:
            out.send_error = f"{type(e).__name__}: {e}"
        if out.sent >= body.size and not out.send_error:
            out.early = False  # everything went: not early, whatever the timing of the last select
        if chunked:
            out.sent = min(out.sent, body.size)
        _read_answer(sock, out, deadline, idle, keep_event, last_events)
    finally:
        sock.close()
    out.seconds = time.monotonic() - started
    return out


def _framed(body: Body, chunked: bool) -> Iterator[bytes]:
    for c in body.chunks():
        if chunked:
            yield b"%x\r\n" % len(c) + c + b"\r\n"  # one copy of ≤ 1 MiB: the socket gets one buffer
        else:
            yield c
    if chunked:
        yield b"0\r\n\r\n"


def _read_answer(sock: socket.socket, out: Outcome, deadline: float, idle: float, keep: int, last: int) -> None:
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            data = _recv(sock, min(deadline, time.monotonic() + idle))
            if not data:
                if buf:
                    out.read_error = "connection closed inside the answer's head"
                elif not out.send_error:
                    out.read_error = "connection closed without an answer"
                return
            buf += data
            if len(buf) > MiB:
                out.read_error = "answer head over 1 MiB"
                return
    except OSError as e:
        out.read_error = f"{type(e).__name__}: {e}"
        return
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    out.status = int(lines[0].split(" ", 2)[1])
    out.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    sse = out.headers.get("content-type", "").startswith("text/event-stream")
    events = _Events(out, keep, last) if sse else None
    head_buf = bytearray()

    def payload(data: bytes) -> None:
        out.received += len(data)
        if len(head_buf) < MiB:
            head_buf.extend(data[:MiB - len(head_buf)])
        if events is not None and data:
            events.feed(data)

    chunked = "chunked" in out.headers.get("transfer-encoding", "").lower()
    length = int(out.headers["content-length"]) if "content-length" in out.headers and not chunked else None
    try:
        if chunked:
            _dechunk(sock, rest, payload, out, deadline, idle)
        else:
            left = length
            data = rest
            while True:
                if data:
                    if left is not None:
                        data = data[:left]
                        left -= len(data)
                    payload(data)
                if left == 0:
                    out.complete = True
                    break
                data = _recv(sock, min(deadline, time.monotonic() + idle))
                if not data:
                    out.complete = left is None  # EOF ends a body without framing
                    if left:
                        out.read_error = f"connection closed {left:,} bytes before the content-length"
                    break
    except OSError as e:
        out.read_error = f"{type(e).__name__}: {e}"
    finally:
        out.head = bytes(head_buf)
        if events is not None:
            events.close()


def _dechunk(sock: socket.socket, data: bytes, payload: Callable[[bytes], None], out: Outcome, deadline: float,
             idle: float) -> None:
    buf, pos = data, 0  # an offset into buf: no copies of what is left

    def more() -> bool:
        nonlocal buf, pos
        got = _recv(sock, min(deadline, time.monotonic() + idle))
        buf, pos = buf[pos:] + got, 0
        return bool(got)

    while True:
        while (eol := buf.find(b"\r\n", pos)) < 0:  # the chunk-size line
            if not more():
                out.read_error = "connection closed inside the chunked answer (no last chunk)"
                return
        size = int(buf[pos:eol].split(b";", 1)[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            out.complete = True  # trailers, if any, are not read: the answer is whole
            return
        while size:
            if pos >= len(buf) and not more():
                out.read_error = "connection closed inside a chunk"
                return
            end = min(len(buf), pos + size)
            payload(buf[pos:end])
            size -= end - pos
            pos = end
        while len(buf) - pos < 2:  # the CRLF after the chunk
            if not more():
                out.read_error = "connection closed after a chunk"
                return
        pos += 2


# --- client requests and answers in each format --------------------------------------------------------------

_REQUEST_FILLER = (_LETTERS * (BLOCK // len(_LETTERS) + 1))[:BLOCK]


def request_body(fmt: str, model: str, *, stream: bool = True, size: int = 0) -> Body:
    """A valid request in client format ``fmt`` asking ``model``, its user text padded with filler so
    that the body is at least ``size`` bytes (rounded up to a MiB); the model comes first."""
    head = {"anthropic": f'{{"model":"{model}","max_tokens":64,"stream":{str(stream).lower()},'
                         f'"messages":[{{"role":"user","content":"Hello ',
            "chat": f'{{"model":"{model}","stream":{str(stream).lower()},'
                    f'"messages":[{{"role":"user","content":"Hello ',
            "responses": f'{{"model":"{model}","stream":{str(stream).lower()},"input":"Hello '}[fmt].encode()
    tail = b'"}]}' if fmt != "responses" else b'"}'
    blocks = math.ceil(max(0, size - len(head) - len(tail)) / BLOCK)
    return Body(head, Repeat(_REQUEST_FILLER, blocks), tail)


def request_bomb(fmt: str, model: str, size: int, encoding: str) -> Body:
    """:func:`request_body` of ``size`` bytes, compressed (``gzip``, ``zstd`` or ``br``): a few MB that
    expand to ``size``; send it with ``client_headers(fmt, encoding=encoding)``."""
    return Body(compress(request_body(fmt, model, size=size), encoding))


def client_headers(fmt: str, key: str | None = None, encoding: str | None = None) -> dict[str, str]:
    """Headers for a client of ``fmt``: JSON, Anthropic's version, and the key the usual way."""
    h = {"content-type": "application/json"}
    if fmt == "anthropic":
        h["anthropic-version"] = "2023-06-01"
        if key:
            h["x-api-key"] = key
    elif key:
        h["authorization"] = f"Bearer {key}"
    if encoding:
        h["content-encoding"] = encoding
    return h


def error_message(fmt: str, out: Outcome) -> str:
    """The message of an error answered before any byte of an answer, checked to be in ``fmt``'s
    shape (Anthropic ``{"type": "error", "error": {…}}``, OpenAI ``{"error": {…}}``)."""
    body = out.json
    assert isinstance(body, dict), f"not a JSON error body: {out.describe()}"
    if fmt == "anthropic":
        assert body.get("type") == "error", f"not an Anthropic error: {body}"
    err = body.get("error")
    assert isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str), \
        f"not a {fmt} error body: {body}"
    return str(err["message"])


def stream_error_message(fmt: str, out: Outcome) -> str | None:
    """The message of the client format's error event if the stream ended with one (Anthropic
    ``event: error``, Chat ``data: {"error": …}``, Responses ``response.failed`` or ``error``)."""
    ev = out.last_event
    if ev is None:
        return None
    data = ev.data()
    if fmt == "anthropic" and ev.name == "error" and isinstance(data, dict):
        return str(data.get("error", {}).get("message"))
    if fmt == "chat" and ev.name == "error" and isinstance(data, dict):
        return str(data["error"].get("message"))
    if fmt == "responses" and isinstance(data, dict):
        if ev.name == "response.failed":
            return str((data.get("response", {}).get("error") or {}).get("message"))
        if ev.name == "error":
            return str(data.get("message"))
    return None


# --- the bridge under test and the contract's outcomes -------------------------------------------------------


def config_for(upstream: HostileUpstream, **top: Any) -> dict[str, Any]:
    """A bridge config with one endpoint per upstream format (models ``hx-<a|c|r>-*``) and one more each
    with an ``idle_timeout`` (``hxv-…``, :attr:`Answer.relay`): those go through the failover relay.
    ``top``: top-level keys (``client_keys_env``, ``max_request_bytes``, ``max_answer_bytes``)."""
    urls: tuple[tuple[str, dict[str, str]], ...] = (
        ("a", {"url_anthropic": upstream.url}),
        ("c", {"url_openai": f"{upstream.url}/v1", "openai_preference": "chat_completions"}),
        ("r", {"url_openai": f"{upstream.url}/v1", "openai_preference": "responses"}))
    endpoints: list[dict[str, Any]] = []
    for letter, extra in urls:
        endpoints.append({"name": f"hostile-{letter}", **extra, "models": [f"hx-{letter}-*"]})
        endpoints.append({"name": f"hostile-{letter}-relay", **extra, "models": [f"hxv-{letter}-*"],
                          "idle_timeout": 120})
    return {"endpoints": endpoints, **top}


class Bridge(Protocol):
    """A running mitmdump with the bridge (``tests.conftest.BridgeProcess`` is one)."""

    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None: ...


class Live:
    """A bridge that is alive and lean whenever asked for (``get()``): one that died (the address-space
    cap, a crash) or kept over ``slack_mib`` after a case is replaced by a new one from ``start``, so no
    case inherits another's memory (freed memory a process keeps would hide the next case's growth).
    Each new one is capped at ``cap`` bytes of address space and warmed with a small request per
    client format (first-use imports and caches are no case's growth); ``key`` goes with those."""

    def __init__(self, start: Callable[[], Bridge], cap: int, key: str | None = None, slack_mib: int = 64) -> None:
        self._start, self.cap, self.key, self.slack_kib = start, cap, key, slack_mib * 1024
        self.proc: Bridge | None = None
        self.idle_kib = 0
        self.started = 0

    def get(self) -> Bridge:
        p = self.proc
        if p is not None and p.proc.poll() is None and (rss_kib(p.proc.pid) or 0) < self.idle_kib + self.slack_kib:
            return p
        if p is not None:
            p.stop()
        p = self.proc = self._start()
        cap_address_space(p.proc.pid, self.cap)
        self.started += 1
        for fmt in FORMATS:
            post(p.port, PATHS[fmt], request_body(fmt, Answer(fmt, size=1024).model), client_headers(fmt, self.key),
                 timeout=30)
        self.idle_kib = rss_kib(p.proc.pid) or 0
        return p

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def bound_problems(rss: PeakRss, proc: subprocess.Popen[bytes], bound_mib: float) -> list[str]:
    """Case 7: the process lived and its peak RSS grew by less than ``bound_mib``."""
    problems = []
    if proc.poll() is not None or rss.died:
        problems.append(f"mitmdump died (exit {proc.poll()})")
    if rss.growth_mib >= bound_mib:
        problems.append(f"peak RSS grew by {rss.growth_mib:.0f} MiB (bound {bound_mib:.0f} MiB)")
    return problems


def expect_complete(fmt: str, out: Outcome, at_least: int) -> list[str]:
    """Case 1: a 200 stream that ends with the format's terminal event, no error event, ``at_least``
    bytes delivered."""
    problems = []
    last = out.last_event
    if out.status != 200 or not out.complete or last is None or last.name != TERMINAL[fmt]:
        problems.append(f"the stream did not end with {TERMINAL[fmt]}")
    if (message := stream_error_message(fmt, out)) is not None or out.event_counts.get("error"):
        problems.append(f"it ended with an error event: {message}")
    if out.received < at_least:
        problems.append(f"only {out.received:,} bytes reached the client (the text alone is {at_least:,})")
    return problems


def expect_failed_stream(out: Outcome, names: str) -> list[str]:
    """Case 2: a Responses stream that ends (cleanly) with ``response.failed`` whose message names ``names``."""
    last = out.last_event
    if out.status != 200 or last is None or last.name != "response.failed":
        return ["the stream did not end with response.failed"]
    message = stream_error_message("responses", out) or ""
    problems = [] if names in message else [f"response.failed does not name {names}: {message!r}"]
    if not out.complete:
        problems.append("the stream was cut instead of ended")
    return problems


def expect_error_answer(fmt: str, out: Outcome, status: int | None, names: str | None = None) -> list[str]:
    """Cases 3, 5, 6: HTTP ``status`` (None: any 4xx/5xx) with ``fmt``'s error JSON, naming ``names``."""
    if out.status is None or out.status < 400 or (status is not None and out.status != status):
        return [f"HTTP {out.status}, not {status or 'an error'}"]
    try:
        message = error_message(fmt, out)
    except AssertionError as e:
        return [str(e)]
    if names and names not in message:
        return [f"the message does not name {names}: {message!r}"]
    return []


def expect_error_event(fmt: str, out: Outcome) -> list[str]:
    """Case 4: the stream ends (cleanly) with the client format's error event; an error answer in the
    client's format before the first byte is as good."""
    if out.status == 200:
        if stream_error_message(fmt, out) is None:
            return ["the stream did not end with the client's error event"]
        return [] if out.complete else ["the stream was cut after its error event instead of ended"]
    return expect_error_answer(fmt, out, None)


def expect_refused(fmt: str, out: Outcome, status: int, may_reset: bool, sent_below: int | None = None) -> list[str]:
    """Cases 5, 6: ``status`` in ``fmt``'s shape, or (``may_reset``) a connection the bridge closed while
    the body was still being sent; when ``may_reset`` (a body far larger than socket buffers), the
    bridge must not have read the whole body first. ``sent_below``: the client must have been stopped
    before sending that much. A bridge that reads N bytes of a body before refusing it lets the client
    send at least N, while kernel buffers alone take ~10 MB on loopback here: with ``sent_below`` set
    to the limit, this tells "refused at the headers" from "read up to the limit, then refused"."""
    if out.status is None:
        if may_reset and out.send_error:
            problems = []
        else:
            return [f"no answer ({out.send_error or out.read_error})"]
    else:
        problems = expect_error_answer(fmt, out, status)
        if may_reset and not out.early and out.sent >= out.body_size:
            problems.append(f"the bridge read the whole {out.body_size:,}-byte body before answering")
    if sent_below is not None and out.sent >= sent_below and out.sent < out.body_size:
        problems.append(f"the client could send {out.sent:,} bytes before it was refused: the bridge read at "
                        f"least {sent_below:,} bytes of the body first")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description="the hostile upstream, standalone (prints PORT <n>)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    up = HostileUpstream(port=args.port).start()
    print(f"PORT {up.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    up.stop()


if __name__ == "__main__":
    main()
