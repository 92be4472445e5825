"""A 20-turn agent session through every translating pair, against a mock that caches as the real APIs do
(issue 17): each upstream request repeats the previous one byte for byte before its new turn, across a
bridge restart too; from the third turn on at least 80 % of the input is read from the cache; and what
each client's SDK reports as usage is what the upstream reported, cache reads and writes included."""

from __future__ import annotations

import itertools

import pytest

from tests import agent_session
from tests.agent_session import PAIRS, TURNS, Turn, extends, read_share
from tests.conftest import UPSTREAM_KEY_ENV
from tests.mock_cache import PromptCache
from tests.mock_upstream import MockUpstream


@pytest.fixture(scope="module")
def session(bridge_config, mock_upstream: MockUpstream) -> list[Turn]:
    mock_upstream.reset()
    mock_upstream.cache = PromptCache()
    config = {"endpoints": agent_session.endpoints(mock_upstream.url, UPSTREAM_KEY_ENV, "auto")}
    running = []

    def connect() -> str:
        for proc in running:  # a restart: the same config, a new process
            proc.stop()
        running.append(bridge_config(config, fresh_process=True))
        return running[-1].url

    try:
        return agent_session.run(mock_upstream, connect, restart_after=TURNS // 2)
    finally:
        mock_upstream.reset()


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{c}-to-{u}" for c, u in PAIRS])
def test_each_request_repeats_the_previous_one_as_its_prefix(session: list[Turn], pair: tuple[str, str]) -> None:
    turns = [t for t in session if t.pair == pair]
    assert [t.turn for t in turns] == list(range(1, TURNS + 1))
    for before, after in itertools.pairwise(turns):
        assert extends(pair[1], before.body, after.body) is None, (
            f"turn {after.turn}{' (after the restart)' if after.turn == TURNS // 2 + 1 else ''}: "
            f"{extends(pair[1], before.body, after.body)}")


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{c}-to-{u}" for c, u in PAIRS])
def test_from_the_third_turn_most_of_the_input_is_read_from_the_cache(session: list[Turn],
                                                                      pair: tuple[str, str]) -> None:
    assert read_share(session, pair) >= 0.8, [(t.turn, t.cache) for t in session if t.pair == pair]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{c}-to-{u}" for c, u in PAIRS])
def test_the_client_is_told_the_upstreams_usage(session: list[Turn], pair: tuple[str, str]) -> None:
    for t in (t for t in session if t.pair == pair):
        told = (t.seen.total, t.seen.read, t.seen.written)
        # Gemini's usage has no field for cache writes; the others report none from an upstream that has none.
        wanted = (t.cache.total, t.cache.read, None if pair[0] == "gemini" else t.cache.written)
        assert told[:2] == wanted[:2] and (told[2] or 0) == (wanted[2] or 0), f"turn {t.turn}: {told} != {wanted}"
