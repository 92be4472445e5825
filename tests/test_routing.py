"""Routing and request planning without mitmproxy: ``addon.routing`` (which endpoint, which format) and
``addon.plan`` (access checks, the model list, count_tokens, pass-through with a model rewrite,
translation), plus the config keys they read and :class:`~addon.translate.ModelRenamer`.

Configs are YAML text parsed by :func:`addon.config.parse_config`, so file order, priorities and
defaults go through the same code as ``config.yaml``. Expectations are derived from the inputs.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from addon.config import Config, ConfigError, load_config, parse_config
from addon.formats import FORMATS
from addon.plan import Plan, plan
from addon.routing import NoEndpoint, Operation, Route, candidates, detect, route
from addon.translate import ModelRenamer

NOW = 1_760_000_000
PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
CLIENT_HEADERS = {"anthropic": {"content-type": "application/json", "anthropic-version": "2023-06-01"},
                  "chat": {"content-type": "application/json"},
                  "responses": {"content-type": "application/json"}}
KEY_ENV = "BRIDGE_TEST_ROUTING_CLIENT_KEY"
KEY = "ck-routing-7d41c0ffee"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

# The issue's example, as written (hostnames and all).
EXAMPLE = """\
endpoints:
  - name: example-dual-url
    url_anthropic: https://api.provider.com
    url_openai: https://api.provider.com/v1
    openai_preference: chat_completions      # or responses
    model_rewrite:
      enabled: true
      rules:
        - source_pattern: gpt-5*
          target_model: provider-actual-model
  - name: example-anthropic-only
    url_anthropic: https://api.provider.com
    model_rewrite: {enabled: true, rules: [{source_pattern: "claude-*sonnet*", target_model: x}]}
"""


def cfg(text: str, **environ: str) -> Config:
    return parse_config(yaml.compose(textwrap.dedent(text)), "config.yaml", environ)


def request_body(fmt: str, model: str, text: str = "hi") -> dict[str, Any]:
    if fmt == "anthropic":
        return {"model": model, "max_tokens": 64, "temperature": 0.25,
                "messages": [{"role": "user", "content": text}]}
    if fmt == "chat":
        return {"model": model, "temperature": 0.25, "messages": [{"role": "user", "content": text}]}
    return {"model": model, "temperature": 0.25, "input": text}


def run(config: Config, fmt: str, body: dict[str, Any] | bytes | None = None, *, model: str = "m",
        headers: dict[str, str] | None = None, path: str | None = None, method: str = "POST") -> Plan:
    """plan() for a client of format ``fmt``; ``detect`` decides the operation from method, path and headers."""
    path = path or PATHS[fmt]
    hdrs = {**CLIENT_HEADERS[fmt], **(headers or {})}
    op = detect(method, path, hdrs)
    assert op is not None, (method, path)
    if body is None:
        body = request_body(fmt, model)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return plan(config, op, path, hdrs, raw, lambda prefix: prefix + "0001", NOW)


def upstream_url(r: Route) -> str:
    return FORMATS[r.upstream_format].upstream_url(r.base, r.upstream_model, False, "generate")


def answer_json(p: Plan) -> tuple[int, Any]:
    assert p.answer is not None, p.summary
    status, content_type, body = p.answer
    assert content_type == "application/json"
    return status, json.loads(body)


def sent_json(p: Plan) -> dict[str, Any]:
    assert p.body is not None
    value = json.loads(p.body)
    assert isinstance(value, dict)
    return value


def error_message(fmt: str, body: Any) -> str:
    """The message of an error body in the client's shape (and a check of that shape)."""
    if fmt == "anthropic":
        assert body["type"] == "error", body
        return str(body["error"]["message"])
    assert set(body) == {"error"}, body
    return str(body["error"]["message"])


def error_type(fmt: str, body: Any) -> str:
    return str(body["error"]["type"])


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of ``text`` that contains ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- detect ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "anthropic_headers", "expected"), [
    ("POST", "/v1/messages", False, Operation("anthropic", "generate")),
    ("POST", "/v1/messages?beta=true", True, Operation("anthropic", "generate")),
    ("POST", "/v1/messages/count_tokens", True, Operation("anthropic", "count_tokens")),
    ("POST", "/v1/messages/count_tokens?beta=true", True, Operation("anthropic", "count_tokens")),
    ("POST", "/v1/chat/completions", False, Operation("chat", "generate")),
    ("POST", "/openai/v1/chat/completions", False, Operation("chat", "generate")),
    ("POST", "/v1beta/openai/chat/completions", False, Operation("chat", "generate")),  # Gemini's OpenAI base
    ("POST", "/v1/responses", False, Operation("responses", "generate")),
    ("POST", "/backend-api/codex/responses", False, Operation("responses", "generate")),
    ("GET", "/v1/models", True, Operation("anthropic", "models")),
    ("GET", "/v1/models", False, Operation("chat", "models")),
    ("GET", "/v1/models?limit=20", True, Operation("anthropic", "models")),
    # Under an API prefix but served by no API here: answered 404 in the client's (guessed) format.
    ("GET", "/v1/messages", True, Operation("anthropic", "unknown")),
    ("POST", "/v1/embeddings", False, Operation("chat", "unknown")),
    ("GET", "/v1/responses/resp_1", False, Operation("responses", "unknown")),
    ("POST", "/v1/messages/bogus", True, Operation("anthropic", "unknown")),
    # What clients and load balancers probe: answered here (issue 14, item 1).
    ("GET", "/healthz", False, Operation("chat", "probe")),
    ("HEAD", "/api/hello", True, Operation("anthropic", "probe")),
    ("POST", "/health", False, None),
    # The path says which API, whatever the headers: a wrong method there is that API's 404.
    ("GET", "/v1/messages", False, Operation("anthropic", "unknown")),
    ("GET", "/v1/chat/completions", True, Operation("chat", "unknown")),
    ("GET", "/backend-api/codex/responses", False, Operation("responses", "unknown")),
    # Elsewhere: not the bridge's business.
    ("GET", "/api/tags", False, None),
    ("GET", "/api/tags", True, None),
    ("POST", "/backend-api/codex/other", False, None),
    ("POST", "/responses/other", False, None),
])
def test_detect(method: str, path: str, anthropic_headers: bool, expected: Operation | None) -> None:
    headers = {"anthropic-version": "2023-06-01"} if anthropic_headers else {}
    assert detect(method, path, headers) == expected


