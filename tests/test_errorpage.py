"""An unreachable upstream is answered in the client's format, not with mitmproxy's HTML page.

The bridge patches one private mitmproxy function (addon/errorpage.py). The first test pins the names
it relies on; the others run a real mitmdump against a port where nothing listens, so a mitmproxy
upgrade that changes either fails here, loudly.
"""

from __future__ import annotations

import inspect

import anthropic
import openai
import pytest

from tests.conftest import UPSTREAM_KEY_ENV, free_ports


def test_the_private_mitmproxy_names_the_patch_needs_are_still_there() -> None:
    from mitmproxy.connection import ConnectionState
    from mitmproxy.net.http import http1
    from mitmproxy.proxy.layers.http import _http1
    from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError

    assert inspect.isgeneratorfunction(_http1.Http1Server.send)
    assert {"code", "message"} <= {f.name for f in ResponseProtocolError.__dataclass_fields__.values()}
    assert ErrorCode.CONNECT_FAILED.http_status_code() == 502
    assert ConnectionState.CAN_WRITE and callable(http1.assemble_response)
    server = _http1.Http1Server.__init__  # the patched method reads these attributes of the server
    assert "request" in inspect.getsource(_http1.Http1Connection) and server


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
