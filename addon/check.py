"""Endpoint self-test: ``python -m addon.check [config.yaml] [--endpoint NAME] [--offline]``.

Loads the config as the addon does, then for every endpoint reports: the config, the key's env var
(its name only), whether each URL answers at all, and for each format the endpoint offers one tiny
real request (one user message, ``max_tokens`` 16, one tool), non-streamed and streamed, rendered
and parsed by the same format modules the bridge uses. Exit status: 0 all passed, 1 a check failed,
2 the config (or ``--endpoint``) is wrong.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import httpx

from . import formats
from .accumulate import accumulate
from .codex_login import LoginError, jwt_exp, read_login
from .config import ConfigError, Endpoint, load_config
from .errors import UpstreamError, UpstreamProtocolError
from .formats import Format
from .formats.common import JSON, Context, dumps
from .ir import Message, Request, Response, Role, Text, Tool, ToolCall
from .sse import SSEDecoder

__all__ = ["Row", "probe_request", "pick_model", "build", "parse_answer", "table", "check_endpoint", "main"]

_GLOB = set("*?[")
GET_TIME = Tool(name="get_time", description="The current time in a time zone.",
                parameters={"type": "object", "required": ["timezone"],
                            "properties": {"timezone": {"type": "string", "description": "IANA name, e.g. UTC"}}})


@dataclass(frozen=True, slots=True)
class Row:
    endpoint: str
    check: str
    ok: bool
    detail: str = ""
    status: int | None = None
    ms: int | None = None


def probe_request(model: str, stream: bool, max_tokens: int = 16) -> Request:
    """The tiny request every format check sends: "Say OK." with one tool offered."""
    return Request(model=model, messages=(Message(role=Role.USER, content=(Text(text="Say OK."),)),),
                   tools=(GET_TIME,), max_tokens=max_tokens, stream=stream)


def pick_model(ep: Endpoint, fmt: str, flavor: str | None, override: str | None = None) -> str:
    """The model to ask for, before the endpoint's rewrite: ``--model``, the first literal ``models``
    entry, the first rewrite target, else the format's own probe model."""
    literal = [m for m in ep.models if not _GLOB & set(m)]
    return override or next(iter(literal), None) or next((t for _, t in ep.rewrite), None) \
        or formats.get(fmt).probe_model(flavor)


def build(ep: Endpoint, fmt: str, base: str, flavor: str | None, model: str,
          stream: bool) -> tuple[str, dict[str, str], JSON, Context]:
    """URL, headers, body and context of one probe, as the bridge would send a translated request."""
    limit = min(16, ep.max_tokens_limit or 16)
    request = probe_request(ep.upstream_model(model), stream, limit)
    counter = itertools.count(1)
    ctx = Context(new_id=lambda prefix: f"{prefix}check{next(counter)}", created=int(time.time()), request=request,
                  client_model=model, default_max_tokens=ep.default_max_tokens, max_tokens_limit=ep.max_tokens_limit,
                  drop_params=ep.drop_params, flavor=flavor)
    module = formats.get(fmt)
    body = module.render_request(request, ctx)
    for key in ep.drop_params:
        body.pop(key, None)
    headers = {"content-type": "application/json", "accept-encoding": "identity",
               **module.auth_headers(ep.api_key(), ep.auth), **module.REQUIRED_HEADERS, **dict(ep.headers),
               **_login_headers(ep)}
    return module.upstream_url(base, request.model, module.streams(body, request), "generate"), headers, body, ctx


