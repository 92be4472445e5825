"""The ``flow.response.stream`` callable: bytes per network chunk in, the client's bytes out, then ``b""``.

Whatever the translation, the stream stays in constant memory: compressed chunks are decoded with a
bound per chunk (:mod:`addon.decompress`), side copies for the log or a recorded flow are bounded
(:class:`~addon.logconfig.BodyRecorder`), and every byte for the client is scrubbed of the secrets
the upstream was given (:class:`~addon.redact.Redactor`): a translated stream event by event as the
emitter makes them, a pass-through stream whole event by whole event (:class:`~addon.redact.EventScrubber`).

What the callable is handed: mitmproxy's HTTP/1 reader makes one body piece per HTTP chunk, and an upstream
sends one chunk per event, so a read of a burst (fifty events that arrived together) went through
mitmproxy's layers, this callable and a socket write to the client fifty times. :func:`coalesce_reads`
(a guarded wrap of ``Http1Client.read_body``, mitmproxy's reader of upstream answers, installed by
``respond.py``) hands on the pieces of one read as one: the same bytes, as soon as before, once per read
(docs/benchmark.md, "Where a stream's CPU goes"; docs/mitmproxy-patch-coalesce.diff is the same change to
mitmproxy itself).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ResponseData
from mitmproxy.proxy.layers.http._http1 import Http1Client

from .decompress import Corrupt, TooLarge
from .errors import BridgeError, UpstreamProtocolError
from .logconfig import BodyRecorder
from .redact import EventScrubber, Redactor
from .translate import ModelRenamer, StreamTranslator

__all__ = ["StreamAdapter", "STREAM_CHUNK_LIMIT", "coalesce_reads"]

logger = logging.getLogger("bridge")

# What one compressed network chunk (at most 64 KiB from mitmproxy) may expand to: legitimate SSE
# compresses 10-50x; past this it is a bomb, not an answer. The SSE decoder's own event limit.
STREAM_CHUNK_LIMIT = 16 * 1024 * 1024


class StreamAdapter:
    """Without a translator the bytes pass unchanged, scrubbed (a pass-through stream).

    ``keep`` bytes of each side are kept for the log or a recorded flow (0: none): ``upstream`` and
    ``client``, read once the stream has ended.
    """

    def __init__(self, translator: StreamTranslator | ModelRenamer | None, decode: Callable[[bytes], bytes],
                 redact: Redactor, scrub: Redactor, keep: int = 0) -> None:
        self.translator = translator
        self._decode = decode
        self._redact = redact  # everything known and key shapes: for error events
        self._scrub = scrub  # what the upstream was given, in every encoding: for every byte
        self._events = EventScrubber(scrub) if translator is None else None
        self._broken = False  # the translation failed (a bug): the rest of the stream is dropped
        self.upstream = BodyRecorder(keep) if keep else None
        self.client = BodyRecorder(keep) if keep and translator is not None else self.upstream

    def __call__(self, data: bytes) -> list[bytes]:
        if self._events is not None:
            return self._pass(data)
        # Always a list: a bare b"" mid-stream would end a chunked HTTP/1 body (notes §1).
        if self._broken or self.translator is None:
            return []
        try:
            plain = self._decode(data)
            out = self.translator.feed(plain) if plain else []
            if not data:
                out += self.translator.close()
        except Exception as e:  # a bomb, a corrupt compressed stream, or a bug: end the stream honestly, once
            return self._fail(e)
        out = [self._scrub.scrub(chunk) for chunk in out]
        if self.upstream is not None and self.client is not None:
            self.upstream.add(plain)
            self.client.add(out)
        return out

    def _pass(self, data: bytes) -> list[bytes]:
        assert self._events is not None
        out = self._events(data)  # whole events only, scrubbed
        if b'"error"' in out:
            out = self._redact.bytes(out)  # an upstream's error event that echoes a key we never gave it
        if self.upstream is not None:
            self.upstream.add(out)
        return [out] if out else []  # b"" is the end: returning it would write a second terminator

    def _fail(self, e: Exception) -> list[bytes]:
        self._broken = True
        if isinstance(e, TooLarge):
            err: BridgeError = UpstreamProtocolError(
                f"the upstream's compressed stream expands past {e.limit} bytes in one chunk")
        elif isinstance(e, Corrupt):
            err = UpstreamProtocolError(f"the upstream's compressed stream is corrupt: {e}")
        else:
            logger.exception("the bridge failed while translating a stream")
            err = BridgeError(f"the bridge failed on this stream ({type(e).__name__}: {e})", status=502)
        if isinstance(self.translator, StreamTranslator):
            return [self._scrub.scrub(chunk) for chunk in self.translator.abort(err)]
        return []


# The line of mitmproxy's reader that makes one body piece per HTTP chunk: what coalesce_reads relies on.
_PIECE_LINE = "yield ReceiveHttp(self.ReceiveData(self.stream_id, data))"


def coalesce_reads() -> None:
    """Wrap the reader of upstream answers (``Http1Client.read_body``, idempotent): the body pieces it makes
    of one socket read go on as one ``ResponseData``, in their order, before whatever it yields next (the
    end of the message, an error). Nothing waits for more bytes: a read of one event hands on that event,
    as before. A piece stays within what one read holds (mitmproxy reads at most 64 KiB), so the bounds per
    chunk (STREAM_CHUNK_LIMIT, bodylimit.py's answer limit) hold as they did. Raises ``RuntimeError`` when
    mitmproxy's reader is not the one this was written for (``tests/test_coalesce.py`` pins it)."""
    original = Http1Client.read_body
    if getattr(original, "_bridge_patched", False):
        return
    if not inspect.isgeneratorfunction(original) or _PIECE_LINE not in inspect.getsource(original):
        raise RuntimeError("mitmproxy's HTTP/1 body reader (Http1Connection.read_body) is not the one the bridge "
                           "was written for: coalesce_reads would not know what it hands on")

    def read_body(self: Any, event: Any) -> Generator[Any, Any, None]:
        inner = original(self, event)
        first: Any = None  # the first piece's command, handed on as it is when it is the only one
        pieces: list[bytes] = []
        reply: Any = None
        while True:
            try:
                command = inner.send(reply)
            except StopIteration as done:
                if first is not None:
                    yield first if len(pieces) == 1 else ReceiveHttp(ResponseData(first.event.stream_id,
                                                                                  b"".join(pieces)))
                return done.value  # type: ignore[no-any-return]
            if type(command) is ReceiveHttp and type(command.event) is ResponseData:
                if first is None:
                    first = command
                pieces.append(command.event.data)
                reply = None  # ReceiveHttp is not a command that answers
                continue
            if first is not None:
                yield first if len(pieces) == 1 else ReceiveHttp(ResponseData(first.event.stream_id, b"".join(pieces)))
                first, pieces = None, []
            reply = yield command

    read_body._bridge_patched = True  # type: ignore[attr-defined]
    Http1Client.read_body = read_body  # type: ignore[method-assign]
