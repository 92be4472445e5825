"""The wire formats the bridge speaks, by name. Each module exports the names :class:`Format` lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..errors import BridgeError, UpstreamError
from ..ir import BlockStart, Event, Request, Response
from ..sse import SSEEvent
from . import anthropic, chat, responses
from .common import JSON, Context

__all__ = ["FORMATS", "EventEmitter", "EventParser", "Format", "get"]


class EventParser(Protocol):
    """Upstream SSE events → IR events (sans I/O); ``close`` raises if the stream never finished."""

    def feed(self, sse: SSEEvent) -> list[Event]: ...
    def close(self) -> list[Event]: ...


class EventEmitter(Protocol):
    """IR events → the client's SSE bytes (sans I/O)."""

    def feed(self, event: Event) -> list[bytes]: ...


class Format(Protocol):
    """What a format module provides; the modules in FORMATS are checked against it by mypy."""

    NAME: str
    AUTH_HEADERS: tuple[str, ...]
    OWN_HEADERS: tuple[str, ...]
    REQUIRED_HEADERS: dict[str, str]
    ANSWER_MARK: tuple[str, str]
    STREAM_MARK: tuple[str, str]


    def parse_request(self, body: JSON) -> Request: ...
    def render_request(self, req: Request, ctx: Context) -> JSON: ...
    def response_events(self, body: JSON, ctx: Context) -> list[Event]: ...
    def render_response(self, resp: Response, ctx: Context) -> JSON: ...
    def parse_error(self, status: int, body: bytes) -> UpstreamError: ...
    def render_error(self, err: BridgeError) -> tuple[int, JSON]: ...
    def render_stream_error(self, err: BridgeError) -> bytes: ...
    def auth_headers(self, api_key: str | None, auth: str | None) -> dict[str, str]: ...
    def passes_through(self, body: bytes, flavor: str) -> bool: ...
    def render_models(self, names: list[str], created: int) -> JSON: ...
    def block_channel(self, start: BlockStart) -> str: ...  # blocks on one channel go one at a time

    @property
    def StreamParser(self) -> Callable[[Context], EventParser]: ...  # the class the module exports
    @property
    def StreamEmitter(self) -> Callable[[Context], EventEmitter]: ...


FORMATS: dict[str, Format] = {anthropic.NAME: anthropic, chat.NAME: chat, responses.NAME: responses}


def get(name: str) -> Format:
    return FORMATS[name]