def test_detect_a_websocket_upgrade_to_responses() -> None:
    upgrade = {"upgrade": "websocket", "connection": "Upgrade"}
    assert detect("GET", "/v1/responses", upgrade) == Operation("responses", "websocket")
    assert detect("GET", "/v1/responses", {}) == Operation("responses", "unknown")
    assert detect("GET", "/v1/chat/completions", upgrade) == Operation("chat", "unknown")


# --- which endpoint: models globs, priority, file order ----------------------------------------


@pytest.mark.parametrize(("pattern", "model"), [
    ("claude-*", "claude-sonnet-4-5"), ("claude-*", "claude-"), ("gpt-5?", "gpt-5o"), ("gpt-5?", "gpt-55"),
    ("gpt-5?", "gpt-5"), ("o[34]-mini", "o3-mini"), ("o[34]-mini", "o4-mini"), ("o[34]-mini", "o5-mini"),
    ("*sonnet*", "claude-3-5-sonnet-latest"), ("qwen3-coder", "qwen3-coder"), ("qwen3-coder", "qwen3-coder:30b"),
    ("Claude-*", "claude-x"),  # globs are case-sensitive
])
def test_models_globs_decide_what_an_endpoint_serves(pattern: str, model: str) -> None:
    config = cfg(f"""
        endpoints:
          - name: globbed
            url_openai: http://a.test/v1
            models: ["{pattern}"]
          - name: fallback
            url_openai: http://b.test/v1
            priority: 1
        """)
    expected = "globbed" if fnmatchcase(model, pattern) else "fallback"
    assert route(config, "chat", model).endpoint.name == expected
    assert config.endpoints[0].serves(model) is fnmatchcase(model, pattern)


PRIORITY_SPECS = [  # (name, priority or None for the default, models or None for everything)
    ("first-in-file", 10, None),
    ("claude-low", -5, ["claude-*"]),
    ("gpt-a", 0, ["gpt-*"]),
    ("default-prio", None, None),
    ("gpt-b", 0, ["gpt-*", "o3"]),
    ("late-high", 3, ["gpt-5*", "claude-*"]),
]


def _priority_config() -> Config:
    lines = ["endpoints:"]
    for i, (name, priority, models) in enumerate(PRIORITY_SPECS):
        lines += [f"  - name: {name}", f"    url_openai: http://h{i}.test/v1"]
        if priority is not None:
            lines.append(f"    priority: {priority}")
        if models is not None:
            lines.append(f"    models: {json.dumps(models)}")
    return cfg("\n".join(lines) + "\n")


@pytest.mark.parametrize("model", ["claude-opus-4", "gpt-5.5", "gpt-4o", "o3", "llama3", "gpt-5"])
def test_candidates_by_priority_lower_first_then_file_order(model: str) -> None:
    config = _priority_config()
    ordered = sorted(PRIORITY_SPECS, key=lambda s: 0 if s[1] is None else s[1])  # stable: file order kept
    expected = [name for name, _, models in ordered if models is None or any(fnmatchcase(model, p) for p in models)]
    assert [r.endpoint.name for r in candidates(config, "chat", model)] == expected
    assert route(config, "chat", model).endpoint.name == expected[0]


def test_equal_priorities_keep_file_order() -> None:
    names = ["zeta", "alpha", "mid", "beta"]
    config = cfg("endpoints:\n" + "".join(f"  - name: {n}\n    url_openai: http://{n}.test/v1\n    priority: 7\n"
                                          for n in names))
    assert [e.name for e in config.endpoints] == names
    assert [r.endpoint.name for r in candidates(config, "anthropic", "any-model")] == names


def test_endpoint_without_models_serves_every_model() -> None:
    config = cfg("""
        endpoints:
          - name: only
            url_anthropic: http://a.test
        """)
    for model in ("claude-sonnet-4-5", "gpt-5.5", "qwen3-coder:30b", "a model with spaces", "*"):
        r = route(config, "anthropic", model)
        assert (r.endpoint.name, r.upstream_model) == ("only", model)


def test_the_issue_example_loads_and_its_first_endpoint_serves_everything() -> None:
    config = cfg(EXAMPLE)
    dual, anthropic_only = config.endpoints
    assert dual.name == "example-dual-url" and anthropic_only.name == "example-anthropic-only"
    assert (dual.url("url_anthropic"), dual.url("url_openai")) == ("https://api.provider.com",
                                                                   "https://api.provider.com/v1")
    assert dual.rewrite == (("gpt-5*", "provider-actual-model"),)
    assert anthropic_only.rewrite == (("claude-*sonnet*", "x"),)
    assert dual.models == anthropic_only.models == ()
    r = route(config, "anthropic", "claude-sonnet-4-5")
    assert (r.endpoint.name, r.upstream_format, r.passthrough) == ("example-dual-url", "anthropic", True)
    assert upstream_url(r) == "https://api.provider.com/v1/messages"
    assert r.upstream_model == "claude-sonnet-4-5"  # the dual endpoint's rule does not match
    r = route(config, "chat", "gpt-5.5")
    assert (r.upstream_format, upstream_url(r), r.upstream_model) == (
        "chat", "https://api.provider.com/v1/chat/completions", "provider-actual-model")


# --- model rewrite ------------------------------------------------------------------------------

REWRITE_RULES = [("gpt-5*", "first-target"), ("gpt-5.5", "second-target"), ("o?", "o-target"), ("*", "catch-all")]


def _rewrite_config(enabled: str | None = None, show: str | None = None, url: str = "url_openai: http://a.test/v1",
                    rules: list[tuple[str, str]] = REWRITE_RULES) -> Config:
    lines = ["endpoints:", "  - name: rw", f"    {url}", "    model_rewrite:"]
    if enabled is not None:
        lines.append(f"      enabled: {enabled}")
    if show is not None:
        lines.append(f"      show_target_model: {show}")
    lines.append("      rules:")
    lines += [f"        - {{source_pattern: {json.dumps(s)}, target_model: {json.dumps(t)}}}" for s, t in rules]
    return cfg("\n".join(lines) + "\n")


@pytest.mark.parametrize("model", ["gpt-5.5", "gpt-5", "o3", "claude-sonnet-4-5"])
def test_first_matching_rewrite_rule_wins(model: str) -> None:
    expected = next(t for s, t in REWRITE_RULES if fnmatchcase(model, s))
    assert route(_rewrite_config(), "chat", model).upstream_model == expected


