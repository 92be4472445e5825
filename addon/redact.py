"""Secrets out of everything the bridge writes: logs, flows, headers, error fields and answers.

Theory of operation
-------------------
Two kinds of secret are blanked as ``[REDACTED]``:

* **Known values**: the keys the config names (read from the environment), every credential a
  client presented, and what the bridge sent upstream. Each is matched in its plain form and in the
  forms an echo can take on the way back: JSON ``\\u`` escapes, percent-encoding, and standard and
  URL-safe base64 at each of the three byte alignments (only the characters that depend on the key
  alone, so the key is found inside a longer base64 text too). All forms of all values are one
  alternation, longest first, so a key that contains another key is blanked whole.
* **Shapes** (:data:`SHAPES`): keys the bridge was never told about — a client's own key on
  pass-through, a key an upstream echoes. Provider prefixes from their public docs, JWTs, bearer
  tokens and values after a key-named field (``api-key:``, ``"api_key": "…"``). A shape must stand
  alone (no letter or digit right before it) and be long and random-looking enough that prose and
  code come out unchanged (``tests/test_redact.py`` holds both lists).

``Redactor.__call__`` / ``bytes`` apply both (logs, flows, error fields, headers). ``scrub`` applies
known values only, with a cheap substring pre-check: it runs over every byte of an answer, where a
shape would blank ordinary model text that merely talks about keys. :class:`EventScrubber` scrubs a
pass-through SSE stream one whole event at a time, so a key split across network chunks is caught.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterable

from .access import KEY_PARAMS

__all__ = ["MARK", "SHAPES", "Redactor", "EventScrubber", "encoded_forms", "redacted_url"]

MARK = "[REDACTED]"
_MIN_VALUE = 4  # shorter configured "keys" are placeholders; blanking them would mangle ordinary text
_MIN_ENCODED = 16  # an encoded form shorter than this could occur by chance
_SEARCH_BELOW = 4096
_MADE_MAX = 64

_TOKEN = r"[A-Za-z0-9._~+/=-]"


def _alone(prefix: str) -> str:
    """``prefix`` with nothing key-like right before it ("task-…" never matches "sk-…"), written literal
    first so that the regex engine can search for the prefix instead of trying every position."""
    literal = re.escape(prefix)
    return f"{literal}(?<![A-Za-z0-9_-]{literal})"


_KEY_FIELDS = (*(f"{a}{sep}{b}" for a, b in (("api", "key"), ("access", "token"), ("auth", "token"), ("secret", "key"),
                                             ("client", "secret")) for sep in ("_", "-", "")), "password")
# (pattern, group to blank: 0 = all, substrings one of which must be present). Sources: each provider's
# API-key documentation (2026).
_SHAPE_SOURCES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    # OpenAI sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…; Anthropic sk-ant-api03-…, sk-ant-oat01-…;
    # OpenRouter sk-or-v1-<64 hex>; DeepSeek sk-<32 hex>
    (_alone("sk-") + r"[A-Za-z0-9_-]{20,}", 0, ()),
    (_alone("AIza") + r"[0-9A-Za-z_-]{35}", 0, ()),  # Google API keys (Gemini)
    (_alone("gsk_") + r"[A-Za-z0-9]{20,}", 0, ()),  # Groq
    (_alone("xai-") + r"[A-Za-z0-9_-]{20,}", 0, ()),  # xAI
    (_alone("hf_") + r"[A-Za-z0-9]{30,}", 0, ()),  # Hugging Face
    (r"(?:" + _alone("gh") + r"[pousr]_[A-Za-z0-9]{30,}|" + _alone("github_pat_") + r"[A-Za-z0-9_]{30,})", 0, ()),
    # JWTs: ChatGPT access tokens (the Codex backend's key), OAuth id tokens
    (_alone("eyJ") + r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0, ()),
    # a bearer token (Mistral's keys have no prefix): long, with a digit, so "Bearer authentication" stays
    (r"(?i:\bbearer)\s+((?=" + _TOKEN + r"*[0-9])" + _TOKEN + r"{16,})", 1, ("earer", "EARER")),
    # a value after a key-named field: Azure's `api-key: <32 hex>`, `"api_key": "…"`, `secret=…`
    (r"(?i)(?<![A-Za-z0-9])(?:x-goog-|x-)?(?:api[-_]?key|apikey|access[-_]?token|auth[-_]?token|secret[-_]?key|"
     r"client[-_]?secret|password)[\"']?\s*[:=]\s*[\"']?(" + _TOKEN + r"{16,})", 1,
     _KEY_FIELDS),
)
SHAPES: tuple[tuple[re.Pattern[str], int], ...] = tuple((re.compile(p), g) for p, g, _ in _SHAPE_SOURCES)
_NEEDLES = tuple(needles for _, _, needles in _SHAPE_SOURCES)  # a cheap test before a costly pattern


def encoded_forms(value: str) -> list[str]:
    """The value and the forms an echo of it may take: JSON ``\\u`` escapes, percent-encoding, base64."""
    forms = [value]
    if len(value) < 12:
        return forms
    for hexes in ("{:04x}", "{:04X}"):
        forms.append("".join("\\u" + hexes.format(ord(c)) for c in value))
    raw = value.encode("utf-8", "surrogateescape")
    forms += ["".join(f"%{b:02X}" for b in raw), "".join(f"%{b:02x}" for b in raw)]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for k in range(3):  # the key's bytes may start at any offset of a 3-byte base64 group
            text = encode(b"\0" * k + raw).decode()
            start, end = -(-k * 4 // 3), (k + len(raw)) * 4 // 3  # characters set by the key's bits alone
            forms.append(text[start:end])
    return [f for i, f in enumerate(forms) if (i == 0 or len(f) >= _MIN_ENCODED) and f not in forms[:i]]


class Redactor:
    """Blanks known secret values (in every encoded form) and key shapes."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values = sorted({v for v in values if v and len(v) >= _MIN_VALUE}, key=len, reverse=True)
        forms = sorted({f for v in self._values for f in encoded_forms(v)}, key=len, reverse=True)
        self._forms = forms
        self._forms_bytes = [f.encode("utf-8", "surrogateescape") for f in forms]
        # Longest first: where two forms match at the same place, the longer (the key that contains the
        # other) wins, so "tok-abcd-efgh" is never left as "[REDACTED]-efgh".
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None
        self._pattern_bytes = re.compile(b"|".join(map(re.escape, self._forms_bytes))) if forms else None

    @classmethod
    def from_env(cls, env_names: Iterable[str], values: Iterable[str] = ()) -> Redactor:
        """The values of these environment variables (read now) and ``values``."""
        return cls.of([*(os.environ.get(name) or "" for name in env_names), *values])

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        """A redactor for these values, made once: building one (every encoded form, one pattern) takes
        far longer than a request may spend, and requests present the same keys again and again."""
        key = tuple(sorted({v for v in values if v and len(v) >= _MIN_VALUE}))
        found = _MADE.pop(key, None) or cls(key)
        _MADE[key] = found  # most recently used last
        while len(_MADE) > _MADE_MAX:
            del _MADE[next(iter(_MADE))]
        return found

    @property
    def values(self) -> list[str]:
        return list(self._values)

    @property
    def longest_form(self) -> int:
        return len(self._forms_bytes[0]) if self._forms_bytes else 0

    def also(self, values: Iterable[str]) -> Redactor:
        """This redactor, plus more secrets (a request's own credentials)."""
        extra = [v for v in values if v and v not in self._values]
        return Redactor.of([*self._values, *extra]) if extra else self

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MARK, text)
        folded: str | None = None
        for pattern, blank, needles in _SHAPE_STEPS:
            if needles is not None:  # case-insensitive patterns try every position: only where a word of theirs is
                folded = text.lower() if folded is None else folded
                if needles.search(folded) is None:
                    continue
            text = pattern.sub(blank, text)
        return text

    def scrub_text(self, text: str) -> str:
        """Known values only (every form), for text: a header of traffic the bridge only passes on."""
        return self._pattern.sub(MARK, text) if self._pattern is not None else text

    def scrub(self, data: bytes) -> bytes:
        """Known values only (every form), for answers: cheap when none occurs, which is always but once.
        One pattern search is quicker on an event (a few hundred bytes), a substring test per form on
        a large chunk (measured: 1.6 µs against 5.7 µs on an event, 714 µs against 111 µs on 63 KB)."""
        if self._pattern_bytes is None:
            return data
        if len(data) < _SEARCH_BELOW:
            if self._pattern_bytes.search(data) is None:
                return data
        elif not any(f in data for f in self._forms_bytes):
            return data
        return self._pattern_bytes.sub(MARK.encode(), data)

    def bytes(self, data: bytes) -> bytes:  # last: below this line, "bytes" in the class would be this method
        """The same as calling it, for a body; bytes that are not UTF-8 pass through unchanged."""
        return self(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


_MADE: dict[tuple[str, ...], Redactor] = {}  # Redactor.of: the redactors made lately, by their values


def _blank(group: int) -> str | Callable[[re.Match[str]], str]:
    if group == 0:
        return MARK
    return lambda m: m.group(0)[:m.start(group) - m.start(0)] + MARK + m.group(0)[m.end(group) - m.start(0):]


# Each shape with its replacement and its needles (lower-cased, one literal pattern), made once: every header
# of every answer goes through all of them (2.5 µs a header value when they were made per call, 1.6 now).
_SHAPE_STEPS = tuple((pattern, _blank(group),
                      re.compile("|".join(re.escape(n.lower()) for n in needles)) if needles else None)
                     for (pattern, group), needles in zip(SHAPES, _NEEDLES, strict=True))


class EventScrubber:
    """A pass-through SSE stream, scrubbed one whole event at a time (a key split across network chunks
    is caught); the bytes of an unfinished event wait for its end, which the client needs anyway.

    An upstream that never ends an event cannot make this hold more than ``hold`` bytes: beyond that the
    held bytes go out scrubbed, all but a tail as long as the longest secret form. (Gemini's JSON-array
    stream goes through a :class:`~addon.translate.ModelRenamer` instead, whole object by whole object.)
    """

    def __init__(self, redact: Redactor, hold: int = 1 << 20) -> None:
        self._redact = redact
        self._tail = b""
        self._hold = hold
        self._keep = redact.longest_form

    def __call__(self, data: bytes) -> bytes:
        if not data:  # the end
            out, self._tail = self._tail, b""
            return self._redact.scrub(out)
        buf = self._tail + data if self._tail else data
        cut = _event_end(buf)
        if cut < 0:
            if len(buf) <= self._hold:
                self._tail = buf
                return b""
            cut = len(buf) - self._keep
        self._tail = buf[cut:]
        return self._redact.scrub(buf[:cut])


def _event_end(buf: bytes) -> int:
    """The index just past the last blank line (an event's end, with any of SSE's line ends), or -1."""
    if buf.endswith(b"\n\n"):  # nearly every chunk: whole events
        return len(buf)
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\r", b"\r\n\r\n") if (i := buf.rfind(sep)) >= 0]
    return max(ends, default=-1)


_KEY_PARAM = re.compile(r"([?&](?:" + "|".join(map(re.escape, KEY_PARAMS)) + r")=)([^&#]*)", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """The URL with key-like query parameters blanked (``?key=…`` as some providers take it)."""
    return _KEY_PARAM.sub(lambda m: m.group(1) + MARK, url)
