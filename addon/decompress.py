"""Bounded decompression of bodies and streams: a peer's compression ratio never sets the bridge's memory.

mitmproxy decodes a body whole, however far it expands (``Request.get_content``); a 65 KB zstd
request can become gigabytes. Every body the bridge reads goes through these decoders instead, which
stop as soon as the output passes a limit the config sets, and raise :class:`TooLarge`.

* :func:`decode_body`: a whole body (a request, a non-streamed answer), at most ``limit`` bytes out.
* :func:`decoder_for`: a streamed body (mitmproxy hands a stream callable the still-encoded bytes,
  mitmproxy-notes §1), chunk by chunk; one chunk may expand to at most ``limit`` bytes, the stream as a
  whole is not limited (a long answer is fine, a bomb in one chunk is not).

zlib and brotli bound their output natively; zstandard's incremental decoder does not, so its input
is fed in small slices (a zstd block of at most 128 KiB takes at least 4 bytes, so a slice of
:data:`_ZSTD_SLICE` bytes yields at most 8 MiB) and the output is checked after each. The libraries are
mitmproxy's own dependencies.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli  # type: ignore[import-untyped]
import zstandard

__all__ = ["TooLarge", "Corrupt", "UnknownEncoding", "decoder_for", "decode_body", "ENCODINGS"]

ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "br", "zstd")
_ZSTD_SLICE = 256
_PIECE = 1 << 20  # brotli: output produced per call while draining


class TooLarge(ValueError):
    """The decoded bytes would pass the limit (``limit`` says which)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"decompresses to more than {limit} bytes")
        self.limit = limit


class Corrupt(ValueError):
    """The bytes are not valid in their encoding."""


class UnknownEncoding(ValueError):
    """A ``content-encoding`` not known here."""


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._z = zlib.decompressobj(wbits=wbits)

    def __call__(self, data: bytes, limit: int) -> bytes:
        out = self._z.decompress(data, limit + 1) if data else self._z.flush(limit + 1)
        # gzip allows several members back to back (gzip.decompress reads them all): each gets a decoder
        while self._wbits == 31 and self._z.eof and self._z.unused_data and len(out) <= limit:
            rest = self._z.unused_data
            self._z = zlib.decompressobj(wbits=31)
            out += self._z.decompress(rest, limit + 1 - len(out))
        if len(out) > limit or self._z.unconsumed_tail:
            raise TooLarge(limit)
        return out


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (wrongly, but often) raw; decided by the first bytes."""

    def __init__(self) -> None:
        self._z: _Zlib | None = None
        self._head = b""  # the first byte, until the second tells which it is

    def __call__(self, data: bytes, limit: int) -> bytes:
        if self._z is None:
            data = self._head + data
            if len(data) < 2 and data:
                self._head = data
                return b""
            zlib_header = len(data) >= 2 and (data[0] << 8 | data[1]) % 31 == 0 and data[0] & 0x0F == 8
            self._z = _Zlib(15 if zlib_header else -15)
        return self._z(data, limit)


class _Brotli:
    def __init__(self) -> None:
        self._b = brotli.Decompressor()

    def __call__(self, data: bytes, limit: int) -> bytes:
        out = bytearray(self._b.process(data, output_buffer_limit=min(limit + 1, _PIECE)))
        while not self._b.can_accept_more_data() and len(out) <= limit:  # more output is pending
            out += self._b.process(b"", output_buffer_limit=min(limit + 1 - len(out), _PIECE) or 1)
        if len(out) > limit:
            raise TooLarge(limit)
        return bytes(out)


class _Zstd:
    def __init__(self) -> None:
        self._z = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)

    def __call__(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        view = memoryview(data)
        for i in range(0, len(view), _ZSTD_SLICE):
            out += self._z.decompress(view[i:i + _ZSTD_SLICE])
            if len(out) > limit:
                raise TooLarge(limit)
        return bytes(out)


def _identity(data: bytes, limit: int) -> bytes:
    return data


def _make(encoding: str) -> Callable[[bytes, int], bytes] | None:
    match encoding.strip().lower():
        case "" | "identity":
            return _identity
        case "gzip" | "x-gzip":
            return _Zlib(31)
        case "deflate":
            return _Deflate()
        case "br":
            return _Brotli()
        case "zstd":
            return _Zstd()
    return None


def decoder_for(encoding: str, limit: int) -> Callable[[bytes], bytes] | None:
    """A function that decodes the next chunk (``b""`` at the end) into at most ``limit`` bytes, raising
    :class:`TooLarge` beyond and :class:`Corrupt` for bytes that are not this encoding; None for an
    encoding not known here."""
    step = _make(encoding)
    if step is None:
        return None
    if step is _identity:
        return lambda data: data
    name = encoding.strip().lower()

    def decode(data: bytes) -> bytes:
        try:
            return step(data, limit)
        except (zlib.error, brotli.error, zstandard.ZstdError) as e:
            raise Corrupt(f"not valid {name}: {e}") from None
    return decode


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """A whole body decoded (``identity`` or none: as it is), at most ``limit`` bytes.

    Raises :class:`TooLarge` past the limit, :class:`UnknownEncoding`, or :class:`Corrupt`.
    """
    step = _make(encoding)
    if step is None:
        raise UnknownEncoding(f"content-encoding {encoding!r} is not supported (supported: {', '.join(ENCODINGS)})")
    if step is _identity:
        if len(raw) > limit:
            raise TooLarge(limit)
        return raw
    try:
        out = step(raw, limit)
        return out + step(b"", limit - len(out))
    except (zlib.error, brotli.error, zstandard.ZstdError) as e:
        raise Corrupt(f"body is not valid {encoding.strip().lower()}: {e}") from None