def test_no_matching_rule_keeps_the_model() -> None:
    config = _rewrite_config(rules=[("gpt-5*", "t")])
    assert route(config, "chat", "claude-x").upstream_model == "claude-x"
    p = run(config, "chat", model="claude-x")
    assert p.body is None and p.rename is None


@pytest.mark.parametrize("enabled", ["false", "no", "off"])  # YAML 1.1 booleans, as PyYAML reads them
def test_rewrite_disabled_rewrites_nothing(enabled: str) -> None:
    config = _rewrite_config(enabled=enabled)
    assert config.endpoints[0].rewrite == ()
    assert route(config, "chat", "gpt-5.5").upstream_model == "gpt-5.5"
    p = run(config, "chat", model="gpt-5.5")
    assert (p.body, p.rename, p.exchange) == (None, None, None)


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_passthrough_rewrite_changes_only_the_model(fmt: str) -> None:
    url = {"anthropic": "url_anthropic: http://a.test", "chat": "url_openai: http://a.test/v1",
           "responses": "url_openai: http://a.test/v1\n    openai_preference: responses"}[fmt]
    config = _rewrite_config(url=url)
    body = request_body(fmt, "gpt-5.5", "Grüße ✓")
    p = run(config, fmt, body)
    assert p.exchange is None and p.answer is None
    assert p.summary["mode"] == "pass-through"
    expected_target = next(t for s, t in REWRITE_RULES if fnmatchcase("gpt-5.5", s))
    assert sent_json(p) == {**body, "model": expected_target}
    assert list(sent_json(p)) == list(body)  # same keys, same order
    assert p.rename == (expected_target, "gpt-5.5")  # the answer shows the client's model again
    assert p.summary["model"] == "gpt-5.5" and p.summary["upstream_model"] == expected_target


def test_passthrough_rewrite_with_show_target_model_does_not_rename_the_answer() -> None:
    config = _rewrite_config(show="true")
    assert config.endpoints[0].show_target_model is True
    body = request_body("chat", "gpt-5.5")
    p = run(config, "chat", body)
    assert sent_json(p) == {**body, "model": "first-target"}
    assert p.rename is None


CHAT_ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "first-target",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


@pytest.mark.parametrize(("client", "show"), [("anthropic", None), ("anthropic", "true"), ("responses", None),
                                              ("responses", "true"), ("anthropic", "false")])
def test_translated_rewrite_sends_the_target_and_shows_the_clients_model(client: str, show: str | None) -> None:
    config = _rewrite_config(show=show)  # url_openai, chat_completions: both clients are translated
    p = run(config, client, request_body(client, "gpt-5.5"))
    assert p.exchange is not None and p.summary["mode"] == "conversion"
    assert p.url == "http://a.test/v1/chat/completions"
    assert sent_json(p)["model"] == "first-target"
    shown = "first-target" if show == "true" else "gpt-5.5"
    assert p.exchange.ctx.client_model == shown
    assert p.rename is None  # translated answers are rendered with ctx.client_model instead
    status, _, answer = p.exchange.translate_body(200, "application/json", json.dumps(CHAT_ANSWER).encode())
    assert status == 200
    assert json.loads(answer)["model"] == shown


# --- which format: dual URLs pass through, single URLs convert --------------------------------


DUAL = """
    endpoints:
      - name: dual
        url_anthropic: http://anthropic.test/base/
        url_openai: http://openai.test/v1
        openai_preference: {pref}
    """


@pytest.mark.parametrize("pref", ["chat_completions", "responses"])
@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_dual_url_endpoint(fmt: str, pref: str) -> None:
    config = cfg(DUAL.format(pref=pref))
    raw = json.dumps(request_body(fmt, "some-model")).encode()
    p = run(config, fmt, raw, path=PATHS[fmt] + "?trace=1")
    openai_fmt = "responses" if pref == "responses" else "chat"
    if fmt == "anthropic":
        own_url = "http://anthropic.test/base/v1/messages"
    elif fmt == openai_fmt:
        own_url = "http://openai.test/v1/" + ("responses" if fmt == "responses" else "chat/completions")
    else:
        own_url = None
    if own_url:  # the client's own format: the body goes on untouched
        assert p.summary["mode"] == "pass-through" and p.summary["upstream_format"] == fmt
        assert (p.url, p.body, p.exchange, p.rename) == (own_url + "?trace=1", None, None, None)
    else:  # a Chat client with responses preference, or a Responses client with chat: url_openai, translated
        assert p.summary["mode"] == "conversion" and p.summary["upstream_format"] == openai_fmt
        # no query parameter of the client's API goes into another API (issue 14, item 2)
        assert p.url == "http://openai.test/v1/" + ("responses" if pref == "responses" else "chat/completions")
        assert p.exchange is not None and p.body is not None


OFFERS = {
    "openai-chat": "url_openai: http://openai.test/v1\n    openai_preference: chat_completions",
    "openai-responses": "url_openai: http://openai.test/v1\n    openai_preference: responses",
    "codex": "url_codex: http://codex.test/backend-api/codex",
    "anthropic": "url_anthropic: http://anthropic.test",
}
# What the bridge converts to when the client's own format is not offered: url_openai, url_codex, url_anthropic.
CONVERSION_ORDER = [("openai-chat", "chat", "http://openai.test/v1/chat/completions"),
                    ("openai-responses", "responses", "http://openai.test/v1/responses"),
                    ("codex", "responses", "http://codex.test/backend-api/codex/responses"),
                    ("anthropic", "anthropic", "http://anthropic.test/v1/messages")]
OWN = {"openai-chat": "chat", "openai-responses": "responses", "codex": "responses", "anthropic": "anthropic"}


@pytest.mark.parametrize("offered", [["openai-chat"], ["openai-responses"], ["codex"], ["anthropic"],
                                     ["codex", "anthropic"], ["anthropic", "codex"], ["openai-chat", "anthropic"],
                                     ["openai-responses", "codex"], ["openai-chat", "codex", "anthropic"]])
@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_conversion_target_order(fmt: str, offered: list[str]) -> None:
    config = cfg("endpoints:\n  - name: ep\n" + "".join(f"    {OFFERS[o]}\n" for o in offered))
    r = route(config, fmt, "m")
    own = [o for o in offered if OWN[o] == fmt]
    # The client's own format wins (url_openai before url_codex for Responses); else the preference order.
    pick = next(item for item in CONVERSION_ORDER if item[0] in (own or offered))
    assert (r.upstream_format, upstream_url(r)) == pick[1:]
    assert r.passthrough is bool(own)
    assert r.flavor == ("codex" if pick[0] == "codex" else None)