def parse_answer(fmt: Format, ctx: Context, content_type: str, chunks: Sequence[bytes], asked_stream: bool) -> Response:
    """An upstream 2xx answer, SSE or JSON as the bridge decides it, folded into one response.

    Raises :class:`UpstreamProtocolError` when it is not this format, :class:`UpstreamError` for an
    error reported inside a stream."""
    if content_type.startswith("text/event-stream") or (not content_type and asked_stream):
        decoder, parser = SSEDecoder(), fmt.StreamParser(ctx)
        events = [ev for chunk in chunks for sse in decoder.feed(chunk) for ev in parser.feed(sse)]
        return accumulate(events + [ev for sse in decoder.close() for ev in parser.feed(sse)] + parser.close())
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        raise UpstreamProtocolError(f"not JSON and not SSE ({content_type or 'no content type'})") from None
    if not isinstance(data, dict) or not fmt.is_answer(data, False):
        keys = ", ".join(list(data)[:6]) if isinstance(data, dict) else type(data).__name__
        raise UpstreamProtocolError(f"a JSON body of another shape (has: {keys})")
    return accumulate(fmt.response_events(data, ctx))


def describe(resp: Response) -> str:
    calls = [p.name for p in resp.content if isinstance(p, ToolCall)]
    text = "".join(p.text for p in resp.content if isinstance(p, Text)).strip()
    said = f"tool call {', '.join(calls)}" if calls else json.dumps(text[:30]) if text else "no text"
    return f"{said} ({resp.raw_stop_reason or resp.stop_reason.value})"


