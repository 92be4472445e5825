"""A recorded exchange run again through today's code, and what came out differently.

A flow the bridge handled keeps the client's request and the upstream's answer in its metadata (see
``bridge.py``), next to what was sent upstream (``flow.request``) and what the client got
(``flow.response``). :func:`rerun` plans the recorded client request anew and translates the recorded
upstream answer anew, with the ids and clock of the recording so the output is comparable byte for
byte; :func:`differences` says, field by field or event by event, where today's output differs from
the recording. ``mitmdump -nr x.flow -s addon/bridge.py`` and ``tests/test_replay.py`` both use it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from .config import Config
from .plan import plan
from .routing import detect
from .sse import SSEDecoder
from .translate import SSE_TYPE, cut_tail
from .wssession import Forward, Local, Session

__all__ = ["CLIENT_REQUEST", "DIFFERENCES", "IDS", "UPSTREAM_RESPONSE", "Rerun", "WebSocketRerun", "differences",
           "id_source", "rerun", "rerun_websocket"]

# flow.metadata keys the addon writes
CLIENT_REQUEST = "bridge_client_request"  # {method, url, http_version, headers, content}: as the client sent it
UPSTREAM_RESPONSE = "bridge_upstream_response"  # {status_code, reason, headers, content[, cut]}: as the upstream
# sent it; "cut" is why a stream broke off
IDS = "bridge_ids"  # {"now": int, "ids": [...]}: the clock and the ids the bridge made, in order
DIFFERENCES = "bridge_replay_differences"  # [str]: what a rerun (mitmdump -nr) found different from the recording

_ID_RANDOM = 24  # a made id is a prefix and 24 random hex digits (bridge._new_id)


@dataclasses.dataclass(slots=True)
class Rerun:
    upstream_url: str | None = None  # None: the bridge answered by itself, nothing went upstream
    upstream_body: bytes | None = None
    client_status: int | None = None  # None: no recorded upstream answer to translate
    client_content_type: str = ""
    client_body: bytes | None = None


def id_source(recorded: list[str]) -> Callable[[str], str]:
    """Hands out the recording's ids again, per prefix and in order, so a rerun makes the same ones."""
    queues: dict[str, deque[str]] = defaultdict(deque)
    for made in recorded:
        queues[made[:-_ID_RANDOM]].append(made)
    extra = iter(range(1, 1 << 30))

    def new_id(prefix: str) -> str:
        queue = queues.get(prefix)
        return queue.popleft() if queue else f"{prefix}{next(extra):0{_ID_RANDOM}x}"
    return new_id


def rerun(config: Config, metadata: dict[str, Any]) -> Rerun:
    """Today's translation of a recorded exchange (``flow.metadata`` of a bridge flow).

    Client keys are not checked again: they were redacted before the flow was written.
    """
    client_request = metadata[CLIENT_REQUEST]
    made = metadata.get(IDS, {})
    headers = {k.lower(): v for k, v in client_request["headers"]}
    url: str = client_request["url"]
    path = "/" + url.split("://", 1)[-1].partition("/")[2]
    op = detect(client_request["method"], path, headers)
    out = Rerun()
    if op is None:
        return out
    config = dataclasses.replace(config, client_keys_env=())
    p = plan(config, op, path, headers, client_request["content"], id_source(made.get("ids", [])),
             made.get("now", 0), method=client_request["method"])
    endpoint = metadata.get("bridge", {}).get("endpoint")
    p = next((q for q in [p, *p.fallbacks] if q.endpoint and q.endpoint.name == endpoint), p)  # failover's pick
    if p.answer is not None:
        out.client_status, out.client_content_type, out.client_body = p.answer
        return out
    out.upstream_url = p.url
    out.upstream_body = p.body if p.body is not None else client_request["content"]
    answer = metadata.get(UPSTREAM_RESPONSE)
    if answer is None:
        return out
    content_type = _header(answer["headers"], "content-type")
    status, body = answer["status_code"], answer["content"]
    if answer.get("cut") is not None:  # the stream broke off: what came, then the client's error event
        translator = p.exchange.stream() if p.exchange is not None else p.renamer()
        head = b"".join(translator.feed(body)) if translator is not None else body
        out.client_status, out.client_content_type = status, p.exchange.client_stream_type if p.exchange else SSE_TYPE
        out.client_body = head + cut_tail(translator, p.client)(answer["cut"])
        return out
    if p.exchange is not None:
        out.client_status, out.client_content_type, out.client_body = p.exchange.translate_body(
            status, content_type, body)
    else:
        renamer = p.renamer()
        renamed = renamer.body(body) if renamer is not None and status < 400 else body
        out.client_status, out.client_content_type, out.client_body = status, content_type, renamed
    return out


