"""Server-Sent Events: the writer (``sse_frame``, ``sse_frame_raw``) and the incremental
``text/event-stream`` parser (``SSEParser``, yielding ``SSEEvent``).

An event is ``[event: <name>\\n]data: <json>\\n\\n``: one line of JSON per event, the
framing a browser's ``EventSource`` and the reference's inference server use for token
streams. ``FrameWriter.sse`` / ``FrameWriter.sse_raw`` (``oasst_shared.codec``) write the same
frames into a reused buffer through the functions here.
"""

from __future__ import annotations

import io
import threading
from typing import Any, Final

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe
from oasst_shared.codec._errors import DEFAULT_MAX_FRAME_SIZE, stream_error

__all__ = ["SSEEvent", "SSEParser", "sse_frame", "sse_frame_raw"]

_SSE_DATA: Final = b"data: "
_STREAM: Final = "text/event-stream"  # the type_name of a broken stream's FrameDecodeError


def _check_event_name(event: str) -> bytes:
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain line breaks")
    return f"event: {event}\n".encode()


def _not_a_message(obj: Any, where: str) -> TypeError:
    what = type(obj).__name__
    hint = (
        f"; to forward a JSON document's bytes unchanged use {where}_raw"
        if isinstance(obj, (bytes, bytearray, memoryview))
        else ""
    )
    return TypeError(f"{where} encodes a message struct, got {what}{hint}")


def _head(event: str | None) -> bytes:
    """What an event's frame starts with, up to its data."""
    return _SSE_DATA if event is None else _check_event_name(event) + _SSE_DATA


def write_sse(
    encoder: msgspec.json.Encoder, buffer: bytearray, obj: Any, event: str | None, where: str
) -> None:
    """Message struct ``obj`` as one event, in place of what ``buffer`` held (``where`` names
    the caller in a ``TypeError``)."""
    # msgspec would encode bytes as a base64 string and a dict as itself: only structs pass.
    if not isinstance(obj, msgspec.Struct):
        raise _not_a_message(obj, where)
    buffer[:] = _head(event)
    # msgspec escapes control characters inside strings, so the JSON is one line.
    encoder.encode_into(obj, buffer, -1)
    buffer.extend(b"\n\n")


# Decoding into ``Raw`` parses the document (structure, literals, numbers, trailing bytes)
# but builds nothing: the cheapest full check msgspec offers (about 0.4x orjson.loads on a
# token frame). It does not read inside strings, so non-ASCII data is also checked as UTF-8.
_json_check: Final = msgspec.json.Decoder(msgspec.Raw)


def _checked_json_line(given: object, where: str) -> bytes | bytearray:
    data: bytes | bytearray
    if isinstance(given, memoryview):
        data = given.tobytes()
    elif isinstance(given, (bytes, bytearray)):
        data = given
    else:
        hint = "; encode a message struct with sse_frame" if isinstance(given, msgspec.Struct) else ""
        raise TypeError(f"{where} forwards JSON bytes, got {type(given).__name__}{hint}")
    for line_break in (b"\n", b"\r"):
        at = data.find(line_break)
        if at >= 0:
            raise ValueError(
                f"{where}: the data holds a line break at byte {at}; an SSE event's data must be"
                " one line of JSON (re-encode it compactly, or decode it and use sse_frame)"
            )
    try:
        _json_check.decode(data)
        if not data.isascii():
            data.decode("utf-8")
    except DECODE_ERRORS as exc:
        problem = describe(exc, data, "JSON")
        raise ValueError(f"{where}: the data is not one JSON document: {problem.message}") from None
    return data


def write_sse_raw(buffer: bytearray, data: Any, event: str | None, where: str) -> None:
    """One JSON document's bytes, checked as ``sse_frame_raw`` checks them, as one event in
    place of what ``buffer`` held."""
    data = _checked_json_line(data, where)
    buffer[:] = _head(event)
    buffer.extend(data)
    buffer.extend(b"\n\n")


_sse_local = threading.local()


def sse_frame(obj: Any, event: str | None = None) -> bytes:
    """Message struct ``obj`` as one Server-Sent Events frame: ``[event: <name>\\n]data:
    <json>\\n\\n``.

    Anything but a struct (``bytes`` included, which msgspec would turn into a base64 string)
    is a ``TypeError``; a relay forwarding a frame's bytes uses ``sse_frame_raw``.
    """
    try:
        encoder, buffer = _sse_local.state
    except AttributeError:
        encoder, buffer = _sse_local.state = (msgspec.json.Encoder(), bytearray(256))
    write_sse(encoder, buffer, obj, event, "sse_frame")
    return bytes(buffer)


