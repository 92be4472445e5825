"""Reading a Gemini request's ``contents`` into IR messages (gemini.md §2.3, §2.4, §6, §7).

Every field in camelCase or snake_case; roles ``user``/``model`` (``function``, the old role of results, is a
user turn); parts one by one. A part's ``thoughtSignature`` becomes the IR's carrier: for Gemini's own, a
:class:`Reasoning` with ``Opaque(origin="gemini")`` right before the part it rode on, holding the thought
summary that preceded it; for reasoning of another origin the bridge put there (``wire.read_signature``), its
reasoning back at the start of the message, where Claude's thinking and Codex's reasoning items stand.
Summaries with no signature after them carry nothing an upstream could use and are left out. Calls without
ids (the API gives none) get ids made from their place; each functionResponse is paired with its call by id,
else by name, else by order (the API pairs by count and order, §6.1).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from ...errors import BadRequest, Unsupported
from ...ir import Document, Image, Message, Opaque, Part, Reasoning, Role, Text, ToolCall, ToolResult
from ..common import JSON, as_object, dumps
from .wire import NAME, get, get_list, get_obj, get_str, read_signature, standard_b64

__all__ = ["parse_contents"]

_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult", "toolCall", "toolResponse")
_FILE_HOSTS = ("gs://", "https://generativelanguage.googleapis.com/")  # readable by Gemini only (§9.6)


def parse_contents(contents: list[Any], warnings: list[str]) -> list[Message]:
    """The messages of ``contents``; what has no equivalent is added to ``warnings``. Raises
    :class:`BadRequest` naming the field."""
    return _Contents(warnings).parse(contents)


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    answered: bool = False


@dataclass(slots=True)
class _Contents:
    """The parse of ``contents``: ids for calls that have none, results paired with their calls."""

    warnings: list[str]
    calls: list[_Call] = field(default_factory=list)  # every call so far, in order

    def parse(self, contents: list[Any]) -> list[Message]:
        messages: list[Message] = []
        # Consecutive model contents are one turn: google-genai's chat helper keeps one per stream chunk
        # (gemini.md §2.3), and a signature or carried reasoning in one belongs with the parts of the others.
        turn: list[tuple[int, int, JSON]] = []  # (content index, part index, part) of the model turn so far
        for i, raw in enumerate(contents):
            where = f"contents.{i}."
            content = as_object(raw, f"contents.{i}")
            role = get_str(content, "role", where) or "user"
            if role not in ("user", "model", "function"):
                raise BadRequest(f"{where}role: expected user or model", param=f"{where}role")
            parts = [as_object(p, f"{where}parts.{j}") for j, p in enumerate(get_list(content, "parts", where))]
            if role == "model":
                turn += [(i, j, part) for j, part in enumerate(parts)]
                continue
            self._end_turn(turn, messages)
            ir = tuple(p for j, part in enumerate(parts) if (p := self._user_part(part, f"{where}parts.{j}.")))
            if ir:
                messages.append(Message(role=Role.USER, content=ir))
        self._end_turn(turn, messages)
        return messages

    def _end_turn(self, turn: list[tuple[int, int, JSON]], messages: list[Message]) -> None:
        if turn and (ir := self._model_parts(turn)):
            messages.append(Message(role=Role.ASSISTANT, content=ir))
        turn.clear()

    def _model_parts(self, parts: list[tuple[int, int, JSON]]) -> tuple[Part, ...]:
        front: list[Part] = []  # carried reasoning of another origin: it came first in its message
        out: list[Part] = []
        thoughts: list[str] = []  # a run of thought summaries, waiting for the signature after them
        for index, j, part in parts:
            here = f"contents.{index}.parts.{j}."
            signature = read_signature(get(part, "thoughtSignature"))
            if isinstance(signature, list):
                front += [Reasoning(text=c.text, opaque=c.opaque, redacted=c.redacted) for c in signature]
                signature = None
            if get(part, "thought") is True:
                thoughts.append(get_str(part, "text", here) or "")
                if signature is not None:  # a signature on a thought part: the two stay together
                    out.append(Reasoning(text="".join(thoughts), opaque=Opaque(origin=NAME, data=signature)))
                    thoughts = []
                continue
            if signature is not None:
                out.append(Reasoning(text="".join(thoughts), opaque=Opaque(origin=NAME, data=signature)))
            # Summaries with no signature after them carry nothing an upstream can use.
            thoughts = []
            converted = self._model_part(part, index, j, here)
            if isinstance(converted, Text) and out and isinstance(out[-1], Text):
                out[-1] = Text(text=out[-1].text + converted.text)  # pieces of one answer (a part per chunk)
            elif converted is not None:
                out.append(converted)
        return (*front, *out)

    def _model_part(self, part: JSON, index: int, j: int, where: str) -> Part | None:
        call = get(part, "functionCall")
        if call is not None:
            call = as_object(call, f"{where}functionCall")
            name = get_str(call, "name", f"{where}functionCall.", required=True) or ""
            call_id = get_str(call, "id", f"{where}functionCall.") or f"call_{index}_{j}"
            args = get(call, "args")
            if args is not None and not isinstance(args, dict):
                raise BadRequest(f"{where}functionCall.args: expected an object", param=f"{where}functionCall.args")
            self.calls.append(_Call(call_id, name))
            return ToolCall(id=call_id, name=name, arguments=dumps(args or {}))
        return self._content_part(part, where)

    def _user_part(self, part: JSON, where: str) -> Part | None:
        response = get(part, "functionResponse")
        if response is None:
            return self._content_part(part, where)
        response = as_object(response, f"{where}functionResponse")
        here = f"{where}functionResponse."
        name = get_str(response, "name", here) or ""
        call = self._pair(get_str(response, "id", here), name, here)
        payload = get(response, "response")
        if payload is not None and not isinstance(payload, dict):
            raise BadRequest(f"{here}response: expected an object", param=f"{here}response")
        text, is_error = _response_text(payload or {})
        media = [m for k, p in enumerate(get_list(response, "parts", here))
                 if isinstance(m := self._content_part(as_object(p, f"{here}parts.{k}"), f"{here}parts.{k}."),
                               Image | Document)]
        return ToolResult(call_id=call, content=(Text(text=text), *media), is_error=is_error)

    def _pair(self, call_id: str | None, name: str, where: str) -> str:
        """The call a response answers: by id, else the first unanswered call of that name, else the
        first unanswered one (the API pairs by count and order, gemini.md §6.1)."""
        open_calls = [c for c in self.calls if not c.answered]
        found = next((c for c in open_calls if call_id is not None and c.id == call_id), None) \
            or next((c for c in open_calls if c.name == name), None) \
            or next(iter(open_calls), None)
        if found is None:
            if call_id:
                return call_id  # answers nothing: translate.py names it in the client's terms
            raise BadRequest(f"{where}name: this functionResponse answers no earlier functionCall",
                             param=f"{where}name")
        found.answered = True
        return found.id

    def _content_part(self, part: JSON, where: str) -> Part | None:
        if not any(get(part, key) is not None for key in _DATA_FIELDS):
            if get(part, "thoughtSignature") is not None or get(part, "thought") is not None:
                return None  # a bare signature part: its carrier is already read
            raise BadRequest(f"{where[:-1]}: a part needs one of text, inlineData, fileData, functionCall, "
                             "functionResponse", param=where[:-1])
        text = get(part, "text")
        if text is not None:
            if not isinstance(text, str):
                raise BadRequest(f"{where}text: expected a string", param=f"{where}text")
            return Text(text=text) if text else None
        if get(part, "inlineData") is not None:
            return _inline(get_obj(part, "inlineData", where), f"{where}inlineData.")
        if get(part, "fileData") is not None:
            return _file(get_obj(part, "fileData", where), f"{where}fileData.")
        if get(part, "functionCall") is not None:  # a call in a user content: no API produces that
            raise BadRequest(f"{where}functionCall: only a model content can hold a functionCall",
                             param=f"{where}functionCall")
        code = get(part, "executableCode")
        if code is not None:  # the built-in code execution tool's history: flattened to text (§9.12)
            code = as_object(code, f"{where}executableCode")
            return Text(text=f"```{str(get(code, 'language') or 'python').lower()}\n{get(code, 'code') or ''}\n```")
        result = get(part, "codeExecutionResult")
        if result is not None:
            result = as_object(result, f"{where}codeExecutionResult")
            return Text(text=str(get(result, "output") or get(result, "outcome") or ""))
        self.warnings.append(f"{where[:-1]}: a server-side tool part has no equivalent and was dropped")
        return None


def _response_text(response: JSON) -> tuple[str, bool]:
    """gemini.md §6.3: ``{"output": …}`` is the result, ``{"error": …}`` an error; else the whole object."""
    for key, is_error in (("error", True), ("output", False)):
        if key in response and len(response) == 1:
            value = response[key]
            return (value if isinstance(value, str) else dumps(value)), is_error
    return dumps(response), False


def _bytes(data: str, where: str) -> str:
    try:
        return base64.b64encode(base64.b64decode(standard_b64(data), validate=True)).decode()
    except (ValueError, binascii.Error):
        raise BadRequest(f"{where}data: expected base64", param=f"{where}data") from None


def _inline(blob: JSON, where: str) -> Image | Document:
    media = (get_str(blob, "mimeType", where, required=True) or "").split(";")[0].strip().lower()
    data = _bytes(get_str(blob, "data", where, required=True) or "", where)
    if media.startswith("image/"):
        return Image(media_type=media, data=data)
    if media.startswith("text/"):  # Anthropic takes text documents as text, Chat as a text part
        return Document(media_type="text/plain", text=base64.b64decode(data).decode("utf-8", "replace"),
                        title=get_str(blob, "displayName", where))
    if media == "application/pdf":
        return Document(media_type=media, data=data, title=get_str(blob, "displayName", where))
    raise Unsupported(f"{where}mimeType: {media!r} cannot be sent to another API (images, PDF and text only)",
                      param=f"{where}mimeType")


def _file(data: JSON, where: str) -> Image | Document:
    uri = get_str(data, "fileUri", where, required=True) or ""
    if uri.startswith(_FILE_HOSTS) or not uri.startswith(("http://", "https://")):
        raise Unsupported(f"{where}fileUri: a file only Gemini can read cannot be sent to another API",
                          param=f"{where}fileUri")
    media = get_str(data, "mimeType", where) or mimetypes.guess_type(uri)[0] or ""
    if media.startswith("image/"):
        return Image(url=uri)
    return Document(url=uri, media_type=media or None, title=get_str(data, "displayName", where))