@dataclasses.dataclass(slots=True)
class WebSocketRerun:
    turns: list[Forward] = dataclasses.field(default_factory=list)  # each turn sent over HTTP, in order
    # each message the connection answered itself (a warm-up, an error): the frames recorded, and today's
    answered: list[tuple[list[str], list[str]]] = dataclasses.field(default_factory=list)


_ENDS = ("response.completed", "response.failed", "response.incomplete", "error")  # frames that end an answer


def rerun_websocket(messages: Iterable[tuple[bool, str]], limit: int) -> WebSocketRerun:
    """Today's :class:`~addon.wssession.Session` fed a recorded connection's text messages (``(from_client,
    text)``, in order; ``limit``: ``max_request_bytes``): what each turn would be sent as over HTTP, to compare
    with the client requests of that connection's turn flows, and the frames it would answer by itself.

    Each client message is answered by the server frames that follow, up to the first that ends an answer
    (``response.completed`` / ``failed`` / ``incomplete``, or an error frame), as turns run one at a time. A
    forwarded turn's frames tell the session how it ended, as they told it live (``Session.ended``); a message
    the session answers itself makes its ids and clock again from that answer's, so a warm-up comes out as
    recorded and the next message's ``previous_response_id`` names it. A connection whose messages were
    not all kept (``max_answer_bytes``) cannot be run again whole."""
    messages = list(messages)
    frames = [text for from_client, text in messages if not from_client]
    source, clock = id_source([]), 0  # the ids and clock of the answer in hand
    session = Session(limit=limit, new_id=lambda prefix: source(prefix), now=lambda: clock)
    out = WebSocketRerun()
    at = 0
    for text in (text for from_client, text in messages if from_client):
        end = next((i + 1 for i in range(at, len(frames)) if _event_type(frames[i]) in _ENDS), len(frames))
        answer, at = frames[at:end], end
        events = [e for e in map(_json, answer) if isinstance(e, dict)]
        responses = [e["response"] for e in events if isinstance(e.get("response"), dict)]
        source = id_source([r["id"] for r in responses if isinstance(r.get("id"), str)])
        clock = next((r["created_at"] for r in responses if isinstance(r.get("created_at"), int)), 0)
        turn = session.turn(text)
        if isinstance(turn, Local):
            out.answered.append((answer, turn.frames))
        else:
            out.turns.append(turn)
            if not any(session.ended(frame) for frame in answer):  # an error frame, or the recording stops
                session.failed()
    return out


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _event_type(frame: str) -> Any:
    event = _json(frame)
    return event.get("type") if isinstance(event, dict) else None


def differences(what: str, recorded: bytes | None, now: bytes | None, content_type: str = "") -> list[str]:
    """Readable differences between a recorded body and today's: JSON by field, SSE by event."""
    if recorded == now:
        return []
    if recorded is None or now is None:
        return [f"{what}: recorded {_short(recorded)}, now {_short(now)}"]
    if content_type.startswith(SSE_TYPE) or recorded.lstrip().startswith((b"event:", b"data:")):
        return _event_differences(what, recorded, now)
    try:
        return _json_differences(what, json.loads(recorded), json.loads(now))
    except ValueError:
        return [f"{what}: recorded {_short(recorded)}, now {_short(now)}"]


def _event_differences(what: str, recorded: bytes, now: bytes) -> list[str]:
    old, new = _events(recorded), _events(now)
    out: list[str] = []
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        where = f"{what} event {i} ({a[0] or 'message'})"
        if a[0] != b[0]:
            out.append(f"{where}: event name recorded {a[0]!r}, now {b[0]!r}")
        out += _json_differences(where, a[1], b[1])
    if len(old) != len(new):
        extra = old[len(new):] if len(old) > len(new) else new[len(old):]
        names = ", ".join(str(name or data) for name, data in extra[:5])
        out.append(f"{what}: recorded {len(old)} events, now {len(new)} "
                   f"({'missing now' if len(old) > len(new) else 'new'}: {names})")
    return out or [f"{what}: same events, different bytes (framing or whitespace)"]


def _events(body: bytes) -> list[tuple[str | None, Any]]:
    decoder = SSEDecoder()
    out: list[tuple[str | None, Any]] = []
    for ev in decoder.feed(body) + decoder.close():
        try:
            out.append((ev.event, json.loads(ev.data)))
        except ValueError:
            out.append((ev.event, ev.data))
    return out


def _json_differences(where: str, a: Any, b: Any, path: str = "$") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in b:
                out.append(f"{where}: {path}.{key}: recorded {_short(a[key])}, now missing")
            elif key not in a:
                out.append(f"{where}: {path}.{key}: new, {_short(b[key])}")
            else:
                out += _json_differences(where, a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _json_differences(where, x, y, f"{path}[{i}]")]
    if a == b and type(a) is type(b):
        return []
    return [f"{where}: {path}: recorded {_short(a)}, now {_short(b)}"]


def _short(value: Any, limit: int = 120) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def _header(headers: list[list[str]] | list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")
