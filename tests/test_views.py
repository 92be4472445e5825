"""The mitmweb content views (addon/views.py) on flows built here as the bridge leaves them (schema of
``flow.metadata``: ``bridge``, ``bridge_client_request``, ``bridge_upstream_response``).

Views are run the way mitmweb runs them, through ``contentviews.prettify_message`` with view "auto" or
a name, so auto-selection and the registry are part of what is tested. Stream bodies come from the mock
upstream's renderers (the same bytes the e2e tests' upstream sends), expected values from the objects
those bodies were made of.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import contentviews, http, io
from mitmproxy.test import taddons, tflow

from addon import views
from tests.mock_upstream import Reply, anthropic_body, anthropic_events, chat_body, chat_events

SSE = "text/event-stream"
CLIENT_URL = "http://127.0.0.1:8080/v1/messages"
SUMMARY = {"client_format": "anthropic", "upstream_format": "chat", "operation": "generate",
           "mode": "conversion", "endpoint": "local", "model": "claude-x", "upstream_model": "gpt-y",
           "status": 200, "usage": {"input_tokens": 12, "output_tokens": 5}, "duration_ms": 42}
COMMENT = "anthropic → chat · local · claude-x · 200 · tokens 12/5"
CLIENT_BODY = {"model": "claude-x", "max_tokens": 64, "stream": True,
               "messages": [{"role": "user", "content": "Say hi."}]}
UPSTREAM_BODY = {"model": "gpt-y", "max_completion_tokens": 64, "stream": True,
                 "messages": [{"role": "user", "content": "Say hi."}]}
REPLY = Reply(text="Hi there!", model="gpt-y", piece=3)


@pytest.fixture(autouse=True)
def mitmproxy_context() -> Iterator[None]:
    """prettify_message reads ctx.options; the views are installed as the bridge's load hook does."""
    with taddons.context():
        views.install()
        yield


def render(message: http.Message, flow: http.HTTPFlow, view: str = "auto") -> contentviews.ContentviewResult:
    return contentviews.prettify_message(message, flow, view_name=view)


def sse_body(events: list[bytes]) -> bytes:
    return b"".join(events)


def bridge_flow(*, client_request: bool = True, upstream_response: bool = True,
                comment: str | None = COMMENT) -> http.HTTPFlow:
    """A streamed anthropic → chat exchange as the bridge records it."""
    flow = tflow.tflow(req=tflow.treq(method=b"POST", host="127.0.0.1", port=11434, path=b"/v1/chat/completions",
                                       content=json.dumps(UPSTREAM_BODY).encode()),
                       resp=tflow.tresp(content=sse_body(anthropic_events(REPLY))))
    flow.request.headers["content-type"] = "application/json"
    flow.request.headers["authorization"] = "[REDACTED]"
    flow.response.headers["content-type"] = SSE
    flow.metadata["bridge"] = dict(SUMMARY)
    if client_request:
        flow.metadata["bridge_client_request"] = {
            "method": "POST", "url": CLIENT_URL, "http_version": "HTTP/1.1",
            "headers": [["content-type", "application/json"], ["x-api-key", "[REDACTED]"],
                        ["anthropic-version", "2023-06-01"]],
            "content": json.dumps(CLIENT_BODY).encode()}
    if upstream_response:
        flow.metadata["bridge_upstream_response"] = {
            "status_code": 200, "reason": "OK", "headers": [["content-type", "text/event-stream; charset=utf-8"]],
            "content": sse_body(chat_events(REPLY, include_usage=True))}
    if comment is not None:
        flow.comment = comment
    return flow


def events_of(text: str) -> list[tuple[int, str | None, Any]]:
    """Parse the SSE view's text back: (number, event name, data as JSON or as text) per block."""
    out: list[tuple[int, str | None, Any]] = []
    heads = list(re.finditer(r"^\[(\d+)\](?: event: (.*))?$", text, re.M))
    for head, nxt in zip(heads, [*heads[1:], None][:len(heads)], strict=True):
        body = text[head.end():nxt.start() if nxt else len(text)].strip()
        out.append((int(head.group(1)), head.group(2), _json_or_text(body)))
    return out


