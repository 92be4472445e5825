"""The fault matrix (issue 5): every upstream fault, for every client format, through a real mitmdump.

One mitmdump serves the whole matrix: its config has one endpoint per (upstream family, upstream
format), chosen by model name (``<family>-<format>-m``). Families: ``ok`` is the scripted mock
upstream (HTTP errors and stream faults are scripted per request), ``refused`` a closed port,
``dns`` a name under ``.invalid``, ``tls`` an ``https://`` URL at the mock's plain-HTTP port,
``untrusted`` a TLS server whose certificate nobody trusts, ``slow`` a port that accepts and never
answers (``first_byte_timeout``), ``noconn`` a port whose accept queue is full (``connect_timeout``),
and ```relay`` the mock again with ``idle_timeout`` (timeouts send requests through the failover
relay, so some faults are run on that path too), ``refused-relayed`` a closed port behind the relay.

Each client format talks to a translating upstream (Anthropic → Chat, Chat → Anthropic, Responses →
Chat, Gemini → Anthropic); faults that live in one upstream format (its own in-stream error event, its
own error body: Anthropic's 529, Google's ``{"error": {"code", "message", "status"}}``) run for every
client, which includes the pass-through case. The official SDKs drive every case (``max_retries=0``;
google-genai retries only when ``retry_options`` are set); a tee in their HTTP transport keeps the raw
bytes and, when the SDK stops reading early, drains the rest so the test also sees how the HTTP body
ended (a clean chunked end vs. a cut connection).

What is checked (README "Failure behaviour"): before the first byte, the status (429/5xx stay
429/5xx; A's 529 ⇄ OpenAI's 503), ``Retry-After`` kept, an error body in the client's own shape with
a useful message, and the SDK's exception class; after it, a 200 whose stream obeys the client's
grammar and ends with the client's error event (A ``event: error``, C ``data: {"error": …}``, R
``response.failed`` last, G ``data: {"error": …}`` with no ``finishReason`` anywhere, gemini.md §4.6) and
a clean end of the body — never ``message_stop`` / ``[DONE]`` / ``response.completed`` /
``finishReason`` after a failure — and an SDK that raises (the Responses helper cannot raise on
``response.failed``: it must at least refuse ``get_final_response``; google-genai raises its
``ClientError``/``ServerError`` with the event's code and status).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from mitmproxy import certs

from tests import stream_grammar
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY_ENV, ConfiguredBridge, free_ports
from tests.mock_upstream import MockUpstream, Reply

CLIENTS = ("anthropic", "chat", "responses", "gemini")  # every format is a client format and an upstream format
TRANSLATING = {"anthropic": "chat", "chat": "anthropic", "responses": "chat", "gemini": "anthropic"}
# Events before a mid-stream fault, so the text "abcd" has reached the client: Anthropic message_start,
# ping, block start, delta; Chat role chunk, delta; Responses created, in_progress, item added, part added, delta;
# Gemini the chunk with "abcd" (a Gemini chunk is a whole GenerateContentResponse).
BEFORE = {"anthropic": 4, "chat": 2, "responses": 5, "gemini": 1}
TIMEOUT = 1.0  # first_byte_timeout and idle_timeout of the timed endpoints
CONNECT_TIMEOUT = 0.5


# --- the fault-injecting upstreams -----------------------------------------------------------------


class _Backlogged:
    """A listening port whose accept queue is full: a new connection's SYN is dropped, so connecting
    hangs (Linux queues backlog + 1 connections; the filler below takes the only place)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port))

    def close(self) -> None:
        self.filler.close()
        self.sock.close()


class _UntrustedTLS:
    """A TLS server with a certificate from a CA nobody trusts: every handshake fails."""

    def __init__(self, workdir: Path) -> None:
        entry = certs.CertStore.from_store(workdir, "untrusted", 2048).get_cert("127.0.0.1", [])
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        cert.write_bytes(entry.cert.to_pem())
        key.write_bytes(entry.privatekey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True, name="untrusted-tls").start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handshakes += 1
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # the peer should give up in the handshake
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


def _endpoint(name: str, base: str, fmt: str, **extra: object) -> dict[str, object]:
    urls = {"chat": {"url_openai": f"{base}/v1"},
            "responses": {"url_openai": f"{base}/v1", "openai_preference": "responses"},
            "anthropic": {"url_anthropic": base}, "gemini": {"url_gemini": base}}
    return {"name": f"{name}-{fmt}", **urls[fmt], "models": [f"{name}-{fmt}-*"], "api_key_env": UPSTREAM_KEY_ENV,
            **extra}


@dataclass
class Matrix:
    proc: ConfiguredBridge
    untrusted: _UntrustedTLS


