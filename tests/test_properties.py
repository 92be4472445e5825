"""Property tests (issue 5): random requests and random upstream streams, with and without faults.

(a) Requests. One abstract conversation (system text, mid-conversation system text, text, images,
documents, tools incl. freeform and namespaced ones, tool calls and their results, reasoning with
signatures, sampling, output limits, structured output, stream flag) is written out the way each kind
of client writes it (Claude Code → Messages, an OpenAI SDK user → Chat, Codex → Responses; see
``client-shapes/``), with random client-specific extras. Each is translated by ``Exchange.start``
toward every format (Responses also with the Codex flavor), and the upstream body must validate
against the target SDK's request TypedDict: once with pydantic's ``TypeAdapter`` (types, required
keys, literals), once with :func:`strict_errors` (no key the TypedDict does not declare, at any
depth). A mutated request (a field of the wrong type) may be rejected, but only with a 4xx
:class:`BridgeError`: any other exception is a crash.

What the SDK types cannot check, and so is not checked here: value ranges (temperature 0–1 for
Anthropic), string formats (ids, base64, URLs), ``min_length``/``max_length`` constraints, and
cross-field rules (``budget_tokens < max_tokens``; tool_use followed by tool_result). Deviations from
the SDK types that are documented and deliberate are removed before checking
(:func:`documented_deviations`). Unknown keys are forbidden by :func:`strict_errors`, not by pydantic:
pydantic cannot be told to forbid them in the SDK's TypedDicts without changing those classes, and
the SDK's unions also admit response BaseModels, which accept any key.

(b) Streams. Valid upstream event sequences (built by ``tests.mock_upstream``'s renderers from a
random :class:`Reply`) are split at random byte positions, optionally with a fault injected, and
fed through :class:`StreamTranslator` for every client format; every client stream must obey its
grammar (``tests.stream_grammar``), and after a fault it must end with the client's error event,
never with a clean stop. Not checked: a freeform call toward a Chat client (sent as a native
``custom`` tool call, which ``check_chat_stream`` and the SDK's ``ChoiceDeltaToolCall`` do not know).

Examples per run are printed with ``-s`` (``--hypothesis-show-statistics`` gives hypothesis' own).
"""

from __future__ import annotations

import collections.abc
import itertools
import json
import types
import typing
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pydantic
import pytest
import typing_extensions
from anthropic.types import message_create_params as a_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import completion_create_params as c_params
from openai.types.responses import response_create_params as r_params

from addon import translate
from addon.errors import BridgeError
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import responses as R
from addon.formats.common import Context
from tests import mock_upstream as mu
from tests.stream_grammar import check_anthropic_stream, check_chat_stream, check_responses_stream
from tests.test_stream_split import split_at

FORMATS: dict[str, ModuleType] = {"anthropic": A, "chat": C, "responses": R}
RUNS: collections.Counter[str] = collections.Counter()  # examples per outcome, printed at the end


def make_ctx(flavor: str | None = None) -> Context:
    counter = itertools.count()
    return Context(new_id=lambda prefix: f"{prefix}{next(counter):04d}", created=1_700_000_000, flavor=flavor)


# --- strict validation against the SDK TypedDicts ---------------------------------------------------

_HINTS: dict[type, tuple[dict[str, Any], frozenset[str]]] = {}
_STRIP = {typing.Annotated, typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.ReadOnly,
          typing.Required, typing.NotRequired}


