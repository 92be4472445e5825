"""Load and validate ``config.yaml`` into typed objects. Every mistake names file, key path and reason.

Shape (unknown keys are rejected so a typo never passes silently; README "Configuration" has it all)::

    client_keys_env: [BRIDGE_CLIENT_KEY]    # env vars holding the keys clients must present (optional)
    intercept_hosts: [api.anthropic.com]    # regular/upstream proxy mode: the hosts the bridge acts on
    max_request_bytes: 33554432             # a request body, as sent and decompressed
    max_answer_bytes: 33554432              # a whole answer, or what a stream's translation keeps
    max_relay_connections: 1000             # the failover relay's upstream connections at once
    metrics: {path: /metrics, max_models: 100}  # the Prometheus route (default: none)
    endpoints:                              # matched by model, by priority, then file order
      - name: local
        models: ["claude-*", "gpt-5*"]            # globs of the model names it serves (default: all)
        priority: 10                              # lower is tried first (default 0)
        model_rewrite:                            # what the upstream is asked for instead
          enabled: true
          rules: [{source_pattern: "gpt-5*", target_model: "qwen3-coder"}]
          show_target_model: false                # answers show the client's model name (default)
        url_openai: http://127.0.0.1:11434/v1     # OpenAI base URL (…/chat/completions is appended)
        url_anthropic: http://127.0.0.1:8001      # Anthropic base URL (/v1/messages is appended)
        url_codex: https://chatgpt.com/backend-api/codex  # the ChatGPT Codex backend (/responses appended)
        url_gemini: https://generativelanguage.googleapis.com  # Gemini (/v1beta/models/{model}:… appended)
        openai_preference: chat_completions       # or responses: which API url_openai is spoken in
        api_key_env: LOCAL_API_KEY                # env var holding the key; never the key itself
        auth: bearer                              # bearer | x-api-key | api-key | x-goog-api-key (default: per format)
                                                  # or codex-login (url_codex: the Codex CLI's ChatGPT login)
        codex_home: ~/.codex                      # auth: codex-login: where its auth.json is ($CODEX_HOME)
        default_max_tokens: 8192                  # when a client sends none and Anthropic needs one
        max_tokens_limit: 16384                   # clamp a client's max_tokens to what the model allows
        drop_params: [reasoning_effort]           # upstream body fields this server rejects
        headers: {chatgpt-account-id: "…"}        # extra request headers (no secrets: use api_key_env)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import formats
from .access import KEY_PARAMS
from .codex_login import LoginError, default_home, read_login
from .formats.common import AUTH_SCHEMES
from .logconfig import BODY_MODES, LEVELS, LogSettings

__all__ = ["CODEX_LOGIN", "ConfigError", "Endpoint", "Config", "Offer", "URL_KEYS", "load_config", "parse_config",
           "reverse_target", "MetricsSettings", "PROBE_PATHS", "READY_PATHS"]


class ConfigError(ValueError):
    """A configuration mistake; the message reads ``file:line: key.path: reason``."""


@dataclass(frozen=True, slots=True)
class Offer:
    """One API an endpoint speaks: the format, its base URL, and a flavour of it (the Codex backend)."""

    format: str
    base: str
    flavor: str | None = None


@dataclass(frozen=True, slots=True)
class UrlKey:
    """An endpoint's base-URL key: the format its URL speaks, a flavour, what the format appends (for
    the error) and the endings that mean a whole endpoint was pasted instead of a base URL."""

    format: str
    flavor: str | None
    appended: str
    pasted: tuple[str, ...]


# The base-URL keys, in the order the bridge prefers them when the client's own format is not offered.
# ``url_openai`` speaks Chat, or Responses with ``openai_preference: responses``.
URL_KEYS: dict[str, UrlKey] = {
    "url_openai": UrlKey("chat", None, "/chat/completions or /responses", ("/chat/completions", "/responses")),
    "url_codex": UrlKey("responses", "codex", "/responses", ("/responses",)),
    "url_anthropic": UrlKey("anthropic", None, "/v1/messages", ("/v1/messages", "/messages", "/v1")),
    "url_gemini": UrlKey("gemini", None, "/v1beta/models/{model}:generateContent",
                         ("/v1beta", "/v1", "/v1beta/models", "/v1/models", ":generatecontent",
                          ":streamgeneratecontent", ":counttokens")),
}
_PREFERENCES = {"chat_completions": "chat", "responses": "responses"}  # openai_preference → url_openai's format


def matches(model: str, globs: tuple[str, ...]) -> bool:
    """Whether a model name is one of ``globs`` (``models`` of an endpoint or a client); none: every model."""
    return not globs or any(fnmatchcase(model, p) for p in globs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str
    urls: tuple[tuple[str, str], ...] = ()  # (URL key, base URL) as configured
    offers: tuple[Offer, ...] = ()  # what the endpoint speaks, in the order the bridge prefers
    api_key_env: str | None = None
    auth: str | None = None
    default_max_tokens: int = 8192
    max_tokens_limit: int | None = None
    drop_params: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()  # added to every request's URL (Azure's api-version)
    models: tuple[str, ...] = ()  # globs; empty: every model
    priority: int = 0
    rewrite: tuple[tuple[str, str], ...] = ()  # (source glob, target model), first match wins
    show_target_model: bool = False
    connect_timeout: float | None = None  # seconds; set → requests go through the failover relay
    first_byte_timeout: float | None = None
    idle_timeout: float | None = None  # seconds of silence in a begun stream before it is failed
    codex_home: str | None = None  # auth: codex-login: the Codex home whose auth.json login is used
    websocket: bool = False  # its Responses URL serves WebSocket: a Codex connection is relayed as one
    prompt_cache: bool = True  # auto: prompt-cache breakpoints placed for an Anthropic upstream (off: none)

    def url(self, key: str) -> str | None:
        """The base URL configured under ``key`` (``url_openai``, …), if any."""
        return dict(self.urls).get(key)

    def api_key(self) -> str | None:
        """The key, read from the environment at the moment of use (never stored in the config)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def serves(self, model: str) -> bool:
        return matches(model, self.models)

    def upstream_model(self, model: str) -> str:
        """The model name the upstream is asked for: the first matching rewrite rule's target."""
        return next((target for pattern, target in self.rewrite if fnmatchcase(model, pattern)), model)


