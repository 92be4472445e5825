"""Responses over WebSocket (issue 16) through a real mitmdump, driven the way Codex drives it
(``tests/ws_client.py``; the real Codex CLI runs in ``test_codex_cli.py``).

What is checked: the warm-up answered by the bridge; each turn routed and translated like an HTTP request,
its events arriving one text frame each, as the upstream sends them; a turn that carries only what is new
(``previous_response_id``) reaching the stateless upstream as the whole history; the errors in the shape
Codex reads (an unknown id, an upstream's HTTP error, a stream that breaks); the access rule on the
upgrade and on every turn; the bounds on a message; pings; and the 426 where a mode cannot serve it.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any

import httpx
import pytest
from mitmproxy import io as mitm_io
from wsproto.events import TextMessage

from tests import stream_grammar
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, UPSTREAM_KEY_ENV, ConfiguredBridge, free_ports
from tests.mock_upstream import MockUpstream, Reply, ToolCallSpec
from tests.ws_client import Rejected, WSClient

MODEL = "gpt-ws-model"
CREATE = {"type": "response.create", "model": MODEL, "stream": True, "store": False, "tool_choice": "auto",
          "parallel_tool_calls": False, "include": ["reasoning.encrypted_content"],
          "client_metadata": {"ws_request_header_x_openai_internal_codex_responses_lite": "true"}}
TOOLS = [{"type": "function", "name": "get_time", "description": "The time", "strict": False,
          "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def as_sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


@pytest.fixture(scope="module")
def proc(bridge_config: Any, mock_upstream: MockUpstream) -> ConfiguredBridge:
    return bridge_config({"max_request_bytes": 200_000, "endpoints": [
        {"name": "chat", "models": [MODEL], "url_openai": f"{mock_upstream.url}/v1", "api_key_env": UPSTREAM_KEY_ENV},
        {"name": "codex", "models": ["codex-*"], "url_codex": f"{mock_upstream.url}/backend-api/codex",
         "api_key_env": UPSTREAM_KEY_ENV,
         "model_rewrite": {"enabled": True, "rules": [{"source_pattern": "*", "target_model": "gpt-backend-model"}]}},
        {"name": "resp-ws", "models": ["resp-*"], "url_openai": f"{mock_upstream.url}/v1",
         "openai_preference": "responses", "websocket": True, "api_key_env": UPSTREAM_KEY_ENV}]})


def test_the_warm_up_is_answered_by_the_bridge(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    ws = WSClient(proc.port)
    ws.send({**CREATE, "input": [], "generate": False})
    events = ws.response()
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"] == [] and done["id"].startswith("resp_")
    stream_grammar.check_responses_stream(as_sse(events))
    assert mock.requests == []  # nothing left the bridge
    ws.close()


def test_turns_are_translated_and_stream_live(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    reply = mock.next_reply(Reply(text="first second third", piece=6, hold_after=3))
    ws = WSClient(proc.port)
    ws.send({**CREATE, "input": [user("hi")]})
    started, seen = time.monotonic(), []
    for frame in ws.frames():
        seen.append(json.loads(frame))
        if seen[-1]["type"] == "response.output_text.delta":
            break
    assert seen[-1]["delta"] == "first " and not reply.release.is_set() and time.monotonic() - started < 5
    reply.release.set()
    events = seen + ws.response()
    stream_grammar.check_responses_stream(as_sse(events))
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "first second third"
    (sent,) = mock.requests
    assert sent.path == "/v1/chat/completions" and sent.json["messages"] == [{"role": "user", "content": "hi"}]
    assert UPSTREAM_KEY in sent.all_header_values
    ws.close()


def test_a_later_turn_carries_only_what_is_new_and_the_upstream_gets_the_whole_history(
        proc: ConfiguredBridge, mock: MockUpstream) -> None:
    """Codex's incremental turns: ``previous_response_id`` (the warm-up's, then the last answer's) and only
    the new items; the Chat upstream, which keeps nothing, is sent everything."""
    mock.next_reply(Reply(text=None, tool_calls=[ToolCallSpec("call_t1", "get_time", {"tz": "UTC"})]))
    mock.next_reply(Reply(text="It is noon."))
    ws = WSClient(proc.port)
    developer = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]}
    ws.send({**CREATE, "tools": TOOLS, "generate": False, "input": [developer]})
    warm = ws.response()[-1]["response"]["id"]
    ws.send({**CREATE, "tools": TOOLS, "previous_response_id": warm, "input": [user("What time is it?")]})
    first = ws.response()[-1]["response"]
    (call,) = [item for item in first["output"] if item["type"] == "function_call"]
    ws.send({**CREATE, "tools": TOOLS, "previous_response_id": first["id"],
             "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "12:00"}]})
    second = ws.response()
    assert second[-1]["type"] == "response.completed"
    assert second[-1]["response"]["output"][-1]["content"][0]["text"] == "It is noon."
    one, two = mock.requests
    assert [m["role"] for m in one.json["messages"]] == ["system", "user"]
    assert [m["role"] for m in two.json["messages"]] == ["system", "user", "assistant", "tool"]
    assert two.json["messages"][2]["tool_calls"][0]["id"] == call["call_id"] == "call_t1"
    assert two.json["messages"][3] == {"role": "tool", "tool_call_id": "call_t1", "content": "12:00"}
    ws.close()


def test_an_id_the_bridge_does_not_hold_is_previous_response_not_found(proc: ConfiguredBridge,
                                                                       mock: MockUpstream) -> None:
    """What makes Codex open a new connection and send everything (codex-websocket.md §1.4)."""
    ws = WSClient(proc.port)
    ws.send({**CREATE, "previous_response_id": "resp_elsewhere", "input": [user("hi")]})
    (error,) = ws.response()
    assert error["type"] == "error" and error["status"] == 400
    assert error["error"]["code"] == "previous_response_not_found"
    assert mock.requests == []
    mock.next_reply(Reply(text="still here"))
    ws.send({**CREATE, "input": [user("hi")]})  # the connection goes on
    assert ws.response()[-1]["type"] == "response.completed"
    ws.close()


@pytest.mark.parametrize(("status", "code"), [(500, "server_error"), (400, "invalid_request_error")])
def test_an_upstream_http_error_is_an_error_frame_with_its_status(proc: ConfiguredBridge, mock: MockUpstream,
                                                                  status: int, code: str) -> None:
    mock.next_reply(Reply(status=status, error_message="the upstream says no", headers={"retry-after": "3"}))
    ws = WSClient(proc.port)
    ws.send({**CREATE, "input": [user("hi")]})
    (error,) = ws.response()
    assert error["type"] == "error" and error["status"] == status  # 5xx: Codex reconnects; 4xx: the turn fails
    assert "the upstream says no" in error["error"]["message"]
    assert error["headers"].get("retry-after") == "3"
    ws.close()


def test_a_stream_that_breaks_ends_in_response_failed(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    mock.next_reply(Reply(text="abcdefgh", cut_after=3))
    ws = WSClient(proc.port)
    ws.send({**CREATE, "input": [user("hi")]})
    events = ws.response()
    assert events[-1]["type"] == "response.failed", events[-1]
    assert not any(e["type"] == "response.completed" for e in events)
    ws.send({**CREATE, "previous_response_id": events[0]["response"]["id"], "input": [user("again")]})
    assert ws.response()[-1]["error"]["code"] == "previous_response_not_found"  # a failed turn is no base
    ws.close()


def test_a_route_that_serves_websocket_gets_the_connection_relayed(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    """Issue 16, item 2: the Codex backend (``url_codex``) serves this transport itself. The connection is
    relayed as a WebSocket — the upstream keeps its state, so the warm-up, ``previous_response_id`` and
    the incremental input go as Codex sent them — with the endpoint's key and model rewrite applied."""
    own = "client-own-key-0123456789abcdef"
    ws = WSClient(proc.port, headers={"authorization": f"Bearer {own}", "originator": "codex_exec",
                                      "openai-beta": "responses_websockets=2026-02-06"})
    ws.send({**CREATE, "model": "codex-mini", "input": [], "generate": False})
    warm = ws.response()[-1]["response"]
    assert warm["id"].startswith("resp_ws") and warm["model"] == "codex-mini"  # the upstream's id, our name
    mock.next_reply(Reply(text=None, tool_calls=[ToolCallSpec("call_r1", "get_time", {"tz": "UTC"})]))
    ws.send({**CREATE, "model": "codex-mini", "previous_response_id": warm["id"], "input": [user("What time?")]})
    first = ws.response()[-1]["response"]
    assert first["model"] == "codex-mini" and first["output"][-1]["call_id"] == "call_r1"
    mock.next_reply(Reply(text="It is noon."))
    result = {"type": "function_call_output", "call_id": "call_r1", "output": "12:00"}
    ws.send({**CREATE, "model": "codex-mini", "previous_response_id": first["id"], "input": [result]})
    assert ws.response()[-1]["response"]["output"][-1]["content"][0]["text"] == "It is noon."
    ws.close()
    sent = mock.requests
    assert [r.method for r in sent] == ["WS", "WS", "WS"]  # one upstream connection: its state check passed
    messages = [r.json for r in sent]
    assert all(m["type"] == "response.create" and m["model"] == "gpt-backend-model" for m in messages)
    assert [m.get("previous_response_id") for m in messages] == [None, warm["id"], first["id"]]
    assert messages[2]["input"] == [result]  # only what is new: the upstream has the rest
    upgrade = sent[0].headers
    assert upgrade["authorization"] == f"Bearer {UPSTREAM_KEY}" and own not in sent[0].all_header_values
    assert upgrade["openai-beta"] == "responses_websockets=2026-02-06" and upgrade["originator"] == "codex_exec"
    assert "x-bridge-ws-ticket" not in upgrade and sent[0].path == "/backend-api/codex/responses"
    assert proc.wait_for_log("websocket relay").count("websocket relay | endpoint codex") >= 1


