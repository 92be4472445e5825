"""The addon's hooks, called directly inside ``taddons.context`` (no proxy runs; mitmproxy's own idiom)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from addon.bridge import Bridge, StreamAdapter

CHAT_UPSTREAM = "endpoints:\n  - name: up\n    url_openai: http://127.0.0.1:9/v1\n    api_key_env: UP_KEY\n"
ANTHROPIC_UPSTREAM = "endpoints:\n  - name: up\n    url_anthropic: http://127.0.0.1:9\n    api_key_env: UP_KEY\n"


@pytest.fixture
def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("UP_KEY", "upstream-secret")

    def make(config: str) -> tuple[Bridge, taddons.context]:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        addon = Bridge()
        tctx = taddons.context(addon)
        tctx.__enter__()
        tctx.configure(addon, bridge_config=str(path))
        return addon, tctx

    return make


def anthropic_request(body: dict, path: str = "/v1/messages?beta=true") -> http.HTTPFlow:
    headers = http.Headers(host="127.0.0.1:8080", content_type="application/json", x_api_key="client-secret",
                           anthropic_version="2023-06-01", anthropic_beta="x", accept_encoding="gzip, br")
    req = tutils.treq(method=b"POST", path=path.encode(), headers=headers, content=json.dumps(body).encode(),
                      host="127.0.0.1", port=8080)
    f = tflow.tflow(req=req)
    f.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:9")
    return f


BODY = {"model": "claude-x", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
CHAT_SSE = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":"h\xc3\xa9"},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


def test_translated_request_rewrites_url_headers_and_body(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request(BODY)
    addon.forward.request(f)
    assert f.request.url == "http://127.0.0.1:9/v1/chat/completions"  # Anthropic's ?beta=true stays behind
    assert f.request.headers["authorization"] == "Bearer upstream-secret"
    for name in ("x-api-key", "anthropic-version", "anthropic-beta"):
        assert name not in f.request.headers
    assert f.request.headers["accept-encoding"] == "identity"
    sent = json.loads(f.request.content)
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["max_completion_tokens"] == 50
    assert sent["stream_options"] == {"include_usage": True}
    assert f.metadata["bridge"]["client_format"] == "anthropic"
    assert f.metadata["bridge"]["upstream_format"] == "chat"


def test_passthrough_keeps_body_bytes_and_swaps_only_the_key(bridge) -> None:
    addon, _ = bridge(ANTHROPIC_UPSTREAM)
    raw = b'{"model":"m",  "max_tokens":5, "messages":[{"role":"user","content":"x"}]}'
    f = anthropic_request({})
    f.request.content = raw
    addon.forward.request(f)
    assert f.request.content == raw
    assert f.request.url == "http://127.0.0.1:9/v1/messages?beta=true"
    assert f.request.headers["x-api-key"] == "upstream-secret"
    assert f.request.headers["anthropic-beta"] == "x"


def test_invalid_json_is_answered_in_the_client_format(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request({})
    f.request.content = b"{not json"
    addon.forward.request(f)
    assert f.response is not None and f.response.status_code == 400
    body = json.loads(f.response.content)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]


def test_other_paths_and_replayed_flows_are_left_alone(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = tflow.tflow(req=tutils.treq(method=b"GET", path=b"/v1/models"))
    addon.forward.request(f)
    assert "bridge" not in f.metadata and f.request.path == "/v1/models"
    g = anthropic_request(BODY)
    g.live = False
    addon.forward.request(g)
    assert "bridge" not in g.metadata and g.request.path == "/v1/messages?beta=true"


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/2.0"])
def test_stream_is_translated_chunk_by_chunk(bridge, http_version: str) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request(BODY)
    f.request.http_version = http_version
    addon.forward.request(f)
    f.response = tutils.tresp(headers=http.Headers(content_type="text/event-stream", content_length="999"),
                              content=None)
    addon.respond.responseheaders(f)
    assert isinstance(f.response.stream, StreamAdapter)
    assert "content-length" not in f.response.headers
    assert ("transfer-encoding" in f.response.headers) == (http_version == "HTTP/1.1")
    out: list[bytes] = []
    for i in range(0, len(CHAT_SSE), 5):  # split inside lines and inside the UTF-8 "é"
        chunk = f.response.stream(CHAT_SSE[i:i + 5])
        assert isinstance(chunk, list)  # never a bare b"" mid-stream
        out += chunk
    out += f.response.stream(b"")
    addon.respond.response(f)
    text = b"".join(out).decode()
    assert text.startswith("event: message_start\n")
    assert '"text":"hé"' in text and '"stop_reason":"end_turn"' in text
    assert text.endswith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    assert f.metadata["bridge"]["outcome"] == "streamed"


def test_upstream_error_is_translated_with_its_status(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request(BODY)
    addon.forward.request(f)
    err = json.dumps({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
    f.response = tutils.tresp(status_code=429, headers=http.Headers(content_type="application/json"),
                              content=err.encode())
    addon.respond.responseheaders(f)
    assert f.response.stream is False or f.response.stream is None
    addon.respond.response(f)
    assert f.response.status_code == 429
    body = json.loads(f.response.content)
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}


def test_gzip_stream_is_decoded_on_the_fly(bridge) -> None:
    import gzip
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request(BODY)
    addon.forward.request(f)
    f.response = tutils.tresp(headers=http.Headers(content_type="text/event-stream", content_encoding="gzip"),
                              content=None)
    addon.respond.responseheaders(f)
    assert "content-encoding" not in f.response.headers
    packed = gzip.compress(CHAT_SSE)
    out = f.response.stream(packed[:20]) + f.response.stream(packed[20:]) + f.response.stream(b"")
    assert b'"text":"h\xc3\xa9"' in b"".join(out) and b"message_stop" in b"".join(out)


def test_extra_headers_are_sent_and_passthrough_without_key_keeps_the_clients(bridge) -> None:
    addon, _ = bridge("endpoints:\n  - name: up\n    url_anthropic: http://127.0.0.1:9\n"
                      "    headers: {x-team: blue}\n")
    f = anthropic_request(BODY)
    addon.forward.request(f)
    assert f.request.headers["x-team"] == "blue"
    assert f.request.headers["x-api-key"] == "client-secret"  # same format, no key configured: the client's
    assert f.request.headers["anthropic-version"] == "2023-06-01"


def test_flow_comment_and_metadata_summarise_the_exchange(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request(BODY)
    addon.forward.request(f)
    f.response = tutils.tresp(headers=http.Headers(content_type="text/event-stream"), content=None)
    addon.respond.responseheaders(f)
    for chunk in (CHAT_SSE, b""):
        f.response.stream(chunk)
    addon.respond.response(f)
    assert f.comment == "anthropic → chat · up · claude-x · 200 · tokens ?"
    assert not f.marked
    summary = f.metadata["bridge"]
    assert summary["status"] == 200 and summary["endpoint"] == "up" and summary["upstream_format"] == "chat"
    json.dumps(summary)  # a recorded flow must be able to hold it

    g = anthropic_request(BODY)
    addon.forward.request(g)
    g.response = tutils.tresp(status_code=500, headers=http.Headers(content_type="application/json"),
                              content=b'{"error": {"message": "boom", "type": "server_error"}}')
    addon.respond.responseheaders(g)
    addon.respond.response(g)
    assert g.comment.startswith("✗ anthropic → chat") and g.marked == ":warning:"


@pytest.mark.parametrize("config", [CHAT_UPSTREAM, ANTHROPIC_UPSTREAM], ids=["translated", "pass-through"])
def test_no_key_survives_in_a_written_flow(bridge, config: str) -> None:
    import io

    from mitmproxy import io as mio

    addon, _ = bridge(config)
    f = anthropic_request(BODY, path="/v1/messages?key=query-secret")
    addon.forward.request(f)
    assert "upstream-secret" in str(f.request.headers)  # it is sent upstream...
    f.response = tutils.tresp(headers=http.Headers(content_type="application/json"),
                              content=b'{"error": {"message": "no", "type": "x"}}', status_code=400)
    addon.respond.response(f)
    buf = io.BytesIO()
    mio.FlowWriter(buf).add(f)
    written = buf.getvalue()
    for secret in (b"upstream-secret", b"client-secret", b"query-secret"):
        assert secret not in written  # ...but never kept in the flow
    assert f.request.headers.get("x-api-key", f.request.headers.get("authorization")) == "[REDACTED]"


def test_a_locally_answered_request_keeps_no_key_either(bridge) -> None:
    addon, _ = bridge(CHAT_UPSTREAM)
    f = anthropic_request({})
    f.request.content = b"{broken"
    addon.forward.request(f)  # answered here: 400
    addon.respond.response(f)
    assert f.request.headers["x-api-key"] == "[REDACTED]"


def test_a_placeholder_client_key_never_changes_what_the_model_wrote(bridge) -> None:
    """Clients often send a dummy key (the README's ``ANTHROPIC_API_KEY=unused``): the bridge learns
    presented keys to blank them where an upstream echoes them, but not words that short."""
    addon, _ = bridge(ANTHROPIC_UPSTREAM)
    f = anthropic_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    f.request.headers["x-api-key"] = "unused"
    long_key = "a-real-looking-client-key-0123456789"
    f.request.headers["authorization"] = f"Bearer {long_key}"
    learned = addon.forward._learn(f.request)
    assert "unused" not in learned and long_key in learned
    redact = addon.settings.redact.also(learned)
    stream = StreamAdapter(None, bytes, redact, redact)
    chunk = (b'event: error\ndata: {"type":"error","error":{"message":"an unused variable; bad key '
             + long_key.encode() + b'"}}\n\n')
    (out,) = stream(chunk)
    assert b"an unused variable" in out and long_key.encode() not in out and b"[REDACTED]" in out