@pytest.fixture(scope="module")
def matrix(bridge_config: Callable[..., ConfiguredBridge], mock_upstream: MockUpstream,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    silent = socket.socket()  # accepts (into its backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    backlogged = _Backlogged()
    untrusted = _UntrustedTLS(tmp_path_factory.mktemp("untrusted-tls"))
    dead = free_ports(1)[0]
    families: dict[str, tuple[str, dict[str, object]]] = {
        "ok": (mock_upstream.url, {}),
        "refused": (f"http://127.0.0.1:{dead}", {}),
        "dns": ("http://llm-upstream.invalid", {}),
        "tls": (f"https://127.0.0.1:{mock_upstream.port}", {}),  # plain HTTP behind an https:// URL
        "untrusted": (f"https://127.0.0.1:{untrusted.port}", {}),
        "slow": (f"http://127.0.0.1:{silent.getsockname()[1]}", {"first_byte_timeout": TIMEOUT}),
        "noconn": (f"http://127.0.0.1:{backlogged.port}", {"connect_timeout": CONNECT_TIMEOUT}),
        "relay": (mock_upstream.url, {"idle_timeout": TIMEOUT}),
        "refused-relayed": (f"http://127.0.0.1:{dead}", {"connect_timeout": 5}),
    }
    config = {"endpoints": [_endpoint(name, base, fmt, **extra) for name, (base, extra) in families.items()
                            for fmt in CLIENTS]}
    # The reverse target is the mock too: a request the bridge wrongly left alone would reach it.
    yield Matrix(bridge_config(config, modes=(f"reverse:{mock_upstream.url}",)), untrusted)
    silent.close()
    backlogged.close()
    untrusted.close()


# --- the faults ------------------------------------------------------------------------------------

MESSAGE = "the mock upstream fell over (fault matrix)"


def _garbage(upstream: str, payload: bytes) -> bytes:
    """One SSE event in the upstream's framing whose data is ``payload``."""
    name = {"anthropic": b"event: content_block_delta\n", "chat": b"", "gemini": b"",
            "responses": b"event: response.output_text.delta\n"}[upstream]
    return name + b"data: " + payload + b"\n\n"


# Google's own error bodies (gemini.md §5.1, §1.2, §4.6): a quota error with its details, a wrong key (400, not
# 401), an error wrapped in a one-element array, and the raw pretty-printed tail the live API ends a failed
# stream with instead of an SSE event.
GOOGLE_429 = {"error": {"code": 429, "message": MESSAGE, "status": "RESOURCE_EXHAUSTED", "details": [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
     "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]}}
KEY_INVALID = "API key not valid. Please pass a valid API key."
GOOGLE_KEY_INVALID = {"error": {"code": 400, "message": KEY_INVALID, "status": "INVALID_ARGUMENT", "details": [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}
GOOGLE_503_IN_ARRAY = json.dumps([{"error": {"code": 503, "message": MESSAGE, "status": "UNAVAILABLE"}}]).encode()
GOOGLE_RAW_TAIL = ('{\n  "error": {\n    "code": 503,\n    "message": "' + MESSAGE + '",\n'
                   '    "status": "UNAVAILABLE"\n  }\n}\n').encode()


def _responses_error_event(sequence_number: int) -> bytes:
    event = {"type": "error", "code": "rate_limit_exceeded", "message": MESSAGE, "param": None,
             "sequence_number": sequence_number}
    return f"event: error\ndata: {json.dumps(event)}\n\n".encode()


@dataclass(frozen=True)
class Fault:
    name: str
    family: str = "ok"
    reply: Callable[[str], Reply] | None = None  # the mock's answer, by upstream format
    status: dict[str, int] | int | None = None  # before the first byte: the client's status; None: mid-stream
    needle: str = ""  # in the client's error message
    retry_after: str | None = None
    upstream: str | None = None  # a fault of one upstream format: every client, pass-through included
    passthrough: bool = False  # also run the client against an upstream of its own format
    every_upstream: bool = False  # every other upstream format, not only the client's usual translating one
    max_seconds: float = 5.0
    kind: dict[str, str] = field(default_factory=dict)  # client format → the error type / code / status it carries
    translated_only: bool = False  # not for a client of the upstream's own format: its bytes are its own to judge


RATE_LIMITED = {"anthropic": "rate_limit_error", "chat": "rate_limit_exceeded", "responses": "rate_limit_exceeded",
                "gemini": "RESOURCE_EXHAUSTED"}
OVERLOADED = {"anthropic": "overloaded_error", "chat": "server_is_overloaded", "responses": "server_is_overloaded",
              "gemini": "UNAVAILABLE"}
BUSY = {"anthropic": 529, "chat": 503, "responses": 503, "gemini": 503}  # A's 529 is OpenAI's and Google's 503

FAULTS = [
    # before the first byte: an HTTP error in the client's format
    Fault("refused", family="refused", status=502, needle="could not be reached"),
    Fault("dns", family="dns", status=502, needle="could not be reached"),
    Fault("tls-plain-server", family="tls", status=502, needle="could not be reached"),
    Fault("tls-untrusted-cert", family="untrusted", status=502, needle="could not be reached"),
    Fault("first-byte-timeout", family="slow", status=502, needle=f"no response within {TIMEOUT:g} s",
          max_seconds=TIMEOUT + 4),
    Fault("connect-timeout", family="noconn", status=502, needle=f"within {CONNECT_TIMEOUT:g} s",
          max_seconds=CONNECT_TIMEOUT + 4),
    Fault("refused-relayed", family="refused-relayed", status=502, needle="every endpoint failed: refused-relayed-"),
    Fault("http-400-json", reply=lambda up: Reply(status=400, error_message=MESSAGE), status=400, needle=MESSAGE),
    Fault("http-429-json", reply=lambda up: Reply(status=429, error_message=MESSAGE, headers={"retry-after": "17"}),
          status=429, needle=MESSAGE, retry_after="17", kind=RATE_LIMITED),
    Fault("http-429-json-relayed", family="relay", status=429, needle=MESSAGE, retry_after="17", kind=RATE_LIMITED,
          reply=lambda up: Reply(status=429, error_message=MESSAGE, headers={"retry-after": "17"})),
    Fault("http-503-json", reply=lambda up: Reply(status=503, error_message=MESSAGE, headers={"retry-after": "9"}),
          status=BUSY, needle=MESSAGE, retry_after="9"),
    Fault("http-502-html", reply=lambda up: Reply(status=502, raw_error=b"<html><body><h1>502 Bad Gateway</h1>"
                                                  b"upstream nginx says so</body></html>"),
          status=502, needle="upstream nginx says so"),
    Fault("http-503-html-retry-after", reply=lambda up: Reply(
        status=503, raw_error=b"<html>busy, come back later</html>", headers={"retry-after": "5"}),
        status=BUSY, needle="busy, come back later", retry_after="5"),
    Fault("http-500-empty", reply=lambda up: Reply(status=500, raw_error=b""), status=500,
          needle="upstream returned HTTP 500 with no body"),
    # an upstream format's own error bodies, before the first byte
    Fault("anthropic-http-529", upstream="anthropic", status=BUSY, needle=MESSAGE, kind=OVERLOADED,
          reply=lambda up: Reply(status=529, error_message=MESSAGE, headers={"retry-after": "3"}), retry_after="3"),
    Fault("gemini-http-429", upstream="gemini", status=429, needle=MESSAGE, retry_after="17", kind=RATE_LIMITED,
          reply=lambda up: Reply(status=429, error_json=GOOGLE_429, headers={"retry-after": "17"})),
    Fault("gemini-http-503", upstream="gemini", status=BUSY, needle=MESSAGE, kind=OVERLOADED,
          reply=lambda up: Reply(status=503, error_message=MESSAGE)),
    # (a Gemini client gets the array as it came: a pass-through error is the upstream's; its SDK unwraps it)
    Fault("gemini-http-503-in-array", upstream="gemini", status=BUSY, needle=MESSAGE, kind=OVERLOADED,
          translated_only=True, reply=lambda up: Reply(status=503, raw_error=GOOGLE_503_IN_ARRAY,
                                 headers={"content-type": "application/json; charset=UTF-8"})),
    Fault("gemini-http-500", upstream="gemini", status=500, needle=MESSAGE,
          kind={"anthropic": "api_error", "chat": "server_error", "responses": "server_error", "gemini": "INTERNAL"},
          reply=lambda up: Reply(status=500, error_message=MESSAGE)),
    Fault("gemini-key-invalid", upstream="gemini", needle=KEY_INVALID,  # Google's 400 is everyone else's 401
          status={"anthropic": 401, "chat": 401, "responses": 401, "gemini": 400},
          kind={"anthropic": "authentication_error", "chat": "authentication_error",
                "responses": "authentication_error", "gemini": "INVALID_ARGUMENT"},
          reply=lambda up: Reply(status=400, error_json=GOOGLE_KEY_INVALID)),
    # an error event inside a 200 stream, in each upstream format
    Fault("anthropic-error-event", upstream="anthropic", needle=MESSAGE, kind=RATE_LIMITED, reply=lambda up: Reply(
        text="abcdefgh", error_after=BEFORE[up], error_message=MESSAGE, error_type="rate_limit_error")),
    Fault("chat-error-chunk", upstream="chat", needle=MESSAGE, kind=RATE_LIMITED, reply=lambda up: Reply(
        text="abcdefgh", error_after=BEFORE[up], error_message=MESSAGE, error_type="rate_limit_exceeded")),
    Fault("responses-error-event", upstream="responses", needle=MESSAGE, kind=RATE_LIMITED, reply=lambda up: Reply(
        text="abcdefgh", inject_after=BEFORE[up], inject=_responses_error_event(BEFORE[up]))),
    Fault("responses-failed", upstream="responses", needle=MESSAGE, kind=RATE_LIMITED, reply=lambda up: Reply(
        text="abcdefgh", error_after=BEFORE[up], error_message=MESSAGE, error_type="rate_limit_exceeded")),
    Fault("gemini-error-event", upstream="gemini", needle=MESSAGE, kind=RATE_LIMITED, reply=lambda up: Reply(
        text="abcdefgh", error_after=BEFORE[up], error_message=MESSAGE, error_type="RESOURCE_EXHAUSTED")),
    Fault("gemini-raw-error-tail", upstream="gemini", needle=MESSAGE, kind=OVERLOADED, reply=lambda up: Reply(
        text="abcdefgh", inject_after=BEFORE[up], inject=GOOGLE_RAW_TAIL)),
    # a finish reason that says the answer failed (gemini.md §3.2): an error to the other clients
    Fault("gemini-malformed-function-call", upstream="gemini", needle="MALFORMED_FUNCTION_CALL", translated_only=True,
          reply=lambda up: Reply(text="abcdefgh", stop="MALFORMED_FUNCTION_CALL")),
    # the stream itself breaks
    Fault("cut-mid-stream", passthrough=True, every_upstream=True,
          reply=lambda up: Reply(text="abcdefgh", cut_after=BEFORE[up])),
    Fault("cut-mid-stream-relayed", family="relay", reply=lambda up: Reply(text="abcdefgh", cut_after=BEFORE[up])),
    Fault("idle-stall", family="relay", needle=f"the upstream stream stalled: no data for {TIMEOUT:g} s",
          reply=lambda up: Reply(text="abcdefgh", hold_after=BEFORE[up]), max_seconds=TIMEOUT + 4),
    Fault("garbage-not-json", needle="not JSON", every_upstream=True, reply=lambda up: Reply(
        text="abcdefgh", inject_after=BEFORE[up], inject=_garbage(up, b"{this is not json"))),
    Fault("garbage-not-utf8", needle="UTF-8", reply=lambda up: Reply(
        text="abcdefgh", inject_after=BEFORE[up], inject=_garbage(up, b'{"x": "\xff\xfe\xfd"}'))),
    Fault("premature-done", upstream="chat", needle="ended before", translated_only=True, reply=lambda up: Reply(
        text="abcdefgh", inject_after=BEFORE[up], inject=b"data: [DONE]\n\n")),
    Fault("no-terminal-event", every_upstream=True, needle="ended before",
          reply=lambda up: Reply(text="abcdefgh", end_after=BEFORE[up] + 1)),
]


def _cases() -> Iterator[Any]:
    for fault in FAULTS:
        for client in CLIENTS:
            if fault.upstream:
                upstreams = [fault.upstream]
            elif fault.every_upstream:
                upstreams = [up for up in CLIENTS if up != client]
            else:
                upstreams = [TRANSLATING[client]]
            if fault.passthrough:
                upstreams.append(client)
            for upstream in upstreams:
                if fault.translated_only and upstream == client:
                    continue  # e.g. a pass-through [DONE] is the upstream's own word: the bridge does not judge it
                yield pytest.param(fault, client, upstream, id=f"{fault.name}-{client}-from-{upstream}")


# --- the client side: SDKs over a transport that keeps (and finishes reading) the raw bytes ----------


@dataclass
class Captured:
    status: int
    headers: httpx2.Headers
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False  # the body ended as HTTP says it should (chunked terminator / full length)
    error: Exception | None = None  # how reading it failed (a cut connection)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _DrainingTee(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, cap: Captured) -> None:
        self._it = iter(inner)
        self._inner, self._cap = inner, cap

    def _read(self) -> Iterator[bytes]:
        try:
            for chunk in self._it:
                self._cap.chunks.append(chunk)
                yield chunk
        except Exception as e:
            self._cap.error = e
            raise
        self._cap.complete = True

    def __iter__(self) -> Iterator[bytes]:
        yield from self._read()

    def close(self) -> None:
        # An SDK that raised on an error event stops reading: read on, to see whether the body ends cleanly.
        if not self._cap.complete and self._cap.error is None:
            try:
                for _ in self._read():
                    pass
            except Exception:
                pass
        self._inner.close()


class Transport(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.captured: list[Captured] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        cap = Captured(response.status_code, response.headers)
        self.captured.append(cap)
        response.stream = _DrainingTee(response.stream, cap)  # type: ignore[arg-type]
        return response


def _gemini(url: str, http: httpx2.Client, retry: genai_types.HttpRetryOptions | None = None) -> genai.Client:
    """google-genai on /v1beta (as the Gemini CLI calls it); no retry_options: it never retries (gemini.md §5.1)."""
    return genai.Client(api_key=CLIENT_KEY, http_options=genai_types.HttpOptions(
        base_url=url, api_version="v1beta", httpx_client=http, retry_options=retry))


def _sdk(client: str, url: str) -> tuple[Any, Transport]:
    transport = Transport()
    http = httpx2.Client(transport=transport, timeout=10)
    if client == "gemini":
        return _gemini(url, http), transport
    if client == "anthropic":
        return anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0, timeout=10, http_client=http), \
            transport
    return openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10, http_client=http), \
        transport


@dataclass
class Outcome:
    exc: BaseException | None
    events: list[str]  # what the SDK's stream helper yielded (event types), up to where it stopped


def _drive(client: str, sdk: Any, model: str) -> Outcome:
    """One streamed turn through the client's official stream helper, as an agent would run it."""
    messages = [{"role": "user", "content": "hi"}]
    events: list[str] = []
    try:
        if client == "anthropic":
            with sdk.messages.stream(model=model, max_tokens=64, messages=messages) as s:
                for ev in s:
                    events.append(ev.type)
                s.get_final_message()
        elif client == "chat":
            with sdk.chat.completions.stream(model=model, messages=messages) as s:
                for ev in s:
                    events.append(ev.type)
                s.get_final_completion()
        elif client == "gemini":  # no helper: the stream itself, as the Gemini CLI and agents read it
            for chunk in sdk.models.generate_content_stream(model=model, contents="hi"):
                candidate = chunk.candidates[0] if chunk.candidates else None
                events.append(f"finish {candidate.finish_reason}" if candidate and candidate.finish_reason
                              else "chunk")
        else:
            with sdk.responses.stream(model=model, input=messages) as s:
                for ev in s:
                    events.append(ev.type)
                s.get_final_response()
    except Exception as e:  # which exception it is, is what the caller checks
        return Outcome(e, events)
    return Outcome(None, events)


# --- checks ----------------------------------------------------------------------------------------


# gemini.md §5.1: HTTP status → Google's canonical status name (502, which Google does not send: INTERNAL)
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "INTERNAL", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}


def _error_message(client: str, body: Any) -> str:
    """The message of an error body in the client's shape (asserting the shape)."""
    assert isinstance(body, dict), body
    if client == "anthropic":
        assert body.get("type") == "error" and set(body["error"]) >= {"type", "message"}, body
        assert isinstance(body["error"]["type"], str) and body["error"]["type"].endswith("_error"), body
        return str(body["error"]["message"])
    if client == "gemini":  # gemini.md §5.1: error first (here: alone), a numeric code, Google's status name
        assert set(body) == {"error"} and set(body["error"]) >= {"code", "message", "status"}, body
        assert isinstance(body["error"]["code"], int) and body["error"]["status"] in GOOGLE_STATUS.values(), body
        return str(body["error"]["message"])
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "param", "code"}, body
    return str(body["error"]["message"])


_STATUS_ERRORS: dict[str, dict[int, type[Exception]]] = {
    "anthropic": {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError, 429: anthropic.RateLimitError,
                  500: anthropic.InternalServerError, 502: anthropic.InternalServerError,
                  529: anthropic.OverloadedError},
    "chat": {400: openai.BadRequestError, 401: openai.AuthenticationError, 429: openai.RateLimitError,
             500: openai.InternalServerError, 502: openai.InternalServerError, 503: openai.InternalServerError},
}
_STATUS_ERRORS["responses"] = _STATUS_ERRORS["chat"]
# google-genai: ClientError for 4xx, ServerError for 5xx (errors.APIError.raise_error)
_STATUS_ERRORS["gemini"] = {status: genai_errors.ClientError if status < 500 else genai_errors.ServerError
                            for status in GOOGLE_STATUS}


def _check_before_first_byte(fault: Fault, client: str, out: Outcome, cap: Captured) -> None:
    status = fault.status[client] if isinstance(fault.status, dict) else fault.status
    assert status is not None
    assert cap.status == status, f"HTTP {cap.status}, expected {status}: {cap.body[:300]!r}"
    assert cap.headers.get("content-type", "").startswith("application/json"), cap.headers
    assert cap.complete, f"the error body did not end cleanly: {cap.error!r}"
    message = _error_message(client, json.loads(cap.body))
    assert fault.needle in message, message
    assert "<html" not in message.lower() or "html" in fault.name, message
    if fault.retry_after:
        assert cap.headers.get("retry-after") == fault.retry_after, "Retry-After was not passed on"
    err = json.loads(cap.body)["error"]
    if client in fault.kind:
        assert fault.kind[client] in (err.get("type"), err.get("code"), err.get("status")), err
    # The SDK raises the class its own retry logic keys on (429 and 5xx are retryable).
    assert isinstance(out.exc, _STATUS_ERRORS[client][status]), repr(out.exc)
    if client == "gemini":
        assert isinstance(out.exc, genai_errors.APIError)
        assert err["code"] == status and (out.exc.code, out.exc.status) == (status, err["status"]), repr(out.exc)
        assert err["status"] == GOOGLE_STATUS[status], f"HTTP {status} is {GOOGLE_STATUS[status]}, not {err['status']}"
        assert out.exc.message == message
        return
    assert isinstance(out.exc, (anthropic.APIStatusError, openai.APIStatusError))
    assert out.exc.status_code == status


_CLEAN_STOP = re.compile(r"^(?:event: (?:message_stop|response\.completed)|data: \[DONE\]"
                         r'|data: \{"type": ?"(?:message_stop|response\.completed)".*)$', re.M)


def _check_mid_stream(fault: Fault, client: str, upstream: str, out: Outcome, cap: Captured) -> None:
    raw = cap.body
    assert cap.status == 200, cap.status
    clean_stops = _CLEAN_STOP.findall(raw.decode("utf-8", "replace"))  # never after a failure (nor anywhere here)
    if client == "gemini":  # a Gemini stream says it is complete with its finishReason (gemini.md §4.3 item 8)
        clean_stops += re.findall(r'"finishReason": ?"[A-Z_]+"', raw.decode("utf-8", "replace"))
    assert not clean_stops, f"a clean stop in a failed stream: {clean_stops}: {raw[-300:]!r}"
    if upstream == client:
        # Pass-through: the upstream's bytes, untranslated (its own error event, or the cut itself); the
        # SDK must still not report success.
        assert out.exc is not None, f"the {client} SDK returned normally: {out.events}"
        return
    # A failure after the first byte: the client's error event, then a clean end of the HTTP body.
    assert cap.complete, f"the client's connection was cut instead of ending with an error event: {cap.error!r}; " \
                         f"received {raw[-300:]!r}"
    # The client's grammar holds and its error event is the last thing it gets; the SDK raises (no
    # truncated result, no broken connection) with the event's message.
    if client == "anthropic":
        named = stream_grammar.check_anthropic_stream(raw)
        assert named[-1][0] == "error", named[-1]
        err = named[-1][1]["error"]
        message, kind = err["message"], err["type"]
        streamed = "".join(d["delta"].get("text", "") for n, d in named if n == "content_block_delta")
        assert isinstance(out.exc, anthropic.APIStatusError) and message in str(out.exc), repr(out.exc)
        assert "message_stop" not in out.events
    elif client == "chat":
        chunks = stream_grammar.check_chat_stream(raw)
        err = chunks[-1]["error"]
        message, kind = err["message"], err["type"]
        streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
        assert isinstance(out.exc, openai.APIError) and not isinstance(out.exc, openai.APIConnectionError), \
            repr(out.exc)
        assert message in str(out.exc)
    elif client == "gemini":
        chunks = stream_grammar.check_gemini_stream(raw)  # no finishReason before an error object
        assert "error" in chunks[-1], f"the stream ended without its error: {chunks[-1]}"
        err = chunks[-1]["error"]
        message, kind = err["message"], err["status"]
        assert err["status"] == GOOGLE_STATUS[err["code"]], err  # the name goes with the code (gemini.md §5.1)
        streamed = "".join(p.get("text", "") for c in chunks[:-1] for p in c["candidates"][0]["content"]["parts"]
                           if not p.get("thought"))
        # google-genai raises at the error event (gemini.md §4.4): ClientError/ServerError with its code and status
        expected = genai_errors.ClientError if err["code"] < 500 else genai_errors.ServerError
        assert isinstance(out.exc, expected), repr(out.exc)
        assert (out.exc.code, out.exc.status, out.exc.message) == (err["code"], err["status"], message)
        assert out.events and all(e == "chunk" for e in out.events), out.events  # it yielded the text, no finish
    else:
        events = stream_grammar.check_responses_stream(raw)
        assert events[-1]["type"] == "response.failed", events[-1]["type"]  # the last event, nothing after it
        err = events[-1]["response"]["error"]
        message, kind = err["message"], err["code"]
        streamed = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        # openai's Responses helper does not raise on response.failed; get_final_response must refuse.
        assert out.events and out.events[-1] == "response.failed", out.events[-3:]
        assert isinstance(out.exc, RuntimeError) and "response.completed" in str(out.exc), repr(out.exc)
    assert isinstance(message, str) and message
    assert fault.needle in message, message
    assert streamed.startswith("abcd"), f"what the upstream sent before the fault was lost: {streamed!r}"
    if client in fault.kind:
        assert kind == fault.kind[client], (kind, message)


@pytest.mark.parametrize(("fault", "client", "upstream"), list(_cases()))
def test_fault(matrix: Matrix, mock: MockUpstream, fault: Fault, client: str, upstream: str) -> None:
    reply = mock.next_reply(fault.reply(upstream)) if fault.reply else None
    sdk, transport = _sdk(client, matrix.proc.url)
    handshakes = matrix.untrusted.handshakes
    started = time.monotonic()
    try:
        out = _drive(client, sdk, f"{fault.family}-{upstream}-m")
    finally:
        if reply is not None:
            reply.release.set()
    elapsed = time.monotonic() - started
    assert elapsed < fault.max_seconds, f"took {elapsed:.1f} s"
    assert len(transport.captured) == 1, "one request, no retries"
    cap = transport.captured[0]
    if fault.status is not None:
        _check_before_first_byte(fault, client, out, cap)
    else:
        _check_mid_stream(fault, client, upstream, out, cap)
    if fault.family == "untrusted":
        assert matrix.untrusted.handshakes > handshakes, "the bridge never tried the TLS upstream"
    if fault.reply is not None:
        assert len(mock.requests) == 1, "exactly one upstream request"


# --- what each SDK does with the raw stream (no helper) on its format's in-stream error event ---------


@pytest.mark.parametrize("client", CLIENTS)
def test_raw_sdk_stream_on_the_clients_error_event(matrix: Matrix, mock: MockUpstream, client: str) -> None:
    """``create(stream=True)`` iterated by hand: Anthropic and Chat raise at the error event; openai's
    Responses stream does not raise on ``response.failed``, it yields it as the last event (so an agent
    must look at the event type: the bridge makes sure there is one, and nothing after it). google-genai's
    chat helper (``chats.send_message_stream``, which keeps the history) raises too, and keeps no turn."""
    upstream = TRANSLATING[client]
    mock.next_reply(Reply(text="abcdefgh", error_after=BEFORE[upstream], error_message=MESSAGE,
                          error_type="rate_limit_exceeded" if upstream != "anthropic" else "rate_limit_error"))
    sdk, _ = _sdk(client, matrix.proc.url)
    model = f"ok-{upstream}-m"
    messages = [{"role": "user", "content": "hi"}]
    seen: list[Any] = []
    if client == "anthropic":
        with pytest.raises(anthropic.APIStatusError) as e:
            for ev in sdk.messages.create(model=model, max_tokens=64, messages=messages, stream=True):
                seen.append(ev.type)
        assert MESSAGE in str(e.value) and "message_stop" not in seen
        assert isinstance(e.value.body, dict) and e.value.body["error"]["type"] == "rate_limit_error"
    elif client == "chat":
        with pytest.raises(openai.APIError) as e2:
            for chunk in sdk.chat.completions.create(model=model, messages=messages, stream=True):
                seen.append(chunk.choices[0].finish_reason if chunk.choices else None)
        assert MESSAGE in str(e2.value) and not any(seen)  # no finish_reason before the error
    elif client == "gemini":
        chat = sdk.chats.create(model=model)
        with pytest.raises(genai_errors.ClientError) as e3:
            for gchunk in chat.send_message_stream("hi"):
                seen.append(gchunk.candidates[0].finish_reason if gchunk.candidates else None)
        assert (e3.value.code, e3.value.status, e3.value.message) == (429, "RESOURCE_EXHAUSTED", MESSAGE)
        assert seen and not any(seen)  # the text came, no finishReason before the error
        assert not [c for c in chat.get_history(curated=True) if c.role == "model"]  # no half answer kept
    else:
        for ev in sdk.responses.create(model=model, input=messages, stream=True):
            seen.append(ev)
        assert seen[-1].type == "response.failed" and seen[-1].response.error.message == MESSAGE
        assert seen[-1].response.status == "failed"
        assert not any(ev.type in ("response.completed", "response.incomplete") for ev in seen)


# --- 429 and 5xx stay retryable: the SDK's own retry logic gets the second attempt through -----------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("client", CLIENTS)
def test_sdk_retries_a_retryable_status(matrix: Matrix, mock: MockUpstream, client: str, status: int) -> None:
    upstream = TRANSLATING[client]
    # retry-after-ms: both SDKs honour it, so the retry comes at once
    mock.next_reply(Reply(status=status, error_message=MESSAGE, headers={"retry-after-ms": "10"}))
    mock.next_reply(Reply(text="second time lucky"))
    transport = Transport()
    http = httpx2.Client(transport=transport)
    messages = [{"role": "user", "content": "hi"}]
    model = f"ok-{upstream}-m"
    if client == "anthropic":
        sdk = anthropic.Anthropic(base_url=matrix.proc.url, api_key=CLIENT_KEY, max_retries=1, timeout=10,
                                  http_client=http)
        text = sdk.messages.create(model=model, max_tokens=64, messages=messages).content[0].text  # type: ignore
    elif client == "gemini":  # google-genai retries only when told to, by status code (429, 5xx); no Retry-After
        gemini = _gemini(matrix.proc.url, http, genai_types.HttpRetryOptions(attempts=2, initial_delay=0.01,
                                                                            max_delay=0.05, jitter=0))
        text = gemini.models.generate_content(model=model, contents="hi").text
    else:
        oai = openai.OpenAI(base_url=matrix.proc.url + "/v1", api_key=CLIENT_KEY, max_retries=1, timeout=10,
                            http_client=http)
        if client == "chat":
            text = oai.chat.completions.create(model=model, messages=messages).choices[0].message.content  # type: ignore
        else:
            text = oai.responses.create(model=model, input=messages).output_text  # type: ignore
    assert text == "second time lucky"
    first, *retries = [c.status for c in transport.captured]
    assert first == (529 if client == "anthropic" and status == 503 else status)  # A's 529 is OpenAI's 503
    assert retries == [200]
    assert transport.captured[0].headers.get("retry-after-ms") == "10"
    assert len(mock.requests) == 2


def test_a_stream_the_bridge_cannot_decode_ends_with_the_error_event(bridge, mock: MockUpstream) -> None:
    """An upstream that says gzip and sends something else: the decoder fails inside the stream
    callable; the client still gets an honest end (its error event), never a cut or a crash."""
    proc = bridge("chat")
    mock.next_reply(text="Hello there", headers={"content-encoding": "gzip"})
    client = anthropic.Anthropic(base_url=proc.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as s:
            s.get_final_message()
    assert "the upstream's compressed stream is corrupt: not valid gzip" in str(excinfo.value)
    assert "Traceback" not in proc.log()  # the upstream's fault, named as such: not a bug of the bridge


# --- a Gemini stream asked for without alt=sse is one JSON array: a failure is its last element -------


@pytest.mark.parametrize(("upstream", "fault"), [
    ("anthropic", "cut"), ("anthropic", "error-event"), ("gemini", "error-event"),
    ("gemini", "cut")],
    ids=["cut-translated", "error-event-translated", "error-event-pass-through", "cut-pass-through"])
def test_a_gemini_json_array_stream_ends_with_its_error_element(matrix: Matrix, mock: MockUpstream, upstream: str,
                                                                 fault: str) -> None:
    """gemini.md §4.2: without ``alt=sse`` the answer is one streamed JSON array (Google's REST reader, not the
    SDKs). A failure after the first byte is its last element, ``{"error": …}``, and the array is closed, so
    the body is still JSON and the reader raises on the error; no ``finishReason`` before it."""
    mock.next_reply(Reply(text="abcdefgh", cut_after=BEFORE[upstream]) if fault == "cut" else Reply(
        text="abcdefgh", error_after=BEFORE[upstream], error_message=MESSAGE,
        error_type="rate_limit_error" if upstream == "anthropic" else "RESOURCE_EXHAUSTED"))
    with httpx2.Client(base_url=matrix.proc.url, timeout=10) as http:
        r = http.post(f"/v1beta/models/ok-{upstream}-m:streamGenerateContent",
                      json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                      headers={"x-goog-api-key": CLIENT_KEY})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.headers
    chunks = stream_grammar.check_gemini_stream(r.content, "json-array")
    assert "error" in chunks[-1] and b'"finishReason"' not in r.content, r.content[-300:]
    err = chunks[-1]["error"]
    if fault == "cut":
        assert (err["code"], err["status"]) == (502, "INTERNAL") and "broke off" in err["message"], err
    else:
        assert (err["code"], err["status"], err["message"]) == (429, "RESOURCE_EXHAUSTED", MESSAGE), err
    assert "".join(p.get("text", "") for c in chunks[:-1] for p in c["candidates"][0]["content"]["parts"]) \
        .startswith("abcd"), chunks
