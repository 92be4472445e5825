"""The bad-input matrix (issue 5, part 3) through a real mitmdump, for every client format.

Raw HTTP (httpx2), so the test controls the bytes: invalid JSON, a body that is not an object, a
wrong content type, a missing ``model`` / ``messages`` / ``input`` / ``contents``, wrong types, a tool
result that answers no tool call, a feature the chosen route cannot carry, a body over
``max_request_bytes``, and an unknown path under a known API prefix; for a Gemini client, whose model is
in the path (``/v1beta/models/{model}:generateContent``), also a model no endpoint serves and an unknown
method. Each must be answered by the bridge itself with a 4xx
in the client's own error shape (Gemini: ``{"error": {"code", "message", "status"}}`` with the field in
a ``BadRequest`` detail) whose message names the field (or path); nothing reaches the
upstream (the mock records every request, and is also the reverse target, so a request the bridge
wrongly left alone would be recorded too); the bridge's log says what was rejected and why; and the
bridge goes on serving (a good request right after each bad one succeeds).

``tests/test_bad_input.py`` covers the same decisions at the ``plan()`` level; this file checks what
a client really gets over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.conftest import CLIENT_KEY, UPSTREAM_KEY_ENV, ConfiguredBridge
from tests.mock_upstream import MockUpstream

MAX_BYTES = 4000
# Each client goes to a translating upstream (a pass-through request is the upstream's to judge):
# Anthropic → Chat, Chat → Anthropic, Responses → Anthropic (stateless: no previous_response_id),
# Gemini → Chat.
CLIENTS = ("anthropic", "chat", "responses", "gemini")
MODEL = {"anthropic": "via-chat", "chat": "via-anthropic", "responses": "via-anthropic", "gemini": "via-chat"}
PATH = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses",
        "gemini": f"/v1beta/models/{MODEL['gemini']}:generateContent"}  # Gemini: the model is in the path
HEADERS = {"anthropic": {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
           "chat": {"authorization": f"Bearer {CLIENT_KEY}"},
           "responses": {"authorization": f"Bearer {CLIENT_KEY}"},
           "gemini": {"x-goog-api-key": CLIENT_KEY}}
# gemini.md §5.1: the canonical status name of each HTTP status a bad request gets
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}


@pytest.fixture(scope="module")
def proc(bridge_config: Any, mock_upstream: MockUpstream) -> ConfiguredBridge:
    config = {"max_request_bytes": MAX_BYTES, "endpoints": [
        {"name": "chat-up", "url_openai": f"{mock_upstream.url}/v1", "models": ["via-chat"],
         "api_key_env": UPSTREAM_KEY_ENV},
        {"name": "anthropic-up", "url_anthropic": mock_upstream.url, "models": ["via-anthropic"],
         "api_key_env": UPSTREAM_KEY_ENV}]}
    return bridge_config(config, modes=(f"reverse:{mock_upstream.url}",))  # type: ignore[no-any-return]


def good(client: str, model: str | None = None) -> dict[str, Any]:
    """A valid request body of the client's format."""
    model = model or MODEL[client]
    if client == "anthropic":
        return {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    if client == "chat":
        return {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if client == "gemini":
        return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return {"model": model, "input": "hi"}


def without(client: str, key: str) -> bytes:
    return json.dumps({k: v for k, v in good(client).items() if k != key}).encode()


def with_(client: str, **fields: Any) -> bytes:
    return json.dumps({**good(client), **fields}).encode()


_ORPHAN_RESULT: dict[str, dict[str, Any]] = {
    "anthropic": {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_orphan01", "content": "42"}]}]},
    "chat": {"messages": [{"role": "user", "content": "hi"},
                          {"role": "tool", "tool_call_id": "call_orphan01", "content": "42"}]},
    "responses": {"input": [{"role": "user", "content": "hi"},
                            {"type": "function_call_output", "call_id": "call_orphan01", "output": "42"}]},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "user", "parts": [
        {"functionResponse": {"id": "call_orphan01", "name": "get_weather", "response": {"output": "42"}}}]}]},
}
_UNSUPPORTED: dict[str, tuple[dict[str, Any], str]] = {  # a feature the route's upstream format cannot carry
    "anthropic": ({"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "text", "text": "summarise"}]}]}, "document"),
    "chat": ({"n": 2}, "n"),
    "responses": ({"previous_response_id": "resp_earlier01"}, "previous_response_id"),
    "gemini": ({"generationConfig": {"candidateCount": 2}}, "candidateCount"),
}
_WRONG_TYPES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "anthropic": [({"max_tokens": "many"}, "max_tokens"), ({"messages": "hi"}, "messages")],
    "chat": [({"messages": "hi"}, "messages"), ({"messages": [{"role": "user", "content": 5}]}, "content")],
    "responses": [({"input": 5}, "input"), ({"tools": "all"}, "tools")],
    "gemini": [({"contents": "hi"}, "contents"),
               ({"contents": [{"role": "user", "parts": [{"text": 5}]}]}, "contents.0.parts.0.text"),
               ({"contents": [{"role": "system", "parts": [{"text": "hi"}]}]}, "contents.0.role"),
               ({"generationConfig": {"maxOutputTokens": "many"}}, "generationConfig.maxOutputTokens"),
               ({"tools": "all"}, "tools")],
}
_REQUIRED = {"anthropic": "messages", "chat": "messages", "responses": "input", "gemini": "contents"}


@dataclass(frozen=True)
class Bad:
    name: str
    body: bytes
    status: int
    needle: str  # the field (or path) the error message must name
    path: str | None = None  # default: the client's API path
    content_type: str = "application/json"


def _bad_inputs(client: str) -> Iterator[Bad]:
    # Google has no 413 or 415: a body too large or not JSON is its 400 INVALID_ARGUMENT (gemini.md §5.3), the
    # status a Gemini client is answered with too.
    too_large, not_json = (400, 400) if client == "gemini" else (413, 415)
    yield Bad("invalid-json", b'{"model": "' + MODEL[client].encode() + b'", "messages": [', 400, "not valid JSON")
    yield Bad("not-an-object", b'["hi"]', 400, "JSON object")
    yield Bad("not-an-object-string", b'"hi"', 400, "JSON object")
    yield Bad("wrong-content-type", json.dumps(good(client)).encode(), not_json, "content-type",
              content_type="text/plain")
    yield Bad("form-content-type", b"model=x&input=hi", not_json, "content-type",
              content_type="application/x-www-form-urlencoded")
    if client != "gemini":  # a Gemini body has no model: it is in the path (a model no one serves: below)
        yield Bad("missing-model", without(client, "model"), 400, "model")
        yield Bad("empty-model", with_(client, model=""), 400, "model")
        yield Bad("model-not-a-string", with_(client, model=7), 400, "model")
    required = _REQUIRED[client]
    yield Bad(f"missing-{required}", without(client, required), 400, required)
    for n, (fields, field) in enumerate(_WRONG_TYPES[client]):
        yield Bad(f"wrong-type-{n}-{field}", with_(client, **fields), 400, field)
    yield Bad("orphan-tool-result", with_(client, **_ORPHAN_RESULT[client]), 400,
              "toolu_orphan01" if client == "anthropic" else "call_orphan01")
    fields, field = _UNSUPPORTED[client]
    yield Bad(f"unsupported-{field}", with_(client, **fields), 400, field)
    if client == "gemini":
        yield Bad("orphan-tool-result-without-id", with_(client, contents=[
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "42"}}}]}]),
            400, "contents.0.parts.0.functionResponse.name")
        yield Bad("unsupported-cachedContent", with_(client, cachedContent="cachedContents/abc"), 400, "cachedContent")
        oversized = with_(client, contents=[{"role": "user", "parts": [{"text": "x" * (MAX_BYTES + 100)}]}])
    else:
        big = {"anthropic": "messages", "chat": "messages", "responses": "input"}[client]
        oversized = with_(client, **{big: [{"role": "user", "content": "x" * (MAX_BYTES + 100)}]})
    yield Bad("oversized", oversized, too_large, "max_request_bytes")
    # An unknown path under a known API prefix: 404 in the client's format, naming the path.
    unknown = {"anthropic": "/v1/messages/bogus", "chat": "/v1/chat/completions/bogus",
               "responses": "/v1/responses/bogus/more", "gemini": "/v1beta/models/via-chat:bogusMethod"}[client]
    yield Bad("unknown-path", json.dumps(good(client)).encode(), 404, unknown, path=unknown)
    if client == "gemini":
        yield Bad("unknown-path-v1beta-foo", json.dumps(good(client)).encode(), 404, "/v1beta/foo",
                  path="/v1beta/foo")
        # A model no endpoint serves: 404 naming it (and what each endpoint serves), before any upstream.
        yield Bad("unknown-model", json.dumps(good(client)).encode(), 404, "gemini-nobody-serves",
                  path="/v1beta/models/gemini-nobody-serves:generateContent")
    else:
        yield Bad("unknown-path-v1-foo", json.dumps(good(client)).encode(), 404, "/v1/foo", path="/v1/foo")


