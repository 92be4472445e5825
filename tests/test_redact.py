"""Redaction (addon/redact.py; issue 19, and issue 12 items 5, 6 and 10): every provider's key shape,
keys inside keys, the encoded forms an echo can take, and ordinary text left alone.

The example keys are built from each provider's documented shape (prefix, alphabet, length) with
made-up characters: none is a real key.
"""

from __future__ import annotations

import base64
import json

import pytest

from addon.redact import MARK, EventScrubber, Redactor, encoded_forms, redacted_url

R62 = "A1b2C3d4E5f6G7h8J9k0L1m2N3p4Q5r6S7t8U9v0W1x2Y3z4"  # 48 made-up base62 characters
HEX64 = "0123456789abcdef" * 4

# provider → a key of its documented shape (sources: each provider's API key documentation)
SHAPES = {
    "OpenAI legacy (sk-)": "sk-" + R62,
    "OpenAI project (sk-proj-)": "sk-proj-" + R62[:20] + "_-" + R62 + "T3BlbkFJ" + R62[:20],
    "OpenAI service account (sk-svcacct-)": "sk-svcacct-" + R62 + "-" + R62[:30] + "_x",
    "OpenAI admin (sk-admin-)": "sk-admin-" + R62,
    "Anthropic API (sk-ant-api03-)": "sk-ant-api03-" + R62 + "_" + R62 + "-AA",
    "Anthropic OAuth (sk-ant-oat01-)": "sk-ant-oat01-" + R62 + "-" + R62[:40],
    "Google (AIza)": "AIza" + "SyA1b2C3d4E5f6G7h8J9k0L1m2N3p4Q5r6s",  # 39 characters in all
    "OpenRouter (sk-or-v1-)": "sk-or-v1-" + HEX64,
    "Groq (gsk_)": "gsk_" + R62[:52] if len(R62) >= 52 else "gsk_" + (R62 * 2)[:52],
    "xAI (xai-)": "xai-" + (R62 * 2)[:80],
    "DeepSeek (sk- 32 hex)": "sk-" + HEX64[:32],
    "Hugging Face (hf_)": "hf_" + R62[:34],
    "GitHub (ghp_)": "ghp_" + R62[:36],
    "ChatGPT access token (JWT)": ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6MTc5MDAwMDAw"
                                   "MH0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
}
# Keys without a prefix are caught where they stand: after a bearer scheme or a key-named field.
IN_CONTEXT = {
    "Mistral (32 alphanumeric, Bearer)": ("Authorization: Bearer {}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY"),
    "Azure OpenAI (32 hex, api-key header)": ("api-key: {}", "0123456789abcdef0123456789ABCDEF"),
    "any key in a JSON field": ('{{"api_key": "{}"}}', "Zq8Wn4Rt6Yp2Ks0Lm3Xv5Bc7Nd9Fg1Hj"),
    "a secret= parameter in prose": ("client_secret={}", "Zq8Wn4Rt6Yp2Ks0Lm3Xv5Bc7Nd9Fg1Hj"),
}


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("around", ["{}", "key: {}.", '{{"message":"invalid key {}"}}', "({})\n", "'{}'"])
def test_every_providers_key_shape_is_blanked_whole(name: str, around: str) -> None:
    key = SHAPES[name]
    out = Redactor()(around.format(key))
    assert key not in out and out == around.format(MARK), (name, out)


@pytest.mark.parametrize("name", IN_CONTEXT)
def test_keys_without_a_prefix_are_blanked_in_context(name: str) -> None:
    template, key = IN_CONTEXT[name]
    out = Redactor()(template.format(key))
    assert key not in out and out == template.format(MARK), out


