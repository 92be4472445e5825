"""End to end, the full matrix: every client format × every upstream format, through a real ``mitmdump``.

Clients are the official SDKs: anthropic ``messages``, openai ``chat.completions``, openai ``responses``
and google-genai ``models.generate_content``, each called plainly and through the SDK's stream helper.
Upstreams are the mock in the four formats (``bridge("anthropic" | "chat" | "responses" | "gemini")``),
and the mock ChatGPT Codex backend (``bridge("codex")``). For every (client, upstream) pair:

(a) a text turn, usage (cached and reasoning tokens included) and stop reason checked by value in the
    client's vocabulary;
(b) a parallel tool-call round trip, the results reaching the upstream paired with its own call ids (a
    Gemini upstream's calls may have none: then by name, gemini.md §6.1);
(c) a reasoning turn sent back on the next turn: its opaque payload (Anthropic signature, Responses
    encrypted_content, Gemini thoughtSignature; a Chat upstream's reasoning_content) reaches the kind of
    upstream that produced it unchanged (Gemini's on the part it came on), and never reaches another kind
    through a translated hop (a hop in the client's own format is byte-for-byte pass-through, so the
    bridge does not look at it);
(d) upstream HTTP errors as the SDK's typed errors, and a failure mid-stream.

Same-format pairs pass through: the upstream receives the bytes the SDK sent. Every streamed answer is
also checked against its format's grammar, on the raw bytes the SDK received. Then the Codex backend
with Anthropic, Chat and Gemini clients, a Codex-shaped Responses client (a freeform tool, history resent
without ids) against every upstream, and the mock's own Codex rules. Expectations come from the
scripted :class:`Reply` (see ``Tokens`` and ``STOPS``), never from the bridge's output.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from tests import stream_grammar
from tests.conftest import CLIENT_KEY, UPSTREAM_KEY, BridgeProcess
from tests.mock_upstream import (
    CODEX_PATH,
    SKIP_SIGNATURE,
    MockUpstream,
    Recorded,
    Reply,
    ToolCallSpec,
    gemini_chunks,
    gemini_events,
    gemini_signature,
)
from tests.test_e2e import A_TOOLS, C_TOOLS, CLOCK, TEXT, WEATHER, RecordingTransport, sse_events

FORMATS = ("anthropic", "chat", "responses", "gemini")
PAIRS = [(client, upstream) for client in FORMATS for upstream in FORMATS]
PAIR = pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=[f"{c}-to-{u}" for c, u in PAIRS])
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])

# The Gemini client asks for a Gemini 3 model: the mock then checks thought signatures as the API does
# (gemini.md §7), so a pass-through history that lost one is refused.
MODELS = {"anthropic": "claude-client-model", "chat": "gpt-client-model", "responses": "gpt-responses-client-model",
          "gemini": "gemini-3-client-model"}
UPSTREAM_MODEL = "mock-upstream-model"  # what the mock answers with; a pass-through client sees it
ID_PREFIX = {"anthropic": "msg_", "chat": "chatcmpl-", "responses": "resp_", "gemini": ""}  # Gemini: any id
UPSTREAM_PATH = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses",
                 "codex": CODEX_PATH}
MAX_TOKENS = 256
SYSTEM = "Be brief."
R_TOOLS = [{"type": "function", "name": t["name"], "description": t["description"], "parameters": t["schema"],
            "strict": False} for t in (WEATHER, CLOCK)]
G_TOOLS = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(
    name=t["name"], description=t["description"], parameters_json_schema=t["schema"]) for t in (WEATHER, CLOCK)])]

# A stop reason as scripted (Anthropic vocabulary; the mock maps it for Chat, Responses and Gemini) → what
# each client must see. Responses: the status, and the incomplete reason after a colon. Gemini has no
# tool-use finish reason: a turn with calls ends with STOP (gemini.md §3.1).
STOPS = {"end_turn": {"anthropic": "end_turn", "chat": "stop", "responses": "completed", "gemini": "STOP"},
         "max_tokens": {"anthropic": "max_tokens", "chat": "length", "responses": "incomplete:max_output_tokens",
                        "gemini": "MAX_TOKENS"},
         "tool_use": {"anthropic": "tool_use", "chat": "tool_calls", "responses": "completed", "gemini": "STOP"}}


@dataclass(frozen=True)
class Tokens:
    """One usage, independent of format: ``wire`` is what an upstream says, ``seen_by`` what a client
    must see (formats.md §5.9: cached tokens are part of OpenAI's input count, apart in Anthropic's;
    gemini.md §3.3, §9.8: Gemini's prompt count includes the cached tokens, its candidates count leaves
    out the thoughts, which every format counts inside its output)."""

    uncached: int
    cached: int  # read from the prompt cache
    written: int  # written to it (Gemini has no such count: none from a Gemini upstream, see of)
    output: int
    reasoning: int  # of the output

    def of(self, upstream: str) -> Tokens:
        """This usage as ``upstream`` can report it."""
        return replace(self, uncached=self.uncached + self.written, written=0) if upstream == "gemini" else self

    def wire(self, upstream: str) -> dict[str, Any]:
        total_in = self.uncached + self.cached + self.written
        assert upstream != "gemini" or not self.written, "Gemini reports no cache writes: use of()"
        if upstream == "anthropic":
            return {"input_tokens": self.uncached, "cache_read_input_tokens": self.cached,
                    "cache_creation_input_tokens": self.written, "output_tokens": self.output,
                    "output_tokens_details": {"thinking_tokens": self.reasoning}}
        if upstream == "chat":
            return {"prompt_tokens": total_in, "completion_tokens": self.output, "total_tokens": total_in + self.output,
                    "prompt_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": self.written},
                    "completion_tokens_details": {"reasoning_tokens": self.reasoning}}
        if upstream == "gemini":
            return {"promptTokenCount": total_in, "cachedContentTokenCount": self.cached,
                    "candidatesTokenCount": self.output - self.reasoning, "thoughtsTokenCount": self.reasoning,
                    "totalTokenCount": total_in + self.output}
        return {"input_tokens": total_in,
                "input_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": self.written},
                "output_tokens": self.output, "output_tokens_details": {"reasoning_tokens": self.reasoning},
                "total_tokens": total_in + self.output}

    def seen_by(self, client: str) -> dict[str, int]:
        total_in = self.uncached + self.cached + self.written
        if client == "anthropic":
            return {"input_tokens": self.uncached, "cache_read_input_tokens": self.cached,
                    "cache_creation_input_tokens": self.written, "output_tokens": self.output,
                    "thinking_tokens": self.reasoning}
        if client == "chat":
            return {"prompt_tokens": total_in, "cached_tokens": self.cached, "cache_write_tokens": self.written,
                    "completion_tokens": self.output, "reasoning_tokens": self.reasoning,
                    "total_tokens": total_in + self.output}
        if client == "gemini":  # no field for writes: they are in the prompt count
            return {"prompt": total_in, "cached": self.cached, "candidates": self.output - self.reasoning,
                    "thoughts": self.reasoning, "total": total_in + self.output}
        return {"input_tokens": total_in, "cached_tokens": self.cached, "cache_write_tokens": self.written,
                "output_tokens": self.output, "reasoning_tokens": self.reasoning,
                "total_tokens": total_in + self.output}


USAGE = Tokens(uncached=70, cached=30, written=12, output=20, reasoning=5)


@pytest.fixture(scope="module")
def bridges(bridge) -> dict[str, BridgeProcess]:  # type: ignore[no-untyped-def]
    """One bridge per upstream kind, each with only that upstream configured."""
    return {upstream: bridge(upstream) for upstream in FORMATS}


# --- the SDK clients, with a transport that keeps what was sent and received ---------------------


class Transport(RecordingTransport):
    """The raw response bytes (as in test_e2e), and also each request body the SDK sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request.read())
        return super().handle_request(request)


