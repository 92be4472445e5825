"""mitmweb as a debugging session, in a real browser.

A headless ``mitmweb -s addon/bridge.py`` translates a streamed Anthropic Messages request from the
official SDK for the mock's Chat Completions upstream; Debian's Chromium, driven by Playwright (never a
downloaded browser), opens the mitmweb UI, selects the flow and reads what the SSE and Translation views
render on the page. Screenshots of both go to the test's tmp dir; ``BRIDGE_UPDATE_SCREENSHOTS=1`` also
copies them to ``docs/`` (the README shows those), so an ordinary run leaves the work tree alone.

Skipped when Chromium or Playwright is missing, failed instead when ``BRIDGE_REQUIRE_CLIENTS=1`` (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import CLIENT_KEY, ROOT, UPSTREAM_KEY, UPSTREAM_KEY_ENV, free_ports, stop_process
from tests.mock_upstream import MockUpstream

CHROMIUM = Path("/usr/bin/chromium")
MITMWEB = Path(sys.executable).parent / "mitmweb"
PASSWORD = "bridge-test-web"  # mitmweb's UI password, not an API key
# Without the background-networking flags Chromium keeps dialling out, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
TEXT = "Hello from mitmweb ✓"
MODEL = "claude-client-model"
UPSTREAM_MODEL = "gpt-upstream-model"


def _require(ok: bool, what: str) -> None:
    """The pattern of conftest.require_cli: a skip here, a failure in CI."""
    if not ok:
        if os.environ.get("BRIDGE_REQUIRE_CLIENTS") == "1":
            pytest.fail(f"{what} is missing")
        pytest.skip(f"{what} is missing")


class Mitmweb:
    """``mitmweb -s addon/bridge.py`` on loopback ports, with a known UI password."""

    def __init__(self, workdir: Path, upstream: MockUpstream) -> None:
        self.proxy_port, self.web_port = free_ports(2)
        config = workdir / "config.yaml"
        rewrite = {"enabled": True, "rules": [{"source_pattern": MODEL, "target_model": UPSTREAM_MODEL}]}
        config.write_text(json.dumps({"endpoints": [{  # an Anthropic client, a Chat-only upstream: translating
            "name": "mock-chat", "url_openai": f"{upstream.url}/v1", "openai_preference": "chat_completions",
            "api_key_env": UPSTREAM_KEY_ENV, "model_rewrite": rewrite}]}))
        (workdir / "confdir").mkdir()
        self.log_path = workdir / "mitmweb.log"
        args = [str(MITMWEB), "-s", str(ROOT / "addon" / "bridge.py"), "--set", f"bridge_config={config}",
                "--mode", f"reverse:http://127.0.0.1:{upstream.port}",
                "--listen-host", "127.0.0.1", "--listen-port", str(self.proxy_port),
                "--web-host", "127.0.0.1", "--web-port", str(self.web_port), "--no-web-open-browser",
                "--set", f"web_password={PASSWORD}", "--set", f"confdir={workdir / 'confdir'}"]
        for column in ("icon", "path", "method", "status", "size", "comment"):  # the summary line in the list
            args += ["--set", f"web_columns={column}"]
        env = {**os.environ, UPSTREAM_KEY_ENV: UPSTREAM_KEY, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.web = f"http://127.0.0.1:{self.web_port}"
        self.proxy = f"http://127.0.0.1:{self.proxy_port}"
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {self.proxy_port, self.web_port}
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmweb exited with {self.proc.returncode}:\n{self.log()}")
            for port in list(pending):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        pending.discard(port)
            time.sleep(0.05)
        if pending:
            raise RuntimeError(f"mitmweb did not listen on {pending} within {timeout} s:\n{self.log()}")

    def api(self, path: str) -> Any:
        req = urllib.request.Request(self.web + path, headers={"Authorization": f"Bearer {PASSWORD}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def mitmweb(mock: MockUpstream, tmp_path: Path) -> Iterator[Mitmweb]:
    web = Mitmweb(tmp_path, mock)
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    """A page in headless Debian Chromium (Playwright's own browser downloads cannot work here)."""
    _require(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "the playwright package (pip install -r requirements-dev.txt)")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def _wait_for_text(read: Callable[[], str], wanted: list[str], timeout: float = 10.0) -> str:
    """Poll the rendered text until it holds every wanted string (mitmweb fetches views asynchronously)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = read()
        if all(w in text for w in wanted):
            return text
        time.sleep(0.1)
    missing = [w for w in wanted if w not in text]
    raise AssertionError(f"not rendered: {missing}\n--- page text ---\n{text[:4000]}")


def _wait_for_flow(web: Mitmweb, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    flows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        flows = web.api("/flows")
        if len(flows) == 1 and flows[0]["comment"] and flows[0]["response"]:
            return flows[0]
        time.sleep(0.1)
    raise AssertionError(f"mitmweb did not hold one finished flow within {timeout} s: {flows}")


def _widen_detail(page: Any, list_width: int = 420) -> None:
    """Drag the splitter between the flow list and the flow's details left, for readable screenshots."""
    box = page.locator(".splitter").bounding_box()
    assert box, "mitmweb shows no splitter: no flow selected?"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(list_width, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()


def _keep(shot: Path) -> None:
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, shot
    if os.environ.get("BRIDGE_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / shot.name)


def test_mitmweb_shows_the_sse_and_translation_views(page: Any, mitmweb: Mitmweb, mock: MockUpstream,
                                                     tmp_path: Path) -> None:
    mock.next_reply(text=TEXT, model=UPSTREAM_MODEL, piece=len(TEXT))  # one content chunk: a short page
    client = anthropic.Anthropic(base_url=mitmweb.proxy, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    with client.messages.stream(model=MODEL, max_tokens=64,
                                messages=[{"role": "user", "content": "Greet the debugger."}]) as stream:
        assert stream.get_final_text() == TEXT
    assert mock.last.path == "/v1/chat/completions"  # it was translated

    # The API the UI uses: one flow, auto-rendered by the Translation view (a bridge flow). The client may
    # have read the last byte before mitmweb ran the flow's response hook, which writes the comment.
    flow = _wait_for_flow(mitmweb)
    assert flow["comment"].startswith("anthropic → chat"), flow["comment"]
    auto = mitmweb.api(f"/flows/{flow['id']}/response/content/auto.json")
    assert auto["view_name"] == "Translation", auto

    page.goto(f"{mitmweb.web}/?token={PASSWORD}")
    page.locator("tr.has-response").first.click()
    _widen_detail(page)

    # Request tab, auto view: the client's Anthropic request above the Chat request sent upstream.
    content = page.locator(".contentview pre")
    request_text = _wait_for_text(content.inner_text, [
        "client request (anthropic) · POST", "upstream request (chat) · POST",
        f'"model": "{MODEL}"', f'"model": "{UPSTREAM_MODEL}"', "Greet the debugger."])
    assert request_text.index("client request (anthropic)") < request_text.index("upstream request (chat)")
    # both bodies above the recorded side's twenty header lines (issue 14, item 12)
    assert request_text.index(f'"model": "{UPSTREAM_MODEL}"') < request_text.index("client request headers (")
    assert page.locator(".contentview h5").inner_text() == "Translation"
    page.locator(".contentview").evaluate("e => e.scrollIntoView({block: 'start'})")  # past the headers
    page.screenshot(path=str(tmp_path / "mitmweb-translation-request.png"))
    _keep(tmp_path / "mitmweb-translation-request.png")

    # Response tab, auto view: the upstream's Chat stream above the Anthropic stream the client got.
    page.locator(".flow-detail nav a", has_text="Response").click()
    response_text = _wait_for_text(content.inner_text, [
        "upstream response (chat) · 200 OK", "client response (anthropic) · 200 OK · this message",
        "[5]  [DONE]", '[1] event: message_start  {"type": "message_start"', "[3] event: content_block_delta  {",
        f'"text": "{TEXT}"', f'"content": "{TEXT}"', '[6] event: message_stop  {"type": "message_stop"}'])
    assert response_text.index("upstream response (chat)") < response_text.index("client response (anthropic)")
    # a Chat chunk's delta before its id/object/created/model, which pushed it past the clipped line's end
    assert f'[2]  {{"choices": [{{"delta": {{"content": "{TEXT}"}}' in response_text
    assert page.locator(".contentview h5").inner_text() == "Translation"
    page.screenshot(path=str(tmp_path / "mitmweb-translation.png"))
    _keep(tmp_path / "mitmweb-translation.png")

    # The SSE view chosen from the view menu: the client stream as numbered events, JSON pretty-printed.
    page.locator(".contentview .controls a", has_text="View:").click()
    page.locator(".contentview .dropdown-menu a", has_text="sse").click()
    sse_text = _wait_for_text(content.inner_text, [
        "[1] event: message_start", "[2] event: content_block_start", "[3] event: content_block_delta",
        f'    "text": "{TEXT}"', "[5] event: message_delta", "[6] event: message_stop"])
    assert "upstream response" not in sse_text and "[7]" not in sse_text
    assert page.locator(".contentview h5").inner_text() == "SSE"
    page.screenshot(path=str(tmp_path / "mitmweb-sse.png"))
    _keep(tmp_path / "mitmweb-sse.png")


def test_mitmweb_shows_a_codex_websocket_session(page: Any, mitmweb: Mitmweb, mock: MockUpstream,
                                                 tmp_path: Path) -> None:
    """Issue 16: a Responses client over WebSocket (as Codex sends it) shows as its connection, every message
    each way, and each turn as a flow of its own with the Translation views."""
    from tests.ws_client import WSClient

    mock.next_reply(text=TEXT, model=UPSTREAM_MODEL, piece=len(TEXT))
    ws = WSClient(mitmweb.proxy_port, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    create = {"type": "response.create", "model": MODEL, "stream": True, "store": False,
              "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi."}]}]}
    ws.send({**create, "input": [], "generate": False})
    warm = ws.response()[-1]["response"]["id"]
    ws.send({**create, "previous_response_id": warm})
    assert ws.response()[-1]["type"] == "response.completed"
    ws.close()

    deadline, flows = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        flows = mitmweb.api("/flows")
        if len(flows) == 2 and all(f["response"] and f["comment"] for f in flows):
            break
        time.sleep(0.1)
    (connection,) = [f for f in flows if f.get("websocket")]
    (turn,) = [f for f in flows if not f.get("websocket")]
    assert connection["request"]["path"] == "/v1/responses" and connection["response"]["status_code"] == 101
    assert connection["comment"].startswith("responses · websocket")
    assert turn["comment"].startswith("responses → chat"), turn["comment"]
    assert turn["comment"].endswith(f"websocket turn of {connection['id'][:8]}"), turn["comment"]
    assert mitmweb.api(f"/flows/{turn['id']}/response/content/auto.json")["view_name"] == "Translation"
    messages = mitmweb.api(f"/flows/{connection['id']}/messages/content/auto.json")
    sent = [m for m in messages if m["from_client"]]
    assert len(sent) == 2 and len(messages) > 6, messages  # the warm-up and the turn, then their events
    assert any("response.output_text.delta" in json.dumps(m) for m in messages if not m["from_client"])

    page.goto(f"{mitmweb.web}/?token={PASSWORD}")
    page.locator("tr", has_text="/v1/responses").filter(has_text="101").first.click()
    _widen_detail(page)
    page.locator(".flow-detail nav a", has_text="WebSocket").click()
    _wait_for_text(page.locator(".flow-detail").inner_text, ["response.create", "response.completed", TEXT])
    page.screenshot(path=str(tmp_path / "mitmweb-websocket.png"))
    _keep(tmp_path / "mitmweb-websocket.png")