def _reason(e: httpx.HTTPError, timeout: float) -> str:
    if isinstance(e, httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    if isinstance(e, httpx.ConnectError):
        return "connection refused" if "refused" in str(e).lower() else f"cannot connect: {e}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _ms(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)


def check_reachable(client: httpx.Client, ep: Endpoint, label: str, base: str, timeout: float) -> Row:
    """Any HTTP answer to ``GET base`` (a 404 too) means the host and port answer."""
    start = time.perf_counter()
    try:
        resp = client.get(base, headers=dict(ep.headers))
    except httpx.HTTPError as e:
        return Row(ep.name, f"reachable {label}", False, f"{base}: {_reason(e, timeout)}; {label} checks skipped",
                   ms=_ms(start))
    return Row(ep.name, f"reachable {label}", True, base, resp.status_code, _ms(start))


def check_format(client: httpx.Client, ep: Endpoint, fmt: str, base: str, flavor: str | None, model: str,
                 stream: bool, timeout: float) -> Row:
    label = f"{fmt}/{flavor}" if flavor else fmt
    url, headers, body, ctx = build(ep, fmt, base, flavor, model, stream)
    module = formats.get(fmt)
    asked_stream = module.streams(body, probe_request(model, stream))
    name = f"{label} stream" if stream else f"{label} folded" if asked_stream else label
    row = Row(ep.name, name, False)
    start = time.perf_counter()
    try:
        with client.stream("POST", url, headers=headers, content=dumps(body).encode()) as resp:
            row = replace(row, status=resp.status_code)
            if resp.status_code >= 400:
                return replace(row, ms=_ms(start), detail=module.parse_error(resp.status_code, resp.read()).message)
            chunks: list[bytes] = []
            first: int | None = None
            for chunk in resp.iter_bytes():
                first = _ms(start) if first is None else first
                chunks.append(chunk)
            answer = parse_answer(module, ctx, resp.headers.get("content-type", ""), chunks, asked_stream)
    except httpx.HTTPError as e:
        return replace(row, ms=_ms(start), detail=_reason(e, timeout))
    except UpstreamProtocolError as e:
        return replace(row, ms=_ms(start), detail=f"answer is not {label}: {e.message}")
    except UpstreamError as e:
        return replace(row, ms=_ms(start), detail=f"error in the answer: {e.message}")
    except Exception as e:  # a parser tripping over a foreign shape
        return replace(row, ms=_ms(start), detail=f"answer is not {label}: {type(e).__name__}: {e}")
    shown = body.get("model", model)
    detail = f"{shown}: {describe(answer)}" + (f", first byte {first} ms" if stream and first is not None else "")
    return replace(row, ok=True, ms=_ms(start), detail=detail)


def check_endpoint(ep: Endpoint, offline: bool, model: str | None = None, timeout: float = 30.0) -> list[Row]:
    offered = ep.offers
    labels = [f"{o.format}/{o.flavor}" if o.flavor else o.format for o in offered]
    rows = [Row(ep.name, "config", True, "offers " + ", ".join(labels))]
    if ep.codex_home:
        rows.append(_login_row(ep))
    elif ep.api_key_env is None:
        rows.append(Row(ep.name, "key", True, "none needed (no api_key_env)"))
    else:
        rows.append(Row(ep.name, "key", bool(ep.api_key()),
                        f"{ep.api_key_env} is set" if ep.api_key() else f"{ep.api_key_env} is empty"))
    if offline:
        return rows
    with httpx.Client(timeout=timeout) as client:
        for offer, label in zip(offered, labels, strict=True):
            rows.append(check_reachable(client, ep, label, offer.base, timeout))
            if not rows[-1].ok:
                continue
            chosen = pick_model(ep, offer.format, offer.flavor, model)
            rows += [check_format(client, ep, offer.format, offer.base, offer.flavor, chosen, stream, timeout)
                     for stream in (False, True)]
    return [redact(row, ep.api_key()) for row in rows]


def _login_headers(ep: Endpoint) -> dict[str, str]:
    """A ChatGPT login's headers as they are now (the check never refreshes: the bridge does, and writes back)."""
    if not ep.codex_home:
        return {}
    try:
        return dict(read_login(ep.codex_home).headers())
    except LoginError:
        return {}


def _login_row(ep: Endpoint) -> Row:
    assert ep.codex_home
    try:
        login = read_login(ep.codex_home)
    except LoginError as e:
        return Row(ep.name, "key", False, e.message)
    exp = jwt_exp(login.access_token)
    left = None if exp is None else exp - time.time()
    if left is not None and left <= 0:
        return Row(ep.name, "key", False, f"ChatGPT login in {login.path}: the access token expired {-left:.0f} s "
                   "ago; the bridge refreshes it when it runs (the check does not)")
    return Row(ep.name, "key", True, f"ChatGPT login in {login.path}" +
               (f", access token valid for {left:.0f} s" if left is not None else ""))


def redact(row: Row, key: str | None) -> Row:
    """Never show a key, even one an upstream echoes in its error message."""
    detail = " ".join(row.detail.split())
    detail = detail if len(detail) <= 160 else detail[:157] + "..."
    return replace(row, detail=detail.replace(key, "***") if key else detail)


def table(rows: Sequence[Row]) -> str:
    head = ("ENDPOINT", "CHECK", "RESULT", "HTTP", "LATENCY", "DETAIL")
    cells = [head] + [(r.endpoint, r.check, "OK" if r.ok else "FAIL", "" if r.status is None else str(r.status),
                       "" if r.ms is None else f"{r.ms} ms", r.detail) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = ["  ".join([*(c[i].rjust(widths[i]) if i in (3, 4) else c[i].ljust(widths[i]) for i in range(5)), c[5]])
             for c in cells]
    failed = sum(not r.ok for r in rows)
    summary = f"{len(rows)} checks, all passed" if not failed else f"{failed} of {len(rows)} checks failed"
    return "\n".join([line.rstrip() for line in lines] + ["", summary])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addon.check", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="config.yaml", help="the bridge's config (default config.yaml)")
    parser.add_argument("--endpoint", metavar="NAME", help="check this endpoint only")
    parser.add_argument("--offline", action="store_true", help="check the config and keys only: no network")
    parser.add_argument("--model", help="the model to ask for (default: from the endpoint's models / rewrite)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds per request (default 30)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    endpoints = [ep for ep in config.endpoints if args.endpoint in (None, ep.name)]
    if not endpoints:
        names = ", ".join(ep.name for ep in config.endpoints)
        print(f"no endpoint named {args.endpoint!r} in {args.config}; it has: {names}", file=sys.stderr)
        return 2
    rows = [row for ep in endpoints for row in check_endpoint(ep, args.offline, args.model, args.timeout)]
    print(table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
