"""``llm-bridge``: the bridge as an installed command (``pip install .``), beside ``./bridge.sh``.

``llm-bridge run [mitmdump args…]`` runs mitmdump with the addon, ``config.yaml`` of the current
directory and 127.0.0.1:8080 unless the arguments say otherwise (as ``./bridge.sh run`` does);
``llm-bridge check [config] [args…]`` is the endpoint self-test (``addon/check.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

USAGE = "usage: llm-bridge run [mitmdump args…] | llm-bridge check [config.yaml] [--offline] [--endpoint NAME]"


def run_args(args: Sequence[str]) -> list[str]:
    """mitmdump's arguments: the addon, then the defaults the caller's own arguments do not replace (a
    script option given twice keeps mitmproxy from loading the script)."""
    from .config import ConfigError, reverse_target

    config = next((a.removeprefix("bridge_config=") for a in args if a.startswith("bridge_config=")), None)
    out = ["-s", str(Path(__file__).with_name("bridge.py"))]
    if config is None:
        config = "config.yaml"
        out += ["--set", f"bridge_config={config}"]
    if not any(a in ("--mode", "-m") or a.startswith("--mode=") for a in args):
        try:
            out += ["--mode", f"reverse:{reverse_target(config)}"]
        except ConfigError:
            pass  # mitmdump says what is wrong with the config, in one line
    return [*out, "--listen-host", "127.0.0.1", "--listen-port", "8080", "--set", "flow_detail=0", *args]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "run":
        from mitmproxy.tools.main import mitmdump
        return mitmdump(run_args(rest)) or 0
    if command == "check":
        from .check import main as check
        return check(rest)
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
