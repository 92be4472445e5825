"""Shared fixtures: the mock LLM upstream and real ``mitmdump`` subprocesses running the bridge.

``mock`` is the session's :class:`~tests.mock_upstream.MockUpstream`, emptied before each test.
``bridge(upstream)`` starts (once per configuration and session) ``mitmdump -s addon/bridge.py`` on a
free loopback port, in front of the mock, with an endpoint whose upstream is ``"chat"`` (``url_openai``,
Chat Completions), ``"responses"`` (``url_openai`` with ``openai_preference: responses``),
``"anthropic"`` (``url_anthropic``), ``"codex"`` (``url_codex``: the mock's ChatGPT Codex backend at
``/backend-api/codex``) or ``"gemini"`` (``url_gemini``: the mock's base URL, to which the Gemini format
appends ``/v1beta/models/{model}:…``), and returns a :class:`BridgeProcess`.
mitmdump runs without ``-q`` but with ``termlog_verbosity=warn`` and ``flow_detail=0``: quiet, except the
bridge's own warnings. When a test fails, what each mitmdump logged during it is attached to the report.

``mocks`` is three more mock upstreams, each on its own port, emptied before each test.
``bridge_config(config, modes=[...], env={...})`` starts (once per arguments and session, or anew with
``fresh_process=True``) a mitmdump with a whole config (``{"endpoints": [...], top-level keys}``), any ``--mode``
specs (several listeners need distinct ``@port``s: see ``free_ports``), extra environment variables, and
the bridge's info log (one line per request); it returns a :class:`ConfiguredBridge`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.mock_upstream import MockUpstream

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).parent / "mitmdump"
UPSTREAM_KEY_ENV = "UPSTREAM_KEY"
UPSTREAM_KEY = "test-upstream-key"
CLIENT_KEY = "client-key"

# Loaded into mitmdump next to the bridge: writes {mode spec: [ports]} once the servers listen.
_PORTFILE_ADDON = '''\
import json, os
from mitmproxy import ctx

PORTFILE = {portfile!r}


class PortFile:
    def running(self):
        servers = ctx.master.addons.get("proxyserver").servers
        ports = {{s.mode.full_spec: [addr[1] for addr in s.listen_addrs] for s in servers}}
        with open(PORTFILE + ".tmp", "w") as f:
            json.dump(ports, f)
        os.replace(PORTFILE + ".tmp", PORTFILE)


addons = [PortFile()]
'''

_RUNNING: list[BridgeProcess] = []


class BridgeProcess:
    """One ``mitmdump`` running the bridge with its own config (a dict is written as JSON, which is
    YAML), modes, extra environment and arguments, confdir and log file.

    ``ports`` maps each mode spec (as mitmproxy spells it) to its listening ports; ``port``/``url`` are
    the first mode's. ``verbosity`` is mitmproxy's ``termlog_verbosity`` (the log file stays current:
    ``PYTHONUNBUFFERED``).
    """

    def __init__(self, name: str, workdir: Path, config: dict[str, Any] | str, modes: Sequence[str],
                 env: dict[str, str] | None = None, extra_args: Sequence[str] = (), verbosity: str = "warn") -> None:
        self.name = name
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "mitmdump.log"
        portfile = workdir / "ports.json"
        addon_path = workdir / "portfile_addon.py"
        self.write_config(config)
        addon_path.write_text(_PORTFILE_ADDON.format(portfile=str(portfile)))
        (workdir / "confdir").mkdir()
        args = [str(MITMDUMP), "-s", str(ROOT / "addon" / "bridge.py"), "-s", str(addon_path),
                "--set", f"bridge_config={self.config_path}"]
        for mode in modes:
            args += ["--mode", mode]
        # extra_args replace a default --set of the same option (mitmdump refuses an option set twice)
        overridden = {a.partition("=")[0] for a in extra_args if "=" in a}
        defaults = ["listen_host=127.0.0.1", "listen_port=0", f"confdir={workdir / 'confdir'}",
                    "connection_strategy=lazy", f"termlog_verbosity={verbosity}", "flow_detail=0"]
        for option in defaults:
            if option.partition("=")[0] not in overridden:
                args += ["--set", option]
        args += extra_args
        full_env = {**os.environ, UPSTREAM_KEY_ENV: UPSTREAM_KEY, "PYTHONWARNINGS": "ignore::DeprecationWarning",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.port = self._wait_for_port(portfile)
        self.ports: dict[str, list[int]] = json.loads(portfile.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def write_config(self, config: dict[str, Any] | str) -> None:
        """Replace the config file in one step (a dict is written as JSON, which is YAML)."""
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def _wait_for_port(self, portfile: Path, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if portfile.exists():
                ports = [p for ps in json.loads(portfile.read_text()).values() for p in ps]
                if ports:
                    return ports[0]
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmdump ({self.name}) exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mitmdump ({self.name}) did not report a port within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, as Ctrl-C would (mitmproxy then writes its -w file and shuts down cleanly); kill if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
def mock(mock_upstream: MockUpstream) -> Iterator[MockUpstream]:
    """The session's mock upstream with an empty script and no recorded requests."""
    mock_upstream.reset()
    yield mock_upstream
    mock_upstream.reset()


