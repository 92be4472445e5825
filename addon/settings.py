"""The bridge's config, and what follows from it and from mitmproxy's options: one mitmproxy addon.

The config is loaded at startup (a mistake there is one clean line and mitmdump stops) and reloaded
when its file changes (a broken edit keeps the last good one). With it come the logging setup, the
ChatGPT logins it uses (``codex_session.py``), the redactor of every key the config names and every
token of those logins, the warning when the bridge listens beyond loopback without client keys, and
whether flows are kept (``-w``, mitmweb): then they hold both sides of a translation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from mitmproxy import addonmanager, ctx, exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode

from .access import is_loopback
from .codex_session import Logins
from .config import Config, ConfigError, load_config
from .health import HEALTH
from .logconfig import apply, body_for_log
from .metrics import METRICS
from .redact import Redactor

__all__ = ["Settings"]

logger = logging.getLogger("bridge")

_PASS_STREAM = "1m"  # stream_large_bodies for the traffic the bridge leaves alone (mitmproxy's size syntax)


class Settings:
    def __init__(self) -> None:
        self.config: Config | None = None
        self.redact = Redactor()  # every key the config names, and key shapes
        self.logins = Logins(on_change=self._redact_anew)  # auth: codex-login, one session per Codex home
        self.recording = False  # flows are written (-w), kept or shown (mitmweb): they keep both sides whole
        self._mtime: float | None = None
        self._watcher: asyncio.Task[None] | None = None

    def load(self, loader: addonmanager.Loader) -> None:
        loader.add_option("bridge_config", str, "config.yaml",
                          "Path of the bridge's YAML config (endpoints, formats, key env vars). "
                          "Reloaded when the file changes.")

    def configure(self, updated: set[str]) -> None:
        if "bridge_config" in updated:
            try:
                reloading = self.config is not None  # another file set while running (mitmweb's options)
                self._use(load_config(ctx.options.bridge_config, require_env=not _replaying()))
                self._mtime = _mtime(ctx.options.bridge_config)
                if reloading:
                    METRICS.reloaded(ok=True)
            except ConfigError as e:
                if self.config is None:  # at startup: one clean line (an error logged now stops mitmdump)
                    logger.error("%s", e)
                    return
                _reload_failed(str(e))
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
        self.recording = any(name in ctx.options and bool(getattr(ctx.options, name)) for name in
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
        self._watcher = asyncio.create_task(self._watch_config())

    async def done(self) -> None:
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
                METRICS.reloaded(ok=True)
                logger.info("config reloaded from %s", path)
            except ConfigError as e:
                _reload_failed(str(e))
                logger.error("config not reloaded, keeping the previous one: %s", e)

    def _use(self, config: Config) -> None:
        self.config = config
        apply(config.logging, logger)
        if config.unset_env:
            logger.warning("replaying: %s not set; a request that still reaches an upstream goes without that key",
                           ", ".join(config.unset_env))
        self.logins.use(ep.codex_home for ep in config.endpoints if ep.codex_home)
        self._redact_anew()
        HEALTH.loaded(config)  # what /ready says of the config (health.py)
        METRICS.use(config)  # the metrics route, if any, and the model names its labels keep (metrics.py)

    def _redact_anew(self) -> None:
        """The redactor of every key the config names and every token of its logins (called again when
        a login's tokens change)."""
        self.redact = Redactor.from_env(self.config.secret_envs() if self.config else (), self.logins.secrets())

    def log_body(self, flow: http.HTTPFlow, what: str, body: bytes, mode: str, redact: Redactor) -> None:
        """A body in the log as the config's logging says (``mode``), redacted and bounded."""
        text = body_for_log(body, mode, redact, self.config.logging.max_bytes if self.config else 0)
        if text is not None:  # the request's id ties it to its summary line (flowlog.py)
            logger.info("%s [req %s]: %s", what, flow.id[:8], text)


def _reload_failed(message: str) -> None:
    """A changed config that could not be used: counted, and shown by /ready until a reload succeeds."""
    METRICS.reloaded(ok=False)
    HEALTH.reload_failed(message)


def _replaying() -> bool:
    """Reading recorded flows (-n) or answering from them (--server-replay): no key is needed for that."""
    return ("server" in ctx.options and not ctx.options.server) or \
        bool("server_replay" in ctx.options and ctx.options.server_replay)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
