"""Re-bless fixtures: ``./bridge.sh bless [flows/x.flow …]`` (default: every ``flows/*.flow``).

Never hand-edit a fixture: each file is read by ``mitmdump -n -r FILE -s addon/bridge.py -w TMP``,
where the bridge translates every recorded client request and upstream answer again with today's code
(``addon/replay.py``) and leaves that output in the flow; TMP then replaces FILE. The recorded client
request and upstream answer stay; the upstream request and client response become today's.
``BRIDGE_FIXTURE_CONFIG`` names another config than ``flows/config.yaml``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mitmproxy import io

from addon.replay import DIFFERENCES

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).parent / "mitmdump"


def bless(path: Path, config: str) -> None:
    fd, name = tempfile.mkstemp(suffix=".flow.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        # No --mode: with one reverse mode mitmproxy rewrites every loaded flow's host (mitmproxy-notes §7).
        subprocess.run([str(MITMDUMP), "-n", "-r", str(path), "-s", str(ROOT / "addon" / "bridge.py"),
                        "--set", f"bridge_config={config}", "--set", "flow_detail=0", "-w", str(tmp)], check=True)
        # A loaded flow with both a response and an error (a stream cut mid-way) fires both hooks, and
        # mitmproxy's writer saves it in each: keep one copy per flow id, in order.
        with tmp.open("rb") as f:
            flows = {flow.id: flow for flow in io.FlowReader(f).stream()}
        if not any([flow.metadata.pop(DIFFERENCES, None) for flow in flows.values()]):
            print(f"unchanged {path}", file=sys.stderr)  # today's translation is the recorded one
            return
        with tmp.open("wb") as f:
            writer = io.FlowWriter(f)
            for flow in flows.values():
                writer.add(flow)
        tmp.chmod(0o644)
        tmp.replace(path)
        print(f"blessed {path}", file=sys.stderr)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    config = os.environ.get("BRIDGE_FIXTURE_CONFIG", str(ROOT / "flows" / "config.yaml"))
    paths = [Path(a) for a in argv] or sorted((ROOT / "flows").glob("*.flow"))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"bless: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    for path in paths:
        try:
            bless(path, config)
        except subprocess.CalledProcessError:
            print(f"bless: mitmdump failed on {path}; left unchanged", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
