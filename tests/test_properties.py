"""Property tests (issue 5): random requests and random upstream streams, with and without faults.

(a) Requests. One abstract conversation (system text, mid-conversation system text, text, images,
documents, tools incl. freeform and namespaced ones, tool calls and their results, reasoning with
signatures, sampling, output limits, structured output, stream flag) is written out the way each kind
of client writes it (Claude Code → Messages, an OpenAI SDK user → Chat, Codex → Responses, Gemini CLI or
google-genai → Gemini; see ``client-shapes/``), with random client-specific extras. Each is translated by
``Exchange.start`` toward every format (Responses also with the Codex flavor, Gemini for a Gemini 3 and a
Gemini 2.5 model), and the upstream body must validate against the target SDK's request TypedDict: once
with pydantic's ``TypeAdapter`` (types, required keys, literals), once with :func:`strict_errors` (no key
the TypedDict does not declare, at any depth). google-genai has no type for a whole request: a Gemini body
is checked piece by piece against its pydantic types (which forbid unknown keys), for camelCase names, and
against ``mock_upstream.gemini_refusal``, what the real API refuses (:func:`check_gemini_body`). A mutated
request (a field of the wrong type) may be rejected, but only with a 4xx :class:`BridgeError`: any other
exception is a crash.

What the SDK types cannot check, and so is not checked here: value ranges (temperature 0–1 for
Anthropic), string formats (ids, base64, URLs), ``min_length``/``max_length`` constraints, and
cross-field rules (``budget_tokens < max_tokens``; tool_use followed by tool_result). Deviations from
the SDK types that are documented and deliberate are removed before checking
(:func:`documented_deviations`). Unknown keys are forbidden by :func:`strict_errors`, not by pydantic:
pydantic cannot be told to forbid them in the SDK's TypedDicts without changing those classes, and
the SDK's unions also admit response BaseModels, which accept any key.

(b) Streams. Valid upstream event sequences (built by ``tests.mock_upstream``'s renderers from a
random :class:`Reply`) are split at random byte positions, optionally with a fault injected, and
fed through :class:`StreamTranslator` for every client format (a Gemini client in either framing);
every client stream must obey its grammar (``tests.stream_grammar``), and after a fault it must end with
the client's error event, never with a clean stop; without one, the client rebuilds the reply's whole text
and every call. Not checked: a freeform call toward a Chat client (sent as a native ``custom`` tool call,
which ``check_chat_stream`` and the SDK's ``ChoiceDeltaToolCall`` do not know); reasoning (the mocks
render it differently per format).

Examples per run are printed with ``-s`` (``--hypothesis-show-statistics`` gives hypothesis' own).
"""

from __future__ import annotations

import base64
import collections.abc
import dataclasses
import functools
import itertools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx2
import pydantic
import pytest
import typing_extensions
from anthropic.types import message_create_params as a_params
from google import genai
from google.genai import types as gtypes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import completion_create_params as c_params
from openai.types.responses import response_create_params as r_params

from addon import translate
from addon.errors import BridgeError
from addon.formats import Operation
from addon.formats import anthropic as A
from addon.formats import chat as C
from addon.formats import gemini as G
from addon.formats import responses as R
from addon.formats.common import Context
from tests import mock_upstream as mu
from tests.stream_grammar import fold_anthropic, fold_chat, fold_gemini
from tests.test_stream_split import check_client_stream, split_at

FORMATS: dict[str, ModuleType] = {"anthropic": A, "chat": C, "responses": R, "gemini": G}
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


# google-genai 3.3.0's types for the pieces of a GenerateContentRequest (the SDK has no type for the request
# itself: its converters build it from GenerateContentConfig). Its BaseModel forbids unknown keys and reads
# bytes as base64 (``_common.BaseModel``).
GEMINI_PIECES: dict[str, Any] = {"contents": list[gtypes.Content], "systemInstruction": gtypes.Content,
                                 "tools": list[gtypes.Tool], "toolConfig": gtypes.ToolConfig,
                                 "generationConfig": gtypes.GenerationConfig}