# --- no endpoint for the model ------------------------------------------------------------------

NO_CATCH_ALL = """
    endpoints:
      - name: claude-side
        url_anthropic: http://a.test
        models: ["claude-*", "haiku-3"]
      - name: gpt-side
        url_openai: http://b.test/v1
        models: ["gpt-5*"]
        priority: -1
    """


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_no_endpoint_is_a_404_in_the_clients_format_naming_model_and_endpoints(fmt: str) -> None:
    config = cfg(NO_CATCH_ALL)
    model = "mistral-large-2411"
    p = run(config, fmt, model=model)
    assert p.url is None and p.exchange is None
    status, body = answer_json(p)
    assert status == 404
    assert error_type(fmt, body) == "not_found_error"
    message = error_message(fmt, body)
    assert repr(model) in message or f'"{model}"' in message
    for ep in config.endpoints:
        assert ep.name in message
        for pattern in ep.models:
            assert pattern in message
    with pytest.raises(NoEndpoint) as e:
        route(config, fmt, model)
    assert e.value.status == 404 and e.value.message == message


def test_no_endpoint_message_pairs_each_endpoint_with_its_own_models() -> None:
    config = cfg(NO_CATCH_ALL)
    with pytest.raises(NoEndpoint) as e:
        route(config, "chat", "nope")
    tried = e.value.message.split("tried:", 1)[1]
    parts = [part.strip() for part in tried.split(";")]
    by_name = {ep.name: ep.models for ep in config.endpoints}
    assert len(parts) == len(by_name)
    for part in parts:
        name = part.split(" ", 1)[0]
        assert all(m in part for m in by_name[name]), part
        assert not any(m in part for other, ms in by_name.items() if other != name for m in ms), part


@pytest.mark.parametrize(("body", "param"), [({"messages": []}, "model"), ({"model": 5, "messages": []}, "model"),
                                             ({"model": "", "messages": []}, "model")])
def test_missing_model_is_a_400(body: dict[str, Any], param: str) -> None:
    status, answer = answer_json(run(cfg(NO_CATCH_ALL), "chat", body))
    assert status == 400 and answer["error"]["param"] == param


# --- client keys ----------------------------------------------------------------------------------

KEYED = f"""
    client_keys_env: [{KEY_ENV}]
    endpoints:
      - name: dual
        url_anthropic: http://a.test
        url_openai: http://a.test/v1
        models: ["*"]
      - name: keyed-chat
        url_openai: http://k.test/v1
        api_key_env: UPSTREAM_SECRET
        models: ["keyed-*"]
        priority: -1
    """


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("UPSTREAM_SECRET", "upstream-secret-9e2")
    return cfg(KEYED, **{KEY_ENV: KEY, "UPSTREAM_SECRET": "upstream-secret-9e2"})


PASS = {"anthropic": "http://a.test/v1/messages", "chat": "http://a.test/v1/chat/completions"}


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_right_client_key_is_accepted_and_never_forwarded(keyed: Config, fmt: str, header: str) -> None:
    value = KEY if header == "x-api-key" else f"Bearer {KEY}"
    p = run(keyed, fmt, model="claude-sonnet-4-5", headers={header: value})
    assert p.answer is None, p.answer
    assert p.summary["endpoint"] == "dual"
    assert p.summary["mode"] == ("pass-through" if fmt in PASS else "conversion")
    assert header in p.drop_headers  # removed from the upstream request, even on pass-through
    assert KEY not in json.dumps(p.set_headers)
    assert p.body is None or KEY.encode() not in p.body


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_right_client_key_is_replaced_by_the_endpoints_key(keyed: Config, fmt: str, header: str) -> None:
    value = KEY if header == "x-api-key" else f"Bearer {KEY}"
    p = run(keyed, fmt, model="keyed-model", headers={header: value})
    assert p.answer is None and p.summary["endpoint"] == "keyed-chat"
    assert p.set_headers.get("authorization") == "Bearer upstream-secret-9e2"
    assert header in p.drop_headers or p.set_headers.get(header) == "Bearer upstream-secret-9e2"
    assert KEY not in json.dumps(p.set_headers)


@pytest.mark.parametrize(("client", "pref"), [("chat", "responses"), ("responses", "chat_completions")])
@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
def test_without_client_keys_a_clients_key_never_reaches_an_upstream_of_another_format(
        client: str, pref: str, header: str) -> None:
    """README: "a client's own key is never forwarded to an upstream of another format"."""
    config = cfg(f"endpoints:\n  - name: e\n    url_openai: http://a.test/v1\n    openai_preference: {pref}\n")
    p = run(config, client, headers={header: "client-own-key"})
    assert p.summary["mode"] == "conversion"
    assert header in p.drop_headers


def test_client_keys_count_tokens_forward_drops_the_key(keyed: Config) -> None:
    p = run(keyed, "anthropic", request_body("anthropic", "claude-x"), path="/v1/messages/count_tokens",
            headers={"x-api-key": KEY})
    assert p.answer is None and p.url == "http://a.test/v1/messages/count_tokens"
    assert "x-api-key" in p.drop_headers


# --- GET /v1/models -------------------------------------------------------------------------------

MODELS = """
    endpoints:
      - name: later
        url_openai: http://b.test/v1
        priority: 5
        models: [qwen3-coder, "gpt-4*", gpt-4o, "o[13]"]
        model_rewrite:
          rules:
            - {source_pattern: gpt-4o, target_model: qwen3-coder}
            - {source_pattern: "gpt-4?-mini", target_model: small}
            - {source_pattern: gpt-4.1, target_model: qwen3-coder}
      - name: first
        url_anthropic: http://a.test
        models: [claude-sonnet-4-5, "claude-*", "llama?", gpt-4o]
    """


def _literal_names(config: Config) -> list[str]:
    """What the model list must hold: literal names of models and rewrite sources, in endpoint order."""
    names: list[str] = []
    for ep in config.endpoints:
        for name in [*ep.models, *(s for s, _ in ep.rewrite)]:
            if not set("*?[") & set(name) and name not in names:
                names.append(name)
    return names


def test_literal_names_helper_reads_the_config() -> None:
    assert _literal_names(cfg(MODELS)) == ["claude-sonnet-4-5", "gpt-4o", "qwen3-coder", "gpt-4.1"]


