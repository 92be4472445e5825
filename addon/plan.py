"""What the bridge does with one request: a pure decision that the addon carries out.

``plan`` looks at the operation, the headers and the body (parsed once), asks the router which
endpoint serves the model, and says: answer here (an error in the client's format, the model list, a
local token count), pass the request through (perhaps with the model renamed), or translate it (an
:class:`~addon.translate.Exchange`). No mitmproxy here: the addon only applies the plan.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import parse_qsl, urlencode

from . import formats
from .access import CREDENTIAL_HEADERS, Forbidden, without_key_params
from .config import Config, Endpoint
from .errors import BadRequest, BridgeError, ErrorKind
from .formats import Format
from .formats.common import JSON, Budget, Context, dump_bytes, dumps
from .health import HEALTH
from .ir import Document, Image, Reasoning, Request, Text, ToolCall, ToolResult
from .metrics import METRICS
from .routing import Operation, Route, candidates, no_endpoint
from .translate import JSON_TYPE, Exchange, ModelRenamer, error_response, parse_json_body

__all__ = ["Plan", "Summary", "plan", "estimate_tokens"]

_GLOB = set("*?[")


class Summary(TypedDict, total=False):
    """What the bridge says about one request: ``flow.metadata["bridge"]`` (mitmweb's list, recorded
    flows, replays) and its log line (flowlog.py). Plain JSON values, so a flow file can hold it."""

    client_format: str
    client: str  # the named client that asked (config ``clients``), never its key
    operation: str  # generate | count_tokens | models | probe | ready | metrics | websocket | unknown
    transport: str  # "websocket": a turn of a WebSocket connection (wsfront.py), sent back over HTTP
    connection: str  # that connection's flow id (its first 8 characters)
    mode: str  # pass-through | conversion | local | local estimate | rejected
    endpoint: str
    model: str  # as the client asked
    upstream_model: str
    upstream_format: str
    warnings: list[str]  # what a translation dropped or approximated, and endpoints skipped
    error: str  # why a request was rejected
    outcome: str  # how the answer went: streamed, HTTP 200, error: …, failed: …
    attempts: int  # endpoints tried, when failover applies
    status: int | None
    duration_ms: int
    first_byte_ms: int | None
    usage: dict[str, int | None]


@dataclass(slots=True)
class Plan:
    client: Format
    summary: Summary = field(default_factory=Summary)  # flow.metadata["bridge"] and the log line
    answer: tuple[int, str, bytes] | None = None  # answer here; nothing goes upstream
    url: str | None = None  # the upstream URL, query string included
    body: bytes | None = None  # a new body; None keeps the client's bytes untouched
    drop_headers: set[str] = field(default_factory=set)
    set_headers: dict[str, str] = field(default_factory=dict)
    exchange: Exchange | None = None  # the answer is translated
    rename: tuple[str, str] | None = None  # a pass-through answer shows (upstream model → client's) again
    framing: str = "sse"  # a pass-through stream's framing, as the client asked (Gemini's JSON array, or SSE)
    endpoint: Endpoint | None = None
    fallbacks: list[Plan] = field(default_factory=list)  # the next endpoints, if this one fails first

    def renamer(self) -> ModelRenamer | None:
        """What puts the client's model name back into a pass-through answer, after a model rewrite; and
        what passes a JSON-array stream on whole object by whole object, which a cut can then close."""
        if self.rename:
            return ModelRenamer(*self.rename, self.client.rename_model, self.framing)
        if self.framing == "json-array":
            return ModelRenamer("", "", lambda obj, new: False, self.framing)
        return None


class TooLarge(BridgeError):
    status = 413
    kind = ErrorKind.REQUEST_TOO_LARGE


class UnsupportedMediaType(BridgeError):
    status = 415
    kind = ErrorKind.INVALID_REQUEST


def _check_body(config: Config, headers: Mapping[str, str], body: bytes) -> None:
    if len(body) > config.max_request_bytes:
        raise TooLarge(f"request body is {len(body)} bytes; this bridge takes at most {config.max_request_bytes} "
                       "(max_request_bytes)")
    media = headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content-type: expected application/json, got {media!r}", param="content-type")


class NotServed(BridgeError):
    status = 404
    kind = ErrorKind.NOT_FOUND


class UpgradeRefused(BridgeError):
    """A WebSocket upgrade to ``…/responses`` (the Codex CLI's first try): 426 is the one answer that
    makes Codex use HTTP at once; 404 or 5xx cost every session ~6 s of retries, 400/429 fail the turn."""

    status = 426
    kind = ErrorKind.INVALID_REQUEST


def plan(config: Config, op: Operation, path: str, headers: Mapping[str, str], body: bytes,
         new_id: Callable[[str], str], now: int, method: str = "POST", redact: Callable[[str], str] = str,
         as_is: bool = False, client_name: str | None = None) -> Plan:
    """Decide. Never raises: a failure becomes an answer in the client's format.

    Who may ask was decided before (``access.py``, at the request's headers); ``body`` is the request
    body as the client meant it (decoded, within ``max_request_bytes``). ``as_is``: a same-format
    endpoint takes the body as it is, whatever its flavour's rules (Codex's own WebSocket turns, relayed
    to the backend Codex itself talks to). ``client_name``: the named client the access rule let in, whose
    ``models`` bound what it may ask for.
    """
    client = formats.get(op.client_format)
    p = Plan(client=client, summary={"client_format": op.client_format, "operation": op.kind})
    if client_name:
        p.summary["client"] = client_name
    try:
        if op.kind == "websocket":
            raise UpgradeRefused(f"the bridge serves the {client.NAME} API over HTTP, not WebSocket: POST "
                                 f"{path.split('?', 1)[0]}")
        if op.kind == "unknown":
            raise NotServed(f"the bridge does not serve {method} {path.split('?', 1)[0]}; it serves "
                            + "; ".join(f.SERVES for f in formats.FORMATS.values()))
        if op.kind == "probe":  # the bridge is up and has its config: that is all a probe asks
            p.answer = (200, JSON_TYPE, b"" if method == "HEAD" else b'{"status":"ok"}')
            p.summary["mode"] = "local"
            return p
        if op.kind in ("ready", "metrics"):  # what the bridge has seen so far (health.py, metrics.py)
            status, content_type, text = HEALTH.answer(config) if op.kind == "ready" else METRICS.answer()
            p.answer = (status, content_type, b"" if method == "HEAD" else text)
            p.summary["mode"] = "local"
            return p
        if op.kind == "models":
            names = _model_names(config, op.client_format)
            p.answer = (200, JSON_TYPE, dump_bytes(client.render_models(names, now)))
            p.summary["mode"] = "local"
            return p
        _check_body(config, headers, body)
        data = parse_json_body(body)
        model = _model_name(data.get("model") if op.model is None else op.model)
        named = config.client(client_name)
        if named is not None and not named.may_use(model):
            p.summary["model"] = model
            raise Forbidden(f"client {named.name} may not use model {model!r} (it may use "
                            f"{', '.join(named.models)})")
        routes = candidates(config, op.client_format, model)
        if not routes:
            raise no_endpoint(config, model)
        query = path.partition("?")[2]
        suffix = f"?{query}" if query else ""
        if any(r.passthrough and r.upstream_model == model for r in routes[:config.max_attempts]):
            _check_unambiguous(body)  # these bytes go on as they are: they must mean what the bridge read
        first, *rest = routes[:config.max_attempts]
        _attempt(p, config, op, first, data, body, suffix, headers, new_id, now, redact, as_is)
        if p.answer is None:
            for r in rest:  # failover targets; one that cannot take this request is left out
                fallback = Plan(client=client, summary={**p.summary})
                try:
                    _attempt(fallback, config, op, r, data, body, suffix, headers, new_id, now, redact, as_is)
                except BridgeError as e:
                    p.summary.setdefault("warnings", []).append(f"endpoint {r.endpoint.name} skipped: {e.message}")
                    continue
                if fallback.answer is None:
                    p.fallbacks.append(fallback)
    except BridgeError as e:
        p.answer = error_response(client, e)
        p.summary.update({"mode": "rejected", "error": e.message})
    except Exception as e:  # a bug here must not let mitmproxy forward the request untranslated
        err = BridgeError(f"the bridge failed on this request ({type(e).__name__}: {e})", status=500)
        p = Plan(client=client, summary={**p.summary, "mode": "rejected", "error": err.message},
                 answer=error_response(client, err))
    return p


def _attempt(p: Plan, config: Config, op: Operation, r: Route, data: JSON, body: bytes, suffix: str,
             headers: Mapping[str, str], new_id: Callable[[str], str], now: int,
             redact: Callable[[str], str] = str, as_is: bool = False) -> None:
    """Fill ``p`` with what to send to one endpoint. Raises :class:`BridgeError`."""
    model = data["model"] if op.model is None else op.model
    suffix = _query(r, suffix, keep_credentials=r.passthrough and not r.endpoint.api_key()
                    and not r.endpoint.codex_home and not config.client_keys_env)
    p.endpoint = r.endpoint
    p.summary.update({"endpoint": r.endpoint.name, "model": model, "upstream_model": r.upstream_model,
                      "upstream_format": r.upstream_format})
    upstream = formats.get(r.upstream_format)
    if op.kind == "count_tokens":
        _count_tokens(p, config, op, r, data, suffix, headers)
        return
    if r.passthrough and (as_is or r.flavor is None or upstream.passes_through(body, r.flavor)):
        p.summary["mode"] = "pass-through"
        stream = data.get("stream") is True if op.stream is None else op.stream
        p.framing = op.framing
        # The client's query as it is (its framing: Gemini's alt=sse or not); the format's own is for
        # requests the bridge translates.
        p.url = upstream.upstream_url(r.base, r.upstream_model, stream, op.kind).partition("?")[0] + suffix
        if r.upstream_model != model:  # only the model changes: everything else stays as sent
            if op.model is None:  # in the body (else the URL above names the upstream's)
                p.body = dump_bytes({**data, "model": r.upstream_model})
            if not r.endpoint.show_target_model:
                p.rename = (r.upstream_model, model)
        _headers(p, config, r, upstream, headers)
        return
    ep = r.endpoint
    ctx = Context(new_id=new_id, created=now, default_max_tokens=ep.default_max_tokens,
                  max_tokens_limit=ep.max_tokens_limit, drop_params=ep.drop_params, flavor=r.flavor,
                  budget=Budget(config.max_answer_bytes), prompt_cache=ep.prompt_cache)
    p.exchange, p.body = Exchange.start(p.client, upstream, data, ctx, upstream_model=r.upstream_model,
                                        show_upstream_model=ep.show_target_model, redact=redact, op=op,
                                        cache_key=_session(headers))
    p.summary.update({"mode": "conversion", "warnings": list(p.exchange.warnings)})
    p.url = _with_query(upstream.upstream_url(r.base, r.upstream_model, p.exchange.upstream_stream, op.kind), suffix)
    p.set_headers.update({"content-type": "application/json", "accept-encoding": "identity"})
    _headers(p, config, r, upstream, headers)


# Headers a client names its session in: Claude Code's, and the Codex CLI's (whose body has its own key too).
_SESSION_HEADERS = ("x-claude-code-session-id", "session-id")


def _session(headers: Mapping[str, str]) -> str | None:
    """The client's session, as the prompt cache key of an upstream that routes by one (OpenAI's): the
    requests of one session land on the same cache, whatever format the client speaks (issue 17)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    session = next((lowered[h] for h in _SESSION_HEADERS if lowered.get(h)), None)
    return session[:64] if session else None