def _hints(td: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Field types and the required keys of a TypedDict. Required keys are read class by class along
    ``__orig_bases__``: the SDK's streaming variants are ``total=True`` subclasses of ``total=False``
    bases, and ``__required_keys__`` misses ``Required[...]`` written as a string annotation."""
    if td not in _HINTS:
        raw = typing.get_type_hints(td, include_extras=True)
        _HINTS[td] = ({k: _unwrap(t) for k, t in raw.items()}, frozenset(_required(td)))
    return _HINTS[td]


def _required(td: type) -> set[str]:
    keys: set[str] = set()
    inherited: set[str] = set()
    for base in getattr(td, "__orig_bases__", ()):
        if typing_extensions.is_typeddict(base):
            keys |= _required(base)
            inherited |= set(base.__annotations__)
    total = getattr(td, "__total__", True)
    for key, ann in td.__annotations__.items():
        if key in inherited:
            continue
        text = ann.__forward_arg__ if isinstance(ann, typing.ForwardRef) else ann if isinstance(ann, str) else repr(ann)
        text = text.removeprefix("typing.").removeprefix("typing_extensions.")
        if text.startswith("Required[") or (total and not text.startswith("NotRequired[")):
            keys.add(key)
    return keys


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) in _STRIP:
        tp = typing.get_args(tp)[0]
    return tp


def _literal_type(td: type) -> tuple[Any, ...] | None:
    """The values a TypedDict's ``type`` key may take, if it is a Literal."""
    hint = _hints(td)[0].get("type")
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None


def strict_errors(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where ``value`` does not fit ``tp`` with unknown keys forbidden ([] when it fits).

    Unions are tried member by member (response BaseModels in a union are skipped: a request must use
    the ``*Param`` TypedDicts, and the models accept any extra key). Primitive types are checked too;
    pydantic's validation runs besides this and catches what this simple walk treats loosely.
    """
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return []
    if tp is type(None) or tp is None:
        return [] if value is None else [f"{path}: expected null, got {value!r:.60}"]
    if origin is typing.Literal:
        return [] if value in typing.get_args(tp) else [f"{path}: {value!r:.60} not in {typing.get_args(tp)}"]
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if not _is_model(_unwrap(m))]
        if isinstance(value, dict) and isinstance(value.get("type"), str):  # pick by the discriminator
            typed = [m for m in members if typing_extensions.is_typeddict(_unwrap(m)) and
                     _literal_type(_unwrap(m)) is not None]
            matching = [m for m in typed if value["type"] in (_literal_type(_unwrap(m)) or ())]
            if typed and matching:
                members = matching + [m for m in members if m not in typed]
        best: list[str] | None = None
        for member in members:
            errors = strict_errors(value, member, path)
            if not errors:
                return []
            if best is None or _rank(errors, path) < _rank(best, path):
                best = errors
        return best or [f"{path}: no member of {tp} fits"]
    if typing_extensions.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({tp.__name__}), got {type(value).__name__}"]
        fields, required = _hints(tp)
        errors = [f"{path}.{k}: unknown key for {tp.__name__}" for k in value if k not in fields]
        errors += [f"{path}.{k}: required by {tp.__name__}" for k in required if k not in value]
        for k, v in value.items():
            if k in fields:
                errors += strict_errors(v, fields[k], f"{path}.{k}")
        return errors
    if _is_model(tp):
        return []  # not a request type (see above)
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r:.60}"]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r:.60}"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an int"]
    if tp is float:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: expected a number"]
    if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        item = typing.get_args(tp)[1] if len(typing.get_args(tp)) == 2 else Any
        return [e for k, v in value.items() for e in strict_errors(v, item, f"{path}.{k}")]
    if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Iterable):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {type(value).__name__}"]
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return [e for i, v in enumerate(value) for e in strict_errors(v, item, f"{path}[{i}]")]
    if tp in (dict, list):
        return [] if isinstance(value, tp) else [f"{path}: expected {tp.__name__}"]
    if origin is None and isinstance(tp, typing.TypeAliasType):
        return strict_errors(value, tp.__value__, path)
    raise AssertionError(f"{path}: the checker does not know the type {tp!r}")


def _rank(errors: list[str], path: str) -> tuple[bool, int]:
    """Report the union member that fit best: the one whose errors lie deeper, then the fewest."""
    return any(e.startswith(f"{path}:") for e in errors), len(errors)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _materialize(value: Any) -> Any:
    """pydantic validates an ``Iterable[...]`` field lazily (a ValidatorIterator): consume it here."""
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, collections.abc.Iterable):
        return [_materialize(v) for v in value]
    return value


# The SDK request types, streamed and not, per upstream format.
SDK_TYPES: dict[tuple[str, bool], Any] = {
    ("anthropic", True): a_params.MessageCreateParamsStreaming,
    ("anthropic", False): a_params.MessageCreateParamsNonStreaming,
    ("chat", True): c_params.CompletionCreateParamsStreaming,
    ("chat", False): c_params.CompletionCreateParamsNonStreaming,
    ("responses", True): r_params.ResponseCreateParamsStreaming,
    ("responses", False): r_params.ResponseCreateParamsNonStreaming,
}
_ADAPTERS = {key: pydantic.TypeAdapter(tp) for key, tp in SDK_TYPES.items()}

def documented_deviations(fmt: str, body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without what the bridge sends on purpose although the SDK types lack it:

    - Anthropic ``temperature``/``top_p``/``top_k``: valid under ``anthropic-version: 2023-06-01``, which
      the bridge sends (formats.md §0, §1.2); SDK 2.x types only know 2026-10-21.
    - Chat ``reasoning_content`` on an assistant message: the convention of DeepSeek/vLLM/LiteLLM
      servers (README, "reasoning output"); only ever sent back to a Chat upstream.
    - Responses assistant ``message`` items without ``id``/``status``: the SDK types require both, but
      Codex omits them when it resends history and the API accepts that (formats.md §3.2).
    - Responses ``reasoning`` items without ``id``: the bridge carries a reasoning item's
      ``encrypted_content`` (all a stateless ``store: false`` request needs), not the id of an item the
      upstream stored.
    """
    body = json.loads(json.dumps(body))
    if fmt == "anthropic":
        for key in ("temperature", "top_p", "top_k"):
            body.pop(key, None)
    elif fmt == "chat":
        for msg in body.get("messages") or ():
            if isinstance(msg, dict) and msg.get("role") == "assistant":
                msg.pop("reasoning_content", None)
    else:
        for item in body.get("input") or ():
            if isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "assistant":
                item.setdefault("id", "msg_placeholder")
                item.setdefault("status", "completed")
            elif isinstance(item, dict) and item.get("type") == "reasoning":
                item.setdefault("id", "rs_placeholder")
    return body


def check_upstream_body(fmt: str, body: dict[str, Any]) -> None:
    """The body validates against the SDK type for its format and stream flag, unknown keys forbidden."""
    stream = body.get("stream") is True
    plain = documented_deviations(fmt, body)
    errors = strict_errors(plain, SDK_TYPES[(fmt, stream)])
    assert not errors, f"{fmt} body does not fit {SDK_TYPES[(fmt, stream)].__name__}:\n" + "\n".join(errors[:20]) + \
        f"\n{json.dumps(body)[:3000]}"
    try:
        _materialize(_ADAPTERS[(fmt, stream)].validate_python(plain))
    except pydantic.ValidationError as e:
        raise AssertionError(f"{fmt} body fails pydantic validation of the SDK type:\n{str(e)[:3000]}\n"
                             f"{json.dumps(body)[:3000]}") from None


def test_strict_checker_can_fail() -> None:
    """The checker itself: an unknown key at any depth, a missing required key, a wrong literal."""
    good = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    check_upstream_body("anthropic", good)
    bad = json.loads(json.dumps(good))
    bad["messages"][0]["content"][0]["bogus"] = 1
    assert strict_errors(bad, a_params.MessageCreateParamsNonStreaming) == \
        ["$.messages[0].content[0].bogus: unknown key for TextBlockParam"]
    with pytest.raises(AssertionError):
        check_upstream_body("anthropic", bad)
    with pytest.raises(AssertionError):
        check_upstream_body("anthropic", {k: v for k, v in good.items() if k != "max_tokens"})
    with pytest.raises(AssertionError):  # an Iterable field: pydantic alone would not look inside
        check_upstream_body("chat", {"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    with pytest.raises(AssertionError):
        check_upstream_body("responses", {"model": "m", "input": [{"type": "function_call", "call_id": "c",
                                                                    "name": "f", "arguments": 1}]})


# --- one abstract conversation, written out by each kind of client ----------------------------------


@dataclass
class ToolSpec:
    name: str
    kind: str  # "function" | "custom"
    namespace: str | None = None
    description: str | None = None
    schema: dict[str, Any] | None = None

    @property
    def flat(self) -> str:  # the name a client without namespaces uses
        return self.name if self.namespace in (None, "functions") else f"{self.namespace}__{self.name}"


@dataclass
class Call:
    id: str
    tool: ToolSpec
    args: dict[str, Any] | str  # a custom tool's input is a string


@dataclass
class Turn:
    role: str  # "user" | "assistant" | "system"
    texts: list[str] = field(default_factory=list)
    media: list[tuple[str, str]] = field(default_factory=list)  # (kind, payload): image-b64/image-url/pdf/doc-text
    reasoning: tuple[str, str] | None = None  # (text, signature/encrypted_content)
    calls: list[Call] = field(default_factory=list)
    results: list[tuple[Call, str, bool, bool]] = field(default_factory=list)  # (call, text, is_error, with image)


@dataclass
class Conversation:
    model: str
    system: list[str]
    tools: list[ToolSpec]
    turns: list[Turn]
    stream: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: list[str]
    tool_choice: str | None  # auto | required | none | tool:<name>
    parallel: bool | None
    effort: str | None
    budget: int | None
    json_schema: bool
    user: str | None
    extras: bool  # client-specific fields a real client sends (cache_control, store, include, …)


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK"
_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)
_json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | _texts,
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
                            max_leaves=6)
_schema = st.fixed_dictionaries({"type": st.just("object"),
                                 "properties": st.dictionaries(_names, st.sampled_from(
                                     [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]), max_size=3)})


@st.composite
def tool_specs(draw: st.DrawFn) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    names: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["function", "function", "custom"]))
        namespace = draw(st.sampled_from([None, None, "functions", "mcp_git"]))
        name = draw(_names | st.just("mcp__github_enterprise_server__list_pull_request_review_comments_for_repo"))
        spec = ToolSpec(name=name, kind=kind, namespace=namespace, description=draw(st.none() | _texts),
                        schema=draw(_schema) if kind == "function" else None)
        if spec.flat not in names:
            names.add(spec.flat)
            tools.append(spec)
    return tools


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    tools = draw(tool_specs())
    ids = itertools.count()
    id_style = draw(st.sampled_from(["toolu_01A{}", "call_{}", "functions.exec:{}", "call-" + "x" * 45 + "{}"]))
    turns: list[Turn] = []
    pending: list[Call] = []
    for n in range(draw(st.integers(1, 6))):
        if n == 0 or pending or draw(st.booleans()):
            turn = Turn(role="user")
            for call in pending:  # every call gets its result in the next user turn
                turn.results.append((call, draw(_texts), draw(st.booleans()), draw(st.integers(0, 5)) == 0))
            pending = []
            if draw(st.booleans()) or not turn.results:
                turn.texts = draw(st.lists(_texts, min_size=1, max_size=3))
            turn.media = draw(st.lists(st.sampled_from(["image-b64", "image-url", "pdf", "doc-text"]).map(
                lambda k: (k, "")), max_size=2))
            turns.append(turn)
            if draw(st.integers(0, 6)) == 0:
                turns.append(Turn(role="system", texts=[draw(_texts)]))
            continue
        turn = Turn(role="assistant")
        if draw(st.booleans()):
            turn.reasoning = (draw(_texts), draw(st.from_regex(r"[A-Za-z0-9+/]{8,40}=?", fullmatch=True)))
        if draw(st.booleans()):
            turn.texts = [draw(_texts)]
        if tools and draw(st.booleans()):
            for tool in draw(st.lists(st.sampled_from(tools), min_size=1, max_size=3)):
                args: dict[str, Any] | str = draw(_texts) if tool.kind == "custom" else \
                    draw(st.dictionaries(_names, _json_values, max_size=3))
                turn.calls.append(Call(id=id_style.format(next(ids)), tool=tool, args=args))
            pending = list(turn.calls)
        if not (turn.texts or turn.calls or turn.reasoning):
            turn.texts = [draw(_texts)]
        turns.append(turn)
    if pending:
        turns.append(Turn(role="user", results=[(c, "done", False, False) for c in pending]))
    choice = draw(st.sampled_from([None, "auto", "required", "none", "tool"]))
    if choice == "tool":
        choice = f"tool:{draw(st.sampled_from(tools)).flat}" if tools else "auto"
    effort = draw(st.sampled_from([None, None, "minimal", "low", "medium", "high"]))
    return Conversation(
        model=draw(st.sampled_from(["claude-sonnet-4-5", "gpt-5.5", "qwen3-coder", "m"])),
        system=draw(st.lists(_texts, max_size=3)), tools=tools, turns=turns, stream=draw(st.booleans()),
        max_tokens=draw(st.none() | st.integers(1, 128_000)),
        temperature=draw(st.none() | st.floats(0, 2, allow_nan=False)), top_p=draw(st.none() | st.floats(0, 1)),
        stop=draw(st.lists(_texts, max_size=6)), tool_choice=choice, parallel=draw(st.none() | st.booleans()),
        effort=effort, budget=draw(st.none() | st.integers(1024, 64_000)) if effort is None else None,
        json_schema=draw(st.integers(0, 5)) == 0, user=draw(st.none() | _texts | st.just("u" * 150)),
        extras=draw(st.booleans()))


