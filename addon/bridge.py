"""mitmproxy entry point: ``mitmdump -s addon/bridge.py --set bridge_config=config.yaml``.

Glue only: options, hooks, and the per-flow stream adapter. What a request is, where it goes and how
it is translated are decided by ``plan`` (with ``routing``, ``translate`` and ``formats``); no field
of any wire format is named here. See mitmproxy-notes.md for the traps each hook steps around.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# mitmproxy loads this file as a script, not as part of the ``addon`` package.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mitmproxy import addonmanager, ctx, exceptions, http  # noqa: E402
from mitmproxy.net.http.status_codes import RESPONSES  # noqa: E402
from mitmproxy.proxy.mode_specs import ProxyMode  # noqa: E402

from addon import bodylimit, errorpage, formats, record, replay, views  # noqa: E402
from addon.access import is_loopback, presented, strip  # noqa: E402
from addon.adapter import STREAM_CHUNK_LIMIT, StreamAdapter  # noqa: E402
from addon.config import Config, ConfigError, load_config  # noqa: E402
from addon.decompress import Corrupt, TooLarge, UnknownEncoding, decode_body, decoder_for  # noqa: E402
from addon.errors import BridgeError, ErrorKind, UpstreamError, UpstreamProtocolError  # noqa: E402
from addon.flowlog import log_flow, model_label  # noqa: E402
from addon.guard import Guard, answer_refused  # noqa: E402
from addon.logconfig import apply, body_for_log, clean  # noqa: E402
from addon.plan import Plan, plan  # noqa: E402
from addon.redact import Redactor, redacted_url  # noqa: E402
from addon.relay import Attempt, Job, Relay  # noqa: E402
from addon.routing import Operation, detect  # noqa: E402
from addon.translate import (  # noqa: E402
    SSE_TYPE,
    ModelRenamer,
    StreamTranslator,
    cut_tail,
    error_response,
    usage_of,
)

logger = logging.getLogger("bridge")

_SEEN_KEYS = 64  # the newest distinct client credentials kept for redaction
# Shorter client "keys" (``unused``, ``sk-local``) are placeholders, not secrets; blanking them would
# change model text that merely contains the word. Real provider keys are far longer.
_SEEN_MIN = 16
_PASS_STREAM = "1m"  # stream_large_bodies for the traffic the bridge leaves alone (mitmproxy's size syntax)
_LOG_KEEP = {"none": 0, "truncated": 8000}  # bytes of a stream kept for its body log; "full": max_bytes


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class _Flow:
    """What the bridge remembers about a flow between its hooks (never stored in the flow itself).

    A plain class: mitmproxy runs this file as a script outside ``sys.modules``, where a dataclass
    cannot resolve its own annotations.
    """

    __slots__ = ("exchange", "job", "plans", "redact", "renamer", "scrub", "started", "streamed", "summary",
                 "upstream_head")

    def __init__(self, p: Plan, redact: Redactor, scrub: Redactor) -> None:
        self.redact = redact  # every key known and key shapes: never in a log, a flow or an error
        self.scrub = scrub  # the keys this request involves, in every encoding: never in any byte of the answer
        self.summary = p.summary
        self.exchange = p.exchange
        self.renamer = ModelRenamer(*p.rename) if p.rename else None
        self.streamed: StreamTranslator | ModelRenamer | None = None
        self.started = time.monotonic()
        self.job: Job | None = None  # set when the request goes through the failover relay
        self.plans = [p, *p.fallbacks]
        self.upstream_head: dict[str, Any] | None = None  # the upstream's status and headers, as they came

    def settle(self) -> None:
        """After the relay chose an endpoint: translate with what was planned for that one."""
        if self.job is None or self.job.winner is None:
            return
        chosen = self.plans[self.job.winner]
        self.exchange = chosen.exchange
        self.renamer = ModelRenamer(*chosen.rename) if chosen.rename else None
        self.summary.update(chosen.summary)
        if len(self.plans) > 1:
            self.summary["attempts"] = len(self.job.failures) + 1

    def streams(self, resp: http.Response) -> bool:
        """Whether this answer goes to the client live, through a :class:`StreamAdapter` (else it is read
        whole, within ``max_answer_bytes``, and answered in ``response``)."""
        self.settle()
        content_type: str = resp.headers.get("content-type", "")
        if resp.status_code >= 400:
            return False
        if self.exchange is not None:
            return bool(self.exchange.client_stream and self.exchange.is_stream(content_type))
        return content_type.startswith(SSE_TYPE)


class Bridge:
    def __init__(self) -> None:
        self.config: Config | None = None
        self._flows: dict[str, _Flow] = {}
        self._mtime: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.relay = Relay()
        self._redact = Redactor()
        self._recording = False  # flows are written (-w), kept or shown (mitmweb): they keep both sides whole
        self._seen: dict[str, None] = {}  # credentials clients presented lately: redacted wherever echoed

    def load(self, loader: addonmanager.Loader) -> None:
        errorpage.install()
        bodylimit.install()
        views.install()
        loader.add_option("bridge_config", str, "config.yaml",
                          "Path of the bridge's YAML config (endpoints, formats, key env vars). "
                          "Reloaded when the file changes.")

    def configure(self, updated: set[str]) -> None:
        if "bridge_config" in updated:
            try:
                self._use(load_config(ctx.options.bridge_config, require_env=not _replaying()))
                self._mtime = _mtime(ctx.options.bridge_config)
            except ConfigError as e:
                if self.config is None:  # at startup: one clean line (an error logged now stops mitmdump)
                    logger.error("%s", e)
                    return
                raise exceptions.OptionsError(str(e)) from None  # type: ignore[no-untyped-call]
        if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
            # eager connects to the reverse target before any hook can reroute (notes §2).
            ctx.options.update(connection_strategy="lazy")  # type: ignore[no-untyped-call]
        if "stream_large_bodies" in ctx.options and not ctx.options.stream_large_bodies:
            # Traffic the bridge leaves alone is streamed past this size instead of buffered whole; its
            # own flows have their limits from the config (bodylimit.py).
            ctx.options.update(stream_large_bodies=_PASS_STREAM)  # type: ignore[no-untyped-call]
        if "flow_detail" in updated and "flow_detail" in ctx.options:
            # flow_detail 0: no per-flow lines from mitmproxy, its connect/disconnect ones included; the
            # bridge's own line says what happened to each request.
            logging.getLogger("mitmproxy.proxy.server").setLevel(
                logging.WARNING if ctx.options.flow_detail == 0 else logging.NOTSET)
        if updated & {"bridge_config", "listen_host", "mode"}:
            self._check_exposure()
        # A flow that is written (-w), kept (store_streamed_bodies) or shown (mitmweb) holds both streams
        # (within max_answer_bytes); otherwise a stream is never accumulated.
        self._recording = any(name in ctx.options and bool(getattr(ctx.options, name)) for name in
                              ("save_stream_file", "store_streamed_bodies")) or "web_port" in ctx.options

    def _check_exposure(self) -> None:
        """Say so when the bridge is reachable beyond loopback: without client keys, only loopback
        clients are served (the bridge holds upstream keys; it must never be an open relay)."""
        if self.config is None or self.config.client_keys_env or "listen_host" not in ctx.options:
            return
        if "server" in ctx.options and not ctx.options.server:
            return  # -n: reading flows, listening nowhere
        hosts = {ProxyMode.parse(spec).custom_listen_host or ctx.options.listen_host for spec in ctx.options.mode}
        exposed = sorted(h or "all interfaces" for h in hosts if not is_loopback(h))
        if exposed:
            logger.warning("listening on %s without client_keys_env: only loopback clients will be served; "
                           "set client_keys_env in %s to serve others", ", ".join(exposed), self.config.path)

    async def running(self) -> None:
        if "web_columns" in ctx.options and "comment" not in ctx.options.web_columns:
            # mitmweb's flow list then reads like the log: the bridge's one-line summary per flow.
            ctx.options.update(web_columns=[*ctx.options.web_columns, "comment"])  # type: ignore[no-untyped-call]
        upstream = [ProxyMode.parse(m) for m in ctx.options.mode if m.startswith("upstream:")]
        proxy = upstream[0].data if upstream else None
        size = self.config.max_relay_connections if self.config else 1000
        await self.relay.start(verify=not ctx.options.ssl_insecure, proxy=proxy, max_connections=size)
        self._watcher = asyncio.create_task(self._watch_config())

    async def done(self) -> None:
        await self.relay.stop()
        if self._watcher:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch_config(self) -> None:
        """Reload the config when its file changes; a broken edit keeps the last good config."""
        while True:
            await asyncio.sleep(1.0)
            path = ctx.options.bridge_config
            mtime = _mtime(path)
            if mtime is None or mtime == self._mtime:
                continue
            self._mtime = mtime
            try:
                self._use(load_config(path))
                logger.info("config reloaded from %s", path)
            except ConfigError as e:
                logger.error("config not reloaded, keeping the previous one: %s", e)

    def _use(self, config: Config) -> None:
        self.config = config
        apply(config.logging, logger)
        if config.unset_env:
            logger.warning("replaying: %s not set; a request that still reaches an upstream goes without that key",
                           ", ".join(config.unset_env))
        self._redact = Redactor.from_env(config.secret_envs())

    def _log_body(self, flow: http.HTTPFlow, what: str, body: bytes, mode: str, redact: Redactor) -> None:
        text = body_for_log(body, mode, redact, self.config.logging.max_bytes if self.config else 0)
        if text is not None:  # the request's id ties it to its summary line (flowlog.py)
            logger.info("%s [req %s]: %s", what, flow.id[:8], text)

    def _learn(self, req: http.Request) -> list[str]:
        """Remember the keys this request carries (headers, ``?key=``): an upstream may echo any of
        them in an error, in this answer or a later one, and none may reach a log, a flow or a client."""
        for value in presented(_pairs(req.headers), req.url):
            if len(value) >= _SEEN_MIN:
                self._seen[value] = None
        while len(self._seen) > _SEEN_KEYS:
            del self._seen[next(iter(self._seen))]
        return list(self._seen)

    def _ours(self, flow: http.HTTPFlow) -> bool:
        """In regular and upstream proxy mode the bridge acts only on the LLM API hosts it knows."""
        mode = flow.client_conn.proxy_mode.type_name
        return mode not in ("regular", "upstream") or (
            self.config is not None and flow.request.pretty_host.lower() in self.config.intercept_hosts)

    def _operation(self, flow: http.HTTPFlow) -> Operation | None:
        """The API operation this request is, when it is the bridge's to handle."""
        req = flow.request
        op = detect(req.method, req.path, req.headers)
        return op if op is not None and self._ours(flow) else None

    def claims(self, flow: http.HTTPFlow) -> bool:
        return self._operation(flow) is not None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Before the body is read: its size is bounded (bodylimit.py); the access rule ran just before
        (guard.py, a refused request has its answer already)."""
        config = self.config
        if config is None or flow.response or flow.error or not flow.live:
            return
        op = self._operation(flow)
        if op is None:
            return
        req = flow.request
        req.stream = False  # mitmproxy's stream_large_bodies may have chosen to: the bridge reads it first
        client = formats.get(op.client_format)
        limit = config.max_request_bytes

        def too_large() -> http.Response:
            return answer_refused(flow, client.NAME, op.kind, _too_large(limit))
        length = req.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            flow.response = too_large()  # answered without reading the body
            bodylimit.refuse(req, discard=min(limit, bodylimit.DISCARD))
        else:
            bodylimit.limit(req, bodylimit.Policy(request_limit=limit, too_large=too_large))

    def request(self, flow: http.HTTPFlow) -> None:
        if not flow.live and replay.CLIENT_REQUEST in flow.metadata and self.config is not None:
            record.rerun(self.config, flow)  # a recorded flow read with -r: what does today's code make of it?
            return
        if flow.response or flow.error or not flow.live or "bridge" in flow.metadata or self.config is None:
            return
        op = self._operation(flow)
        if op is None:
            return
        config, req = self.config, flow.request
        client = formats.get(op.client_format)
        try:
            body = decode_body(req.raw_content or b"", req.headers.get("content-encoding", ""),
                               config.max_request_bytes)
        except TooLarge:
            flow.response = answer_refused(flow, client.NAME, op.kind, _too_large(config.max_request_bytes))
            return
        except (UnknownEncoding, Corrupt) as e:
            err = BridgeError(str(e), status=415 if isinstance(e, UnknownEncoding) else 400,
                              kind=ErrorKind.INVALID_REQUEST, param="content-encoding")
            flow.response = answer_refused(flow, client.NAME, op.kind, err)
            return
        made: list[str] = []  # every id the bridge makes for this flow, so a replay can make the same

        def new_id(prefix: str) -> str:
            made.append(_new_id(prefix))
            return made[-1]
        now = int(time.time())
        redact = self._redact.also(self._learn(req))
        p = plan(config, op, req.path, req.headers, body, new_id, now, method=req.method, redact=redact)
        flow.metadata["bridge"] = p.summary
        if self._recording:  # what a recorded flow needs to be translated again (addon/replay.py)
            flow.metadata[replay.CLIENT_REQUEST] = record.client_request(flow, body)
            flow.metadata[replay.IDS] = {"now": now, "ids": made}
        state = _Flow(p, redact, Redactor())
        log = config.logging
        self._log_body(flow, f"request body from the client ({op.client_format})", body, log.log_request_body, redact)
        if p.body is not None and p.answer is None:
            self._log_body(flow, f"request body to the upstream ({p.summary.get('upstream_format')})", p.body,
                           log.log_request_body, redact)
        if p.answer is not None:
            status, content_type, answer = p.answer
            flow.response = http.Response.make(status, redact.bytes(answer), {"content-type": content_type})
            log_flow(flow, state.summary, status, None, state.started, redact)
            return
        self._apply(flow, state, p, config)

    def _apply(self, flow: http.HTTPFlow, state: _Flow, p: Plan, config: Config) -> None:
        """Send the request where the plan says, as it says; its answer is bounded by the config."""
        req = flow.request
        relayed = bool(p.fallbacks) or any(q.endpoint and (q.endpoint.connect_timeout or q.endpoint.first_byte_timeout
                                                           or q.endpoint.idle_timeout) for q in state.plans)
        if relayed:
            state.job = Job([_attempt(q, req, i, config) for i, q in enumerate(state.plans)])
        if p.url:
            req.url = p.url
        if p.body is not None:
            req.headers.pop("content-encoding", None)  # the new body is plain JSON
            req.content = p.body
        for name in p.drop_headers:
            req.headers.pop(name, None)
        req.headers.update(p.set_headers)
        if config.client_keys_env:  # the bridge's keys go nowhere, whatever header or parameter carried them
            names, url = strip(_pairs(req.headers), req.url, config.client_keys())
            for name in names:
                req.headers.pop(name, None)
            if url != req.url:
                req.url = url
        # What the upstream was given is what it can echo: every byte of its answer is scrubbed of that.
        sent = presented(_pairs(req.headers), req.url)
        for attempt in state.job.attempts if state.job else ():
            sent += presented(attempt.headers, attempt.url)
        state.scrub = Redactor.of(v for v in sent if len(v) >= _SEEN_MIN or v in self._redact.values)
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
        self._flows[flow.id] = state
        warnings = "".join(f"\n  dropped/approximated: {w}" for w in p.summary.get("warnings", ()))
        fallbacks = f" (then {', '.join(q.summary['endpoint'] for q in p.fallbacks)})" if p.fallbacks else ""
        logger.debug("%s %s → %s, endpoint %s%s, model %s%s", p.summary.get("mode"), p.summary["client_format"],
                     p.summary.get("upstream_format"), p.summary.get("endpoint"), fallbacks, model_label(p.summary),
                     warnings)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        state = self._flows.get(flow.id)
        if flow.live:  # an upstream may echo a key in any header (www-authenticate, set-cookie, location, …)
            _redact_headers(resp, state.redact if state is not None else self._redact.scrub_text)
        if state is None:
            return
        state.settle()
        if self._recording:
            state.upstream_head = record.upstream_head(resp)
        if flow.request.http_version == "HTTP/1.0":
            resp.headers.pop("transfer-encoding", None)  # not HTTP/1.0's: the body ends when the connection does
        if resp.raw_content is not None or not state.streams(resp):
            return  # whole (a replay, an error, a folded answer): handled in response()
        config = self.config
        keep = (config.max_answer_bytes if self._recording else
                _LOG_KEEP.get(config.logging.log_response_body, config.logging.max_bytes)) if config else 0
        translator: StreamTranslator | ModelRenamer | None = None
        if state.exchange is not None:
            translator = state.exchange.stream()
        elif state.renamer is not None:
            translator = state.renamer
        decode = decoder_for(resp.headers.get("content-encoding", ""), STREAM_CHUNK_LIMIT)
        if decode is None or (translator is None and resp.headers.get("content-encoding")):
            # pass-through keeps its bytes as they are; an unknown encoding cannot be translated live
            if translator is not None:
                logger.warning("upstream stream has unknown content-encoding %s; buffering it",
                               clean(resp.headers["content-encoding"]))
                return
            decode = bytes
        resp.stream = StreamAdapter(translator, decode, state.redact, state.scrub,
                                    keep if self._recording or translator is not None else 0)
        errorpage.expect_cut(flow.request, cut_tail(translator, state.plans[0].client))
        if translator is None:
            return  # pass-through: live, byte for byte but for a key (else mitmproxy would buffer it)
        state.streamed = translator
        # the upstream's may be missing or carry a charset
        resp.headers["content-type"] = state.exchange.client_stream_type if state.exchange else SSE_TYPE
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("content-length", None)
        if flow.request.http_version == "HTTP/1.1":
            resp.headers["transfer-encoding"] = "chunked"  # h2 clients reject it (notes §1); HTTP/1.0 reads to close

    def response(self, flow: http.HTTPFlow) -> None:
        try:
            self._response(flow)
        except Exception as e:  # never the upstream's untranslated bytes, never a stack trace
            logger.exception("the bridge failed on an answer")
            client = formats.FORMATS.get(flow.metadata.get("bridge", {}).get("client_format", ""))
            if client is not None and flow.live:
                status, content_type, body = error_response(client, BridgeError(
                    f"the bridge failed on this answer ({type(e).__name__}: {e})", status=502))
                flow.response = http.Response.make(status, body, {"content-type": content_type})

    def _response(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        errorpage.forget(flow.request)
        bodylimit.forget(flow.request)
        if "bridge" in flow.metadata and flow.live:
            record.redact_flow(flow)
        resp = flow.response
        if state is None or resp is None:
            return
        state.settle()
        if state.job is not None:
            self.relay.forget(flow.request.url)
            _show_winner(flow, state)
            if len(state.job.failures) == len(state.job.attempts):  # every endpoint failed to answer
                err = UpstreamError("every endpoint failed: " + "; ".join(state.job.failures), status=502)
                status, content_type, body = error_response(state.plans[0].client, err)
                headers = {"content-type": content_type}
                if all(errorpage.lasting(f) for f in state.job.failures):
                    headers[errorpage.NO_RETRY] = "false"  # every endpoint is down, none busy
                flow.response = http.Response.make(status, state.redact.bytes(body), headers)
                self._log(flow, state, status)
                return
        mode = self.config.logging.log_response_body if self.config else "none"
        adapter = resp.stream
        if isinstance(adapter, StreamAdapter) and adapter.upstream and adapter.client:
            upstream_body, client_body = adapter.upstream.body(), adapter.client.body()
            self._log_body(flow, "response stream from the upstream", upstream_body, mode, state.redact)
            self._log_body(flow, "response stream to the client", client_body, mode, state.redact)
            if self._recording:  # the client has its bytes: the flow keeps both sides for -w and mitmweb
                self._record_answer(flow, state, upstream_body)
                resp.content = state.redact.bytes(client_body)
        if state.streamed is not None:
            failed = state.streamed.failed
            state.summary["outcome"] = f"error: {failed.message}" if failed else "streamed"
        elif isinstance(adapter, StreamAdapter):
            state.summary["outcome"] = "streamed"
        elif state.exchange is not None and record.served_as_recorded(flow, state.exchange.client.NAME):
            state.summary["outcome"] = "replayed as recorded"  # --server-replay of a flow the bridge recorded
            try:
                body = decode_body(resp.raw_content or b"", resp.headers.get("content-encoding", ""),
                                   state.exchange.ctx.budget.limit)
            except ValueError:
                body = b""
            state.exchange.usage = usage_of(state.exchange.client, resp.headers.get("content-type", ""), body,
                                            state.exchange.ctx)
        else:
            self._whole(flow, state, resp, mode)
        self._log(flow, state, flow.response.status_code if flow.response else None)

    def _whole(self, flow: http.HTTPFlow, state: _Flow, resp: http.Response, mode: str) -> None:
        """An answer read whole (within max_answer_bytes): translated, renamed or passed on, scrubbed."""
        limit = self.config.max_answer_bytes if self.config else 0
        try:
            upstream_body = decode_body(resp.raw_content or b"", resp.headers.get("content-encoding", ""), limit)
        except ValueError as e:
            what = (f"is larger than this bridge takes (max_answer_bytes: {limit} bytes)" if isinstance(e, TooLarge)
                    else f"cannot be read: {e}")
            err = UpstreamProtocolError(f"the upstream's answer {what}")
            status, content_type, body = error_response(state.plans[0].client, err)
            flow.response = http.Response.make(status, body, {"content-type": content_type})
            state.summary["outcome"] = f"error: {err.message}"
            return
        self._record_answer(flow, state, upstream_body)
        self._log_body(flow, "response body from the upstream", upstream_body, mode, state.redact)
        if state.exchange is not None:
            status, content_type, body = state.exchange.translate_body(
                resp.status_code, resp.headers.get("content-type", ""), upstream_body)
            body = state.redact.bytes(body) if status >= 400 else state.scrub.scrub(body)
            self._log_body(flow, "response body to the client", body, mode, state.redact)
            if status != resp.status_code:
                resp.status_code = status
                resp.reason = RESPONSES.get(status, "")
            resp.headers["content-type"] = content_type
            state.summary["outcome"] = f"HTTP {status}"
            if resp.status_code >= 400:  # the log line says what the upstream said, not only its status
                said = state.exchange.upstream.parse_error(resp.status_code, upstream_body)
                state.summary["outcome"] = f"error: {said.message}"
        elif state.renamer is not None and resp.status_code < 400:
            body = state.scrub.scrub(state.renamer.body(upstream_body))
        else:  # passed through whole: the client gets the same, but never a key an upstream echoed
            body = state.redact.bytes(upstream_body) if resp.status_code >= 400 else state.scrub.scrub(upstream_body)
            if resp.status_code >= 400:
                said = state.plans[0].client.parse_error(resp.status_code, upstream_body)
                state.summary["outcome"] = f"error: {said.message}"
            if body == upstream_body and not resp.headers.get("content-encoding"):
                return  # byte for byte
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("transfer-encoding", None)
        resp.content = body

    def _record_answer(self, flow: http.HTTPFlow, state: _Flow, body: bytes) -> None:
        """The upstream's answer as it came (body decoded), beside the client's in ``flow.response``;
        only when the flow is kept (recording, mitmweb): otherwise nobody reads it."""
        if not self._recording:
            return
        head = state.upstream_head or {"status_code": flow.response.status_code if flow.response else 0,
                                       "reason": "", "headers": []}
        flow.metadata[replay.UPSTREAM_RESPONSE] = {**head, "content": state.redact.bytes(body)}

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        bodylimit.forget(flow.request)
        if "bridge" in flow.metadata and flow.live:
            record.redact_flow(flow)
        if state is not None and state.job is not None:
            self.relay.forget(flow.request.url)
            _show_winner(flow, state)
        if state is not None and flow.error:
            state.summary["outcome"] = state.summary.get("outcome") or f"failed: {flow.error.msg}"
            self._record_cut(flow, state, flow.error.msg)
            # The status the client got: the bridge's error answer (errorpage.py), or the stream's.
            self._log(flow, state, flow.response.status_code if flow.response is not None else None)

    def _record_cut(self, flow: http.HTTPFlow, state: _Flow, message: str) -> None:
        """A stream that broke off, recorded as the client will get it: what came, then the error event
        the patch in errorpage.py sends after this hook (fixed now, so flow and client agree)."""
        resp = flow.response
        adapter = resp.stream if resp is not None else None
        if resp is None or not self._recording or not isinstance(adapter, StreamAdapter) or \
                adapter.upstream is None or adapter.client is None:
            return
        tail = errorpage.take_cut(flow.request)
        end = tail(message) if tail is not None else b""
        if tail is not None:
            errorpage.expect_cut(flow.request, lambda _message: end)
        self._record_answer(flow, state, adapter.upstream.body())
        flow.metadata[replay.UPSTREAM_RESPONSE]["cut"] = message
        resp.content = state.redact.bytes(adapter.client.body() + end)

    @staticmethod
    def _log(flow: http.HTTPFlow, state: _Flow, status: int | None) -> None:
        usage = (state.streamed.usage if isinstance(state.streamed, StreamTranslator)
                 else state.exchange.usage if state.exchange else None)
        log_flow(flow, state.summary, status, usage, state.started, state.redact)


def _pairs(headers: http.Headers) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers.fields]


def _too_large(limit: int) -> BridgeError:
    return BridgeError(f"request body is larger than this bridge takes (max_request_bytes: {limit} bytes)",
                       status=413, kind=ErrorKind.REQUEST_TOO_LARGE)


def _redact_headers(resp: http.Response, redact: Any) -> None:
    """Every header value through ``redact`` (str → str), only rewritten when one changed."""
    fields = resp.headers.fields
    clean_fields = tuple((k, redact(v.decode("latin-1")).encode("latin-1", "replace")) for k, v in fields)
    if clean_fields != fields:
        resp.headers.fields = clean_fields


def _show_winner(flow: http.HTTPFlow, state: _Flow) -> None:
    """A relayed flow went to the relay's loopback URL: it shows (and records) what was sent to the
    endpoint that answered instead, or the last one tried."""
    job = state.job
    if job is None:
        return
    p = state.plans[job.winner if job.winner is not None else job.attempts[-1].index]
    if p.url:
        flow.request.url = redacted_url(p.url)
    if p.body is not None:
        flow.request.content = p.body


def _attempt(p: Plan, req: http.Request, index: int, config: Config) -> Attempt:
    """What the relay sends to one endpoint: the client's headers as the plan changes them."""
    drop = {*p.drop_headers, *p.set_headers, "host", "content-length"}
    if p.body is not None:
        drop.add("content-encoding")  # a new body is plain JSON
    headers = [(k, v) for k, v in _pairs(req.headers) if k.lower() not in drop]
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
                   idle_timeout=idle, stall_event=stall, index=index)


def _replaying() -> bool:
    """Reading recorded flows (-n) or answering from them (--server-replay): no key is needed for that."""
    return ("server" in ctx.options and not ctx.options.server) or \
        bool("server_replay" in ctx.options and ctx.options.server_replay)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


_bridge = Bridge()
addons = [Guard(lambda: _bridge.config, _bridge.claims), _bridge]