@pytest.mark.parametrize("headers", [{"anthropic-version": "2023-06-01"}, {"x-api-key": "k"},
                                     {"anthropic-version": "2023-06-01", "x-api-key": "k"}])
def test_models_list_in_the_anthropic_shape(headers: dict[str, str]) -> None:
    config = cfg(MODELS)
    hdrs = {"accept": "application/json", **headers}
    op = detect("GET", "/v1/models", hdrs)
    assert op == Operation("anthropic", "models")
    p = plan(config, op, "/v1/models", hdrs, b"", lambda prefix: prefix, NOW)
    status, body = answer_json(p)
    names = _literal_names(config)
    assert status == 200 and p.url is None
    assert [m["id"] for m in body["data"]] == names
    assert all(m["type"] == "model" and m["display_name"] == m["id"] for m in body["data"])
    stamp = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(m["created_at"] == stamp for m in body["data"])
    assert (body["has_more"], body["first_id"], body["last_id"]) == (False, names[0], names[-1])


@pytest.mark.parametrize("path", ["/v1/models", "/openai/v1/models", "/v1/models/"])
def test_models_list_in_the_openai_shape(path: str) -> None:
    config = cfg(MODELS)
    p = run(config, "chat", b"", method="GET", path=path)
    status, body = answer_json(p)
    assert status == 200
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == _literal_names(config)
    assert all(m["object"] == "model" and m["created"] == NOW for m in body["data"])


def test_models_list_has_no_globs_and_no_rewrite_targets() -> None:
    config = cfg(MODELS)
    ids = [m["id"] for m in answer_json(run(config, "chat", b"", method="GET", path="/v1/models"))[1]["data"]]
    assert not [i for i in ids if set("*?[") & set(i)]
    assert "small" not in ids  # a target is what the upstream is asked for, not what clients ask for
    assert len(ids) == len(set(ids))


# --- count_tokens ---------------------------------------------------------------------------------

COUNT = """
    endpoints:
      - name: claude
        url_anthropic: http://a.test/anthro
        models: ["claude-*"]
        model_rewrite: {rules: [{source_pattern: "claude-haiku*", target_model: local-haiku}]}
      - name: dual
        url_openai: http://d.test/v1
        url_anthropic: http://d.test
        models: ["dual-*"]
      - name: chat-only
        url_openai: http://c.test/v1
        models: ["gpt-*"]
      - name: codex-only
        url_codex: http://x.test/backend-api/codex
        models: ["codex-*"]
    """


def count(config: Config, body: dict[str, Any] | bytes, path: str = "/v1/messages/count_tokens") -> Plan:
    return run(config, "anthropic", body, path=path)


@pytest.mark.parametrize(("model", "url"), [
    ("claude-sonnet-4-5", "http://a.test/anthro/v1/messages/count_tokens"),
    ("dual-model", "http://d.test/v1/messages/count_tokens"),  # url_anthropic, though url_openai is preferred
])
def test_count_tokens_is_forwarded_to_url_anthropic(model: str, url: str) -> None:
    config = cfg(COUNT)
    raw = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    p = count(config, raw, path="/v1/messages/count_tokens?beta=true")
    assert p.answer is None and p.exchange is None
    assert p.url == url + "?beta=true"
    assert p.body is None  # untouched bytes
    assert p.summary["endpoint"] == next(e.name for e in config.endpoints if e.serves(model))


def test_count_tokens_forward_carries_the_rewritten_model() -> None:
    body = {"model": "claude-haiku-4-5", "system": "s", "messages": [{"role": "user", "content": "hi"}]}
    p = count(cfg(COUNT), body)
    assert p.url == "http://a.test/anthro/v1/messages/count_tokens"
    assert sent_json(p) == {**body, "model": "local-haiku"}


def test_count_tokens_for_an_unserved_model_is_a_404() -> None:
    status, body = answer_json(count(cfg(COUNT), {"model": "mystery", "messages": []}))
    assert status == 404 and "mystery" in body["error"]["message"]


def estimate(body: dict[str, Any], model: str = "gpt-x") -> int:
    p = count(cfg(COUNT), {"model": model, **body})
    assert p.url is None, "an endpoint without url_anthropic is estimated locally"
    status, answer = answer_json(p)
    assert status == 200 and set(answer) == {"input_tokens"}
    assert p.summary["mode"] == "local estimate"
    value = answer["input_tokens"]
    assert isinstance(value, int) and value > 0
    return value


def user(*content: Any) -> dict[str, Any]:
    """A user message: one string, or content blocks."""
    if len(content) == 1 and isinstance(content[0], str):
        return {"role": "user", "content": content[0]}
    return {"role": "user", "content": list(content)}


TEXT_4000 = ("The quick brown fox jumps over the lazy dog; " * 90)[:4000]


@pytest.mark.parametrize("model", ["gpt-5.5", "codex-mini"])
def test_count_tokens_estimate_is_about_chars_over_four(model: str) -> None:
    n = estimate({"messages": [user(TEXT_4000)]}, model)
    assert 0.85 * len(TEXT_4000) / 4 <= n <= 1.15 * len(TEXT_4000) / 4 + 10


def test_count_tokens_estimate_grows_with_system_messages_and_tools() -> None:
    base = {"messages": [user("hello there")]}
    n0 = estimate(base)
    system = "You are a careful assistant. " * 40
    n_system = estimate({**base, "system": system})
    assert abs((n_system - n0) - len(system) / 4) <= 0.15 * len(system) / 4 + 2
    n_blocks = estimate({**base, "system": [{"type": "text", "text": system}]})
    assert n_blocks == n_system
    reply = "Sure, here is what I found. " * 30
    n_more = estimate({"messages": [user("hello there"), {"role": "assistant", "content": reply}, user("and?")]})
    assert n_more - n0 >= len(reply) / 4 * 0.85
    tool = {"name": "get_weather", "description": "Get the weather for a city. " * 20,
            "input_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "x" * 200}}}}
    n_tools = estimate({**base, "tools": [tool]})
    tool_chars = len(tool["name"]) + len(tool["description"]) + len(json.dumps(tool["input_schema"]))
    assert n_tools - n0 >= 0.8 * tool_chars / 4
    assert n_tools - n0 <= 1.2 * tool_chars / 4 + 5
    assert estimate({**base, "tools": [tool, {**tool, "name": "get_weather_2"}]}) > n_tools


def test_count_tokens_estimate_counts_tool_calls_and_results() -> None:
    args = {"city": "Reykjavík", "notes": "n" * 400}
    result = "r" * 800
    base = {"messages": [user("weather?")]}
    n0 = estimate(base)
    n = estimate({"messages": [
        user("weather?"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": args}]},
        user({"type": "tool_result", "tool_use_id": "toolu_1", "content": result}),
    ]})
    assert n - n0 >= 0.85 * (len(json.dumps(args)) + len(result)) / 4


def _image(data: str = PNG_B64) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def test_count_tokens_estimate_counts_images() -> None:
    text = {"type": "text", "text": "What is in these pictures?"}
    n0 = estimate({"messages": [user(text)]})
    n1 = estimate({"messages": [user(_image(), text)]})
    n2 = estimate({"messages": [user(_image(), _image(), text)]})
    assert n1 > n0
    assert n2 - n1 == n1 - n0  # each image counts the same
    in_result = estimate({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        user({"type": "tool_result", "tool_use_id": "t1", "content": [_image()]})]})
    no_image = estimate({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        user({"type": "tool_result", "tool_use_id": "t1", "content": []})]})
    assert in_result - no_image == n1 - n0