_GEMINI_ADAPTERS = {key: pydantic.TypeAdapter(tp) for key, tp in GEMINI_PIECES.items()}
_FREE_JSON = {"args", "response", "parametersJsonSchema", "responseJsonSchema"}  # taken verbatim (gemini.md §2.2)


def check_gemini_body(body: dict[str, Any], model: str) -> None:
    """A GenerateContentRequest: only the fields the bridge renders (gemini.md §2.1; no ``model``, no ``stream``:
    they are in the path), each validating against google-genai's type with unknown keys forbidden, camelCase
    names (§2.2: emit camelCase), and nothing the real API refuses for ``model`` (``mu.gemini_refusal``: parse
    errors, empty parts, response/call counts and names, tool names, the signatures of the current turn, §5.2)."""
    assert set(body) <= set(GEMINI_PIECES) and "contents" in body, f"gemini body fields: {sorted(body)}"
    for key, value in body.items():
        try:
            _GEMINI_ADAPTERS[key].validate_json(json.dumps(value))
        except pydantic.ValidationError as e:
            raise AssertionError(f"gemini {key} fails google-genai's type:\n{str(e)[:3000]}\n"
                                 f"{json.dumps(body)[:3000]}") from None
    snake = [path for path in _keys(body) if "_" in path[-1]]
    assert not snake, f"gemini body has snake_case names: {snake[:5]}"
    refusal = mu.gemini_refusal(json.loads(json.dumps(body)), model)
    assert refusal is None, f"the Gemini API would refuse this body: {refusal}\n{json.dumps(body)[:3000]}"


