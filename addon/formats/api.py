"""What a format plug-in is: the names each package under ``addon/formats/`` exports, checked by mypy
against :class:`Format`, and the small types it shares with the glue.

A format owns everything about its API: how a request in it is recognised (paths, headers, and where
its model and stream flag live), requests and answers ⇄ IR, its stream grammar, errors and statuses,
credentials and headers, and the URL an upstream of it is asked at. The rest of the bridge asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import BridgeError, UpstreamError
from ..ir import BlockStart, Event, Request, Response
from ..sse import SSEEvent
from .common import JSON, Context

__all__ = ["EventEmitter", "EventParser", "Format", "Operation"]


@dataclass(frozen=True, slots=True)
class Operation:
    """What a request is: its format, and the operation (generate | count_tokens | models | probe |
    websocket | unknown: a path under the format's prefix that the bridge does not serve). ``model`` and
    ``stream`` are set when the format carries them in the path; None: they are in the body.
    ``framing``: how a streamed answer is framed for this client, ``sse`` or ``json-array`` (Gemini's
    stream without ``alt=sse``), passed to its emitter as ``Context.framing``."""

    client_format: str
    kind: str
    model: str | None = None
    stream: bool | None = None
    framing: str = "sse"


class EventParser(Protocol):
    """Upstream SSE events → IR events (sans I/O); ``close`` raises if the stream never finished."""

    def feed(self, sse: SSEEvent) -> list[Event]: ...
    def close(self) -> list[Event]: ...


class EventEmitter(Protocol):
    """IR events → the client's SSE bytes (sans I/O)."""

    def feed(self, event: Event) -> list[bytes]: ...


class Format(Protocol):
    """What a format package provides; the packages in FORMATS are checked against it by mypy."""

    NAME: str
    # recognising a client's request (paths.py)
    HEADER_MARKS: tuple[str, ...]  # request headers only this format's clients send
    SERVES: str  # its operations, as the error for a path no format serves lists them

    # path: without the query string and a trailing slash; query: without the "?"
    def recognise(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Operation | None: ...
    def claims(self, path: str) -> bool: ...  # a path under this format's prefix (its errors answer it)
    # asking an upstream (paths.py, request.py)
    def upstream_url(self, base: str, model: str, stream: bool, kind: str) -> str: ...
    def streams(self, body: JSON, req: Request) -> bool: ...  # whether a rendered request asks for a stream
    AUTH_HEADERS: tuple[str, ...]
    OWN_HEADERS: tuple[str, ...]
    REQUIRED_HEADERS: dict[str, str]
    def auth_headers(self, api_key: str | None, auth: str | None) -> dict[str, str]: ...
    def passes_through(self, body: bytes, flavor: str) -> bool: ...
    def probe_model(self, flavor: str | None) -> str: ...  # a model to try an endpoint with (check.py)
    # requests and answers ⇄ IR (request.py, answer.py)
    def is_answer(self, first: JSON, stream: bool) -> bool: ...
    def parse_request(self, body: JSON) -> Request: ...
    def render_request(self, req: Request, ctx: Context) -> JSON: ...
    def response_events(self, body: JSON, ctx: Context) -> list[Event]: ...
    def render_response(self, resp: Response, ctx: Context) -> JSON: ...
    def parse_error(self, status: int, body: bytes) -> UpstreamError: ...
    def render_error(self, err: BridgeError) -> tuple[int, JSON]: ...
    def render_stream_error(self, err: BridgeError) -> bytes: ...
    def render_models(self, names: list[str], created: int) -> JSON: ...
    # a pass-through answer object or stream event: the client's model name put back (model rewrite)
    def rename_model(self, obj: JSON, new: str) -> bool: ...
    def block_channel(self, start: BlockStart) -> str: ...  # blocks on one channel go one at a time

    @property
    def TOKEN_COUNT(self) -> TokenCount | None: ...  # its token-counting operation, if its API has one
    @property
    def StreamParser(self) -> Callable[[Context], EventParser]: ...  # the class the module exports
    @property
    def StreamEmitter(self) -> Callable[[Context], EventEmitter]: ...


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A format's token-counting operation: its request read as IR, and its answer for a count."""

    parse: Callable[[JSON], Request]
    render: Callable[[int], JSON]