def sse_frame_raw(data: bytes | bytearray | memoryview, event: str | None = None) -> bytes:
    """One JSON document's bytes, unchanged, as a Server-Sent Events frame's data:
    ``[event: <name>\\n]data: <data>\\n\\n``.

    For a relay that peeked a frame (``peek_worker_response``) and forwards the original bytes
    without re-encoding them. The data is checked: bytes-like (else ``TypeError``), without
    a line break (SSE would split it into several data lines) and one valid JSON document in
    UTF-8 (else ``ValueError`` naming the byte); the check parses the JSON without building
    anything (msgspec into ``msgspec.Raw``).
    """
    data = _checked_json_line(data, "sse_frame_raw")
    return b"".join((_head(event), data, b"\n\n"))


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched Server-Sent Event."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Incremental parser for a ``text/event-stream`` (the WHATWG rules).

    Feed chunks of any size (bytes or str); ``feed`` returns the events completed by that
    chunk. Handles ``\\n``, ``\\r\\n`` and ``\\r`` line ends (also split across chunks),
    multi-line ``data``, comments (``:`` lines), ``event``, ``id`` and ``retry`` fields, a
    leading byte-order mark, and UTF-8 sequences split across chunks. ``max_event_size``
    bounds the characters buffered for one event. Invalid UTF-8 raises ``FrameDecodeError``
    unless ``errors="replace"`` (the browsers' behaviour) is asked for. Any chunking takes
    time linear in the stream's length. A ``retry`` of 10**18 ms or more is ignored.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_FRAME_SIZE, errors: str = "strict") -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")(errors)
        # Text after the last complete line, in a StringIO: a line arriving in many small
        # chunks is gathered in linear time and without one object per chunk.
        self._pending = io.StringIO()
        self._pending_size = 0
        self._skip_lf = False  # last chunk ended in \r: a following \n belongs to it
        self._first = True
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._max = max_event_size

    @property
    def last_event_id(self) -> str | None:
        """The stream's last ``id`` field (a reconnection sends it as ``Last-Event-ID``), or ``None``."""
        return self._last_id

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[SSEEvent]:
        """The events this chunk completes, in order (an empty list while an event is still open)."""
        if isinstance(chunk, str):
            text = chunk
        else:
            try:
                text = self._decoder.decode(bytes(chunk))
            except UnicodeDecodeError as exc:
                raise stream_error(_STREAM, "event stream", str(exc), len(chunk)) from None
        if self._first and text:
            if text.startswith("\ufeff"):
                text = text[1:]
            self._first = False
        if self._skip_lf and text:
            if text.startswith("\n"):
                text = text[1:]
            self._skip_lf = False
        events: list[SSEEvent] = []
        start = 0
        length = len(text)
        # The next \r and \n at or after ``start``; each is searched again only once passed,
        # so a chunk is scanned once however many lines it holds.
        cr = text.find("\r")
        lf = text.find("\n")
        while cr != -1 or lf != -1:
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            elif cr + 1 < length:
                end, nxt = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            else:  # \r at the very end: maybe half of a \r\n
                end, nxt = cr, cr + 1
                self._skip_lf = True
            line = text[start:end]
            if self._pending_size:
                self._pending.write(line)
                line = self._pending.getvalue()
                self._clear_pending()
            self._line(line, events)
            start = nxt
            if cr != -1 and cr < start:
                cr = text.find("\r", start)
            if lf != -1 and lf < start:
                lf = text.find("\n", start)
        if start < length:
            self._pending_size += self._pending.write(text[start:] if start else text)
        if self._pending_size + self._data_size > self._max:
            size = self._pending_size + self._data_size
            self._reset_event()
            self._clear_pending()
            raise stream_error(_STREAM, "event stream", f"an event exceeds max_event_size={self._max}", size)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: an incomplete last event is discarded (as the WHATWG rules say)."""
        self._clear_pending()
        self._reset_event()
        return []

    def _clear_pending(self) -> None:
        if self._pending_size:
            self._pending = io.StringIO()
            self._pending_size = 0

    def _reset_event(self) -> None:
        self._data = []
        self._data_size = 0
        self._event = ""

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(
                    SSEEvent(
                        data="\n".join(self._data),
                        event=self._event or "message",
                        id=self._last_id,
                        retry=self._retry,
                    )
                )
            self._reset_event()
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isdigit() and value.isascii():
            # int() refuses over 4300 digits; a delay of 10**18 ms or more is no delay anyone
            # means, so such a value is ignored like any other invalid one.
            digits = value.lstrip("0")
            if len(digits) <= 18:
                self._retry = int(digits or "0")
