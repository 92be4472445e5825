"""The request on its way out: one mitmproxy addon.

At its headers, a request the bridge handles gets its size limit (``bodylimit``); at its body it is
decoded, planned (``plan``: answer here, pass through, or translate) and rewritten as the plan says —
URL, headers, body, client keys stripped — then sent directly or handed to the failover relay when
more than one endpoint may serve it or an endpoint has timeouts. What the answer half needs is left
in a :class:`~addon.flowstate.FlowState`, by flow id.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, http
from mitmproxy.proxy.mode_specs import ProxyMode

from . import bodylimit, errorpage, formats, record, replay
from .access import presented, strip
from .config import Config
from .decompress import Corrupt, TooLarge, UnknownEncoding, decode_body
from .errors import BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError
from .flowlog import log_flow, model_label
from .flowstate import FlowState, pairs
from .guard import answer_refused
from .plan import Plan, plan
from .redact import Redactor, redacted_url
from .relay import HOP_HEADERS, Attempt, Credentials, Job, Relay
from .routing import Operation, candidates, detect
from .settings import Settings
from .translate import error_response
from .wsbounds import WebSocketBounds
from .wsfront import CLIENT, TURN, WS_URL, Ticket, WebSocketFront
from .wsupstream import SocketTarget

__all__ = ["Forward"]

logger = logging.getLogger("bridge")

# Headers of the client's upgrade, or of an HTTP request, that are not the upstream upgrade's to carry.
_NOT_ON_UPGRADE = HOP_HEADERS | {"content-type", "content-encoding", "accept", "accept-encoding"}
_SEEN_KEYS = 64  # the newest distinct client credentials kept for redaction
# Shorter client "keys" (``unused``, ``sk-local``) are placeholders, not secrets; blanking them would
# change model text that merely contains the word. Real provider keys are far longer.
_SEEN_MIN = 16


class Forward:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flows: dict[str, FlowState] = {}  # by flow id, until the answer half is done with it
        self.relay = Relay()
        self.front = WebSocketFront()  # where WebSocket clients of the Responses API are served
        self.front.router = self._socket_target
        self._upstream_proxy: str | None = None  # --mode upstream: the proxy every upstream is reached through
        self.ws_bounds = WebSocketBounds(lambda: settings.recording, lambda: settings.config.max_answer_bytes
                                         if settings.config else 32 * 1024 * 1024)
        self._seen: dict[str, None] = {}  # credentials clients presented lately: redacted wherever echoed

    async def running(self) -> None:
        upstream = [ProxyMode.parse(m) for m in ctx.options.mode if m.startswith("upstream:")]
        proxy = upstream[0].data if upstream else None
        config = self.settings.config
        size = config.max_relay_connections if config else 1000
        await self.relay.start(verify=not ctx.options.ssl_insecure, proxy=proxy, max_connections=size)
        self._upstream_proxy, self.front.verify = proxy, not ctx.options.ssl_insecure
        await self.front.start()

    async def done(self) -> None:
        await self.relay.stop()
        await self.front.stop()

    def claims(self, flow: http.HTTPFlow) -> bool:
        """Whether the bridge handles this request (the guard answers a refused one in its format)."""
        return self._operation(flow) is not None

    def _operation(self, flow: http.HTTPFlow) -> Operation | None:
        """The API operation this request is, when it is the bridge's to handle: in regular and upstream
        proxy mode only on the LLM API hosts it knows."""
        req, config = flow.request, self.settings.config
        op = detect(req.method, req.path, req.headers)
        if op is None or config is None:
            return op
        ours = flow.client_conn.proxy_mode.type_name not in ("regular", "upstream") or \
            req.pretty_host.lower() in config.intercept_hosts
        return op if ours else None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Before the body is read: its size is bounded (bodylimit.py); the access rule ran just before
        (guard.py, a refused request has its answer already)."""
        config = self.settings.config
        if config is None or flow.response or flow.error or not flow.live:
            return
        op = self._operation(flow)
        if op is None:
            return
        req = flow.request
        req.stream = False  # mitmproxy's stream_large_bodies may have chosen to: the bridge reads it first
        limit = config.max_request_bytes

        def too_large() -> http.Response:
            return answer_refused(flow, op.client_format, op.kind, _too_large(limit))
        length = req.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            flow.response = too_large()  # answered without reading the body
            bodylimit.refuse(req, discard=min(limit, bodylimit.DISCARD))
        else:
            bodylimit.limit(req, bodylimit.Policy(request_limit=limit, too_large=too_large))

    def request(self, flow: http.HTTPFlow) -> None:
        config = self.settings.config
        if config is None or flow.response or flow.error or not flow.live or "bridge" in flow.metadata:
            return
        op = self._operation(flow)
        if op is None:
            return
        if op.kind == "websocket" and self._upgrade(flow, config):
            return
        body = self._body(flow, op, config)
        if body is None:
            return
        made: list[str] = []  # every id the bridge makes for this flow, so a replay can make the same

        def new_id(prefix: str) -> str:
            made.append(prefix + uuid.uuid4().hex[:24])
            return made[-1]
        now = int(time.time())
        req = flow.request
        redact = self.settings.redact.also(self._learn(req))
        p = plan(config, op, req.path, req.headers, body, new_id, now, method=req.method, redact=redact,
                 client_name=flow.metadata.get(CLIENT))
        flow.metadata["bridge"] = p.summary
        if flow.metadata.get(TURN):
            p.summary["transport"] = "websocket"
            p.summary["connection"] = flow.metadata[TURN]
        if self.settings.recording:  # what a recorded flow needs to be translated again (addon/replay.py)
            flow.metadata[replay.CLIENT_REQUEST] = record.client_request(flow, body)
            flow.metadata[replay.IDS] = {"now": now, "ids": made}
        state = FlowState(p, redact, Redactor())
        log = config.logging
        self.settings.log_body(flow, f"request body from the client ({op.client_format})", body,
                               log.log_request_body, redact)
        if p.body is not None and p.answer is None:
            self.settings.log_body(flow, f"request body to the upstream ({p.summary.get('upstream_format')})",
                                   p.body, log.log_request_body, redact)
        if p.answer is not None:
            status, content_type, answer = p.answer
            flow.response = http.Response.make(status, redact.bytes(answer), {"content-type": content_type})
            log_flow(flow, state.summary, status, None, state.started, redact)
            return
        self._apply(flow, state, p, config)

    def _upgrade(self, flow: http.HTTPFlow, config: Config) -> bool:
        """A WebSocket client of the Responses API: its upgrade goes to the bridge's own endpoint
        (``wsfront.py``), whose turns come back here as HTTP requests — to this listener as the reverse
        proxy, or through it as the proxy. False where that cannot be (another mode, no endpoint)."""
        mode = flow.client_conn.proxy_mode.type_name
        listen = flow.client_conn.sockname
        if not self.front.running or mode not in ("reverse", "regular", "upstream") or not listen:
            return False
        host, port = str(listen[0]), int(listen[1])
        host = f"[{host}]" if ":" in host else host
        req = flow.request
        path = req.path.split("?", 1)[0]
        if mode == "reverse":
            url, proxy = f"http://{host}:{port}{path}", None
        else:  # the same host, so the bridge intercepts the turn as it did the upgrade
            url, proxy = f"http://{req.pretty_host}{path}", f"http://{host}:{port}"
        ticket = Ticket(url=url, headers=pairs(req.headers), limit=config.max_request_bytes, proxy=proxy,
                        connection=flow.id[:8], client=flow.metadata.get(CLIENT))
        flow.metadata[WS_URL] = redacted_url(req.url)  # shown again once the connection is up (respond.py)
        req.scheme, req.host, req.port = "http", "127.0.0.1", self.front.port
        req.path = self.front.admit(ticket)
        self.ws_bounds.serve(flow, config.max_request_bytes)
        flow.metadata["bridge"] = {"client_format": "responses", "operation": "websocket", "mode": "websocket",
                                   **({"client": ticket.client} if ticket.client else {})}
        flow.comment = f"responses · websocket · its turns: flows naming {flow.id[:8]}"  # mitmweb's list
        logger.info("websocket responses | connection opened | turns go to %s%s | req %s", redacted_url(url),
                    f" through {proxy}" if proxy else "", flow.id[:8])
        return True

    def _socket_target(self, message: dict[str, Any], ticket: Ticket) -> SocketTarget | None:
        """A Codex turn routed, unchanged, to an endpoint that serves Responses over WebSocket
        (``websocket`` in the config) goes to it as one (``wsupstream.py``): planned as the same turn over
        HTTP would be — the endpoint's key and headers, the client's keys dropped, the model rewritten.
        None: the turn goes over HTTP through the bridge (translated, failed over, a login renewed)."""
        config = self.settings.config
        if config is None or self._upstream_proxy is not None:
            return None
        routes = candidates(config, "responses", str(message.get("model") or ""))
        if not routes or not routes[0].endpoint.websocket:  # the usual case: no need to plan the turn twice
            return None
        body = json.dumps({k: v for k, v in message.items() if k != "type"}).encode()
        headers = {k.lower(): v for k, v in ticket.headers}
        p = plan(config, Operation("responses", "generate"), urlsplit(ticket.url).path, headers, body,
                 lambda prefix: prefix + uuid.uuid4().hex[:24], int(time.time()), as_is=True,
                 client_name=ticket.client)
        ep = p.endpoint
        if p.answer is not None or p.exchange is not None or p.fallbacks or not p.url or ep is None \
                or not ep.websocket or ep.codex_home:
            return None
        sent = [(k, v) for k, v in ticket.headers if k.lower() not in _NOT_ON_UPGRADE | p.drop_headers
                and not k.lower().startswith("sec-websocket") and k.lower() not in p.set_headers]
        sent += [(k, v) for k, v in p.set_headers.items() if k not in _NOT_ON_UPGRADE]
        if config.client_keys_env:
            names, _ = strip(sent, p.url, config.client_keys())
            sent = [(k, v) for k, v in sent if k not in names]
        out = {"type": "response.create", **json.loads(p.body)} if p.body is not None else message
        rename = None
        if p.rename:
            shown = p.rename[1]
            rename = lambda response: formats.get("responses").rename_model(response, shown)  # noqa: E731
        return SocketTarget(url="ws" + p.url[4:], headers=tuple(sent), message=json.dumps(out), endpoint=ep.name,
                            model=model_label(p.summary), rename=rename, connect_timeout=ep.connect_timeout or 10.0,
                            limit=config.max_answer_bytes)

    def _body(self, flow: http.HTTPFlow, op: Operation, config: Config) -> bytes | None:
        """The request body as the client meant it (decoded within ``max_request_bytes``); None when the
        client has been answered instead."""
        req = flow.request
        try:
            return decode_body(req.raw_content or b"", req.headers.get("content-encoding", ""),
                               config.max_request_bytes)
        except TooLarge:
            flow.response = answer_refused(flow, op.client_format, op.kind, _too_large(config.max_request_bytes))
        except (UnknownEncoding, Corrupt) as e:
            err = BridgeError(str(e), status=415 if isinstance(e, UnknownEncoding) else 400,
                              kind=ErrorKind.INVALID_REQUEST, param="content-encoding")
            flow.response = answer_refused(flow, op.client_format, op.kind, err)
        return None

    def _learn(self, req: http.Request) -> list[str]:
        """Remember the keys this request carries (headers, ``?key=``): an upstream may echo any of
        them in an error, in this answer or a later one, and none may reach a log, a flow or a client."""
        for value in presented(pairs(req.headers), req.url):
            if len(value) >= _SEEN_MIN:
                self._seen[value] = None
        while len(self._seen) > _SEEN_KEYS:
            del self._seen[next(iter(self._seen))]
        return list(self._seen)

    def _apply(self, flow: http.HTTPFlow, state: FlowState, p: Plan, config: Config) -> None:
        """Send the request where the plan says, as it says; its answer is bounded by the config."""
        req = flow.request
        # A ChatGPT login (auth: codex-login) is sent by the relay, which renews it on a 401 and sends again.
        relayed = bool(p.fallbacks) or any(q.endpoint and (q.endpoint.connect_timeout or q.endpoint.first_byte_timeout
                                                           or q.endpoint.idle_timeout or q.endpoint.codex_home)
                                           for q in state.plans)
        if relayed:
            logins = self.settings.logins
            state.job = Job([_attempt(q, req, i, config, logins.get(q.endpoint.codex_home if q.endpoint else None))
                             for i, q in enumerate(state.plans)])
        if p.url:
            req.url = p.url
        if p.body is not None:
            req.headers.pop("content-encoding", None)  # the new body is plain JSON
            req.content = p.body
        for name in p.drop_headers:
            req.headers.pop(name, None)
        req.headers.update(p.set_headers)
        if config.client_keys_env:  # the bridge's keys go nowhere, whatever header or parameter carried them
            names, url = strip(pairs(req.headers), req.url, config.client_keys())
            for name in names:
                req.headers.pop(name, None)
            if url != req.url:
                req.url = url
        # What the upstream was given is what it can echo: every byte of its answer is scrubbed of that.
        sent = presented(pairs(req.headers), req.url)
        for attempt in state.job.attempts if state.job else ():
            sent += presented(attempt.headers, attempt.url)
        state.scrub = Redactor.of(v for v in sent if len(v) >= _SEEN_MIN or v in self.settings.redact.values)
        if state.job is not None:  # the flow shows the first attempt; the relay makes them all
            req.url = self.relay.register(state.job)
        else:  # an unreachable upstream is answered in the client's format, not as mitmproxy's HTML page
            client = p.client
            errorpage.expect(req, lambda status, message: error_response(
                client, UpstreamError(state.redact(message), status=status)))

        def answer_too_large(limit: int) -> http.Response:
            err = UpstreamProtocolError(f"the upstream's answer is larger than this bridge takes "
                                        f"(max_answer_bytes: {limit} bytes)")
            status, content_type, body = error_response(p.client, err)
            state.summary["outcome"] = f"error: {err.message}"
            return http.Response.make(status, body, {"content-type": content_type})
        bodylimit.answer(req, lambda resp: None if state.streams(resp) else config.max_answer_bytes,
                         answer_too_large)
        self.flows[flow.id] = state
        warnings = "".join(f"\n  dropped/approximated: {w}" for w in p.summary.get("warnings", ()))
        fallbacks = f" (then {', '.join(q.summary.get('endpoint', '?') for q in p.fallbacks)})" if p.fallbacks else ""
        logger.debug("%s %s → %s, endpoint %s%s, model %s%s", p.summary.get("mode"), p.summary.get("client_format"),
                     p.summary.get("upstream_format"), p.summary.get("endpoint"), fallbacks, model_label(p.summary),
                     warnings)


