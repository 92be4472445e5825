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

from addon import errorpage, formats  # noqa: E402
from addon.config import Config, ConfigError, load_config  # noqa: E402
from addon.decompress import decoder_for  # noqa: E402
from addon.errors import UpstreamError  # noqa: E402
from addon.logconfig import CREDENTIAL_HEADERS, BodyRecorder, Redactor, apply, body_for_log, redacted_url  # noqa: E402
from addon.plan import Plan, plan  # noqa: E402
from addon.relay import Attempt, Job, Relay  # noqa: E402
from addon.routing import detect  # noqa: E402
from addon.translate import SSE_TYPE, ModelRenamer, StreamTranslator, error_response  # noqa: E402

logger = logging.getLogger("bridge")

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class StreamAdapter:
    """The ``flow.response.stream`` callable: bytes per network chunk, then ``b""`` at the end.

    With response-body logging on, ``upstream`` and ``client`` keep side copies for the log line
    written after the stream ends.
    """

    def __init__(self, translator: StreamTranslator | ModelRenamer, decode: Callable[[bytes], bytes],
                 record: str = "none") -> None:
        self.translator = translator
        self._decode = decode
        self.upstream = BodyRecorder(record) if record != "none" else None
        self.client = BodyRecorder(record) if record != "none" else None

    def __call__(self, data: bytes) -> list[bytes]:
        # Always a list: a bare b"" mid-stream would end a chunked HTTP/1 body (notes §1).
        plain = self._decode(data)
        out = self.translator.feed(plain) if plain else []
        if not data:
            out += self.translator.close()
        if self.upstream is not None and self.client is not None:
            self.upstream.add(plain)
            self.client.add(out)
        return out


