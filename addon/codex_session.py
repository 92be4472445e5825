"""A Codex home's ChatGPT login in use: credentials for each request to the Codex backend, renewed
once for all the requests that need it.

Theory of operation
-------------------
An endpoint with ``auth: codex-login`` goes through the failover relay (``relay.py``), which asks its
:class:`CodexSession` for the credential headers just before it sends an attempt, and again when the
backend answers 401 — then it sends the request once more, so the client never sees that 401.

* **Before each request** (:meth:`CodexSession.headers`): ``auth.json`` is read again if it changed
  on disk (a stat per request: another process — Codex — may have refreshed it). When Codex's rule
  says the access token is about to expire (``codex_login.refresh_reason``), the login is refreshed
  first; if that fails, the old token goes on while it is still valid, as Codex does.
* **On a 401** (:meth:`CodexSession.renew`): if the file (or a refresh made meanwhile) already holds
  another access token than the one the backend refused, that one is used; only then is the login
  refreshed (``unauthorized_recovery``). A 401 to the very token such a refresh got less than a minute
  ago is the client's: a backend that refuses every token must not cost a refresh per request.
* **A refresh** runs once at a time per Codex home: every request that needs one while it runs awaits
  the same task (single flight), shielded, so a client that goes away cannot cancel a refresh half
  done (the refresh token is single-use: new tokens that are not written back are a lost login). It
  first re-reads the file and adopts tokens another process wrote; then asks the token endpoint; then
  writes back as Codex does (``codex_login.write_back``, off the event loop), adopting the file
  instead if another process changed it meanwhile. A permanent refusal (the refresh token spent,
  expired or revoked) is remembered until the file changes — nothing but ``codex login`` helps — and
  answered with a 401 that says so; a passing failure (the token endpoint down) with a 502, retried at
  most every 10 s while the old token still works.
* **Secrets**: every token seen (read or refreshed) is kept in :meth:`CodexSession.secrets` and the
  owner is told (``on_change``) before anything could print it, so the redactor knows it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import httpx

from .codex_login import (
    TOKEN_URL,
    TOKEN_URL_ENV,
    Login,
    LoginError,
    RefreshFailed,
    jwt_exp,
    parse_login,
    read_login,
    refresh_body,
    refresh_reason,
    refreshed_tokens,
    render,
    with_tokens,
    write_back,
)
from .errors import BridgeError, ErrorKind

__all__ = ["LoginUnavailable", "CodexSession", "Logins"]

logger = logging.getLogger("bridge")

UNAUTHORIZED = "unauthorized_recovery"  # the refresh_reason Codex sends after a 401 (§2.4)
_TOKEN_TIMEOUT = 30.0  # seconds for the whole token request
_TOKEN_ANSWER_LIMIT = 1 << 20  # bytes of the token endpoint's answer read at most
_RETRY_AFTER = 10.0  # seconds between refresh attempts after a passing failure, while the old token works
_KEEP_SECRETS = 32  # token values remembered per login for redaction (the newest)
_FRESH = 60.0  # seconds: a 401 to a token a 401 recovery got that recently is not the token's fault
_TOKEN_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class LoginUnavailable(BridgeError):
    """No usable ChatGPT login: 401 when only ``codex login`` helps, 502 when trying later may."""

    status = 401
    kind = ErrorKind.AUTHENTICATION


class CodexSession:
    def __init__(self, home: str, on_change: Callable[[], None] = lambda: None, token_url: str | None = None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        """``on_change``: called when new secrets are known. ``now_ns``: the clock (tests move it)."""
        self.home = home
        self.path = os.path.join(home, "auth.json")
        self.token_url = token_url or os.environ.get(TOKEN_URL_ENV) or TOKEN_URL
        self.refreshes = 0  # successful token requests made by this process
        self._on_change = on_change
        self._now_ns = now_ns
        self._login: Login | None = None
        self._stat: tuple[int, int, int] | None = None
        self._flight: asyncio.Future[Login] | None = None
        self._dead: str | None = None  # a permanent refresh failure's message, until the file changes
        self._retry_at = 0.0  # monotonic time before which a passing failure is not retried
        self._recovered: tuple[str, float] | None = None  # the access token a 401 recovery got last, and when
        self._secrets: dict[str, None] = {}
        try:
            self._current()
        except LoginUnavailable as e:  # the config check read it a moment ago; requests will say why
            logger.warning("%s", e.message)

    def secrets(self) -> list[str]:
        """Every token value of this login seen lately (read, or refreshed by this process)."""
        return list(self._secrets)

    async def headers(self, client: httpx.AsyncClient) -> list[tuple[str, str]]:
        """The credential headers for a request now, after a refresh if Codex's rule asks for one.
        Raises :class:`LoginUnavailable`."""
        login = self._current()
        now = self._now_ns() / 1e9
        reason = refresh_reason(login, now)
        if reason is None:
            return login.headers()
        usable = not _expired(login, now)
        if usable and (self._dead or time.monotonic() < self._retry_at):
            return login.headers()  # as Codex does: the old token goes on while it lasts
        if self._dead:
            raise LoginUnavailable(self._dead)
        try:
            login = await self._refresh(client, reason, login.access_token)
        except LoginUnavailable:
            if not usable:
                raise
            login = self._login or login
        return login.headers()

    async def renew(self, client: httpx.AsyncClient, sent: Iterable[tuple[str, str]]
                    ) -> list[tuple[str, str]] | None:
        """The backend refused ``sent`` (401): headers with another access token — one already on disk or
        refreshed meanwhile, else a new one; None when a new one would not help (a 401 recovery got this
        token a moment ago: the 401 is about something else, and goes to the client). Raises
        :class:`LoginUnavailable`."""
        stale = next((v.partition(" ")[2] for k, v in sent if k.lower() == "authorization"), "")
        login = self._current()
        if login.access_token != stale:
            return login.headers()
        if self._dead:
            raise LoginUnavailable(self._dead)
        if self._recovered and self._recovered[0] == stale and time.monotonic() - self._recovered[1] < _FRESH:
            # a backend that refuses every token (an account it does not serve) would cost a refresh a request
            logger.warning("ChatGPT login in %s: the backend refused the token a 401 got %.0f s ago; not "
                           "refreshing again", self.path, time.monotonic() - self._recovered[1])
            return None
        return (await self._refresh(client, UNAUTHORIZED, stale)).headers()

    def _current(self) -> Login:
        """The login as the file has it now: read again whenever the file changed. Raises
        :class:`LoginUnavailable`."""
        try:
            st = os.stat(self.path)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None  # read_login says what is wrong
        if self._login is not None and key is not None and key == self._stat:
            return self._login
        try:
            login = read_login(self.home)
        except LoginError as e:
            if e.transient and self._login is not None:  # caught mid-write by a writer that does not rename
                logger.warning("%s; using the login read before", e.message)
                return self._login
            raise LoginUnavailable(f"the ChatGPT login cannot be used: {e.message}") from None
        self._stat = key
        self._use(login)
        return login

    def _use(self, login: Login, ours: bool = False) -> None:
        """Use ``login`` from now on (``ours``: this process refreshed it)."""
        before = self._login
        if before is not None and login.same_tokens(before):
            self._login = login
            return
        if before is not None and not ours:
            logger.info("ChatGPT login in %s: new tokens on disk, using them", self.path)
            if login.account_id != before.account_id:
                logger.warning("ChatGPT login in %s: now signed in to another account", self.path)
        self._login = login
        self._dead = None
        self._remember(login.secrets)

    def _remember(self, values: Iterable[str]) -> None:
        new = [v for v in values if v and v not in self._secrets]
        if not new:
            return
        for v in new:
            self._secrets[v] = None
        while len(self._secrets) > _KEEP_SECRETS:
            del self._secrets[next(iter(self._secrets))]
        self._on_change()

    async def _refresh(self, client: httpx.AsyncClient, reason: str, stale: str) -> Login:
        """One refresh for every request that needs one now (single flight)."""
        flight = self._flight
        if flight is None or flight.done():
            flight = self._flight = asyncio.ensure_future(self._run(client, reason, stale))
            flight.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody waits
        return await asyncio.shield(flight)

    async def _run(self, client: httpx.AsyncClient, reason: str, stale: str) -> Login:
        login = self._current()  # another process (Codex) may have renewed it already: then that is used
        if login.access_token != stale and (reason == UNAUTHORIZED or refresh_reason(login, self._now_ns() / 1e9)
                                            is None):
            return login
        try:
            status, answer = await self._post(client, refresh_body(login, reason))
            tokens = refreshed_tokens(status, answer)
        except RefreshFailed as e:
            if e.permanent:
                # Another process may have spent the same refresh token first (refresh_token_reused):
                # its tokens are in the file by now.
                again = self._current()
                if not again.same_tokens(login):
                    return again
                self._dead = f"the ChatGPT login in {self.path} could not be refreshed: {e.message}"
                logger.error("%s", self._dead)
                raise LoginUnavailable(self._dead) from None
            self._retry_at = time.monotonic() + _RETRY_AFTER
            message = f"the ChatGPT login in {self.path} could not be refreshed: {e.message}"
            logger.warning("%s", message)
            raise LoginUnavailable(message, status=502, kind=ErrorKind.API_ERROR) from None
        self.refreshes += 1
        if reason == UNAUTHORIZED:
            self._recovered = (tokens["access_token"], time.monotonic())
        self._remember(tokens.values())  # known to the redactor before anything else sees them
        data = with_tokens(login, tokens, self._now_ns())
        try:
            written = await asyncio.to_thread(write_back, self.home, login, data)
        except LoginError as e:  # logged out while the refresh ran: the sign-in is not brought back
            raise LoginUnavailable(f"the ChatGPT login cannot be used: {e.message}") from None
        except OSError as e:
            logger.error("ChatGPT login in %s refreshed but not written back (%s): the bridge uses the new tokens, "
                         "Codex will need `codex login`", self.path, e.strerror or e)
            written = parse_login(render(data).decode("utf-8"), self.path)
            self._login = written
            return written
        adopted = written.access_token != tokens["access_token"]
        self._stat = None  # read the file again next time: it is the one source of truth
        self._use(written, ours=not adopted)
        exp = jwt_exp(written.access_token)
        logger.info("ChatGPT login in %s refreshed (%s)%s%s", self.path, reason,
                    f"; the access token expires in {exp - self._now_ns() / 1e9:.0f} s" if exp else "",
                    "; another process wrote newer tokens meanwhile: using those" if adopted else "")
        return written

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> tuple[int, bytes]:
        """The token request; its answer's status and (bounded) body. Raises :class:`RefreshFailed`."""
        host = urlsplit(self.token_url).netloc
        try:
            async with client.stream("POST", self.token_url, content=body, headers=_TOKEN_HEADERS,
                                     timeout=_TOKEN_TIMEOUT) as response:
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) > _TOKEN_ANSWER_LIMIT:
                        raise RefreshFailed(f"the token endpoint {host} answered more than "
                                            f"{_TOKEN_ANSWER_LIMIT} bytes", permanent=False)
                return response.status_code, answer
        except httpx.HTTPError as e:
            raise RefreshFailed(f"the token endpoint {host} could not be reached ({type(e).__name__})",
                                permanent=False) from None


def _expired(login: Login, now: float) -> bool:
    exp = jwt_exp(login.access_token)
    return exp is not None and exp <= now


class Logins:
    """The sessions of the Codex homes a config names, one per home: endpoints that share a login share
    its refreshes. Kept across config reloads, so a refresh in flight is never forgotten."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._sessions: dict[str, CodexSession] = {}
        self._on_change = on_change

    def use(self, homes: Iterable[str]) -> None:
        wanted = dict.fromkeys(homes)
        self._sessions = {home: self._sessions.get(home) or CodexSession(home, self._on_change) for home in wanted}

    def get(self, home: str | None) -> CodexSession | None:
        return self._sessions.get(home) if home else None

    def secrets(self) -> list[str]:
        return [s for session in self._sessions.values() for s in session.secrets()]