def _keys(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The key paths of a Gemini body, not entering free JSON (call arguments, results, JSON Schemas)."""
    if isinstance(value, list):
        return [p for v in value for p in _keys(v, path)]
    if not isinstance(value, dict):
        return []
    return [p for k, v in value.items() for p in [(*path, k), *([] if k in _FREE_JSON else _keys(v, (*path, k)))]]


def check_upstream_body(fmt: str, body: dict[str, Any], model: str | None = None) -> None:
    """The body validates against the SDK type for its format and stream flag, unknown keys forbidden."""
    if fmt == "gemini":
        check_gemini_body(body, model or "gemini-3-pro-preview")
        return
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
    gemini = {"contents": [{"role": "user", "parts": [{"text": "x"}]},
                           {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a_b": 1}},
                                                        "thoughtSignature": "c2ln"}]},
                           {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}],
              "generationConfig": {"maxOutputTokens": 5}}
    check_upstream_body("gemini", gemini)
    mutations: list[Callable[[dict[str, Any]], Any]] = [
        lambda b: b["contents"][0]["parts"][0].update(bogus=1),  # an unknown key
        lambda b: b.update(generationConfig={"max_output_tokens": 5}),  # valid snake_case, but not what is emitted
        lambda b: b["contents"][1]["parts"][0].update(thoughtSignature="not base64!"),
        lambda b: b["contents"][2]["parts"].append(b["contents"][2]["parts"][0]),  # two responses to one call
        lambda b: b.update(stream=True),  # the stream flag is in the path
    ]
    for mutate in mutations:
        bad = json.loads(json.dumps(gemini))
        mutate(bad)
        with pytest.raises(AssertionError):
            check_upstream_body("gemini", bad)


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
            blocks += [{"type": "tool_use", "id": _a_id(conv, c),
                        "name": c.tool.flat, "input": c.args if isinstance(c.args, dict) else {"input": c.args}}
                       for c in turn.calls]
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
    """Claude Code's ids are Anthropic's, unique in the conversation (the API refuses a repeated one); the same
    id for the tool_use block and its result."""
    for t, turn in enumerate(conv.turns):
        for n, c in enumerate(turn.calls):
            if c is call:
                return c.id if c.id.replace("_", "").isalnum() else f"toolu_{t}_{n}"
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


# -- Gemini, as Gemini CLI writes it, or (with extras) as google-genai 3.3.0 sends it --


def gemini_request(conv: Conversation) -> dict[str, Any]:
    """Gemini CLI 0.61 (gemini.md §2.8, §8): camelCase, ids it made on its calls and their responses, thought
    parts dropped from history and the signature kept on the part after them, ``parametersJsonSchema``. With
    ``conv.extras``, google-genai's own body for the same request (:func:`sdk_body`): snake_case below the top
    level, URL-safe base64, ``topK`` a float, thought parts resent, no call ids (the API gives none, §6.1),
    OpenAPI ``parameters``, a built-in tool and safety settings. The model and stream flag are in the path
    (:func:`client_op`). Gemini has no mid-conversation system text: it is a user content of its own."""
    sdk = conv.extras

    def media(kind: str) -> dict[str, Any]:
        return {"image-b64": {"inlineData": {"mimeType": "image/png", "data": PNG}},
                "image-url": {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a.jpg"}},
                "pdf": {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
                "doc-text": {"inlineData": {"mimeType": "text/plain",
                                            "data": base64.b64encode(b"plain document").decode()}}}[kind]

    def call_id(call: Call) -> dict[str, str]:
        return {} if sdk else {"id": call.id}

    contents: list[dict[str, Any]] = []
    for turn in conv.turns:
        if turn.role == "system":
            contents.append({"role": "user", "parts": [{"text": turn.texts[0]}]})
        elif turn.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": t} for t in turn.texts]
            parts += [{"functionCall": {**call_id(c), "name": c.tool.flat,
                                        "args": {"input": c.args} if isinstance(c.args, str) else c.args}}
                      for c in turn.calls]
            if turn.reasoning:
                text, signature = turn.reasoning[0], base64.b64encode(turn.reasoning[1].encode()).decode()
                signed = next((p for p in parts if "functionCall" in p), parts[-1] if parts else None)
                if sdk:
                    parts.insert(0, {"text": text, "thought": True})
                if signed is None:  # nothing after the thoughts: the API's empty last part carries it (§4.3)
                    signed = {"text": ""}
                    parts.append(signed)
                signed["thoughtSignature"] = signature
            contents.append({"role": "model", "parts": parts})
        else:
            parts = []
            for call, text, is_error, image in turn.results:
                response: dict[str, Any] = {**call_id(call), "name": call.tool.flat,
                                            "response": {"error" if is_error else "output": text}}
                if image:  # media in a result: functionResponse.parts (Gemini 3, §6.3)
                    response["parts"] = [media("image-b64")]
                parts.append({"functionResponse": response})
            parts += [{"text": t} for t in turn.texts] + [media(k) for k, _ in turn.media]
            contents.append({"role": "user", "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if conv.system:
        body["systemInstruction"] = {"role": "user", "parts": [{"text": t} for t in conv.system]}
    if conv.tools:
        declarations = []
        for t in conv.tools:
            schema = t.schema or {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
            declarations.append({"name": t.flat, **({"description": t.description} if t.description else {}),
                                 **({"parameters": _openapi(schema)} if sdk else {"parametersJsonSchema": schema})})
        body["tools"] = [{"functionDeclarations": declarations}] + ([{"googleSearch": {}}] if sdk else [])
    if conv.tool_choice:
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(conv.tool_choice, "ANY")
        calling: dict[str, Any] = {"mode": mode}
        if conv.tool_choice.startswith("tool:"):
            calling["allowedFunctionNames"] = [conv.tool_choice[5:]]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config: dict[str, Any] = {}
    if conv.max_tokens:
        config["maxOutputTokens"] = conv.max_tokens
    if conv.temperature is not None:
        config["temperature"] = conv.temperature
    if conv.top_p is not None:
        config["topP"] = conv.top_p
    if conv.stop:
        config["stopSequences"] = conv.stop
    if conv.effort:
        config["thinkingConfig"] = {"includeThoughts": True, "thinkingLevel": conv.effort.upper()}
    elif conv.budget:
        config["thinkingConfig"] = {"includeThoughts": True, "thinkingBudget": conv.budget}
    if conv.json_schema:
        config["responseMimeType"] = "application/json"
        config["responseSchema" if sdk else "responseJsonSchema"] = {"type": "OBJECT" if sdk else "object"}
    if sdk:
        config.update(topK=40, candidateCount=1, seed=7, presencePenalty=0.5)
        body["safetySettings"] = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    if config:
        body["generationConfig"] = config
    return sdk_body(body) if sdk else body


def _openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's OpenAPI-subset ``parameters`` (gemini.md §6.5): upper-case type names."""
    out = {k: v for k, v in schema.items() if k not in ("type", "properties")}
    if "type" in schema:
        out["type"] = schema["type"].upper()
    if "properties" in schema:
        out["properties"] = {k: _openapi(v) for k, v in schema["properties"].items()}
    return out


def sdk_body(body: dict[str, Any]) -> dict[str, Any]:
    """What google-genai 3.3.0 sends for ``body`` (a camelCase GenerateContentRequest), given to its own types and
    captured at its HTTP transport: the Python SDK's wire shape, whatever its converters do (gemini.md §2.2)."""
    config = {**body.get("generationConfig", {}), **{k: body[k] for k in ("systemInstruction", "tools", "toolConfig",
                                                                             "safetySettings") if k in body}}
    config["automaticFunctionCalling"] = {"disable": True}
    client, sent = _sdk_client()
    sent.clear()
    client.models.generate_content(
        model="m", contents=[gtypes.Content.model_validate_json(json.dumps(c)) for c in body["contents"]],
        config=gtypes.GenerateContentConfig.model_validate_json(json.dumps(config)))
    wire = json.loads(sent[0].content)
    assert isinstance(wire, dict)
    return wire


@functools.cache
def _sdk_client() -> tuple[genai.Client, list[httpx2.Request]]:
    """One google-genai client for every example (making one costs more than a request), and what it sent."""
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP",
                                  "index": 0}], "modelVersion": "m", "responseId": "r"}
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=json.dumps(answer).encode())

    client = genai.Client(api_key="k", http_options=gtypes.HttpOptions(
        base_url="http://test", httpx_client=httpx2.Client(transport=httpx2.MockTransport(handler))))
    return client, sent