def sdk(client: str, bridge: BridgeProcess) -> tuple[Any, Transport]:
    transport = Transport()
    http = httpx2.Client(transport=transport)
    if client == "anthropic":
        return anthropic.Anthropic(base_url=bridge.url, api_key=CLIENT_KEY, max_retries=0, timeout=20,
                                   http_client=http), transport
    if client == "gemini":  # the SDK's default API version, /v1 (gemini.md §0); it never retries by default
        http = httpx2.Client(transport=transport, timeout=20)
        return genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(base_url=bridge.url,
                                                                                 httpx_client=http)), transport
    return openai.OpenAI(base_url=bridge.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20,
                         http_client=http), transport


# --- asking: one helper per client format, each returning the same normalised Answer --------------


@dataclass
class Answer:
    """A client's view of one answer, in the client's own vocabulary."""

    id: str
    model: str
    text: str
    reasoning: list[tuple[str, str | None]]  # (reasoning text, the opaque payload as the client holds it)
    # (call id, tool name, parsed JSON arguments / a custom call's raw input); a Gemini call's id may be None
    calls: list[tuple[str | None, str, Any]]
    stop: str
    usage: dict[str, int]
    turn: list[Any]  # the assistant turn as this client sends it back in its history
    sent: bytes  # the request body the SDK sent
    helper_raised: str | None = None  # what the SDK's stream helper raised at the end, if anything
    raw: bytes = b""  # a streamed answer: the bytes the SDK received


class ResponseFailed(Exception):
    """A Responses stream that ended with response.failed (the SDK yields it, it does not raise)."""

    def __init__(self, event: Any, helper_error: str) -> None:
        super().__init__(f"{event.response.error} / get_final_response(): {helper_error}")
        self.event = event
        self.helper_error = helper_error


def ask(client: str, bridge: BridgeProcess, stream: bool, history: list[dict[str, Any]], *,
        system: str | None = None, tools: bool = False, **extra: Any) -> Answer:
    """One request from the official SDK of ``client``, plain or through its stream helper."""
    return {"anthropic": _ask_anthropic, "chat": _ask_chat, "responses": _ask_responses, "gemini": _ask_gemini}[
        client](bridge, stream, history, system, tools, extra)


