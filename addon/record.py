"""What a flow the bridge handled keeps, and what a recorded one is used for again.

A flow keeps both sides of the translation, so that ``mitmdump -w`` writes, and mitmweb shows, the
whole exchange (mitmproxy-notes §1, §7):

* ``flow.request``: the request as sent upstream (mitmproxy's own);
* ``flow.response``: the answer as the client got it (streams included, when recording);
* ``flow.metadata``: the request as the client sent it, the upstream's answer as it came, the ids and
  clock the bridge used (keys in :mod:`addon.replay`), and the summary (``"bridge"``).

Credentials are blanked in all of it before mitmproxy's writer or mitmweb sees the flow. A recorded
flow read with ``-r`` is translated again by today's code (:func:`rerun`); one served by
``--server-replay`` is recognised when its answer is already in the client's format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from . import replay
from .access import CREDENTIAL_HEADERS
from .config import Config
from .redact import redacted_url
from .translate import answer_format

__all__ = ["Retranslate", "client_request", "header_list", "redact_flow", "rerun", "served_as_recorded",
           "upstream_head"]

logger = logging.getLogger("bridge")


def client_request(flow: http.HTTPFlow, body: bytes) -> dict[str, Any]:
    """The request as the client sent it, credentials blanked. In reverse mode mitmproxy has already
    pointed URL and Host at the reverse target; the client addressed the bridge's own address."""
    req = flow.request
    url, headers = req.url, header_list(req.headers.fields, redact=True)
    if flow.client_conn.proxy_mode.type_name == "reverse" and flow.client_conn.sockname:
        host, port = flow.client_conn.sockname[:2]
        authority = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        url = f"{'https' if flow.client_conn.tls_established else 'http'}://{authority}{req.path}"
        headers = [[k, authority if k.lower() == "host" else v] for k, v in headers]
    return {"method": req.method, "url": redacted_url(url), "http_version": req.http_version, "headers": headers,
            "content": body}


def upstream_head(resp: http.Response) -> dict[str, Any]:
    """The upstream's status and headers as they came, before the bridge changes them for the client."""
    return {"status_code": resp.status_code, "reason": resp.reason, "headers": header_list(resp.headers.fields)}


def header_list(fields: tuple[tuple[bytes, bytes], ...], redact: bool = False) -> list[list[str]]:
    """Headers as JSON-able pairs for flow.metadata, credentials blanked when ``redact``."""
    pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in fields]
    return [[k, "[REDACTED]" if redact and k.lower() in CREDENTIAL_HEADERS else v] for k, v in pairs]


def redact_flow(flow: http.HTTPFlow) -> None:
    """Credentials never stay in a flow: mitmproxy's writer (-w), mitmweb and dumps see it after the
    bridge's hook, and the request has already gone upstream."""
    headers = flow.request.headers
    for name in CREDENTIAL_HEADERS:
        if name in headers:
            headers[name] = "[REDACTED]"
    url = redacted_url(flow.request.url)
    if url != flow.request.url:
        flow.request.url = url


def served_as_recorded(flow: http.HTTPFlow, client_format: str) -> bool:
    """A ``--server-replay`` answer that is already in the client's format: the bridge recorded it
    (a flow keeps the client's side in ``flow.response``), so it is served as it was."""
    resp = flow.response
    return flow.is_replay == "response" and resp is not None and answer_format(
        resp.headers.get("content-type", ""), resp.get_content(strict=False) or b"") == client_format


def rerun(config: Config, flow: http.HTTPFlow) -> None:
    """``mitmdump -nr x.flow -s addon/bridge.py [-w y.flow]``: translate the recorded exchange with
    today's code and config, log what differs, and leave today's output in the flow (so ``-w`` writes
    it: that is how a fixture is re-blessed)."""
    name = flow.comment or flow.id
    try:
        again = replay.rerun(config, flow.metadata)
    except Exception as e:  # a damaged or foreign recording: say so, never crash the replay
        logger.error("replay of %s: cannot rerun: %s: %s", name, type(e).__name__, e)
        return
    diffs: list[str] = []
    if again.upstream_url is not None:
        recorded_path = flow.request.path if flow.request.host else ""
        new_path = "/" + again.upstream_url.split("://", 1)[-1].partition("/")[2]
        if recorded_path != new_path:
            diffs.append(f"upstream request path: recorded {recorded_path}, now {new_path}")
        diffs += replay.differences("upstream request", flow.request.get_content(strict=False), again.upstream_body)
        flow.request.url, flow.request.content = again.upstream_url, again.upstream_body
    if again.client_body is not None and flow.response is not None:
        if flow.response.status_code != again.client_status:
            diffs.append(f"client response status: recorded {flow.response.status_code}, now {again.client_status}")
        diffs += replay.differences("client response", flow.response.get_content(strict=False), again.client_body,
                                    again.client_content_type)
        flow.response.status_code = again.client_status or flow.response.status_code
        flow.response.content = again.client_body
    if diffs:
        logger.warning("replay of %s: %d difference(s) from the recording:\n  %s", name, len(diffs),
                       "\n  ".join(diffs))
    else:
        logger.info("replay of %s: today's translation matches the recording", name)
    flow.metadata[replay.DIFFERENCES] = diffs


class Retranslate:
    """A mitmproxy addon: a recorded flow read with ``-r`` is translated again by today's code, and the
    differences from the recording logged (:func:`rerun`)."""

    def __init__(self, config: Callable[[], Config | None]) -> None:
        self._config = config

    def request(self, flow: http.HTTPFlow) -> None:
        config = self._config()
        if not flow.live and replay.CLIENT_REQUEST in flow.metadata and config is not None:
            rerun(config, flow)
