"""The ChatGPT login (``auth: codex-login``): ``addon/codex_login.py`` (the file, Codex's refresh rule, the
token answer, the write) and ``addon/codex_session.py`` (refresh once for concurrent requests, 401
recovery, adoption of what another process wrote), against a real local token endpoint
(``tests/mock_token.py``) and real files; the config keys; the plan's credentials.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from addon import codex_login as cl
from addon.codex_session import CodexSession, Logins, LoginUnavailable
from addon.config import ConfigError, parse_config
from addon.formats import Operation
from addon.plan import plan
from tests.mock_token import ACCOUNT, MockTokenEndpoint, Tokens, auth_json, jwt, new_tokens, write_auth

NOW = 1_800_000_000.0


def login_of(tokens: Tokens, **kw: Any) -> cl.Login:
    return cl.parse_login(auth_json(tokens, **kw), "/x/auth.json")


# --- the file -------------------------------------------------------------------------------------


def test_a_codex_file_is_read() -> None:
    tokens = new_tokens(NOW + 3600)
    login = login_of(tokens, api_key="FAKE-OPENAI-KEY-0123456789")
    assert (login.access_token, login.refresh_token, login.id_token) == tokens.values()
    assert login.account_id == ACCOUNT and login.api_key == "FAKE-OPENAI-KEY-0123456789"
    assert login.last_refresh == pytest.approx(cl.parse_time("2026-12-06T07:41:26.482364007Z"))
    assert login.headers() == [("authorization", f"Bearer {tokens.access_token}"), ("chatgpt-account-id", ACCOUNT)]
    assert set(login.secrets) == {*tokens.values(), "FAKE-OPENAI-KEY-0123456789"}


def test_without_an_account_id_no_account_header_is_sent() -> None:
    login = login_of(new_tokens(NOW + 3600), account=None)
    assert [name for name, _ in login.headers()] == ["authorization"]


def test_a_fedramp_account_sends_its_header() -> None:
    tokens = new_tokens(NOW + 3600)
    identity = jwt({"https://api.openai.com/auth": {"chatgpt_account_id": ACCOUNT,
                                                     "chatgpt_account_is_fedramp": True}})
    login = login_of(Tokens(tokens.access_token, tokens.refresh_token, identity))
    assert ("x-openai-fedramp", "true") in login.headers()


def _bad(mutate: Any) -> str:
    data = json.loads(auth_json(new_tokens(NOW + 3600)))
    mutate(data)
    return json.dumps(data, indent=2)


BAD_FILES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (_bad(lambda d: d.update(auth_mode="apikey", tokens=None, OPENAI_API_KEY="x")), "auth_mode 'apikey'"),
    (_bad(lambda d: d.update(tokens=None)), "no ChatGPT tokens (logged out"),
    (_bad(lambda d: d.pop("tokens")), "no ChatGPT tokens"),
    (_bad(lambda d: d["tokens"].update(id_token="not-a-jwt")), "tokens.id_token is not a JWT"),
    (_bad(lambda d: d["tokens"].pop("access_token")), "tokens.access_token is missing"),
    (_bad(lambda d: d["tokens"].update(refresh_token="")), "tokens.refresh_token is missing"),
    (_bad(lambda d: d["tokens"].update(account_id=7)), "tokens.account_id is not a string"),
    (_bad(lambda d: d.update(last_refresh="yesterday")), "last_refresh 'yesterday' is not an RFC 3339 time"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_FILES, ids=[r for _, r in BAD_FILES])
def test_a_file_codex_would_refuse_or_that_holds_no_chatgpt_login_is_named(tmp_path: Path, text: str,
                                                                            reason: str) -> None:
    (tmp_path / "auth.json").write_text(text)
    with pytest.raises(cl.LoginError) as e:
        cl.read_login(str(tmp_path))
    assert e.value.message.startswith(f"{tmp_path / 'auth.json'}: ")
    assert reason in e.value.message and "codex login" in e.value.message


def test_a_missing_file_names_codex_login_and_keyring_storage(tmp_path: Path) -> None:
    with pytest.raises(cl.LoginError) as e:
        cl.read_login(str(tmp_path))
    message = e.value.message
    assert str(tmp_path / "auth.json") in message and "does not exist" in message
    assert "`codex login`" in message and "keyring" in message and 'cli_auth_credentials_store = "file"' in message
    with pytest.raises(cl.LoginError, match=r"the directory .* does not exist either"):
        cl.read_login(str(tmp_path / "nowhere"))


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "auth.json").mkdir()  # root reads any file; a directory cannot be read as one
    with pytest.raises(cl.LoginError, match=re.escape(f"{tmp_path / 'auth.json'}: cannot read the ChatGPT login")
                       + ".*the user who ran `codex login`"):
        cl.read_login(str(tmp_path))


# --- JWTs and Codex's refresh rule -----------------------------------------------------------------------


def test_jwt_exp_is_read_from_the_payload_unverified() -> None:
    assert cl.jwt_exp(jwt({"exp": 1234})) == 1234.0
    assert cl.jwt_exp(jwt({"sub": "x"})) is None
    assert cl.jwt_exp(jwt({"exp": "soon"})) is None
    assert cl.jwt_exp("opaque-token") is None
    assert cl.jwt_exp("a.%%%.c") is None
    assert cl.jwt_exp("a." + "eyJleHAiOjF9" + ".c") == 1.0  # base64url without padding


def _with_exp(seconds_from_now: float | None, last_refresh: str = "2026-12-06T07:41:26Z") -> cl.Login:
    return login_of(new_tokens(None if seconds_from_now is None else NOW + seconds_from_now), last_refresh=last_refresh)


def _ago(seconds: float) -> str:
    return cl.rfc3339_nanos(int((NOW - seconds) * 1e9))


@pytest.mark.parametrize(("login", "reason"), [
    (_with_exp(3 * 60), "proactive_expiry"),  # codex-websocket.md §2.4: the brackets Codex's runs found
    (_with_exp(7 * 60), None),
    (_with_exp(5 * 60), "proactive_expiry"),  # exp <= now + 5 min
    (_with_exp(5 * 60 + 1), None),
    (_with_exp(-60), "proactive_expiry"),
    (_with_exp(None, _ago(8 * 86400 + 300)), "scheduled"),  # no exp: last_refresh older than 8 days
    (_with_exp(None, _ago(7 * 86400 + 23 * 3600)), None),
    (_with_exp(86400, _ago(9 * 86400)), None),  # exp wins over an old last_refresh
], ids=["exp in 3 min", "exp in 7 min", "exp in 5 min", "exp in 5 min 1 s", "expired", "no exp, 8 d 5 min",
        "no exp, 7 d 23 h", "exp in 1 d, 9 d old"])
def test_the_refresh_rule_is_codexs(login: cl.Login, reason: str | None) -> None:
    assert cl.refresh_reason(login, NOW) == reason


def test_the_token_request_is_codexs_json() -> None:
    login = login_of(new_tokens(NOW))
    body = cl.refresh_body(login, "proactive_expiry")
    assert body == (b'{"client_id": "app_EMoamEEZ73f0CkXaXp7hrann", "grant_type": "refresh_token", '
                    b'"refresh_reason": "proactive_expiry", "refresh_token": "' + login.refresh_token.encode() + b'"}')


@pytest.mark.parametrize(("status", "body", "permanent", "words"), [
    (401, {"error": {"code": "token_expired"}}, True, "was refused (HTTP 401, token_expired)"),
    (400, {"error": {"code": "refresh_token_reused", "message": "…"}}, True, "was already used"),
    (401, {"error": {"code": "refresh_token_expired"}}, True, "has expired"),
    (400, {"error": {"code": "refresh_token_invalidated"}}, True, "was revoked"),
    (400, {"error": "invalid_grant", "error_description": "…"}, True, "was refused (HTTP 400, invalid_grant)"),
    (400, {"code": "REFRESH_TOKEN_REUSED"}, True, "was already used"),
    (400, {"error": "invalid_request"}, False, "answered HTTP 400, invalid_request"),
    (500, "<html>oops</html>", False, "answered HTTP 500"),
    (503, {"error": {"code": "a secret? " + "x" * 80}}, False, "answered HTTP 503"),
])
def test_token_failures_are_told_apart(status: int, body: Any, permanent: bool, words: str) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with pytest.raises(cl.RefreshFailed) as e:
        cl.refreshed_tokens(status, raw)
    assert e.value.permanent is permanent and words in e.value.message
    assert ("codex login" in e.value.message) is permanent
    assert "secret" not in e.value.message  # only a code-like word from the answer is repeated


def test_a_token_answer_may_leave_out_tokens_that_stay() -> None:
    assert cl.refreshed_tokens(200, b'{"access_token": "a.b.c", "token_type": "Bearer"}') == {"access_token": "a.b.c"}
    with pytest.raises(cl.RefreshFailed, match="without an access token"):
        cl.refreshed_tokens(200, b'{"id_token": "x"}')
    with pytest.raises(cl.RefreshFailed, match="not a JWT"):
        cl.refreshed_tokens(200, b'{"access_token": "a", "id_token": "x"}')


def test_times_are_rfc3339_utc_with_nanoseconds() -> None:
    assert cl.rfc3339_nanos(1_765_006_886_482_364_007) == "2025-12-06T07:41:26.482364007Z"
    assert cl.rfc3339_nanos(1_765_006_886_000_000_000) == "2025-12-06T07:41:26.000000000Z"
    assert cl.parse_time("2025-12-06T07:41:26.482364007Z") == pytest.approx(1_765_006_886.482364007)
    assert cl.parse_time("2025-12-06T08:41:26+01:00") == 1_765_006_886
    assert cl.parse_time("2025-13-06T07:41:26Z") is None


# --- the write, byte for byte ----------------------------------------------------------------------


CODEX_WRITTEN = """{
  "auth_mode": "chatgpt",
  "OPENAI_API_KEY": null,
  "tokens": {
    "id_token": "%(id)s",
    "access_token": "%(access)s",
    "refresh_token": "%(refresh)s",
    "account_id": "acct-4f1e2d3c-test"
  },
  "last_refresh": "%(when)s",
  "agent_identity": {
    "name": "Zoë",
    "scopes": []
  }
}"""


def test_write_back_writes_what_codex_writes(tmp_path: Path) -> None:
    old, new = new_tokens(NOW), new_tokens(NOW + 3600)
    path = tmp_path / "auth.json"
    path.write_text(CODEX_WRITTEN % {"id": old.id_token, "access": old.access_token, "refresh": old.refresh_token,
                                     "when": "2026-12-06T07:41:26.482364007Z"}, encoding="utf-8")
    path.chmod(0o644)
    inode = path.stat().st_ino
    before = cl.read_login(str(tmp_path))
    data = cl.with_tokens(before, {"access_token": new.access_token, "refresh_token": new.refresh_token,
                                   "id_token": new.id_token}, 1_765_006_886_482_364_007)
    written = cl.write_back(str(tmp_path), before, data)
    expected = CODEX_WRITTEN % {"id": new.id_token, "access": new.access_token, "refresh": new.refresh_token,
                                "when": "2025-12-06T07:41:26.482364007Z"}
    assert path.read_bytes() == expected.encode("utf-8")  # same keys, same order, 2 spaces, no newline, UTF-8
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # even though it was 0644
    assert path.stat().st_ino != inode  # a new file renamed over the old one: never half written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.json", "auth.json.lock", "auth.lock"]  # locks stay
    assert written.access_token == new.access_token and written.last_refresh is not None


def test_write_back_keeps_tokens_the_answer_left_out(tmp_path: Path) -> None:
    old, new = new_tokens(NOW), new_tokens(NOW + 3600)
    write_auth(tmp_path, old)
    before = cl.read_login(str(tmp_path))
    cl.write_back(str(tmp_path), before, cl.with_tokens(before, {"access_token": new.access_token}, 0))
    after = cl.read_login(str(tmp_path))
    assert (after.access_token, after.refresh_token, after.id_token) == (new.access_token, old.refresh_token,
                                                                         old.id_token)
    assert json.loads((tmp_path / "auth.json").read_text())["last_refresh"] == "1970-01-01T00:00:00.000000000Z"


def test_write_back_adopts_a_file_another_process_rewrote(tmp_path: Path) -> None:
    old, ours, theirs = new_tokens(NOW), new_tokens(NOW + 3600), new_tokens(NOW + 3600)
    write_auth(tmp_path, old)
    before = cl.read_login(str(tmp_path))
    write_auth(tmp_path, theirs)  # Codex refreshed meanwhile
    on_disk = (tmp_path / "auth.json").read_bytes()
    got = cl.write_back(str(tmp_path), before, cl.with_tokens(before, {"access_token": ours.access_token}, 0))
    assert got.access_token == theirs.access_token
    assert (tmp_path / "auth.json").read_bytes() == on_disk  # not written
    assert not (tmp_path / "auth.json.lock").exists()  # as Codex: the file lock is not even taken


def test_write_back_waits_for_the_lock_another_writer_holds(tmp_path: Path) -> None:
    old, new = new_tokens(NOW), new_tokens(NOW + 3600)
    write_auth(tmp_path, old)
    before = cl.read_login(str(tmp_path))
    fd = os.open(tmp_path / "auth.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # Codex is writing
    done = threading.Event()
    writer = threading.Thread(target=lambda: (cl.write_back(str(tmp_path), before, cl.with_tokens(
        before, {"access_token": new.access_token}, 0)), done.set()))
    writer.start()
    time.sleep(0.3)
    assert not done.is_set() and cl.read_login(str(tmp_path)).access_token == old.access_token
    os.close(fd)
    writer.join(5)
    assert done.is_set() and cl.read_login(str(tmp_path)).access_token == new.access_token


def test_write_back_does_not_bring_back_a_login_that_was_logged_out(tmp_path: Path) -> None:
    old = new_tokens(NOW)
    write_auth(tmp_path, old)
    before = cl.read_login(str(tmp_path))
    (tmp_path / "auth.json").unlink()  # codex logout
    with pytest.raises(cl.LoginError, match="does not exist"):
        cl.write_back(str(tmp_path), before, cl.with_tokens(before, {"access_token": "x"}, 0))
    assert not (tmp_path / "auth.json").exists()


# --- the session: when, how often, and with whose tokens ---------------------------------------------------


class World:
    """A Codex home, a token endpoint and a clock the test moves."""

    def __init__(self, home: Path, exp_in: float | None, **endpoint: Any) -> None:
        self.home = home
        self.first = new_tokens(None if exp_in is None else time.time() + exp_in)
        write_auth(home, self.first)
        self.endpoint = MockTokenEndpoint(self.first.refresh_token, **endpoint)
        self.changes = 0

    def session(self) -> CodexSession:
        return CodexSession(str(self.home), on_change=self._changed, token_url=self.endpoint.url)

    def _changed(self) -> None:
        self.changes += 1

    def on_disk(self) -> cl.Login:
        return cl.read_login(str(self.home))


@pytest.fixture
def world(tmp_path: Path) -> Any:
    def make(exp_in: float | None = 3600, **endpoint: Any) -> World:
        w = World(tmp_path / "codex", exp_in, **endpoint)
        w.endpoint.__enter__()
        made.append(w)
        return w
    made: list[World] = []
    yield make
    for w in made:
        w.endpoint.__exit__()


def bearer(headers: list[tuple[str, str]]) -> str:
    return dict(headers)["authorization"].removeprefix("Bearer ")


def run(coro: Any) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            return await coro(client)
    return asyncio.run(go())


def test_a_fresh_login_is_used_as_it_is(world: Any) -> None:
    w = world(exp_in=3600)
    session = w.session()
    headers = run(lambda client: session.headers(client))
    assert headers == [("authorization", f"Bearer {w.first.access_token}"), ("chatgpt-account-id", ACCOUNT)]
    assert w.endpoint.requests == [] and session.refreshes == 0


def test_concurrent_requests_share_one_proactive_refresh(world: Any) -> None:
    w = world(exp_in=120, delay=0.3)  # within Codex's 5 minutes: refreshed before it is used
    session = w.session()

    async def many(client: httpx.AsyncClient) -> list[list[tuple[str, str]]]:
        return list(await asyncio.gather(*(session.headers(client) for _ in range(20))))
    results = run(many)
    assert len(w.endpoint.requests) == 1 and session.refreshes == 1
    assert w.endpoint.requests[0]["json"] == {"client_id": cl.CLIENT_ID, "grant_type": "refresh_token",
                                              "refresh_reason": "proactive_expiry",
                                              "refresh_token": w.first.refresh_token}
    issued = w.endpoint.issued[0]
    assert {bearer(h) for h in results} == {issued.access_token}
    assert w.on_disk().access_token == issued.access_token  # written back: Codex keeps working
    assert set(issued.values()) <= set(session.secrets()) and set(w.first.values()) <= set(session.secrets())
    assert w.changes >= 2  # the redactor heard of the first tokens and of the new ones


def test_concurrent_401s_share_one_refresh_and_a_late_one_needs_none(world: Any) -> None:
    w = world(exp_in=3600, delay=0.3)
    session = w.session()
    refused = [("authorization", f"Bearer {w.first.access_token}")]

    async def many(client: httpx.AsyncClient) -> list[list[tuple[str, str]]]:
        first = await asyncio.gather(*(session.renew(client, refused) for _ in range(10)))
        late = await session.renew(client, refused)  # its request was sent before the refresh
        return [*first, late]
    results = run(many)
    assert len(w.endpoint.requests) == 1
    assert w.endpoint.requests[0]["json"]["refresh_reason"] == "unauthorized_recovery"
    assert {bearer(h) for h in results} == {w.endpoint.issued[0].access_token}


def test_a_401_to_the_token_a_401_just_got_is_not_refreshed_again(world: Any) -> None:
    """A backend that refuses every token (an account it does not serve) would cost a refresh per request."""
    w = world(exp_in=3600)
    session = w.session()

    async def twice(client: httpx.AsyncClient) -> list[tuple[str, str]] | None:
        renewed = await session.renew(client, [("authorization", f"Bearer {w.first.access_token}")])
        assert renewed is not None
        return await session.renew(client, renewed)
    assert run(twice) is None  # the backend's 401 goes to the client
    assert len(w.endpoint.requests) == 1


def test_a_401_after_another_process_refreshed_adopts_its_file_without_a_refresh(world: Any) -> None:
    w = world(exp_in=3600)
    session = w.session()
    theirs = new_tokens(time.time() + 3600)
    write_auth(w.home, theirs)  # Codex refreshed
    headers = run(lambda client: session.renew(client, [("authorization", f"Bearer {w.first.access_token}")]))
    assert bearer(headers) == theirs.access_token and w.endpoint.requests == []
    assert theirs.refresh_token in session.secrets()


def test_a_file_rewritten_while_the_refresh_is_in_flight_is_adopted(world: Any) -> None:
    theirs = new_tokens(time.time() + 3600)

    def codex_writes(_issued: Tokens) -> None:  # while our token request is in flight
        write_auth(w.home, theirs)
    w = world(exp_in=60, on_issue=codex_writes)
    session = w.session()
    headers = run(lambda client: session.headers(client))
    assert len(w.endpoint.requests) == 1
    assert bearer(headers) == theirs.access_token  # theirs, not the tokens our refresh got
    assert w.on_disk().access_token == theirs.access_token  # and the file keeps theirs


def test_a_spent_refresh_token_is_a_clear_401_until_codex_login(world: Any) -> None:
    w = world(exp_in=3600)
    w.endpoint.accept("rt-someone-else-has")  # the bridge's refresh token was used elsewhere
    session = w.session()
    before = (w.home / "auth.json").read_bytes()
    refused = [("authorization", f"Bearer {w.first.access_token}")]
    with pytest.raises(LoginUnavailable) as e:
        run(lambda client: session.renew(client, refused))
    assert e.value.status == 401
    message = e.value.message
    assert str(w.home / "auth.json") in message and "was already used" in message and "codex login" in message
    with pytest.raises(LoginUnavailable):  # remembered: the token endpoint is not asked again
        run(lambda client: session.renew(client, refused))
    assert len(w.endpoint.requests) == 1
    assert (w.home / "auth.json").read_bytes() == before  # left untouched, as Codex leaves it
    relogin = new_tokens(time.time() + 3600)
    write_auth(w.home, relogin)  # codex login
    assert bearer(run(lambda client: session.headers(client))) == relogin.access_token


def test_a_spent_refresh_token_because_codex_won_the_race_adopts_codexs_tokens(world: Any) -> None:
    theirs = new_tokens(time.time() + 3600)
    w = world(exp_in=60)
    w.endpoint.fail = (400, {"error": {"code": "refresh_token_reused"}})

    async def go(client: httpx.AsyncClient) -> list[tuple[str, str]]:
        session = w.session()
        original = w.endpoint._answer

        def answer(*args: Any) -> Any:  # Codex writes its refresh while ours is refused
            write_auth(w.home, theirs)
            return original(*args)
        w.endpoint._answer = answer  # type: ignore[method-assign]
        return await session.headers(client)
    assert bearer(run(go)) == theirs.access_token


def test_a_token_endpoint_down_keeps_the_old_token_while_it_lasts_and_retries_later(world: Any) -> None:
    w = world(exp_in=120)
    w.endpoint.fail = (503, {"error": "unavailable"})
    session = w.session()
    assert bearer(run(lambda client: session.headers(client))) == w.first.access_token  # as Codex does
    assert bearer(run(lambda client: session.headers(client))) == w.first.access_token
    assert len(w.endpoint.requests) == 1  # not every request hammers it: again after 10 s
    with pytest.raises(LoginUnavailable) as e:  # the backend refused the old one: nothing left to send
        run(lambda client: session.renew(client, [("authorization", f"Bearer {w.first.access_token}")]))
    assert e.value.status == 502 and "HTTP 503" in e.value.message


def test_an_expired_token_with_the_token_endpoint_down_is_a_502(world: Any) -> None:
    w = world(exp_in=-10)
    w.endpoint.fail = (500, {})
    session = w.session()
    with pytest.raises(LoginUnavailable) as e:
        run(lambda client: session.headers(client))
    assert e.value.status == 502 and "could not be refreshed" in e.value.message


def test_a_client_that_goes_away_cannot_cancel_a_refresh_half_done(world: Any) -> None:
    w = world(exp_in=60, delay=0.4)
    session = w.session()

    async def go(client: httpx.AsyncClient) -> None:
        task = asyncio.create_task(session.headers(client))
        await asyncio.sleep(0.1)
        task.cancel()  # the only waiter leaves while the token request is in flight
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            await asyncio.sleep(0.05)
            if session.refreshes:
                break
    run(go)
    assert w.on_disk().access_token == w.endpoint.issued[0].access_token  # the spent refresh token's successor kept


def test_a_logged_out_file_at_runtime_is_a_clear_401(world: Any) -> None:
    w = world(exp_in=3600)
    session = w.session()
    (w.home / "auth.json").write_text(json.dumps({"auth_mode": "chatgpt", "OPENAI_API_KEY": None, "tokens": None}))
    with pytest.raises(LoginUnavailable) as e:
        run(lambda client: session.headers(client))
    assert e.value.status == 401 and "no ChatGPT tokens" in e.value.message


def test_logins_are_one_session_per_codex_home_across_reloads(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_auth(tmp_path / name, new_tokens(time.time() + 3600))
    logins = Logins()
    logins.use([str(tmp_path / "a"), str(tmp_path / "a")])
    first = logins.get(str(tmp_path / "a"))
    logins.use([str(tmp_path / "a"), str(tmp_path / "b")])
    assert logins.get(str(tmp_path / "a")) is first and logins.get(str(tmp_path / "b")) is not None
    assert logins.get(None) is None and len(logins.secrets()) == 6


# --- the config -------------------------------------------------------------------------------------


def _config(text: str, tmp_path: Path, environ: dict[str, str] | None = None, require_env: bool = True) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return parse_config(yaml.compose(text), str(path), environ or {}, require_env)


def test_codex_login_config(tmp_path: Path) -> None:
    write_auth(tmp_path / "home", new_tokens(time.time() + 3600))
    cfg = _config("endpoints:\n  - name: chatgpt\n    url_codex: https://chatgpt.com/backend-api/codex\n"
                  "    auth: codex-login\n    codex_home: home\n", tmp_path)
    assert cfg.endpoints[0].codex_home == str(tmp_path / "home")  # relative to the config file
    cfg = _config("endpoints:\n  - name: c\n    url_codex: https://chatgpt.com/backend-api/codex\n"
                  "    auth: codex-login\n", tmp_path, {"CODEX_HOME": str(tmp_path / "home")})
    assert cfg.endpoints[0].codex_home == str(tmp_path / "home")  # $CODEX_HOME, as Codex


@pytest.mark.parametrize(("extra", "error"), [
    ("    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n    codex_home: nowhere\n",
     "config.yaml:5: endpoints[0].codex_home: {home}/nowhere/auth.json: no ChatGPT login there"),
    ("    url_openai: https://api.openai.com/v1\n    auth: codex-login\n",
     "config.yaml:4: endpoints[0].auth: codex-login is the ChatGPT login of the Codex backend: the endpoint needs "
     "url_codex and no other URL"),
    ("    url_codex: https://c.test/backend-api/codex\n    url_openai: https://api.openai.com/v1\n"
     "    auth: codex-login\n",
     "endpoints[0].auth: codex-login is the ChatGPT login of the Codex backend"),
    ("    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n    api_key_env: HOME\n",
     "config.yaml:5: endpoints[0].api_key_env: not with auth: codex-login: the key comes from the login"),
    ("    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n    headers: {ChatGPT-Account-ID: x}\n",
     "config.yaml:5: endpoints[0].headers.ChatGPT-Account-ID: not with auth: codex-login"),
    ("    url_codex: https://c.test/backend-api/codex\n    codex_home: /tmp\n",
     "config.yaml:4: endpoints[0].codex_home: only with auth: codex-login"),
])
def test_codex_login_config_mistakes(tmp_path: Path, extra: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config("endpoints:\n  - name: c\n" + extra, tmp_path, {"CODEX_HOME": str(tmp_path / "none"), "HOME": "/"})
    assert error.format(home=tmp_path) in str(e.value)


def test_a_missing_login_at_startup_names_file_key_and_codex_login(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        _config("endpoints:\n  - name: c\n    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n",
                tmp_path, {"CODEX_HOME": str(tmp_path)})
    text = str(e.value)
    assert text.startswith(f"{tmp_path / 'config.yaml'}:4: endpoints[0].auth: {tmp_path / 'auth.json'}: ")
    assert "codex login" in text and "keyring" in text
    # replaying recorded flows needs no login
    assert _config("endpoints:\n  - name: c\n    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n",
                   tmp_path, {"CODEX_HOME": str(tmp_path)}, require_env=False).endpoints[0].codex_home


def test_the_plan_sends_no_client_credential_to_a_codex_login_endpoint(tmp_path: Path) -> None:
    """The relay adds the login's headers; the client's own key (the Codex CLI's, passed through) goes nowhere."""
    write_auth(tmp_path / "home", new_tokens(time.time() + 3600))
    cfg = _config("endpoints:\n  - name: c\n    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n"
                  "    codex_home: home\n", tmp_path)
    body = json.dumps({"model": "gpt-5.5", "input": "hi", "stream": True, "store": False,
                       "instructions": "be brief"}).encode()
    p = plan(cfg, Operation("responses", "generate"), "/v1/responses?key=client-query-key",
             {"authorization": "Bearer client-key-1234567890", "content-type": "application/json"},
             body, lambda prefix: prefix + "1", 0)
    assert p.summary["mode"] == "pass-through" and p.answer is None
    assert "authorization" in p.drop_headers and "authorization" not in p.set_headers
    assert p.url == "https://c.test/backend-api/codex/responses"


def test_the_self_test_shows_the_login_and_sends_it_as_it_is(tmp_path: Path) -> None:
    from addon.check import build, check_endpoint
    tokens = new_tokens(time.time() + 3600)
    write_auth(tmp_path / "home", tokens)
    cfg = _config("endpoints:\n  - name: c\n    url_codex: https://c.test/backend-api/codex\n    auth: codex-login\n"
                  "    codex_home: home\n", tmp_path)
    ep = cfg.endpoints[0]
    (_, key_row) = check_endpoint(ep, offline=True)
    assert key_row.ok and key_row.detail.startswith(f"ChatGPT login in {tmp_path / 'home' / 'auth.json'}, access "
                                                    "token valid for ")
    _, headers, _, _ = build(ep, "responses", "https://c.test/backend-api/codex", "codex", "gpt-5.5", True)
    assert headers["authorization"] == f"Bearer {tokens.access_token}" and headers["chatgpt-account-id"] == ACCOUNT
    write_auth(tmp_path / "home", new_tokens(time.time() - 60))
    (_, key_row) = check_endpoint(ep, offline=True)
    assert not key_row.ok and "expired" in key_row.detail and "the check does not" in key_row.detail
