"""Failover through a real mitmdump: the next endpoint is tried before any byte reaches the client.

Three mock upstreams stand for three providers. A refused connection, a timeout before the first
byte, a 429 (its Retry-After honoured) or a 5xx moves on; a stream that has begun never switches; when
every endpoint fails the client gets one error in its own format naming them all.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest

from tests.conftest import UPSTREAM_KEY_ENV, free_ports
from tests.mock_upstream import MockUpstream, Reply


@pytest.fixture(scope="module")
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers: a timeout before the first byte."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def endpoint(name: str, mock: MockUpstream | None = None, *, port: int | None = None, fmt: str = "anthropic",
             **extra: object) -> dict[str, object]:
    base = mock.url if mock else f"http://127.0.0.1:{port}"
    url = {"url_anthropic": base} if fmt == "anthropic" else {"url_openai": f"{base}/v1"}
    return {"name": name, **url, "api_key_env": UPSTREAM_KEY_ENV, **extra}


def ask_anthropic(url: str, stream: bool) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0, timeout=20)
    kwargs = {"model": "claude-fo", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        with client.messages.stream(**kwargs) as s:  # type: ignore[arg-type]
            return s.get_final_message()
    return client.messages.create(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_refused_connection_fails_over(bridge_config, mocks, stream: bool) -> None:
    a, b, _ = mocks
    dead = free_ports(1)[0]
    proc = bridge_config({"endpoints": [endpoint("dead", port=dead), endpoint("b", b, fmt="chat")]})
    b.next_reply(Reply(text="from b"))
    msg = ask_anthropic(proc.url, stream)
    assert msg.content[0].text == "from b" and msg.model == "claude-fo"
    assert [r.path for r in b.requests] == ["/v1/chat/completions"]  # translated for b's format
    assert not a.requests


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_error_fails_over(bridge_config, mocks, status: int) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a), endpoint("b", b)]})
    a.next_reply(Reply(status=status, error_message="a is down"))
    b.next_reply(Reply(text="from b"))
    assert ask_anthropic(proc.url, True).content[0].text == "from b"
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert a.requests[0].body == b.requests[0].body  # the same pass-through bytes to both
    assert "attempt 1/2: endpoint a answered" in proc.log()


def test_rate_limit_fails_over_and_the_endpoint_rests_for_retry_after(bridge_config, mocks) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a), endpoint("b", b)]}, fresh_process=True)
    a.next_reply(Reply(status=429, error_message="slow down", headers={"retry-after": "30"}))
    b.next_reply(Reply(text="first"))
    b.next_reply(Reply(text="second"))
    assert ask_anthropic(proc.url, False).content[0].text == "first"
    # a asked for 30 s of rest: the next request goes to b first, and a is not bothered
    assert ask_anthropic(proc.url, False).content[0].text == "second"
    assert len(a.requests) == 1 and len(b.requests) == 2


def test_timeout_before_the_first_byte_fails_over(bridge_config, mocks, silent: int) -> None:
    _, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("slow", port=silent, first_byte_timeout=1),
                                        endpoint("b", b)]})
    b.next_reply(Reply(text="from b"))
    assert ask_anthropic(proc.url, True).content[0].text == "from b"
    assert "endpoint slow timed out" in proc.log()


def test_no_switch_after_the_first_byte(bridge_config, mocks) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a), endpoint("b", b)]})
    a.next_reply(Reply(text="a long answer that breaks", cut_after=3))
    # A live stream that breaks breaks the client's connection: the SDK's transport raises.
    with pytest.raises((anthropic.APIError, httpx2.RemoteProtocolError)):
        ask_anthropic(proc.url, True)
    assert len(a.requests) == 1 and not b.requests  # the stream had begun: never switched


def test_last_endpoints_error_reaches_the_client_with_its_status(bridge_config, mocks) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a), endpoint("b", b)]})
    a.next_reply(Reply(status=500, error_message="a is down"))
    b.next_reply(Reply(status=429, error_message="b is busy", headers={"retry-after": "7"}))
    with pytest.raises(anthropic.RateLimitError) as e:
        ask_anthropic(proc.url, False)
    assert "b is busy" in str(e.value) and e.value.response.headers.get("retry-after") == "7"


def test_every_endpoint_unreachable_is_one_error_in_the_clients_format(bridge_config, silent: int) -> None:
    dead = free_ports(1)[0]
    proc = bridge_config({"endpoints": [endpoint("dead", port=dead, fmt="chat"),
                                        endpoint("slow", port=silent, first_byte_timeout=1)]})
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="client-key", max_retries=0, timeout=20)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 502
    message = e.value.body["message"]  # type: ignore[index]
    assert "every endpoint failed" in message and "dead:" in message and "slow: no response within 1 s" in message


def test_max_attempts_bounds_the_tries(bridge_config, mocks) -> None:
    a, b, c = mocks
    proc = bridge_config({"max_attempts": 2, "endpoints": [endpoint("a", a), endpoint("b", b), endpoint("c", c)]})
    a.next_reply(Reply(status=500))
    b.next_reply(Reply(status=500, error_message="b too"))
    with pytest.raises(anthropic.InternalServerError):
        ask_anthropic(proc.url, False)
    assert len(a.requests) == 1 and len(b.requests) == 1 and not c.requests


@pytest.mark.parametrize("client_format", ["anthropic", "chat"])
def test_a_stalled_stream_ends_with_an_error_event_not_a_hang(bridge_config, mocks, client_format: str) -> None:
    a, _, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a, idle_timeout=1)]})
    reply = a.next_reply(Reply(text="this answer stalls half way", hold_after=3))
    started = time.monotonic()
    try:
        if client_format == "anthropic":
            with pytest.raises(anthropic.APIStatusError) as e:
                ask_anthropic(proc.url, True)
        else:
            client = openai.OpenAI(base_url=proc.url + "/v1", api_key="client-key", max_retries=0, timeout=20)
            with pytest.raises(openai.APIError) as e:  # type: ignore[assignment]
                with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as s:
                    s.get_final_completion()
    finally:
        reply.release.set()
    assert "stalled" in str(e.value)
    assert time.monotonic() - started < 8  # the idle timeout, not the mock's 10 s hold
    assert "stream stalled for 1 s" in proc.log()


def test_client_disconnect_through_the_relay_closes_the_upstream(bridge_config, mocks) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a, fmt="chat"), endpoint("b", b)]})  # two: relayed
    reply = a.next_reply(Reply(text="x" * 600, piece=2, hold_after=4))
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="client-key", max_retries=0, timeout=20)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    time.sleep(0.3)  # mitmproxy sees the client go, closes the relay's connection, the relay the upstream's
    reply.release.set()
    assert reply.aborted.wait(5), "the upstream kept streaming to a client that had gone"
    assert not b.requests


def test_a_resting_endpoint_goes_last_and_the_answer_is_read_in_the_right_format(bridge_config, mocks) -> None:
    a, b, _ = mocks
    proc = bridge_config({"endpoints": [endpoint("a", a, fmt="chat"), endpoint("b", b)]}, fresh_process=True)
    a.next_reply(Reply(status=429, error_message="slow down", headers={"retry-after": "30"}))
    b.next_reply(Reply(text="first from b"))
    b.next_reply(Reply(text="second from b"))
    for stream, text in ((True, "first from b"), (True, "second from b")):
        assert ask_anthropic(proc.url, stream).content[0].text == text
    # the second request tried b (Anthropic, pass-through) first and read its answer as Anthropic's
    assert len(a.requests) == 1 and len(b.requests) == 2