def _with_query(url: str, query: str) -> str:
    """``url`` (which may carry the format's own query, Gemini's ``alt=sse``) with ``query`` (``?…``) added."""
    return url + ("&" + query[1:] if query and "?" in url else query)


def _query(r: Route, client: str, keep_credentials: bool) -> str:
    """The query string for one endpoint. A request passed on keeps the client's (``?beta=true``), minus
    its credentials unless they go on too (as its headers do, _headers); a translated one carries none
    of the client's API into another. The endpoint's own ``query`` (Azure's ``api-version``) comes last.
    """
    if not r.passthrough:
        client = ""
    elif not keep_credentials:
        client = without_key_params(client)
    own = r.endpoint.query
    if not own:
        return client
    if client:
        names = {k.lower() for k, _ in own}
        kept = [(k, v) for k, v in parse_qsl(client[1:], keep_blank_values=True) if k.lower() not in names]
        client = f"?{urlencode(kept)}" if kept else ""
    return (client + "&" if client else "?") + urlencode(own)


def _headers(p: Plan, config: Config, r: Route, upstream: Format, headers: Mapping[str, str]) -> None:
    """The client's credentials never reach a different provider; its format's headers neither.

    Pass-through without a configured key (and without bridge client keys) is the one case where the
    client's own key goes on: the upstream speaks the client's format, and the client chose to send it.
    """
    api_key = r.endpoint.api_key()
    # an endpoint with a ChatGPT login (auth: codex-login) has credentials of its own: the relay adds them
    if api_key or r.endpoint.codex_home or not r.passthrough or config.client_keys_env:
        # Every credential header, not just the formats' own: a client may send its key in any.
        p.drop_headers |= {h for f in formats.FORMATS.values() for h in f.AUTH_HEADERS} | set(CREDENTIAL_HEADERS)
        p.set_headers.update(upstream.auth_headers(api_key, r.endpoint.auth))
    if not r.passthrough:
        p.drop_headers |= set(p.client.OWN_HEADERS)
        p.set_headers.update(upstream.REQUIRED_HEADERS)
    p.set_headers.update(r.endpoint.headers)
    p.drop_headers -= p.set_headers.keys()


