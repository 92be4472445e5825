"""The answer on its way back: one mitmproxy addon.

At the answer's headers, a stream the client asked for gets a :class:`~addon.adapter.StreamAdapter`
(translated, renamed or passed on live, scrubbed of keys); any other answer is read whole (within
``max_answer_bytes``) and translated in ``response``. When every endpoint failed, or a stream broke
off, the client gets its own format's error. Recorded flows keep both sides; every request ends with
its one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http
from mitmproxy.net.http.status_codes import RESPONSES

from . import bodylimit, errorpage, formats, record, replay
from .adapter import STREAM_CHUNK_LIMIT, StreamAdapter, coalesce_reads
from .decompress import TooLarge, decode_body, decoder_for
from .errors import BridgeError, UpstreamError, UpstreamProtocolError
from .flowlog import log_flow
from .flowstate import FlowState
from .forward import Forward
from .logconfig import clean
from .metrics import METRICS
from .settings import Settings
from .translate import JSON_TYPE, SSE_TYPE, ModelRenamer, StreamTranslator, cut_tail, error_response, usage_of
from .wsfront import WS_URL

__all__ = ["Respond"]

logger = logging.getLogger("bridge")

_LOG_KEEP = {"none": 0, "truncated": 8000}  # bytes of a stream kept for its body log; "full": max_bytes


class Respond:
    def __init__(self, settings: Settings, forward: Forward) -> None:
        self.settings = settings
        self.forward = forward  # its flows, and the relay its requests went through

    def load(self, loader: object) -> None:
        coalesce_reads()  # what arrived in one read reaches the stream callable as one piece (adapter.py, guarded)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        state = self.forward.flows.get(flow.id)
        if flow.live:  # an upstream may echo a key in any header (www-authenticate, set-cookie, location, …)
            _redact_headers(resp, state.redact if state is not None else self.settings.redact.scrub_text)
        if state is None:
            return
        state.settle()
        if self.settings.recording:
            state.upstream_head = record.upstream_head(resp)
        if flow.request.http_version == "HTTP/1.0":
            resp.headers.pop("transfer-encoding", None)  # not HTTP/1.0's: the body ends when the connection does
        if resp.raw_content is None and state.streams(resp):
            self._stream(flow, resp, state)
        # else whole (a replay, an error, a folded answer): handled in response()

    def _stream(self, flow: http.HTTPFlow, resp: http.Response, state: FlowState) -> None:
        """The answer goes to the client as it arrives, through the translator (or as it is)."""
        config, recording = self.settings.config, self.settings.recording
        keep = (config.max_answer_bytes if recording else
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
                                    keep if recording or translator is not None else 0)
        METRICS.stream_opened(flow)  # open until response() or error() (metrics.py)
        errorpage.expect_cut(flow.request, cut_tail(translator, state.plans[0].client))
        if translator is None:
            return  # pass-through: live, byte for byte but for a key (else mitmproxy would buffer it)
        state.streamed = translator
        # the upstream's may be missing or carry a charset
        resp.headers["content-type"] = (state.exchange.client_stream_type if state.exchange else
                                        SSE_TYPE if state.plans[0].framing == "sse" else JSON_TYPE)
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
        state = self._done_with(flow)
        resp = flow.response
        if WS_URL in flow.metadata:  # a WebSocket the bridge serves: shown (and kept) as the client asked
            flow.request.url = flow.metadata.pop(WS_URL)
        if state is None or resp is None:
            return
        state.settle()
        if state.job is not None and len(state.job.failures) == len(state.job.attempts):
            self._every_endpoint_failed(flow, state)
            return
        mode = self.settings.config.logging.log_response_body if self.settings.config else "none"
        adapter = resp.stream
        if isinstance(adapter, StreamAdapter) and adapter.upstream and adapter.client:
            upstream_body, client_body = adapter.upstream.body(), adapter.client.body()
            self.settings.log_body(flow, "response stream from the upstream", upstream_body, mode, state.redact)
            self.settings.log_body(flow, "response stream to the client", client_body, mode, state.redact)
            if self.settings.recording:  # the client has its bytes: the flow keeps both sides for -w and mitmweb
                self._record_answer(flow, state, upstream_body)
                resp.content = state.redact.bytes(client_body)
        if state.streamed is not None:
            failed = state.streamed.failed
            state.summary["outcome"] = f"error: {failed.message}" if failed else "streamed"
        elif isinstance(adapter, StreamAdapter):
            state.summary["outcome"] = "streamed"
        elif state.exchange is not None and record.served_as_recorded(flow, state.exchange.client.NAME):
            self._served_as_recorded(resp, state)
        else:
            self._whole(flow, state, resp, mode)
        _log(flow, state, flow.response.status_code if flow.response else None)

    def _done_with(self, flow: http.HTTPFlow) -> FlowState | None:
        """The flow's state, taken: its patches forgotten, its recorded copy redacted, the relay's job
        shown as the endpoint that answered."""
        state = self.forward.flows.pop(flow.id, None)
        METRICS.stream_closed(flow)
        errorpage.forget(flow.request)
        bodylimit.forget(flow.request)
        if "bridge" in flow.metadata and flow.live:
            record.redact_flow(flow)
        if state is not None and state.job is not None:
            self.forward.relay.forget(flow.request.url)
            state.show_winner(flow)
        return state

    def _every_endpoint_failed(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert state.job is not None
        err = UpstreamError("every endpoint failed: " + "; ".join(state.job.failures), status=502)
        status, content_type, body = error_response(state.plans[0].client, err)
        headers = {"content-type": content_type}
        if all(errorpage.lasting(f) for f in state.job.failures):
            headers[errorpage.NO_RETRY] = "false"  # every endpoint is down, none busy
        flow.response = http.Response.make(status, state.redact.bytes(body), headers)
        _log(flow, state, status)

    @staticmethod
    def _served_as_recorded(resp: http.Response, state: FlowState) -> None:
        """``--server-replay`` of a flow the bridge recorded: the answer is already the client's."""
        assert state.exchange is not None
        state.summary["outcome"] = "replayed as recorded"
        try:
            body = decode_body(resp.raw_content or b"", resp.headers.get("content-encoding", ""),
                               state.exchange.ctx.budget.limit)
        except ValueError:
            body = b""
        state.exchange.usage = usage_of(state.exchange.client, resp.headers.get("content-type", ""), body,
                                        state.exchange.ctx)

    def _whole(self, flow: http.HTTPFlow, state: FlowState, resp: http.Response, mode: str) -> None:
        """An answer read whole (within max_answer_bytes): translated, renamed or passed on, scrubbed."""
        limit = self.settings.config.max_answer_bytes if self.settings.config else 0
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
        self.settings.log_body(flow, "response body from the upstream", upstream_body, mode, state.redact)
        if state.exchange is not None:
            status, content_type, body = state.exchange.translate_body(
                resp.status_code, resp.headers.get("content-type", ""), upstream_body)
            body = state.redact.bytes(body) if status >= 400 else state.scrub.scrub(body)
            self.settings.log_body(flow, "response body to the client", body, mode, state.redact)
            if status != resp.status_code:
                resp.status_code = status
                resp.reason = RESPONSES.get(status, "")
            resp.headers["content-type"] = content_type
            state.summary["outcome"] = f"HTTP {status}"
            if resp.status_code >= 400:  # the log line says what the upstream said, not only its status
                said = state.exchange.upstream.parse_error(resp.status_code, upstream_body)
                state.summary["outcome"] = f"error: {said.message}"
                if said.retry_after is not None and "retry-after" not in resp.headers:
                    resp.headers["retry-after"] = str(said.retry_after)  # Google says it in the body
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

    def _record_answer(self, flow: http.HTTPFlow, state: FlowState, body: bytes) -> None:
        """The upstream's answer as it came (body decoded), beside the client's in ``flow.response``;
        only when the flow is kept (recording, mitmweb): otherwise nobody reads it."""
        if not self.settings.recording:
            return
        head = state.upstream_head or {"status_code": flow.response.status_code if flow.response else 0,
                                       "reason": "", "headers": []}
        flow.metadata[replay.UPSTREAM_RESPONSE] = {**head, "content": state.redact.bytes(body)}

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.forward.flows.pop(flow.id, None)
        METRICS.stream_closed(flow)
        bodylimit.forget(flow.request)
        if "bridge" in flow.metadata and flow.live:
            record.redact_flow(flow)
        if state is not None and state.job is not None:
            self.forward.relay.forget(flow.request.url)
            state.show_winner(flow)
        if state is not None and flow.error:
            state.summary["outcome"] = state.summary.get("outcome") or f"failed: {flow.error.msg}"
            self._record_cut(flow, state, flow.error.msg)
            # The status the client got: the bridge's error answer (errorpage.py), or the stream's.
            _log(flow, state, flow.response.status_code if flow.response is not None else None)

    def _record_cut(self, flow: http.HTTPFlow, state: FlowState, message: str) -> None:
        """A stream that broke off, recorded as the client will get it: what came, then the error event
        the patch in errorpage.py sends after this hook (fixed now, so flow and client agree)."""
        resp = flow.response
        adapter = resp.stream if resp is not None else None
        if resp is None or not self.settings.recording or not isinstance(adapter, StreamAdapter) or \
                adapter.upstream is None or adapter.client is None:
            return
        tail = errorpage.take_cut(flow.request)
        end = tail(message) if tail is not None else b""
        if tail is not None:
            errorpage.expect_cut(flow.request, lambda _message: end)
        self._record_answer(flow, state, adapter.upstream.body())
        flow.metadata[replay.UPSTREAM_RESPONSE]["cut"] = message
        resp.content = state.redact.bytes(adapter.client.body() + end)


def _log(flow: http.HTTPFlow, state: FlowState, status: int | None) -> None:
    usage = (state.streamed.usage if isinstance(state.streamed, StreamTranslator)
             else state.exchange.usage if state.exchange else None)
    log_flow(flow, state.summary, status, usage, state.started, state.redact, state.job)


def _redact_headers(resp: http.Response, redact: Callable[[str], str]) -> None:
    """Every header value through ``redact``, only rewritten when one changed."""
    fields = resp.headers.fields
    clean_fields = tuple((k, redact(v.decode("latin-1")).encode("latin-1", "replace")) for k, v in fields)
    if clean_fields != fields:
        resp.headers.fields = clean_fields
