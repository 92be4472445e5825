"""mitmproxy entry point: ``mitmdump -s addon/bridge.py --set bridge_config=config.yaml``.

Glue only: options, hooks, and the per-flow stream adapter. Which format a request is in, where it
goes and how it is translated are decided by ``routing``, ``translate`` and ``formats``; no field of
any wire format is named here. See mitmproxy-notes.md for the traps each hook steps around.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# mitmproxy loads this file as a script, not as part of the ``addon`` package.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mitmproxy import addonmanager, ctx, exceptions, http  # noqa: E402
from mitmproxy.net.http.status_codes import RESPONSES  # noqa: E402

from addon import formats  # noqa: E402
from addon.config import Config, ConfigError, load_config  # noqa: E402
from addon.decompress import decoder_for  # noqa: E402
from addon.errors import BadRequest, BridgeError  # noqa: E402
from addon.formats import Format  # noqa: E402
from addon.formats.common import Context  # noqa: E402
from addon.routing import detect_format, route  # noqa: E402
from addon.translate import SSE_TYPE, Exchange, StreamTranslator, error_response  # noqa: E402

logger = logging.getLogger("bridge")


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class StreamAdapter:
    """The ``flow.response.stream`` callable: bytes per network chunk, then ``b""`` at the end."""

    def __init__(self, translator: StreamTranslator, decode: Callable[[bytes], bytes]) -> None:
        self.translator = translator
        self._decode = decode

    def __call__(self, data: bytes) -> list[bytes]:
        # Always a list: a bare b"" mid-stream would end a chunked HTTP/1 body (notes §1).
        if data:
            return self.translator.feed(self._decode(data))
        tail = self._decode(b"")
        return (self.translator.feed(tail) if tail else []) + self.translator.close()


class Bridge:
    def __init__(self) -> None:
        self.config: Config | None = None
        self._exchanges: dict[str, Exchange] = {}

    def load(self, loader: addonmanager.Loader) -> None:
        loader.add_option("bridge_config", str, "config.yaml",
                          "Path of the bridge's YAML config (endpoints, formats, key env vars).")

    def configure(self, updated: set[str]) -> None:
        if "bridge_config" in updated:
            try:
                self.config = load_config(ctx.options.bridge_config)
            except ConfigError as e:
                raise exceptions.OptionsError(str(e)) from None  # type: ignore[no-untyped-call]
        if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
            # eager connects to the reverse target before any hook can reroute (notes §2).
            ctx.options.update(connection_strategy="lazy")  # type: ignore[no-untyped-call]

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or "bridge" in flow.metadata or self.config is None:
            return
        client_format = detect_format(flow.request.method, flow.request.path)
        if client_format not in formats.FORMATS:
            return
        r = route(self.config, client_format)
        client, upstream = formats.get(client_format), formats.get(r.upstream_format)
        query = flow.request.path.partition("?")[2]
        flow.request.url = r.url + (f"?{query}" if query else "")
        api_key = r.endpoint.api_key()
        flow.metadata["bridge"] = {"client_format": client_format, "upstream_format": r.upstream_format,
                                   "endpoint": r.endpoint.name}
        # A flavoured upstream (the Codex backend) takes pass-through only when the request already
        # keeps its rules; otherwise the request is translated like any other.
        if r.passthrough and (r.flavor is None or upstream.passes_through(flow.request.get_content(strict=False)
                                                                           or b"", r.flavor)):
            self._set_headers(flow, client, upstream, api_key, r.endpoint.auth, r.endpoint.headers)
            logger.info("pass-through %s → endpoint %s", client_format, r.endpoint.name)
            return
        ep = r.endpoint
        ctx_ = Context(new_id=_new_id, created=int(time.time()), default_max_tokens=ep.default_max_tokens,
                       max_tokens_limit=ep.max_tokens_limit, drop_params=ep.drop_params, flavor=r.flavor)
        try:
            try:
                flow.request.decode()  # a zstd/gzip request body (Codex) is read as plain JSON
            except ValueError as e:
                raise BadRequest(f"request body could not be decoded: {e}") from None
            exchange, body = Exchange.start(client, upstream, flow.request.get_content() or b"", ctx_)
        except BridgeError as e:
            status, content_type, error_body = error_response(client, e)
            logger.warning("rejected %s request: %s", client_format, e.message)
            flow.response = http.Response.make(status, error_body, {"content-type": content_type})
            return
        flow.request.content = body
        flow.request.headers["content-type"] = "application/json"
        flow.request.headers["accept-encoding"] = "identity"  # the stream callable needs plain bytes
        self._set_headers(flow, client, upstream, api_key, r.endpoint.auth, r.endpoint.headers)
        self._exchanges[flow.id] = exchange
        flow.metadata["bridge"]["model"] = exchange.request.model
        flow.metadata["bridge"]["warnings"] = list(exchange.warnings)
        logger.info("format conversion %s → %s, endpoint %s, model %s%s", client_format, r.upstream_format,
                    r.endpoint.name, exchange.request.model,
                    "".join(f"\n  dropped/approximated: {w}" for w in exchange.warnings))

    @staticmethod
    def _set_headers(flow: http.HTTPFlow, client: Format, upstream: Format, api_key: str | None,
                     auth: str | None, extra: tuple[tuple[str, str], ...]) -> None:
        """The client's credentials never reach a different provider; its format's headers neither.

        Pass-through without a configured key is the one case where the client's own key goes on:
        the upstream speaks the client's format, and the client chose to send it.
        """
        headers = flow.request.headers
        if api_key or client is not upstream:
            for name in {*client.AUTH_HEADERS, *upstream.AUTH_HEADERS}:
                headers.pop(name, None)
            headers.update(upstream.auth_headers(api_key, auth))
        if client is not upstream:
            for name in client.OWN_HEADERS:
                headers.pop(name, None)
            headers.update(upstream.REQUIRED_HEADERS)
        headers.update(extra)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        exchange = self._exchanges.get(flow.id)
        resp = flow.response
        if exchange is None or resp is None or resp.raw_content is not None:
            return  # not ours, or the body is already here (replay): translated in response()
        if resp.status_code >= 400 or not exchange.client_stream:
            return  # errors and non-streamed clients get one translated body in response()
        if not exchange.is_stream(resp.headers.get("content-type", "")):
            return
        decode = decoder_for(resp.headers.get("content-encoding", ""))
        if decode is None:
            logger.warning("upstream stream has unknown content-encoding %s; buffering it",
                           resp.headers["content-encoding"])
            return
        resp.stream = StreamAdapter(exchange.stream(), decode)
        resp.headers["content-type"] = SSE_TYPE  # the upstream's may be missing or carry a charset
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("content-length", None)
        if flow.request.http_version.startswith("HTTP/1"):
            resp.headers["transfer-encoding"] = "chunked"  # h2 clients reject it (notes §1)

    def response(self, flow: http.HTTPFlow) -> None:
        exchange = self._exchanges.pop(flow.id, None)
        resp = flow.response
        if exchange is None or resp is None:
            return
        if isinstance(resp.stream, StreamAdapter):
            t = resp.stream.translator
            flow.metadata["bridge"]["outcome"] = f"error: {t.failed.message}" if t.failed else "streamed"
            return
        status, content_type, body = exchange.translate_body(
            resp.status_code, resp.headers.get("content-type", ""), resp.get_content(strict=False) or b"")
        if status != resp.status_code:
            resp.status_code = status
            resp.reason = RESPONSES.get(status, "")
        resp.headers.pop("content-encoding", None)
        resp.headers.pop("transfer-encoding", None)
        resp.headers["content-type"] = content_type
        resp.content = body
        flow.metadata["bridge"]["outcome"] = f"HTTP {status}"

    def error(self, flow: http.HTTPFlow) -> None:
        if self._exchanges.pop(flow.id, None) is not None and flow.error:
            logger.warning("upstream exchange failed: %s", flow.error.msg)


addons = [Bridge()]
