"""What keeps memory bounded, unit by unit (issue 12 items 1-3): bounded decompression, the answer
budget of the translators that must keep text, the caps on what parsers remember, and the private
mitmproxy names the per-flow body limits rely on. End to end: tests/test_hardening.py; at scale,
with resident memory measured: tests/test_limits.py.
"""

from __future__ import annotations

import gzip
import inspect
import itertools
import zlib

import brotli
import pytest
import zstandard

from addon.decompress import Corrupt, TooLarge, decode_body, decoder_for
from addon.errors import UpstreamProtocolError
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import responses as R
from addon.formats.common import AnswerTooLarge, Budget, Context, InputUnwrapper, warn
from addon.ir import BlockDelta, BlockKind, BlockStart, MessageStart
from addon.sse import SSEDecoder
from addon.translate import StreamTranslator

ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
            "zstd": zstandard.ZstdCompressor().compress}
DATA = b'{"text": "' + bytes(range(32, 127)) * 300 + b'"}'


@pytest.mark.parametrize("encoding", ENCODERS)
def test_each_encoding_decodes_whole_and_in_pieces(encoding: str) -> None:
    packed = ENCODERS[encoding](DATA)
    assert decode_body(packed, encoding, len(DATA)) == DATA
    for size in (1, 100, len(packed)):
        decode = decoder_for(encoding, len(DATA))
        assert decode is not None
        assert b"".join(decode(packed[i:i + size]) for i in range(0, len(packed), size)) + decode(b"") == DATA


def test_raw_deflate_and_several_gzip_members_are_read_as_servers_send_them() -> None:
    raw = zlib.compressobj(wbits=-15)
    assert decode_body(raw.compress(DATA) + raw.flush(), "deflate", len(DATA)) == DATA
    assert decode_body(gzip.compress(b"one ") + gzip.compress(b"two"), "gzip", 100) == b"one two"


@pytest.mark.parametrize("encoding", ENCODERS)
def test_a_bomb_stops_at_the_limit_whole_or_streamed(encoding: str) -> None:
    bomb = ENCODERS[encoding](b"\0" * (64 << 20))  # 64 MiB of zeros, a few KB packed
    with pytest.raises(TooLarge) as e:
        decode_body(bomb, encoding, 1 << 20)
    assert e.value.limit == 1 << 20
    decode = decoder_for(encoding, 1 << 20)
    assert decode is not None
    with pytest.raises(TooLarge):
        for i in range(0, len(bomb), 65536):  # one network chunk may expand by at most the limit
            decode(bomb[i:i + 65536])
        decode(b"")


def test_identity_is_limited_too_and_unknown_or_corrupt_encodings_are_named() -> None:
    assert decode_body(b"abc", "", 3) == b"abc" and decode_body(b"abc", "identity", 3) == b"abc"
    with pytest.raises(TooLarge):
        decode_body(b"abcd", "", 3)
    with pytest.raises(ValueError, match="snappy"):
        decode_body(b"x", "snappy", 10)
    assert decoder_for("snappy", 10) is None
    with pytest.raises(Corrupt, match="gzip"):
        decode_body(b"not gzip at all", "gzip", 100)
    decode = decoder_for("zstd", 100)
    assert decode is not None
    with pytest.raises(Corrupt):
        decode(b"\x28\xb5\x2f\xfd garbage that is not a frame")


def ctx(limit: int) -> Context:
    counter = itertools.count(1)
    return Context(new_id=lambda p: f"{p}{next(counter)}", created=1, budget=Budget(limit))


def chat_stream(texts: list[str], field: str = "content") -> bytes:
    head = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    deltas = b"".join(b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"' + field.encode() + b'":"'
                      + t.encode() + b'"}}]}\n\n' for t in texts)
    end = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    return head + deltas + end


