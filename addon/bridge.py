"""mitmproxy entry point: ``mitmdump -s addon/bridge.py --set bridge_config=config.yaml``.

Glue only: options, hooks, and the per-flow stream adapter. What a request is, where it goes and how
it is translated are decided by ``plan`` (with ``routing``, ``translate`` and ``formats``); no field
of any wire format is named here. See mitmproxy-notes.md for the traps each hook steps around.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# mitmproxy loads this file as a script, not as part of the ``addon`` package.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mitmproxy import addonmanager, ctx, exceptions, http  # noqa: E402
from mitmproxy.net.http.status_codes import RESPONSES  # noqa: E402
from mitmproxy.proxy.mode_specs import ProxyMode  # noqa: E402

from addon import errorpage, formats, record, replay, views  # noqa: E402
from addon.config import Config, ConfigError, load_config  # noqa: E402
from addon.decompress import decoder_for  # noqa: E402
from addon.errors import BridgeError, UpstreamError  # noqa: E402
from addon.logconfig import (  # noqa: E402
    CREDENTIAL_HEADERS,
    BodyRecorder,
    Redactor,
    apply,
    body_for_log,
    query_secrets,
    redacted_url,
)
from addon.plan import Plan, plan  # noqa: E402
from addon.relay import Attempt, Job, Relay  # noqa: E402
from addon.routing import anthropic_headers, detect  # noqa: E402
from addon.translate import (  # noqa: E402
    SSE_TYPE,
    ModelRenamer,
    StreamTranslator,
    cut_tail,
    error_response,
)

logger = logging.getLogger("bridge")

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_SEEN_KEYS = 64  # the newest distinct client credentials kept for redaction
# Shorter client "keys" (``unused``, ``sk-local``) are placeholders, not secrets; blanking them would
# change model text that merely contains the word. Real provider keys are far longer.
_SEEN_MIN = 16


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class StreamAdapter:
    """The ``flow.response.stream`` callable: bytes per network chunk, then ``b""`` at the end.

    ``keep`` ("none", "truncated" or "full"): ``upstream`` and ``client`` keep side copies of both
    streams, for the body log and for a recorded flow, written once the stream has ended. Without a
    translator the bytes pass unchanged (a pass-through stream that is being recorded).
    """

    def __init__(self, translator: StreamTranslator | ModelRenamer | None, decode: Callable[[bytes], bytes],
                 keep: str = "none", redact: Redactor | None = None) -> None:
        self.translator = translator
        self._decode = decode
        self._redact = redact
        self._broken = False  # the translation failed (a bug): the rest of the stream is dropped
        self.upstream = BodyRecorder(keep) if keep != "none" else None
        self.client = BodyRecorder(keep) if keep != "none" and translator is not None else self.upstream

    def __call__(self, data: bytes) -> list[bytes]:
        if self.translator is None:
            if self._redact is not None and b'"error"' in data:
                data = self._redact.bytes(data)  # an upstream's error event that echoes a key
            if self.upstream is not None:
                self.upstream.add(data)
            return [data] if data else []  # b"" is the end: returning it would write a second terminator
        # Always a list: a bare b"" mid-stream would end a chunked HTTP/1 body (notes §1).
        if self._broken:
            return []
        try:
            plain = self._decode(data)
            out = self.translator.feed(plain) if plain else []
            if not data:
                out += self.translator.close()
        except Exception as e:  # a bug (or a corrupt compressed stream): end the stream honestly, once
            logger.exception("the bridge failed while translating a stream")
            self._broken = True
            err = BridgeError(f"the bridge failed on this stream ({type(e).__name__}: {e})", status=502)
            return self.translator.abort(err) if isinstance(self.translator, StreamTranslator) else []
        if self.upstream is not None and self.client is not None:
            self.upstream.add(plain)
            self.client.add(out)
        return out


class _Flow:
    """What the bridge remembers about a flow between its hooks (never stored in the flow itself).

    A plain class: mitmproxy runs this file as a script outside ``sys.modules``, where a dataclass
    cannot resolve its own annotations.
    """

    __slots__ = ("exchange", "job", "plans", "redact", "renamer", "started", "streamed", "summary", "upstream_head")

    def __init__(self, p: Plan, redact: Redactor) -> None:
        self.redact = redact  # the config's keys and this request's own: never in a log, a flow or an answer
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


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Bridge:
    def __init__(self) -> None:
        self.config: Config | None = None
        self._flows: dict[str, _Flow] = {}
        self._mtime: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.relay = Relay()
        self._redact = Redactor(())
        self._recording = False  # flows are written (-w), kept or shown (mitmweb): they keep both sides whole
        self._seen: dict[str, None] = {}  # credentials clients presented lately: redacted wherever echoed

    def load(self, loader: addonmanager.Loader) -> None:
        errorpage.install()
        views.install()
        loader.add_option("bridge_config", str, "config.yaml",
                          "Path of the bridge's YAML config (endpoints, formats, key env vars). "
                          "Reloaded when the file changes.")

    def configure(self, updated: set[str]) -> None:
        if "bridge_config" in updated:
            try:
                self._use(load_config(ctx.options.bridge_config))
                self._mtime = _mtime(ctx.options.bridge_config)
            except ConfigError as e:
                raise exceptions.OptionsError(str(e)) from None  # type: ignore[no-untyped-call]
        if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
            # eager connects to the reverse target before any hook can reroute (notes §2).
            ctx.options.update(connection_strategy="lazy")  # type: ignore[no-untyped-call]
        if updated & {"bridge_config", "listen_host", "mode"}:
            self._check_exposure()
        # A flow that is written (-w), kept (store_streamed_bodies) or shown (mitmweb) holds both streams
        # whole; otherwise a stream is never accumulated.
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
        exposed = sorted(h or "all interfaces" for h in hosts if not _is_loopback(h))
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
        self._redact = Redactor(config.secret_envs())

    def _log_body(self, what: str, body: bytes, mode: str, redact: Redactor) -> None:
        text = body_for_log(body, mode, redact)
        if text is not None:
            logger.info("%s: %s", what, text)

    def _learn(self, req: http.Request) -> list[str]:
        """Remember the keys this request carries (headers, ``?key=``): an upstream may echo any of
        them in an error, in this answer or a later one, and none may reach a log, a flow or a client."""
        presented = [value.split(" ", 1)[-1] for name in CREDENTIAL_HEADERS for value in req.headers.get_all(name)]
        for value in [*presented, *query_secrets(req.url)]:
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

    def request(self, flow: http.HTTPFlow) -> None:
        if not flow.live and replay.CLIENT_REQUEST in flow.metadata and self.config is not None:
            record.rerun(self.config, flow)  # a recorded flow read with -r: what does today's code make of it?
            return
        if flow.response or flow.error or not flow.live or "bridge" in flow.metadata or self.config is None:
            return
        req = flow.request
        op = detect(req.method, req.path, anthropic_headers(req.headers))
        if op is None or not self._ours(flow):
            return
        try:
            body = req.get_content() or b""
        except ValueError:
            body = req.raw_content or b""  # undecodable: plan() answers it as invalid JSON
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        made: list[str] = []  # every id the bridge makes for this flow, so a replay can make the same

        def new_id(prefix: str) -> str:
            made.append(_new_id(prefix))
            return made[-1]
        now = int(time.time())
        redact = self._redact.also(self._learn(req))
        p = plan(self.config, op, req.path, req.headers, body, new_id, now,
                 local_client=_is_loopback(str(peer).removeprefix("::ffff:")), method=req.method, redact=redact)
        flow.metadata["bridge"] = p.summary
        if self._recording:  # what a recorded flow needs to be translated again (addon/replay.py)
            flow.metadata[replay.CLIENT_REQUEST] = record.client_request(flow, body)
            flow.metadata[replay.IDS] = {"now": now, "ids": made}
        state = _Flow(p, redact)
        log = self.config.logging
        self._log_body(f"request body from the client ({op.client_format})", body, log.log_request_body, redact)
        if p.body is not None and p.answer is None:
            self._log_body(f"request body to the upstream ({p.summary.get('upstream_format')})", p.body,
                           log.log_request_body, redact)
        if p.answer is not None:
            status, content_type, answer = p.answer
            flow.response = http.Response.make(status, answer, {"content-type": content_type})
            self._log(flow, state, status)
            return
        relayed = bool(p.fallbacks) or any(q.endpoint and (q.endpoint.connect_timeout or q.endpoint.first_byte_timeout
                                                           or q.endpoint.idle_timeout) for q in state.plans)
        if relayed:
            state.job = Job([_attempt(q, req, i) for i, q in enumerate(state.plans)])
        if p.url:
            req.url = p.url
        if p.body is not None:
            req.headers.pop("content-encoding", None)  # the new body is plain JSON
            req.content = p.body
        for name in p.drop_headers:
            req.headers.pop(name, None)
        req.headers.update(p.set_headers)
        if state.job is not None:  # the flow shows the first attempt; the relay makes them all
            req.url = self.relay.register(state.job)
        else:  # an unreachable upstream is answered in the client's format, not as mitmproxy's HTML page
            client = p.client
            errorpage.expect(req, lambda status, message: error_response(
                client, UpstreamError(message, status=status)))
        self._flows[flow.id] = state
        warnings = "".join(f"\n  dropped/approximated: {w}" for w in p.summary.get("warnings", ()))
        fallbacks = f" (then {', '.join(q.summary['endpoint'] for q in p.fallbacks)})" if p.fallbacks else ""
        logger.debug("%s %s → %s, endpoint %s%s, model %s%s", p.summary.get("mode"), p.summary["client_format"],
                    p.summary.get("upstream_format"), p.summary.get("endpoint"), fallbacks, _model(p.summary),
                    warnings)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = self._flows.get(flow.id)
        resp = flow.response
        if state is None or resp is None:
            return
        state.settle()
        if self._recording:
            state.upstream_head = record.upstream_head(resp)
        if resp.raw_content is not None:
            return  # the body is already here (replay): handled in response()
        if resp.status_code >= 400:
            return  # errors get one translated body in response()
        content_type = resp.headers.get("content-type", "")
        if state.exchange is not None:
            if not state.exchange.client_stream or not state.exchange.is_stream(content_type):
                return  # a non-streaming client gets the folded answer in response()
            translator: StreamTranslator | ModelRenamer = state.exchange.stream()
        elif state.renamer is not None and content_type.startswith(SSE_TYPE):
            translator = state.renamer
        else:
            if content_type.startswith(SSE_TYPE):  # pass-through: byte for byte, but live (else mitmproxy buffers)
                resp.stream = StreamAdapter(None, bytes, "full" if self._recording else "none", state.redact)
                errorpage.expect_cut(flow.request, cut_tail(None, state.plans[0].client))
            return
        decode = decoder_for(resp.headers.get("content-encoding", ""))
        if decode is None:
            logger.warning("upstream stream has unknown content-encoding %s; buffering it",
                           resp.headers["content-encoding"])
            return
        state.streamed = translator
        keep = "full" if self._recording else self.config.logging.log_response_body if self.config else "none"
        resp.stream = StreamAdapter(translator, decode, keep)
        errorpage.expect_cut(flow.request, cut_tail(translator, state.plans[0].client))
        resp.headers["content-type"] = SSE_TYPE  # the upstream's may be missing or carry a charset
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("content-length", None)
        if flow.request.http_version.startswith("HTTP/1"):
            resp.headers["transfer-encoding"] = "chunked"  # h2 clients reject it (notes §1)

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
                flow.response = http.Response.make(status, body, {"content-type": content_type})
                self._log(flow, state, status)
                return
        mode = self.config.logging.log_response_body if self.config else "none"
        adapter = resp.stream
        if isinstance(adapter, StreamAdapter) and adapter.upstream and adapter.client:
            upstream_body, client_body = adapter.upstream.body(), adapter.client.body()
            self._log_body("response stream from the upstream", upstream_body, mode, state.redact)
            self._log_body("response stream to the client", client_body, mode, state.redact)
            if self._recording:  # the client has its bytes: the flow keeps both sides for -w and mitmweb
                self._record_answer(flow, state, upstream_body)
                resp.content = state.redact.bytes(client_body)
        if state.streamed is not None:
            failed = state.streamed.failed
            state.summary["outcome"] = f"error: {failed.message}" if failed else "streamed"
        elif state.exchange is not None and record.served_as_recorded(flow, state.exchange.client.NAME):
            state.summary["outcome"] = "replayed as recorded"  # --server-replay of a flow the bridge recorded
        elif state.exchange is not None:
            upstream_body = resp.get_content(strict=False) or b""
            self._record_answer(flow, state, upstream_body)
            self._log_body("response body from the upstream", upstream_body, mode, state.redact)
            status, content_type, body = state.exchange.translate_body(
                resp.status_code, resp.headers.get("content-type", ""), upstream_body)
            self._log_body("response body to the client", body, mode, state.redact)
            if status != resp.status_code:
                resp.status_code = status
                resp.reason = RESPONSES.get(status, "")
            resp.headers.pop("content-encoding", None)
            resp.headers.pop("transfer-encoding", None)
            resp.headers["content-type"] = content_type
            resp.content = body
            state.summary["outcome"] = f"HTTP {status}"
        elif state.renamer is not None and resp.status_code < 400 and state.streamed is None:
            body = resp.get_content(strict=False) or b""
            self._record_answer(flow, state, body)
            resp.headers.pop("content-encoding", None)
            resp.content = state.renamer.body(body)
        elif resp.stream is False or resp.stream is None:  # passed through whole: the client gets the same,
            body = resp.get_content(strict=False) or b""  # but never a key an upstream echoed
            self._record_answer(flow, state, body)
            if resp.status_code >= 400 and (clean := state.redact.bytes(body)) != body:
                resp.headers.pop("content-encoding", None)
                resp.content = clean
        self._log(flow, state, resp.status_code)

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
        if "bridge" in flow.metadata and flow.live:
            record.redact_flow(flow)
        if state is not None and state.job is not None:
            self.relay.forget(flow.request.url)
            _show_winner(flow, state)
        if state is not None and flow.error:
            state.summary["outcome"] = f"failed: {flow.error.msg}"
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
        """One line per request: formats, endpoint, models, status, tokens, time to first byte, duration.
        Never a key: only names and numbers are logged."""
        s = state.summary
        for key in ("outcome", "error"):  # upstream words may echo a key
            if isinstance(s.get(key), str):
                s[key] = state.redact(s[key])
        usage = (state.streamed.usage if isinstance(state.streamed, StreamTranslator)
                 else state.exchange.usage if state.exchange else None)
        tokens = f"tokens {usage.total_input}/{usage.output_tokens}" if usage and usage.output_tokens is not None \
            else "tokens ?"
        resp = flow.response
        first_byte = (round((resp.timestamp_start - flow.request.timestamp_start) * 1000)
                      if resp and resp.timestamp_start and flow.request.timestamp_start else None)
        ttfb = f"{first_byte} ms" if first_byte is not None else "-"
        outcome = s.get("outcome", "")
        notes = [outcome] if outcome.startswith(("error", "failed")) else []
        if s.get("mode") == "rejected":
            notes.append(f"rejected: {s.get('error')}")  # what was wrong, in the words the client got
        if s.get("attempts", 1) > 1:
            notes.append(f"after {s['attempts']} attempts")
        notes += [f"dropped/approximated: {w}" for w in s.get("warnings", ())]
        mode = {"conversion": "format conversion"}.get(s.get("mode", "-"), s.get("mode", "-"))
        duration = (time.monotonic() - state.started) * 1000
        logger.info("%s %s → %s | %s | endpoint %s | model %s | status %s | %s | first byte %s | %.0f ms%s",
                    mode, s.get("client_format"), s.get("upstream_format", "-"), s.get("operation"),
                    s.get("endpoint", "-"), _model(s), status if status is not None else "-", tokens, ttfb,
                    duration, "".join(f" | {n}" for n in notes))
        # The same summary on the flow, for mitmweb's list and for recorded flows.
        s.update(status=status, duration_ms=round(duration), first_byte_ms=first_byte)
        if usage is not None:
            s["usage"] = {"input": usage.total_input, "output": usage.output_tokens,
                          "cache_read": usage.cache_read_tokens, "reasoning": usage.reasoning_tokens}
        failed = status is None or status >= 400 or outcome.startswith(("error", "failed"))
        flow.comment = (f"{'✗ ' if failed else ''}{s.get('client_format')} → {s.get('upstream_format', '-')} · "
                        f"{s.get('endpoint', '-')} · {_model(s)} · {status if status is not None else 'failed'}"
                        f" · {tokens}")
        if failed:
            flow.marked = ":warning:"


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


def _attempt(p: Plan, req: http.Request, index: int) -> Attempt:
    """What the relay sends to one endpoint: the client's headers as the plan changes them."""
    drop = {*p.drop_headers, *p.set_headers, "host", "content-length"}
    if p.body is not None:
        drop.add("content-encoding")  # a new body is plain JSON
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers.fields
               if k.decode("latin-1").lower() not in drop]
    headers += list(p.set_headers.items())
    ep = p.endpoint
    upstream = formats.get(p.summary.get("upstream_format", p.client.NAME))
    idle = ep.idle_timeout if ep else None
    stall = upstream.render_stream_error(UpstreamError(
        f"the upstream stream stalled: no data for {idle:g} s", status=504)) if idle else b""
    return Attempt(name=ep.name if ep else "?", url=p.url or req.url, headers=headers,
                   body=p.body if p.body is not None else req.raw_content or b"",
                   connect_timeout=(ep and ep.connect_timeout) or 10.0,
                   first_byte_timeout=(ep and ep.first_byte_timeout) or 600.0,
                   idle_timeout=idle, stall_event=stall, index=index)


def _model(summary: dict[str, Any]) -> str:
    model, upstream = summary.get("model", "-"), summary.get("upstream_model")
    return f"{model} → {upstream}" if upstream and upstream != model else str(model)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


addons = [Bridge()]
