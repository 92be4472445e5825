"""Gemini's two stream framings through a real mitmdump: ``alt=sse`` and the JSON array Gemini streams
without it (gemini.md §4.2), passed through (with and without a model rewrite) and translated. Each
must reach the client live — its first text before the upstream's last byte — in the framing the client
asked for, renamed where a rewrite applies, scrubbed of the upstream key even when the network splits it.
Raw HTTP: the official SDKs only ask for ``alt=sse``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import stream_grammar
from tests.conftest import UPSTREAM_KEY, BridgeProcess
from tests.mock_upstream import MockUpstream, Reply

REWRITE = {"enabled": True, "rules": [{"source_pattern": "*", "target_model": "gemini-upstream-model"}]}
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
ASKED = "gemini-client-model"


def stream(proc: BridgeProcess, alt: bool) -> Iterator[bytes]:
    """POST a streamed request and yield the body as it arrives."""
    path = f"/v1beta/models/{ASKED}:streamGenerateContent" + ("?alt=sse" if alt else "")
    with httpx.Client(timeout=20) as client, client.stream("POST", proc.url + path, json=BODY) as resp:
        assert resp.status_code == 200, resp.read()
        kind = resp.headers["content-type"]
        assert kind.startswith("text/event-stream" if alt else "application/json"), kind
        yield from resp.iter_raw()


def live(proc: BridgeProcess, mock: MockUpstream, alt: bool) -> bytes:
    """The whole answer, after checking that its first text came while the upstream was still held."""
    reply = mock.next_reply(Reply(text="first second third", piece=6, hold_after=2))
    t0, got = time.monotonic(), b""
    chunks = stream(proc, alt)
    for chunk in chunks:
        got += chunk
        if b"first" in got:
            break
    assert b"first" in got and not reply.release.is_set() and time.monotonic() - t0 < 5, "waited for the end"
    reply.release.set()
    return got + b"".join(chunks)


def passed_on(raw: bytes, alt: bool) -> list[dict]:
    """A pass-through stream's chunks. Its events end as the mock ends them (``\n\n``, which both official
    readers take); the grammar checker holds the bridge's own emitter to ``\r\n\r\n``."""
    if alt:
        assert b"\r\n" not in raw
        raw = raw.replace(b"\n\n", b"\r\n\r\n")
    return stream_grammar.check_gemini_stream(raw, "sse" if alt else "json-array")


def texts(chunks: list[dict]) -> str:
    return "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])


@pytest.mark.parametrize("alt", [True, False], ids=["sse", "json-array"])
@pytest.mark.parametrize("rewrite", [False, True], ids=["as-is", "renamed"])
def test_pass_through_stream_is_live_in_its_framing(bridge, mock: MockUpstream, alt: bool, rewrite: bool) -> None:
    proc = bridge("gemini", **({"model_rewrite": REWRITE} if rewrite else {}))
    chunks = passed_on(live(proc, mock, alt), alt)
    assert texts(chunks) == "first second third"
    asked = mock.last.path
    assert asked == (f"/v1beta/models/{'gemini-upstream-model' if rewrite else ASKED}:streamGenerateContent"
                     + ("?alt=sse" if alt else ""))  # the client's framing, not the bridge's
    shown = {c["modelVersion"] for c in chunks}
    assert shown == ({ASKED} if rewrite else {"mock-upstream-model"})  # the mock's own name unless renamed


@pytest.mark.parametrize("alt", [True, False], ids=["sse", "json-array"])
def test_translated_stream_is_live_in_the_clients_framing(bridge, mock: MockUpstream, alt: bool) -> None:
    proc = bridge("chat")
    raw = live(proc, mock, alt)
    chunks = stream_grammar.check_gemini_stream(raw, "sse" if alt else "json-array")
    assert texts(chunks) == "first second third"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert mock.last.json["stream"] is True  # the upstream streams whatever framing the client asked for


@pytest.mark.parametrize("alt", [True, False], ids=["sse", "json-array"])
def test_a_key_the_upstream_echoes_is_scrubbed_across_network_chunks(bridge, mock: MockUpstream, alt: bool) -> None:
    """The upstream key in one text part, the bytes cut into 3-byte network chunks: a pass-through stream is
    scrubbed whole events (SSE) or whole lines (JSON array) at a time, so the key is caught whole."""
    proc = bridge("gemini")
    mock.next_reply(Reply(text=f"your key is {UPSTREAM_KEY}, keep it", piece=1000, split=3))
    raw = b"".join(stream(proc, alt))
    assert UPSTREAM_KEY.encode() not in raw
    chunks = passed_on(raw, alt)
    assert texts(chunks) == "your key is [REDACTED], keep it"
    assert json.dumps(chunks)  # still valid JSON throughout


# gemini.md §4.6: what the live API was seen to end a failed stream with, instead of an SSE event.
RAW_TAIL = (b'{\n  "error": {\n    "code": 503,\n    "message": "This model is currently experiencing high demand.",\n'
            b'    "status": "UNAVAILABLE"\n  }\n}\n')


@pytest.mark.parametrize("client", ["anthropic", "chat", "responses"])
def test_a_raw_json_error_tail_reaches_the_client_as_its_error_event(bridge, mock: MockUpstream, client: str) -> None:
    """The upstream's words and kind (overloaded), not just "the stream ended without a finish"."""
    proc = bridge("gemini")
    mock.next_reply(Reply(text="hello there friend", inject=RAW_TAIL, inject_after=2))
    hi = [{"role": "user", "content": "hi"}]
    path, body = {
        "anthropic": ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": hi}),
        "chat": ("/v1/chat/completions", {"model": "m", "messages": hi}),
        "responses": ("/v1/responses", {"model": "m", "input": "hi"}),
    }[client]
    resp = httpx.post(proc.url + path, json={**body, "stream": True}, timeout=20,
                      headers={"anthropic-version": "2023-06-01"})
    assert resp.status_code == 200
    getattr(stream_grammar, f"check_{client}_stream")(resp.content)  # the client's grammar, its error last
    last = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")][-1]
    if client == "anthropic":
        assert last["error"] == {"type": "overloaded_error",
                                 "message": "This model is currently experiencing high demand."}
    elif client == "chat":
        assert last["error"]["message"] == "This model is currently experiencing high demand."
        assert "[DONE]" not in resp.text
    else:
        assert last["type"] == "response.failed"
        assert last["response"]["error"]["message"] == "This model is currently experiencing high demand."


@pytest.mark.parametrize(("delay", "seconds"), [("34.4s", "35"), ("7s", "7")])
def test_googles_retry_delay_reaches_other_clients_as_retry_after(bridge, mock: MockUpstream, delay: str,
                                                                   seconds: str) -> None:
    """Google says how long to wait in the body (RetryInfo), the others' SDKs read Retry-After (gemini.md §5)."""
    proc = bridge("gemini")
    mock.next_reply(Reply(status=429, error_json={"error": {
        "code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}}))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(proc.url + "/v1/chat/completions", json=body, timeout=20)
    assert r.status_code == 429 and r.headers.get("retry-after") == seconds, (r.headers, r.text)
    assert r.json()["error"]["message"] == "Quota exceeded."