class _Flow:
    """What the bridge remembers about a flow between its hooks (never stored in the flow itself).

    A plain class: mitmproxy runs this file as a script outside ``sys.modules``, where a dataclass
    cannot resolve its own annotations.
    """

    __slots__ = ("exchange", "job", "plans", "renamer", "started", "streamed", "summary")

    def __init__(self, p: Plan) -> None:
        self.summary = p.summary
        self.exchange = p.exchange
        self.renamer = ModelRenamer(*p.rename) if p.rename else None
        self.streamed: StreamTranslator | ModelRenamer | None = None
        self.started = time.monotonic()
        self.job: Job | None = None  # set when the request goes through the failover relay
        self.plans = [p, *p.fallbacks]

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

    def load(self, loader: addonmanager.Loader) -> None:
        errorpage.install()
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

    def _check_exposure(self) -> None:
        """Say so when the bridge is reachable beyond loopback: without client keys, only loopback
        clients are served (the bridge holds upstream keys; it must never be an open relay)."""
        if self.config is None or self.config.client_keys_env or "listen_host" not in ctx.options:
            return
        hosts = {ProxyMode.parse(spec).custom_listen_host or ctx.options.listen_host for spec in ctx.options.mode}
        exposed = sorted(h or "all interfaces" for h in hosts if not _is_loopback(h))
        if exposed:
            logger.warning("listening on %s without client_keys_env: only loopback clients will be served; "
                           "set client_keys_env in %s to serve others", ", ".join(exposed), self.config.path)

    async def running(self) -> None:
        upstream = [ProxyMode.parse(m) for m in ctx.options.mode if m.startswith("upstream:")]
        proxy = upstream[0].data if upstream else None
        await self.relay.start(verify=not ctx.options.ssl_insecure, proxy=proxy)
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

    def _log_body(self, what: str, body: bytes, mode: str) -> None:
        text = body_for_log(body, mode, self._redact)
        if text is not None:
            logger.info("%s: %s", what, text)

    def _ours(self, flow: http.HTTPFlow) -> bool:
        """In regular and upstream proxy mode the bridge acts only on the LLM API hosts it knows."""
        mode = flow.client_conn.proxy_mode.type_name
        return mode not in ("regular", "upstream") or (
            self.config is not None and flow.request.pretty_host.lower() in self.config.intercept_hosts)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or "bridge" in flow.metadata or self.config is None:
            return
        req = flow.request
        op = detect(req.method, req.path, "anthropic-version" in req.headers or "x-api-key" in req.headers)
        if op is None or not self._ours(flow):
            return
        try:
            body = req.get_content() or b""
        except ValueError:
            body = req.raw_content or b""  # undecodable: plan() answers it as invalid JSON
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        p = plan(self.config, op, req.path, req.headers, body, _new_id, int(time.time()),
                 local_client=_is_loopback(str(peer).removeprefix("::ffff:")))
        flow.metadata["bridge"] = p.summary
        state = _Flow(p)
        log = self.config.logging
        self._log_body(f"request body from the client ({op.client_format})", body, log.log_request_body)
        if p.body is not None and p.answer is None:
            self._log_body(f"request body to the upstream ({p.summary.get('upstream_format')})", p.body,
                           log.log_request_body)
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
                client, UpstreamError(f"the upstream could not be reached: {message}", status=status)))
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
            if content_type.startswith(SSE_TYPE):
                resp.stream = True  # pass-through: byte for byte, but live (mitmproxy buffers otherwise)
            return
        decode = decoder_for(resp.headers.get("content-encoding", ""))
        if decode is None:
            logger.warning("upstream stream has unknown content-encoding %s; buffering it",
                           resp.headers["content-encoding"])
            return
        state.streamed = translator
        record = self.config.logging.log_response_body if self.config else "none"
        resp.stream = StreamAdapter(translator, decode, record)
        resp.headers["content-type"] = SSE_TYPE  # the upstream's may be missing or carry a charset
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("content-length", None)
        if flow.request.http_version.startswith("HTTP/1"):
            resp.headers["transfer-encoding"] = "chunked"  # h2 clients reject it (notes §1)

    def response(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        errorpage.forget(flow.request)
        if "bridge" in flow.metadata and flow.live:
            _redact_flow(flow)
        resp = flow.response
        if state is None or resp is None:
            return
        state.settle()
        if state.job is not None:
            self.relay.forget(flow.request.url)
            if len(state.job.failures) == len(state.job.attempts):  # every endpoint failed to answer
                err = UpstreamError("every endpoint failed: " + "; ".join(state.job.failures), status=502)
                status, content_type, body = error_response(state.plans[0].client, err)
                flow.response = http.Response.make(status, body, {"content-type": content_type})
                self._log(flow, state, status)
                return
        mode = self.config.logging.log_response_body if self.config else "none"
        if state.streamed is not None:
            failed = state.streamed.failed
            state.summary["outcome"] = f"error: {failed.message}" if failed else "streamed"
            adapter = resp.stream
            if isinstance(adapter, StreamAdapter) and adapter.upstream and adapter.client:
                self._log_body("response stream from the upstream", adapter.upstream.body(), mode)
                self._log_body("response stream to the client", adapter.client.body(), mode)
        elif state.exchange is not None:
            upstream_body = resp.get_content(strict=False) or b""
            self._log_body("response body from the upstream", upstream_body, mode)
            status, content_type, body = state.exchange.translate_body(
                resp.status_code, resp.headers.get("content-type", ""), upstream_body)
            self._log_body("response body to the client", body, mode)
            if status != resp.status_code:
                resp.status_code = status
                resp.reason = RESPONSES.get(status, "")
            resp.headers.pop("content-encoding", None)
            resp.headers.pop("transfer-encoding", None)
            resp.headers["content-type"] = content_type
            resp.content = body
            state.summary["outcome"] = f"HTTP {status}"
        elif state.renamer is not None and resp.status_code < 400:
            body = resp.get_content(strict=False) or b""
            resp.headers.pop("content-encoding", None)
            resp.content = state.renamer.body(body)
        self._log(flow, state, resp.status_code)

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        if "bridge" in flow.metadata and flow.live:
            _redact_flow(flow)
        if state is not None and state.job is not None:
            self.relay.forget(flow.request.url)
        if state is not None and flow.error:
            state.summary["outcome"] = f"failed: {flow.error.msg}"
            self._log(flow, state, None)

    @staticmethod
    def _log(flow: http.HTTPFlow, state: _Flow, status: int | None) -> None:
        """One line per request: formats, endpoint, models, status, tokens, time to first byte, duration.
        Never a key: only names and numbers are logged."""
        s = state.summary
        usage = (state.streamed.usage if isinstance(state.streamed, StreamTranslator)
                 else state.exchange.usage if state.exchange else None)
        tokens = f"tokens {usage.total_input}/{usage.output_tokens}" if usage and usage.output_tokens is not None \
            else "tokens ?"
        resp = flow.response
        ttfb = (f"{(resp.timestamp_start - flow.request.timestamp_start) * 1000:.0f} ms"
                if resp and resp.timestamp_start and flow.request.timestamp_start else "-")
        outcome = s.get("outcome", "")
        notes = [outcome] if outcome.startswith(("error", "failed")) else []
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
        s.update(status=status, duration_ms=round(duration))
        if usage is not None:
            s["usage"] = {"input": usage.total_input, "output": usage.output_tokens,
                          "cache_read": usage.cache_read_tokens, "reasoning": usage.reasoning_tokens}
        failed = status is None or status >= 400 or outcome.startswith(("error", "failed"))
        flow.comment = (f"{'✗ ' if failed else ''}{s.get('client_format')} → {s.get('upstream_format', '-')} · "
                        f"{s.get('endpoint', '-')} · {_model(s)} · {status if status is not None else 'failed'}"
                        f" · {tokens}")
        if failed:
            flow.marked = ":warning:"


def _redact_flow(flow: http.HTTPFlow) -> None:
    """Credentials never stay in a flow: mitmproxy's writer (-w), mitmweb and dumps see it after this
    hook, and the request has already gone upstream. Runs for every request the bridge handled."""
    headers = flow.request.headers
    for name in CREDENTIAL_HEADERS:
        if name in headers:
            headers[name] = "[REDACTED]"
    url = redacted_url(flow.request.url)
    if url != flow.request.url:
        flow.request.url = url


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
