"""Load and validate ``config.yaml`` into typed objects. Every mistake names file, key path and reason.

Shape (grows with the routing work; unknown keys are rejected so a typo never passes silently)::

    endpoints:                      # tried in order; the first serves every model for now
      - name: local
        url_openai: http://127.0.0.1:11434/v1     # OpenAI base URL (…/chat/completions is appended)
        url_anthropic: http://127.0.0.1:8001      # Anthropic base URL (/v1/messages is appended)
        url_codex: https://chatgpt.com/backend-api/codex  # the ChatGPT Codex backend (/responses appended)
        openai_preference: chat_completions       # or responses: which API url_openai is spoken in
        api_key_env: LOCAL_API_KEY                # env var holding the key; never the key itself
        auth: bearer                              # bearer | x-api-key (default: the format's own)
        default_max_tokens: 8192                  # when a client sends none and Anthropic needs one
        max_tokens_limit: 16384                   # clamp a client's max_tokens to what the model allows
        drop_params: [reasoning_effort]           # upstream body fields this server rejects
        headers: {chatgpt-account-id: "…"}        # extra request headers (no secrets: use api_key_env)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["ConfigError", "Endpoint", "Config", "load_config", "parse_config"]


class ConfigError(ValueError):
    """A configuration mistake; the message reads ``file:line: key.path: reason``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    name: str
    url_anthropic: str | None = None
    url_openai: str | None = None
    url_codex: str | None = None
    openai_preference: str = "chat_completions"
    api_key_env: str | None = None
    auth: str | None = None
    default_max_tokens: int = 8192
    max_tokens_limit: int | None = None
    drop_params: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def api_key(self) -> str | None:
        """The key, read from the environment at the moment of use (never stored in the config)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: str
    endpoints: tuple[Endpoint, ...]


_TOP_KEYS = {"endpoints"}
_ENDPOINT_KEYS = {"name", "url_anthropic", "url_openai", "url_codex", "openai_preference", "api_key_env", "auth",
                  "default_max_tokens", "max_tokens_limit", "drop_params", "headers"}
_NON_SCALAR = {"drop_params", "headers"}
_SECRET_HEADERS = {"authorization", "x-api-key", "proxy-authorization", "cookie"}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PREFERENCES = ("chat_completions", "responses")
_AUTH = ("bearer", "x-api-key")


def load_config(path: str, environ: dict[str, str] | None = None) -> Config:
    """Read and validate the file. Raises :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as f:
            node = yaml.compose(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if node is None:
        raise ConfigError(f"{path}: the file is empty; it needs an 'endpoints' list")
    return parse_config(node, path, os.environ if environ is None else environ)


def parse_config(node: yaml.Node, path: str, environ: Any) -> Config:
    v = _Validator(path)
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
        urls = {k: v.url(values, fields, where, k) for k in ("url_anthropic", "url_openai", "url_codex")}
        if not any(urls.values()):
            raise v.error(ep_node, where, "needs url_anthropic, url_openai or url_codex")
        key_env = values.get("api_key_env")
        if key_env is not None:
            key_env = v.string(values, fields, where, "api_key_env")
            if key_env not in environ:
                raise v.error(fields["api_key_env"], f"{where}.api_key_env",
                              f"environment variable {key_env} is not set")
        endpoints.append(Endpoint(
            name=name, api_key_env=key_env, **urls,
            openai_preference=v.choice(values, fields, where, "openai_preference", _PREFERENCES, "chat_completions"),
            auth=v.choice(values, fields, where, "auth", _AUTH, None),
            default_max_tokens=v.positive_int(values, fields, where, "default_max_tokens", 8192),
            max_tokens_limit=v.positive_int(values, fields, where, "max_tokens_limit", None),
            drop_params=v.string_list(fields, where, "drop_params"),
            headers=v.headers(fields, where),
        ))
    return Config(path=path, endpoints=tuple(endpoints))


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

    def choice(self, values: dict[str, Any], nodes: dict[str, yaml.Node], where: str, key: str,
               allowed: tuple[str, ...], default: str | None) -> Any:
        if values.get(key) is None:
            return default
        if values[key] not in allowed:
            raise self.error(nodes[key], f"{where}.{key}", f"must be one of {', '.join(allowed)}")
        return values[key]

    def string_list(self, nodes: dict[str, yaml.Node], where: str, key: str) -> tuple[str, ...]:
        node = nodes.get(key)
        if node is None:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{where}.{key}", "must be a list of strings")
        items = [self.scalar(n, f"{where}.{key}[{i}]") for i, n in enumerate(node.value)]
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise self.error(node.value[i], f"{where}.{key}[{i}]", "must be a non-empty string")
        return tuple(items)

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
            if not _HEADER_NAME.match(name):
                raise self.error(key_node, path, "is not a valid header name")
            if name.lower() in _SECRET_HEADERS:
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
            raise self.error(nodes[key], f"{where}.{key}", "must be a positive integer")
        return value