def lines_of(text: str) -> list[tuple[int, str | None, Any]]:
    """Parse a stream in the translation view back: one ``[n] event: name  data`` line per event."""
    out: list[tuple[int, str | None, Any]] = []
    for line in text.strip().splitlines():
        m = re.fullmatch(r"\[(\d+)\](?: event: (\S*))?  (.*)", line)
        assert m, f"not an event line: {line!r}"
        out.append((int(m.group(1)), m.group(2), _json_or_text(m.group(3))))
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def body_of(part: str) -> str:
    """A part of the translation view, as it is (its headers have a part of their own, at the end)."""
    return part


def section(text: str, title_start: str) -> str:
    """The part of a translation view whose rule title starts with ``title_start``, up to the next rule."""
    m = re.search(rf"^──────── {re.escape(title_start)}.*?$\n(.*?)(?=^──────── |\Z)", text, re.M | re.S)
    assert m, f"no part {title_start!r} in:\n{text}"
    return m.group(1)


# --- the SSE view ------------------------------------------------------------------------------------


def test_sse_view_numbers_events_with_their_names_and_pretty_json() -> None:
    events = anthropic_events(REPLY)
    flow = tflow.tflow(resp=tflow.tresp(content=sse_body(events)))
    flow.response.headers["content-type"] = SSE + "; charset=utf-8"
    result = render(flow.response, flow)
    assert result.view_name == "SSE"  # auto-selected for an event stream the bridge did not handle
    expected = [(name, json.loads(data)) for name, data in
                (re.match(rb"event: (.*)\ndata: (.*)\n\n", e).groups() for e in events)]  # type: ignore[union-attr]
    parsed = events_of(result.text)
    assert [n for n, _, _ in parsed] == list(range(1, len(events) + 1))
    assert [(name, data) for _, name, data in parsed] == [(n.decode(), d) for n, d in expected]
    assert '\n  "type": "message_start",\n' in result.text  # pretty-printed, not one line per event


def test_sse_view_shows_non_json_data_and_nameless_events_as_is() -> None:
    body = sse_body(chat_events(REPLY, include_usage=False))
    parsed = events_of(views.render_sse(body))
    assert parsed[-1] == (len(parsed), None, "[DONE]")
    assert all(name is None for _, name, _ in parsed)
    assert parsed[0][2]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(d["choices"][0]["delta"].get("content") or "" for _, _, d in parsed[:-1]) == REPLY.text


@pytest.mark.parametrize(("body", "expected"), [
    # a stream cut mid-event: the complete events, then the partial one's data as is
    (b'event: a\ndata: {"x": 1}\n\nevent: b\ndata: {"y": [1, 2', [(1, "a", {"x": 1}), (2, "b", '{"y": [1, 2')]),
    # CRLF and lone-CR line ends, comments, id/retry fields
    (b': keep-alive\r\nid: 7\r\nevent: a\r\ndata: 1\r\n\r\nretry: 5\rdata: "two"\r\r',
     [(1, "a", 1), (2, None, "two")]),
    # multi-line data is joined with newlines (then is not JSON)
    (b"data: line one\ndata: line two\n\n", [(1, None, "line one\nline two")]),
    # invalid UTF-8 inside data: replaced, not refused (the bridge's decoder would refuse it)
    (b'data: {"t": "caf\xe9"}\n\n', [(1, None, {"t": "caf\ufffd"})]),
])
def test_sse_view_is_tolerant_of_partial_and_odd_input(body: bytes, expected: list[tuple[int, str | None, Any]]
                                                       ) -> None:
    assert events_of(views.render_sse(body)) == expected


def test_compact_form_puts_each_event_on_one_line() -> None:
    body = b'event: a\ndata: {"x": [1, 2]}\n\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n'
    assert views.render_sse(body, compact=True).splitlines() == [
        '[1] event: a  {"x": [1, 2]}', "[2]  line one\\nline two", "[3]  [DONE]"]


