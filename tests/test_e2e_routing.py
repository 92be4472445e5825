"""Routing end to end: the official SDKs talk to real ``mitmdump`` processes running the bridge with
whole configs, in front of three local mock upstreams (``mocks``: A, B, C on their own ports).

Covered: the issue's example config as written (hostnames swapped for the mocks), routing by model and
priority, model rewrite (the upstream is asked for the target, the client sees its own name),
the no-endpoint error, client keys, ``GET /v1/models``, count_tokens (forwarded or estimated),
regular proxy mode with ``intercept_hosts``, several listeners, config reload and the log line.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV, ConfiguredBridge, free_ports
from tests.mock_upstream import COUNT_TOKENS_PATH, MockUpstream, count_tokens_answer
from tests.test_routing import EXAMPLE

Mocks = tuple[MockUpstream, MockUpstream, MockUpstream]
Factory = Callable[..., ConfiguredBridge]

CLIENT_OWN_KEY = "sk-client-own-4c1d9e"  # what a client sends when the bridge wants no key of its own
CK_ENV = "BRIDGE_E2E_CLIENT_KEY"
CK = "ck-e2e-31f9a6b2d0"  # the bridge's client key (client_keys_env)
WRONG_KEY = "ck-wrong-e2e-77aa01"
TEXT = "Routed hello, wörld ✓"

# The example, verbatim (tests/test_routing.py); only the host is swapped: the dual endpoint's
# two URLs → mock A, the Anthropic-only endpoint → mock B.
HOST = "https://api.provider.com"


# --- clients ------------------------------------------------------------------------------------


class Sent(httpx2.HTTPTransport):
    """The SDK's transport, keeping every request as it was sent (bytes included)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[httpx2.Request] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        return super().handle_request(request)

    @property
    def last_body(self) -> bytes:
        return self.requests[-1].content


def a_client(base_url: str, key: str = CLIENT_OWN_KEY, proxy: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[anthropic.Anthropic, Sent]:
    transport = Sent(proxy=proxy)
    client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=20, default_headers=headers,
                                 http_client=httpx2.Client(transport=transport))
    return client, transport


def o_client(base_url: str, key: str = CLIENT_OWN_KEY, proxy: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[openai.OpenAI, Sent]:
    transport = Sent(proxy=proxy)
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20, default_headers=headers,
                           http_client=httpx2.Client(transport=transport))
    return client, transport


MESSAGES = [{"role": "user", "content": "Say hello"}]


def ask_anthropic(client: anthropic.Anthropic, model: str, stream: bool) -> tuple[str, str]:
    """(model shown, text) of one Messages request."""
    params: dict[str, Any] = {"model": model, "max_tokens": 100, "system": "Be brief.", "messages": MESSAGES}
    if not stream:
        msg = client.messages.create(**params)
        return msg.model, "".join(b.text for b in msg.content if b.type == "text")
    models, text = [], ""
    for ev in client.messages.create(**params, stream=True):
        if ev.type == "message_start":
            models.append(ev.message.model)
        elif ev.type == "content_block_delta" and ev.delta.type == "text_delta":
            text += ev.delta.text
    assert len(models) == 1
    return models[0], text


def ask_chat(client: openai.OpenAI, model: str, stream: bool) -> tuple[str, str]:
    params: dict[str, Any] = {"model": model, "messages": MESSAGES, "temperature": 0.5}
    if not stream:
        completion = client.chat.completions.create(**params)
        return completion.model, completion.choices[0].message.content or ""
    chunks = list(client.chat.completions.create(**params, stream=True))
    shown = {c.model for c in chunks}
    assert len(shown) == 1, shown  # every chunk names the same model
    return shown.pop(), "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def ask_responses(client: openai.OpenAI, model: str, stream: bool) -> tuple[str, str]:
    if not stream:
        resp = client.responses.create(model=model, input="Say hello")
        return resp.model, resp.output_text
    with client.responses.stream(model=model, input="Say hello") as s:
        final = s.get_final_response()
    return final.model, final.output_text


ASK = {"anthropic": ask_anthropic, "chat": ask_chat, "responses": ask_responses}


def client_for(fmt: str, bridge_url: str, **kwargs: Any) -> tuple[Any, Sent]:
    return a_client(bridge_url, **kwargs) if fmt == "anthropic" else o_client(bridge_url + "/v1", **kwargs)