def _args_json(call: Call) -> str:
    return json.dumps(call.args) if isinstance(call.args, dict) else call.args


# -- Anthropic Messages, as Claude Code writes it --


def anthropic_request(conv: Conversation) -> dict[str, Any]:
    def media(kind: str) -> dict[str, Any]:
        return {"image-b64": {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                "image-url": {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                "pdf": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                       "data": PDF}, "title": "a.pdf"},
                "doc-text": {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                            "data": "plain document"}}}[kind]

    cache = {"cache_control": {"type": "ephemeral"}} if conv.extras else {}
    messages: list[dict[str, Any]] = []
    for turn in conv.turns:
        blocks: list[dict[str, Any]] = []
        if turn.role == "assistant":
            if turn.reasoning:
                blocks.append({"type": "thinking", "thinking": turn.reasoning[0], "signature": turn.reasoning[1]})
            blocks += [{"type": "text", "text": t} for t in turn.texts]
            blocks += [{"type": "tool_use", "id": c.id if c.id.replace("_", "").isalnum() else f"toolu_{n}",
                        "name": c.tool.flat, "input": c.args if isinstance(c.args, dict) else {"input": c.args}}
                       for n, c in enumerate(turn.calls)]
            messages.append({"role": "assistant", "content": blocks})
            continue
        for call, text, is_error, image in turn.results:
            content: Any = text if not image else [{"type": "text", "text": text}, media("image-b64")]
            blocks.append({"type": "tool_result", "tool_use_id": _a_id(conv, call), "content": content,
                           "is_error": is_error, **cache})
        blocks += [{"type": "text", "text": t} for t in turn.texts] + [media(k) for k, _ in turn.media]
        messages.append({"role": turn.role, "content": blocks})
    body: dict[str, Any] = {"model": conv.model, "messages": messages, "max_tokens": conv.max_tokens or 32000}
    if conv.system:
        body["system"] = [{"type": "text", "text": t, **cache} for t in conv.system]
    if conv.tools:
        body["tools"] = [{"name": t.flat, "input_schema": t.schema or {
            "type": "object", "properties": {"input": {"type": "string"}}}, **({"description": t.description}
                                                                              if t.description else {})}
                         for t in conv.tools]
    if conv.tool_choice:
        kind = {"required": "any"}.get(conv.tool_choice, conv.tool_choice)
        body["tool_choice"] = ({"type": "tool", "name": kind[5:]} if kind.startswith("tool:") else {"type": kind})
        if conv.parallel is not None and kind != "none":
            body["tool_choice"]["disable_parallel_tool_use"] = not conv.parallel
    if conv.budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": conv.budget}
    elif conv.effort:
        body["thinking"] = {"type": "adaptive"}
        body["output_config"] = {"effort": {"minimal": "low"}.get(conv.effort, conv.effort)}
    if conv.temperature is not None:
        body["temperature"] = min(conv.temperature, 1.0)
    if conv.top_p is not None:
        body["top_p"] = conv.top_p
    if conv.stop:
        body["stop_sequences"] = conv.stop
    if conv.json_schema:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": {"type": "object"}}
    if conv.user:
        body["metadata"] = {"user_id": conv.user}
    if conv.stream:
        body["stream"] = True
    if conv.extras:
        body["context_management"] = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
        body["top_k"] = 40
    return body