CASES = [pytest.param(client, bad, id=f"{client}-{bad.name}") for client in CLIENTS for bad in _bad_inputs(client)]


def error_message(client: str, body: Any) -> str:
    """The message of an error body in the client's own shape, asserting the shape."""
    assert isinstance(body, dict), body
    if client == "anthropic":
        assert body.get("type") == "error", body
        err = body["error"]
        assert isinstance(err.get("type"), str) and err["type"].endswith(("_error", "request_too_large")), body
    elif client == "gemini":  # gemini.md §5.1: error alone (the Python SDK needs it first), a numeric code
        assert set(body) == {"error"}, body
        err = body["error"]
        assert set(err) >= {"code", "message", "status"} and isinstance(err["code"], int), body
        assert err["status"] == GOOGLE_STATUS.get(err["code"]), body
    else:
        assert set(body) == {"error"}, body
        err = body["error"]
        assert set(err) >= {"message", "type", "param", "code"}, body
    assert isinstance(err.get("message"), str) and err["message"], body
    return str(err["message"])


@pytest.mark.parametrize(("client", "bad"), CASES)
def test_bad_input_is_answered_by_the_bridge(proc: ConfiguredBridge, mock: MockUpstream, client: str,
                                             bad: Bad) -> None:
    log_start = len(proc.log())
    with httpx2.Client(base_url=proc.url, timeout=10) as http:
        r = http.post(bad.path or PATH[client], content=bad.body,
                      headers={**HEADERS[client], "content-type": bad.content_type})
        assert r.status_code == bad.status, f"HTTP {r.status_code}, expected {bad.status}: {r.text[:300]}"
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers
        message = error_message(client, r.json())
        assert bad.needle in message, message
        if client == "gemini" and bad.name.startswith(("missing-", "wrong-type-", "unsupported-", "orphan-")):
            # the field again where Google puts it: a BadRequest detail's fieldViolations (gemini.md §5.1)
            (detail,) = r.json()["error"]["details"]
            assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest", detail
            (violation,) = detail["fieldViolations"]
            assert violation["description"] == message, violation
            assert bad.needle in violation["field"] or bad.name == "orphan-tool-result", violation
        if bad.status == 404 and bad.name.startswith("unknown-path"):  # the path is named whole, not just "not found"
            assert f"POST {bad.path}" in message or f"{bad.path}" in message, message
        assert not mock.requests, f"reached the upstream: {[q.path for q in mock.requests]}"
        # The bridge goes on serving: a good request right after, on the same client.
        mock.next_reply(text="still here")
        ok = http.post(PATH[client], json=good(client), headers=HEADERS[client])
        assert ok.status_code == 200, ok.text[:300]
        assert "still here" in ok.text
        assert len(mock.requests) == 1
    # The log says what was rejected and why: a line with the status, and the reason the client was given.
    log = proc.wait_for_log(f"status {bad.status}", log_start)
    line = next(ln for ln in log.splitlines() if f"status {bad.status}" in ln)
    assert "rejected" in line and (client in line or bad.name == "unknown-path-v1-foo"), line
    assert message in log, f"the log does not say why ({message!r}): {log[-1000:]}"


