"""``addon/wssession.py``: what each message of a Responses WebSocket connection becomes, sans I/O."""

from __future__ import annotations

import itertools
import json

from addon.wssession import Forward, Local, Session


def session(limit: int = 1_000_000) -> Session:
    counter = itertools.count()
    return Session(limit=limit, new_id=lambda p: f"{p}{next(counter)}", now=lambda: 1_700_000_000)


def msg(**fields: object) -> str:
    return json.dumps({"type": "response.create", "model": "m", **fields})


def item(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_a_warm_up_is_an_empty_completed_response() -> None:
    turn = session().turn(msg(input=[], generate=False))
    assert isinstance(turn, Local)
    events = [json.loads(f) for f in turn.frames]
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert [e["sequence_number"] for e in events] == [0, 1, 2]
    done = events[-1]["response"]
    assert (done["id"], done["status"], done["output"], done["model"]) == ("resp_0", "completed", [], "m")


def test_turns_build_on_the_last_response_only() -> None:
    s = session()
    s.turn(msg(input=[item("system-ish")], generate=False))  # the warm-up's input is context too
    turn = s.turn(msg(previous_response_id="resp_0", input=[item("one")], tools=[{"type": "function"}]))
    assert isinstance(turn, Forward)
    assert turn.body["input"] == [item("system-ish"), item("one")]
    assert "previous_response_id" not in turn.body and "type" not in turn.body and turn.body["stream"] is True
    assert turn.body["tools"] == [{"type": "function"}]
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    s.finished({"id": "resp_up1", "output": [call]})
    result = {"type": "function_call_output", "call_id": "c1"}
    turn = s.turn(msg(previous_response_id="resp_up1", input=[result]))
    assert isinstance(turn, Forward)
    assert turn.body["input"] == [item("system-ish"), item("one"), call, result]
    stale = s.turn(msg(previous_response_id="resp_0", input=[]))  # not the last one any more
    assert isinstance(stale, Local) and json.loads(stale.frames[0])["error"]["code"] == "previous_response_not_found"


def test_a_failed_turn_is_no_base_and_a_full_resend_starts_over() -> None:
    s = session()
    s.turn(msg(input=[item("one")]))
    s.failed()
    turn = s.turn(msg(previous_response_id="resp_x", input=[]))
    assert isinstance(turn, Local)
    error = json.loads(turn.frames[0])
    assert (error["type"], error["status"], error["error"]["code"]) == ("error", 400, "previous_response_not_found")
    full = s.turn(msg(input="hello"))  # a string input is one user message
    assert isinstance(full, Forward) and full.body["input"] == [item("hello")]


def test_what_the_session_keeps_is_bounded() -> None:
    s = session(limit=200)
    s.turn(msg(input=[item("x" * 300)]))
    s.finished({"id": "resp_big", "output": []})
    turn = s.turn(msg(previous_response_id="resp_big", input=[]))
    assert isinstance(turn, Local) and "previous_response_not_found" in turn.frames[0]


def test_client_metadata_header_keys_become_headers() -> None:
    turn = session().turn(msg(input=[], client_metadata={
        "ws_request_header_x_openai_internal_codex_responses_lite": "true", "session_id": "s1"}))
    assert isinstance(turn, Forward)
    assert turn.headers == {"x-openai-internal-codex-responses-lite": "true"}
    assert turn.body["client_metadata"]["session_id"] == "s1"  # the rest goes on in the body, as over HTTP


def test_what_is_not_a_response_create_gets_an_error_frame() -> None:
    for text, code in [("{", "invalid_request_error"), ('{"type": "response.interrupt"}', "unsupported_message"),
                       ("[1]", "unsupported_message"), (msg(input=5), "invalid_request_error")]:
        turn = session().turn(text)
        assert isinstance(turn, Local), text
        error = json.loads(turn.frames[0])
        assert (error["type"], error["status"], error["error"]["code"]) == ("error", 400, code), text