WRITERS = {"anthropic": anthropic_request, "chat": chat_request, "responses": responses_request,
           "gemini": gemini_request}
# (format, flavor, the model the upstream is asked for: a Gemini upstream's rules differ by generation, §7, §9.7)
TARGETS = [("anthropic", None, None), ("chat", None, None), ("responses", None, None), ("responses", "codex", None),
           ("gemini", None, "gemini-3-pro-preview"), ("gemini", None, "gemini-2.5-flash")]


def client_op(client: str, conv: Conversation) -> Operation | None:
    """What the request's path says, for a format that puts the model and the stream flag there (Gemini)."""
    return Operation("gemini", "generate", model=conv.model, stream=conv.stream) if client == "gemini" else None


def calls_and_results(fmt: str, body: dict[str, Any]) -> tuple[int, int]:
    """How many tool calls and tool results a request body holds, in the words of its format."""
    if fmt == "anthropic":
        blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
        return (sum(b["type"] == "tool_use" for b in blocks), sum(b["type"] == "tool_result" for b in blocks))
    if fmt == "chat":
        return (sum(len(m.get("tool_calls") or ()) for m in body["messages"]),
                sum(m["role"] == "tool" for m in body["messages"]))
    if fmt == "gemini":
        parts = [p for c in body["contents"] for p in c["parts"]]
        return sum("functionCall" in p for p in parts), sum("functionResponse" in p for p in parts)
    items = body["input"] if isinstance(body["input"], list) else []
    return (sum(i.get("type") in ("function_call", "custom_tool_call") for i in items),
            sum(i.get("type") in ("function_call_output", "custom_tool_call_output") for i in items))


