"""A flow written with ``-w`` holds the whole exchange: both requests, both answers, and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
from mitmproxy import io

from addon import replay
from tests.conftest import UPSTREAM_KEY_ENV
from tests.mock_upstream import MockUpstream, chat_events


def test_a_recorded_stream_holds_both_sides_and_the_summary(bridge_config, mock: MockUpstream,
                                                             tmp_path: Path) -> None:
    flow_file = tmp_path / "rec.flow"
    config = {"endpoints": [{"name": "local", "url_openai": f"{mock.url}/v1", "api_key_env": UPSTREAM_KEY_ENV,
                             "model_rewrite": {"enabled": True, "rules": [
                                 {"source_pattern": "claude-*", "target_model": "qwen3-coder"}]}}]}
    proc = bridge_config(config, fresh_process=True, args=["-w", str(flow_file)])
    reply = mock.next_reply(text="Hello, wörld", usage={"prompt_tokens": 11, "completion_tokens": 3,
                                                         "total_tokens": 14})
    client = anthropic.Anthropic(base_url=proc.url, api_key="client-secret-value", max_retries=0)
    with client.messages.stream(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
        text = s.get_final_text()
    proc.stop()  # the writer flushes on exit
    (flow,) = list(io.FlowReader(flow_file.open("rb")).stream())

    sent = flow.metadata[replay.CLIENT_REQUEST]  # 1. as the client sent it, key blanked
    assert sent["method"] == "POST" and sent["url"].endswith("/v1/messages")
    assert json.loads(sent["content"])["model"] == "claude-x"
    assert dict((k.lower(), v) for k, v in sent["headers"])["authorization"] == "[REDACTED]"  # SDK 2.x: Bearer
    assert flow.request.path == "/v1/chat/completions"  # 2. as sent upstream, rewritten model
    assert json.loads(flow.request.content)["model"] == "qwen3-coder"
    assert flow.request.headers["authorization"] == "[REDACTED]"
    answer = flow.metadata[replay.UPSTREAM_RESPONSE]  # 3. the upstream's stream, byte for byte
    assert answer["status_code"] == 200
    assert answer["content"] == b"".join(chat_events(reply, include_usage=True))
    client_stream = flow.response.content  # 4. what the client got
    assert client_stream.startswith(b"event: message_start") and client_stream.rstrip().endswith(
        b'data: {"type":"message_stop"}')
    assert text == "Hello, wörld" and '"text":"örld"'.encode() in client_stream  # the mock's 4-character deltas
    summary = flow.metadata["bridge"]  # 5. the summary
    assert summary["client_format"] == "anthropic" and summary["upstream_format"] == "chat"
    assert summary["endpoint"] == "local" and summary["model"] == "claude-x"
    assert summary["upstream_model"] == "qwen3-coder"
    assert summary["usage"]["input"] == 11 and summary["usage"]["output"] == 3
    assert summary["status"] == 200 and isinstance(summary["first_byte_ms"], int)
    assert flow.comment.startswith("anthropic → chat · local · claude-x → qwen3-coder · 200")
    assert b"client-secret-value" not in flow_file.read_bytes()