_MODEL_NAME_MAX = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _model_name(model: Any) -> str:
    """The model the client asks for: a name that routing, logs and answers can carry as it is."""
    if not isinstance(model, str) or not model:
        raise BadRequest("model: expected a model name", param="model")
    if len(model) > _MODEL_NAME_MAX or _CONTROL.search(model):
        raise BadRequest(f"model: not a model name (control characters, unpaired surrogates or over "
                         f"{_MODEL_NAME_MAX} characters)", param="model")
    return model


def _check_unambiguous(body: bytes) -> None:
    """A key twice at the top level means two requests in one: the bridge would route on the last,
    an upstream given the same bytes may take the first (a model the ``models`` globs never allowed).
    Only a body passed on as it is, that names ``model`` or ``stream`` twice anywhere, is read a second
    time to tell (2 ms for 500 KB); a translated one is rendered from what the bridge read."""
    if body.count(b'"model"') < 2 and body.count(b'"stream"') < 2:
        return
    dups: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:  # called innermost first: the top level last
        keys: set[str] = set()
        dups.clear()
        for k, _ in items:
            if k in keys:
                dups.append(k)
            keys.add(k)
        return dict(items)
    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return  # the first reading took it: its own limits apply
    if dups:
        raise BadRequest(f"request body has the key {dups[0]!r} more than once", param=dups[0])