def translate_everywhere(client: str, body: dict[str, Any], validate: bool = True,
                         op: Operation | None = None, conv: Conversation | None = None) -> None:
    """Translate toward every target; the input may be refused with a 4xx, any other exception is a
    crash. With ``validate``, each translation must validate against the target's SDK type and, given the
    ``conv`` it was written from, hold every call and every result."""
    for upstream, flavor, model in TARGETS:
        try:
            _, wire = translate.Exchange.start(FORMATS[client], FORMATS[upstream], json.dumps(body).encode(),
                                               make_ctx(flavor), upstream_model=model, op=op)
        except BridgeError as e:
            assert 400 <= e.status < 500, f"{client} → {upstream}: a refusal must be a 4xx, got {e.status}: {e}"
            RUNS[f"{'request' if validate else 'mutated request'} refused with {e.status}"] += 1
            continue
        if validate:
            check_upstream_body(upstream, json.loads(wire), model)
            if conv is not None:
                expected = (sum(len(t.calls) for t in conv.turns), sum(len(t.results) for t in conv.turns))
                assert calls_and_results(upstream, json.loads(wire)) == expected, f"{client} → {upstream}: calls lost"
            RUNS["request translated and valid"] += 1
        else:
            assert isinstance(json.loads(wire), dict)
            RUNS["mutated request translated"] += 1


REQUEST_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("client", list(WRITERS))
@REQUEST_SETTINGS
@given(conv=conversations())
def test_translated_requests_validate_against_the_sdk_types(client: str, conv: Conversation) -> None:
    translate_everywhere(client, WRITERS[client](conv), op=client_op(client, conv), conv=conv)


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
    translate_everywhere(client, body, validate=False, op=client_op(client, conv))


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


@dataclasses.dataclass(frozen=True)
class GeminiShape:
    """How a Gemini upstream streams a reply: thought parts or not (only when asked for, as the API does), the
    signature on the last thought part rather than the part after it (both occur, gemini.md §7), and which chunks
    go with the one before (the API puts parts in chunks as it likes; a call and the finishReason may come with
    text, §4.3)."""

    thoughts: bool = False
    signed_thought: bool = False
    joins: tuple[bool, ...] = ()


gemini_shapes = st.builds(GeminiShape, st.booleans(), st.booleans(), st.lists(st.booleans(), max_size=12).map(tuple))


def upstream_events(fmt: str, reply: mu.Reply, shape: GeminiShape = GeminiShape()) -> list[bytes]:
    if fmt == "anthropic":
        return mu.anthropic_events(reply)
    if fmt == "chat":
        return mu.chat_events(reply, include_usage=True)
    if fmt == "gemini":
        chunks = mu.gemini_chunks(reply, {"generationConfig": {"thinkingConfig": {"includeThoughts": shape.thoughts}}})
        parts = [p for c in chunks for cand in c.get("candidates", ())[:1] for p in cand["content"]["parts"]]
        thought = [p for p in parts if p.get("thought")]
        signed = [p for p in parts if "thoughtSignature" in p]
        if shape.signed_thought and thought and signed:
            thought[-1]["thoughtSignature"] = signed[0].pop("thoughtSignature")
        return mu.gemini_events(_regrouped(chunks, shape.joins), sse=True)
    return mu.responses_events(reply, {"stream": True})


def _regrouped(chunks: list[dict[str, Any]], joins: tuple[bool, ...]) -> list[dict[str, Any]]:
    """Each chunk k with ``joins[k]`` merged into the one before (its parts after that one's, its usage and finish
    reason kept); a stream of two chunks or more keeps two, so that a fault has a place before the last."""
    out = chunks[:1]
    for k, chunk in enumerate(chunks[1:], 1):
        last = k == len(chunks) - 1
        if k < len(joins) and joins[k] and "candidates" in out[-1] and (not last or len(out) > 1):
            candidate = chunk["candidates"][0]
            parts = out[-1]["candidates"][0]["content"]["parts"] + candidate["content"]["parts"]
            out[-1] = {**chunk, "candidates": [{**candidate, "content": {**candidate["content"], "parts": parts}}]}
        else:
            out.append(chunk)
    return out