def upstream_urls(mock_url: str) -> dict[str, dict[str, Any]]:
    """The endpoint keys that point at the mock upstream as each upstream: ``chat``, ``responses``,
    ``anthropic``, ``codex`` (the mock's ChatGPT Codex backend) and ``gemini``."""
    return {"chat": {"url_openai": f"{mock_url}/v1", "openai_preference": "chat_completions"},
            "responses": {"url_openai": f"{mock_url}/v1", "openai_preference": "responses"},
            "anthropic": {"url_anthropic": mock_url},
            "codex": {"url_codex": f"{mock_url}/backend-api/codex"},
            "gemini": {"url_gemini": mock_url}}


@pytest.fixture(scope="session")
def bridge(tmp_path_factory: pytest.TempPathFactory,
           mock_upstream: MockUpstream) -> Iterator[Callable[..., BridgeProcess]]:
    """Factory: ``bridge("chat" | "responses" | "anthropic" | "codex" | "gemini")``, extra endpoint keys as
    keywords."""
    started: dict[str, BridgeProcess] = {}

    def make(upstream: str, **endpoint: object) -> BridgeProcess:
        urls = upstream_urls(mock_upstream.url)[upstream]
        spec = {"name": f"mock-{upstream}", **urls, "api_key_env": UPSTREAM_KEY_ENV, **endpoint}
        key = json.dumps(spec, sort_keys=True)
        if key not in started:
            proc = BridgeProcess(f"{upstream}-{len(started)}", tmp_path_factory.mktemp(f"bridge-{upstream}"),
                                 {"endpoints": [spec]}, [f"reverse:http://127.0.0.1:{mock_upstream.port}"])
            started[key] = proc
            _RUNNING.append(proc)
        return started[key]

    yield make
    for proc in started.values():
        proc.stop()
        _RUNNING.remove(proc)


def free_ports(n: int) -> list[int]:
    """n loopback ports free right now (mitmproxy refuses two listeners that both say port 0)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ConfiguredBridge(BridgeProcess):
    """A :class:`BridgeProcess` with a whole config, any modes and extra environment, whose bridge logs
    at info level (one line per request), so tests can wait for its log."""

    def __init__(self, name: str, workdir: Path, config: dict[str, Any] | str, modes: Sequence[str],
                 env: dict[str, str] | None = None, extra_args: Sequence[str] = ()) -> None:
        super().__init__(name, workdir, config, modes, env, extra_args, verbosity="info")

    def wait_for_log(self, text: str, start: int = 0, timeout: float = 10.0) -> str:
        """The log from offset ``start`` once it contains ``text`` (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[start:]
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"mitmdump ({self.name}) did not log {text!r} within {timeout} s:\n{log[-3000:]}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def mock_trio() -> Iterator[tuple[MockUpstream, MockUpstream, MockUpstream]]:
    with MockUpstream() as a, MockUpstream() as b, MockUpstream() as c:
        yield a, b, c


@pytest.fixture
def mocks(mock_trio: tuple[MockUpstream, MockUpstream, MockUpstream]
          ) -> Iterator[tuple[MockUpstream, MockUpstream, MockUpstream]]:
    """Three more mock upstreams (not ``mock``), each on its own port, emptied before and after each test."""
    for m in mock_trio:
        m.reset()
    yield mock_trio
    for m in mock_trio:
        m.reset()


@pytest.fixture(scope="session")
def bridge_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ConfiguredBridge]]:
    """Factory: ``bridge_config(config, modes=("reverse:http://127.0.0.1:9",), env=None, fresh_process=False,
    args=())``; ``args`` are extra mitmdump arguments (e.g. ``["-w", path]``), after the defaults.

    The reverse target only matters for requests the bridge leaves alone: the config picks upstreams.
    """
    started: dict[str, ConfiguredBridge] = {}
    fresh: list[ConfiguredBridge] = []

    def make(config: dict[str, Any] | str, modes: Sequence[str] = ("reverse:http://127.0.0.1:9",),
             env: dict[str, str] | None = None, fresh_process: bool = False,
             args: Sequence[str] = ()) -> ConfiguredBridge:
        key = json.dumps([config, list(modes), env, *([list(args)] if args else [])], sort_keys=True)
        if fresh_process or key not in started:
            n = len(started) + len(fresh)
            proc = ConfiguredBridge(f"config-{n}", tmp_path_factory.mktemp(f"bridge-config-{n}"), config, modes, env,
                                    args)
            _RUNNING.append(proc)
            if fresh_process:
                fresh.append(proc)
                return proc
            started[key] = proc
        return started[key]

    yield make
    for proc in [*started.values(), *fresh]:
        proc.stop()
        _RUNNING.remove(proc)


_LOG_START = pytest.StashKey[dict[str, int]]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_START] = {proc.name: len(proc.log()) for proc in _RUNNING}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed:  # what each mitmdump logged during this test
        start = item.stash.get(_LOG_START, {})
        for proc in _RUNNING:
            text = proc.log()[start.get(proc.name, 0):][-4000:]
            report.sections.append((f"mitmdump {proc.name} log during the test", text or "(nothing)"))
    return report


def require_cli(path: Path, name: str, package: str) -> Path:
    """A real client's binary, or a skip (a failure when BRIDGE_REQUIRE_CLIENTS=1, as in CI)."""
    if not path.exists():
        if os.environ.get("BRIDGE_REQUIRE_CLIENTS") == "1":
            pytest.fail(f"{name} not found at {path}")
        pytest.skip(f"{name} not installed at {path} (npm install {package})")
    return path