# Paths the bridge answers itself, never forwarded (routing.py): liveness probes and readiness (health.py).
PROBE_PATHS = ("/health", "/healthz", "/api/hello")
READY_PATHS = ("/ready", "/readyz")


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """``metrics``: the route the bridge answers with its Prometheus metrics (metrics.py), and how many
    distinct model names its labels keep (the rest are ``other``)."""

    path: str = "/metrics"
    max_models: int = 100


DEFAULT_INTERCEPT_HOSTS = ("api.anthropic.com", "api.openai.com", "chatgpt.com")
_CLIENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch; shown in logs and metrics labels


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """Who may use the bridge: a name (logs, metrics, recorded flows say it, never the key), the env var
    that holds the key, and the models it may ask for (globs; empty: every model)."""

    name: str
    key_env: str
    models: tuple[str, ...] = ()

    def may_use(self, model: str) -> bool:
        return matches(model, self.models)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: str
    endpoints: tuple[Endpoint, ...]  # sorted by priority, file order kept among equals
    client_keys_env: tuple[str, ...] = ()  # every client's key variable (``clients`` and the older list)
    clients: tuple[Client, ...] = ()
    intercept_hosts: tuple[str, ...] = DEFAULT_INTERCEPT_HOSTS
    max_attempts: int = 3  # endpoints tried for one request, the first included
    max_request_bytes: int = 32 * 1024 * 1024  # Anthropic's own limit for Messages
    max_answer_bytes: int = 32 * 1024 * 1024  # a whole upstream answer, or what a stream's client must keep
    max_relay_connections: int = 1000  # the failover relay's connections to upstreams at once
    logging: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings | None = None  # the metrics route; None: none
    unset_env: tuple[str, ...] = ()  # key variables not set (allowed only when replaying)

    def secret_envs(self) -> tuple[str, ...]:
        """Every env var the config names that holds a key (to redact their values from logs)."""
        return tuple(e.api_key_env for e in self.endpoints if e.api_key_env) + self.client_keys_env

    def client_keys(self) -> frozenset[str]:
        """The keys clients may present, read from the environment now (empty: no key required)."""
        return frozenset(k for name in self.client_keys_env if (k := os.environ.get(name)))

    def client_by_key(self, key: str) -> Client | None:
        """The client whose key this is, read from the environment now (a rotated key counts at once)."""
        return next((c for c in self.clients if os.environ.get(c.key_env) == key), None)

    def client(self, name: str | None) -> Client | None:
        return next((c for c in self.clients if c.name == name), None) if name else None


