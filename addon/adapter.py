"""The ``flow.response.stream`` callable: bytes per network chunk in, the client's bytes out, then ``b""``.

Whatever the translation, the stream stays in constant memory: compressed chunks are decoded with a
bound per chunk (:mod:`addon.decompress`), side copies for the log or a recorded flow are bounded
(:class:`~addon.logconfig.BodyRecorder`), and every byte for the client is scrubbed of the secrets
the upstream was given (:class:`~addon.redact.Redactor`): a translated stream event by event as the
emitter makes them, a pass-through stream whole event by whole event (:class:`~addon.redact.EventScrubber`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .decompress import Corrupt, TooLarge
from .errors import BridgeError, UpstreamProtocolError
from .logconfig import BodyRecorder
from .redact import EventScrubber, Redactor
from .translate import ModelRenamer, StreamTranslator

__all__ = ["StreamAdapter", "STREAM_CHUNK_LIMIT"]

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
