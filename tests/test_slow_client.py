"""A client that stops reading does not make the bridge buffer the upstream's stream.

mitmproxy drains every writer before it reads more (its ``drain_writers``), and the stream callable
keeps nothing but the current event, so a stalled client throttles the upstream through TCP instead
of growing the proxy. Measured here: a 60 MB translated stream, a client that reads the first bytes
and then nothing for two seconds, and the growth of mitmdump's resident memory meanwhile.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.conftest import BridgeProcess
from tests.mock_upstream import MockUpstream

TEXT_BYTES = 60 * 1024 * 1024
PIECE = 4096  # characters per upstream delta: about 15,000 events
GROWTH_LIMIT = 20 * 1024 * 1024  # far below the 60 MB (90 MB once translated) the upstream has ready


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_stalled_client_does_not_grow_the_bridge(bridge, mock: MockUpstream) -> None:
    proc: BridgeProcess = bridge("chat")
    mock.next_reply(text="x" * TEXT_BYTES, piece=PIECE)
    body = json.dumps({"model": "claude-x", "max_tokens": 64, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", proc.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                 b"anthropic-version: 2023-06-01\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    received = bytearray(sock.recv(65536))
    while b"content_block_delta" not in received:
        received += sock.recv(65536)
    before = rss(proc.proc.pid)
    time.sleep(2.0)  # the client reads nothing; without backpressure the whole stream would pile up
    stalled = rss(proc.proc.pid)
    sock.settimeout(30)
    while not received.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    sock.close()
    print(f"growth while stalled: {(stalled - before) / 2**20:.1f} MiB")
    assert stalled - before < GROWTH_LIMIT, f"mitmdump grew by {(stalled - before) / 2**20:.1f} MiB while stalled"
    assert b"event: message_stop" in received[-4096:], "the stream did not complete after the client resumed"
    assert received.count(b'"text_delta"') >= TEXT_BYTES // PIECE  # every delta arrived (chunk framing aside)