def _too_large(limit: int) -> BridgeError:
    return BridgeError(f"request body is larger than this bridge takes (max_request_bytes: {limit} bytes)",
                       status=413, kind=ErrorKind.REQUEST_TOO_LARGE)


def _attempt(p: Plan, req: http.Request, index: int, config: Config, credentials: Credentials | None) -> Attempt:
    """What the relay sends to one endpoint: the client's headers as the plan changes them."""
    drop = {*p.drop_headers, *p.set_headers, "host", "content-length"}
    if p.body is not None:
        drop.add("content-encoding")  # a new body is plain JSON
    headers = [(k, v) for k, v in pairs(req.headers) if k.lower() not in drop]
    headers += list(p.set_headers.items())
    url = p.url or req.url
    if config.client_keys_env:  # as _apply does for a request sent directly
        names, url = strip(headers, url, config.client_keys())
        headers = [(k, v) for k, v in headers if k.lower() not in names]
    ep = p.endpoint
    upstream = formats.get(p.summary.get("upstream_format", p.client.NAME))
    idle = ep.idle_timeout if ep else None
    stall = upstream.render_stream_error(UpstreamError(
        f"the upstream stream stalled: no data for {idle:g} s", status=504)) if idle else b""
    return Attempt(name=ep.name if ep else "?", url=url, headers=headers,
                   body=p.body if p.body is not None else req.raw_content or b"",
                   connect_timeout=(ep and ep.connect_timeout) or 10.0,
                   first_byte_timeout=(ep and ep.first_byte_timeout) or 600.0,
                   idle_timeout=idle, stall_event=stall, index=index, credentials=credentials)