FAULTS = ["none", "cut", "garbage", "error_event", "json_tail", "early_done", "no_terminal", "bad_utf8"]
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
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],  # model and stream: in the path
               "tools": [{"functionDeclarations": [{"name": n, "parametersJsonSchema": _OBJECT} for n in _FUNCTIONS]
                          + [{"name": "apply_patch", "parametersJsonSchema": _INPUT}]}]},
}


# How many events at the end of each upstream stream finish it: Anthropic message_delta (the stop
# reason; the bridge accepts a stream that has it but lacks message_stop: nothing is lost) and
# message_stop; Chat the finish_reason chunk, the usage chunk and [DONE]; Responses
# response.completed/incomplete; Gemini the chunk with the finishReason. Faults go before these.
TERMINAL = {"anthropic": 2, "chat": 3, "responses": 1, "gemini": 1}
# The raw JSON error a failed Gemini stream may end with, after its last event (gemini.md §4.6)
JSON_TAIL = json.dumps(mu.gemini_error(503, "overloaded right now", "UNAVAILABLE"), indent=2).encode() + b"\n"


def faulty(fmt: str, events: list[bytes], fault: str, at: int) -> bytes:
    """The upstream bytes with one fault, always before the stream's terminal events; ``at`` picks where."""
    if fault == "none":
        return b"".join(events)
    body = events[:-TERMINAL[fmt]]  # never empty: every stream has a start event first
    at = at % len(body)
    match fault:
        case "cut":  # the body stops anywhere before the terminal event, maybe mid-event
            raw = b"".join(body)
            return raw[:at * len(raw) // len(body) + 1]
        case "garbage":
            return b"".join(body[:at]) + b"data: {not json\n\n" + b"".join(events[at:])
        case "bad_utf8":
            return b"".join(body[:at]) + b"data: \xff\xfe{}\n\n" + b"".join(events[at:])
        case "error_event":
            kind = {"anthropic": "overloaded_error", "gemini": "UNAVAILABLE"}.get(fmt, "server_is_overloaded")
            reply = mu.Reply(error_message="overloaded right now", error_type=kind)
            return b"".join(body[:at]) + mu.stream_error_event(fmt, reply, at)
        case "json_tail":  # a raw JSON error after an event, and nothing more
            return b"".join(body[:at]) + JSON_TAIL
        case "early_done":
            return b"".join(body[:at]) + b"data: [DONE]\n\n"
        case "no_terminal":  # a clean end of the body before the format's terminal event
            return b"".join(body)
    raise AssertionError(fault)


def _is_clean_stop(client: str, raw: bytes, framing: str = "sse") -> bool:
    events = check_client_stream(client, raw, framing)
    if client == "anthropic":
        return events[-1][0] == "message_stop"
    if client in ("chat", "gemini"):
        return "error" not in events[-1]
    return events[-1]["type"] != "response.failed"


def client_answer(client: str, raw: bytes, framing: str = "sse") -> tuple[str, list[tuple[str, Any]]]:
    """The text and the calls (name, arguments as a value) a client rebuilds from its stream."""
    events = check_client_stream(client, raw, framing)
    if client == "anthropic":
        blocks = fold_anthropic(events)["content"]
        return ("".join(b["text"] for b in blocks if b["type"] == "text"),
                [(b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"])
    if client == "chat":
        final = fold_chat(events)
        return final["content"], [(c["name"], json.loads(c["arguments"])) for c in final["tool_calls"]]
    if client == "gemini":
        folded = fold_gemini(events)
        return folded["text"], [(c["name"], c["args"]) for c in folded["function_calls"]]
    output = events[-1]["response"]["output"]
    return ("".join(c["text"] for item in output if item["type"] == "message" for c in item["content"]),
            [(i["name"], json.loads(i["arguments"]) if i["type"] == "function_call" else i["input"])
             for i in output if i["type"] in ("function_call", "custom_tool_call")])


def expected_answer(client: str, reply: mu.Reply) -> tuple[str, list[tuple[str, Any]]]:
    """What ``reply`` is to ``client``: a freeform call is raw input to a Responses client (which offered a
    custom tool), ``{"input": …}`` to the others (a function of one string: formats.md §5.3)."""
    calls = [(c.name, c.arguments if c.kind == "function" or client == "responses" else {"input": c.arguments})
             for c in reply.tool_calls]
    return reply.text or "", calls


STREAM_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("upstream", list(FORMATS))
@STREAM_SETTINGS
@given(reply=replies(), fault=st.sampled_from(FAULTS), at=st.integers(0, 10_000), data=st.data())
def test_any_split_and_fault_keeps_every_client_grammar(upstream: str, reply: mu.Reply, fault: str, at: int,
                                                        data: st.DataObject) -> None:
    """Every client, after a fault, ends with its error event; without one, it ends cleanly and has the whole
    text and every call. A Gemini upstream: calls with or without ids, thought parts or not, parts grouped in
    chunks at random (:class:`GeminiShape`), and (without a fault) maybe a blocked prompt; a Gemini client in
    either framing."""
    shape = GeminiShape()
    if upstream == "gemini":
        blocked = fault == "none" and data.draw(st.integers(0, 9)) == 0
        reply = dataclasses.replace(reply, gemini_ids=data.draw(st.booleans()),
                                    block_reason="PROHIBITED_CONTENT" if blocked else None)
        shape = data.draw(gemini_shapes)
    raw = faulty(upstream, upstream_events(upstream, reply, shape), fault, at)
    cuts = data.draw(_cuts(raw))
    framing = data.draw(st.sampled_from(["sse", "json-array"]))
    freeform = any(c.kind == "custom" for c in reply.tool_calls)
    for client in FORMATS:
        if client == "chat" and freeform:
            # A Chat client gets a freeform call as a native "custom" tool call only if it offered a
            # custom tool; check_chat_stream (like the SDK's ChoiceDeltaToolCall) knows only
            # "function" deltas, so that case is not checked here.
            continue
        op = Operation("gemini", "generate", model="gemini-client", stream=True, framing=framing) \
            if client == "gemini" else None
        exchange, _ = translate.Exchange.start(FORMATS[client], FORMATS[upstream],
                                               json.dumps(CLIENT_BODY[client]).encode(), make_ctx(), op=op)
        translator = exchange.stream()
        out: list[bytes] = []
        for chunk in split_at(raw, cuts):
            got = translator.feed(chunk)
            assert isinstance(got, list) and b"" not in got
            out += got
        out += translator.close()
        client_raw = b"".join(out)
        clean = _is_clean_stop(client, client_raw, framing)  # also asserts the grammar
        if fault == "none":
            assert clean, f"{upstream} → {client}: a valid stream did not end cleanly:\n{client_raw.decode()[-600:]}"
            assert translator.failed is None
            if reply.block_reason is None:
                assert client_answer(client, client_raw, framing) == expected_answer(client, reply), \
                    f"{upstream} → {client}: the answer changed on the way"
        else:
            assert not clean, f"{upstream} → {client}: fault {fault!r} at {at} ended with a clean stop:\n" \
                              f"{client_raw.decode()[-600:]}"
            assert translator.failed is not None
        RUNS[f"stream {'clean' if clean else 'error'}"] += 1


def test_print_example_counts() -> None:
    """Runs last in this file (pytest keeps file order): what the property tests above exercised."""
    print("\nproperty test cases:", dict(RUNS))
