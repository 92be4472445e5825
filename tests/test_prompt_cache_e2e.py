"""Prompt caching through a real mitmdump (issue 17, its first part): breakpoints placed for an Anthropic
upstream, which caches only where asked, for clients that cannot set them; a session's cache key for
OpenAI upstreams, which route by it. The official SDKs as clients."""

from __future__ import annotations

import itertools
import json

import anthropic
import openai

from tests.conftest import CLIENT_KEY
from tests.mock_cache import bare
from tests.mock_upstream import MockUpstream, Reply

SYSTEM = "You are a coding agent. " * 40
PARAMETERS = {"type": "object", "properties": {"cmd": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "run", "description": "Run a command", "parameters": PARAMETERS}}]


def test_a_chat_clients_growing_session_reaches_anthropic_with_breakpoints(bridge, mock: MockUpstream) -> None:
    """Each request carries the breakpoints (tools, system, the moving end) and repeats the previous one's
    bytes before its new turn: what Anthropic's cache needs to read what the last request wrote."""
    proc = bridge("anthropic")
    client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Start."}]
    sent = []
    for turn in range(3):
        mock.next_reply(Reply(text=f"answer {turn}"))
        answer = client.chat.completions.create(model="claude-x", messages=messages, tools=TOOLS)
        sent.append(mock.last.json)
        messages += [{"role": "assistant", "content": answer.choices[0].message.content},
                     {"role": "user", "content": f"Next {turn}."}]
    for body in sent:
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        assert json.dumps(body).count("cache_control") <= 4
    for before, after in itertools.pairwise(sent):
        assert bare(after["messages"])[:len(before["messages"])] == bare(before["messages"])  # type: ignore[index]


def test_claude_codes_session_reaches_an_openai_upstream_as_its_cache_key(bridge, mock: MockUpstream) -> None:
    proc = bridge("chat")
    session = "0b6f3c7e-8d4a-4f2b-9c1d-2e3f4a5b6c7d"
    client = anthropic.Anthropic(base_url=proc.url, api_key=CLIENT_KEY, max_retries=0,
                                 default_headers={"X-Claude-Code-Session-Id": session})
    for turn in range(2):
        mock.next_reply(Reply(text=f"answer {turn}"))
        client.messages.create(model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert [r.json["prompt_cache_key"] for r in mock.requests] == [session, session]
