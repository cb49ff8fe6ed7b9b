"""The website's chat event stream reader (``website/src/lib/chat_stream.ts``), ported line for line
to Python over an httpx streaming response, so the tests see exactly the events the browser sees.

``iterator_sse`` is ``iteratorSSE``: the body is decoded as UTF-8 chunk by chunk (``TextDecoderStream``),
each chunk is appended to the unfinished line left by the previous one, split on ``/\\r?\\n/``, and
empty lines are dropped (``filter(Boolean)``). When the joined text does not end with ``"\\n"`` its last
line is kept for the next chunk. Every line becomes one field ``{name: value}`` (name before the first
``:``, value after it with leading whitespace trimmed) and each field is yielded on its own: a
``data:`` line gives ``{"data": ...}``, a comment (``: ping``) gives ``{"": "ping"}``, a line with no
colon gives ``{line[:-1]: line}`` (``slice(0, -1)``, as the JavaScript does).

``chat_events`` is ``handleChatEventStream``: a field ``event: error`` calls ``onError(data)`` (with no
data); ``event: ping`` is skipped; everything else is ``JSON.parse``d from its ``data`` (a comment,
having none, fails to parse and is logged and skipped, as the browser does); then it branches on
``event_type``: ``pending``, ``token`` (accumulating the text), ``message`` (the end: returned),
``error`` (the end: ``onError`` then return its message), ``plugin_intermediate``, or
"Unexpected event". The stream ending without a final chunk returns null. (An earlier version of
the file tested ``plugin_intermediate_response``, a name no server sent; the later one, ported
here, matches the server's ``PluginIntermediateResponseEvent`` and the website's ``InferenceEvent``.)
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["BrowserEvent", "ChatStreamResult", "chat_events", "iterator_sse", "read_chat_stream"]

_LINE_BREAK = re.compile(r"\r?\n")


def iterator_sse(chunks: Iterable[bytes]) -> Iterator[dict[str, str]]:
    """``iteratorSSE(stream)``: one ``{name: value}`` per non-empty line of the byte chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # TextDecoderStream's default
    first = True
    unfinished_line = ""
    for raw in chunks:
        value = decoder.decode(raw)
        if first and value:
            value = value.removeprefix("\ufeff")  # TextDecoder strips a leading BOM
            first = False
        if not value:
            continue
        full_value = unfinished_line + value
        lines = [line for line in _LINE_BREAK.split(full_value) if line]
        # line buffering: the last line is unfinished unless the text ends with "\n"
        unfinished_line = ""
        if full_value[-1] != "\n":
            unfinished_line = lines.pop() if lines else "undefined"  # (JS: [].pop() is undefined)
        for line in lines:
            colon = line.find(":")
            name = line[:colon] if colon >= 0 else line[:-1]  # slice(0, -1) when there is no colon
            yield {name: line[colon + 1 :].lstrip()}


@dataclass
class BrowserEvent:
    """What ``handleChatEventStream`` acted on: ``kind`` is the callback it called
    (``pending``, ``token``, ``message``, ``error``, ``plugin``, ``on_error_field``,
    ``parse_error``, ``unexpected``)."""

    kind: str
    chunk: Any = None
    """The parsed JSON chunk (or the raw data for ``parse_error`` / ``on_error_field``)."""
    partial: str = ""
    """For ``token``: the text so far (what ``onToken`` receives)."""


def chat_events(fields: Iterable[dict[str, str]]) -> Iterator[BrowserEvent]:
    """``handleChatEventStream``: the callbacks it makes, in order, ending where it returns."""
    tokens = ""
    for fld in fields:
        event = fld.get("event")
        data = fld.get("data")
        if event == "error":
            yield BrowserEvent("on_error_field", data)
        elif event == "ping":
            continue
        try:
            if data is None:
                raise ValueError('"undefined" is not valid JSON')
            chunk = json.loads(data)
            kind = chunk.get("event_type") if isinstance(chunk, dict) else None
        except (ValueError, TypeError, AttributeError):
            yield BrowserEvent("parse_error", fld)  # console.error(...), then the next field
            continue
        if kind == "pending":
            yield BrowserEvent("pending", chunk)
        elif kind == "token":
            tokens += chunk["text"]
            yield BrowserEvent("token", chunk, partial=tokens)
        elif kind == "message":
            yield BrowserEvent("message", chunk)
            return
        elif kind == "error":
            yield BrowserEvent("error", chunk)
            return
        elif kind == "plugin_intermediate":
            yield BrowserEvent("plugin", chunk)
        else:
            yield BrowserEvent("unexpected", chunk)


@dataclass
class ChatStreamResult:
    """Everything the browser saw on one event stream."""

    status: int
    headers: httpx.Headers
    events: list[BrowserEvent] = field(default_factory=list)

    def of(self, kind: str) -> list[BrowserEvent]:
        return [e for e in self.events if e.kind == kind]

    @property
    def tokens(self) -> list[str]:
        return [e.chunk["text"] for e in self.of("token")]

    @property
    def text(self) -> str:
        """The text ``onToken`` last showed."""
        tokens = self.of("token")
        return tokens[-1].partial if tokens else ""

    @property
    def final(self) -> BrowserEvent | None:
        """The ``message`` or ``error`` chunk that ended the stream, if any."""
        last = self.events[-1] if self.events else None
        return last if last is not None and last.kind in ("message", "error") else None

    @property
    def comments(self) -> list[BrowserEvent]:
        """Comment lines (``: ping``): the browser fails to parse them and goes on."""
        return [e for e in self.of("parse_error") if "" in e.chunk]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def read_chat_stream(response: httpx.Response) -> Iterator[BrowserEvent]:
    """The browser's callbacks over a streaming httpx response, as they happen."""
    return chat_events(iterator_sse(response.iter_bytes()))