def _model_names(config: Config, client_format: str) -> list[str]:
    """The model names the config spells out (globs cannot be listed), in endpoint order. When it spells
    out none (only globs, as the shipped config), the rewrite targets a client may also ask for by name:
    those the bridge routes, so an empty list never hides a usable model."""
    names: list[str] = []
    for ep in config.endpoints:
        for name in (*ep.models, *(source for source, _ in ep.rewrite)):
            if not _GLOB & set(name) and name not in names:
                names.append(name)
    if not names:
        targets = (target for ep in config.endpoints for _, target in ep.rewrite)
        names = list(dict.fromkeys(t for t in targets if candidates(config, client_format, t)))
    return names


def _count_tokens(p: Plan, config: Config, op: Operation, r: Route, data: JSON, suffix: str,
                  headers: Mapping[str, str]) -> None:
    """Forward to the endpoint's URL in the client's format when it has one; otherwise estimate here."""
    client, counting = p.client, p.client.TOKEN_COUNT
    if counting is None:  # recognise() yields count_tokens only for a format that has it
        raise NotServed(f"the {client.NAME} API has no token count here")
    if r.passthrough:
        p.summary["mode"] = "pass-through"
        p.url = _with_query(client.upstream_url(r.base, r.upstream_model, False, op.kind), suffix)
        if r.upstream_model != data.get("model", r.upstream_model) and op.model is None:
            p.body = dump_bytes({**data, "model": r.upstream_model})
        _headers(p, config, r, client, headers)
        return
    request = counting.parse(data)
    p.summary["mode"] = "local estimate"
    p.answer = (200, JSON_TYPE, dump_bytes(counting.render(estimate_tokens(request))))


_CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text and code
_IMAGE_TOKENS = 1600  # a large image, as Anthropic's image pricing estimates it


def estimate_tokens(req: Request) -> int:
    """A rough local count of a request's input: system, messages and tools. An estimate, not a
    tokenizer: for budgeting when no upstream can count (the README says so)."""
    chars = sum(len(t.text) for t in req.system)
    images = 0
    for msg in req.messages:
        for part in msg.content:
            parts = part.content if isinstance(part, ToolResult) else (part,)
            for piece in parts:
                if isinstance(piece, Text):
                    chars += len(piece.text)
                elif isinstance(piece, Image | Document) and not (isinstance(piece, Document) and piece.text):
                    images += 1
                elif isinstance(piece, Document):
                    chars += len(piece.text or "")
                elif isinstance(piece, ToolCall):
                    chars += len(piece.name) + len(piece.arguments)
                elif isinstance(piece, Reasoning):
                    chars += len(piece.text)
    for tool in req.tools:
        chars += len(tool.name) + len(tool.description or "") + len(dumps(tool.parameters or {}))
    return math.ceil(chars / _CHARS_PER_TOKEN) + images * _IMAGE_TOKENS + 3 * len(req.messages)
