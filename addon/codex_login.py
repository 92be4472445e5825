"""The ChatGPT login the Codex CLI keeps in ``$CODEX_HOME/auth.json``: read, judged and written back.

Theory of operation
-------------------
``codex login`` leaves the tokens of a ChatGPT sign-in in ``auth.json`` (codex-websocket.md §2.2). A
request to the Codex backend carries ``Authorization: Bearer <tokens.access_token>`` and
``chatgpt-account-id: <tokens.account_id>`` (§2.3). The access token is short-lived; Codex renews it
with the single-use refresh token (§2.4, §2.5) and writes the new tokens back (§2.6). Codex and the
bridge share one file, so the bridge follows Codex's own rules, which are all here:

* :func:`read_login` / :func:`parse_login` — the file, or a :class:`LoginError` that names it, says
  what is wrong and what to do (``codex login``; with keyring storage the file is absent).
* :func:`refresh_reason` — Codex's rule: the access token's ``exp`` is at most 5 minutes away; with
  no ``exp``, the last refresh is more than 8 days old. ``exp`` is read from the JWT's payload, never
  verified (the backend verifies it; the bridge only needs to know when to renew).
* :func:`refresh_body` / :func:`refreshed_tokens` — the token request (JSON, §2.5) and its answer;
  a permanent failure (401; ``refresh_token_expired``, ``_reused``, ``_invalidated``; 400
  ``invalid_grant``) is told apart from a passing one (:class:`RefreshFailed`).
* :func:`write_back` — the write Codex does (§2.6, §2.7): ``flock`` on ``auth.lock``, the file read
  again under the lock and *adopted* when another process changed its tokens meanwhile, else a 0600
  temporary file in ``$CODEX_HOME``, fsynced and renamed over ``auth.json`` — the same keys in the
  same order, 2-space JSON, no trailing newline, ``last_refresh`` RFC 3339 UTC with nanoseconds. The
  lock files stay (Codex leaves them too).

Only :func:`read_login` and :func:`write_back` touch the disk; the rest is pure. The asynchronous
part (when to refresh, once for all concurrent requests) is :mod:`addon.codex_session`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

if sys.platform != "win32":
    import fcntl

__all__ = [
    "AUTH_FILE", "LOCK_FILES", "TOKEN_URL", "TOKEN_URL_ENV", "CLIENT_ID", "LoginError", "RefreshFailed", "Login",
    "default_home", "auth_path", "read_login", "parse_login", "jwt_claims", "jwt_exp", "refresh_reason",
    "refresh_body", "refreshed_tokens", "with_tokens", "render", "rfc3339_nanos", "parse_time", "write_back",
]

AUTH_FILE = "auth.json"
LOCK_FILES = ("auth.lock", "auth.json.lock")  # taken in this order, as Codex 0.169.0 does (§2.6)
TOKEN_URL = "https://auth.openai.com/oauth/token"
TOKEN_URL_ENV = "CODEX_REFRESH_TOKEN_URL_OVERRIDE"  # Codex's own: replaces the whole URL (tests)
CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"  # Codex's OAuth client (§2.5)
PROACTIVE_MARGIN = 5 * 60  # seconds before exp at which Codex refreshes (§2.4)
STALE_AFTER = 8 * 24 * 3600  # a token without exp: refreshed when last_refresh is older than this
_AUTH_CLAIM = "https://api.openai.com/auth"
_PERMANENT_CODES = {"refresh_token_expired": "has expired", "refresh_token_reused": "was already used",
                    "refresh_token_invalidated": "was revoked"}  # Codex's words (manager.rs, §2.4)
_RELOGIN = "run `codex login` to sign in again"
_CODE = re.compile(r"[a-z0-9_.:-]{1,64}")


class LoginError(ValueError):
    """The login cannot be used; the message names the file and says what to do. ``transient``: the file
    may be caught mid-write by a writer that does not rename (older Codex), worth reading again."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class RefreshFailed(Exception):
    """The token endpoint did not renew the login. ``permanent``: the refresh token is spent, expired
    or revoked, and only a new ``codex login`` helps; otherwise trying again later may."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    """One reading of ``auth.json``. ``data`` is the whole file as read (key order kept) for writing back."""

    path: str
    data: Mapping[str, Any]
    access_token: str
    refresh_token: str
    id_token: str
    account_id: str | None
    api_key: str | None  # OPENAI_API_KEY: a secret too, though never sent by the bridge
    last_refresh: float | None  # seconds since the epoch
    fedramp: bool = False  # the id token says so: Codex then sends X-OpenAI-Fedramp (§2.3)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value of the file that must never be logged, recorded or echoed."""
        return tuple(v for v in (self.access_token, self.refresh_token, self.id_token, self.api_key) if v)

    def same_tokens(self, other: Login) -> bool:
        return (self.access_token, self.refresh_token, self.id_token) == \
            (other.access_token, other.refresh_token, other.id_token)

    def headers(self) -> list[tuple[str, str]]:
        """What a request to the Codex backend carries for this login (§2.3)."""
        out = [("authorization", f"Bearer {self.access_token}")]
        if self.account_id:
            out.append(("chatgpt-account-id", self.account_id))
        if self.fedramp:
            out.append(("x-openai-fedramp", "true"))
        return out