def test_compact_form_shows_what_an_event_carries_before_what_every_event_repeats() -> None:
    """Issue 14 item 12: a Chat chunk's ~100 characters of id/object/created/model pushed its delta past
    the page width, where mitmweb clips the line."""
    chunk = {"id": "chatcmpl-0123456789abcdef", "object": "chat.completion.chunk", "created": 1700000000,
             "model": "gpt-upstream-model", "system_fingerprint": "fp_1", "choices": [
                 {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}]}
    (line,) = views.render_sse(b"data: " + json.dumps(chunk).encode() + b"\n\n", compact=True).splitlines()
    assert line.startswith('[1]  {"choices": [{"delta": {"content": "Hello"}, "index": 0')
    assert json.loads(line.split("  ", 1)[1]) == chunk  # the same event, only reordered


def test_sse_view_shows_text_without_events_as_is() -> None:
    assert views.render_sse(b"") == "(empty body)"
    text = views.render_sse(b"<html>502 Bad Gateway</html>")
    assert text.startswith("(no SSE event in 28 bytes)") and text.endswith("<html>502 Bad Gateway</html>")


def test_sse_view_is_not_auto_selected_for_json() -> None:
    flow = tflow.tflow(resp=tflow.tresp(content=b'{"a": 1}'))
    flow.response.headers["content-type"] = "application/json"
    assert render(flow.response, flow).view_name == "JSON"
    assert events_of(render(flow.response, flow, "sse").text) == []  # chosen by hand it still renders


# --- the translation view ----------------------------------------------------------------------------


def test_translation_view_on_the_request_shows_client_request_then_upstream_request() -> None:
    flow = bridge_flow()
    result = render(flow.request, flow)
    assert result.view_name == "Translation"  # auto-selected for a bridge flow
    text = result.text
    assert text.splitlines()[0] == COMMENT
    assert "upstream_model=gpt-y" in text.splitlines()[2] and 'usage={"input_tokens": 12' in text
    client = section(text, f"client request (anthropic) · POST {CLIENT_URL}")
    upstream = section(text, "upstream request (chat) · POST http://127.0.0.1:11434/v1/chat/completions")
    assert text.index("client request (anthropic)") < text.index("upstream request (chat)")  # before, after
    headers = section(text, "client request headers (")
    assert "anthropic-version: 2023-06-01" in headers and "x-api-key: [REDACTED]" in headers
    assert json.loads(body_of(client)) == CLIENT_BODY
    # both bodies first, the recorded side's headers last (issue 14 item 12: 20 header lines hid the bodies)
    assert text.index("upstream request (chat)") < text.index("client request headers (")
    assert json.loads(upstream) == UPSTREAM_BODY
    assert '\n  "model": "claude-x",\n' in client  # pretty, 2-space JSON


