"""Pass-through streams are live too: byte for byte, but never buffered until the end."""

from __future__ import annotations

import time

import anthropic
import openai

from tests.mock_upstream import Reply


def test_passthrough_stream_is_live(bridge, mock) -> None:
    proc = bridge("anthropic")
    reply = mock.next_reply(Reply(text="first second", piece=6, hold_after=4))  # start, block, "first ", hold
    client = anthropic.Anthropic(base_url=proc.url, api_key="k", max_retries=0)
    started = time.monotonic()
    texts: list[str] = []
    with client.messages.stream(model="m", max_tokens=9, messages=[{"role": "user", "content": "hi"}]) as s:
        for text in s.text_stream:
            texts.append(text)
            if "".join(texts) == "first ":
                assert not reply.release.is_set() and time.monotonic() - started < 5, "waited for the end"
                reply.release.set()
    assert "".join(texts) == "first second"


def test_passthrough_client_disconnect_closes_the_upstream(bridge, mock) -> None:
    proc = bridge("chat")
    reply = mock.next_reply(Reply(text="x" * 600, piece=2, hold_after=4))
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="k", max_retries=0, timeout=20)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    time.sleep(0.3)
    reply.release.set()
    assert reply.aborted.wait(5), "the upstream kept streaming to a client that had gone"
