"""mitmproxy entry point: ``mitmdump -s addon/bridge.py --set bridge_config=config.yaml``.

Glue only, split the way mitmproxy splits its own addons, one concern per class, in the order their
hooks must run: :class:`~addon.settings.Settings` (the config, reloaded; logging; redaction),
:class:`~addon.guard.Guard` (the access rule, on everything), :class:`~addon.record.Retranslate` (a
recorded flow read with ``-r``), :class:`~addon.forward.Forward` (the request planned, rewritten and
sent) and :class:`~addon.respond.Respond` (the answer streamed or translated back). What a request is,
where it goes and how it is translated are decided by ``plan`` (with ``routing``, ``translate`` and
``formats``); no field of any wire format is named here. See mitmproxy-notes.md for the traps.
"""

from __future__ import annotations

import sys
from pathlib import Path

# mitmproxy loads this file as a script, not as part of the ``addon`` package.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mitmproxy import addonmanager  # noqa: E402

from addon import bodylimit, errorpage, views, wsbounds  # noqa: E402
from addon.adapter import StreamAdapter  # noqa: E402
from addon.forward import Forward  # noqa: E402
from addon.guard import Guard  # noqa: E402
from addon.health import HEALTH  # noqa: E402
from addon.record import Retranslate  # noqa: E402
from addon.respond import Respond  # noqa: E402
from addon.settings import Settings  # noqa: E402

__all__ = ["Bridge", "StreamAdapter", "addons"]


class Bridge:
    """The addon mitmproxy loads; its parts (``addons``) get every hook, in this order."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.forward = Forward(self.settings)
        self.respond = Respond(self.settings, self.forward)
        # /ready shows the endpoints the failover relay tries last after a 429 (or 5xx with Retry-After)
        HEALTH.resting = self.forward.relay.resting
        guard = Guard(lambda: self.settings.config, self.forward.claims, self.forward.front.admitted)
        self.addons = [self.settings, guard, Retranslate(lambda: self.settings.config), self.forward, self.respond,
                       self.forward.ws_bounds]

    def load(self, loader: addonmanager.Loader) -> None:
        # The guarded patches of mitmproxy internals (each checks what it patches, and fails loudly).
        errorpage.install()
        bodylimit.install()
        wsbounds.install()
        views.install()


addons = [Bridge()]