def events(data: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [e.data for e in decoder.feed(data) + decoder.close()]


def test_a_responses_client_keeps_at_most_the_budget_then_fails_honestly() -> None:
    """Issue 12 item 1: the emitter kept every delta for response.completed; 2.7 GB killed the process."""
    c = ctx(1000)
    t = StreamTranslator(C.StreamParser(c), R.StreamEmitter(c))
    out = b"".join(t.feed(chat_stream(["x" * 100] * 30)) + t.close())
    last = events(out)[-1]
    assert '"type":"response.failed"' in last and "max_answer_bytes" in last
    assert "response.completed" not in out.decode()
    assert t.failed is not None and t.failed.status == 502


def test_within_the_budget_a_responses_client_gets_everything() -> None:
    c = ctx(10_000)
    t = StreamTranslator(C.StreamParser(c), R.StreamEmitter(c))
    out = b"".join(t.feed(chat_stream(["x" * 100] * 30)) + t.close()).decode()
    assert '"type":"response.completed"' in out and out.count("x" * 100) >= 30


@pytest.mark.parametrize("emitter", [A.StreamEmitter, C.StreamEmitter])
def test_text_streamed_to_anthropic_and_chat_clients_is_not_kept(emitter: type) -> None:
    c = ctx(1000)  # far less than the text below: nothing of it is kept, so nothing fails
    t = StreamTranslator(C.StreamParser(c), emitter(c))
    out = b"".join(t.feed(chat_stream(["y" * 100] * 30)) + t.close()).decode()
    assert t.failed is None and out.count("y" * 100) == 30


def test_reasoning_a_chat_client_gets_whole_at_its_end_is_kept_within_the_budget() -> None:
    c = ctx(1000)
    emitter = C.StreamEmitter(c)
    emitter.feed(MessageStart(id="i", model="m"))
    emitter.feed(BlockStart(block_id=0, kind=BlockKind.REASONING))
    emitter.feed(BlockDelta(block_id=0, text="r" * 600))
    with pytest.raises(AnswerTooLarge, match="max_answer_bytes"):  # the translator makes it the error event
        emitter.feed(BlockDelta(block_id=0, text="r" * 600))


def test_an_unexpected_freeform_call_is_kept_within_the_budget() -> None:
    unwrap = InputUnwrapper(Budget(50))
    unwrap.feed("not the {\"input\": …} shape")
    with pytest.raises(AnswerTooLarge, match="max_answer_bytes"):
        unwrap.feed("z" * 100)
    streaming = InputUnwrapper(Budget(50))  # the expected shape streams through: nothing kept
    assert streaming.feed('{"input": "') == ""
    assert streaming.feed("w" * 1000) == "w" * 1000


def test_warnings_an_upstream_causes_are_capped() -> None:
    c = ctx(100)
    for i in range(1000):
        warn(c, f"upstream content block 'kind-{i}' has no equivalent and was dropped")
        warn(c, "the same one")
    assert len(c.warnings) == 32 and c.warnings.count("the same one") == 1


def test_parsers_remember_a_bounded_number_of_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R.answer, "_MAX_ITEMS", 3)
    parser = R.StreamParser(ctx(10**6))
    sse = SSEDecoder().feed(b'data: {"type":"response.created","response":{"id":"resp_1"}}\n\n')
    parser.feed(sse[0])
    with pytest.raises(UpstreamProtocolError, match="more than 3 output items"):
        for i in range(5):
            for kind in ("added", "done"):
                (ev,) = SSEDecoder().feed(f'data: {{"type":"response.output_item.{kind}","output_index":{i},'
                                          f'"item":{{"type":"web_search_call","id":"ws_{i}"}}}}\n\n'.encode())
                parser.feed(ev)