_TOP_KEYS = {"endpoints", "clients", "client_keys_env", "intercept_hosts", "max_attempts", "max_request_bytes",
             "max_answer_bytes", "max_relay_connections", "logging", "metrics"}
_TOP_INTS = {"max_attempts": 3, "max_request_bytes": 32 * 1024 * 1024, "max_answer_bytes": 32 * 1024 * 1024,
             "max_relay_connections": 1000}
_LOG_KEYS = {"level", "log_request_body", "log_response_body", "file", "max_bytes", "backups"}
_ENDPOINT_KEYS = {"name", *URL_KEYS, "openai_preference", "api_key_env", "auth",
                  "default_max_tokens", "max_tokens_limit", "drop_params", "headers", "query", "models", "priority",
                  "model_rewrite", "connect_timeout", "first_byte_timeout", "idle_timeout", "codex_home",
                  "websocket", "prompt_cache"}
_NON_SCALAR = {"drop_params", "headers", "query", "models", "model_rewrite"}
_REWRITE_KEYS = {"enabled", "rules", "show_target_model"}
_RULE_KEYS = {"source_pattern", "target_model"}
_SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # fullmatch: "$" would let a trailing "\n" through
CODEX_LOGIN = "codex-login"  # auth: the ChatGPT login the Codex CLI keeps (codex_login.py)
_AUTH = (*AUTH_SCHEMES, CODEX_LOGIN)


