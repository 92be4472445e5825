"""Gemini's JSON-array stream (``:streamGenerateContent`` without ``alt=sse``), split as it arrives.

The stream is ``[`` object ``,`` object … ``]``, pretty-printed or not, cut anywhere by the network.
:class:`ArraySplitter` hands back, in order, what lies between the objects (brackets, commas,
whitespace: passed on as it is) and each top-level object once its closing brace has come, so a
pass-through stream can be changed one whole object at a time (the model name put back) and go on
live. Only structure is tracked — depth, and whether a string (with its escapes) is open — so a brace
inside a string is text. An object longer than ``limit`` is the upstream's fault, not a reason to grow.
"""

from __future__ import annotations

import re

from .errors import UpstreamProtocolError

__all__ = ["ArraySplitter"]

_IN_OBJECT = re.compile(rb'[{}"]')
_IN_STRING = re.compile(rb'["\\]')


class ArraySplitter:
    """``feed(bytes)`` → ``[(is_object, bytes), …]``; ``close()`` hands back an unfinished object as it is."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._object = bytearray()  # the object being read (depth > 0)
        self._depth = 0
        self._in_string = False
        self._escaped = False  # a backslash ended the last chunk: the next byte is escaped

    def feed(self, data: bytes) -> list[tuple[bool, bytes]]:
        out: list[tuple[bool, bytes]] = []
        i, n = 0, len(data)
        while i < n:
            if self._depth == 0:
                j = data.find(b"{", i)
                if j < 0:
                    out.append((False, data[i:]))
                    break
                if j > i:
                    out.append((False, data[i:j]))
                self._depth, i = 1, j + 1
                self._object += b"{"
                continue
            start = i
            i = self._scan(data, i)
            self._object += data[start:i]
            if len(self._object) > self._limit:
                raise UpstreamProtocolError(f"an object in the upstream's JSON-array stream is over "
                                            f"{self._limit} bytes")
            if self._depth == 0:
                out.append((True, bytes(self._object)))
                self._object.clear()
        return out

    def _scan(self, data: bytes, i: int) -> int:
        """Past the object's closing brace, or to the end of ``data``."""
        n = len(data)
        if self._escaped:
            self._escaped, i = False, i + 1
        while i < n:
            if self._in_string:
                m = _IN_STRING.search(data, i)
                if m is None:
                    return n
                if m.group() == b"\\":
                    if m.end() == n:
                        self._escaped = True
                        return n
                    i = m.end() + 1
                    continue
                self._in_string, i = False, m.end()
                continue
            m = _IN_OBJECT.search(data, i)
            if m is None:
                return n
            i = m.end()
            token = m.group()
            if token == b'"':
                self._in_string = True
            elif token == b"{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    return i
        return n

    def close(self) -> list[tuple[bool, bytes]]:
        rest, self._object = bytes(self._object), bytearray()
        self._depth, self._in_string, self._escaped = 0, False, False
        return [(False, rest)] if rest else []
