"""The peers the benchmark compares with, when installed into ``.tmp/peers`` by ``bench/install_peers.sh``.

* LiteLLM proxy (PyPI ``litellm[proxy]``), in its own venv: ``chat-*`` models go to the mock's Chat
  Completions API (``openai/…`` with ``use_chat_completions_api``, and
  ``LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES``: without them LiteLLM sends Anthropic and
  Responses clients to the upstream's Responses API), ``anth-*`` to its Anthropic API.
* claude-code-router (npm ``@musistudio/claude-code-router``), ``ccr start`` with its own ``HOME``: an
  Anthropic client's model ``mock,<name>`` picks provider and model per request. File logging is off
  (its default writes every request at debug level).

Both are started as the user would, single process, defaults otherwise.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".tmp" / "peers"
LITELLM = PEERS / "litellm-venv" / "bin" / "litellm"
CCR = PEERS / "ccr" / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / "cli.js"

__all__ = ["available", "start_litellm", "start_ccr"]


class Starter(Protocol):
    workdir: Path

    def start(self, name: str, args: list[str],
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]: ...


def available() -> dict[str, str]:
    """Peer name → why it cannot run ("" when it can)."""
    return {"litellm": "" if LITELLM.exists() else f"not installed ({LITELLM} missing: bench/install_peers.sh)",
            "ccr": ("" if CCR.exists() and shutil.which("node") else
                    f"not installed ({CCR} missing, or no node: bench/install_peers.sh)")}


def _wait_http(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open within {timeout} s: {log.read_text(errors='replace')[-2000:]}")


def start_litellm(procs: Starter, upstream: int, port: int) -> int:
    cfg = procs.workdir / "litellm.yaml"
    model = {"api_key": "bench-upstream"}
    config = {"model_list": [
        {"model_name": "chat-*", "litellm_params": {**model, "model": "openai/chat-*", "use_chat_completions_api": True,
                                                    "api_base": f"http://127.0.0.1:{upstream}/v1"}},
        {"model_name": "anth-*", "litellm_params": {**model, "model": "anthropic/anth-*",
                                                    "api_base": f"http://127.0.0.1:{upstream}"}}],
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
        "litellm_settings": {"drop_params": True}}
    cfg.write_text(json.dumps(config, indent=2))  # JSON is YAML
    env = {"LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    proc, log = procs.start("litellm", [str(LITELLM), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                            env=env)
    _wait_http(port, proc, log, 120)
    return proc.pid


def start_ccr(procs: Starter, upstream: int, port: int) -> int:
    home = procs.workdir / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True)
    config = {"PORT": port, "HOST": "127.0.0.1", "LOG": False, "NON_INTERACTIVE_MODE": True,
              "Providers": [{"name": "mock", "api_base_url": f"http://127.0.0.1:{upstream}/v1/chat/completions",
                             "api_key": "bench-upstream", "models": ["chat"]}],
              "Router": {"default": "mock,chat"}}
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config, indent=2))
    proc, log = procs.start("ccr", ["node", str(CCR), "start"], env={"HOME": str(home), "CI": "true"})
    _wait_http(port, proc, log, 60)
    return proc.pid


if __name__ == "__main__":
    for name, why in available().items():
        print(f"{name}: {why or 'installed'}")
    sys.exit(0)