def _a_id(conv: Conversation, call: Call) -> str:
    """Claude Code's ids are Anthropic's; the same id as the tool_use block above."""
    for turn in conv.turns:
        for n, c in enumerate(turn.calls):
            if c is call:
                return c.id if c.id.replace("_", "").isalnum() else f"toolu_{n}"
    raise AssertionError("a result without its call")


# -- Chat Completions, as an OpenAI SDK user writes it --


def chat_request(conv: Conversation) -> dict[str, Any]:
    def media(kind: str) -> dict[str, Any]:
        return {"image-b64": {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                "image-url": {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg",
                                                                 "detail": "high"}},
                "pdf": {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}",
                                                 "filename": "a.pdf"}},
                "doc-text": {"type": "text", "text": "plain document"}}[kind]

    custom = conv.extras  # freeform tools natively, as the SDK allows, or flattened to functions
    messages: list[dict[str, Any]] = []
    if conv.system:
        messages.append({"role": "developer" if conv.extras else "system", "content": "\n".join(conv.system)})
    for turn in conv.turns:
        if turn.role == "system":
            messages.append({"role": "system", "content": turn.texts[0]})
        elif turn.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": "".join(turn.texts) or None}
            if turn.reasoning:
                msg["reasoning_content"] = turn.reasoning[0]
            if turn.calls:
                msg["tool_calls"] = [
                    {"id": c.id, "type": "custom", "custom": {"name": c.tool.flat, "input": c.args}}
                    if custom and c.tool.kind == "custom" else
                    {"id": c.id, "type": "function", "function": {"name": c.tool.flat, "arguments": _args_json(c)}}
                    for c in turn.calls]
            messages.append(msg)
        else:
            for call, text, _, _ in turn.results:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
            parts = [{"type": "text", "text": t} for t in turn.texts] + [media(k) for k, _ in turn.media]
            if parts:
                messages.append({"role": "user", "content": parts if len(parts) > 1 or conv.extras
                                 else parts[0]["text"] if parts[0]["type"] == "text" else parts})
    body: dict[str, Any] = {"model": conv.model, "messages": messages}
    if conv.tools:
        body["tools"] = [
            {"type": "custom", "custom": {"name": t.flat, **({"description": t.description} if t.description else {}),
                                          "format": {"type": "grammar", "grammar": {"syntax": "lark",
                                                                                    "definition": "start: /.+/"}}}}
            if custom and t.kind == "custom" else
            {"type": "function", "function": {"name": t.flat, "parameters": t.schema or {
                "type": "object", "properties": {"input": {"type": "string"}}},
                **({"description": t.description} if t.description else {})}}
            for t in conv.tools]
        if conv.parallel is not None:
            body["parallel_tool_calls"] = conv.parallel
    if conv.tool_choice:
        body["tool_choice"] = ({"type": "function", "function": {"name": conv.tool_choice[5:]}}
                               if conv.tool_choice.startswith("tool:") else conv.tool_choice)
    if conv.max_tokens:
        body["max_completion_tokens" if conv.extras else "max_tokens"] = conv.max_tokens
    if conv.temperature is not None:
        body["temperature"] = conv.temperature
    if conv.top_p is not None:
        body["top_p"] = conv.top_p
    if conv.stop:
        body["stop"] = conv.stop[0] if len(conv.stop) == 1 else conv.stop
    if conv.effort or conv.budget:
        body["reasoning_effort"] = conv.effort or "medium"
    if conv.json_schema:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"},
                                                                          "strict": True}}
    if conv.user:
        body["safety_identifier" if conv.extras else "user"] = conv.user
    if conv.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if conv.extras:
        body.update(seed=7, logprobs=False, frequency_penalty=0.5, n=1, store=False, prompt_cache_key="k")
    return body