def test_count_tokens_estimate_does_not_count_image_bytes_as_text() -> None:
    big = "A" * 400_000  # a large image's base64: as text it would be 100k tokens
    n_big = estimate({"messages": [user(_image(big))]})
    n_small = estimate({"messages": [user(_image())]})
    assert n_big == n_small
    assert n_big < 10_000


# --- config validation of the routing keys ------------------------------------------------------

BASE = "endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1/v1\n"


@pytest.mark.parametrize(("text", "needle", "key", "reason"), [
    (BASE + '    models: ["gpt-[5"]\n', "gpt-[5", "endpoints[0].models[0]", "bad pattern 'gpt-[5'"),
    (BASE + '    models: ["claude-*", "gpt-5]"]\n', "gpt-5]", "endpoints[0].models[1]", "bad pattern 'gpt-5]'"),
    (BASE + '    models: [" gpt-5"]\n', "gpt-5", "endpoints[0].models[0]", "bad pattern"),
    (BASE + "    models: gpt-5*\n", "models", "endpoints[0].models", "must be a list of strings"),
    (BASE + "    models: [5]\n", "models", "endpoints[0].models[0]", "must be a non-empty string"),
    (BASE + "    priority: high\n", "priority", "endpoints[0].priority", "must be an integer"),
    (BASE + "    priority: 1.5\n", "priority", "endpoints[0].priority", "must be an integer"),
    (BASE + "    priority: true\n", "priority", "endpoints[0].priority", "must be an integer"),
    (BASE + '    priority: "3"\n', "priority", "endpoints[0].priority", "must be an integer"),
    (BASE + "    model_rewrite:\n      enable: true\n", "enable:", "endpoints[0].model_rewrite.enable",
     "unknown key"),
    (BASE + "    model_rewrite: [gpt-5]\n", "model_rewrite", "endpoints[0].model_rewrite",
     "must be a mapping"),
    (BASE + "    model_rewrite:\n      rules:\n        - source_pattern: gpt-5*\n",
     "source_pattern", "endpoints[0].model_rewrite.rules[0].target_model", "is required"),
    (BASE + "    model_rewrite:\n      rules:\n        - target_model: t\n",
     "target_model", "endpoints[0].model_rewrite.rules[0].source_pattern", "is required"),
    (BASE + "    model_rewrite:\n      rules:\n        - {source_pattern: a, target_model: b, note: c}\n",
     "note", "endpoints[0].model_rewrite.rules[0].note", "unknown key"),
    (BASE + "    model_rewrite:\n      rules:\n        - {source_pattern: a, target_model: b}\n"
            "        - {source_pattern: 'gpt-[5', target_model: b}\n",
     "gpt-[5", "endpoints[0].model_rewrite.rules[1].source_pattern", "bad pattern 'gpt-[5'"),
    (BASE + "    model_rewrite:\n      rules:\n        - {source_pattern: a, target_model: ''}\n",
     "target_model", "endpoints[0].model_rewrite.rules[0].target_model", "must be a non-empty string"),
    (BASE + "    model_rewrite:\n      rules: {source_pattern: a, target_model: b}\n",
     "rules", "endpoints[0].model_rewrite.rules", "must be a list"),
    (BASE + '    model_rewrite:\n      enabled: "true"\n', "enabled", "endpoints[0].model_rewrite.enabled",
     "must be true or false"),
    (BASE + "    model_rewrite:\n      enabled: 1\n", "enabled", "endpoints[0].model_rewrite.enabled",
     "must be true or false"),
    (BASE + "    model_rewrite:\n      show_target_model: maybe\n", "show_target_model",
     "endpoints[0].model_rewrite.show_target_model", "must be true or false"),
    ("client_keys_env: [BRIDGE_UNSET_CLIENT_KEY]\n" + BASE, "BRIDGE_UNSET_CLIENT_KEY", "client_keys_env",
     "environment variable BRIDGE_UNSET_CLIENT_KEY is not set"),
    (BASE + "client_keys_env:\n  - SET_KEY\n  - BRIDGE_UNSET_CLIENT_KEY\n", "BRIDGE_UNSET_CLIENT_KEY",
     "client_keys_env", "environment variable BRIDGE_UNSET_CLIENT_KEY is not set"),
    (BASE + "client_keys_env: SET_KEY\n", "client_keys_env", "client_keys_env", "must be a list of strings"),
    (BASE + "intercept_hosts: llm.test\n", "intercept_hosts", "intercept_hosts", "must be a list of strings"),
    (BASE + "intercept_hosts: {llm.test: true}\n", "intercept_hosts", "intercept_hosts",
     "must be a list of strings"),
    (BASE + "intercept_hosts: [llm.test, 7]\n", "intercept_hosts", "intercept_hosts[1]",
     "must be a non-empty string"),
    (BASE + "intercept_host: [llm.test]\n", "intercept_host", "intercept_host", "unknown key"),
])
def test_routing_key_mistakes_name_file_line_key_and_reason(tmp_path: Path, text: str, needle: str, key: str,
                                                            reason: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path), environ={"SET_KEY": "v"})
    assert str(e.value).startswith(f"{path}:{line_of(text, needle)}: {key}: {reason}"), str(e.value)