def test_translation_view_on_the_response_shows_both_streams_as_events() -> None:
    flow = bridge_flow()
    result = render(flow.response, flow)
    assert result.view_name == "Translation"
    upstream = section(result.text, "upstream response (chat) · 200 OK")
    client = section(result.text, "client response (anthropic) · 200 OK · this message")
    assert result.text.index("upstream response") < result.text.index("client response")
    up_events = lines_of(body_of(upstream))  # the upstream's headers follow
    assert up_events[-1][2] == "[DONE]" and all(name is None for _, name, _ in up_events)
    assert "".join(d["choices"][0]["delta"].get("content") or "" for _, _, d in up_events[:-1]
                   if d["choices"]) == REPLY.text
    client_events = lines_of(client)
    names = [name for _, name, _ in client_events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert all(name == data["type"] for _, name, data in client_events)
    assert "".join(d["delta"]["text"] for _, n, d in client_events if n == "content_block_delta") == REPLY.text


def test_translation_view_of_a_non_streamed_answer_shows_both_json_bodies_pretty() -> None:
    flow = bridge_flow()
    assert flow.response is not None
    flow.response.content = json.dumps(anthropic_body(REPLY)).encode()
    flow.response.headers["content-type"] = "application/json"
    flow.metadata["bridge_upstream_response"].update(headers=[["Content-Type", "application/json"]],
                                                     content=json.dumps(chat_body(REPLY)).encode())
    result = render(flow.response, flow)
    assert result.view_name == "Translation"
    assert json.loads(body_of(section(result.text, "upstream response (chat) · 200 OK"))) == chat_body(REPLY)
    client = section(result.text, "client response (anthropic) · 200 OK · this message")
    assert json.loads(client) == anthropic_body(REPLY) and '\n  "type": "message",\n' in client


def test_translation_view_of_a_request_without_a_body() -> None:
    flow = bridge_flow()
    flow.request.method, flow.request.path, flow.request.content = "GET", "/v1/models", b""
    flow.metadata["bridge_client_request"].update(method="GET", content=b"")
    text = render(flow.request, flow).text
    assert section(text, "upstream request (chat) · GET").strip() == "(empty body)"
    assert body_of(section(text, "client request (anthropic) · GET")).strip() == "(empty body)"


def test_translation_view_beats_sse_and_json_only_on_bridge_flows() -> None:
    flow = bridge_flow()
    assert render(flow.request, flow).view_name == "Translation"  # not JSON
    assert render(flow.response, flow).view_name == "Translation"  # not SSE
    plain = tflow.tflow(resp=tflow.tresp(content=sse_body(anthropic_events(REPLY))))
    plain.response.headers["content-type"] = SSE
    assert render(plain.response, plain).view_name == "SSE"
    assert render(plain.request, plain).view_name != "Translation"


@pytest.mark.parametrize("side", ["request", "response"])
def test_translation_view_without_the_recorded_other_side(side: str) -> None:
    """A flow recorded before the bridge kept both sides: the shown message and a note."""
    flow = bridge_flow(client_request=False, upstream_response=False, comment=None)
    message = flow.request if side == "request" else flow.response
    text = render(message, flow).text
    assert text.splitlines()[0] == "anthropic → chat · local · claude-x · 200"  # built from the summary
    other = section(text, "client request (anthropic)" if side == "request" else "upstream response (chat)")
    assert other.strip().startswith("(not recorded")
    this = section(text, "upstream request (chat)" if side == "request" else "client response (anthropic)")
    if side == "request":
        assert json.loads(this) == UPSTREAM_BODY
    else:
        assert lines_of(this)[0][1] == "message_start"


def test_translation_view_when_the_bridge_answered_by_itself() -> None:
    flow = bridge_flow(upstream_response=False)
    flow.response = tflow.tresp(status_code=400, content=b'{"type": "error", "error": {"message": "bad"}}')
    flow.response.headers["content-type"] = "application/json"
    text = render(flow.response, flow).text
    assert "the bridge answered by itself" in section(text, "upstream response (chat)")
    assert json.loads(section(text, "client response (anthropic) · 400")) == {"type": "error",
                                                                            "error": {"message": "bad"}}


def test_translation_view_on_a_pass_through_flow() -> None:
    flow = bridge_flow()
    flow.metadata["bridge"].update(client_format="chat", upstream_format="chat", mode="pass-through")
    flow.metadata["bridge_client_request"]["content"] = json.dumps(UPSTREAM_BODY).encode()
    text = render(flow.request, flow).text
    assert json.loads(body_of(section(text, "client request (chat)"))) == UPSTREAM_BODY
    assert json.loads(section(text, "upstream request (chat)")) == UPSTREAM_BODY


def test_translation_view_chosen_by_hand_on_a_flow_the_bridge_did_not_handle() -> None:
    flow = tflow.tflow(resp=tflow.tresp(content=b'{"a": 1}'))
    text = render(flow.response, flow, "translation").text
    assert text.startswith("(not a flow the bridge handled)") and json.loads(text.split(views.GAP, 1)[1]) == {"a": 1}


@pytest.mark.parametrize("metadata", [
    {"bridge": "not a dict"},
    {"bridge": {}, "bridge_client_request": "junk", "bridge_upstream_response": ["junk"]},
    {"bridge": {"client_format": None}, "bridge_client_request": {"headers": [["only-name"], 5, None],
                                                                  "content": None, "method": b"POST"}},
    {"bridge": {"usage": {1, 2}}, "bridge_upstream_response": {"status_code": None, "headers": "x",
                                                                "content": "text, not bytes"}},
])
def test_translation_view_survives_malformed_metadata(metadata: dict[str, Any]) -> None:
    flow = bridge_flow(client_request=False, upstream_response=False)
    flow.metadata.clear()
    flow.metadata.update(metadata)
    for message in (flow.request, flow.response):
        for view in ("auto", "translation"):
            result = render(message, flow, view)
            assert result.syntax_highlight != "error" and "Couldn't parse" not in result.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300),
                      st.lists(st.sampled_from([b"data: ", b"event: x\n", b"\n", b"\r", b"{", b'"', b"}", b":",
                                                b"\xff", b"\xe2\x82", b"[DONE]", b"id: 1\n"]),
                               max_size=40).map(b"".join)))