def _ask_anthropic(bridge: BridgeProcess, stream: bool, history: list[dict[str, Any]], system: str | None,
                   tools: bool, extra: dict[str, Any]) -> Answer:
    sdk_client, transport = sdk("anthropic", bridge)
    params: dict[str, Any] = {"model": MODELS["anthropic"], "max_tokens": MAX_TOKENS, "messages": history,
                              **({"system": system} if system else {}), **({"tools": A_TOOLS} if tools else {}),
                              **extra}
    if stream:
        with sdk_client.messages.stream(**params) as s:
            msg = s.get_final_message()
        stream_grammar.check_anthropic_stream(transport.last_body)
    else:
        msg = sdk_client.messages.create(**params)
    blocks = [b.model_dump(exclude_none=True) for b in msg.content]
    usage = msg.usage
    return Answer(
        id=msg.id, model=msg.model, stop=str(msg.stop_reason), sent=transport.sent[-1],
        text="".join(b["text"] for b in blocks if b["type"] == "text"),
        reasoning=[(b["thinking"], b["signature"]) for b in blocks if b["type"] == "thinking"],
        calls=[(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
        usage={"input_tokens": usage.input_tokens, "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
               "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
               "output_tokens": usage.output_tokens,
               "thinking_tokens": usage.output_tokens_details.thinking_tokens if usage.output_tokens_details else 0},
        turn=[{"role": "assistant", "content": blocks}])


def _ask_chat(bridge: BridgeProcess, stream: bool, history: list[dict[str, Any]], system: str | None,
              tools: bool, extra: dict[str, Any]) -> Answer:
    sdk_client, transport = sdk("chat", bridge)
    params: dict[str, Any] = {"model": MODELS["chat"], "max_completion_tokens": MAX_TOKENS,
                              "messages": ([{"role": "system", "content": system}] if system else []) + history,
                              **({"tools": C_TOOLS} if tools else {}), **extra}
    raised = None
    if stream:
        with sdk_client.chat.completions.stream(**params, stream_options={"include_usage": True}) as s:
            try:
                completion = s.get_final_completion()
            except openai.LengthFinishReasonError as e:  # the helper raises it for every length finish
                completion, raised = e.completion, type(e).__name__
        stream_grammar.check_chat_stream(transport.last_body)
    else:
        completion = sdk_client.chat.completions.create(**params)
    choice = completion.choices[0]
    message = choice.message
    extras = message.model_extra or {}
    thinking_blocks = extras.get("thinking_blocks") or []
    if thinking_blocks:
        reasoning = [(b.get("thinking", ""), b.get("signature") or b.get("data")) for b in thinking_blocks]
    else:
        reasoning = [(extras["reasoning_content"], None)] if extras.get("reasoning_content") else []
    calls = []
    for call in message.tool_calls or ():
        if call.type == "function":
            calls.append((call.id, call.function.name, json.loads(call.function.arguments)))
        else:
            calls.append((call.id, call.custom.name, call.custom.input))
    turn: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.tool_calls:
        turn["tool_calls"] = [c.model_dump(exclude_none=True) for c in message.tool_calls]
    for key in ("reasoning_content", "thinking_blocks"):  # what LiteLLM-style clients send back
        if extras.get(key):
            turn[key] = extras[key]
    usage = completion.usage
    assert usage is not None, "no usage (the client asked for it)"
    details, out_details = usage.prompt_tokens_details, usage.completion_tokens_details
    return Answer(
        id=completion.id, model=completion.model, text=message.content or "", reasoning=reasoning, calls=calls,
        stop=str(choice.finish_reason), sent=transport.sent[-1], helper_raised=raised, turn=[turn],
        usage={"prompt_tokens": usage.prompt_tokens, "cached_tokens": (details.cached_tokens or 0) if details else 0,
               "cache_write_tokens": (details.cache_write_tokens or 0) if details else 0,
               "completion_tokens": usage.completion_tokens,
               "reasoning_tokens": (out_details.reasoning_tokens or 0) if out_details else 0,
               "total_tokens": usage.total_tokens})


_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _ask_responses(bridge: BridgeProcess, stream: bool, history: list[dict[str, Any]], system: str | None,
                   tools: bool, extra: dict[str, Any]) -> Answer:
    sdk_client, transport = sdk("responses", bridge)
    params: dict[str, Any] = {"model": MODELS["responses"], "max_output_tokens": MAX_TOKENS, "input": history,
                              **({"instructions": system} if system else {}), **({"tools": R_TOOLS} if tools else {}),
                              **extra}
    raised = None
    if stream:
        with sdk_client.responses.stream(**params) as s:
            events = list(s)
            try:
                response = s.get_final_response()
            except RuntimeError as e:  # no response.completed: incomplete or failed
                raised, response = str(e), None
        check_responses_stream(transport.last_body)
        if response is None:
            terminal = next((ev for ev in reversed(events) if ev.type in _TERMINAL), None)
            assert terminal is not None, f"the stream has no terminal event: {[ev.type for ev in events]}"
            if terminal.type == "response.failed":
                raise ResponseFailed(terminal, str(raised))
            response = terminal.response
    else:
        response = sdk_client.responses.create(**params)
    text, reasoning, calls = [], [], []
    for item in response.output:
        if item.type == "reasoning":
            said = "".join(s.text for s in item.summary) or "".join(c.text for c in item.content or ())
            reasoning.append((said, item.encrypted_content))
        elif item.type == "message":
            text += [part.text for part in item.content if part.type == "output_text"]
        elif item.type == "function_call":
            calls.append((item.call_id, item.name, json.loads(item.arguments)))
        elif item.type == "custom_tool_call":
            calls.append((item.call_id, item.name, item.input))
    stop = response.status if response.status != "incomplete" else \
        f"incomplete:{response.incomplete_details.reason if response.incomplete_details else None}"
    usage = response.usage
    assert usage is not None, "no usage in the response"
    return Answer(
        id=response.id, model=response.model, text="".join(text), reasoning=reasoning, calls=calls, stop=str(stop),
        sent=transport.sent[-1], helper_raised=raised,
        turn=[item.model_dump(mode="json", exclude_none=True) for item in response.output],
        usage={"input_tokens": usage.input_tokens, "cached_tokens": usage.input_tokens_details.cached_tokens,
               "cache_write_tokens": usage.input_tokens_details.cache_write_tokens or 0,
               "output_tokens": usage.output_tokens,
               "reasoning_tokens": usage.output_tokens_details.reasoning_tokens, "total_tokens": usage.total_tokens})


def _gemini_contents(history: list[Any]) -> list[Any]:
    """The history as google-genai takes it: ``user(text)`` as a Content, the rest (the SDK's own Contents,
    as an answer's ``turn`` and ``tool_results`` give them) as it is."""
    return [gtypes.Content(role=item["role"], parts=[gtypes.Part(text=item["content"])])
            if isinstance(item, dict) and isinstance(item.get("content"), str) else item for item in history]


def gemini_stream_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The grammar check of a Gemini stream. The bridge's own emitter ends events with CRLF CRLF; a
    pass-through stream ends them as the mock does (LF LF, which both official readers take)."""
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n\n", b"\r\n\r\n")
    return stream_grammar.check_gemini_stream(raw)


def _signature(value: bytes | None) -> str | None:
    """A thoughtSignature as the SDK holds it (bytes), as the API writes it (standard base64)."""
    return base64.b64encode(value).decode() if value else None


def _ask_gemini(bridge: BridgeProcess, stream: bool, history: list[Any], system: str | None, tools: bool,
                extra: dict[str, Any]) -> Answer:
    """``extra`` are GenerateContentConfig fields. A streamed turn goes back as the SDK's chat helper sends
    it: one model Content per chunk (gemini.md §2.3)."""
    sdk_client, transport = sdk("gemini", bridge)
    config = gtypes.GenerateContentConfig(max_output_tokens=MAX_TOKENS, system_instruction=system,
                                          tools=G_TOOLS if tools else None, **extra)
    params: dict[str, Any] = {"model": MODELS["gemini"], "contents": _gemini_contents(history), "config": config}
    raw = b""
    if stream:
        chunks = list(sdk_client.models.generate_content_stream(**params))
        raw = transport.last_body
        gemini_stream_chunks(raw)
    else:
        chunks = [sdk_client.models.generate_content(**params)]
    candidates = [c.candidates[0] for c in chunks if c.candidates]
    turn = [c.content for c in candidates if c.content]
    parts = [p for content in turn for p in content.parts or ()]
    finish = next((c.finish_reason for c in reversed(candidates) if c.finish_reason), None)
    thoughts = "".join(p.text or "" for p in parts if p.thought)
    signatures = [_signature(p.thought_signature) for p in parts if p.thought_signature]
    usage = next(c.usage_metadata for c in reversed(chunks) if c.usage_metadata)
    last = chunks[-1]
    return Answer(
        id=str(last.response_id), model=str(last.model_version), sent=transport.sent[-1], raw=raw, turn=turn,
        text="".join(p.text or "" for p in parts if not p.thought),
        reasoning=[(thoughts, signatures[0] if signatures else None)] if thoughts or signatures else [],
        calls=[(p.function_call.id, str(p.function_call.name), p.function_call.args) for p in parts if p.function_call],
        stop=str(getattr(finish, "value", finish)),
        usage={"prompt": usage.prompt_token_count or 0, "cached": usage.cached_content_token_count or 0,
               "candidates": usage.candidates_token_count or 0, "thoughts": usage.thoughts_token_count or 0,
               "total": usage.total_token_count or 0})


# --- conversation pieces, in each client's format -------------------------------------------------


def user(text: str) -> dict[str, Any]:
    """A user's text, in the same shape in the Anthropic and both OpenAI formats (the Gemini asker makes it a
    Content)."""
    return {"role": "user", "content": text}


def tool_results(client: str, results: list[tuple[str | None, str, str]]) -> list[Any]:
    """The results of the calls (call id, tool name, output) the way each client format sends them. A
    Gemini result names its call (gemini.md §6.1) and echoes its id when it had one."""
    if client == "anthropic":
        return [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": out}
                                             for call_id, _, out in results]}]
    if client == "chat":
        return [{"role": "tool", "tool_call_id": call_id, "content": out} for call_id, _, out in results]
    if client == "gemini":
        return [gtypes.Content(role="user", parts=[gtypes.Part(function_response=gtypes.FunctionResponse(
            id=call_id, name=name, response={"output": out})) for call_id, name, out in results])]
    return [{"type": "function_call_output", "call_id": call_id, "output": out} for call_id, _, out in results]


# --- what an upstream received, read in its own format --------------------------------------------


def _text_of(content: Any) -> str:
    """The text in a content value: a string, or a list of text / input_text / output_text parts."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict)
                   and p.get("type") in ("text", "input_text", "output_text"))


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses body's input as a list of items."""
    value = body.get("input")
    return [user(value)] if isinstance(value, str) else list(value or [])