# -- Responses, as Codex writes it --


def responses_request(conv: Conversation) -> dict[str, Any]:
    def media(kind: str) -> dict[str, Any]:
        return {"image-b64": {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
                "image-url": {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "low"},
                "pdf": {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
                "doc-text": {"type": "input_text", "text": "plain document"}}[kind]

    def tool_entry(t: ToolSpec) -> dict[str, Any]:
        if t.kind == "custom":
            return {"type": "custom", "name": t.name, "description": t.description or "",
                    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
        return {"type": "function", "name": t.name, "description": t.description or "", "strict": False,
                "parameters": t.schema}

    items: list[dict[str, Any]] = []
    for turn in conv.turns:
        if turn.role == "system":
            items.append({"type": "message", "role": "developer",
                          "content": [{"type": "input_text", "text": turn.texts[0]}]})
        elif turn.role == "assistant":
            if turn.reasoning:
                items.append({"type": "reasoning", "id": "rs_1", "summary": [
                    {"type": "summary_text", "text": turn.reasoning[0]}], "encrypted_content": turn.reasoning[1]})
            if turn.texts:
                items.append({"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                              "content": [{"type": "output_text", "text": "".join(turn.texts), "annotations": []}]})
            for c in turn.calls:
                ns = {"namespace": c.tool.namespace} if c.tool.namespace else {}
                items.append({"type": "custom_tool_call", "call_id": c.id, "name": c.tool.name, "input": c.args, **ns}
                             if c.tool.kind == "custom" else
                             {"type": "function_call", "call_id": c.id, "name": c.tool.name,
                              "arguments": _args_json(c), **ns})
        else:
            for call, text, _, image in turn.results:
                output: Any = [{"type": "input_text", "text": text}, media("image-b64")] if image else text
                items.append({"type": "custom_tool_call_output" if call.tool.kind == "custom"
                              else "function_call_output", "call_id": call.id, "output": output})
            parts = [{"type": "input_text", "text": t} for t in turn.texts] + [media(k) for k, _ in turn.media]
            if parts:
                items.append({"type": "message", "role": "user", "content": parts} if conv.extras
                             else {"role": "user", "content": parts})  # an "easy" message has no type
    flat = [t for t in conv.tools if t.namespace is None]
    spaces: dict[str, list[ToolSpec]] = {}
    for t in conv.tools:
        if t.namespace:
            spaces.setdefault(t.namespace, []).append(t)
    namespaces = [{"type": "namespace", "name": ns, "description": "", "tools": [tool_entry(t) for t in ts]}
                  for ns, ts in spaces.items()]
    body: dict[str, Any] = {"model": conv.model, "input": items, "store": False}
    if conv.system:
        body["instructions"] = "\n".join(conv.system)
    if namespaces and conv.extras:  # the Codex default model announces them in an input item
        items.insert(0, {"type": "additional_tools", "role": "developer", "tools": namespaces})
        namespaces = []
    tools = [tool_entry(t) for t in flat] + namespaces
    if conv.extras:
        tools.append({"type": "web_search"})
    if tools:
        body["tools"] = tools
    if conv.tools and conv.parallel is not None:
        body["parallel_tool_calls"] = conv.parallel
    if conv.tool_choice:
        if conv.tool_choice.startswith("tool:"):
            tool = next(t for t in conv.tools if t.flat == conv.tool_choice[5:])
            body["tool_choice"] = {"type": tool.kind, "name": tool.name}
        else:
            body["tool_choice"] = conv.tool_choice
    if conv.max_tokens:
        body["max_output_tokens"] = conv.max_tokens
    if conv.temperature is not None:
        body["temperature"] = conv.temperature
    if conv.top_p is not None:
        body["top_p"] = conv.top_p
    if conv.effort or conv.budget:
        body["reasoning"] = {"effort": conv.effort or "medium", "summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
    if conv.json_schema:
        body["text"] = {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}}
    if conv.user:
        body["safety_identifier"] = conv.user
    if conv.stream:
        body["stream"] = True
    if conv.extras:
        body.setdefault("text", {})["verbosity"] = "low"
        body.update(prompt_cache_key="k", client_metadata={"session_id": "s"})
    return body


WRITERS = {"anthropic": anthropic_request, "chat": chat_request, "responses": responses_request}
TARGETS = [("anthropic", None), ("chat", None), ("responses", None), ("responses", "codex")]


def translate_everywhere(client: str, body: dict[str, Any], validate: bool = True) -> None:
    """Translate toward every target; the input may be refused with a 4xx, any other exception is a
    crash. With ``validate``, each translation must validate against the target's SDK type."""
    for upstream, flavor in TARGETS:
        try:
            _, wire = translate.Exchange.start(FORMATS[client], FORMATS[upstream], json.dumps(body).encode(),
                                               make_ctx(flavor))
        except BridgeError as e:
            assert 400 <= e.status < 500, f"{client} → {upstream}: a refusal must be a 4xx, got {e.status}: {e}"
            RUNS[f"{'request' if validate else 'mutated request'} refused with {e.status}"] += 1
            continue
        if validate:
            check_upstream_body(upstream, json.loads(wire))
            RUNS["request translated and valid"] += 1
        else:
            assert isinstance(json.loads(wire), dict)
            RUNS["mutated request translated"] += 1


REQUEST_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("client", list(WRITERS))
@REQUEST_SETTINGS
@given(conv=conversations())
def test_translated_requests_validate_against_the_sdk_types(client: str, conv: Conversation) -> None:
    translate_everywhere(client, WRITERS[client](conv))


def _mutate(body: Any, draw: st.DrawFn) -> Any:
    """One value somewhere in the body replaced by a value of another JSON type (or a bad value);
    often one near the top (a field or an item of one), where a single wrong type does most."""
    paths: list[tuple[Any, Any, int]] = []

    def walk(x: Any, depth: int) -> None:
        if isinstance(x, dict):
            paths.extend((x, k, depth) for k in x)
            for v in x.values():
                walk(v, depth + 1)
        elif isinstance(x, list):
            paths.extend((x, i, depth) for i in range(len(x)))
            for v in x:
                walk(v, depth + 1)

    walk(body, 0)
    where = draw(st.sampled_from([0, 2, 99]))  # a top-level field, one near the top, anywhere
    container, key, _ = draw(st.sampled_from([p for p in paths if p[2] <= where] or paths))
    container[key] = draw(st.sampled_from([None, 0, -1, 1.5, True, "", "x", [], {}, [1], {"type": "bogus"},
                                           {"a": 1}]))
    return body


@pytest.mark.parametrize("client", list(WRITERS))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv=conversations(), data=st.data())
def test_mutated_requests_are_translated_or_refused_cleanly(client: str, conv: Conversation,
                                                            data: st.DataObject) -> None:
    body = json.loads(json.dumps(WRITERS[client](conv)))  # a copy: the writers share dicts with conv
    for _ in range(data.draw(st.integers(1, 3))):
        body = _mutate(body, data.draw)
    # A client's invalid value (say an image detail "x") may go on to the upstream, which refuses it
    # in its own words: only a crash is a failure here, not an invalid translation.
    translate_everywhere(client, body, validate=False)


# --- (b) upstream streams: random splits and faults --------------------------------------------------

_SPLIT_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@st.composite
def replies(draw: st.DrawFn) -> mu.Reply:
    calls = [mu.ToolCallSpec(id=f"call_{n}", name="apply_patch", arguments=draw(_SPLIT_TEXT), kind="custom")
             if draw(st.integers(0, 3)) == 0 else
             mu.ToolCallSpec(id=f"call_{n}", name=draw(st.sampled_from(["get_time", "exec", "Bash"])),
                             arguments=draw(st.dictionaries(_names, _json_values, max_size=3)))
             for n in range(draw(st.integers(0, 2)))]
    text = draw(st.none() | _SPLIT_TEXT)
    if text is None and not calls:
        text = draw(_SPLIT_TEXT)
    return mu.Reply(text=text, reasoning=draw(st.none() | _SPLIT_TEXT), tool_calls=calls,
                    stop=draw(st.sampled_from([None, "end_turn", "max_tokens", "stop_sequence"])),
                    piece=draw(st.integers(1, 6)), signature=draw(st.sampled_from(["sig-1", "c2lnbmF0dXJl"])),
                    redacted=draw(st.none() | st.just("cmVkYWN0ZWQ=")))  # rendered by the Anthropic mock only


def _cuts(raw: bytes) -> st.SearchStrategy[list[int]]:
    """Cut points biased toward the inside of UTF-8 characters and of data: lines, like
    ``test_stream_split.cuts_for``, which needs both to occur (a generated stream may be ASCII)."""
    inside_chars = [i for i, b in enumerate(raw) if 0x80 <= b < 0xC0]
    inside_data = [i + 3 for i in range(len(raw)) if raw.startswith(b"data:", i)]
    points = [st.integers(0, len(raw))] + [st.sampled_from(p) for p in (inside_chars, inside_data) if p]
    return st.lists(st.one_of(points), max_size=25)


def upstream_events(fmt: str, reply: mu.Reply) -> list[bytes]:
    if fmt == "anthropic":
        return mu.anthropic_events(reply)
    if fmt == "chat":
        return mu.chat_events(reply, include_usage=True)
    return mu.responses_events(reply, {"stream": True})


FAULTS = ["none", "cut", "garbage", "error_event", "early_done", "no_terminal", "bad_utf8"]
_FUNCTIONS = ["get_time", "exec", "Bash"]
_OBJECT = {"type": "object", "properties": {}}
_INPUT = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
CLIENT_BODY = {  # each client offers the tools the generated replies call (apply_patch: freeform where it can be)
    "anthropic": {"model": "claude-client", "max_tokens": 1000, "stream": True,
                  "messages": [{"role": "user", "content": "hi"}],
                  "tools": [{"name": n, "input_schema": _OBJECT} for n in _FUNCTIONS]
                  + [{"name": "apply_patch", "input_schema": _INPUT}]},
    "chat": {"model": "gpt-client", "stream": True, "stream_options": {"include_usage": True},
             "messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": n, "parameters": _OBJECT}} for n in _FUNCTIONS]},
    "responses": {"model": "gpt-client", "stream": True, "input": "hi",
                  "tools": [{"type": "function", "name": n, "parameters": _OBJECT, "strict": False}
                            for n in _FUNCTIONS] + [{"type": "custom", "name": "apply_patch"}]},
}
CHECKERS = {"anthropic": check_anthropic_stream, "chat": check_chat_stream, "responses": check_responses_stream}


# How many events at the end of each upstream stream finish it: Anthropic message_delta (the stop
# reason; the bridge accepts a stream that has it but lacks message_stop: nothing is lost) and
# message_stop; Chat the finish_reason chunk, the usage chunk and [DONE]; Responses
# response.completed/incomplete. Faults go before these.
TERMINAL = {"anthropic": 2, "chat": 3, "responses": 1}


def faulty(fmt: str, events: list[bytes], fault: str, at: int) -> bytes:
    """The upstream bytes with one fault, always before the stream's terminal events; ``at`` picks where."""
    body = events[:-TERMINAL[fmt]]  # never empty: every stream has a start event first
    at = at % len(body)
    match fault:
        case "none":
            return b"".join(events)
        case "cut":  # the body stops anywhere before the terminal event, maybe mid-event
            raw = b"".join(body)
            return raw[:at * len(raw) // len(body) + 1]
        case "garbage":
            return b"".join(body[:at]) + b"data: {not json\n\n" + b"".join(events[at:])
        case "bad_utf8":
            return b"".join(body[:at]) + b"data: \xff\xfe{}\n\n" + b"".join(events[at:])
        case "error_event":
            reply = mu.Reply(error_message="overloaded right now", error_type="overloaded_error"
                             if fmt == "anthropic" else "server_is_overloaded")
            return b"".join(body[:at]) + mu.stream_error_event(fmt, reply, at)
        case "early_done":
            return b"".join(body[:at]) + b"data: [DONE]\n\n"
        case "no_terminal":  # a clean end of the body before the format's terminal event
            return b"".join(body)
    raise AssertionError(fault)


def _is_clean_stop(client: str, raw: bytes) -> bool:
    events = CHECKERS[client](raw)
    if client == "anthropic":
        return events[-1][0] == "message_stop"
    if client == "chat":
        return "error" not in events[-1]
    return events[-1]["type"] != "response.failed"


STREAM_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("upstream", list(FORMATS))
@STREAM_SETTINGS
@given(reply=replies(), fault=st.sampled_from(FAULTS), at=st.integers(0, 10_000), data=st.data())
def test_any_split_and_fault_keeps_every_client_grammar(upstream: str, reply: mu.Reply, fault: str, at: int,
                                                        data: st.DataObject) -> None:
    raw = faulty(upstream, upstream_events(upstream, reply), fault, at)
    cuts = data.draw(_cuts(raw))
    freeform = any(c.kind == "custom" for c in reply.tool_calls)
    for client in FORMATS:
        if client == "chat" and freeform:
            # A Chat client gets a freeform call as a native "custom" tool call only if it offered a
            # custom tool; check_chat_stream (like the SDK's ChoiceDeltaToolCall) knows only
            # "function" deltas, so that case is not checked here.
            continue
        exchange, _ = translate.Exchange.start(FORMATS[client], FORMATS[upstream],
                                               json.dumps(CLIENT_BODY[client]).encode(), make_ctx())
        translator = exchange.stream()
        out: list[bytes] = []
        for chunk in split_at(raw, cuts):
            got = translator.feed(chunk)
            assert isinstance(got, list) and b"" not in got
            out += got
        out += translator.close()
        client_raw = b"".join(out)
        clean = _is_clean_stop(client, client_raw)  # also asserts the grammar
        if fault == "none":
            assert clean, f"{upstream} → {client}: a valid stream did not end cleanly:\n{client_raw.decode()[-600:]}"
            assert translator.failed is None
        else:
            assert not clean, f"{upstream} → {client}: fault {fault!r} at {at} ended with a clean stop:\n" \
                              f"{client_raw.decode()[-600:]}"
            assert translator.failed is not None
        RUNS[f"stream {'clean' if clean else 'error'}"] += 1


def test_print_example_counts() -> None:
    """Runs last in this file (pytest keeps file order): what the property tests above exercised."""
    print("\nproperty test cases:", dict(RUNS))
