"""The mock's model of prompt caching (tests/mock_cache.py) behaves as the APIs document theirs: what the
cache-hit figures of test_prompt_cache_session and ``bench cache`` rest on."""

from __future__ import annotations

import pytest

from tests.mock_cache import LOOKBACK, PromptCache, TooManyBreakpoints

BIG = "x" * 8000  # 2,000 tokens at 4 bytes each
MARK = {"type": "ephemeral"}


def anthropic(n_turns: int, marked: bool = True, tool: str = "run") -> dict:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": f"turn {i}"}]}
                for i in range(n_turns)]
    if marked:
        messages[-1]["content"][-1] = {**messages[-1]["content"][-1], "cache_control": MARK}
    return {"model": "m", "tools": [{"name": tool, "input_schema": {}}],
            "system": [{"type": "text", "text": BIG, **({"cache_control": MARK} if marked else {})}],
            "messages": messages}


def test_anthropic_caches_only_where_asked_and_reads_what_was_written() -> None:
    cache = PromptCache()
    assert cache.usage("anthropic", anthropic(3, marked=False), 5)["cache_creation_input_tokens"] == 0
    first = cache.usage("anthropic", anthropic(3), 5)
    assert first["cache_read_input_tokens"] == 0 and first["cache_creation_input_tokens"] > 2000
    second = cache.usage("anthropic", anthropic(5), 5)
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]  # the whole earlier prompt
    assert second["input_tokens"] == 0 and second["cache_creation_input_tokens"] > 0
    changed = cache.usage("anthropic", anthropic(7, tool="other"), 5)  # a tool changed: nothing after it holds
    assert changed["cache_read_input_tokens"] == 0


def test_anthropic_looks_back_20_blocks_from_a_breakpoint_and_takes_at_most_four() -> None:
    cache = PromptCache()
    cache.usage("anthropic", anthropic(2), 5)
    near = anthropic(2 + LOOKBACK)
    assert cache.usage("anthropic", near, 5)["cache_read_input_tokens"] > 2000
    far = PromptCache()
    far.usage("anthropic", anthropic(2), 5)
    too_far = anthropic(2 + LOOKBACK + 2)
    too_far["system"][0].pop("cache_control")  # only the moving end: its window misses the earlier write
    assert far.usage("anthropic", too_far, 5)["cache_read_input_tokens"] == 0
    many = anthropic(6)
    for m in many["messages"][:4]:
        m["content"][0]["cache_control"] = MARK
    with pytest.raises(TooManyBreakpoints, match="A maximum of 4 blocks"):
        cache.usage("anthropic", many, 5)


def test_a_short_prefix_is_not_cached() -> None:
    cache = PromptCache()
    small = {"model": "m", "system": [{"type": "text", "text": "short", "cache_control": MARK}],
             "messages": [{"role": "user", "content": "hi"}]}
    cache.usage("anthropic", small, 5)
    assert cache.usage("anthropic", small, 5)["cache_read_input_tokens"] == 0
    chat = {"model": "m", "prompt_cache_key": "k", "messages": [{"role": "user", "content": "hi"}]}
    cache.usage("chat", chat, 5)
    assert cache.usage("chat", chat, 5)["prompt_tokens_details"]["cached_tokens"] == 0  # under 1,024 tokens


def test_openai_reads_the_longest_prefix_in_steps_of_128_where_the_key_routes() -> None:
    cache = PromptCache()

    def chat(key: str | None, *turns: str) -> dict:
        return {"model": "m", **({"prompt_cache_key": key} if key else {}),
                "messages": [{"role": "system", "content": BIG}, *({"role": "user", "content": t} for t in turns)]}

    cache.usage("chat", chat("a", "one"), 5)
    usage = cache.usage("chat", chat("a", "one", "two" * 300), 5)
    read = usage["prompt_tokens_details"]["cached_tokens"]
    assert 1024 <= read < usage["prompt_tokens"] and (read - 1024) % 128 == 0 and read > 1900
    assert cache.usage("chat", chat("b", "one", "two"), 5)["prompt_tokens_details"]["cached_tokens"] == 0
    keyless = [cache.usage("responses", {"model": "n", "input": [{"role": "system", "content": BIG}, t]}, 5)
               for t in ({"role": "user", "content": str(i)} for i in range(40))]
    hits = sum(1 for u in keyless if u["input_tokens_details"]["cached_tokens"])
    assert 20 < hits < 39  # spread over 4 machines: each cold the first time it is reached


def test_gemini_reads_any_earlier_prompts_longest_prefix() -> None:
    cache = PromptCache()
    body = {"systemInstruction": {"parts": [{"text": BIG}]}, "contents": [{"role": "user", "parts": [{"text": "a"}]}]}
    assert "cachedContentTokenCount" not in cache.usage("gemini", body, 5, "g")
    more = {**body, "contents": [*body["contents"], {"role": "model", "parts": [{"text": "b"}]}]}
    usage = cache.usage("gemini", more, 5, "g")
    assert 2000 < usage["cachedContentTokenCount"] < usage["promptTokenCount"]
    assert "cachedContentTokenCount" not in cache.usage("gemini", more, 5, "other-model")
