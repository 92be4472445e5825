"""A ChatGPT login for tests: unsigned JWTs, an ``auth.json`` as Codex writes it, and a mock of OpenAI's
token endpoint (``POST /oauth/token``, codex-websocket.md §2.5) that issues short-lived tokens.

The token endpoint takes the JSON body Codex sends, checks ``client_id`` and ``grant_type``, and
treats refresh tokens as single-use: the current one gets new tokens (its ``exp`` ``lifetime`` seconds
away, or the next of ``queued``), a spent one ``400 refresh_token_reused``, an unknown one ``401``.
Each access token it issues is handed to ``on_issue`` (the mock Codex backend then takes it). Every
request is recorded.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from addon.codex_login import CLIENT_ID

__all__ = ["ACCOUNT", "jwt", "Tokens", "new_tokens", "auth_json", "write_auth", "MockTokenEndpoint"]

ACCOUNT = "acct-4f1e2d3c-test"


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(payload: dict[str, Any]) -> str:
    """An unsigned JWT (the bridge never verifies one; neither does ``codex login status``)."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    id_token: str

    def values(self) -> tuple[str, str, str]:
        return self.access_token, self.refresh_token, self.id_token


def new_tokens(exp: float | None, account: str = ACCOUNT, tag: str = "") -> Tokens:
    """Fresh tokens: an access JWT that expires at ``exp`` (None: no ``exp`` claim), an opaque refresh
    token, an id JWT with the claims Codex reads. Every value is unique."""
    nonce = uuid.uuid4().hex
    access: dict[str, Any] = {"sub": "user-test", "jti": nonce, "https://api.openai.com/auth": {
        "chatgpt_account_id": account}}
    if exp is not None:
        access["exp"] = int(exp)
    identity = {"email": "tester@example.test", "exp": int(time.time()) + 3600, "jti": nonce,
                "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_plan_type": "plus",
                                                "chatgpt_user_id": "user-test"}}
    return Tokens(jwt(access), f"rt_{tag}{nonce}FAKEREFRESH", jwt(identity))


def auth_json(tokens: Tokens, account: str | None = ACCOUNT, last_refresh: str = "2026-12-06T07:41:26.482364007Z",
              api_key: str | None = None) -> str:
    """``auth.json`` as Codex 0.169.0 writes it (§2.2): its keys in its order, 2-space JSON, no newline."""
    token_map: dict[str, Any] = {"id_token": tokens.id_token, "access_token": tokens.access_token,
                                 "refresh_token": tokens.refresh_token}
    if account is not None:
        token_map["account_id"] = account
    return json.dumps({"auth_mode": "chatgpt", "OPENAI_API_KEY": api_key, "tokens": token_map,
                       "last_refresh": last_refresh}, indent=2)


def write_auth(home: Path, tokens: Tokens, **kw: Any) -> Path:
    """``auth.json`` written in ``home`` as Codex writes it: a 0600 file renamed over the old one."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "auth.json"
    tmp = home / f".auth-{uuid.uuid4().hex[:6]}"
    tmp.write_text(auth_json(tokens, **kw))
    tmp.chmod(0o600)
    os.replace(tmp, path)
    return path


@dataclass
class _State:
    current: str  # the refresh token that works
    spent: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    issued: list[Tokens] = field(default_factory=list)
    queued: list[Tokens] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        mock = self.server.mock
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        status, answer = mock._answer(self.path, dict(self.headers.items()), request)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mock: MockTokenEndpoint) -> None:
        self.mock = mock
        super().__init__(("127.0.0.1", 0), _Handler)


class MockTokenEndpoint:
    """``POST /oauth/token``. ``refresh_token``: the one that works now. ``lifetime``: seconds until the
    ``exp`` of the access tokens it issues. ``delay``: seconds it takes to answer (to overlap requests)."""

    def __init__(self, refresh_token: str, lifetime: float = 3600.0, account: str = ACCOUNT,
                 on_issue: Callable[[Tokens], None] = lambda tokens: None, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.account = account
        self.delay = delay
        self.fail: tuple[int, dict[str, Any]] | None = None  # answer every request with this instead
        self._on_issue = on_issue
        self._lock = threading.Lock()
        self._state = _State(current=refresh_token)
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth/token"

    def __enter__(self) -> MockTokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.requests)

    @property
    def issued(self) -> list[Tokens]:
        with self._lock:
            return list(self._state.issued)

    def queue(self, tokens: Tokens) -> None:
        """The tokens the next successful refresh issues (so a test knows them in advance)."""
        with self._lock:
            self._state.queued.append(tokens)

    def accept(self, refresh_token: str) -> None:
        """Another process refreshed (or ``codex login`` ran): this refresh token works now."""
        with self._lock:
            self._state.spent.add(self._state.current)
            self._state.current = refresh_token

    def _answer(self, path: str, headers: dict[str, str], request: Any) -> tuple[int, dict[str, Any]]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self._state.requests.append({"path": path, "headers": headers, "json": request})
            if self.fail is not None:
                return self.fail
            if not isinstance(request, dict) or request.get("client_id") != CLIENT_ID or \
                    request.get("grant_type") != "refresh_token":
                return 400, {"error": "invalid_request", "error_description": "bad token request"}
            given = request.get("refresh_token")
            if given in self._state.spent:
                return 400, {"error": {"code": "refresh_token_reused", "message": "refresh token already used"}}
            if given != self._state.current:
                return 401, {"error": {"code": "invalid_refresh_token", "message": "unknown refresh token"}}
            tokens = self._state.queued.pop(0) if self._state.queued else \
                new_tokens(time.time() + self.lifetime, self.account)
            self._state.spent.add(given)
            self._state.current = tokens.refresh_token
            self._state.issued.append(tokens)
        self._on_issue(tokens)
        return 200, {"id_token": tokens.id_token, "access_token": tokens.access_token,
                     "refresh_token": tokens.refresh_token, "token_type": "Bearer", "expires_in": int(self.lifetime)}
