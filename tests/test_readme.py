"""What the README tells a newcomer to run works as written (issue 14): the shipped config and the first
client section, against the mock upstream in place of the server they name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anthropic
import yaml

from tests.conftest import ROOT, ConfiguredBridge
from tests.mock_upstream import MockUpstream, Reply

README = (ROOT / "README.md").read_text()
SHIPPED = (ROOT / "config.yaml").read_text()


def yaml_blocks(after: str) -> list[Any]:
    """The YAML code blocks of the README section that starts with ``after``, parsed."""
    section = README[README.index(after):]
    section = section[:section.index("\n**", 10)] if "\n**" in section[10:] else section
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]


def test_the_readmes_first_config_is_the_shipped_one() -> None:
    (shown,) = yaml_blocks("**Claude Code against a Chat Completions upstream**")
    shipped = yaml.safe_load(SHIPPED)
    for ep_shown, ep_shipped in zip(shown["endpoints"], shipped["endpoints"], strict=True):
        assert {k: ep_shipped[k] for k in ep_shown} == ep_shown


def test_claude_code_against_the_shipped_config(bridge_config: Callable[..., ConfiguredBridge],
                                                mock: MockUpstream) -> None:
    """The shipped config with the mock at Ollama's address: a Claude Code-shaped request (its
    ``?beta=true``, a placeholder key) reaches the server as the model the rewrite names."""
    config = SHIPPED.replace("http://127.0.0.1:11434", mock.url)
    assert config != SHIPPED
    proc = bridge_config(config)
    mock.next_reply(Reply(text="hello from qwen", model="qwen3-coder"))
    client = anthropic.Anthropic(base_url=proc.url, api_key="unused", max_retries=0,
                                 default_query={"beta": "true"})
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        message = stream.get_final_message()
    assert "".join(b.text for b in message.content if b.type == "text") == "hello from qwen"
    assert message.model == "claude-sonnet-4-5"  # answers keep the name the client asked for
    sent = mock.last
    assert sent.path == "/v1/chat/completions" and sent.json["model"] == "qwen3-coder"
    assert "unused" not in sent.all_header_values