def _g(obj: Any, camel: str) -> Any:
    """A Gemini request field by its REST name, or by the snake_case name google-genai sends below the top
    level (gemini.md §2.2): a pass-through body is the SDK's."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()) if value is None else value


def _g_parts(body: dict[str, Any], role: str) -> list[list[dict[str, Any]]]:
    """The parts of each Gemini content of ``role`` (no role is user, gemini.md §2.3)."""
    return [list(_g(c, "parts") or ()) for c in _g(body, "contents") or () if (_g(c, "role") or "user") == role]


def _g_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [call for parts in _g_parts(body, "model") for p in parts if (call := _g(p, "functionCall"))]


def _unbase64(value: str) -> str:
    """A signature's bytes, read in either base64 alphabet (google-genai sends URL-safe, gemini.md §2.2)."""
    try:
        return base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return f"<not base64: {value}>"


def up_system(fmt: str, body: dict[str, Any]) -> str:
    """All system/developer text the upstream received."""
    if fmt == "anthropic":
        return _text_of(body.get("system"))
    if fmt == "chat":
        return "\n".join(_text_of(m.get("content")) for m in body["messages"] if m["role"] in ("system", "developer"))
    if fmt == "gemini":
        return "\n".join(_g(p, "text") or "" for p in _g(_g(body, "systemInstruction"), "parts") or ())
    return "\n".join([body.get("instructions") or ""] + [_text_of(i.get("content")) for i in _items(body)
                                                         if i.get("role") in ("system", "developer")])


def up_user_texts(fmt: str, body: dict[str, Any]) -> list[str]:
    if fmt == "responses":
        return [_text_of(i.get("content")) for i in _items(body) if i.get("role") == "user"]
    if fmt == "gemini":
        return [text for parts in _g_parts(body, "user") if (text := "".join(_g(p, "text") or "" for p in parts))]
    return [text for m in body["messages"] if m["role"] == "user" and (text := _text_of(m["content"]))]


def up_max_tokens(fmt: str, body: dict[str, Any]) -> Any:
    if fmt == "anthropic":
        return body.get("max_tokens")
    if fmt == "chat":
        return body.get("max_completion_tokens", body.get("max_tokens"))
    if fmt == "gemini":
        return _g(_g(body, "generationConfig"), "maxOutputTokens")
    return body.get("max_output_tokens")


def up_streamed(fmt: str, rec: Recorded) -> bool:
    """Whether the upstream was asked for a stream: Gemini says so in its path (gemini.md §1.1)."""
    if fmt == "gemini":
        return rec.path.endswith(":streamGenerateContent?alt=sse")
    return rec.json.get("stream") is True