def test_the_private_mitmproxy_names_the_body_limits_need_are_still_there() -> None:
    """addon/bodylimit.py wraps HttpStream.check_body_size and replays what mitmproxy does on a refusal."""
    from mitmproxy.proxy.layers.http import HttpStream
    from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError, ResponseProtocolError
    from mitmproxy.proxy.layers.http._hooks import HttpErrorHook

    check = HttpStream.check_body_size
    assert (inspect.isgeneratorfunction(check) and getattr(check, "_bridge_patched", False)) or \
        "self.request_body_buf" in inspect.getsource(check)
    source = inspect.getsource(HttpStream)
    for name in ("self.check_body_size(True)", "self.check_body_size(False)", "request_body_buf",
                 "response_body_buf", "state_errored", "state_consume_request_body"):
        assert name in source, name
    assert ErrorCode.REQUEST_TOO_LARGE and ErrorCode.RESPONSE_TOO_LARGE and HttpErrorHook
    assert {"code", "message"} <= set(ResponseProtocolError.__dataclass_fields__) & set(
        RequestProtocolError.__dataclass_fields__)


def test_the_private_mitmproxy_names_the_head_cap_needs_are_still_there() -> None:
    from mitmproxy.proxy.layers.http import _http1

    for cls in (_http1.Http1Server, _http1.Http1Client):
        assert inspect.isgeneratorfunction(cls.read_headers)
        assert hasattr(cls, "done") and "self.state == self.read_headers" not in inspect.getsource(cls)
    assert "self.buf = ReceiveBuffer()" in inspect.getsource(_http1.Http1Connection.__init__)
    assert callable(_http1.make_error_response)
    assert _http1.make_error_response(431, "x").startswith(b"HTTP/1.1 431")


def test_the_private_mitmproxy_names_the_websocket_bounds_need_are_still_there() -> None:
    """addon/wsbounds.py wraps WebsocketLayer.relay_messages and closes the way the layer closes."""
    from mitmproxy.proxy.layers.websocket import WebsocketConnection, WebsocketLayer

    source = inspect.getsource(WebsocketLayer)
    for name in ("def relay_messages", "self._handle_event = self.relay_messages", "def done", "frame_buf",
                 "self.client_ws", "self.server_ws", "WebsocketEndHook(self.flow)"):
        assert name in source, name
    assert "def send2" in inspect.getsource(WebsocketConnection)
    assert "self.frame_buf = [b\"\"]" in inspect.getsource(WebsocketConnection.__init__)


def test_a_websocket_flow_keeps_its_messages_within_the_answer_budget() -> None:
    """What mitmweb shows and -w records of a connection stops at max_answer_bytes; with nothing kept, only
    the newest message stays on the flow (the one the hooks read)."""
    from mitmproxy import websocket
    from mitmproxy.test import tflow

    from addon.wsbounds import WebSocketBounds

    def run(recording: bool) -> list[bytes]:
        flow = tflow.twebsocketflow()
        flow.websocket.messages.clear()
        bounds = WebSocketBounds(lambda: recording, lambda: 25)
        bounds.serve(flow, 1000)
        for text in (b"0123456789", b"abcdefghij", b"KLMNOPQRST", b"uv"):
            flow.websocket.messages.append(websocket.WebSocketMessage(1, True, text))
            bounds.websocket_message(flow)
        bounds.websocket_end(flow)
        return [m.content for m in flow.websocket.messages]

    assert run(recording=True) == [b"0123456789", b"abcdefghij"]  # the third would pass 25 bytes: no more
    assert run(recording=False) == [b"uv"]


def test_an_upgrade_that_never_becomes_a_websocket_leaves_nothing_registered() -> None:
    """A refused upgrade (no 101) or a failed one ends its registration: no peer can grow the tables."""
    from mitmproxy import http as mhttp
    from mitmproxy.test import tflow

    from addon import wsbounds

    bounds = wsbounds.WebSocketBounds(lambda: True, lambda: 100)
    refused, failed, upgraded = tflow.tflow(resp=True), tflow.tflow(err=True), tflow.twebsocketflow()
    for flow in (refused, failed, upgraded):
        bounds.serve(flow, 1000)
    refused.response = mhttp.Response.make(404)
    bounds.response(refused)
    bounds.error(failed)
    bounds.response(upgraded)  # its 101: still a live connection
    assert set(wsbounds._LIMITS) >= {upgraded.id} and not {refused.id, failed.id} & set(wsbounds._LIMITS)
    bounds.websocket_end(upgraded)
    assert upgraded.id not in wsbounds._LIMITS