def default_home(environ: Mapping[str, str]) -> str:
    """``$CODEX_HOME``, else ``~/.codex`` (§2.1)."""
    return environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")


def auth_path(home: str) -> str:
    return os.path.join(home, AUTH_FILE)


def read_login(home: str) -> Login:
    """The login in ``home``. Raises :class:`LoginError`."""
    path = auth_path(home)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise LoginError(
            f"{path}: no ChatGPT login there (the file does not exist). Run `codex login`"
            f"{'' if os.path.isdir(home) else f' (the directory {home} does not exist either)'}. If Codex "
            "keeps its login in the OS keyring (cli_auth_credentials_store = \"keyring\" or \"auto\" in its "
            "config.toml), there is no file to share: set cli_auth_credentials_store = \"file\" and run "
            "`codex login` again") from None
    except UnicodeDecodeError:
        raise LoginError(f"{path}: not UTF-8 text; {_RELOGIN}") from None
    except OSError as e:
        raise LoginError(f"{path}: cannot read the ChatGPT login ({e.strerror}): run the bridge as the user who "
                         "ran `codex login`, or point codex_home at a login it may read") from None
    return parse_login(text, path)


def parse_login(text: str, path: str) -> Login:
    """The login in ``text`` (the contents of ``path``). Raises :class:`LoginError` for a file Codex
    itself would refuse, or one that holds no ChatGPT sign-in."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise LoginError(f"{path}: not valid JSON ({e}); {_RELOGIN}", transient=True) from None
    if not isinstance(data, dict):
        raise LoginError(f"{path}: not a JSON object; {_RELOGIN}")
    mode = data.get("auth_mode")
    if mode is not None and mode != "chatgpt":
        raise LoginError(f"{path}: the login is auth_mode {mode!r}, not a ChatGPT sign-in; run `codex login` "
                         "and sign in with ChatGPT")
    tokens = data.get("tokens")
    if not isinstance(tokens, dict):
        raise LoginError(f"{path}: no ChatGPT tokens (logged out, or an API-key login); run `codex login` and "
                         "sign in with ChatGPT")

    def token(name: str) -> str:
        value = tokens.get(name)
        if not isinstance(value, str) or not value:
            raise LoginError(f"{path}: tokens.{name} is missing or not a string; {_RELOGIN}")
        return value
    access, refresh, id_token = token("access_token"), token("refresh_token"), token("id_token")
    claims = jwt_claims(id_token)
    if claims is None:  # Codex decodes it when it loads the file, and refuses the whole file otherwise
        raise LoginError(f"{path}: tokens.id_token is not a JWT; {_RELOGIN}")
    account = tokens.get("account_id")
    if account is not None and not isinstance(account, str):
        raise LoginError(f"{path}: tokens.account_id is not a string; {_RELOGIN}")
    api_key = data.get("OPENAI_API_KEY")
    last = data.get("last_refresh")
    last_refresh = parse_time(last) if isinstance(last, str) else None
    if last is not None and last_refresh is None:
        raise LoginError(f"{path}: last_refresh {str(last)[:40]!r} is not an RFC 3339 time; {_RELOGIN}")
    auth_claim = claims.get(_AUTH_CLAIM)
    fedramp = isinstance(auth_claim, dict) and auth_claim.get("chatgpt_account_is_fedramp") is True
    return Login(path=path, data=data, access_token=access, refresh_token=refresh, id_token=id_token,
                 account_id=account or None, api_key=api_key if isinstance(api_key, str) and api_key else None,
                 last_refresh=last_refresh, fedramp=fedramp)


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (``header.payload.signature``), decoded but **not verified**; None when
    ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def jwt_exp(token: str) -> float | None:
    """The access token's ``exp`` (seconds since the epoch), if it is a JWT that has one."""
    exp = (jwt_claims(token) or {}).get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def refresh_reason(login: Login, now: float) -> str | None:
    """Whether Codex would refresh this login before a request, as the ``refresh_reason`` it sends
    (§2.4): ``proactive_expiry`` when ``exp`` ≤ now + 5 min; for a token without ``exp``, ``scheduled``
    when ``last_refresh`` is older than 8 days (or unknown). None: the token is good."""
    exp = jwt_exp(login.access_token)
    if exp is not None:
        return "proactive_expiry" if exp <= now + PROACTIVE_MARGIN else None
    if login.last_refresh is None or login.last_refresh < now - STALE_AFTER:
        return "scheduled"
    return None


