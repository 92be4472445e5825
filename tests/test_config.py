"""config.yaml validation: every mistake names the file, the line, the key path and the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from addon.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_shipped_config_loads() -> None:
    config = load_config(str(ROOT / "config.yaml"), environ={})
    assert [e.name for e in config.endpoints] == ["local"]
    assert config.endpoints[0].url("url_openai") == "http://127.0.0.1:11434/v1"


def test_full_endpoint(tmp_path: Path) -> None:
    path = write(tmp_path, """
endpoints:
  - name: both
    url_anthropic: https://a.example.test/
    url_openai: http://127.0.0.1:9/v1
    api_key_env: MY_KEY
    auth: x-api-key
    default_max_tokens: 100
    max_tokens_limit: 50
    drop_params: [reasoning_effort, user]
""")
    ep = load_config(path, environ={"MY_KEY": "k"}).endpoints[0]
    assert (ep.url("url_anthropic"), ep.url("url_openai")) == ("https://a.example.test", "http://127.0.0.1:9/v1")
    assert (ep.auth, ep.default_max_tokens, ep.max_tokens_limit) == ("x-api-key", 100, 50)
    assert ep.drop_params == ("reasoning_effort", "user")
    assert ep.api_key_env == "MY_KEY"


@pytest.mark.parametrize(("text", "message"), [
    ("", "config.yaml: the file is empty"),
    ("endpoints: []\n", "config.yaml:1: endpoints: must be a non-empty list"),
    ("endpoint:\n  - name: x\n", "config.yaml:1: endpoint: unknown key"),
    ("endpoints:\n  - name: x\n    url_openai: localhost:11434\n",
     "config.yaml:3: endpoints[0].url_openai: must be an http(s) base URL, got 'localhost:11434'"),
    ("endpoints:\n  - name: x\n    url_opnai: http://127.0.0.1:1\n",
     "config.yaml:3: endpoints[0].url_opnai: unknown key"),
    ("endpoints:\n  - url_openai: http://127.0.0.1:1\n", "endpoints[0].name: is required"),
    ("endpoints:\n  - name: x\n",
     "config.yaml:2: endpoints[0]: needs a base URL: url_openai, url_codex, url_anthropic"),
    ("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1\n    api_key_env: NOPE_KEY\n",
     "config.yaml:4: endpoints[0].api_key_env: environment variable NOPE_KEY is not set"),
    ("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1\n    auth: basic\n",
     "endpoints[0].auth: must be one of bearer, x-api-key"),
    ("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1\n    default_max_tokens: -1\n",
     "endpoints[0].default_max_tokens: must be a positive integer"),
    ("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1\n    drop_params: user\n",
     "endpoints[0].drop_params: must be a list of strings"),
    ("endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1\n  - name: x\n    url_openai: http://127.0.0.1:2\n",
     "config.yaml:4: endpoints[1].name: duplicate endpoint name 'x'"),
    ("endpoints: [\n", "not valid YAML"),
])
def test_mistakes_name_file_line_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), environ={})
    assert message in str(e.value)
    assert str(e.value).startswith(str(tmp_path / "config.yaml"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/nonexistent/config.yaml", environ={})


def test_mitmdump_refuses_to_start_with_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, "endpoints:\n  - name: x\n    url_openai: ftp://127.0.0.1/v1\n")
    mitmdump = Path(sys.executable).parent / "mitmdump"
    proc = subprocess.run(
        [str(mitmdump), "-s", str(ROOT / "addon" / "bridge.py"), "--set", f"bridge_config={path}",
         "--set", f"confdir={tmp_path}", "--listen-host", "127.0.0.1", "--listen-port", "0"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"{path}:3: endpoints[0].url_openai: must be an http(s) base URL" in out
    # one clean line, not a traceback around it (issue 14, item 6)
    assert "Traceback" not in out and "OptionsError" not in out and "raise " not in out, out


def test_extra_headers(tmp_path: Path) -> None:
    path = write(tmp_path, "endpoints:\n  - name: x\n    url_codex: https://chatgpt.example.test/backend-api/codex\n"
                           "    headers: {chatgpt-account-id: acc-1, originator: codex_cli_rs}\n")
    ep = load_config(path, environ={}).endpoints[0]
    assert ep.headers == (("chatgpt-account-id", "acc-1"), ("originator", "codex_cli_rs"))
    assert ep.url("url_codex") == "https://chatgpt.example.test/backend-api/codex"


@pytest.mark.parametrize(("headers", "message"), [
    ("{Authorization: Bearer x}", "endpoints[0].headers.Authorization: carries a credential"),
    ("{X-Goog-Api-Key: x}", "endpoints[0].headers.X-Goog-Api-Key: carries a credential"),
    ("{api-key: x}", "endpoints[0].headers.api-key: carries a credential"),
    ("{bad name: x}", "endpoints[0].headers.bad name: is not a valid header name"),
    ('{"x-trailing\\n": x}', "endpoints[0].headers.x-trailing\n: is not a valid header name"),
    ("[a, b]", "endpoints[0].headers: must be a mapping"),
])
def test_bad_extra_headers(tmp_path: Path, headers: str, message: str) -> None:
    path = write(tmp_path, f"endpoints:\n  - name: x\n    url_openai: http://127.0.0.1:1/v1\n    headers: {headers}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert f"config.yaml:4: {message}" in str(e.value)