def up_calls(fmt: str, body: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The assistant's tool calls in the history the upstream received: (id, name, arguments). A Gemini
    call without an id is known by its name (gemini.md §6.1)."""
    if fmt == "anthropic":
        return [(b["id"], b["name"], b["input"]) for m in body["messages"] if m["role"] == "assistant"
                and isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"]
    if fmt == "chat":
        return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or ()]
    if fmt == "gemini":
        return [(c.get("id") or c["name"], c["name"], c.get("args") or {}) for c in _g_calls(body)]
    return [(i["call_id"], i["name"], json.loads(i["arguments"]) if i["type"] == "function_call" else i["input"])
            for i in _items(body) if i.get("type") in ("function_call", "custom_tool_call")]


def _g_output(response: Any) -> str:
    """A functionResponse's text: its ``output`` (gemini.md §6.3), else the whole object."""
    output = response.get("output") if isinstance(response, dict) else None
    return output if isinstance(output, str) else json.dumps(response)


def up_results(fmt: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The tool results the upstream received: (the call id they answer, their text). A Gemini result
    without an id answers by its name."""
    if fmt == "anthropic":
        return [(b["tool_use_id"], _text_of(b.get("content"))) for m in body["messages"] if m["role"] == "user"
                and isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"]
    if fmt == "chat":
        return [(m["tool_call_id"], _text_of(m["content"])) for m in body["messages"] if m["role"] == "tool"]
    if fmt == "gemini":
        return [(r.get("id") or r["name"], _g_output(r.get("response"))) for parts in _g_parts(body, "user")
                for p in parts if (r := _g(p, "functionResponse"))]
    return [(i["call_id"], _text_of(i["output"])) for i in _items(body)
            if i.get("type") in ("function_call_output", "custom_tool_call_output")]


def up_reasoning(fmt: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every piece of reasoning the upstream received, in its own shape (Gemini: thought parts and parts
    with a signature other than the documented sentinel, which stands for none, gemini.md §7)."""
    if fmt == "anthropic":
        return [b for m in body["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)
                for b in m["content"] if b["type"] in ("thinking", "redacted_thinking")]
    if fmt == "chat":
        return [{k: m[k] for k in ("reasoning_content", "reasoning", "thinking_blocks") if m.get(k)}
                for m in body["messages"] if m["role"] == "assistant"
                and any(m.get(k) for k in ("reasoning_content", "reasoning", "thinking_blocks"))]
    if fmt == "gemini":
        return [p for parts in _g_parts(body, "model") for p in parts
                if p.get("thought") or _g(p, "thoughtSignature") not in (None, SKIP_SIGNATURE)]
    return [i for i in _items(body) if i.get("type") == "reasoning"]


def check_hop(client: str, upstream: str, answer: Answer | None, rec: Recorded) -> None:
    """The request went to the upstream's path with the upstream's key; a same-format one byte for byte."""
    assert CLIENT_KEY not in rec.all_header_values, rec.headers
    if upstream == "gemini":  # the model is in the path; a stream is asked for as SSE (gemini.md §1.1)
        base = f"/v1beta/models/{MODELS[client]}:"
        assert rec.path in (f"{base}generateContent", f"{base}streamGenerateContent?alt=sse"), \
            f"{client} client → gemini upstream went to {rec.path}"
        assert rec.headers.get("x-goog-api-key") == UPSTREAM_KEY
        assert not {"authorization", "x-api-key", "anthropic-version"} & rec.headers.keys(), rec.headers
    else:
        assert rec.path == UPSTREAM_PATH[upstream], f"{client} client → {upstream} upstream went to {rec.path}"
        assert not [h for h in rec.headers if h.startswith("x-goog-")], f"Google's headers reached {upstream}"
    if upstream == "anthropic":
        assert rec.headers.get("x-api-key") == UPSTREAM_KEY and rec.headers.get("anthropic-version")
        assert "authorization" not in rec.headers
    elif upstream != "gemini":
        assert rec.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
        assert "x-api-key" not in rec.headers and "anthropic-version" not in rec.headers
    if client != upstream:
        assert upstream == "gemini" or rec.json["model"] == MODELS[client]
    elif answer is not None:
        assert rec.body == answer.sent, "same format: the upstream must receive the bytes the client sent"


# --- the Responses stream grammar (formats.md §4.4), on the raw client bytes ------------------------


def _digest(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item.get("type"), item.get("id"), item.get("call_id"), item.get("name"), item.get("arguments"),
            item.get("input"), item.get("encrypted_content"), [_text_of([p]) for p in item.get("content") or ()],
            [s.get("text") for s in item.get("summary") or ()])


def check_responses_stream(raw: bytes) -> list[dict[str, Any]]:
    """Assert what the SDK helper, Codex and typed clients rely on: ``event:`` names (when present) equal
    the data's type; sequence_number 0, 1, 2, …; response.created first, one lifecycle response id;
    output items added at output_index 0, 1, 2, …, their events only while they are open, done with
    the identity they were added with and the text/arguments their deltas spelled; one terminal event,
    last, whose output is every done item and whose usage is complete (formats.md §6.5)."""
    events = []
    for name, data in sse_events(raw):
        event = json.loads(data)
        assert name is None or name == event["type"], f"event: {name} carries a {event['type']}"
        events.append(event)
    assert events, "empty stream"
    assert [e.get("sequence_number") for e in events] == list(range(len(events))), "sequence_number gaps"
    assert events[0]["type"] == "response.created", events[0]["type"]
    kinds = [e["type"] for e in events]
    assert sum(kind in _TERMINAL for kind in kinds) == 1 and kinds[-1] in _TERMINAL, kinds[-3:]
    ids = {e["response"]["id"] for e in events if e["type"].startswith("response.") and "response" in e}
    assert len(ids) == 1, f"lifecycle response ids differ: {ids}"
    added: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    spelled: dict[tuple[int, str], str] = {}
    parts: set[tuple[int, int]] = set()
    for e in events[:-1]:
        kind = e["type"]
        if kind in ("response.created", "response.in_progress", "keepalive"):
            continue
        index = e["output_index"]
        if kind == "response.output_item.added":
            assert index == len(added), f"output_index {index} added, expected {len(added)}"
            added[index] = e["item"]
            continue
        assert index in added and index not in done, f"{kind} for output_index {index}, which is not open"
        item = added[index]
        if kind == "response.output_item.done":
            final = e["item"]
            for key in ("type", "id", "call_id"):
                assert final.get(key) == item.get(key) or item.get(key) is None, f"{key} changed: {item} → {final}"
            done[index] = final
            continue
        assert e.get("item_id") in (None, item.get("id")), f"{kind} names item {e.get('item_id')}, open is {item}"
        if kind == "response.content_part.added":
            parts.add((index, e["content_index"]))
        elif kind == "response.output_text.delta":
            assert (index, e["content_index"]) in parts, "output_text.delta before its content_part.added"
            spelled[(index, "text")] = spelled.get((index, "text"), "") + e["delta"]
        elif kind == "response.function_call_arguments.delta":
            assert item["type"] == "function_call", f"arguments delta for a {item['type']}"
            spelled[(index, "arguments")] = spelled.get((index, "arguments"), "") + e["delta"]
        elif kind == "response.custom_tool_call_input.delta":
            spelled[(index, "input")] = spelled.get((index, "input"), "") + e["delta"]
        elif kind == "response.reasoning_summary_text.delta":
            spelled[(index, "summary")] = spelled.get((index, "summary"), "") + e["delta"]
    for (index, what), text in spelled.items():
        final = done.get(index)
        if final is None:
            continue  # a failed stream may stop mid-item
        if what == "text":
            assert _text_of(final["content"]) == text, (final, text)
        elif what == "summary":
            assert "".join(s["text"] for s in final["summary"]) == text, (final, text)
        else:
            assert final[what] == text, (final, text)
    last = events[-1]
    response = last["response"]
    if last["type"] == "response.failed":
        error = response.get("error") or {}
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), response
        return events
    assert sorted(done) == sorted(added), f"items added but never done: {sorted(set(added) - set(done))}"
    assert [_digest(i) for i in response["output"]] == [_digest(done[i]) for i in sorted(done)], \
        "the terminal event's output differs from the output_item.done items"
    usage = response["usage"]
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert isinstance(usage.get(key), int), usage
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int), usage
    assert isinstance(usage["output_tokens_details"]["reasoning_tokens"], int), usage
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage
    if last["type"] == "response.incomplete":
        assert response["status"] == "incomplete" and response["incomplete_details"]["reason"], response
    else:
        assert response["status"] == "completed", response
    return events


# === (a) a text turn: content, usage and stop reason by value ======================================


@PAIR
@STREAM
@pytest.mark.parametrize("stop", ["end_turn", "max_tokens"])
def test_text_turn(bridges: dict[str, BridgeProcess], mock: MockUpstream, client: str, upstream: str,
                   stream: bool, stop: str) -> None:
    mock.next_reply(text=TEXT, stop=stop, usage=USAGE.of(upstream).wire(upstream))

    answer = ask(client, bridges[upstream], stream, [user("Say hello")], system=SYSTEM)

    assert answer.text == TEXT
    assert answer.stop == STOPS[stop][client]
    assert answer.usage == USAGE.of(upstream).seen_by(client)
    assert answer.id and answer.id.startswith(ID_PREFIX[client]), answer.id
    assert answer.model == (UPSTREAM_MODEL if client == upstream else MODELS[client])
    helper_raises = stream and stop == "max_tokens" and client in ("chat", "responses")
    assert bool(answer.helper_raised) == helper_raises, answer.helper_raised
    if helper_raises and client == "responses":
        assert "response.completed" in str(answer.helper_raised)

    rec = mock.last
    check_hop(client, upstream, answer, rec)
    assert SYSTEM in up_system(upstream, rec.json)
    assert up_user_texts(upstream, rec.json) == ["Say hello"]
    assert up_max_tokens(upstream, rec.json) == MAX_TOKENS
    assert up_streamed(upstream, rec) == stream
    if stream and upstream == "chat":
        assert rec.json["stream_options"] == {"include_usage": True}
    if stream and client == "gemini":  # the bridge's own emitter ends events with CRLF CRLF, the mock with LF LF
        assert (b"\r\n" in answer.raw) == (upstream != "gemini"), answer.raw[-40:]


# === (b) parallel tool calls and their results ======================================================

WEATHER_ARGS, CLOCK_ARGS = {"city": "Paris", "units": "metric"}, {"tz": "Europe/Paris"}
CALLS = [ToolCallSpec("call_W1a", "get_weather", WEATHER_ARGS), ToolCallSpec("call_T2b", "get_time", CLOCK_ARGS)]
OUTPUTS = {"get_weather": "18°C, sunny", "get_time": "14:00"}


@PAIR
@STREAM
def test_parallel_tool_calls_round_trip(bridges: dict[str, BridgeProcess], mock: MockUpstream, client: str,
                                        upstream: str, stream: bool) -> None:
    bridge = bridges[upstream]
    # A Gemini upstream gives its calls ids in the streamed variant only: the Developer API gives none, and
    # its results are then paired by name (gemini.md §6.1). Every other format always has ids.
    issued_ids = upstream != "gemini" or stream
    mock.next_reply(text="Checking both.", tool_calls=CALLS, gemini_ids=issued_ids)
    question = user("Weather and time in Paris?")

    answer = ask(client, bridge, stream, [question], tools=True)

    assert answer.text == "Checking both."
    assert [(name, args) for _, name, args in answer.calls] == [(c.name, c.arguments) for c in CALLS]
    call_ids = [call_id for call_id, _, _ in answer.calls]
    if client == upstream == "gemini" and not issued_ids:
        assert call_ids == [None, None], "pass-through: the calls as the upstream sent them"
    else:  # a translated answer's calls always have ids, made where the upstream gave none
        assert len(set(call_ids)) == 2 and None not in call_ids, answer.calls
    assert answer.stop == STOPS["tool_use"][client]
    check_hop(client, upstream, answer, mock.last)

    mock.next_reply(text="Sunny and 14:00.")
    results = [(call_id, name, OUTPUTS[name]) for call_id, name, _ in answer.calls]
    final = ask(client, bridge, stream, [question, *answer.turn, *tool_results(client, results)], tools=True)

    assert final.text == "Sunny and 14:00." and final.stop == STOPS["end_turn"][client]
    rec = mock.last
    check_hop(client, upstream, final, rec)
    # The upstream gets back its own calls, each result paired with the right call: by the call's id (its own
    # when it gave one), or by name when the call has none.
    sent = up_calls(upstream, rec.json)
    assert [(name, args) for _, name, args in sent] == [(c.name, c.arguments) for c in CALLS]
    assert up_results(upstream, rec.json) == [(call_id, OUTPUTS[name]) for call_id, name, _ in sent]
    if issued_ids:
        assert [call_id for call_id, _, _ in sent] == [c.id for c in CALLS]


# === (c) reasoning sent back: the opaque payload only ever reaches its own kind of upstream ===========

REASONING = "The user wants the weather in Oslo; call get_weather."
# An Anthropic signature / a Responses encrypted_content / the bytes of a Gemini thoughtSignature
OPAQUE = "opaque-payload-Zm9vYmFy+/=="
GEMINI_OPAQUE = gemini_signature(Reply(signature=OPAQUE)) or ""  # as the mock sends it: base64 (gemini.md §2.2)
# Every form the payload can travel in: as scripted, and Gemini's base64 in both alphabets.
OPAQUE_FORMS = (OPAQUE, GEMINI_OPAQUE, GEMINI_OPAQUE.replace("+", "-").replace("/", "_"))
# Each client asks for reasoning, as one that wants to see it does: a Gemini upstream sends thought parts
# only when asked (gemini.md §4.3 item 1), and then checks the current turn's signatures (§7).
THINK: dict[str, dict[str, Any]] = {
    "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
    "chat": {"reasoning_effort": "high"},
    "responses": {"reasoning": {"effort": "high", "summary": "auto"}},
    "gemini": {"thinking_config": gtypes.ThinkingConfig(include_thoughts=True)}}


def expected_reasoning(producer: str, text: str = REASONING) -> list[Any]:
    """How the producing upstream must get its own reasoning back: as it sent it (Gemini: the signature's
    bytes on the functionCall part it came on; thought summaries need not go back, gemini.md §7)."""
    if producer == "anthropic":
        return [{"type": "thinking", "thinking": text, "signature": OPAQUE}]
    if producer == "chat":
        return [{"reasoning_content": text}]
    if producer == "gemini":
        return [("functionCall", OPAQUE)]
    return [{"type": "reasoning", "encrypted_content": OPAQUE, "summary": [{"type": "summary_text", "text": text}]}]


def reasoning_sent(upstream: str, body: dict[str, Any]) -> list[Any]:
    """up_reasoning, a Responses item cut to the fields that carry it (its id may go or stay); for Gemini,
    each signature's bytes and the kind of part it rode on."""
    sent = up_reasoning(upstream, body)
    if upstream == "responses":
        return [{k: item.get(k) for k in ("type", "encrypted_content", "summary")} for item in sent]
    if upstream == "gemini":
        return [("functionCall" if _g(p, "functionCall") else "text", _unbase64(sig)) for p in sent
                if (sig := _g(p, "thoughtSignature"))]
    return sent


@PAIR
@STREAM
def test_reasoning_goes_back_only_to_its_own_kind_of_upstream(bridges: dict[str, BridgeProcess], mock: MockUpstream,
                                                              client: str, upstream: str, stream: bool) -> None:
    mock.next_reply(reasoning=REASONING, signature=OPAQUE, text="Checking.",
                    tool_calls=[ToolCallSpec("call_R1", "get_weather", {"city": "Oslo"})])
    question = user("Weather in Oslo?")

    answer = ask(client, bridges[upstream], stream, [question], tools=True, **THINK[client])

    # A Gemini upstream's signature rides on the call, after the text, not on the thoughts (the mock's shape,
    # gemini.md §7): translated, it is a reasoning block of its own, with no text, right before the call.
    carrier = [""] if upstream == "gemini" and client != "gemini" else []
    assert [text for text, _ in answer.reasoning] == [REASONING, *carrier]
    assert answer.text == "Checking." and [name for _, name, _ in answer.calls] == ["get_weather"]
    call_id = answer.calls[0][0]
    history = [question, *answer.turn, *tool_results(client, [(call_id, "get_weather", "-3°C")])]

    # Next turn, same kind of upstream: the reasoning and its payload come back unchanged.
    mock.next_reply(text="It is cold.")
    ask(client, bridges[upstream], stream, history, tools=True, **THINK[client])
    rec = mock.last
    check_hop(client, upstream, None, rec)
    assert reasoning_sent(upstream, rec.json) == expected_reasoning(upstream)
    sent = up_calls(upstream, rec.json)
    assert [(name, args) for _, name, args in sent] == [("get_weather", {"city": "Oslo"})]
    assert up_results(upstream, rec.json) == [(sent[0][0], "-3°C")]
    if upstream != "gemini":  # a Gemini call has no id of the upstream's (gemini.md §6.1)
        assert sent[0][0] == "call_R1"

    # The same history to every other kind of upstream (translated): no reasoning at all, no payload.
    for other in FORMATS:
        if other in (upstream, client):  # a same-format hop is pass-through, byte for byte, by design
            continue
        mock.next_reply(text="It is cold.")
        ask(client, bridges[other], stream, history, tools=True, **THINK[client])
        rec = mock.last
        check_hop(client, other, None, rec)
        assert up_reasoning(other, rec.json) == [], f"{upstream}'s reasoning was sent to a {other} upstream"
        body = rec.body.decode()
        assert not [f for f in OPAQUE_FORMS if f in body], f"{upstream}'s opaque payload reached a {other} upstream"
        assert len(up_results(other, rec.json)) == 1
        if other == "gemini":  # a call Gemini did not make, in the current turn: the documented sentinel (§7)
            assert [_g(p, "thoughtSignature") for parts in _g_parts(rec.json, "model") for p in parts
                    if _g(p, "functionCall")] == [SKIP_SIGNATURE]


# === (d) upstream errors ============================================================================

HTTP_ERRORS = {"anthropic": {400: (anthropic.BadRequestError, "invalid_request_error"),
                             500: (anthropic.InternalServerError, "api_error")},
               "chat": {400: (openai.BadRequestError, "invalid_request_error"),
                        500: (openai.InternalServerError, "server_error")}}
HTTP_ERRORS["responses"] = HTTP_ERRORS["chat"]
HTTP_ERRORS["gemini"] = {400: (genai_errors.ClientError, "INVALID_ARGUMENT"),  # the status names, gemini.md §5.1
                         500: (genai_errors.ServerError, "INTERNAL")}


@PAIR
@STREAM
@pytest.mark.parametrize("status", [400, 500])
def test_upstream_http_error(bridges: dict[str, BridgeProcess], mock: MockUpstream, client: str, upstream: str,
                             stream: bool, status: int) -> None:
    text = f"mock says no ({status}): the prompt is too long"
    mock.next_reply(status=status, error_message=text)
    error_cls, error_type = HTTP_ERRORS[client][status]

    with pytest.raises(error_cls) as excinfo:
        ask(client, bridges[upstream], stream, [user("hi")])

    err = excinfo.value
    assert text in str(err)
    if client == "anthropic":
        assert err.status_code == status
        assert err.body["error"] == {"type": error_type, "message": text}
    elif client == "gemini":
        assert (err.code, err.status, err.message) == (status, error_type, text)
    else:
        assert err.status_code == status
        assert text in err.message and err.type == error_type
    check_hop(client, upstream, None, mock.last)


# Events before the failure, so that the text "abcd" has been streamed: Anthropic message_start, ping,
# block start, delta; Chat role chunk, delta; Responses created, in_progress, item added, part added, delta;
# Gemini the chunk with it.
EVENTS_BEFORE_FAILURE = {"anthropic": 4, "chat": 2, "responses": 5, "gemini": 1}
# The kind of each upstream's in-stream error as the mock scripts it (Anthropic overloaded_error, Chat and
# Responses server_error, Gemini 503 UNAVAILABLE), as a Gemini client's code and status (gemini.md §5.3).
GEMINI_STREAM_ERROR = {"anthropic": (503, "UNAVAILABLE"), "chat": (500, "INTERNAL"), "responses": (500, "INTERNAL"),
                       "gemini": (503, "UNAVAILABLE")}


@PAIR
def test_upstream_fails_mid_stream(bridges: dict[str, BridgeProcess], mock: MockUpstream, client: str,
                                   upstream: str) -> None:
    text = "The upstream fell over halfway"
    mock.next_reply(text="abcdefgh", piece=4, error_after=EVENTS_BEFORE_FAILURE[upstream], error_message=text)
    sdk_client, transport = sdk(client, bridges[upstream])
    params: dict[str, Any] = {"model": MODELS[client]}

    if client == "anthropic":
        with pytest.raises(anthropic.APIStatusError) as excinfo:
            with sdk_client.messages.stream(**params, max_tokens=MAX_TOKENS, messages=[user("hi")]) as s:
                s.get_final_message()
        assert text in str(excinfo.value)
        events = stream_grammar.check_anthropic_stream(transport.last_body)
        assert events[-1][0] == "error"
        streamed = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    elif client == "chat":
        with pytest.raises(openai.APIError) as excinfo:
            with sdk_client.chat.completions.stream(**params, messages=[user("hi")]) as s:
                s.get_final_completion()
        assert not isinstance(excinfo.value, openai.APIConnectionError)
        assert text in str(excinfo.value)
        chunks = stream_grammar.check_chat_stream(transport.last_body)
        assert "error" in chunks[-1]
        streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
    elif client == "responses":
        with sdk_client.responses.stream(**params, input=[user("hi")]) as s:
            seen = list(s)
            with pytest.raises(RuntimeError, match=r"response\.completed"):
                s.get_final_response()
        assert seen[-1].type == "response.failed"
        assert seen[-1].response.error and text in seen[-1].response.error.message
        events = check_responses_stream(transport.last_body)
        streamed = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    else:
        read: list[gtypes.GenerateContentResponse] = []
        with pytest.raises(genai_errors.ServerError) as caught:
            for response in sdk_client.models.generate_content_stream(**params, contents="hi"):
                read.append(response)
        assert (caught.value.code, caught.value.status, caught.value.message) == (*GEMINI_STREAM_ERROR[upstream], text)
        # Nothing the client read says the answer ended: no finishReason, so no turn its chat helper keeps.
        assert read and not [r for r in read if r.candidates and r.candidates[0].finish_reason]
        folded = stream_grammar.fold_gemini(gemini_stream_chunks(transport.last_body))
        assert "error" in folded and folded["finishReason"] is None
        streamed = folded["text"]
    assert streamed == "abcd"
    check_hop(client, upstream, None, mock.last)


# === same format: pass-through of the exact bytes ====================================================

RAW_RESPONSES = ('{"model":  "gpt-raw",\n "input": [{"role": "user", "content": "h\\u00e9llo é"}], '
                 '"x_unknown": {"keep": [1, 2.50, true, null]}, "store": false}').encode()


def test_passthrough_responses_keeps_body_bytes_and_query(bridges: dict[str, BridgeProcess],
                                                          mock: MockUpstream) -> None:
    response = httpx2.post(f"{bridges['responses'].url}/v1/responses?api-version=preview", content=RAW_RESPONSES,
                           timeout=20, headers={"authorization": f"Bearer {CLIENT_KEY}",
                                                "content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["model"] == UPSTREAM_MODEL  # not translated, so not rewritten
    rec = mock.last
    assert rec.path == "/v1/responses?api-version=preview"
    assert rec.body == RAW_RESPONSES
    assert rec.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"


# snake_case below the top level, an integer as a float, escapes and raw UTF-8, as google-genai writes them
RAW_GEMINI = ('{"contents": [{"parts": [{"text": "h\\u00e9llo é"}], "role": "user"}],\n'
              ' "generation_config": {"max_output_tokens": 50.0, "top_k": 40.0}}').encode()


def test_passthrough_gemini_keeps_body_bytes_query_and_answer(bridges: dict[str, BridgeProcess],
                                                              mock: MockUpstream) -> None:
    reply = mock.next_reply(text=TEXT, piece=7)
    path = "/v1beta/models/gemini-raw:streamGenerateContent?alt=sse"
    response = httpx2.post(bridges["gemini"].url + path, content=RAW_GEMINI, timeout=20,
                           headers={"x-goog-api-key": CLIENT_KEY, "content-type": "application/json"})
    assert response.status_code == 200
    # Both ways byte for byte: the request the client wrote, the stream the upstream wrote (no rewrite asked).
    assert response.content == b"".join(gemini_events(gemini_chunks(reply, json.loads(RAW_GEMINI)), sse=True))
    rec = mock.last
    assert rec.path == path
    assert rec.body == RAW_GEMINI
    assert rec.headers.get("x-goog-api-key") == UPSTREAM_KEY and "authorization" not in rec.headers


# === the ChatGPT Codex backend as upstream ============================================================


def check_codex_request(client: str, rec: Recorded) -> None:
    """What the backend insists on (formats.md §6.6); the mock refuses the rest with a 400 as well."""
    check_hop(client, "codex", None, rec)
    body = rec.json
    assert body["stream"] is True, "the Codex backend only streams"
    assert body["store"] is False, "the Codex backend needs store: false"
    assert isinstance(body.get("instructions"), str), "the Codex backend needs instructions"
    assert not {"max_output_tokens", "temperature", "top_p"} & body.keys(), sorted(body)


# An SDK Responses client breaks the backend's rules: translated, not passed on.
@pytest.mark.parametrize("client", FORMATS)
@STREAM
def test_codex_backend_upstream(bridge, mock: MockUpstream, client: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    codex = bridge("codex")
    thinking = "Plan: look the time up."
    mock.next_reply(reasoning=thinking, signature=OPAQUE, text="Let me look.", usage=USAGE.wire("responses"),
                    tool_calls=[ToolCallSpec("call_cx1", "get_time", {"tz": "UTC"})])
    question = user("What time is it in UTC?")
    # Sampling settings the backend refuses: the bridge must leave them out (the current anthropic SDK
    # no longer types them, older clients still send them).
    sampling = {"temperature": 0.5, "top_p": 0.9}
    sampling = {"extra_body": sampling} if client == "anthropic" else sampling

    answer = ask(client, codex, stream, [question], system=SYSTEM, tools=True, **sampling)

    assert answer.text == "Let me look."
    assert [text for text, _ in answer.reasoning] == [thinking]
    assert [(name, args) for _, name, args in answer.calls] == [("get_time", {"tz": "UTC"})]
    assert answer.stop == STOPS["tool_use"][client]
    assert answer.usage == USAGE.seen_by(client)
    assert answer.model == MODELS[client]
    rec = mock.last
    check_codex_request(client, rec)
    assert SYSTEM in up_system("responses", rec.json)
    assert up_user_texts("responses", rec.json) == ["What time is it in UTC?"]
    assert [t["name"] for t in rec.json["tools"]] == ["get_weather", "get_time"]

    # The tool result on the next turn; the backend gets its encrypted reasoning back unchanged.
    mock.next_reply(text="It is noon.", usage=USAGE.wire("responses"))
    history = [question, *answer.turn, *tool_results(client, [(answer.calls[0][0], "get_time", "12:00")])]
    final = ask(client, codex, stream, history, system=SYSTEM, tools=True, **sampling)

    assert final.text == "It is noon." and final.stop == STOPS["end_turn"][client]
    assert final.usage == USAGE.seen_by(client)
    rec = mock.last
    check_codex_request(client, rec)
    assert reasoning_sent("responses", rec.json) == expected_reasoning("responses", thinking)
    assert up_calls("responses", rec.json) == [("call_cx1", "get_time", {"tz": "UTC"})]
    assert up_results("responses", rec.json) == [("call_cx1", "12:00")]


# === a Codex-shaped Responses client (its real request shape, a freeform tool) against every upstream ==

PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+Hello, "wörld" ✓\n*** End Patch\n'
CODEX_TOOLS = [
    {"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False,
     "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                    "required": ["command"], "additionalProperties": False}},
    {"type": "custom", "name": "apply_patch", "description": "Use apply_patch to edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}]


def codex_turn(bridge: BridgeProcess, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One turn the way Codex sends it (client-shapes/codex*.json) and reads it: the output items of
    ``response.output_item.done`` (formats.md §6.5)."""
    body = {"model": MODELS["responses"], "instructions": "You are Codex, a coding agent.", "input": history,
            "tools": CODEX_TOOLS, "tool_choice": "auto", "parallel_tool_calls": True,
            "reasoning": {"effort": "medium", "summary": "auto"}, "store": False, "stream": True,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "thread-0001",
            "text": {"verbosity": "low"}}
    response = httpx2.post(f"{bridge.url}/v1/responses", json=body, timeout=20,
                           headers={"authorization": f"Bearer {CLIENT_KEY}", "accept": "text/event-stream",
                                    "originator": "codex_cli_rs", "session_id": "thread-0001"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = check_responses_stream(response.content)
    assert events[-1]["type"] == "response.completed", events[-1]
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


@pytest.mark.parametrize("upstream", FORMATS)
def test_codex_shaped_client_freeform_tool_round_trip(bridges: dict[str, BridgeProcess], mock: MockUpstream,
                                                      upstream: str) -> None:
    thinking = "I need to add the file with apply_patch."
    mock.next_reply(reasoning=thinking, signature=OPAQUE, text="Adding it.", gemini_ids=True,
                    tool_calls=[ToolCallSpec("call_P1", "apply_patch", PATCH, kind="custom")])
    history = [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
               {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Create hello.txt"}]}]

    items = codex_turn(bridges[upstream], history)

    # A Gemini upstream's signature rode on the call, after the text: a reasoning item of its own (see (c)).
    carrier = ["reasoning"] if upstream == "gemini" else []
    assert [i["type"] for i in items] == ["reasoning", "message", *carrier, "custom_tool_call"]
    assert _text_of(items[1]["content"]) == "Adding it."
    call = items[-1]
    assert (call["name"], call["input"]) == ("apply_patch", PATCH)
    rec = mock.last
    check_hop("responses", upstream, None, rec)
    if upstream != "responses":  # the freeform tool is offered as a function of one string
        names = [d["name"] for t in rec.json["tools"] for d in t["functionDeclarations"]] if upstream == "gemini" \
            else [t.get("name") or t["function"]["name"] for t in rec.json["tools"]]
        assert names == ["shell", "apply_patch"]

    # Codex resends the history without item ids (formats.md §6.4), and the tool's output.
    mock.next_reply(text="Created hello.txt.")
    history += [{k: v for k, v in item.items() if k != "id"} for item in items]
    history.append({"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Done!"})
    items = codex_turn(bridges[upstream], history)

    assert [(i["type"], _text_of(i["content"])) for i in items] == [("message", "Created hello.txt.")]
    rec = mock.last
    check_hop("responses", upstream, None, rec)
    sent_input = PATCH if upstream == "responses" else {"input": PATCH}
    assert up_calls(upstream, rec.json) == [("call_P1", "apply_patch", sent_input)]
    assert up_results(upstream, rec.json) == [("call_P1", "Done!")]
    assert reasoning_sent(upstream, rec.json) == expected_reasoning(upstream, thinking)


# === the mock's Codex backend refuses what the real one refuses (so the tests above can fail) ========

_DROP = object()


@pytest.mark.parametrize(("change", "detail"), [
    ({"store": _DROP}, "Store must be set to false"),
    ({"store": True}, "Store must be set to false"),
    ({"stream": False}, "Stream must be set to true"),
    ({"instructions": _DROP}, "Instructions are required"),
    ({"max_output_tokens": 100}, "Unsupported parameter: max_output_tokens"),
    ({"temperature": 0.2}, "Unsupported parameter: temperature"),
    ({"top_p": 0.9}, "Unsupported parameter: top_p"),
    ({}, None)])
def test_mock_codex_backend_rules(mock: MockUpstream, change: dict[str, Any], detail: str | None) -> None:
    body = {"model": "gpt-5.5", "instructions": "x", "input": "hi", "store": False, "stream": True} | change
    response = httpx2.post(mock.url + CODEX_PATH, timeout=20, json={k: v for k, v in body.items() if v is not _DROP})
    if detail is None:
        assert response.status_code == 200
        assert check_responses_stream(response.content)[-1]["type"] == "response.completed"
    else:
        assert (response.status_code, response.json()) == (400, {"detail": detail})