def test_routing_keys_defaults_and_values() -> None:
    config = cfg("""
        client_keys_env: [CK_A]
        intercept_hosts: [LLM.Test, api.example.test]
        endpoints:
          - name: plain
            url_openai: http://a.test/v1
          - name: full
            url_anthropic: http://b.test
            models: [claude-*, "o[13]"]
            priority: -3
            model_rewrite:
              show_target_model: true
              rules: [{source_pattern: "claude-*", target_model: t}]
        """, CK_A="x")
    full, plain = config.endpoints  # priority -3 first
    assert (plain.models, plain.priority, plain.rewrite, plain.show_target_model) == ((), 0, (), False)
    assert (full.models, full.priority, full.rewrite, full.show_target_model) == (
        ("claude-*", "o[13]"), -3, (("claude-*", "t"),), True)
    assert config.client_keys_env == ("CK_A",)
    assert config.intercept_hosts == ("llm.test", "api.example.test")  # host names compare lower-case
    assert cfg(BASE).intercept_hosts == ("api.anthropic.com", "api.openai.com", "chatgpt.com")
    assert cfg(BASE).client_keys_env == ()


# --- ModelRenamer: a pass-through answer shows the client's model again ------------------------


def test_model_renamer_json_bodies() -> None:
    r = ModelRenamer("provider-actual-model", "gpt-5.5")
    anthropic_msg = {"id": "msg_1", "type": "message", "model": "provider-actual-model",
                     "content": [{"type": "text", "text": "I am provider-actual-model"}]}
    out = json.loads(r.body(json.dumps(anthropic_msg).encode()))
    assert out == {**anthropic_msg, "model": "gpt-5.5"}  # only the model field, not the text
    dated = json.dumps({"model": "provider-actual-model-2026-01-15", "x": 1}).encode()  # what upstreams answer
    assert json.loads(r.body(dated)) == {"model": "gpt-5.5", "x": 1}
    listed = json.dumps([{"model": "provider-actual-model"}]).encode()
    assert r.body(listed) == listed


def test_model_renamer_keeps_a_body_that_is_neither_json_nor_sse() -> None:
    """bridge.response() runs every 2xx pass-through answer after a rewrite through ``body``: what it
    cannot parse must reach the client as the upstream sent it, not vanish."""
    r = ModelRenamer("provider-actual-model", "gpt-5.5")
    for body in (b"not json at all", b"OK", b"<html><body>provider-actual-model</body></html>"):
        assert r.body(body) == body


