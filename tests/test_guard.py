"""The access rule as mitmproxy applies it (addon/guard.py), hook by hook (issue 12 item 7).

Remote peers are simulated on the flow (tests use loopback addresses only): every HTTP request whatever
its path, a proxy ``CONNECT``, raw TCP. End to end over loopback: tests/test_hardening.py.
"""

from __future__ import annotations

import base64
import json

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow, tutils

from addon import bodylimit
from addon.config import Config
from addon.guard import Guard
from tests.test_routing import cfg

KEY_ENV = "BRIDGE_TEST_GUARD_KEY"
KEY = "ck-guard-0a1b2c3d4e5f"
ENDPOINTS = "endpoints:\n  - name: e\n    url_openai: http://a.test/v1\n"
REMOTE = ("203.0.113.9", 40000)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(KEY_ENV, KEY)
    return cfg(f"client_keys_env: [{KEY_ENV}]\n{ENDPOINTS}", **{KEY_ENV: KEY})


def guard(config: Config, claims: bool = False) -> Guard:
    return Guard(lambda: config, lambda flow: claims)


def flow(path: str, *, method: str = "POST", headers: dict[str, str] | None = None, peer: tuple[str, int] = REMOTE,
         mode: str = "reverse:http://127.0.0.1:11434", host: str = "127.0.0.1") -> http.HTTPFlow:
    f = tflow.tflow(req=tutils.treq(method=method.encode(), path=path.encode(), host=host, port=8080,
                                    headers=http.Headers(**(headers or {})), content=b"{}"))
    f.client_conn.peername = peer
    f.client_conn.proxy_mode = ProxyMode.parse(mode)
    f.response = None
    return f


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/V1/chat/completions", "/", "/v1/embeddings",
                                  "/v1/messages", "/health"])
def test_without_keys_a_remote_peer_is_refused_on_every_path(path: str) -> None:
    f = flow(path)
    guard(cfg(ENDPOINTS)).requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers["content-type"] == "application/json"
    assert "only clients on its own machine" in f.response.get_text()
    bodylimit.forget(f.request)


@pytest.mark.parametrize("path", ["/api/generate", "/V1/chat/completions", "/v1/messages", "/anything"])
def test_without_keys_a_loopback_peer_is_let_through(path: str) -> None:
    f = flow(path, peer=("127.0.0.1", 5000))
    guard(cfg(ENDPOINTS)).requestheaders(f)
    assert f.response is None


@pytest.mark.parametrize("peer", [("127.0.0.1", 5000), REMOTE])
@pytest.mark.parametrize("path", ["/api/generate", "/V1/chat/completions", "/v1/models"])
def test_with_keys_every_request_needs_one_from_anywhere(keyed: Config, peer: tuple[str, int], path: str) -> None:
    f = flow(path, peer=peer)
    guard(keyed).requestheaders(f)
    assert f.response is not None and f.response.status_code == 401
    bodylimit.forget(f.request)
    ok = flow(path, peer=peer, headers={"x-api-key": KEY})
    guard(keyed).requestheaders(ok)
    assert ok.response is None


def test_a_refusal_speaks_the_format_its_path_names(keyed: Config) -> None:
    f = flow("/v1/messages", headers={"anthropic-version": "2023-06-01"})
    guard(keyed).requestheaders(f)
    assert f.response is not None
    body = json.loads(f.response.get_text() or "")
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert f.metadata["bridge"]["mode"] == "rejected"
    bodylimit.forget(f.request)
    other = flow("/api/generate")
    guard(keyed).requestheaders(other)
    assert other.response is not None and json.loads(other.response.get_text() or "")["error"]["message"]


def test_a_refused_request_keeps_nothing_of_its_body(keyed: Config) -> None:
    f = flow("/v1/chat/completions", headers={"content-length": str(10**9)})
    f.request.stream = True  # what mitmproxy's stream_large_bodies decides before any hook
    guard(keyed).requestheaders(f)
    assert f.request.stream is False  # a response and a streamed request cannot go together in mitmproxy
    policy = bodylimit._policies[id(f.request)]
    assert policy.discard == bodylimit.DISCARD  # dropped as it arrives, then closed (tests/test_hardening.py)
    bodylimit.forget(f.request)


def test_client_keys_are_stripped_from_requests_the_bridge_leaves_alone(keyed: Config) -> None:
    """Issue 12 item 8: on paths outside /v1/, x-api-key itself went on to the reverse target."""
    f = flow("/api/generate?key=" + KEY + "&keep=1", headers={"x-api-key": KEY, "cookie": f"k={KEY}",
                                                                "accept": "x"}, peer=("127.0.0.1", 1))
    guard(keyed).requestheaders(f)
    assert f.response is None
    assert "x-api-key" not in f.request.headers and "cookie" not in f.request.headers
    assert f.request.headers["accept"] == "x" and KEY not in f.request.url and "keep=1" in f.request.url


def test_requests_the_bridge_handles_keep_their_headers_for_it(keyed: Config) -> None:
    f = flow("/v1/models", method="GET", headers={"x-api-key": KEY}, peer=("127.0.0.1", 1))
    guard(keyed, claims=True).requestheaders(f)
    assert f.request.headers["x-api-key"] == KEY  # the bridge reads them, then drops them itself (plan.py)


def connect(host: str, headers: dict[str, str] | None = None, peer: tuple[str, int] = REMOTE) -> http.HTTPFlow:
    f = flow("", method="CONNECT", headers=headers, peer=peer, mode="regular", host=host)
    f.request.authority = f"{host}:443"
    return f


def test_without_keys_a_remote_peer_gets_no_tunnel() -> None:
    """Issue 12 item 7: in --mode regular a remote peer reached 127.0.0.1:11434 on the bridge's machine."""
    f = connect("127.0.0.1")
    guard(cfg(ENDPOINTS)).http_connect(f)
    assert f.response is not None and f.response.status_code == 403


def test_with_keys_a_tunnel_needs_proxy_credentials_except_to_the_apis_it_handles(keyed: Config) -> None:
    g = guard(keyed)
    f = connect("127.0.0.1")
    g.http_connect(f)
    assert f.response is not None and f.response.status_code == 407
    assert f.response.headers["proxy-authenticate"].startswith("Basic")
    api = connect("api.anthropic.com")  # every request inside is checked for a key at its headers
    g.http_connect(api)
    assert api.response is None and api.client_conn.id not in g._tunnels
    auth = "Basic " + base64.b64encode(f"bridge:{KEY}".encode()).decode()
    ok = connect("127.0.0.1", {"proxy-authorization": auth})
    g.http_connect(ok)
    assert ok.response is None and ok.client_conn.id in g._tunnels
    inside = flow("/anything", peer=REMOTE, mode="regular")  # a request inside that tunnel
    inside.client_conn = ok.client_conn
    g.requestheaders(inside)
    assert inside.response is None
    g.client_disconnected(ok.client_conn)
    assert ok.client_conn.id not in g._tunnels


def test_raw_tcp_from_a_remote_peer_is_killed() -> None:
    t = tflow.ttcpflow()
    t.client_conn.peername = REMOTE
    guard(cfg(ENDPOINTS)).tcp_start(t)
    assert t.error is not None and t.error.msg == t.error.KILLED_MESSAGE
    local = tflow.ttcpflow()
    guard(cfg(ENDPOINTS)).tcp_start(local)
    assert local.error is None
