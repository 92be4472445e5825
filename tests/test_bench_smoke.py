"""The benchmark still runs: a tiny side-by-side run prints its tables, and its client catches broken streams.

The figures themselves are not checked (the machine is shared); that every configuration answered
completely and in order is.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import run
from bench.client import Result, _check, dechunk, fetch
from bench.upstream import _chunk, _rendered


def test_tiny_run_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code = run.main(["--reps", "1", "--only", "w1,w2", "--configs", "A→C", "--no-peers"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("direct A", "direct C", "mitmdump A", "mitmdump C", "bridge A→C"):
        w1, w2 = (out.split(f"\n{w}:")[2] for w in ("w1", "w2"))  # [0] header, [1] progress line, [2] table
        assert f"\n{name} " in w1 and f"\n{name} " in w2, out
    assert "w1 bridge A→C:" in out and "first token" in out
    assert "first error" not in out


def test_micro_runs_every_format_pair(capsys: pytest.CaptureFixture[str]) -> None:
    """``bench micro`` walks the format registry: a new format needs its small body, tools and path op."""
    from addon.formats import FORMATS
    from bench import micro

    assert micro.main(["--events", "20", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    short = micro.SHORT
    for client in FORMATS:
        assert f"\n{short[client]}={short[client]} " in out, out  # pass-through with a model rewrite
        for upstream in FORMATS:
            if client != upstream:
                assert f"\n{short[client]}→{short[upstream]} " in out, out
    for client in FORMATS:
        if client != "chat":
            assert f"\n{short[client]}→C " in out.split("request rewrite")[1], out


def test_cache_bench_measures_every_pair_with_and_without_help(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    from bench import cache
    from tests.agent_session import PAIRS

    cache.main(["--turns", "3", "--json", str(tmp_path / "cache.json")])
    figures = {(f["client"], f["upstream"]): f for f in json.loads((tmp_path / "cache.json").read_text())}
    assert set(figures) == set(PAIRS)
    out = capsys.readouterr().out
    for (client, upstream), f in figures.items():
        assert f"| {client} → {upstream} | {f['cache_read_share']:.0%} |" in out, out
        if upstream == "anthropic":  # no breakpoints without the bridge: nothing is read
            assert f["cache_read_share_without_help"] == 0 and f["cache_read_share"] > 0.5, f


def chat_stream(order: list[int], done: bool = True) -> bytes:
    head, body, tail = _rendered("chat", "chat-e3-b8-d0-t0")  # tail: finish, usage, [DONE], terminator
    return b"".join([*head, *(body[i] for i in order), *(tail if done else [*tail[:2], tail[3]])])


def test_client_checks_completeness_and_order() -> None:
    good = chat_stream([0, 1, 2])
    payload, _, terminated = dechunk(good)
    assert terminated and payload.count(b"data: ") == 7  # role, 3 deltas, finish, usage, [DONE]

    def checked(raw: bytes) -> Result:
        res = Result(status=200, reads=[(1, len(raw))])
        _check(res, raw, True, "chat", 3, False, True)
        return res

    assert checked(good).error is None and checked(good).order_ok
    assert "out of order" in (checked(chat_stream([1, 0, 2])).error or "")
    assert "out of order" in (checked(chat_stream([0, 2])).error or "")
    assert "terminator" in (checked(good[:-5]).error or "")
    assert "incomplete" in (checked(chat_stream([0, 1, 2], done=False)).error or "")  # framing ends, no [DONE]
    assert _chunk(b"") == b"0\r\n\r\n"


def test_fetch_reports_a_refused_connection() -> None:
    port = run.free_port()  # nothing listens there now
    res = asyncio.run(fetch("127.0.0.1", port, "/v1/chat/completions", b"{}", {}, fmt="chat", expect_events=1))
    assert res.error and res.error.startswith("connect")
