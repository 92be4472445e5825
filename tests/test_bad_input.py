"""Bad client input gets a 4xx in the client's own format naming what is wrong; nothing goes upstream."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import anthropic
import openai
import pytest

from addon.config import load_config
from addon.plan import plan
from addon.routing import Operation

# Each client is translated (a pass-through request is the upstream's to judge, in its own format).
UPSTREAM = {"anthropic": "url_openai: http://127.0.0.1:9/v1", "chat": "url_anthropic: http://127.0.0.1:9",
            "responses": "url_anthropic: http://127.0.0.1:9"}


@pytest.fixture
def config(tmp_path: Path):
    def load(client_format: str):
        path = tmp_path / f"{client_format}.yaml"
        path.write_text(f"endpoints:\n  - name: up\n    {UPSTREAM[client_format]}\nmax_request_bytes: 2000\n")
        return load_config(str(path), environ={})
    return load


def decide(config, fmt: str, body: bytes, **headers: str):
    counter = itertools.count()
    return plan(config(fmt), Operation(fmt, "generate"), "/v1/x", {"content-type": "application/json", **headers},
                body, lambda p: f"{p}{next(counter)}", 0)


@pytest.mark.parametrize(("fmt", "body", "status", "needle"), [
    ("anthropic", b"{not json", 400, "not valid JSON"),
    ("chat", b"[1, 2]", 400, "must be a JSON object"),
    ("anthropic", b'{"max_tokens": 5, "messages": []}', 400, "model"),
    ("chat", b'{"model": "m"}', 400, "messages: expected an array"),
    ("responses", b'{"model": "m", "input": 5}', 400, "input"),
    ("anthropic", b'{"model": "m", "max_tokens": "many", "messages": []}', 400, "max_tokens: expected an integer"),
    ("chat", b'{"model": "m", "n": 3, "messages": [{"role": "user", "content": "x"}]}', 400, "n: only n=1"),
    ("responses", b'{"model": "m", "input": "x", "previous_response_id": "resp_1"}', 400, "previous_response_id"),
    ("chat", b'{"model": "m", "messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}', 400,
     "call_9"),
    ("anthropic", json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]}).encode(), 400, "toolu_x"),
    ("chat", json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 3000}]}).encode(), 413,
     "max_request_bytes"),
])
def test_rejected_in_the_clients_format(config, fmt: str, body: bytes, status: int, needle: str) -> None:
    p = decide(config, fmt, body)
    assert p.answer is not None
    code, content_type, answer = p.answer
    err = json.loads(answer)
    assert code == status and content_type == "application/json"
    message = err["error"]["message"]
    assert needle in message
    assert ("type" in err and err["type"] == "error") == (fmt == "anthropic")  # Anthropic's shape, else OpenAI's
    assert p.url is None and p.body is None  # nothing goes upstream


def test_wrong_content_type_is_415(config) -> None:
    p = decide(config, "chat", b'{"model": "m", "messages": []}', **{"content-type": "text/plain"})
    assert p.answer is not None and p.answer[0] == 415
    err = json.loads(p.answer[2])["error"]
    assert err["param"] == "content-type" and "text/plain" in err["message"]


def test_sdk_clients_see_typed_errors(bridge, mock) -> None:
    proc = bridge("chat")
    client = anthropic.Anthropic(base_url=proc.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_orphan", "content": "x"}]}])
    assert "toolu_orphan" in str(e.value)
    oai = openai.OpenAI(base_url=bridge("anthropic").url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e2:
        oai.chat.completions.create(model="m", n=2, messages=[{"role": "user", "content": "x"}])
    assert e2.value.body["param"] == "n"  # type: ignore[index]
    assert not mock.requests  # nothing reached the upstream


# --- upstream faults inside a 200 stream: the client's error event, never a clean end -------------

CHAT_START = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'


@pytest.mark.parametrize(("upstream_bytes", "needle"), [
    (CHAT_START + b"data: \x00\x01 garbage\n\n", "not JSON"),
    (CHAT_START + b"data: [DONE]\n\n", "before a finish_reason"),
    (CHAT_START, "before a finish_reason"),
    (CHAT_START + b'data: {"error": {"message": "overloaded now", "type": "server_is_overloaded"}}\n\n',
     "overloaded now"),
])
def test_stream_faults_end_with_the_clients_error_event(upstream_bytes: bytes, needle: str) -> None:
    from addon.formats import anthropic as fmt_a
    from addon.formats import chat as fmt_c
    from addon.formats.common import Context
    from addon.translate import Exchange

    counter = itertools.count()
    body = json.dumps({"model": "m", "max_tokens": 9, "stream": True, "messages": [{"role": "user", "content": "x"}]})
    ex, _ = Exchange.start(fmt_a, fmt_c, body.encode(), Context(new_id=lambda p: f"{p}{next(counter)}"))
    t = ex.stream()
    out = b"".join(t.feed(upstream_bytes) + t.close()).decode()
    assert out.startswith("event: message_start")
    assert out.rstrip().split("\n\n")[-1].startswith("event: error")  # the last event: no clean stop after it
    assert needle in out and "message_stop" not in out
