"""Upstream failures reach the client in its format, not as mitmproxy's HTML page or a bare cut.

The bridge patches one private mitmproxy function (addon/errorpage.py). The first test pins the names
it relies on; the others run a real mitmdump against a port where nothing listens, or a stream that
breaks off, over HTTP/1 and HTTP/2, so a mitmproxy upgrade that changes either fails here, loudly.
"""

from __future__ import annotations

import inspect
import ssl

import anthropic
import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY_ENV, free_ports
from tests.stream_grammar import check_anthropic_stream


def test_the_private_mitmproxy_names_the_patch_needs_are_still_there() -> None:
    from mitmproxy.proxy.layers.http import HttpStream, SendHttp
    from mitmproxy.proxy.layers.http._events import (
        ErrorCode,
        ResponseData,
        ResponseEndOfMessage,
        ResponseHeaders,
        ResponseProtocolError,
    )

    assert inspect.isgeneratorfunction(HttpStream.handle_protocol_error)
    assert getattr(HttpStream.handle_protocol_error, "_bridge_patched", False) or \
        "SendHttp(event, self.context.client)" in inspect.getsource(HttpStream.handle_protocol_error)
    assert callable(HttpStream.state_stream_response_body)
    assert {"event", "connection"} <= set(SendHttp.__dataclass_fields__)
    assert {"code", "message"} <= {f.name for f in ResponseProtocolError.__dataclass_fields__.values()}
    assert {"response", "end_stream"} <= set(ResponseHeaders.__dataclass_fields__)
    assert "data" in ResponseData.__dataclass_fields__ and ResponseEndOfMessage.__dataclass_fields__
    assert ErrorCode.CONNECT_FAILED.http_status_code() == 502


@pytest.fixture
def unreachable(bridge_config):
    dead = free_ports(1)[0]
    return bridge_config({"endpoints": [{"name": "down", "url_openai": f"http://127.0.0.1:{dead}/v1",
                                         "api_key_env": UPSTREAM_KEY_ENV}]})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_client_gets_anthropic_error_json(unreachable, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=unreachable.url, api_key="k", max_retries=0)
    kwargs = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.APIStatusError) as e:
        if stream:
            with client.messages.stream(**kwargs) as s:  # type: ignore[arg-type]
                s.get_final_message()
        else:
            client.messages.create(**kwargs)  # type: ignore[arg-type]
    assert e.value.status_code == 502
    assert e.value.response.headers["content-type"] == "application/json"
    body = e.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert body["error"]["message"].startswith("the upstream could not be reached")


def test_openai_client_gets_openai_error_json(unreachable) -> None:
    client = openai.OpenAI(base_url=unreachable.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        client.responses.create(model="m", input="hi")
    assert e.value.status_code == 502
    err = e.value.response.json()["error"]
    assert err["type"] == "server_error" and "could not be reached" in err["message"]


class _H2First(ssl.SSLContext):
    """httpx offers ALPN ``http/1.1, h2`` and mitmproxy honours the client's order: offer h2 first."""

    def set_alpn_protocols(self, protocols: object) -> None:
        super().set_alpn_protocols(["h2", "http/1.1"])


def _h2_tls() -> ssl.SSLContext:
    context = _H2First(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # mitmproxy's made-up certificate
    return context


def test_an_http2_client_gets_the_error_json_too(unreachable) -> None:
    # HTTP/2 needs TLS to mitmproxy (no h2c); mitmproxy makes a certificate from its own CA.
    https = unreachable.url.replace("http://", "https://")
    with httpx.Client(http2=True, verify=_h2_tls()) as client:
        r = client.post(f"{https}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"anthropic-version": "2023-06-01"})
    assert r.http_version == "HTTP/2"
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["message"].startswith("the upstream could not be reached")


def test_an_http2_stream_that_breaks_off_ends_with_the_error_event(bridge, mock) -> None:
    proc = bridge("chat")
    mock.next_reply(text="Hello there, a long answer", piece=4, cut_after=4)
    https = proc.url.replace("http://", "https://")
    with httpx.Client(http2=True, verify=_h2_tls()) as client:
        r = client.post(f"{https}/v1/messages", json={"model": "m", "max_tokens": 5, "stream": True, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"anthropic-version": "2023-06-01"})
    assert r.http_version == "HTTP/2" and r.status_code == 200
    events = check_anthropic_stream(r.content)  # the body ended cleanly, after the error event
    assert events[-1][0] == "error"
    assert b"broke off" in r.content and b"message_stop" not in r.content


@pytest.mark.parametrize(("message", "lasting"), [
    ("[Errno 111] Connect call failed ('127.0.0.1', 9)", True),
    ("ConnectError: [Errno 111] Connection refused", True),
    ("[Errno -2] Name or service not known", True),
    ("TLS handshake failed: certificate verify failed", True),
    ("no connection within 2 s", False),
    ("ConnectTimeout: timed out", False),
    ("HTTP 503", False),
])
def test_which_connect_failures_are_lasting(message: str, lasting: bool) -> None:
    from addon.errorpage import lasting as is_lasting
    assert is_lasting(message) is lasting


@pytest.mark.parametrize("client", ["anthropic", "chat", "responses"])
def test_an_sdk_gives_up_at_once_on_an_upstream_that_is_down(unreachable, client: str) -> None:
    """Issue 14, item 5: 502 plus x-should-retry: false; each SDK would otherwise retry a 502 (here: 3 times)."""
    start = len(unreachable.log())
    if client == "anthropic":
        sdk = anthropic.Anthropic(base_url=unreachable.url, api_key="k", max_retries=3)
        with pytest.raises(anthropic.APIStatusError) as e:
            sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    else:
        oai = openai.OpenAI(base_url=unreachable.url + "/v1", api_key="k", max_retries=3)
        with pytest.raises(openai.APIStatusError) as e:  # type: ignore[assignment]
            if client == "chat":
                oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            else:
                oai.responses.create(model="m", input="hi")
    assert e.value.status_code == 502 and e.value.response.headers["x-should-retry"] == "false"
    assert unreachable.wait_for_log("status 502", start).count("status 502") == 1