def test_views_never_raise(body: bytes) -> None:
    flow = bridge_flow()
    flow.metadata["bridge_upstream_response"]["content"] = body
    flow.response.content = body
    for view in ("sse", "translation"):
        result = render(flow.response, flow, view)
        assert result.view_name == view.upper() if view == "sse" else result.view_name == "Translation"
        assert result.syntax_highlight != "error", result.text


# --- flow files and registration ---------------------------------------------------------------------


def test_views_render_a_flow_read_back_from_a_flow_file(tmp_path: Path) -> None:
    """Metadata bytes survive mitmproxy's flow file, so recorded fixtures open in mitmweb the same way."""
    path = tmp_path / "x.flow"
    with path.open("wb") as f:
        io.FlowWriter(f).add(bridge_flow())
    with path.open("rb") as f:
        [loaded] = list(io.FlowReader(f).stream())
    assert isinstance(loaded, http.HTTPFlow) and loaded.response is not None
    original = bridge_flow()
    assert original.response is not None
    assert render(loaded.response, loaded).text == render(original.response, original).text
    assert render(loaded.request, loaded).text == render(original.request, original).text


def test_install_is_idempotent_and_a_reloaded_module_replaces_its_views() -> None:
    views.install()
    sse = contentviews.registry["sse"]
    translation = contentviews.registry["translation"]
    views.install()
    assert contentviews.registry["sse"] is sse and contentviews.registry["translation"] is translation
    assert contentviews.registry.available_views().count("sse") == 1

    class SSEContentview(views.SSEContentview):  # what a reloaded script's class is: a new class object
        pass

    try:
        saved = views.VIEWS
        views.VIEWS = (SSEContentview, views.TranslationContentview)
        views.install()
        assert type(contentviews.registry["sse"]) is SSEContentview
        assert contentviews.registry["translation"] is translation
    finally:
        views.VIEWS = saved
        views.install()
    assert type(contentviews.registry["sse"]) is views.SSEContentview


@pytest.mark.parametrize("fixture", ["gemini-to-chat", "chat-to-gemini"])
def test_translation_view_of_the_gemini_fixtures(fixture: str) -> None:
    """A Gemini exchange opens in mitmweb like the others: each side labelled with its format, a Gemini
    stream as numbered events (``alt=sse`` has no event names), the streamed turn first in each fixture."""
    with (Path(__file__).resolve().parent.parent / "flows" / f"{fixture}.flow").open("rb") as f:
        flow = next(fl for fl in io.FlowReader(f).stream() if isinstance(fl, http.HTTPFlow))
    assert flow.response is not None
    client, upstream = fixture.split("-to-")
    request = render(flow.request, flow)
    assert request.view_name == "Translation"
    assert f"client request ({client}) · POST" in request.text
    assert f"upstream request ({upstream}) · POST" in request.text
    if upstream == "gemini":
        assert ":streamGenerateContent?alt=sse" in request.text and "key=" not in request.text
    response = render(flow.response, flow)
    events = lines_of(body_of(section(response.text, f"{'client' if client == 'gemini' else 'upstream'} response "
                                                       "(gemini) · 200 OK")))
    assert events and all(name is None and "candidates" in data for _, name, data in events)