def refresh_body(login: Login, reason: str) -> bytes:
    """The token request's JSON body, as Codex 0.169.0 sends it (§2.5)."""
    return json.dumps({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_reason": reason,
                       "refresh_token": login.refresh_token}).encode()


def refreshed_tokens(status: int, body: bytes) -> dict[str, str]:
    """The new tokens in the token endpoint's answer (``id_token``, ``access_token``, ``refresh_token``;
    each optional: a missing one keeps the old value). Raises :class:`RefreshFailed`."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if 200 <= status < 300:
        tokens = {k: v for k in ("id_token", "access_token", "refresh_token")
                  if isinstance(data, dict) and isinstance(v := data.get(k), str) and v}
        if not tokens.get("access_token"):
            raise RefreshFailed(f"the token endpoint answered HTTP {status} without an access token", permanent=False)
        if "id_token" in tokens and jwt_claims(tokens["id_token"]) is None:
            raise RefreshFailed("the token endpoint answered an id_token that is not a JWT", permanent=False)
        return tokens
    code = _error_code(data)
    permanent = status == 401 or code in _PERMANENT_CODES or (status == 400 and code == "invalid_grant")
    what = f"HTTP {status}" + (f", {code}" if code else "")
    if not permanent:
        raise RefreshFailed(f"the token endpoint answered {what}", permanent=False)
    why = _PERMANENT_CODES.get(code or "", "was refused")
    raise RefreshFailed(f"the refresh token {why} ({what}); {_RELOGIN}", permanent=True)


def _error_code(data: Any) -> str | None:
    """``error.code``, a string ``error`` (OAuth's), or ``code``, lower-cased, as Codex reads them."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else error if isinstance(error, str) else data.get("code")
    # only a code-like word goes on (into a log line and the client's error): never arbitrary text
    return code.lower() if isinstance(code, str) and _CODE.fullmatch(code.lower()) else None


def with_tokens(login: Login, tokens: Mapping[str, str], now_ns: int) -> dict[str, Any]:
    """The file's contents with the new tokens and ``last_refresh`` = now; every other key and the key
    order stay as read."""
    data = dict(login.data)
    data["tokens"] = {**data["tokens"], **tokens}
    data["last_refresh"] = rfc3339_nanos(now_ns)
    return data


def render(data: Mapping[str, Any]) -> bytes:
    """The file's bytes as Codex writes them: 2-space pretty JSON, UTF-8, no trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def rfc3339_nanos(now_ns: int) -> str:
    """``2026-12-06T07:41:26.482364007Z``: RFC 3339, UTC, nanoseconds (§2.2)."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def parse_time(text: str) -> float | None:
    """An RFC 3339 time as seconds since the epoch (any number of fraction digits); None if it is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds + float(m.group(7) or 0)


@contextlib.contextmanager
def _locked(path: str, mode: int) -> Iterator[None]:
    """``flock(LOCK_EX)`` on ``path`` (created if absent, never removed), blocking until it is ours."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_back(home: str, before: Login, data: Mapping[str, Any]) -> Login:
    """Write the refreshed ``data`` as Codex does (§2.6, §2.7), unless another process changed the
    tokens in the file since ``before`` was read: then its login is adopted and nothing is written.
    Blocking (it waits for the lock): call it off the event loop. Raises :class:`LoginError` when the
    file is gone (logged out meanwhile: the sign-in is not brought back) and :class:`OSError` when it
    cannot be written."""
    path = auth_path(home)
    with _locked(os.path.join(home, LOCK_FILES[0]), 0o666):
        try:
            on_disk = read_login(home)
        except LoginError:
            if not os.path.exists(path):
                raise
            on_disk = None  # unreadable or damaged: the refreshed login replaces it
        if on_disk is not None and not on_disk.same_tokens(before):
            return on_disk
        content = render(data)
        with _locked(os.path.join(home, LOCK_FILES[1]), 0o600):
            fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=home)  # O_EXCL, mode 0600, same filesystem
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    return parse_login(content.decode("utf-8"), path)
