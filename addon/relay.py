"""Failover: try the endpoints that serve a request in turn, before any byte reaches the client.

Theory of operation
-------------------
mitmproxy sends a request to one server and cannot take it back. When more than one endpoint can
serve a request (or an endpoint sets a timeout), the addon points the flow at this relay, a small
HTTP/1.1 server inside mitmproxy's own event loop. The relay tries each attempt (URL, headers and body
already rendered for that endpoint's format) with httpx: a refused connection, a timeout before the
response headers, a 429 or a 5xx moves on to the next attempt; anything else is answered. Once the
status line has been relayed it never switches. The winning attempt's index is recorded so the addon
translates the answer with that endpoint's exchange; if every attempt failed, the relay answers 502
with an OpenAI-shaped error body naming each failure, which the addon renders in the client's format.

An attempt may carry :class:`Credentials` (the ChatGPT login of ``auth: codex-login``,
``codex_session.py``): its headers are asked for just before the attempt is sent, and when the upstream
answers 401 the relay asks for renewed ones and sends the attempt once more — the client never sees
that 401. Credentials that cannot be had fail the attempt; on the last one, their error is the answer.

mitmproxy still owns the client side (flows, streaming hooks, mitmweb, recording); the extra loopback
hop is paid only by requests that can fail over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import h11
import httpx

from .errors import BridgeError

if sys.platform != "win32":
    import resource

__all__ = ["HOP_HEADERS", "Attempt", "Credentials", "Job", "Relay"]

logger = logging.getLogger("bridge")
logging.getLogger("httpx").setLevel(logging.WARNING)  # the relay logs each attempt itself

# Not forwarded either way: they describe one hop, not the message.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer",
                "upgrade", "proxy-authorization", "proxy-connection"}
_RETRY_AFTER_CAP = 300.0  # seconds an endpoint rests after a 429 at most
# Open files one relayed stream holds in this process: the client's connection to mitmproxy, mitmproxy's
# to the relay, the relay's end of it, and the relay's to the upstream.
_FDS_PER_RELAYED = 4
_FD_RESERVE = 512  # everything else: other flows, logs, config, mitmproxy's own


class Credentials(Protocol):
    """Credential headers fetched when an attempt is sent, renewed after a 401 (None: renewing would not
    help, the 401 stands). Both raise :class:`~addon.errors.BridgeError` (its status and message go to the
    client) when none can be had."""

    async def headers(self, client: httpx.AsyncClient) -> list[tuple[str, str]]: ...

    async def renew(self, client: httpx.AsyncClient, sent: Iterable[tuple[str, str]]
                    ) -> list[tuple[str, str]] | None: ...

    def secrets(self) -> list[str]: ...


@dataclass(slots=True)
class Attempt:
    name: str  # the endpoint's
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    connect_timeout: float
    first_byte_timeout: float
    idle_timeout: float | None = None  # once streaming: the longest silence before the stream is failed
    stall_event: bytes = b""  # an error event in the upstream's format, sent in place of what never came
    index: int = 0  # its place in the caller's own list (attempts may be reordered)
    credentials: Credentials | None = None  # headers added when it is sent (a login renewed on 401)


@dataclass(slots=True)
class Job:
    attempts: list[Attempt]
    winner: int | None = None  # Attempt.index of the attempt whose answer is relayed
    failures: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # what credentials sent: redacted wherever echoed


class Relay:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._resting: dict[str, float] = {}  # endpoint name → monotonic time it may be tried again
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self.port = 0
        self.max_connections = 0

    async def start(self, verify: bool = True, proxy: str | None = None, max_connections: int = 1000) -> None:
        """``proxy``: in mitmproxy's upstream mode, relayed attempts go through the same proxy.
        ``max_connections``: upstream connections at once (``max_relay_connections``); an attempt that
        finds none free waits up to its ``connect_timeout``."""
        self.max_connections = max_connections
        _raise_open_file_limit(_FDS_PER_RELAYED * max_connections + _FD_RESERVE, max_connections)
        # httpx's default pool (100) queued every attempt beyond it. Idle keep-alive connections count
        # toward the limit (one is closed when a new one is needed); keeping a fifth (httpx's own ratio)
        # saves reconnects without holding many idle sockets open on the upstreams.
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=min(max_connections, max(20, max_connections // 5)))
        self._client = httpx.AsyncClient(verify=verify, follow_redirects=False, trust_env=False, proxy=proxy,
                                         limits=limits)
        # asyncio's default backlog (100) drops mitmproxy's connects beyond it during a burst: each then
        # waits for a SYN retransmit (1 s, 3 s, …) before the relay even sees it.
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=max(max_connections, 100))
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        if self._client:
            await self._client.aclose()

    def resting(self) -> dict[str, float]:
        """Endpoint name → the monotonic time until which it is tried last (after a 429), for /ready."""
        return self._resting

    def register(self, job: Job) -> str:
        """The URL to point a flow at; attempts that are resting after a 429 go last."""
        now = time.monotonic()
        job.attempts.sort(key=lambda a: self._resting.get(a.name, 0.0) > now)
        token = uuid.uuid4().hex
        self._jobs[token] = job
        return f"http://127.0.0.1:{self.port}/_bridge_relay/{token}"

    def forget(self, url: str) -> None:
        self._jobs.pop(url.rsplit("/", 1)[-1], None)

    def job(self, url: str) -> Job | None:
        return self._jobs.get(url.rsplit("/", 1)[-1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            target = await _read_request(conn, reader)
            job = self._jobs.get(target.rsplit("/", 1)[-1])
            if job is None:
                await _send_whole(conn, writer, 404, b'{"error":{"message":"unknown relay job"}}')
                return
            # mitmproxy closes this connection when its client goes away; waiting on an upstream that
            # is silent would not notice, so a watcher cancels the attempt (and with it the upstream).
            run = asyncio.create_task(self._run(job, conn, writer))
            gone = asyncio.create_task(reader.read())
            await asyncio.wait({run, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                run.cancel()
                logger.info("client went away: upstream request cancelled")
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            pass  # mitmproxy went away (its client disconnected): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _run(self, job: Job, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        assert self._client is not None
        for i, attempt in enumerate(job.attempts):
            last = i == len(job.attempts) - 1
            timeout = httpx.Timeout(connect=attempt.connect_timeout, read=attempt.first_byte_timeout,
                                    write=attempt.connect_timeout, pool=attempt.connect_timeout)
            try:
                response = await self._send(job, attempt, timeout)
            except BridgeError as e:  # no credentials to send it with (a login that needs the user)
                logger.warning("attempt %d/%d: endpoint %s: %s", i + 1, len(job.attempts), attempt.name, e.message)
                if not last:
                    job.failures.append(f"{attempt.name}: {e.message}")
                    continue
                job.winner = attempt.index
                kind = "authentication_error" if e.status == 401 else "server_error"
                # a 4xx here (a login only the user can renew) is final: clients (Claude Code) would
                # otherwise retry it for minutes
                await _send_whole(conn, writer, e.status, json.dumps(
                    {"error": {"message": e.message, "type": kind, "code": e.code}}).encode(),
                    [("x-should-retry", "false")] if e.status < 500 else [])
                return
            except httpx.PoolTimeout:
                # The pool is shared by every endpoint: the next attempt would wait for the same
                # connections. The endpoints that are not tried are named, so the addon's "every endpoint
                # failed" answer (it counts one failure per attempt) tells what happened.
                busy = f"no free relay connection within {timeout.pool:g} s " \
                       f"(max_relay_connections {self.max_connections})"
                job.failures.append(f"{attempt.name}: {busy}")
                job.failures += [f"{a.name}: not tried ({busy})" for a in job.attempts[i + 1:]]
                logger.warning("attempt %d/%d: endpoint %s: %s; not trying the others", i + 1,
                               len(job.attempts), attempt.name, busy)
                break
            except httpx.ConnectTimeout:
                job.failures.append(f"{attempt.name}: no connection within {timeout.connect:g} s")
                logger.warning("attempt %d/%d: endpoint %s: connect timed out", i + 1, len(job.attempts), attempt.name)
                continue
            except httpx.WriteTimeout:
                job.failures.append(f"{attempt.name}: request not sent within {timeout.write:g} s")
                logger.warning("attempt %d/%d: endpoint %s: sending the request timed out", i + 1,
                               len(job.attempts), attempt.name)
                continue
            except httpx.ReadTimeout:
                job.failures.append(f"{attempt.name}: no response within {timeout.read:g} s")
                logger.warning("attempt %d/%d: endpoint %s timed out", i + 1, len(job.attempts), attempt.name)
                continue
            except httpx.TransportError as e:
                job.failures.append(f"{attempt.name}: {type(e).__name__}: {e}")
                logger.warning("attempt %d/%d: endpoint %s unreachable: %s", i + 1, len(job.attempts),
                               attempt.name, e)
                continue
            retryable = response.status_code == 429 or response.status_code >= 500
            if retryable:
                self._rest(attempt.name, response.headers.get("retry-after"))
            if retryable and not last:
                job.failures.append(f"{attempt.name}: HTTP {response.status_code}")
                logger.warning("attempt %d/%d: endpoint %s answered %d; trying the next", i + 1,
                               len(job.attempts), attempt.name, response.status_code)
                await response.aclose()
                continue
            job.winner = attempt.index
            try:
                await _relay_response(conn, writer, response, attempt)
            finally:
                await response.aclose()
            return
        job.winner = job.attempts[-1].index
        message = "every endpoint failed: " + "; ".join(job.failures)
        body = json.dumps({"error": {"message": message, "type": "server_error", "code": None}}).encode()
        await _send_whole(conn, writer, 502, body)

    async def _send(self, job: Job, attempt: Attempt, timeout: httpx.Timeout) -> httpx.Response:
        """One attempt sent; with credentials, sent again with renewed ones when the upstream says 401."""
        assert self._client is not None
        creds = attempt.credentials
        headers = attempt.headers
        if creds is not None:
            headers = _with(attempt.headers, await creds.headers(self._client))
            job.secrets = creds.secrets()
        request = self._client.build_request("POST", attempt.url, headers=headers, content=attempt.body,
                                             timeout=timeout)
        response = await self._client.send(request, stream=True)
        if creds is None or response.status_code != 401:
            return response
        fresh = await creds.renew(self._client, headers)
        job.secrets = creds.secrets()
        if fresh is None:
            return response
        await response.aclose()
        renewed = _with(attempt.headers, fresh)
        logger.info("endpoint %s answered 401: sending the request again with renewed credentials", attempt.name)
        request = self._client.build_request("POST", attempt.url, headers=renewed, content=attempt.body,
                                             timeout=timeout)
        return await self._client.send(request, stream=True)

    def _rest(self, name: str, retry_after: str | None) -> None:
        try:
            seconds = min(float(retry_after or 0), _RETRY_AFTER_CAP)
        except ValueError:
            seconds = 0.0  # an HTTP date: not worth parsing for a fallback order
        if seconds > 0:
            self._resting[name] = time.monotonic() + seconds


def _raise_open_file_limit(needed: int, max_connections: int) -> None:
    """Raise the soft open-file limit (often 1024) toward ``needed``, up to the hard limit: past it,
    accept() and connect() fail with EMFILE and the relay would report reachable endpoints as failed."""
    if sys.platform == "win32":
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. macOS refuses more than its OPEN_MAX
        target = soft
    if target < needed:
        logger.warning("the open-file limit (%d) is below the %d that max_relay_connections %d may need: "
                       "raise it (ulimit -n) or lower max_relay_connections", target, needed, max_connections)


def _with(headers: list[tuple[str, str]], credentials: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with the credential headers set (any of the same names dropped)."""
    names = {k.lower() for k, _ in credentials}
    return [(k, v) for k, v in headers if k.lower() not in names] + credentials


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> str:
    target = ""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data:
                raise ConnectionError("peer closed")
        elif isinstance(event, h11.Request):
            target = event.target.decode()
        elif isinstance(event, h11.EndOfMessage):
            return target


