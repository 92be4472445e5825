"""Named clients (issue 18): ``clients`` gives each key a name and, optionally, the models it may use;
logs, recorded flows and the summary say who asked, never the key. The older ``client_keys_env`` list
keeps working, each variable a client named after it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import anthropic
import openai
import pytest
import yaml
from mitmproxy import io

from addon.config import ConfigError, parse_config
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.mock_upstream import MockUpstream

KEYS = {"ALICE_KEY": "ck-alice-5f0e3b9a71c2", "BOB_KEY": "ck-bob-8d2c61e04ab7", "OLD_KEY": "ck-old-c3a9e7f10d55"}


def cfg(text: str, environ: dict[str, str] | None = None):
    return parse_config(yaml.compose(textwrap.dedent(text)), "config.yaml", KEYS if environ is None else environ)


ENDPOINT = "endpoints:\n  - name: a\n    url_openai: http://127.0.0.1:9/v1\n"


def test_clients_and_the_older_list_are_one_set_of_named_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfg(ENDPOINT + """\
        clients:
          - {name: alice, key_env: ALICE_KEY, models: ["claude-*"]}
          - {name: bob, key_env: BOB_KEY}
        client_keys_env: [OLD_KEY]
        """.replace("        ", ""))
    assert [(c.name, c.key_env, c.models) for c in config.clients] == [
        ("alice", "ALICE_KEY", ("claude-*",)), ("bob", "BOB_KEY", ()), ("OLD_KEY", "OLD_KEY", ())]
    assert config.client_keys_env == ("ALICE_KEY", "BOB_KEY", "OLD_KEY")  # keys required, and redacted
    assert set(config.secret_envs()) >= {"ALICE_KEY", "BOB_KEY", "OLD_KEY"}
    for env, key in KEYS.items():  # keys are read from the environment when used: a rotated one counts at once
        monkeypatch.setenv(env, key)
    assert config.client_by_key(KEYS["BOB_KEY"]).name == "bob"  # type: ignore[union-attr]
    assert config.client_by_key("ck-nobody") is None
    alice = config.client("alice")
    assert alice is not None and alice.may_use("claude-opus-5") and not alice.may_use("gpt-5")


@pytest.mark.parametrize(("clients", "message"), [
    ("clients: {name: alice}", "clients: must be a list of clients"),
    ("clients:\n  - {name: alice}", "clients[0].key_env: is required"),
    ("clients:\n  - {name: al ice, key_env: ALICE_KEY}", "clients[0].name: must be 1-64 letters"),
    ("clients:\n  - {name: alice, key_env: ALICE_KEY, token: x}", "clients[0].token: unknown key"),
    ("clients:\n  - {name: alice, key_env: ALICE_KEY}\n  - {name: alice, key_env: BOB_KEY}",
     "clients[1].key_env: a second client named 'alice'"),
    ("clients:\n  - {name: alice, key_env: ALICE_KEY}\nclient_keys_env: [ALICE_KEY]",
     "client_keys_env: ALICE_KEY is already another client's key"),
    ("clients:\n  - {name: carol, key_env: CAROL_KEY}",
     "clients[0].key_env: environment variable CAROL_KEY is not set"),
    ("clients:\n  - {name: alice, key_env: ALICE_KEY, models: ['claude-[']}", "clients[0].models[0]: bad pattern"),
])
def test_client_mistakes_fail_at_startup_with_file_line_key_and_reason(clients: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^config\.yaml:\d+: " + message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        cfg(ENDPOINT + clients + "\n")


def test_two_variables_holding_one_key_cannot_be_told_apart() -> None:
    with pytest.raises(ConfigError, match=r"clients\[1\].key_env: BOB_KEY holds the same key as ALICE_KEY"):
        cfg(ENDPOINT + "clients:\n  - {name: alice, key_env: ALICE_KEY}\n  - {name: bob, key_env: BOB_KEY}\n",
            {"ALICE_KEY": "same-key-0123456789", "BOB_KEY": "same-key-0123456789"})


@pytest.fixture
def team(bridge_config, mock: MockUpstream, tmp_path: Path):
    config = {"clients": [{"name": "alice", "key_env": "ALICE_KEY", "models": ["claude-*"]},
                          {"name": "bob", "key_env": "BOB_KEY"}],
              "client_keys_env": ["OLD_KEY"],
              "endpoints": [{"name": "up", "url_openai": f"{mock.url}/v1", "api_key_env": UPSTREAM_KEY_ENV}]}
    flows = tmp_path / "team.flow"
    proc = bridge_config(config, env=KEYS, fresh_process=True, args=["-w", str(flows)])
    return proc, flows


def test_each_request_says_which_client_made_it_never_the_key(team, mock: MockUpstream) -> None:
    proc, flows = team
    for name, env in (("alice", "ALICE_KEY"), ("bob", "BOB_KEY"), ("OLD_KEY", "OLD_KEY")):
        mock.next_reply(text=f"hi {name}")
        client = anthropic.Anthropic(base_url=proc.url, api_key=KEYS[env], max_retries=0)
        with client.messages.stream(model="claude-x", max_tokens=20, messages=[{"role": "user", "content": "hi"}]) as s:
            assert s.get_final_text() == f"hi {name}"
        proc.wait_for_log(f"| client {name} | model claude-x")
    proc.stop()  # the flow file is complete once mitmdump has ended
    recorded = list(io.FlowReader(flows.open("rb")).stream())
    assert [f.metadata["bridge"].get("client") for f in recorded] == ["alice", "bob", "OLD_KEY"]
    assert [f.comment.rsplit(" · ", 1)[1] for f in recorded] == ["client alice", "client bob", "client OLD_KEY"]
    everything = flows.read_bytes() + proc.log().encode()
    assert not any(key.encode() in everything for key in KEYS.values()) and UPSTREAM_KEY.encode() not in everything
    assert all(json.loads(r.body)["model"] == "claude-x" for r in mock.requests)


def test_a_client_may_use_only_its_models(team, mock: MockUpstream) -> None:
    proc, _ = team
    alice = openai.OpenAI(base_url=proc.url + "/v1", api_key=KEYS["ALICE_KEY"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        alice.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 403
    assert "client alice may not use model 'gpt-5' (it may use claude-*)" in str(refused.value)
    assert mock.requests == []  # nothing went upstream
    proc.wait_for_log("| client alice | model gpt-5 | status 403")
    a = anthropic.Anthropic(base_url=proc.url, api_key=KEYS["ALICE_KEY"], max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as in_its_format:
        a.messages.create(model="gpt-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert in_its_format.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    bob = openai.OpenAI(base_url=proc.url + "/v1", api_key=KEYS["BOB_KEY"], max_retries=0)
    mock.next_reply(text="any model")
    assert bob.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}]
                                       ).choices[0].message.content == "any model"
    nobody = openai.OpenAI(base_url=proc.url + "/v1", api_key="ck-nobody-0000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        nobody.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
