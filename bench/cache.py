"""Prompt caching through the bridge, measured: ``./bridge.sh bench cache [--turns N] [--json FILE]``.

Runs the 20-turn agent session of ``tests/agent_session.py`` (Claude Code, the Codex CLI, an SDK Chat
client and the Gemini CLI, each through every upstream format it is translated to) against the mock
upstream answering usage as the real APIs cache (``tests/mock_cache.py``), twice: through a bridge with
``prompt_cache: auto`` (breakpoints for Anthropic, a cache key for OpenAI, determinism throughout) and
through one with ``prompt_cache: off`` (the same session without the bridge's help; what a client still
sends itself, Claude Code's breakpoints and the Codex CLI's key, does what it does). Prints, per pair,
the share of input tokens read from the cache from the third turn on, and the ratio of the input cost
(cache reads at 0.1, Anthropic cache writes at 1.25 of uncached input).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import agent_session  # noqa: E402
from tests.agent_session import PAIRS, Turn, input_cost, read_share  # noqa: E402
from tests.conftest import UPSTREAM_KEY_ENV, BridgeProcess  # noqa: E402
from tests.mock_cache import PromptCache  # noqa: E402
from tests.mock_upstream import MockUpstream  # noqa: E402


def session(prompt_cache: str, turns: int) -> list[Turn]:
    with MockUpstream() as mock, tempfile.TemporaryDirectory() as tmp:
        mock.cache = PromptCache()
        config = {"endpoints": agent_session.endpoints(mock.url, UPSTREAM_KEY_ENV, prompt_cache)}
        proc = BridgeProcess(f"bridge-{prompt_cache}", Path(tmp), config, ["reverse:http://127.0.0.1:9"])
        try:
            return agent_session.run(mock, lambda: proc.url, turns=turns)
        finally:
            proc.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=agent_session.TURNS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    helped, alone = session("auto", args.turns), session("off", args.turns)
    rows, figures = [], []
    for pair in PAIRS:
        with_help, without = read_share(helped, pair), read_share(alone, pair)
        ratio = input_cost(helped, pair) / input_cost(alone, pair)
        figures.append({"client": pair[0], "upstream": pair[1], "cache_read_share": round(with_help, 4),
                        "cache_read_share_without_help": round(without, 4), "input_cost_ratio": round(ratio, 4)})
        rows.append(f"| {pair[0]} → {pair[1]} | {with_help:.0%} | {without:.0%} | {ratio:.2f} |")
    print(f"Prompt caching, a {args.turns}-turn agent session: cache reads as a share of input tokens, "
          f"turns 3–{args.turns}\n")
    print("| client → upstream | cache reads, bridge's help | without it | input cost, help / without |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
