"""A fast mock LLM upstream for the benchmark: asyncio raw sockets, SSE rendered once and replayed.

``tests/mock_upstream.py`` is a ThreadingHTTPServer that builds every event as it goes; here the
floor must be as low as possible, so each stream is rendered once per (format, workload) into
HTTP/1.1 chunks and written back to back, one chunk and one ``write`` per event (as a real upstream
does). ``POST …/chat/completions`` answers Chat Completions chunks, ``POST …/v1/messages`` Anthropic
events; anything else is a 404.

The workload rides in the model name, so it survives every translation: ``<prefix>-e<events>-b<bytes>
-d<delay µs>-t<stamp 0|1>``, e.g. ``chat-e2000-b8-d0-t0``. Each text delta is `` w<seq, 6 digits>``,
padded with ``x`` to ``bytes`` characters (the client checks order by the sequence numbers); with
``t1`` the sequence is followed by ``T<time.monotonic_ns(), 19 digits>`` written just before the
event's chunk goes out (``CLOCK_MONOTONIC`` is one clock for every process on the machine).

Run: ``python -m bench.upstream --port 0`` prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

__all__ = ["Spec", "parse_model", "render", "STAMP_PLACEHOLDER", "serve"]

STAMP_PLACEHOLDER = b"T" + b"0" * 19
_MODEL = re.compile(rb'"model"\s*:\s*"([a-z]+-e\d+-b\d+-d\d+-t[01])"')
_SPEC = re.compile(r"[a-z]+-e(\d+)-b(\d+)-d(\d+)-t([01])$")
_CREATED = 1_700_000_000


class Spec:
    __slots__ = ("delay", "events", "size", "stamp")

    def __init__(self, events: int, size: int, delay_us: int, stamp: bool) -> None:
        self.events, self.size, self.delay, self.stamp = events, size, delay_us / 1e6, stamp


def parse_model(model: str) -> Spec:
    m = _SPEC.search(model)
    if not m:
        raise ValueError(f"not a benchmark model name: {model!r}")
    return Spec(int(m[1]), int(m[2]), int(m[3]), m[4] == "1")


def _text(i: int, spec: Spec) -> str:
    head = f" w{i:06d}" + (STAMP_PLACEHOLDER.decode() if spec.stamp else "")
    return head + "x" * max(0, spec.size - len(head))


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _sse(data: object, event: str | None = None) -> bytes:
    text = f"data: {_dumps(data)}\n\n" if event is None else f"event: {event}\ndata: {_dumps(data)}\n\n"
    return text.encode()


def render(fmt: str, model: str, spec: Spec) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head events, one event per text delta, tail events) of a text answer in ``fmt``."""
    texts = [_text(i, spec) for i in range(spec.events)]
    usage_in, usage_out = 1000, spec.events
    if fmt == "chat":
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": _CREATED, "model": model}

        def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
            return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        head = [chunk({"role": "assistant", "content": ""})]
        body = [chunk({"content": t}) for t in texts]
        tail = [chunk({}, "stop"),
                _sse({**base, "choices": [], "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                                                       "total_tokens": usage_in + usage_out}}),
                b"data: [DONE]\n\n"]
        return head, body, tail
    if fmt == "anthropic":
        message: dict[str, object] = {
            "id": "msg_bench", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage_in, "output_tokens": 1}}
        head = [_sse({"type": "message_start", "message": message}, "message_start"),
                _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                     "content_block_start")]
        body = [_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
                     "content_block_delta") for t in texts]
        tail = [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                      "usage": {"output_tokens": usage_out}}, "message_delta"),
                _sse({"type": "message_stop"}, "message_stop")]
        return head, body, tail
    raise ValueError(fmt)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
         b"transfer-encoding: chunked\r\n")
_CACHE: dict[tuple[str, str], tuple[list[bytes], list[bytes], list[bytes]]] = {}


def _rendered(fmt: str, model: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
    key = (fmt, model)
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        head, body, tail = render(fmt, model, parse_model(model))
        _CACHE[key] = ([_chunk(e) for e in head], [_chunk(e) for e in body], [_chunk(e) for e in [*tail, b""]])
    return _CACHE[key]


async def _respond(writer: asyncio.StreamWriter, fmt: str, model: str, keep_alive: bool) -> None:
    spec = parse_model(model)
    head, body, tail = _rendered(fmt, model)
    writer.write(_HEAD + (b"connection: keep-alive\r\n\r\n" if keep_alive else b"connection: close\r\n\r\n"))
    for ev in head:
        writer.write(ev)
    await writer.drain()
    delay = spec.delay
    for ev in body:
        if spec.stamp:
            ev = ev.replace(STAMP_PLACEHOLDER, b"T%019d" % time.monotonic_ns(), 1)
        writer.write(ev)
        await writer.drain()
        if delay:
            await asyncio.sleep(delay)
    for ev in tail:
        writer.write(ev)
    await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            keep_alive = headers.get("connection", "").lower() != "close"
            bare = path.split("?", 1)[0]
            fmt = "chat" if bare.endswith("/chat/completions") else "anthropic" if bare.endswith("/v1/messages") \
                else None
            m = _MODEL.search(body)
            if method != "POST" or fmt is None or m is None:
                print(f"404 {method} {path}: {body[:300]!r}", flush=True)  # in the run's upstream.log
                msg = b'{"error":{"message":"not a benchmark request"}}'
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (len(msg), msg))
                await writer.drain()
                return
            await _respond(writer, fmt, m[1].decode(), keep_alive)
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(_handle, host, port, backlog=256)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
