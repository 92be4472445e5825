"""Installable (issue 14, item 15): ``pip install .`` gives the ``addon`` package and an ``llm-bridge``
command that runs the bridge and the self-test; ``mitmdump -s addon/bridge.py`` keeps working beside it.

The install goes into a temporary target with ``--no-deps`` (the test's own environment has them), so
the test needs no network beyond what pip's build isolation takes from the registry (setuptools).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_ports
from tests.test_newcomer import wait_port


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("installed")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, timeout=300, cwd=build, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    yield target


def env_for(target: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(target), "PYTHONWARNINGS": "ignore"}


def test_the_package_holds_the_product_and_nothing_else(installed: Path) -> None:
    assert (installed / "addon" / "bridge.py").exists()
    assert (installed / "addon" / "formats" / "responses" / "answer.py").exists()
    assert not (installed / "tests").exists() and not (installed / "bench").exists()
    assert (installed / "bin" / "llm-bridge").exists()


def test_llm_bridge_check(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("endpoints:\n  - name: m\n    url_openai: http://127.0.0.1:9/v1\n")
    proc = subprocess.run([sys.executable, str(installed / "bin" / "llm-bridge"), "check", "--offline"],
                          cwd=tmp_path, env=env_for(installed), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks, all passed" in proc.stdout


def test_llm_bridge_run(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("endpoints:\n  - name: m\n    url_openai: http://127.0.0.1:9/v1\n")
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, str(installed / "bin" / "llm-bridge"), "run", "--listen-port", str(port),
                             "--set", f"confdir={tmp_path / 'confdir'}"], cwd=tmp_path, env=env_for(installed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
