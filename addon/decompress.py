"""Incremental decompression of a streamed body, for upstreams that compress despite being asked not to.

mitmproxy hands a stream callable the raw, still-encoded bytes (mitmproxy-notes §1). The bridge asks
for ``accept-encoding: identity``; if an upstream compresses anyway, these decoders keep the stream
live instead of buffering it. The libraries are mitmproxy's own dependencies.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli  # type: ignore[import-untyped]
import zstandard

__all__ = ["decoder_for"]


def decoder_for(encoding: str) -> Callable[[bytes], bytes] | None:
    """A function that decodes the next chunk (``b""`` at the end), or None for an unknown encoding."""
    match encoding.strip().lower():
        case "" | "identity":
            return lambda data: data
        case "gzip" | "x-gzip":
            z = zlib.decompressobj(wbits=31)
            return lambda data: z.decompress(data) if data else z.flush()
        case "deflate":
            z = zlib.decompressobj()
            return lambda data: z.decompress(data) if data else z.flush()
        case "br":
            b = brotli.Decompressor()
            return lambda data: b.process(data) if data else b""
        case "zstd":
            zs = zstandard.ZstdDecompressor().decompressobj()
            return lambda data: zs.decompress(data) if data else b""
    return None
