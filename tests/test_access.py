"""The access rule and credential stripping (addon/access.py), as pure functions.

What reaches the client (the status and error shape in its format, on every path and mode) is checked
end to end in tests/test_hardening.py.
"""

from __future__ import annotations

import base64

import pytest

from addon.access import Forbidden, Unauthorized, check, is_loopback, offered, presented, strip, without_key_params
from addon.config import Config, parse_config
from tests.test_routing import cfg

KEY_ENV = "BRIDGE_TEST_ACCESS_KEY"
KEY = "ck-access-7d41c0ffee"
WRONG = "ck-wrong-5b1f00d"
ENDPOINTS = "endpoints:\n  - name: e\n    url_openai: http://a.test/v1\n"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(KEY_ENV, KEY)
    return cfg(f"client_keys_env: [{KEY_ENV}]\n{ENDPOINTS}", **{KEY_ENV: KEY})


@pytest.fixture
def open_config() -> Config:
    return cfg(ENDPOINTS)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("headers", [
    {"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}, {"authorization": f"bearer  {KEY} "},
    {"x-goog-api-key": KEY}, {"api-key": KEY}, {"proxy-authorization": f"Bearer {KEY}"},
    {"proxy-authorization": basic("bridge", KEY)}, {"proxy-authorization": basic(KEY, "")},
], ids=lambda h: next(iter(h)))
@pytest.mark.parametrize("loopback", [True, False])
def test_a_right_key_in_any_place_clients_put_one_is_accepted(keyed: Config, headers: dict[str, str],
                                                             loopback: bool) -> None:
    assert check(keyed, headers, "http://b/v1/messages", loopback=loopback) is None


def test_a_right_key_in_the_key_parameter_is_accepted(keyed: Config) -> None:
    assert check(keyed, {}, f"http://b/v1beta/models/m:generateContent?key={KEY}", loopback=False) is None


@pytest.mark.parametrize("headers", [
    {}, {"x-api-key": WRONG}, {"authorization": f"Bearer {WRONG}"}, {"authorization": KEY},
    {"x-api-key": ""}, {"authorization": "Bearer "}, {"x-api-key": KEY + "x"}, {"authorization": f"Basic {KEY}"},
    {"cookie": f"key={KEY}"}, {"proxy-authorization": f"Basic {KEY}"}, {"x-other": KEY},
], ids=str)
@pytest.mark.parametrize("loopback", [True, False])
def test_a_missing_or_wrong_key_is_a_401_from_anywhere(keyed: Config, headers: dict[str, str],
                                                       loopback: bool) -> None:
    """With client keys, loopback is no exception: every request needs one, in a place meant for it."""
    err = check(keyed, headers, "http://b/v1/chat/completions", loopback=loopback)
    assert isinstance(err, Unauthorized) and err.status == 401
    assert KEY not in err.message and WRONG not in err.message


def test_a_tunnel_opened_with_a_key_lets_its_requests_in(keyed: Config) -> None:
    assert check(keyed, {}, "http://b/anything", loopback=False, tunnel_authorized=True) is None


def test_keys_are_read_at_request_time(keyed: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "rotated-key-0001")
    assert isinstance(check(keyed, {"x-api-key": KEY}, "", loopback=True), Unauthorized)
    assert check(keyed, {"x-api-key": "rotated-key-0001"}, "", loopback=True) is None


def test_any_of_several_keys_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CK_ONE", "key-one-aaaa")
    monkeypatch.setenv("CK_TWO", "key-two-bbbb")
    config = cfg(f"client_keys_env: [CK_ONE, CK_TWO]\n{ENDPOINTS}", CK_ONE="key-one-aaaa", CK_TWO="key-two-bbbb")
    for key in ("key-one-aaaa", "key-two-bbbb"):
        assert check(config, {"authorization": f"Bearer {key}"}, "", loopback=False) is None
    assert isinstance(check(config, {"authorization": "Bearer key-three"}, "", loopback=False), Unauthorized)


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1", "localhost"])
def test_without_keys_loopback_is_served(open_config: Config, peer: str) -> None:
    assert is_loopback(peer)
    assert check(open_config, {}, "http://b/api/generate", loopback=is_loopback(peer)) is None


@pytest.mark.parametrize("peer", ["10.0.0.7", "192.168.1.2", "::ffff:10.0.0.7", "fe80::1", "0.0.0.0", "evil.test"])
def test_without_keys_anyone_else_is_refused_whatever_they_present(open_config: Config, peer: str) -> None:
    assert not is_loopback(peer)
    err = check(open_config, {"x-api-key": "anything"}, "http://b/", loopback=is_loopback(peer))
    assert isinstance(err, Forbidden) and err.status == 403


def test_presented_finds_every_credential() -> None:
    headers = [("Authorization", "Bearer tok-bearer"), ("x-api-key", "tok-x"), ("Cookie", "a=tok-c1; b=tok-c2"),
               ("Proxy-Authorization", basic("u-tok", "p-tok")), ("api-key", "tok-azure"), ("accept", "tok-no")]
    found = presented(headers, "http://h/p?key=tok-q&api_key=tok-q2&beta=true")
    assert set(found) == {"tok-bearer", "tok-x", "tok-c1", "tok-c2", "u-tok", "p-tok", "tok-azure", "tok-q", "tok-q2"}
    assert offered(headers, "http://h/p?key=tok-q") == ["tok-bearer", "tok-x", "u-tok", "p-tok", "tok-azure",
                                                        "tok-q"]


def test_strip_removes_a_client_key_wherever_it_is_and_nothing_else() -> None:
    """Issue 12 item 8: the key went on in ?key=, &api_key=, api-key, x-goog-api-key, cookie and
    proxy-authorization."""
    keys = frozenset({KEY})
    headers = [("x-api-key", KEY), ("api-key", KEY), ("x-goog-api-key", KEY), ("cookie", f"session={KEY}; a=b"),
               ("proxy-authorization", "Basic abc"), ("authorization", f"Bearer {KEY}"), ("x-custom", f"k {KEY}"),
               ("accept", "application/json"), ("authorization-hint", "none")]
    names, url = strip(headers, f"http://h/v1/x?key={KEY}&beta=true&api_key={KEY}", keys)
    assert set(names) == {"x-api-key", "api-key", "x-goog-api-key", "cookie", "proxy-authorization",
                          "authorization", "x-custom"}
    assert url == "http://h/v1/x?beta=true"
    assert strip([("accept", "x")], "http://h/p?beta=1", keys) == ([], "http://h/p?beta=1")


def test_key_parameters_leave_a_query_for_another_provider() -> None:
    assert without_key_params("?beta=true&key=abc&API_KEY=d") == "?beta=true"
    assert without_key_params("?key=abc") == ""
    assert without_key_params("?beta=true") == "?beta=true"
    assert without_key_params("") == ""


def test_config_without_client_keys_parses() -> None:
    import yaml
    config = parse_config(yaml.compose(ENDPOINTS), "c.yaml", {})
    assert config.client_keys() == frozenset()
