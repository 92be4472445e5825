"""The ChatGPT login end to end (``auth: codex-login``): a real mitmdump in front of the mock Codex backend
(which takes only the access tokens the login holds, ``MockUpstream.codex_tokens``) and a mock token
endpoint issuing short-lived unsigned JWTs (``tests/mock_token.py``, reached through Codex's own
``CODEX_REFRESH_TOKEN_URL_OVERRIDE``).

The official SDKs complete requests across a token expiry (one refresh, proactive) and across a 401
(one refresh, recovered: the client never sees it); a file Codex rewrote is adopted without a refresh;
a spent refresh token is a clear 401 naming ``codex login``; the rewritten ``auth.json`` is read by the
real Codex CLI (``codex login status``); the real Claude Code completes a task across a token expiry;
and no token reaches the bridge's log, mitmdump's output, a recorded flow or an answer.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import openai
import pytest
import yaml
from mitmproxy import io as mitm_io

from addon import codex_login as cl
from tests.conftest import ROOT, ConfiguredBridge, require_cli
from tests.mock_token import ACCOUNT, MockTokenEndpoint, Tokens, new_tokens, write_auth
from tests.mock_upstream import CODEX_PATH, MockUpstream, Reply, ToolCallSpec

CODEX = Path(os.environ.get("CODEX_BIN") or ROOT / ".tmp/codex/node_modules/.bin/codex")
CLAUDE = Path(os.environ.get("CLAUDE_BIN") or ROOT / ".tmp/claude-code/node_modules/.bin/claude")
README = (ROOT / "README.md").read_text()
API_KEY = "FAKEOPENAIAPIKEY-5e6f-not-a-real-key"  # OPENAI_API_KEY in auth.json: a secret the bridge never sends


class Login:
    """A Codex home with a ChatGPT login, the token endpoint that refreshes it, the mock backend that takes
    its tokens, and a bridge with an ``auth: codex-login`` endpoint on it."""

    def __init__(self, tmp_path: Path, mock: MockUpstream, bridge_config: Callable[..., ConfiguredBridge],
                 exp_in: float, lifetime: float = 3600.0, accepted: bool = True, extra: dict[str, Any] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.home = tmp_path / "codex-home"
        self.first = new_tokens(time.time() + exp_in)
        self.exp = time.time() + exp_in
        write_auth(self.home, self.first, api_key=API_KEY)
        self.mock = mock
        mock.codex_account = ACCOUNT
        mock.codex_tokens = {self.first.access_token} if accepted else set()
        self.token = MockTokenEndpoint(self.first.refresh_token, lifetime=lifetime, on_issue=self._issued)
        self.token.__enter__()
        config = {"endpoints": [{"name": "chatgpt", "url_codex": f"{mock.url}/backend-api/codex",
                                 "auth": "codex-login", "codex_home": str(self.home)}], **(extra or {})}
        self.bridge = bridge_config(config, env={cl.TOKEN_URL_ENV: self.token.url}, fresh_process=True, args=args)

    def _issued(self, tokens: Tokens) -> None:  # the backend takes what the token endpoint issued
        self.mock.codex_tokens = {*(self.mock.codex_tokens or ()), tokens.access_token}

    def close(self) -> None:
        self.bridge.stop()
        self.token.__exit__()

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.bridge.url, api_key="unused", max_retries=0)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.bridge.url}/v1", api_key="unused", max_retries=0)

    def backend_tokens(self) -> list[str]:
        """The bearer token of every request the mock Codex backend got, in order."""
        return [r.headers.get("authorization", "").removeprefix("Bearer ") for r in self.mock.requests
                if r.path.startswith(CODEX_PATH)]

    def on_disk(self) -> cl.Login:
        return cl.read_login(str(self.home))


@pytest.fixture
def login(tmp_path: Path, mock: MockUpstream, bridge_config: Callable[..., ConfiguredBridge]
          ) -> Iterator[Callable[..., Login]]:
    made: list[Login] = []

    def make(**kw: Any) -> Login:
        made.append(Login(tmp_path, mock, bridge_config, **kw))
        return made[-1]
    yield make
    for m in made:
        m.close()


def ask_all(lg: Login, n: int = 2) -> list[str]:
    """Requests from every client shape at once (n of each): Anthropic streamed and not, Chat streamed,
    Responses streamed. Each returns its text; any failure raises."""
    def anthropic_plain() -> str:
        msg = lg.anthropic().messages.create(model="gpt-5.5", max_tokens=64,
                                             messages=[{"role": "user", "content": "hi"}])
        return "".join(b.text for b in msg.content if b.type == "text")

    def anthropic_stream() -> str:
        with lg.anthropic().messages.stream(model="gpt-5.5", max_tokens=64,
                                            messages=[{"role": "user", "content": "hi"}]) as s:
            return s.get_final_text()

    def chat_stream() -> str:
        chunks = lg.openai().chat.completions.create(model="gpt-5.5", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}])
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    def responses_stream() -> str:
        with lg.openai().responses.stream(model="gpt-5.5", input="hi") as s:
            return s.get_final_response().output_text

    calls = [anthropic_plain, anthropic_stream, chat_stream, responses_stream] * n
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as e:  # reported below, with the others
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    errors = [r for r in results if not isinstance(r, str)]
    assert not errors, errors
    return results


def assert_written_as_codex_writes(lg: Login, tokens: Tokens) -> None:
    raw = (lg.home / "auth.json").read_bytes()
    data = json.loads(raw)
    assert list(data) == ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]
    assert list(data["tokens"]) == ["id_token", "access_token", "refresh_token", "account_id"]
    assert data["tokens"] == {"id_token": tokens.id_token, "access_token": tokens.access_token,
                              "refresh_token": tokens.refresh_token, "account_id": ACCOUNT}
    assert data["OPENAI_API_KEY"] == API_KEY and data["auth_mode"] == "chatgpt"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", data["last_refresh"])
    assert raw == json.dumps(data, indent=2, ensure_ascii=False).encode() and not raw.endswith(b"\n")
    assert stat.S_IMODE((lg.home / "auth.json").stat().st_mode) == 0o600
    assert {"auth.lock", "auth.json.lock"} <= {p.name for p in lg.home.iterdir()}
    assert not [p for p in lg.home.iterdir() if p.name.startswith(".auth-")]  # no temporary file left


def test_sdks_complete_requests_across_a_token_expiry_with_one_refresh(login: Callable[..., Login]) -> None:
    lg = login(exp_in=cl.PROACTIVE_MARGIN + 5)  # not yet within Codex's 5 minutes: used as it is
    assert all(ask_all(lg, 1))
    assert lg.token.requests == [] and set(lg.backend_tokens()) == {lg.first.access_token}
    time.sleep(max(0.0, lg.exp - cl.PROACTIVE_MARGIN - time.time()) + 0.5)  # now it is: refreshed before use
    before = len(lg.backend_tokens())
    assert all(ask_all(lg, 3))  # 12 requests at once
    assert len(lg.token.requests) == 1  # one refresh for all of them
    assert lg.token.requests[0]["json"]["refresh_reason"] == "proactive_expiry"
    assert lg.token.requests[0]["json"]["refresh_token"] == lg.first.refresh_token
    issued = lg.token.issued[0]
    assert set(lg.backend_tokens()[before:]) == {issued.access_token}
    assert all(r.headers.get("chatgpt-account-id") == ACCOUNT for r in lg.mock.requests)
    assert_written_as_codex_writes(lg, issued)
    assert "ChatGPT login in" in lg.bridge.wait_for_log("refreshed (proactive_expiry)")


def test_a_401_from_the_backend_is_recovered_with_one_refresh(login: Callable[..., Login]) -> None:
    lg = login(exp_in=3600, accepted=False)  # valid by its exp, but the backend no longer takes it
    assert all(ask_all(lg, 2))  # 8 requests at once, every one answered: none saw the 401
    assert len(lg.token.requests) == 1
    assert lg.token.requests[0]["json"]["refresh_reason"] == "unauthorized_recovery"
    issued = lg.token.issued[0]
    tokens = lg.backend_tokens()
    assert tokens.count(issued.access_token) == 8  # every request sent again with the new token
    assert set(tokens) == {lg.first.access_token, issued.access_token}
    assert_written_as_codex_writes(lg, issued)
    assert "status 401" not in lg.bridge.log() and "status 200" in lg.bridge.log()


def test_a_file_codex_rewrote_is_used_without_a_refresh(login: Callable[..., Login]) -> None:
    lg = login(exp_in=3600)
    assert all(ask_all(lg, 1))
    theirs = new_tokens(time.time() + 3600)
    write_auth(lg.home, theirs)  # Codex refreshed: its new access token, and the old one revoked
    lg.token.accept(theirs.refresh_token)
    lg.mock.codex_tokens = {theirs.access_token}
    assert all(ask_all(lg, 1))
    assert lg.token.requests == []
    assert lg.backend_tokens()[-4:] == [theirs.access_token] * 4


def test_a_spent_refresh_token_tells_the_client_to_run_codex_login(login: Callable[..., Login]) -> None:
    lg = login(exp_in=3600, accepted=False)
    lg.token.accept("rt-spent-elsewhere")  # e.g. a proxy that refreshed and kept the result to itself
    before = (lg.home / "auth.json").read_bytes()
    with pytest.raises(anthropic.AuthenticationError) as e:
        lg.anthropic().messages.create(model="gpt-5.5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    message = e.value.message
    assert "could not be refreshed" in message and "was already used" in message and "codex login" in message
    assert str(lg.home / "auth.json") in message
    assert e.value.response.headers["x-should-retry"] == "false"  # final: retrying cannot help
    with pytest.raises(openai.AuthenticationError, match="codex login"):
        lg.openai().chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "hi"}])
    assert len(lg.token.requests) == 1  # asked once: a spent token stays spent
    assert (lg.home / "auth.json").read_bytes() == before
    relogin = new_tokens(time.time() + 3600)  # the user runs `codex login`
    write_auth(lg.home, relogin)
    lg.mock.codex_tokens = {relogin.access_token}
    assert all(ask_all(lg, 1))
    assert lg.backend_tokens()[-4:] == [relogin.access_token] * 4


def test_a_missing_login_stops_the_bridge_at_startup(tmp_path: Path, bridge_config: Callable[..., ConfiguredBridge]
                                                     ) -> None:
    config = {"endpoints": [{"name": "chatgpt", "url_codex": "https://chatgpt.com/backend-api/codex",
                             "auth": "codex-login", "codex_home": str(tmp_path / "empty")}]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError) as e:
        bridge_config(config, fresh_process=True)
    assert f"endpoints[0].codex_home: {tmp_path / 'empty' / 'auth.json'}: no ChatGPT login there" in str(e.value)
    assert "codex login" in str(e.value) and "keyring" in str(e.value)


def test_the_refreshed_file_is_read_by_the_codex_cli(login: Callable[..., Login]) -> None:
    codex = require_cli(CODEX, "Codex CLI", "@openai/codex")
    lg = login(exp_in=60)  # refreshed on the first request
    assert all(ask_all(lg, 1))
    assert len(lg.token.requests) == 1
    assert_written_as_codex_writes(lg, lg.token.issued[0])
    env = {"PATH": os.environ["PATH"], "HOME": str(lg.home.parent), "CODEX_HOME": str(lg.home)}
    run = subprocess.run([str(codex), "login", "status"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Logged in using ChatGPT" in run.stdout + run.stderr
    # and the same CLI refuses what the bridge must never write (the oracle can fail)
    data = json.loads((lg.home / "auth.json").read_text())
    data["tokens"]["id_token"] = "not-a-jwt"
    (lg.home / "auth.json").write_text(json.dumps(data, indent=2))
    run = subprocess.run([str(codex), "login", "status"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode != 0 and "Logged in using ChatGPT" not in run.stdout + run.stderr


def test_the_bridge_and_the_codex_cli_renew_one_login_in_turn(login: Callable[..., Login], tmp_path: Path) -> None:
    """Two processes, one file: the bridge refreshes and writes; the real Codex CLI (whose model requests go
    nowhere: it refreshes before it sends) finds that token about to expire, refreshes with the refresh
    token the bridge wrote, and writes; the bridge then uses Codex's tokens without a refresh of its own.
    No refresh token is ever used twice (the token endpoint would answer refresh_token_reused)."""
    codex = require_cli(CODEX, "Codex CLI", "@openai/codex")
    lg = login(exp_in=60)
    ours_exp = time.time() + cl.PROACTIVE_MARGIN + 6  # good for a few seconds, then due for both
    ours, theirs = new_tokens(ours_exp), new_tokens(time.time() + 3600)
    lg.token.queue(ours)
    lg.token.queue(theirs)
    assert all(ask_all(lg, 1))
    assert lg.on_disk().access_token == ours.access_token and len(lg.token.requests) == 1
    time.sleep(max(0.0, ours_exp - cl.PROACTIVE_MARGIN - time.time()) + 0.5)
    (lg.home / "config.toml").write_text('openai_base_url = "http://127.0.0.1:9/v1"\n'
                                         'chatgpt_base_url = "http://127.0.0.1:9/backend-api/"\n'
                                         "[analytics]\nenabled = false\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(lg.home),
           cl.TOKEN_URL_ENV: lg.token.url}
    proc = subprocess.Popen([str(codex), "exec", "--skip-git-repo-check", "--json", "hi"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lg.on_disk().access_token != theirs.access_token:
            time.sleep(0.1)
    finally:  # its model requests would be retried for a long while: it has done its part
        os.killpg(proc.pid, 9)
        proc.wait(10)
    first, second = lg.token.requests
    assert first["json"]["refresh_token"] == lg.first.refresh_token and "codex" not in str(first["headers"])
    assert second["json"]["refresh_token"] == ours.refresh_token  # Codex used the token the bridge wrote
    assert second["json"]["refresh_reason"] == "proactive_expiry"
    assert second["headers"].get("originator", second["headers"].get("Originator")) == "codex_exec"
    assert lg.on_disk().access_token == theirs.access_token
    lg.mock.codex_tokens = {theirs.access_token}
    assert all(ask_all(lg, 1))
    assert len(lg.token.requests) == 2  # the bridge took Codex's tokens from the file
    assert lg.backend_tokens()[-4:] == [theirs.access_token] * 4


def test_claude_code_completes_a_task_across_a_token_expiry(login: Callable[..., Login], tmp_path: Path) -> None:
    """The backend stops taking the token while Claude Code runs its tool (the token expired there): the
    second turn's request gets a 401, the bridge refreshes once and sends it again; Claude Code never
    knows."""
    claude = require_cli(CLAUDE, "Claude Code", "@anthropic-ai/claude-code")
    lg = login(exp_in=3600)
    command = "echo bridge-ok > proof.txt && cat proof.txt"
    lg.mock.next_reply(Reply(text="I'll run it.", reasoning="The user wants a file.", signature="enc-login-1",
                             tool_calls=[ToolCallSpec("call_login1", "Bash", {
                                 "command": command, "description": "Write the proof file"})]))
    lg.mock.next_reply(Reply(text="The command printed bridge-ok."))
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": lg.bridge.url,
           "ANTHROPIC_API_KEY": "unused", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    proc = subprocess.Popen([str(claude), "-p", "Write bridge-ok to proof.txt with a shell command.",
                             "--output-format", "json", "--allowedTools", "Bash"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert lg.mock.wait_for_requests(1, timeout=120), "Claude Code sent nothing"
        lg.mock.codex_tokens = set()  # the first turn is on its way back: from now on the token is expired
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    result = json.loads(out)
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "The command printed bridge-ok."
    assert (work / "proof.txt").read_text() == "bridge-ok\n"
    assert len(lg.token.requests) == 1 and lg.token.requests[0]["json"]["refresh_reason"] == "unauthorized_recovery"
    issued = lg.token.issued[0]
    assert lg.backend_tokens() == [lg.first.access_token, lg.first.access_token, issued.access_token]
    assert lg.bridge.log().count("status 200") == 2 and "status 401" not in lg.bridge.log()
    assert_written_as_codex_writes(lg, issued)


def test_claude_code_stops_at_once_on_a_spent_refresh_token_and_says_run_codex_login(
        login: Callable[..., Login], tmp_path: Path) -> None:
    """Without ``x-should-retry: false`` Claude Code retried the 401 for minutes, in silence."""
    claude = require_cli(CLAUDE, "Claude Code", "@anthropic-ai/claude-code")
    lg = login(exp_in=3600, accepted=False)
    lg.token.accept("rt-spent-elsewhere")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "ANTHROPIC_BASE_URL": lg.bridge.url,
           "ANTHROPIC_API_KEY": "unused", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    run = subprocess.run([str(claude), "-p", "hi", "--output-format", "json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 1, run.stdout + run.stderr
    result = json.loads(run.stdout)["result"]
    assert result.startswith("Failed to authenticate. API Error: 401 the ChatGPT login in ")
    assert "the refresh token was already used" in result and "run `codex login` to sign in again" in result
    assert len(lg.token.requests) == 1 and len(lg.backend_tokens()) == 1  # one attempt, no retry


def test_no_token_reaches_a_log_a_flow_or_an_answer(login: Callable[..., Login], tmp_path: Path) -> None:
    """Everything turned up (bodies logged in full at debug level to a file, mitmproxy's own log at debug
    with flow_detail 1, every flow recorded), requests across a proactive refresh and a 401 recovery, and a
    backend that echoes the token it got, in an error and in a streamed answer."""
    flow_file = tmp_path / "recorded.flow"
    logging_config = {"logging": {"level": "debug", "log_request_body": "full", "log_response_body": "full",
                                  "file": str(tmp_path / "bridge.log")}}
    nxt = new_tokens(time.time() + 3600)
    lg = login(exp_in=60, extra=logging_config,
               args=("-w", str(flow_file), "--set", "termlog_verbosity=debug", "--set", "flow_detail=1"))
    lg.token.queue(nxt)  # the tokens the refresh will get: so the backend can echo the one it is sent
    secrets = {"first access token": lg.first.access_token, "first refresh token": lg.first.refresh_token,
               "first id token": lg.first.id_token, "OPENAI_API_KEY": API_KEY,
               "new access token": nxt.access_token, "new refresh token": nxt.refresh_token,
               "new id token": nxt.id_token}
    answers: list[str] = []
    lg.mock.next_reply(Reply(status=400, error_message=f"bad token {nxt.access_token}, refresh {nxt.refresh_token}"))
    with pytest.raises(anthropic.BadRequestError) as e:
        lg.anthropic().messages.create(model="gpt-5.5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    answers.append(json.dumps(e.value.body))
    # one text delta (a key split across two deltas is not recognised: README, Redaction)
    lg.mock.next_reply(Reply(text=f"your token is {nxt.access_token} and {nxt.id_token}", piece=100_000))
    with lg.anthropic().messages.stream(model="gpt-5.5", max_tokens=64,
                                        messages=[{"role": "user", "content": "hi"}]) as s:
        answers.append(s.get_final_text())
    lg.mock.codex_tokens = set()  # then a 401: refreshed again, recovered
    answers += ask_all(lg, 1)
    # not vacuous: the tokens were used, refreshed, sent and echoed
    assert len(lg.token.requests) == 2 and lg.token.requests[0]["json"]["refresh_token"] == lg.first.refresh_token
    assert nxt.access_token in lg.backend_tokens()
    assert "[REDACTED]" in answers[0] and "[REDACTED]" in answers[1]
    newest = lg.token.issued[-1]
    secrets |= {"newest access token": newest.access_token, "newest refresh token": newest.refresh_token,
                "newest id token": newest.id_token}
    lg.bridge.stop()
    log_file = (tmp_path / "bridge.log").read_text()
    assert "format conversion" in log_file and "request body from the client" in log_file
    flows = list(mitm_io.FlowReader(flow_file.open("rb")).stream())
    assert len(flows) == 6
    places = {"bridge log file": log_file, "mitmdump output": lg.bridge.log(),
              "recorded flow file": flow_file.read_bytes().decode("latin-1"),
              "recorded flow state": json.dumps([_strings(f.get_state()) for f in flows]),
              "answers": "\n".join(answers)}
    leaks = [f"{what} in {where}" for where, text in places.items() for what, value in secrets.items()
             if value in text]
    assert not leaks, leaks


def _strings(value: Any) -> Any:
    """Every str and bytes value of a flow's state, as text (bytes read as latin-1)."""
    if isinstance(value, dict):
        return [_strings(k) for k in value] + [_strings(v) for v in value.values()]
    if isinstance(value, list | tuple):
        return [_strings(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def test_the_readmes_chatgpt_config_works_as_written(tmp_path: Path, mock: MockUpstream,
                                                     bridge_config: Callable[..., ConfiguredBridge]) -> None:
    """The block of "Claude Code on your ChatGPT subscription", the mock at chatgpt.com's address and the
    login found through ``$CODEX_HOME``: a Claude Code-shaped request reaches the backend as the README says."""
    section = README[README.index("### Claude Code on your ChatGPT subscription"):README.index("### Providers")]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    (ep,) = yaml.safe_load(textwrap.dedent(block))["endpoints"]
    assert ep["auth"] == "codex-login" and "codex_home" not in ep and "api_key_env" not in ep
    origin = urlsplit(ep["url_codex"])
    config = textwrap.dedent(block).replace(f"{origin.scheme}://{origin.netloc}", mock.url)  # as YAML: lines kept
    home = tmp_path / "codex-home"
    tokens = new_tokens(time.time() + 3600)
    write_auth(home, tokens)
    mock.codex_tokens, mock.codex_account = {tokens.access_token}, ACCOUNT
    proc = bridge_config(config, env={"CODEX_HOME": str(home)}, fresh_process=True)
    mock.next_reply(Reply(text="hello from ChatGPT"))
    client = anthropic.Anthropic(base_url=proc.url, api_key="unused", max_retries=0)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_text() == "hello from ChatGPT"
    sent = mock.last
    assert sent.path == CODEX_PATH and sent.json["model"] == "gpt-5.5"
    assert sent.headers["authorization"] == f"Bearer {tokens.access_token}"
    assert sent.headers["chatgpt-account-id"] == ACCOUNT and "unused" not in sent.all_header_values
    # the startup error the README quotes, for the same block without a login
    (home / "auth.json").unlink()
    with pytest.raises(RuntimeError) as e:
        bridge_config(config, env={"CODEX_HOME": str(home)}, fresh_process=True)
    assert f"config.yaml:4: endpoints[0].auth: {home / 'auth.json'}: no ChatGPT login there (the file does not " \
           "exist). Run `codex login`" in str(e.value)