def load_config(path: str, environ: Any = None, require_env: bool = True) -> Config:
    """Read and validate the file. Raises :class:`ConfigError`.

    ``require_env=False`` (replaying recordings: nothing goes upstream) lets a key's variable be unset;
    :attr:`Config.unset_env` names the ones that are."""
    try:
        with open(path, encoding="utf-8") as f:
            node = yaml.compose(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if node is None:
        raise ConfigError(f"{path}: the file is empty; it needs an 'endpoints' list")
    return parse_config(node, path, os.environ if environ is None else environ, require_env)


def parse_config(node: yaml.Node, path: str, environ: Any, require_env: bool = True) -> Config:
    v = _Validator(path)
    unset: list[str] = []
    top = v.mapping(node, "", _TOP_KEYS, required={"endpoints"})
    endpoints_node = top["endpoints"]
    if not isinstance(endpoints_node, yaml.SequenceNode) or not endpoints_node.value:
        raise v.error(endpoints_node, "endpoints", "must be a non-empty list of endpoints")
    endpoints = []
    names: set[str] = set()
    for i, ep_node in enumerate(endpoints_node.value):
        where = f"endpoints[{i}]"
        fields = v.mapping(ep_node, where, _ENDPOINT_KEYS, required={"name"})
        values = {k: v.scalar(n, f"{where}.{k}") for k, n in fields.items() if k not in _NON_SCALAR}
        name = v.string(values, fields, where, "name")
        if name in names:
            raise v.error(fields["name"], f"{where}.name", f"duplicate endpoint name {name!r}")
        names.add(name)
        urls = {k: url for k in URL_KEYS if (url := v.url(values, fields, where, k)) is not None}
        for key, url in urls.items():
            v.base_url(fields, where, key, url)
        if not urls:
            raise v.error(ep_node, where, f"needs a base URL: {', '.join(URL_KEYS)}")
        preference = v.choice(values, fields, where, "openai_preference", tuple(_PREFERENCES), "chat_completions")
        offers = tuple(Offer(_PREFERENCES[preference] if key == "url_openai" else spec.format, urls[key], spec.flavor)
                       for key, spec in URL_KEYS.items() if key in urls)
        key_env = values.get("api_key_env")
        if key_env is not None:
            key_env = v.string(values, fields, where, "api_key_env")
            if key_env not in environ:
                if require_env:
                    raise v.error(fields["api_key_env"], f"{where}.api_key_env",
                                  f"environment variable {key_env} is not set")
                unset.append(key_env)
        auth = v.choice(values, fields, where, "auth", _AUTH, None)
        endpoints.append(Endpoint(
            name=name, api_key_env=key_env, urls=tuple(urls.items()), offers=offers, auth=auth,
            codex_home=v.codex_login(auth, values, fields, where, environ, require_env),
            default_max_tokens=v.positive_int(values, fields, where, "default_max_tokens", 8192),
            max_tokens_limit=v.positive_int(values, fields, where, "max_tokens_limit", None),
            drop_params=v.string_list(fields, where, "drop_params"),
            headers=v.headers(fields, where),
            query=v.query(fields, where),
            models=tuple(v.glob(n, f"{where}.models[{i}]", p) for i, (n, p) in
                         enumerate(v.items(fields, where, "models"))),
            priority=v.integer(values, fields, where, "priority", 0),
            connect_timeout=v.seconds(values, fields, where, "connect_timeout"),
            first_byte_timeout=v.seconds(values, fields, where, "first_byte_timeout"),
            idle_timeout=v.seconds(values, fields, where, "idle_timeout"),
            websocket=v.websocket(values, fields, where, offers),
            prompt_cache=v.prompt_cache(values, fields, where),
            **v.rewrite(fields.get("model_rewrite"), f"{where}.model_rewrite"),
        ))
    clients = v.clients(top, environ, require_env, unset)
    client_keys_env = tuple(c.key_env for c in clients)
    hosts = tuple(h.lower() for _, h in v.items(top, "", "intercept_hosts")) or DEFAULT_INTERCEPT_HOSTS
    top_values = {k: v.scalar(n, k) for k, n in top.items() if k in _TOP_INTS}
    return Config(path=path, endpoints=tuple(sorted(endpoints, key=lambda e: e.priority)),
                  client_keys_env=client_keys_env, clients=tuple(clients), intercept_hosts=hosts,
                  **{k: v.positive_int(top_values, top, "", k, default) for k, default in _TOP_INTS.items()},
                  logging=v.log_settings(top.get("logging"), os.path.dirname(os.path.abspath(path))),
                  metrics=v.metrics(top.get("metrics")),
                  unset_env=tuple(unset))


class _Validator:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: yaml.Node, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}:{node.start_mark.line + 1}: {key}: {reason}")

    def mapping(self, node: yaml.Node, where: str, allowed: set[str], required: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, where or "(top level)", "must be a mapping of keys to values")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{where}.{key}" if where else key
            if key not in allowed:
                raise self.error(key_node, path, f"unknown key (allowed: {', '.join(sorted(allowed))})")
            out[key] = value_node
        for key in sorted(required - out.keys()):
            raise self.error(node, f"{where}.{key}" if where else key, "is required")
        return out

    def clients(self, top: dict[str, yaml.Node], environ: Any, require_env: bool, unset: list[str]) -> list[Client]:
        """``clients`` (each a name, the env var of its key, optionally its models), then the older
        ``client_keys_env`` list, each of its variables a client named after it."""
        found: list[tuple[Client, yaml.Node, str]] = []
        node = top.get("clients")
        if node is not None and not isinstance(node, yaml.SequenceNode):
            raise self.error(node, "clients", "must be a list of clients (name, key_env, models)")
        for i, item in enumerate(node.value if node is not None else ()):
            where = f"clients[{i}]"
            fields = self.mapping(item, where, {"name", "key_env", "models"}, required={"name", "key_env"})
            values = {k: self.scalar(n, f"{where}.{k}") for k, n in fields.items() if k != "models"}
            name, key_env = self.string(values, fields, where, "name"), self.string(values, fields, where, "key_env")
            if not _CLIENT_NAME.fullmatch(name):
                raise self.error(fields["name"], f"{where}.name", "must be 1-64 letters, digits, '_', '.' or '-'")
            models = tuple(self.glob(n, f"{where}.models[{j}]", p)
                           for j, (n, p) in enumerate(self.items(fields, where, "models")))
            found.append((Client(name=name, key_env=key_env, models=models), fields["key_env"], f"{where}.key_env"))
        for key_node, name in self.items(top, "", "client_keys_env"):
            found.append((Client(name=name, key_env=name), key_node, "client_keys_env"))
        names: set[str] = set()
        envs: set[str] = set()
        for client, key_node, where in found:
            if client.name in names:
                raise self.error(key_node, where, f"a second client named {client.name!r}")
            if client.key_env in envs:
                raise self.error(key_node, where, f"{client.key_env} is already another client's key")
            names.add(client.name)
            envs.add(client.key_env)
            if client.key_env not in environ:
                if require_env:
                    raise self.error(key_node, where, f"environment variable {client.key_env} is not set")
                unset.append(client.key_env)
        keys = [environ.get(c.key_env) for c, _, _ in found]
        for i, ((client, key_node, where), key) in enumerate(zip(found, keys, strict=True)):
            if key and key in keys[:i]:
                other = found[keys.index(key)][0].key_env
                raise self.error(key_node, where, f"{client.key_env} holds the same key as {other}: requests "
                                 "could not be told apart")
        return [c for c, _, _ in found]

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, where, "must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def string(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str) -> str:
        value = values[key]
        if not isinstance(value, str) or not value:
            raise self.error(nodes[key], f"{where}.{key}", "must be a non-empty string")
        return value

    def url(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str) -> str | None:
        if values.get(key) is None:
            return None
        value = self.string(values, nodes, where, key)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise self.error(nodes[key], f"{where}.{key}", f"must be an http(s) base URL, got {value!r}")
        return value.rstrip("/")

    def base_url(self, nodes: dict[str, yaml.Node], where: str, key: str, url: str | None) -> None:
        """A whole endpoint pasted where a base URL belongs would get its path twice."""
        appended, wrong = URL_KEYS[key].appended, URL_KEYS[key].pasted
        tail = next((t for t in wrong if url and url.lower().endswith(t)), None)
        if url and tail:
            raise self.error(nodes[key], f"{where}.{key}", f"is a base URL: the bridge appends {appended} itself; "
                             f"write {url[:-len(tail)]}")

    def choice(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str,
               allowed: tuple[str, ...], default: str | None) -> Any:
        if values.get(key) is None:
            return default
        if values[key] not in allowed:
            raise self.error(nodes[key], f"{where}.{key}", f"must be one of {', '.join(allowed)}")
        return values[key]

    def string_list(self, nodes: dict[str, yaml.Node], where: str, key: str) -> tuple[str, ...]:
        return tuple(item for _, item in self.items(nodes, where, key))

    def items(self, nodes: dict[str, yaml.Node], where: str, key: str) -> list[tuple[yaml.Node, str]]:
        """A list of non-empty strings, each with its node (for line numbers)."""
        path = f"{where}.{key}" if where else key
        node = nodes.get(key)
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, path, "must be a list of strings")
        out = []
        for i, item_node in enumerate(node.value):
            item = self.scalar(item_node, f"{path}[{i}]")
            if not isinstance(item, str) or not item:
                raise self.error(item_node, f"{path}[{i}]", "must be a non-empty string")
            out.append((item_node, item))
        return out

    def glob(self, node: yaml.Node, where: str, pattern: str) -> str:
        """A model-name glob (``*``, ``?``, ``[…]``); an unclosed bracket or blank text is a mistake."""
        depth_ok = pattern.count("[") == pattern.count("]")
        if not pattern.strip() or pattern != pattern.strip() or not depth_ok:
            raise self.error(node, where, f"bad pattern {pattern!r}: use *, ? and balanced [...] around a model name")
        return pattern

    def prompt_cache(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str) -> bool:
        """``auto`` (the default) or ``off``; YAML reads a bare ``off`` as false, which means the same."""
        value = values.get("prompt_cache")
        if isinstance(value, bool):
            value = "auto" if value else "off"
        return bool(self.choice({"prompt_cache": value}, nodes, where, "prompt_cache", ("auto", "off"), "auto")
                    == "auto")

    def websocket(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str,
                  offers: tuple[Offer, ...]) -> bool:
        """Whether the endpoint's Responses URL serves WebSocket: by default the Codex backend's does."""
        responses = [o for o in offers if o.format == "responses"]
        if "websocket" not in values:
            return any(o.flavor == "codex" for o in responses)
        if not isinstance(values["websocket"], bool):
            raise self.error(nodes["websocket"], f"{where}.websocket", "must be true or false")
        if values["websocket"] and not responses:
            raise self.error(nodes["websocket"], f"{where}.websocket",
                             "is for an endpoint that speaks Responses (url_codex, or url_openai with "
                             "openai_preference: responses)")
        return bool(values["websocket"])

    def rewrite(self, node: yaml.Node | None, where: str) -> dict[str, Any]:
        if node is None:
            return {}
        fields = self.mapping(node, where, _REWRITE_KEYS, required=set())
        values = {k: self.scalar(n, f"{where}.{k}") for k, n in fields.items() if k != "rules"}
        for key in ("enabled", "show_target_model"):
            if key in values and not isinstance(values[key], bool):
                raise self.error(fields[key], f"{where}.{key}", "must be true or false")
        rules_node = fields.get("rules")
        if rules_node is not None and not isinstance(rules_node, yaml.SequenceNode):
            raise self.error(rules_node, f"{where}.rules", "must be a list of {source_pattern, target_model}")
        rules = []
        for i, rule_node in enumerate(rules_node.value if rules_node is not None else ()):
            rule_where = f"{where}.rules[{i}]"
            rule = self.mapping(rule_node, rule_where, _RULE_KEYS, required=_RULE_KEYS)
            rule_values = {k: self.scalar(n, f"{rule_where}.{k}") for k, n in rule.items()}
            source = self.string(rule_values, rule, rule_where, "source_pattern")
            rules.append((self.glob(rule["source_pattern"], f"{rule_where}.source_pattern", source),
                          self.string(rule_values, rule, rule_where, "target_model")))
        if not values.get("enabled", True):
            rules = []
        return {"rewrite": tuple(rules), "show_target_model": bool(values.get("show_target_model", False))}

    def log_settings(self, node: yaml.Node | None, base_dir: str) -> LogSettings:
        if node is None:
            return LogSettings()
        fields = self.mapping(node, "logging", _LOG_KEYS, required=set())
        values = {k: self.scalar(n, f"logging.{k}") for k, n in fields.items()}
        file = self.string(values, fields, "logging", "file") if values.get("file") is not None else None
        return LogSettings(
            level=self.choice(values, fields, "logging", "level", LEVELS, "info"),
            log_request_body=self.choice(values, fields, "logging", "log_request_body", BODY_MODES, "none"),
            log_response_body=self.choice(values, fields, "logging", "log_response_body", BODY_MODES, "none"),
            file=os.path.join(base_dir, file) if file else None,  # relative to the config file
            max_bytes=self.positive_int(values, fields, "logging", "max_bytes", 10 * 1024 * 1024),
            backups=self.positive_int(values, fields, "logging", "backups", 3))

    def metrics(self, node: yaml.Node | None) -> MetricsSettings | None:
        """``metrics``: a mapping (``{}`` for the defaults) turns the route on; its path must be one no
        client API and no probe of the bridge uses."""
        if node is None:
            return None
        fields = self.mapping(node, "metrics", {"path", "max_models"}, required=set())
        values = {k: self.scalar(n, f"metrics.{k}") for k, n in fields.items()}
        path = "/metrics"
        if values.get("path") is not None:
            path = self.string(values, fields, "metrics", "path")
            if not path.startswith("/") or not path.rstrip("/") or any(c in path for c in "?# \t\r\n"):
                raise self.error(fields["path"], "metrics.path", f"must be a path such as /metrics, got {path!r}")
            path = path.rstrip("/")  # as requests are matched (routing.py)
            if path in (*PROBE_PATHS, *READY_PATHS):
                raise self.error(fields["path"], "metrics.path", f"{path} is already the bridge's health or "
                                 "readiness route")
            if formats.answering(path, {}) or any(f.recognise("GET", path, "", {}) for f in formats.FORMATS.values()):
                raise self.error(fields["path"], "metrics.path", f"{path} is under a client API's paths: choose "
                                 "one outside /v1 and /v1beta, such as /metrics")
        return MetricsSettings(path=path, max_models=self.positive_int(values, fields, "metrics", "max_models", 100))

    def codex_login(self, auth: str | None, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str,
                    environ: Any, require_env: bool) -> str | None:
        """``auth: codex-login``: the Codex home whose ``auth.json`` holds a usable ChatGPT login (read now,
        so a missing or logged-out login stops the bridge at startup, naming the file)."""
        if auth != CODEX_LOGIN:
            if values.get("codex_home") is not None:
                raise self.error(nodes["codex_home"], f"{where}.codex_home", f"only with auth: {CODEX_LOGIN}")
            return None
        if {k for k in URL_KEYS if values.get(k) is not None} != {"url_codex"}:
            raise self.error(nodes["auth"], f"{where}.auth", f"{CODEX_LOGIN} is the ChatGPT login of the Codex "
                             "backend: the endpoint needs url_codex and no other URL")
        if values.get("api_key_env") is not None:
            raise self.error(nodes["api_key_env"], f"{where}.api_key_env",
                             f"not with auth: {CODEX_LOGIN}: the key comes from the login")
        headers = nodes.get("headers")
        for key_node, _ in headers.value if isinstance(headers, yaml.MappingNode) else ():
            if str(key_node.value).lower() == "chatgpt-account-id":
                raise self.error(key_node, f"{where}.headers.{key_node.value}",
                                 f"not with auth: {CODEX_LOGIN}: the account id comes from the login")
        given = self.string(values, nodes, where, "codex_home") if values.get("codex_home") is not None else None
        base = os.path.dirname(os.path.abspath(self.path))
        home = os.path.join(base, os.path.expanduser(given)) if given else default_home(environ)
        if require_env:
            try:
                read_login(home)
            except LoginError as e:
                raise self.error(nodes.get("codex_home") or nodes["auth"],
                                 f"{where}.{'codex_home' if given else 'auth'}", e.message) from None
        return os.path.abspath(home)

    def seconds(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str) -> float | None:
        value = values.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise self.error(nodes[key], f"{where}.{key}", "must be a positive number of seconds")
        return float(value)

    def integer(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str,
                default: int) -> int:
        value = values.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(nodes[key], f"{where}.{key}", "must be an integer")
        return value

    def headers(self, nodes: dict[str, yaml.Node], where: str) -> tuple[tuple[str, str], ...]:
        node = nodes.get("headers")
        if node is None:
            return ()
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{where}.headers", "must be a mapping of header names to values")
        out = []
        for key_node, value_node in node.value:
            name, path = str(key_node.value), f"{where}.headers.{key_node.value}"
            value = self.scalar(value_node, path)
            if not _HEADER_NAME.fullmatch(name):
                raise self.error(key_node, path, "is not a valid header name")
            if name.lower() in _SECRET_HEADERS:
                raise self.error(key_node, path, "carries a credential: name its env var in api_key_env instead")
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise self.error(value_node, path, "must be a string")
            out.append((name, str(value)))
        return tuple(out)

    def query(self, nodes: dict[str, yaml.Node], where: str) -> tuple[tuple[str, str], ...]:
        node = nodes.get("query")
        if node is None:
            return ()
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{where}.query", "must be a mapping of parameter names to values")
        out = []
        for key_node, value_node in node.value:
            name, path = str(key_node.value), f"{where}.query.{key_node.value}"
            value = self.scalar(value_node, path)
            if not name.strip():
                raise self.error(key_node, path, "is not a parameter name")
            if name.lower() in KEY_PARAMS:
                raise self.error(key_node, path, "carries a credential: name its env var in api_key_env instead")
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise self.error(value_node, path, "must be a string")
            out.append((name, str(value)))
        return tuple(out)

    def positive_int(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str,
                     default: Any) -> Any:
        if values.get(key) is None:
            return default
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.error(nodes[key], f"{where}.{key}" if where else key, "must be a positive integer")
        return value


def reverse_target(path: str) -> str:
    """``./bridge.sh run``'s reverse target: the origin of the endpoint tried first (where a request the
    bridge does not handle, say Ollama's own ``/api/…``, most likely belongs). Raises :class:`ConfigError`."""
    ep = load_config(path, require_env=False).endpoints[0]
    url = urlsplit(ep.offers[0].base)
    return f"{url.scheme}://{url.netloc}"


if __name__ == "__main__":  # python -m addon.config reverse-target FILE
    import sys
    try:
        print(reverse_target(sys.argv[2]))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