def untouched(*ms: MockUpstream) -> None:
    for m in ms:
        assert m.requests == [], [r.path for r in m.requests]


STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


def literal_names(config: dict[str, Any]) -> set[str]:
    """What GET /v1/models must list: the literal names of ``models`` and rewrite ``source_pattern``s."""
    names = set()
    for ep in config["endpoints"]:
        rewrite = ep.get("model_rewrite", {})
        sources = [r["source_pattern"] for r in rewrite.get("rules", [])] if rewrite.get("enabled", True) else []
        names |= {n for n in [*ep.get("models", []), *sources] if not set("*?[") & set(n)}
    return names


def log_lines(bridge: ConfiguredBridge, start: int, needle: str, timeout: float = 10.0) -> list[str]:
    """The log lines (from offset ``start``) naming ``needle``, once the request's final line is there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in bridge.log()[start:].splitlines() if needle in line]
        if any("| status " in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# === the example config ================================================================


@pytest.fixture(scope="module")
def example(bridge_config: Factory, mock_trio: Mocks) -> ConfiguredBridge:
    a, b, _ = mock_trio
    return bridge_config(EXAMPLE.replace(HOST, a.url, 2).replace(HOST, b.url))


def test_example_config_is_used_as_written(example: ConfiguredBridge, mock_trio: Mocks) -> None:
    a, b, _ = mock_trio
    text = example.config_path.read_text()
    assert text == EXAMPLE.replace(HOST, a.url, 2).replace(HOST, b.url)
    assert text.count(a.url) == 2 and text.count(b.url) == 1


@STREAM
def test_example_claude_passes_through_byte_for_byte(example: ConfiguredBridge, mocks: Mocks, stream: bool) -> None:
    a, b, c = mocks
    reply = a.next_reply(text=TEXT, model="upstream-says-this")
    client, sent = a_client(example.url)
    shown, text = ask_anthropic(client, "claude-sonnet-4-5", stream)
    assert text == reply.text
    assert shown == reply.model  # no rewrite: the answer is the upstream's, untouched
    (up,) = a.requests
    assert up.path.split("?")[0] == "/v1/messages"
    assert up.body == sent.last_body  # byte for byte
    assert up.json["model"] == "claude-sonnet-4-5"
    untouched(b, c)  # the second endpoint's claude-*sonnet* rule never applies: the first serves everything


@STREAM
def test_example_gpt_for_chat_is_rewritten_and_shown_as_asked(example: ConfiguredBridge, mocks: Mocks,
                                                              stream: bool) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT, model="provider-actual-model")  # the upstream names the model it was asked for
    client, sent = o_client(example.url + "/v1")
    shown, text = ask_chat(client, "gpt-5.5", stream)
    assert (shown, text) == ("gpt-5.5", TEXT)
    (up,) = a.requests
    assert up.path == "/v1/chat/completions"
    client_json = json.loads(sent.last_body)
    assert up.json == {**client_json, "model": "provider-actual-model"}  # only the model changed
    untouched(b)


@STREAM
def test_example_gpt_for_anthropic_client_is_rewritten_on_pass_through(example: ConfiguredBridge, mocks: Mocks,
                                                                       stream: bool) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT, model="provider-actual-model")
    client, sent = a_client(example.url)
    assert ask_anthropic(client, "gpt-5.5", stream) == ("gpt-5.5", TEXT)
    (up,) = a.requests
    assert up.path.split("?")[0] == "/v1/messages"
    assert up.json == {**json.loads(sent.last_body), "model": "provider-actual-model"}
    untouched(b)


@STREAM
def test_example_gpt_for_responses_client_is_translated_to_chat(example: ConfiguredBridge, mocks: Mocks,
                                                                stream: bool) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT, model="provider-actual-model")
    client, _ = o_client(example.url + "/v1")
    assert ask_responses(client, "gpt-5.5", stream) == ("gpt-5.5", TEXT)
    (up,) = a.requests
    assert up.path == "/v1/chat/completions"  # openai_preference: chat_completions
    assert up.json["model"] == "provider-actual-model"
    untouched(b)


def test_example_count_tokens_is_forwarded(example: ConfiguredBridge, mocks: Mocks) -> None:
    a, b, _ = mocks
    client, sent = a_client(example.url)
    result = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": TEXT}])
    (up,) = a.requests
    assert up.path.split("?")[0] == COUNT_TOKENS_PATH
    assert up.body == sent.last_body
    assert result.input_tokens == count_tokens_answer(up.body)
    untouched(b)


def test_example_log_line(example: ConfiguredBridge, mocks: Mocks) -> None:
    a, _, _ = mocks
    a.next_reply(text=TEXT, model="provider-actual-model")
    start = len(example.log())
    client, _ = o_client(example.url + "/v1")
    ask_chat(client, "gpt-5-logline", False)
    final = [line for line in log_lines(example, start, "gpt-5-logline") if "| status " in line]
    assert len(final) == 1, example.log()[start:]
    line = final[0]
    for part in ("endpoint example-dual-url", "gpt-5-logline", "provider-actual-model", "status 200"):
        assert part in line, line
    log = example.log()
    assert CLIENT_OWN_KEY not in log and UPSTREAM_KEY not in log


def test_example_one_log_line_per_request(example: ConfiguredBridge, mocks: Mocks) -> None:
    start = len(example.log())
    client, _ = a_client(example.url)
    ask_anthropic(client, "claude-one-line-check", False)
    log_lines(example, start, "claude-one-line-check")
    time.sleep(0.3)  # anything else this request logs would be here by now
    lines = [line for line in example.log()[start:].splitlines() if "claude-one-line-check" in line]
    assert len(lines) == 1, "\n".join(lines)


# === routing by models and priority, rewrite, show_target_model ==============================


def routing_config(a: MockUpstream, b: MockUpstream, c: MockUpstream) -> dict[str, Any]:
    return {"endpoints": [
        {"name": "chat-backend", "url_openai": f"{b.url}/v1", "priority": 5,  # first in the file, tried second
         "models": ["gpt-4o", "gpt-4.1*", "o3"],
         "model_rewrite": {"rules": [{"source_pattern": "gpt-4.1*", "target_model": "local-qwen"},
                                     {"source_pattern": "o3", "target_model": "local-reasoner"}]}},
        {"name": "claude-backend", "url_anthropic": a.url, "models": ["claude-*", "gpt-4o"],
         "model_rewrite": {"rules": [{"source_pattern": "claude-haiku*", "target_model": "claude-local-haiku"}]}},
        {"name": "shown", "url_openai": f"{c.url}/v1", "priority": 5, "models": ["shown-*", "shown-fixed"],
         "model_rewrite": {"show_target_model": True,
                           "rules": [{"source_pattern": "shown-*", "target_model": "real-shown"}]}},
    ]}


@pytest.fixture(scope="module")
def routed(bridge_config: Factory, mock_trio: Mocks) -> ConfiguredBridge:
    return bridge_config(routing_config(*mock_trio))


def serving(config: dict[str, Any], model: str) -> str:
    """The endpoint that must serve ``model``: lowest priority first, file order among equals."""
    eps = sorted(config["endpoints"], key=lambda ep: ep.get("priority", 0))
    return next(ep["name"] for ep in eps if any(fnmatchcase(model, p) for p in ep.get("models", ["*"])))


@STREAM
@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("model", ["claude-opus-4-1", "gpt-4o", "gpt-4.1-mini"])
def test_model_and_priority_pick_the_endpoint(routed: ConfiguredBridge, mocks: Mocks, fmt: str, model: str,
                                              stream: bool) -> None:
    config = routing_config(*mocks)
    name = serving(config, model)
    by_name = {"claude-backend": mocks[0], "chat-backend": mocks[1], "shown": mocks[2]}
    ep = next(e for e in config["endpoints"] if e["name"] == name)
    target = next((r["target_model"] for r in ep.get("model_rewrite", {}).get("rules", [])
                   if fnmatchcase(model, r["source_pattern"])), model)
    upstream = by_name[name]
    upstream.next_reply(text=TEXT, model=target)
    client, _ = client_for(fmt, routed.url)
    assert ASK[fmt](client, model, stream) == (model, TEXT)
    (up,) = upstream.requests
    assert up.json["model"] == target
    assert up.path.split("?")[0] == ("/v1/messages" if "url_anthropic" in ep else "/v1/chat/completions")
    untouched(*(m for n, m in by_name.items() if n != name))


def test_priority_beats_file_order(routed: ConfiguredBridge, mocks: Mocks) -> None:
    """gpt-4o is served by both chat-backend (first in the file, priority 5) and claude-backend (priority 0)."""
    a, b, _ = mocks
    client, _ = o_client(routed.url + "/v1")
    a.next_reply(text=TEXT)
    assert ask_chat(client, "gpt-4o", False)[1] == TEXT
    assert [r.path.split("?")[0] for r in a.requests] == ["/v1/messages"]  # translated, not passed through to B
    untouched(b)


@pytest.mark.parametrize("fmt", ["anthropic", "chat"])
def test_show_target_model(routed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    _, _, c = mocks
    c.next_reply(text=TEXT, model="real-shown")
    client, _ = client_for(fmt, routed.url)
    assert ASK[fmt](client, "shown-1", False) == ("real-shown", TEXT)
    assert c.last.json["model"] == "real-shown"


def test_passthrough_rewrite_shows_the_clients_model_whatever_the_upstream_calls_it(routed: ConfiguredBridge,
                                                                                    mocks: Mocks) -> None:
    """Upstreams often answer with a dated or resolved name (asked gpt-4o, OpenAI says gpt-4o-2024-08-06).
    The default (show_target_model: false) promises the client's own name; a translated exchange keeps that
    promise whatever the upstream says, so a pass-through one must too."""
    _, b, _ = mocks
    client, _ = o_client(routed.url + "/v1")
    b.next_reply(text=TEXT, model="local-qwen-2026-01-15")
    assert ask_chat(client, "gpt-4.1-mini", False) == ("gpt-4.1-mini", TEXT)
    a_cl, _ = a_client(routed.url)
    b.next_reply(text=TEXT, model="local-qwen-2026-01-15")
    assert ask_anthropic(a_cl, "gpt-4.1-mini", False) == ("gpt-4.1-mini", TEXT)  # translated: already so


def _check_no_endpoint_message(message: str, model: str, config: dict[str, Any]) -> None:
    assert model in message
    for ep in config["endpoints"]:
        assert ep["name"] in message
        for pattern in ep["models"]:
            assert pattern in message


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_no_endpoint_error_through_the_sdk(routed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    model = "mistral-large-2411"
    client, _ = client_for(fmt, routed.url)
    error = anthropic.NotFoundError if fmt == "anthropic" else openai.NotFoundError
    with pytest.raises(error) as e:
        ASK[fmt](client, model, False)
    assert e.value.status_code == 404
    body = e.value.response.json()
    if fmt == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    else:
        assert set(body) == {"error"} and body["error"]["type"] == "not_found_error"
    _check_no_endpoint_message(body["error"]["message"], model, routing_config(*mocks))
    untouched(*mocks)


@pytest.mark.parametrize("fmt", ["anthropic", "chat"])
def test_models_list_through_the_sdk(routed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    client, sent = client_for(fmt, routed.url)
    ids = [m.id for m in client.models.list()]
    expected = literal_names(routing_config(*mocks))
    assert expected == {"gpt-4o", "o3", "shown-fixed"}  # the helper read the config right
    assert set(ids) == expected and len(ids) == len(expected)
    assert sent.requests[-1].url.path == "/v1/models"
    untouched(*mocks)  # answered by the bridge: the mocks answer GET with 404


def test_count_tokens_forwarded_with_the_rewritten_model(routed: ConfiguredBridge, mocks: Mocks) -> None:
    a, b, c = mocks
    client, sent = a_client(routed.url)
    result = client.messages.count_tokens(model="claude-haiku-4-5", system="Be brief.",
                                          messages=[{"role": "user", "content": TEXT}])
    (up,) = a.requests
    assert up.path.split("?")[0] == COUNT_TOKENS_PATH
    assert up.json == {**json.loads(sent.last_body), "model": "claude-local-haiku"}
    assert result.input_tokens == count_tokens_answer(up.body)
    untouched(b, c)


def test_count_tokens_estimated_for_a_chat_only_endpoint(routed: ConfiguredBridge, mocks: Mocks) -> None:
    client, _ = a_client(routed.url)
    text = "Count these words please. " * 160  # 4160 characters: about 1040 tokens
    tool = {"name": "lookup", "description": "Look something up. " * 40,
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    small = client.messages.count_tokens(model="gpt-4.1-mini", messages=[{"role": "user", "content": text}])
    assert 0.85 * len(text) / 4 <= small.input_tokens <= 1.15 * len(text) / 4 + 10
    bigger = client.messages.count_tokens(model="gpt-4.1-mini", system=text, tools=[tool],
                                          messages=[{"role": "user", "content": text}])
    assert bigger.input_tokens - small.input_tokens >= 0.85 * (len(text) + len(tool["description"])) / 4
    untouched(*mocks)


# === client keys =================================================================================


def keys_config(a: MockUpstream, b: MockUpstream) -> dict[str, Any]:
    return {"client_keys_env": [CK_ENV], "endpoints": [
        {"name": "keyless-dual", "url_anthropic": a.url, "url_openai": f"{a.url}/v1", "models": ["claude-*", "gpt-*"]},
        {"name": "keyed", "url_openai": f"{b.url}/v1", "api_key_env": UPSTREAM_KEY_ENV,
         "models": ["keyed-*", "keyed-fixed"]},
    ]}


@pytest.fixture(scope="module")
def keyed(bridge_config: Factory, mock_trio: Mocks) -> ConfiguredBridge:
    return bridge_config(keys_config(*mock_trio[:2]), env={CK_ENV: CK})


def no_client_key_upstream(rec: Any) -> None:
    assert CK not in rec.all_header_values
    assert CK.encode() not in rec.body


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_wrong_client_key_is_a_401_in_the_clients_format(keyed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    client, _ = client_for(fmt, keyed.url, key=WRONG_KEY)
    error = anthropic.AuthenticationError if fmt == "anthropic" else openai.AuthenticationError
    with pytest.raises(error) as e:
        ASK[fmt](client, "claude-sonnet-4-5", False)
    assert e.value.status_code == 401
    body = e.value.response.json()
    assert body["error"]["type"] == "authentication_error"
    assert (body["type"] == "error") if fmt == "anthropic" else (set(body) == {"error"})
    assert WRONG_KEY not in e.value.response.text
    untouched(*mocks)
    assert WRONG_KEY not in keyed.log()


@pytest.mark.parametrize(("path", "headers"), [
    ("/v1/messages", {"anthropic-version": "2023-06-01"}),
    ("/v1/chat/completions", {}),
    ("/v1/messages", {"anthropic-version": "2023-06-01", "authorization": "Bearer"}),
])
def test_missing_client_key_is_a_401(keyed: ConfiguredBridge, mocks: Mocks, path: str,
                                     headers: dict[str, str]) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES}
    r = httpx2.post(keyed.url + path, json=body, headers=headers, timeout=20)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert ("type" in r.json()) is path.endswith("/messages")  # the Anthropic shape for Anthropic clients
    untouched(*mocks)


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_right_client_key_as_bearer_is_accepted_and_not_forwarded(keyed: ConfiguredBridge, mocks: Mocks,
                                                                  fmt: str) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT)
    client, _ = client_for(fmt, keyed.url, key=CK)
    assert ASK[fmt](client, "gpt-5.5" if fmt != "anthropic" else "claude-sonnet-4-5", False)[1] == TEXT
    (up,) = a.requests
    no_client_key_upstream(up)
    assert "authorization" not in up.headers and "x-api-key" not in up.headers  # this endpoint has no key
    untouched(b)


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_right_client_key_as_x_api_key_is_accepted_and_not_forwarded(keyed: ConfiguredBridge, mocks: Mocks,
                                                                     fmt: str) -> None:
    a, _, _ = mocks
    a.next_reply(text=TEXT)
    path = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}[fmt]
    body: dict[str, Any] = {"model": "claude-sonnet-4-5" if fmt == "anthropic" else "gpt-5.5"}
    body |= {"anthropic": {"max_tokens": 10, "messages": MESSAGES}, "chat": {"messages": MESSAGES},
             "responses": {"input": "Say hello"}}[fmt]
    headers = {"x-api-key": CK} | ({"anthropic-version": "2023-06-01"} if fmt == "anthropic" else {})
    r = httpx2.post(keyed.url + path, json=body, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    (up,) = a.requests
    no_client_key_upstream(up)


@pytest.mark.parametrize("fmt", ["anthropic", "chat"])
def test_right_client_key_is_replaced_by_the_endpoints_key(keyed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    a, b, _ = mocks
    b.next_reply(text=TEXT)
    client, _ = client_for(fmt, keyed.url, key=CK)
    assert ASK[fmt](client, "keyed-model", False)[1] == TEXT
    (up,) = b.requests
    assert up.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    no_client_key_upstream(up)
    untouched(a)


@pytest.mark.parametrize("fmt", ["anthropic", "chat"])
def test_models_list_needs_the_client_key(keyed: ConfiguredBridge, mocks: Mocks, fmt: str) -> None:
    client, _ = client_for(fmt, keyed.url, key=CK)
    assert {m.id for m in client.models.list()} == literal_names(keys_config(*mocks[:2]))
    wrong, _ = client_for(fmt, keyed.url, key=WRONG_KEY)
    with pytest.raises(anthropic.AuthenticationError if fmt == "anthropic" else openai.AuthenticationError):
        wrong.models.list()


def test_client_keys_never_logged(keyed: ConfiguredBridge, mocks: Mocks) -> None:
    client, _ = a_client(keyed.url, key=CK)
    ask_anthropic(client, "claude-sonnet-4-5", False)
    log_lines(keyed, 0, "claude-sonnet-4-5")
    log = keyed.log()
    assert "endpoint keyless-dual" in log
    assert CK not in log and UPSTREAM_KEY not in log


# === regular proxy mode: intercept_hosts ========================================================


def proxy_config(a: MockUpstream) -> dict[str, Any]:
    return {"intercept_hosts": ["llm.test"], "endpoints": [{"name": "llm-test-chat", "url_openai": f"{a.url}/v1"}]}


@pytest.fixture(scope="module")
def proxy(bridge_config: Factory, mock_trio: Mocks) -> ConfiguredBridge:
    return bridge_config(proxy_config(mock_trio[0]), modes=["regular"])


@STREAM
def test_regular_mode_routes_an_intercepted_host(proxy: ConfiguredBridge, mocks: Mocks, stream: bool) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT)
    client, _ = a_client("http://llm.test", proxy=proxy.url)
    assert ask_anthropic(client, "claude-via-proxy", stream) == ("claude-via-proxy", TEXT)
    (up,) = a.requests
    assert up.path == "/v1/chat/completions"  # translated for the Chat-only endpoint
    assert up.json["model"] == "claude-via-proxy"
    assert CLIENT_OWN_KEY not in up.all_header_values  # never sent to another format
    untouched(b)


def test_regular_mode_passes_a_same_format_request_through(proxy: ConfiguredBridge, mocks: Mocks) -> None:
    a, b, _ = mocks
    a.next_reply(text=TEXT)
    client, sent = o_client("http://llm.test/v1", proxy=proxy.url)
    assert ask_chat(client, "gpt-via-proxy", False)[1] == TEXT
    (up,) = a.requests
    assert up.path == "/v1/chat/completions" and up.body == sent.last_body
    untouched(b)


def test_regular_mode_answers_models_for_an_intercepted_host(proxy: ConfiguredBridge, mocks: Mocks) -> None:
    client, _ = o_client("http://llm.test/v1", proxy=proxy.url)
    assert [m.id for m in client.models.list()] == []  # the config names no literal model
    untouched(*mocks)


def test_regular_mode_leaves_other_hosts_alone(proxy: ConfiguredBridge, mocks: Mocks) -> None:
    a, b, _ = mocks
    reply = b.next_reply(text=TEXT, model="mock-b-model")
    client, sent = a_client(b.url, proxy=proxy.url)  # addressed to mock B itself, not to an intercepted host
    assert ask_anthropic(client, "claude-elsewhere", False) == (reply.model, TEXT)
    (up,) = b.requests
    assert up.path.split("?")[0] == "/v1/messages"  # untranslated
    assert up.body == sent.last_body
    assert up.headers["authorization"] == f"Bearer {CLIENT_OWN_KEY}"  # not ours to touch
    untouched(a)
    with pytest.raises(openai.NotFoundError):  # GET /v1/models goes to mock B too, which has none
        o_client(b.url + "/v1", proxy=proxy.url)[0].models.list()


# === several listeners ============================================================================


@pytest.fixture(scope="module")
def two_listeners(bridge_config: Factory, mock_trio: Mocks) -> ConfiguredBridge:
    a = mock_trio[0]
    p1, p2 = free_ports(2)
    config = {"endpoints": [{"name": "multi", "url_anthropic": a.url, "url_openai": f"{a.url}/v1"}]}
    return bridge_config(config, modes=[f"reverse:http://127.0.0.1:9@{p1}", f"reverse:http://127.0.0.1:9@{p2}"])


def test_several_listeners_all_serve(two_listeners: ConfiguredBridge, mocks: Mocks) -> None:
    a = mocks[0]
    ports = [p for ps in two_listeners.ports.values() for p in ps]
    assert len(ports) == 2 and len(set(ports)) == 2
    for port in ports:
        for fmt in ("anthropic", "chat"):
            a.next_reply(text=f"{TEXT} {port} {fmt}")
            client, _ = client_for(fmt, f"http://127.0.0.1:{port}")
            assert ASK[fmt](client, f"model-{port}", False)[1] == f"{TEXT} {port} {fmt}"
    assert [r.json["model"] for r in a.requests] == [f"model-{p}" for p in ports for _ in range(2)]


# === a client that is not on loopback ============================================================


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback, which it can also connect to itself."""
    for probe in ("192.0.2.1", "10.255.255.255", "198.51.100.1"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                ip = str(s.getsockname()[0])
            if ip == "0.0.0.0" or ipaddress.ip_address(ip).is_loopback:
                continue
            with socket.socket() as server:
                server.bind((ip, 0))
                server.listen()
                with socket.create_connection(server.getsockname(), timeout=2):
                    pass
            return ip
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def exposed(bridge_config: Factory, mock_trio: Mocks) -> Iterator[tuple[ConfiguredBridge, str]]:
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address to listen and connect on")
    config = {"endpoints": [{"name": "exposed", "url_anthropic": mock_trio[0].url}]}
    yield bridge_config(config, modes=[f"reverse:http://127.0.0.1:9@{ip}:0"]), ip


@pytest.mark.parametrize("fmt", ["anthropic", "chat"])
def test_without_client_keys_a_remote_client_gets_403(exposed: tuple[ConfiguredBridge, str], mocks: Mocks,
                                                      fmt: str) -> None:
    bridge, ip = exposed
    assert f"listening on {ip} without client_keys_env" in bridge.log()
    client, _ = client_for(fmt, f"http://{ip}:{bridge.port}")
    error = anthropic.PermissionDeniedError if fmt == "anthropic" else openai.PermissionDeniedError
    with pytest.raises(error) as e:
        ASK[fmt](client, "claude-sonnet-4-5", False)
    assert e.value.status_code == 403
    assert e.value.response.json()["error"]["type"] == "permission_error"
    untouched(*mocks)


# === config reload ================================================================================


def reload_config(a: MockUpstream, target: str) -> dict[str, Any]:
    return {"endpoints": [{"name": "reload-ep", "url_openai": f"{a.url}/v1",
                           "model_rewrite": {"rules": [{"source_pattern": "gpt-*", "target_model": target}]}}]}


def test_config_reload(bridge_config: Factory, mocks: Mocks) -> None:
    a = mocks[0]
    bridge = bridge_config(reload_config(a, "target-one"), fresh_process=True)
    client, _ = o_client(bridge.url + "/v1")

    def upstream_model() -> str:
        a.next_reply(text=TEXT)
        assert ask_chat(client, "gpt-reload", False)[1] == TEXT
        return str(a.last.json["model"])

    assert upstream_model() == "target-one"

    start = len(bridge.log())
    bridge.write_config(reload_config(a, "target-two"))
    time.sleep(2)
    bridge.wait_for_log("config reloaded", start, timeout=3)
    assert upstream_model() == "target-two"

    start = len(bridge.log())
    broken = "endpoints:\n  - name: reload-ep\n    url_openai: http://127.0.0.1:1/v1\n" \
             "    model_rewrite:\n      rules:\n        - source_pattern: gpt-*\n"
    bridge.write_config(broken)
    log = bridge.wait_for_log("config not reloaded", start, timeout=5)
    assert f"{bridge.config_path}:6: endpoints[0].model_rewrite.rules[0].target_model: is required" in log
    assert upstream_model() == "target-two"  # the last good config stays

    start = len(bridge.log())
    bridge.write_config(reload_config(a, "target-three"))
    bridge.wait_for_log("config reloaded", start, timeout=5)
    assert upstream_model() == "target-three"  # and the watcher lives on after a broken edit
    bridge.stop()
