"""mitmweb content views for LLM API flows.

Two views, registered by :func:`install` (the bridge calls it from its ``load`` hook):

* **SSE** — a ``text/event-stream`` body as numbered events, ``[n] event: name`` then the event's data,
  JSON pretty-printed. Auto-selected for event streams the bridge did not handle.
* **Translation** — for a flow the bridge handled: the other side of the translation next to the shown
  message, each part labelled with its wire format, under the flow's summary line. On the request: the
  client's original request, then the request as sent upstream. On the response: the upstream's
  response, then the response as the client got it. JSON bodies are pretty-printed, the recorded side's
  headers come last (both bodies first); streams are shown one event per line with what the event carries before the
  keys every event repeats (mitmweb clips a line at the page width), so both sides of a long stream fit
  within what mitmweb shows at first (512 lines). Auto-selected for every bridge flow.

Both read only what the bridge put in ``flow.metadata`` (``bridge``, ``bridge_client_request``,
``bridge_upstream_response``); flows recorded before the bridge kept those, pass-through flows and
messages with no body still render. A view is called by mitmweb on whatever a flow file holds, so every
view here returns text for any input and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mitmproxy import contentviews, http
from mitmproxy.contentviews import Contentview, Metadata, SyntaxHighlight

from .sse import SSEDecoder
from .translate import SSE_TYPE

__all__ = ["SSEContentview", "TranslationContentview", "install", "render_sse"]

# Above mitmproxy's own views (JSON says 1) so an LLM flow opens in ours; Translation beats SSE.
SSE_PRIORITY = 2.0
TRANSLATION_PRIORITY = 3.0
RULE = "─" * 8
# Between blocks: a line holding one space, as mitmweb draws each line as a <div> and an empty one has no height.
GAP = "\n \n"
SUMMARY_ORDER = ("client_format", "upstream_format", "operation", "mode", "endpoint", "model", "upstream_model",
                 "status", "outcome", "usage", "duration_ms", "warnings")


# Keys every event of a stream repeats (and nulls): on an event's one line they go last, so what it carries
# (its type, its delta, a finish reason) is what mitmweb shows before it clips the line at the page width.
_BOILERPLATE = {"id", "object", "created", "created_at", "model", "system_fingerprint", "service_tier",
                "obfuscation", "sequence_number", "index", "logprobs", "item_id", "output_index", "content_index"}


def _useful_first(value: Any) -> Any:
    if isinstance(value, dict):
        # stable: the order within each group stays; a null says nothing either
        keys = sorted(value, key=lambda k: k in _BOILERPLATE or value[k] is None)
        return {k: _useful_first(value[k]) for k in keys}
    if isinstance(value, list):
        return [_useful_first(v) for v in value]
    return value


def _pretty_json(text: str, compact: bool = False) -> str | None:
    """``text`` as JSON, indented or on one line (what changes first), or None when it is not JSON
    (``[DONE]``, a partial event, prose)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if compact:
        return json.dumps(_useful_first(value), ensure_ascii=False)
    return json.dumps(value, indent=2, ensure_ascii=False)


def _as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def render_sse(data: bytes, compact: bool = False) -> str:
    """A stream as numbered events: ``[n] event: name`` (``[n]`` when nameless), then the event's data.

    Data that is JSON is pretty-printed below its event line, or with ``compact`` put on that same line
    in one-line JSON (one line per event, so both streams of a translation fit the view together).

    Tolerant by construction: bytes that are not UTF-8 become U+FFFD before decoding (the decoder
    would refuse them), a last event without its blank line is still shown, and text that holds no
    event at all is shown as is under a note, so a truncated or garbled stream is still readable.
    """
    if not data:
        return "(empty body)"
    decoder = SSEDecoder(max_event_size=len(data) + 1)  # the whole body is in hand: no size limit
    try:
        events = decoder.feed(data.decode("utf-8", "replace").encode("utf-8")) + decoder.close()
    except Exception as e:  # the view must not raise; mitmweb would replace it with a traceback
        return f"(not decodable as SSE: {e})\n{_as_text(data)}"
    if not events:
        return f"(no SSE event in {len(data)} bytes)\n{_as_text(data)}"
    blocks = []
    for n, ev in enumerate(events, 1):
        head = f"[{n}] event: {ev.event}" if ev.event is not None else f"[{n}]"
        if compact:
            one_line = _pretty_json(ev.data, compact=True) or ev.data.replace("\n", "\\n")
            blocks.append(f"{head}  {one_line}")
        else:
            blocks.append(f"{head}\n{_pretty_json(ev.data) or ev.data}")
    return "\n".join(blocks) if compact else GAP.join(blocks)


def _render_body(data: bytes, content_type: str | None) -> str:
    """A body by its kind: SSE as numbered events (one line each), JSON pretty, anything else as text."""
    if content_type and content_type.lower().startswith(SSE_TYPE):
        return render_sse(data, compact=True)
    if not data:
        return "(empty body)"
    text = _as_text(data)
    return _pretty_json(text) or text


