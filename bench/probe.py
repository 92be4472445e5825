"""A mitmdump script for ``bench/profile.py``: how the upstream's bytes reach the stream callable.

Loaded after the bridge (or alone, in plain mitmdump) with ``-s bench/probe.py``; measurement only,
never part of the bridge. Per answer read from an upstream it counts the socket reads (``DataReceived``
events) and the body pieces (``ResponseData``) mitmproxy's HTTP/1 reader made of them (``Http1Client.read_body``
wrapped, after the bridge's own wrap, which hands the pieces of one read on as one), and adds up the CPU time
of this thread spent in the bridge's stream callable (``StreamAdapter.__call__``, when the bridge is loaded),
in the bridge's flow hooks (each by name, and in all) and in socket writes (asyncio's
``_SelectorSocketTransport.write``, every connection: the client's share is nearly all of it). The totals go
to the file named by ``BRIDGE_PROBE`` at each answer's end, one JSON line per answer (``BRIDGE_PROBE_TIMERS=0``:
the counts only, for a run under py-spy). Each wrap checks what it wraps and fails loudly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from asyncio import selector_events
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy.proxy import events
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ResponseData, ResponseEndOfMessage
from mitmproxy.proxy.layers.http._http1 import Http1Client

_OUT = os.environ.get("BRIDGE_PROBE", "")
_NEW = {"reads": 0, "pieces": 0, "bytes": 0}
_time = {"callable_ns": 0, "calls": 0, "write_ns": 0, "writes": 0, "hooks_ns": 0, "hooks": 0}  # since the last answer


def _timed(fn: Callable[..., Any], ns: str, calls: str, also: str | None = None) -> Callable[..., Any]:
    """``fn``, its CPU time added to ``_time[ns]`` (and ``_time[also]``), its calls counted in ``_time[calls]``."""
    clock = time.thread_time_ns  # CPU time of this thread: not the time another process had the core

    def timed(*args: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args)
        finally:
            spent = clock() - t0
            _time[ns] += spent
            if also:
                _time[also] += spent
            _time[calls] += 1
    timed._probe = True  # type: ignore[attr-defined]
    return timed


def _install() -> None:
    original = Http1Client.read_body  # the bridge's coalescing wrap of it, when the bridge is loaded
    if getattr(original, "_probe", False):
        return
    if original.__code__.co_varnames[:2] != ("self", "event"):
        raise RuntimeError("bench/probe.py: mitmproxy's Http1Client.read_body changed")

    def read_body(self: Any, event: events.Event) -> Generator[Any, Any, None]:
        counts = self.__dict__.setdefault("_probe_counts", dict(_NEW))
        if isinstance(event, events.DataReceived):
            counts["reads"] += 1
            counts["bytes"] += len(event.data)
        gen = original(self, event)
        sent = None
        while True:
            try:
                cmd = gen.send(sent)
            except StopIteration as stop:
                return stop.value
            if isinstance(cmd, ReceiveHttp):
                if isinstance(cmd.event, ResponseData):
                    counts["pieces"] += 1
                elif isinstance(cmd.event, ResponseEndOfMessage) and _OUT:
                    with open(_OUT, "a") as f:
                        f.write(json.dumps({**counts, **_time}) + "\n")
                    self.__dict__["_probe_counts"] = dict(_NEW)
                    _time.update(dict.fromkeys(_time, 0))
            sent = yield cmd

    read_body._probe = True  # type: ignore[attr-defined]
    Http1Client.read_body = read_body  # type: ignore[method-assign]
    if os.environ.get("BRIDGE_PROBE_TIMERS") == "0":  # under a sampling profiler: the clock calls would be its hot spot
        return
    transport = selector_events._SelectorSocketTransport
    if not callable(getattr(transport, "write", None)):
        raise RuntimeError("bench/probe.py: asyncio's _SelectorSocketTransport.write is gone")
    transport.write = _timed(transport.write, "write_ns", "writes")  # type: ignore[method-assign]
    adapter = sys.modules.get("addon.adapter")  # the bridge, loaded before this script
    if adapter is not None:
        adapter.StreamAdapter.__call__ = _timed(adapter.StreamAdapter.__call__, "callable_ns", "calls")
    for module, name in (("addon.guard", "Guard"), ("addon.record", "Retranslate"), ("addon.forward", "Forward"),
                         ("addon.respond", "Respond")):  # the bridge's flow hooks (the response hook's time
        cls = getattr(sys.modules.get(module), name, None)  # counts toward the next answer's line)
        for hook in ("requestheaders", "request", "responseheaders", "response"):
            fn = cls.__dict__.get(hook) if cls is not None else None
            if fn is not None and not getattr(fn, "_probe", False):
                key = f"{name}.{hook}"
                _time[key] = 0
                setattr(cls, hook, _timed(fn, "hooks_ns", "hooks", also=key))


_install()