async def _relay_response(conn: h11.Connection, writer: asyncio.StreamWriter, response: httpx.Response,
                          attempt: Attempt) -> None:
    headers = [(k, v) for k, v in response.headers.raw
               if k.decode("latin-1").lower() not in HOP_HEADERS]
    headers += [(b"transfer-encoding", b"chunked"), (b"connection", b"close")]
    writer.write(conn.send(h11.Response(status_code=response.status_code, headers=headers)) or b"")
    await writer.drain()
    chunks = response.aiter_raw()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(chunks), attempt.idle_timeout)
            except StopAsyncIteration:
                break
            except TimeoutError:
                # A stalled stream ends with an error event the bridge translates for the client, and a
                # clean end, instead of hanging until some TCP timeout.
                logger.warning("endpoint %s: stream stalled for %g s; failing it", attempt.name, attempt.idle_timeout)
                if attempt.stall_event:
                    writer.write(conn.send(h11.Data(data=b"\n\n" + attempt.stall_event)) or b"")
                break
            writer.write(conn.send(h11.Data(data=chunk)) or b"")
            await writer.drain()
    except httpx.HTTPError:
        writer.transport.abort()  # the upstream broke mid-stream: so must the client's stream
        raise ConnectionError("upstream broke mid-stream") from None
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


async def _send_whole(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, body: bytes,
                      extra: list[tuple[str, str]] | None = None) -> None:
    headers = [("content-type", "application/json"), ("content-length", str(len(body))), ("connection", "close"),
               *(extra or [])]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.Data(data=body)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()