def _sse(*events: tuple[str | None, dict[str, Any] | str]) -> bytes:
    out = b""
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out += (f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode()
    return out


def _parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        name = None
        data = []
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


STREAMS = {
    "anthropic": _sse(("message_start", {"type": "message_start", "message": {"id": "m", "model": "T", "content": []}}),
                      ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": "T says T"}}),
                      ("message_stop", {"type": "message_stop"})),
    "chat": _sse((None, {"id": "c", "object": "chat.completion.chunk", "model": "T",
                         "choices": [{"index": 0, "delta": {"content": "é T"}}]}),
                 (None, {"id": "c", "object": "chat.completion.chunk", "model": "T",
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                 (None, "[DONE]")),
    "responses": _sse(("response.created", {"type": "response.created", "response": {"id": "r", "model": "T"}}),
                      ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "T"}),
                      ("response.completed", {"type": "response.completed", "response": {"id": "r", "model": "T"}})),
}


def _renamed(events: list[tuple[str | None, str]]) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for name, data in events:
        try:
            obj = json.loads(data)
        except ValueError:
            out.append((name, data))
            continue
        for holder in (obj, obj.get("message"), obj.get("response")):
            if isinstance(holder, dict) and holder.get("model") == "T":
                holder["model"] = "client-model"
        out.append((name, obj))
    return out


def _decoded(events: list[tuple[str | None, str]]) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for name, data in events:
        try:
            out.append((name, json.loads(data)))
        except ValueError:
            out.append((name, data))
    return out


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_model_renamer_streams(fmt: str, chunk: int) -> None:
    raw = STREAMS[fmt]
    r = ModelRenamer("T", "client-model")
    out = b"".join(b"".join(r.feed(raw[i:i + chunk])) for i in range(0, len(raw), chunk)) + b"".join(r.close())
    expected = _renamed(_parse_sse(raw))
    assert _decoded(_parse_sse(out)) == expected
    assert any(isinstance(d, dict) and "client-model" in json.dumps(d) for _, d in expected)


# --- query strings (issue 14, items 2 and 11) -------------------------------------------------------

QUERY = """
    endpoints:
      - name: chat
        url_openai: http://c.test/v1
        models: ["to-chat*"]
      - name: anthropic
        url_anthropic: http://a.test
        models: ["to-anthropic*"]
      - name: azure
        url_openai: https://res.openai.azure.test/openai/deployments/gpt-4o
        auth: api-key
        api_key_env: AZURE_TEST_KEY
        query: {api-version: "2024-10-21"}
        models: ["to-azure*"]
    """


@pytest.fixture
def query_config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("AZURE_TEST_KEY", "azure-key-0123456789abcdef")
    return cfg(QUERY, AZURE_TEST_KEY="azure-key-0123456789abcdef")


def test_a_translated_request_carries_no_query_of_the_clients_api(query_config: Config) -> None:
    """Claude Code sends ?beta=true; a strict Chat server answers 404 to it."""
    p = run(query_config, "anthropic", model="to-chat", path="/v1/messages?beta=true")
    assert p.summary["mode"] == "conversion" and p.url == "http://c.test/v1/chat/completions"


def test_a_request_passed_on_keeps_its_query(query_config: Config) -> None:
    p = run(query_config, "anthropic", model="to-anthropic", path="/v1/messages?beta=true")
    assert p.summary["mode"] == "pass-through" and p.url == "http://a.test/v1/messages?beta=true"


@pytest.mark.parametrize(("fmt", "path"), [("anthropic", "/v1/messages?beta=true"),
                                           ("chat", "/v1/chat/completions?api-version=2020-01-01&x=1")])
def test_an_endpoints_query_goes_on_every_request_and_wins(query_config: Config, fmt: str, path: str) -> None:
    p = run(query_config, fmt, model="to-azure-4o", path=path)
    base = "https://res.openai.azure.test/openai/deployments/gpt-4o/chat/completions"
    expect = f"{base}?api-version=2024-10-21" if fmt == "anthropic" else f"{base}?x=1&api-version=2024-10-21"
    assert p.url == expect
    assert p.set_headers.get("api-key") == "azure-key-0123456789abcdef"  # Azure's own header, no Bearer
    assert "authorization" not in p.set_headers


@pytest.mark.parametrize(("text", "needle"), [
    ("url_openai: http://x.test/v1/chat/completions", "url_openai: is a base URL: the bridge appends "
                                                      "/chat/completions or /responses itself; write http://x.test/v1"),
    ("url_anthropic: https://api.anthropic.test/v1", "url_anthropic: is a base URL: the bridge appends /v1/messages "
                                                     "itself; write https://api.anthropic.test"),
    ("url_gemini: https://g.test/v1beta/models", "url_gemini: is a base URL: the bridge appends "
                                                 "/v1beta/models/{model}:generateContent itself; write https://g.test"),
    ("url_gemini: https://g.test/v1beta/models/gemini-3-pro:generateContent", "url_gemini: is a base URL"),
    ("url_anthropic: http://x.test\n    prompt_cache: sometimes", "prompt_cache: must be one of auto, off"),
    ("url_openai: http://x.test/v1\n    websocket: true", "websocket: is for an endpoint that speaks Responses"),
    ("url_codex: http://x.test/codex\n    websocket: 3", "websocket: must be true or false"),
    ("url_openai: http://x.test/v1\n    query: {key: abc}", "query.key: carries a credential"),
    ("url_openai: http://x.test/v1\n    query: [a]", "query: must be a mapping"),
    ("url_openai: http://x.test/v1\n    auth: basic", "auth: must be one of bearer, x-api-key, api-key"),
])
def test_url_query_and_auth_mistakes_are_named_at_load(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        cfg(f"endpoints:\n  - name: e\n    {text}\n")
    assert needle in str(e.value)


# --- prompt caching across formats (issue 17) -----------------------------------------------------

CACHE_CONFIG = """\
endpoints:
  - name: chat
    url_openai: http://127.0.0.1:9/v1
    models: ["to-chat"]
  - name: responses
    url_openai: http://127.0.0.1:9/v1
    openai_preference: responses
    models: ["to-responses"]
  - name: codex
    url_codex: http://127.0.0.1:9/backend-api/codex
    models: ["to-codex"]
  - name: anthropic
    url_anthropic: http://127.0.0.1:9
    models: ["to-anthropic"]
"""
SESSION = "5d6f0c2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


@pytest.mark.parametrize("model", ["to-chat", "to-responses", "to-codex"])
def test_claude_codes_session_is_the_prompt_cache_key_of_an_openai_upstream(model: str) -> None:
    """OpenAI routes a prompt to a warm cache by ``prompt_cache_key``: Claude Code's requests of one session
    carry the same one (its session header), so they land on the same cache, turn after turn."""
    config = cfg(CACHE_CONFIG)
    sent = [json.loads(run(config, "anthropic", model=model, headers={"X-Claude-Code-Session-Id": SESSION},
                           body={**request_body("anthropic", model, text)}).body or b"{}")
            for text in ("turn one", "turn two")]
    assert [s["prompt_cache_key"] for s in sent] == [SESSION, SESSION]


@pytest.mark.parametrize("client", ["anthropic", "chat"])
def test_a_conversation_without_session_or_key_gets_one_key_from_its_start(client: str) -> None:
    """Without a session header or a key of its own (an SDK Chat client, the Gemini CLI: e2e in
    test_prompt_cache_session), a conversation is keyed by a hash of its system text and first message:
    the same for every later request of it, another for another conversation."""
    config = cfg(CACHE_CONFIG)

    def key(first: str, later: int) -> Any:
        body = request_body(client, "to-responses", first)
        for n in range(later):
            body["messages"] += [{"role": "assistant", "content": f"ok {n}"}, {"role": "user", "content": "and?"}]
        return json.loads(run(config, client, body).body or b"{}").get("prompt_cache_key")

    first = key("fix the tests", 0)
    assert isinstance(first, str) and first.startswith("bridge-") and len(first) <= 64
    assert key("fix the tests", 3) == first
    assert key("write the docs", 3) != first


def test_prompt_cache_off_adds_no_key_of_the_bridges() -> None:
    config = cfg(CACHE_CONFIG.replace('models: ["to-responses"]', 'models: ["to-responses"]\n    prompt_cache: off'))
    sent = json.loads(run(config, "anthropic", model="to-responses",
                          headers={"X-Claude-Code-Session-Id": SESSION}).body or b"{}")
    assert "prompt_cache_key" not in sent
    mine = {**request_body("chat", "to-responses"), "prompt_cache_key": "mine"}
    assert json.loads(run(config, "chat", mine).body or b"{}")["prompt_cache_key"] == "mine"  # the client's own


def test_a_clients_own_cache_key_and_retention_go_on_across_openai_apis() -> None:
    config = cfg(CACHE_CONFIG)
    body = {**request_body("chat", "to-responses"), "prompt_cache_key": "mine", "prompt_cache_retention": "24h"}
    sent = json.loads(run(config, "chat", body, headers={"session-id": SESSION}).body or b"{}")
    assert (sent["prompt_cache_key"], sent["prompt_cache_retention"]) == ("mine", "24h")  # the client's wins
    back = {**request_body("responses", "to-chat"), "prompt_cache_retention": "in_memory"}
    assert json.loads(run(config, "responses", back).body or b"{}")["prompt_cache_retention"] == "in_memory"
    codex = json.loads(run(config, "chat", {**body, "model": "to-codex"}).body or b"{}")
    assert "prompt_cache_retention" not in codex and codex["prompt_cache_key"] == "mine"


def test_an_anthropic_upstream_gets_no_cache_key() -> None:
    sent = json.loads(run(cfg(CACHE_CONFIG), "chat", {**request_body("chat", "to-anthropic"),
                                                       "prompt_cache_key": "mine"}).body or b"{}")
    assert not {"prompt_cache_key", "prompt_cache_retention"} & set(sent)


@pytest.mark.parametrize(("setting", "marked"), [("", True), ("\n    prompt_cache: auto", True),
                                                  ("\n    prompt_cache: off", False)])
def test_prompt_cache_places_breakpoints_for_an_anthropic_upstream_unless_off(setting: str, marked: bool) -> None:
    config = cfg(f"endpoints:\n  - name: a\n    url_anthropic: http://127.0.0.1:9{setting}\n")
    sent = json.loads(run(config, "chat").body or b"{}")
    assert ("cache_control" in json.dumps(sent)) is marked
    assert b"cache_control" not in (run(config, "anthropic").body or b"")  # an Anthropic client's own bytes