@pytest.mark.parametrize("serves", [True, False], ids=["relayed", "over-http"])
def test_a_responses_endpoint_relays_only_when_configured_and_served(proc: ConfiguredBridge, mock: MockUpstream,
                                                                    serves: bool) -> None:
    """``websocket: true`` on a Responses endpoint: relayed when its server takes the upgrade; when it does
    not (most Responses servers), every turn of the connection goes over HTTP, whole."""
    mock.websocket = serves
    mock.next_reply(Reply(text="hello"))
    mock.next_reply(Reply(text="again"))
    ws = WSClient(proc.port)
    ws.send({**CREATE, "model": "resp-ws-model", "input": [user("hi")]})
    first = ws.response()[-1]["response"]
    ws.send({**CREATE, "model": "resp-ws-model", "previous_response_id": first["id"], "input": [user("more")]})
    assert ws.response()[-1]["type"] == "response.completed"
    ws.close()
    sent = mock.requests
    assert [r.method for r in sent] == (["WS", "WS"] if serves else ["POST", "POST"])
    if not serves:  # the bridge sent the whole history instead
        assert [i["content"][0]["text"] for i in sent[1].json["input"] if i.get("role") == "user"] == ["hi", "more"]
        assert "no WebSocket" in proc.log()


def test_messages_are_bounded_and_text(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    ws = WSClient(proc.port)
    ws.send({**CREATE, "input": [user("x" * 300_000)]})  # over max_request_bytes (200 000)
    assert list(ws.frames()) == [] and ws.closed is not None and ws.closed.code == 1009
    ws = WSClient(proc.port)
    ws.send_bytes(b"\x00\x01")
    assert list(ws.frames()) == [] and ws.closed is not None and ws.closed.code == 1003
    assert mock.requests == []


def test_a_ping_gets_its_pong_and_bad_messages_an_error(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    ws = WSClient(proc.port)
    ws.ping(b"are you there")
    ws.send("not json")
    (error,) = ws.response()
    assert error["status"] == 400 and ws.pongs == [b"are you there"]
    ws.send({"type": "response.interrupt", "response_id": "resp_1"})
    assert ws.response()[0]["error"]["code"] == "unsupported_message"
    ws.close()


# --- the access rule -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(bridge_config: Any, mock_upstream: MockUpstream) -> ConfiguredBridge:
    return bridge_config({"client_keys_env": ["WS_CLIENT_KEY"], "endpoints": [
        {"name": "chat", "url_openai": f"{mock_upstream.url}/v1", "api_key_env": UPSTREAM_KEY_ENV}]},
        env={"WS_CLIENT_KEY": CLIENT_KEY})


def test_the_upgrade_needs_a_client_key_and_the_key_goes_nowhere(keyed: ConfiguredBridge, mock: MockUpstream) -> None:
    with pytest.raises(Rejected) as refused:
        WSClient(keyed.port)
    assert refused.value.status == 401
    mock.next_reply(Reply(text="keyed"))
    ws = WSClient(keyed.port, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    ws.send({**CREATE, "input": [user("hi")]})
    assert ws.response()[-1]["type"] == "response.completed"
    (sent,) = mock.requests
    assert CLIENT_KEY not in sent.all_header_values and UPSTREAM_KEY in sent.all_header_values
    assert "x-bridge-ws-ticket" not in sent.headers
    ws.close()
    # the turn is the client's whose key let the upgrade in (the older list: named after its variable)
    keyed.wait_for_log("a websocket turn of")
    turn = next(line for line in keyed.log().splitlines() if "a websocket turn of" in line)
    assert "| client WS_CLIENT_KEY |" in turn and CLIENT_KEY not in keyed.log()


def test_a_made_up_ticket_admits_nothing(keyed: ConfiguredBridge, mock: MockUpstream) -> None:
    r = httpx.post(f"{keyed.url}/v1/responses", json={"model": MODEL, "input": "hi"},
                   headers={"x-bridge-ws-ticket": "guessed-ticket"})
    assert r.status_code == 401 and mock.requests == []


# --- where WebSocket cannot be served ------------------------------------------------------------


def test_a_mode_the_bridge_cannot_turn_around_gets_426(bridge_config: Any, mock_upstream: MockUpstream) -> None:
    """SOCKS5 (like transparent and WireGuard modes) has no address the turns could come back to: the
    upgrade gets 426, on which Codex uses HTTP at once (codex-websocket.md §1.6)."""
    (port,) = free_ports(1)
    proc = bridge_config({"endpoints": [{"name": "chat", "url_openai": f"{mock_upstream.url}/v1"}]},
                         modes=[f"socks5@{port}"], fresh_process=True)
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
    sock.sendall(b"\x05\x01\x00")
    assert sock.recv(2) == b"\x05\x00"
    target = mock_upstream.port
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    assert sock.recv(10)[:2] == b"\x05\x00"
    with pytest.raises(Rejected) as refused:
        WSClient(target, sock=sock)
    assert refused.value.status == 426
    assert b"not WebSocket" in refused.value.body


def test_concurrent_connections_keep_their_own_turns(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    replies = [mock.next_reply(Reply(text=f"answer {c} " * 3, piece=4, hold_after=2)) for c in "AB"]
    results: dict[int, str] = {}

    def run(i: int) -> None:
        ws = WSClient(proc.port)
        ws.send({**CREATE, "input": [user(f"q{i}")]})
        events = ws.response()
        results[i] = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        ws.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert len(mock.wait_for_requests(2)) == 2
    for reply in replies:
        reply.release.set()
    for t in threads:
        t.join(20)
    assert sorted(results.values()) == sorted(r.text for r in replies)


def test_a_recorded_session_keeps_the_connection_and_its_turns_without_a_key(
        bridge_config: Any, mock_upstream: MockUpstream, tmp_path: Any) -> None:
    """``-w``: the connection as the client asked for it, every message each way, and each turn as an HTTP flow
    (translated both ways, naming its connection); no key anywhere."""
    secret = "client-own-key-0123456789abcdef"
    path = tmp_path / "ws.flow"
    proc = bridge_config({"endpoints": [{"name": "chat", "url_openai": f"{mock_upstream.url}/v1",
                                         "api_key_env": UPSTREAM_KEY_ENV}]}, fresh_process=True, args=["-w", str(path)])
    mock_upstream.reset()
    mock_upstream.next_reply(Reply(text="one"))
    mock_upstream.next_reply(Reply(text="two"))
    ws = WSClient(proc.port, headers={"authorization": f"Bearer {secret}"})
    ws.send({**CREATE, "input": [], "generate": False})
    warm = ws.response()[-1]["response"]["id"]
    ws.send({**CREATE, "previous_response_id": warm, "input": [user("hi")]})
    first = ws.response()[-1]["response"]["id"]
    ws.send({**CREATE, "previous_response_id": first, "input": [user("again")]})
    assert ws.response()[-1]["type"] == "response.completed"
    ws.close()
    proc.wait_for_log("connection closed")
    proc.stop()
    raw = path.read_bytes()
    assert secret.encode() not in raw and UPSTREAM_KEY.encode() not in raw
    with open(path, "rb") as f:
        flows = list(mitm_io.FlowReader(f).stream())
    (conn,) = [f for f in flows if f.websocket is not None]
    turns = [f for f in flows if f.websocket is None]
    assert conn.request.path == "/v1/responses" and conn.response.status_code == 101
    sent = [json.loads(m.content) for m in conn.websocket.messages if m.from_client]
    assert [m.get("previous_response_id") for m in sent] == [None, warm, first]
    got = [json.loads(m.content)["type"] for m in conn.websocket.messages if not m.from_client]
    assert got.count("response.completed") == 3
    assert len(turns) == 2 and all(t.metadata["bridge"]["connection"] == conn.id[:8] for t in turns)
    assert all(t.metadata["bridge"]["transport"] == "websocket" and t.metadata["bridge"]["mode"] == "conversion"
               for t in turns)
    history = json.loads(turns[1].request.content)["messages"]  # as sent upstream: the whole conversation
    assert [(m["role"], m["content"]) for m in history] == [("user", "hi"), ("assistant", "one"), ("user", "again")]


def test_a_message_is_cut_inside_mitmproxy_before_it_is_whole(proc: ConfiguredBridge, mock: MockUpstream) -> None:
    """mitmproxy joins a message's frames before any hook: one that never ends is cut while it arrives (1009),
    not held until it does."""
    ws = WSClient(proc.port)
    for _ in range(5):  # 5 × 60 000 characters of one unfinished message: past max_request_bytes (200 000)
        ws.sock.sendall(ws.ws.send(TextMessage(data="x" * 60_000, message_finished=False)))
    assert list(ws.frames()) == [] and ws.closed is not None and ws.closed.code == 1009
    assert "over 200000 bytes" in proc.wait_for_log("websocket closed by the bridge (1009)")
    assert mock.requests == []


def test_an_upstream_websocket_that_drops_mid_answer_is_an_error_frame(proc: ConfiguredBridge,
                                                                       mock: MockUpstream) -> None:
    """Relayed: what came goes to the client, then a 5xx error frame (Codex reconnects and resends), never a
    connection that waits forever; the next message opens a new upstream connection."""
    mock.next_reply(Reply(text="abcdefgh", cut_after=4))
    ws = WSClient(proc.port)
    ws.send({**CREATE, "model": "codex-mini", "input": [user("hi")]})
    events = ws.response()
    assert events[0]["type"] == "response.created" and len(events) == 5, events
    assert events[-1]["type"] == "error" and events[-1]["status"] == 502
    mock.next_reply(Reply(text="again"))
    ws.send({**CREATE, "model": "codex-mini", "input": [user("hi")]})
    assert ws.response()[-1]["type"] == "response.completed"
    ws.close()
    assert [r.method for r in mock.requests] == ["WS", "WS"]


def test_the_test_client_loses_no_frame_that_came_in_the_same_read() -> None:
    """Frames the server wrote together arrive in one read; a caller that stops after the first (as
    test_turns_are_translated_and_stream_live does) must still get the others (the flake it had)."""
    import socket
    import threading

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request, TextMessage

    mine, theirs = socket.socketpair()
    server = WSConnection(ConnectionType.SERVER)

    def serve() -> None:
        while not any(isinstance(e, Request) for e in (server.receive_data(theirs.recv(65536)), *server.events())):
            pass
        theirs.sendall(server.send(AcceptConnection()) + b"".join(server.send(TextMessage(data=f'{{"n": {n}}}'))
                                                                   for n in range(3)))
    thread = threading.Thread(target=serve)
    thread.start()
    ws = WSClient(0, sock=mine)
    thread.join()
    for frame in ws.frames():
        assert json.loads(frame) == {"n": 0}
        break
    rest = ws.frames()
    assert [json.loads(next(rest)) for _ in range(2)] == [{"n": 1}, {"n": 2}]
    mine.close()
    theirs.close()
