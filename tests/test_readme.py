"""What the README tells a newcomer to run works as written (issue 14): the shipped config and the first
client section, against the mock upstream in place of the server they name."""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anthropic
import pytest
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


def _providers() -> list[tuple[str, str]]:
    """(name, YAML block) of each provider in the README's Providers section."""
    section = README[README.index("### Providers"):README.index("## Configuration")]
    parts = re.split(r"\n\*\*(.+?)\*\*", section)[1:]  # name, text, name, text, …
    return [(name, re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1))  # type: ignore[union-attr]
            for name, text in zip(parts[::2], parts[1::2], strict=True)]


PROVIDERS = _providers()


def test_the_readme_names_the_providers_users_ask_for() -> None:
    names = " ".join(name for name, _ in PROVIDERS)
    for provider in ("Azure OpenAI", "OpenRouter", "DeepSeek", "Gemini", "Ollama", "vLLM"):
        assert provider in names


@pytest.mark.parametrize(("name", "block"), PROVIDERS, ids=[n.split(",")[0] for n, _ in PROVIDERS])
def test_each_providers_config_works_as_written(bridge_config: Callable[..., ConfiguredBridge],
                                                mock: MockUpstream, name: str, block: str) -> None:
    """The block as the README shows it, with the mock at the provider's address (path kept): Claude
    Code's request arrives as the provider documents it."""
    config = yaml.safe_load(block)
    (ep,) = config["endpoints"]
    url_key = "url_gemini" if "url_gemini" in ep else "url_openai"
    url = urlsplit(ep[url_key])
    ep[url_key] = mock.url + url.path
    env = {ep["api_key_env"]: "provider-key-0123456789"} if "api_key_env" in ep else {}
    proc = bridge_config(config, env=env)
    mock.next_reply(Reply(text="hello from the provider"))
    client = anthropic.Anthropic(base_url=proc.url, api_key="unused", max_retries=0)
    answer = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}])
    # (a Gemini answer's thought signature comes first, as a thinking block: Claude Code sends it back)
    assert [b.text for b in answer.content if b.type == "text"] == ["hello from the provider"]
    sent = mock.last
    path, _, query = sent.path.partition("?")
    rules = ep.get("model_rewrite", {}).get("rules", [])
    model = next(r["target_model"] for r in rules if fnmatch("claude-sonnet-4-5", r["source_pattern"]))
    if url_key == "url_gemini":  # the model is in Gemini's path, not in its body
        assert path == f"{url.path}/v1beta/models/{model}:generateContent"
        assert "model" not in sent.json and sent.json["contents"][0]["parts"] == [{"text": "hi"}]
    else:
        assert path == url.path + "/chat/completions"
        assert sent.json["model"] == model
    assert dict(parse_qsl(query)) == {k: str(v) for k, v in (ep.get("query") or {}).items()}
    key_header = {"api-key": "api-key"}.get(ep.get("auth", ""),
                                            "x-goog-api-key" if url_key == "url_gemini" else "authorization")
    if env:
        expected = ("Bearer provider-key-0123456789" if key_header == "authorization"
                    else "provider-key-0123456789")
        assert sent.headers[key_header] == expected
    else:
        assert "authorization" not in sent.headers and "unused" not in sent.all_header_values
    for header, value in (ep.get("headers") or {}).items():
        assert sent.headers[header.lower()] == value