ORDINARY = [
    "The task-manager-service-worker-pool restarts the risk-assessment-framework-v2 daemon.",
    "Use Bearer authentication; the bearer of this token must rotate it monthly.",
    "git commit 3f9a1c2e4b5d6f708192a3b4c5d6e7f8091a2b3c and md5 9e107d9d372bb6826bd81d3542a419d6",
    "uuid 123e4567-e89b-12d3-a456-426614174000, sha256 " + "ab" * 32,
    "def sk_learn_pipeline(): return disk-usage-monitoring-daemon --mask-sensitive-data",
    'headers = {"Authorization": f"Bearer {os.environ[\'OPENAI_API_KEY\']}", "x-api-key": api_key}',
    "export ANTHROPIC_API_KEY=$(cat ~/.keys/anthropic) # sk-... goes here",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "signature bridge1.eyJvIjoiYW50aHJvcGljIiwiZCI6IkVxUUJDa1lJQVJnQ0lrQSJ9 and password: hunter2",
    "A Groq model, an xAI model, Google's AIza prefix and OpenRouter's sk-or-v1 prefix, named in prose.",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_prose_and_code_come_out_unchanged(text: str) -> None:
    assert Redactor(["an-unrelated-configured-secret-123"])(text) == text


def test_a_key_that_contains_another_is_blanked_whole() -> None:
    """Issue 19 item 1: with the replacement order flipped the log would show "[REDACTED]-efgh-ijkl"."""
    short, long = "tok-abcd", "tok-abcd-efgh-ijkl"
    for values in ([short, long], [long, short]):
        redact = Redactor(values)
        assert redact(f"a {long} b {short} c") == f"a {MARK} b {MARK} c"
        assert redact.scrub(f"a {long} b".encode()) == f"a {MARK} b".encode()
    inner = Redactor(["abcd-efgh", "xyz-abcd-efgh-123"])  # one inside the other, not as a prefix
    assert inner("[xyz-abcd-efgh-123] [abcd-efgh]") == f"[{MARK}] [{MARK}]"


KEY = "FAKEUPSTREAM-7d3e1a-not-a-real-key"


@pytest.mark.parametrize(("name", "encode"), [
    ("plain", lambda k: k),
    ("JSON \\u escapes", lambda k: "".join(f"\\u{ord(c):04x}" for c in k)),
    ("JSON \\u escapes, upper hex", lambda k: "".join(f"\\u{ord(c):04X}" for c in k)),
    ("percent-encoded", lambda k: "".join(f"%{ord(c):02X}" for c in k)),
    ("percent-encoded, lower hex", lambda k: "".join(f"%{ord(c):02x}" for c in k)),
    ("base64", lambda k: base64.b64encode(k.encode()).decode()),
    ("base64 inside a longer text, offset 1", lambda k: base64.b64encode(b"x" + k.encode() + b"yz").decode()),
    ("base64 inside a longer text, offset 2", lambda k: base64.b64encode(b"xy" + k.encode() + b"z").decode()),
    ("base64url", lambda k: base64.urlsafe_b64encode(b"\xfb\xff" + k.encode()).decode()),
])
def test_known_keys_are_found_in_every_encoding_an_echo_may_use(name: str, encode: object) -> None:
    """Issue 12 item 10: keys in base64, percent-encoded or \\u-escaped forms passed."""
    wire = '{"type":"content_block_delta","delta":{"text":"echo ' + encode(KEY) + ' end"}}'  # type: ignore
    json.loads(wire)  # what an upstream would send: valid JSON
    redact = Redactor([KEY])
    out = redact.scrub(wire.encode()).decode()
    assert MARK in out, (name, out)
    for form in encoded_forms(KEY):
        assert form not in out
    assert out.startswith('{"type":"content_block_delta"') and out.endswith(' end"}}')


def test_scrub_leaves_text_without_a_known_key_alone_even_key_shaped() -> None:
    """The answer's text may talk about keys: only the keys the bridge knows are blanked there."""
    text = b'{"delta":{"text":"set OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz012345 in .env"}}'
    assert Redactor([KEY]).scrub(text) == text
    assert Redactor().scrub(text) == text


def test_an_event_scrubber_catches_a_key_split_across_chunks() -> None:
    """Issue 12 item 10: the key in the chunk after ``{"error":{..."message":"`` reached the client."""
    redact = Redactor([KEY])
    events = (b'event: error\ndata: {"type":"error","error":{"type":"x","message":"bad key '
              + KEY.encode() + b'"}}\n\n' + b'data: {"delta":"' + KEY.encode() + b'"}\n\n')
    for size in (1, 3, 7, 20, len(events)):
        scrubber = EventScrubber(redact)
        out = b"".join(scrubber(events[i:i + size]) for i in range(0, len(events), size)) + scrubber(b"")
        assert KEY.encode() not in out and out.count(MARK.encode()) == 2, size
        assert out.replace(MARK.encode(), KEY.encode()) == events


def test_an_event_scrubber_hands_whole_events_on_at_once() -> None:
    scrubber = EventScrubber(Redactor([KEY]))
    assert scrubber(b"data: 1\n\ndata: 2") == b"data: 1\n\n"  # the second event waits for its end
    assert scrubber(b"\r\n\r\n") == b"data: 2\r\n\r\n"
    assert scrubber(b"") == b""


def test_an_event_scrubber_never_holds_more_than_its_limit() -> None:
    redact = Redactor([KEY])
    scrubber = EventScrubber(redact, hold=1000)
    out = scrubber(b"x" * 5000)  # an upstream that never ends an event
    assert len(out) == 5000 - redact.longest_form  # the tail a key's longest form could still be starting in
    assert len(out) + len(scrubber(b"")) == 5000


def test_urls_lose_their_key_parameters() -> None:
    assert redacted_url("http://h/p?key=abc&beta=true&API_KEY=x#f") == f"http://h/p?key={MARK}&beta=true&API_KEY={MARK}#f"


def test_short_configured_values_are_not_secrets() -> None:
    assert Redactor(["abc"])("abc abc") == "abc abc"  # three characters: a placeholder, not a key