@pytest.mark.parametrize("client", CLIENTS)
def test_bad_input_streamed_request_gets_a_plain_error(proc: ConfiguredBridge, mock: MockUpstream,
                                                       client: str) -> None:
    """A bad request that asked for a stream gets the same JSON error, not an SSE stream (Gemini: the
    stream is asked for in the path, ``:streamGenerateContent?alt=sse``)."""
    body = json.loads(with_(client, **_ORPHAN_RESULT[client]))
    path, streamed = PATH[client], {**body, "stream": True}
    if client == "gemini":
        path, streamed = f"/v1beta/models/{MODEL[client]}:streamGenerateContent?alt=sse", body
    with httpx2.Client(base_url=proc.url, timeout=10) as http:
        r = http.post(path, json=streamed, headers=HEADERS[client])
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json"), r.text[:300]
    assert "orphan01" in error_message(client, r.json())
    assert not mock.requests


def test_a_get_of_responses_without_an_upgrade_is_a_404(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    """Only a WebSocket upgrade makes a GET of ``…/responses`` something the bridge serves
    (tests/test_websocket.py); a plain GET is a path the Responses API does not have."""
    with httpx2.Client(base_url=proc.url, timeout=10) as http:
        plain = http.get("/v1/responses", headers=HEADERS["responses"])
    assert plain.status_code == 404 and "GET /v1/responses" in error_message("responses", plain.json())
    assert not mock.requests