def _str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _headers(raw: object) -> list[tuple[str, str]]:
    """The ``[[name, value], ...]`` list the bridge stores; anything malformed is skipped."""
    out: list[tuple[str, str]] = []
    if isinstance(raw, (list, tuple)):
        for pair in raw:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                out.append((_str(pair[0]), _str(pair[1])))
    return out


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _content(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return b""


def _summary_line(flow: http.HTTPFlow, summary: dict[str, Any]) -> str:
    """The flow's one-line comment (what the mitmweb list shows), else one built from the summary."""
    if flow.comment:
        return flow.comment
    arrow = f"{summary.get('client_format', '?')} → {summary.get('upstream_format', '?')}"
    rest = [str(summary[k]) for k in ("endpoint", "model", "status") if summary.get(k) is not None]
    return " · ".join([arrow, *rest])


def _summary_details(summary: dict[str, Any]) -> str:
    """Every summary field on one line, ``key=value`` (JSON for non-strings), for what the comment omits.

    Known keys first in a fixed order, the rest sorted: a flow file does not keep a dict's key order.
    """
    parts = []
    keys = [k for k in SUMMARY_ORDER if k in summary] + sorted((k for k in summary if k not in SUMMARY_ORDER), key=str)
    for key in keys:
        value = summary[key]
        shown = value if isinstance(value, str) else _compact_json(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def _compact_json(value: object) -> str:
    try:  # sorted: nested dicts come back from a flow file in another order too
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(value, ensure_ascii=False, default=str)


class SSEContentview(Contentview):
    """A Server-Sent Events body as a numbered list of events."""

    @property
    def name(self) -> str:
        return "SSE"

    @property
    def syntax_highlight(self) -> SyntaxHighlight:
        return "yaml"  # mitmproxy's YAML highlighter also colours the JSON data

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return render_sse(data)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        ctype = metadata.content_type or ""
        return SSE_PRIORITY if ctype.lower().startswith(SSE_TYPE) else -1


class TranslationContentview(Contentview):
    """Both sides of the bridge's translation of one message, with the flow's summary."""

    @property
    def name(self) -> str:
        return "Translation"

    @property
    def syntax_highlight(self) -> SyntaxHighlight:
        return "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        try:
            return self._prettify(data, metadata)
        except Exception as e:  # never raise: show the message itself with what went wrong
            return f"(translation view failed: {type(e).__name__}: {e}){GAP}{_render_body(data, metadata.content_type)}"

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        flow = metadata.flow
        if isinstance(flow, http.HTTPFlow) and isinstance(flow.metadata.get("bridge"), dict):
            return TRANSLATION_PRIORITY
        return -1

    def _prettify(self, data: bytes, metadata: Metadata) -> str:
        flow = metadata.flow
        summary = flow.metadata.get("bridge") if isinstance(flow, http.HTTPFlow) else None
        if not isinstance(flow, http.HTTPFlow) or not isinstance(summary, dict):
            return "(not a flow the bridge handled)" + GAP + _render_body(data, metadata.content_type)
        client_fmt = str(summary.get("client_format") or "?")
        upstream_fmt = str(summary.get("upstream_format") or "?")
        message = metadata.http_message
        this = _render_body(data, metadata.content_type)
        parts = [_summary_line(flow, summary), _summary_details(summary)]
        tail = ""  # the recorded side's headers: last, so that both bodies are at the top

        if isinstance(message, http.Request):
            recorded = flow.metadata.get("bridge_client_request")
            if isinstance(recorded, dict):
                headers = _headers(recorded.get("headers"))
                title = (f"client request ({client_fmt}) · {_str(recorded.get('method', '?'))} "
                         f"{_str(recorded.get('url', '?'))}")
                body = _render_body(_content(recorded.get("content")), _header(headers, "content-type"))
                parts.append(_part(title, body))
                tail = _headers_part(f"client request headers ({len(headers)})", headers)
            else:
                parts.append(_part(f"client request ({client_fmt})",
                                   "(not recorded: the flow holds only the request as sent upstream)"))
            parts.append(_part(f"upstream request ({upstream_fmt}) · {message.method} {message.pretty_url}"
                               " · this message", this))
        elif isinstance(message, http.Response):
            recorded = flow.metadata.get("bridge_upstream_response")
            if isinstance(recorded, dict):
                headers = _headers(recorded.get("headers"))
                title = (f"upstream response ({upstream_fmt}) · {_str(recorded.get('status_code', '?'))} "
                         f"{_str(recorded.get('reason', ''))}").rstrip()
                body = _render_body(_content(recorded.get("content")), _header(headers, "content-type"))
                parts.append(_part(title, body))
                tail = _headers_part(f"upstream response headers ({len(headers)})", headers)
            else:
                why = ("the bridge answered by itself, no upstream was asked" if "bridge_client_request"
                       in flow.metadata else "not recorded with this flow")
                parts.append(_part(f"upstream response ({upstream_fmt})", f"({why})"))
            parts.append(_part(f"client response ({client_fmt}) · {message.status_code} {message.reason}"
                               " · this message", this))
        else:
            parts.append(this)
        return GAP.join([*parts, *([tail] if tail else [])])


def _part(title: str, body: str) -> str:
    """One side: a rule with its title, then its body."""
    return f"{RULE} {title} {RULE}\n{body}"


def _headers_part(title: str, headers: list[tuple[str, str]]) -> str:
    """The recorded side's headers (the shown message's are above the view, in mitmweb's own list): at
    the end of the view, since twenty of them would push both bodies below the fold."""
    return _part(title, "\n".join(f"{k}: {v}" for k, v in headers) or "(none)")


VIEWS: tuple[type[Contentview], ...] = (SSEContentview, TranslationContentview)


def install() -> None:
    """Register the bridge's content views with mitmproxy (idempotent).

    A view already registered from this very class is left alone; one from an older copy of this
    module (a reloaded script) is replaced, so edits take effect.
    """
    for cls in VIEWS:
        view = cls()
        existing = contentviews.registry.get(view.name.lower())
        if type(existing) is not cls:
            contentviews.add(view)
