"""The per-frame hot path: prebuilt typed codecs, relay envelopes and stream framing.

What workers and the inference server call for every frame::

    from oasst_shared import codec

    frame = codec.worker_response.encode(TokenResponse(...))      # worker -> websocket
    msg = codec.worker_response.decode(frame)                     # server: typed, one pass
    env = codec.peek_worker_response(frame)                       # relay: tag + request_id only
    queue.push(env.request_id, frame)                             # ...forward the same bytes

Design (each choice measured in ``benchmarks/``):

* One ``msgspec`` decoder per message type, built once at import and reused: decoding a
  union picks the member by its tag in the same pass.
* ``encode`` uses msgspec's module-level encoder, which builds its state per call and is safe
  to call from any thread. ``encode_into`` writes into a caller-owned ``bytearray`` through a
  per-thread ``msgspec`` encoder: msgspec's ``Encoder`` keeps an output buffer between calls,
  so one instance must not encode on two threads at once. ``FrameWriter`` owns one encoder and
  one buffer and hands out each frame in that buffer with no per-frame allocation; it is for
  one thread (or one connection) at a time. Decoders keep no state between calls and are safe
  to share.
* Relays that route frames without reading them use an envelope: a view struct holding only
  the tag and ``request_id``; the original bytes are forwarded unchanged. msgspec has no early
  exit, so the envelope still checks the whole frame (a relay never forwards broken JSON);
  it saves building the other fields, not reading them. ``benchmarks/`` times a struct
  holding ``request_id`` alone as the floor under any such peek.
* Framings: NDJSON (``encode_lines`` / ``decode_lines``), Server-Sent Events (``sse_frame``
  for a message, ``sse_frame_raw`` to forward a frame's JSON unchanged, ``SSEParser``) and a
  MessagePack variant of every codec (``MsgpackCodec``) with 4-byte length-prefixed stream
  framing.
* Any frame that cannot be decoded raises ``FrameDecodeError`` (a ``ValueError`` and a
  ``msgspec.DecodeError``) naming the message type, the JSON path and the frame's tag when
  readable, so a server can log and drop one frame and keep the connection. Frames larger
  than ``max_frame_size`` (default ``DEFAULT_MAX_FRAME_SIZE``, 16 MiB) are rejected before
  decoding.
"""

from __future__ import annotations

import io
import threading
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, Generic, TypeVar, Union, cast

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe, shorten, type_name
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas.base import OasstStruct

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecodeError",
    "FrameWriter",
    "JsonCodec",
    "MsgpackCodec",
    "SSEEvent",
    "SSEParser",
    "WorkerRequestEnvelope",
    "WorkerResponseEnvelope",
    "any_interaction",
    "any_interaction_msgpack",
    "any_task",
    "any_task_msgpack",
    "peek_worker_request",
    "peek_worker_response",
    "sse_frame",
    "sse_frame_raw",
    "worker_request",
    "worker_request_envelope",
    "worker_request_msgpack",
    "worker_response",
    "worker_response_envelope",
    "worker_response_msgpack",
]

T = TypeVar("T")

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
"""Largest frame a codec decodes unless told otherwise (16 MiB); larger ones are rejected."""

# What makes an NDJSON line blank, for bytes and str lines alike: ASCII whitespace (as
# ``bytes.strip()``), not str.strip()'s Unicode whitespace (\x1c-\x1f, \x85, \u2028, ...).
_BLANK: Final = " \t\n\r\x0b\x0c"
_BLANK_BYTES: Final = _BLANK.encode()


def _is_blank(line: bytes | str) -> bool:
    if isinstance(line, str):
        return not line.strip(_BLANK)
    return not line.strip(_BLANK_BYTES)


class FrameDecodeError(msgspec.DecodeError):
    """A frame that could not be decoded as the expected message type.

    A ``ValueError`` (and a ``msgspec.DecodeError``). Attributes: ``type_name`` (what was
    expected), ``path`` (JSON path of the offending value, e.g. ``$.thread.messages[3].role``;
    the missing field itself for a missing one, ``$.type`` for a missing tag; ``$`` when the
    frame as a whole is wrong, ``None`` for a broken stream framing), ``in_key`` (the offending
    value is a key of the mapping at ``path``), ``byte`` / ``line`` / ``column`` (where
    malformed JSON or invalid UTF-8 starts, else ``None``), ``tag`` (the frame's tag value when
    it could be read, else ``None``) and ``size`` (the frame's length in bytes). The message
    never includes the frame itself; an offending value or tag it quotes is cut to about a
    hundred characters.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str,
        path: str | None,
        tag: str | None,
        size: int,
        in_key: bool = False,
        byte: int | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.path = path
        self.tag = tag
        self.size = size
        self.in_key = in_key
        self.byte = byte
        self.line = line
        self.column = column


# --------------------------------------------------------------------------------- envelopes


class WorkerResponseEnvelope(OasstStruct, kw_only=True, gc=False):
    """The routing part of a worker frame: its tag (``response_type``) and ``request_id``.

    One tagged subclass per ``WorkerResponse`` member, derived from the union itself, so the
    peek accepts exactly the tags (and repeated-tag frames) the full decode accepts.
    """

    response_type: ClassVar[str]

    request_id: str | None = None


class WorkerRequestEnvelope(OasstStruct, kw_only=True, gc=False):
    """The routing part of a server frame: its tag (``request_type``) and ``id``."""

    request_type: ClassVar[str]

    id: str | None = None


def _envelope_union(union: Any, base: type[OasstStruct]) -> Any:
    """A tagged union of ``base`` subclasses, one per member of ``union`` with its tag."""
    members = []
    for member in typing.get_args(union):
        config = member.__struct_config__
        name = f"{member.__name__}Envelope"
        # Built through the base's metaclass (as a class statement would), which exposes the tag.
        metaclass: Any = type(base)
        envelope = metaclass(
            name,
            (base,),
            {"__module__": __name__, "__qualname__": name},
            kw_only=True,
            gc=False,
            tag_field=config.tag_field,
            tag=config.tag,
        )
        members.append(envelope)
    return Union[tuple(members)]


WorkerResponseEnvelopes = _envelope_union(inference.WorkerResponse, WorkerResponseEnvelope)
WorkerRequestEnvelopes = _envelope_union(inference.WorkerRequest, WorkerRequestEnvelope)


class _TagOnly(msgspec.Struct, gc=False):
    """Reads whichever tag field a frame has, to name it in errors."""

    type: Any = None
    request_type: Any = None
    response_type: Any = None


_tag_decoder = msgspec.json.Decoder(_TagOnly)
_tag_decoder_msgpack = msgspec.msgpack.Decoder(_TagOnly)


def _frame_tag(data: Any, decoder: Any) -> str | None:
    try:
        found = decoder.decode(data)
    except DECODE_ERRORS:
        return None
    for value in (found.response_type, found.request_type, found.type):
        if isinstance(value, str):
            return value
    return None


# ------------------------------------------------------------------------------------ codecs


class _CodecBase(Generic[T]):
    """What the JSON and MessagePack codecs share: decoding with limits and errors, and the
    per-thread encoders."""

    decode: Callable[[Any], T]
    """One frame as a typed message; ``FrameDecodeError`` if it is not one.

    A plain function built per codec (no bound-method or attribute lookups per call): on the
    hot path every Python-level step shows in the ratios.
    """

    _tag_decoder: Any

    def __init__(
        self, type: Any, decoder: Any, encoder_class: Any, max_frame_size: int, name: str | None
    ) -> None:
        self.type = type
        self.type_name = name or type_name(type)
        self._max_frame_size = max_frame_size
        self.decoder = decoder
        """The underlying msgspec decoder: its ``decode`` skips our frame-size check and raises
        msgspec's own errors (and ``RecursionError`` on absurd nesting, ``UnicodeError`` on
        invalid UTF-8 in a string or a lone surrogate in ``str`` input); it saves one Python
        call per frame for callers whose transport already bounds frame sizes."""
        self._encoder_class = encoder_class
        self._local = threading.local()
        self.decode = self._make_decode()

    @property
    def max_frame_size(self) -> int:
        """Frames longer than this many bytes are rejected before decoding."""
        return self._max_frame_size

    def _make_decode(self) -> Callable[[Any], T]:
        raw: Callable[[Any], T] = self.decoder.decode  # no typing.cast: it is a call per frame
        limit = self._max_frame_size
        error = self._error
        too_large = self._too_large
        errors = DECODE_ERRORS
        _len = len  # a closure cell is cheaper to load than the builtin, measurably so here

        def decode(data: Any) -> T:
            if _len(data) > limit:
                raise too_large(data)
            try:
                return raw(data)
            except errors as exc:
                raise error(data, exc) from None

        decode.__doc__ = f"Decode one frame as {self.type_name}; FrameDecodeError if it is not one."
        return decode

    def _error(self, data: Any, exc: BaseException) -> FrameDecodeError:
        problem = describe(exc, data, self.type_name.rpartition(".")[2])
        tag = None if isinstance(exc, RecursionError) else _frame_tag(data, self._tag_decoder)
        where = f" (tag {shorten(repr(tag))})" if tag is not None else ""
        return FrameDecodeError(
            f"invalid {self.type_name} frame{where}: {problem}",
            type_name=self.type_name,
            path=problem.path,
            tag=tag,
            size=len(data),
            in_key=problem.in_key,
            byte=problem.byte,
            line=problem.line,
            column=problem.column,
        )

    def _too_large(self, data: Any) -> FrameDecodeError:
        size = len(data)
        return FrameDecodeError(
            f"invalid {self.type_name} frame: {size} bytes exceeds max_frame_size={self._max_frame_size}",
            type_name=self.type_name,
            path="$",
            tag=None,
            size=size,
        )

    def encoder(self) -> Any:
        """This thread's msgspec encoder, created on first use.

        For the hottest loops: take it once per thread and call its ``encode_into(obj,
        buffer)`` directly with a buffer the thread owns; that is msgspec's own speed with no
        layer of ours in between.
        """
        local = self._local
        try:
            return local.encoder
        except AttributeError:
            local.encoder = encoder = self._encoder_class()
            return encoder

    def encode_into(self, obj: Any, buffer: bytearray, offset: int = 0) -> None:
        """Write one message into ``buffer`` at ``offset`` (the rest is cut; -1 appends).

        Reuse one buffer per thread to encode without allocating per frame.
        """
        self.encoder().encode_into(obj, buffer, offset)


class JsonCodec(_CodecBase[T]):
    """Encodes and decodes one message type (a struct class or a tagged union) as JSON.

    ``decode`` accepts ``bytes``, ``bytearray``, ``memoryview`` or ``str``. Safe to share
    across threads (see the module docs).
    """

    _tag_decoder = _tag_decoder

    encode = staticmethod(msgspec.json.encode)
    """One message as JSON bytes (every field included, as the reference sends it)."""

    def __init__(
        self, type: Any, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, name: str | None = None
    ) -> None:
        super().__init__(type, msgspec.json.Decoder(type), msgspec.json.Encoder, max_frame_size, name)

    def encode_lines(self, objs: Iterable[Any]) -> bytes:
        """Messages as NDJSON: one JSON document per line, each line ending in ``\\n``."""
        encoder = self.encoder()
        buffer = bytearray()
        for obj in objs:
            encoder.encode_into(obj, buffer, -1)
            buffer.extend(b"\n")
        return bytes(buffer)

    def decode_lines(self, data: bytes | bytearray | memoryview | str) -> list[T]:
        """All messages of an NDJSON document (blank lines are skipped).

        An invalid line raises ``FrameDecodeError`` whose message names the line number
        (1-based) and whose ``path`` is the JSON path within that line.
        """
        # Size first, before any copy (a str's length is a lower bound of its UTF-8 size).
        if len(data) > self._max_frame_size:
            raise self._too_large(data)
        if isinstance(data, str):
            try:
                encoded = data.encode()
            except UnicodeEncodeError:  # a lone surrogate: name the first bad line
                return self._decode_each_line(data.split("\n"))
            if len(encoded) > self._max_frame_size:
                raise self._too_large(encoded)
            data = encoded
        try:
            # Fast path: msgspec splits and decodes all lines in one call.
            return cast("list[T]", self.decoder.decode_lines(data))
        except DECODE_ERRORS:
            pass
        # Slow path, only for a stream with an error: find and name the first bad line.
        return self._decode_each_line(bytes(data).split(b"\n"))

    def _decode_each_line(self, lines: Iterable[bytes | str]) -> list[T]:
        decode = self.decoder.decode
        out: list[T] = []
        for lineno, line in enumerate(lines, 1):
            if _is_blank(line):
                continue
            try:
                out.append(decode(line))
            except DECODE_ERRORS as exc:
                raise self._line_error(lineno, line, exc) from None
        return out

    def _line_error(self, lineno: int, line: bytes | str, exc: BaseException) -> FrameDecodeError:
        err = self._error(line, exc)
        return FrameDecodeError(
            f"line {lineno}: {err}",
            type_name=err.type_name,
            path=err.path,
            tag=err.tag,
            size=err.size,
            in_key=err.in_key,
            byte=err.byte,
            line=lineno,
            column=err.column,
        )

    def iter_lines(self, lines: Iterable[bytes | str]) -> Iterator[T]:
        """Decode a stream of NDJSON lines lazily (e.g. a file opened in binary mode)."""
        for line in lines:
            if not _is_blank(line):
                yield self.decode(line)

    def writer(self, initial_size: int = 512) -> FrameWriter:
        """A ``FrameWriter`` for one thread or connection (see ``FrameWriter``)."""
        return FrameWriter(initial_size)


class MsgpackCodec(_CodecBase[T]):
    """The MessagePack variant of ``JsonCodec`` for binary transports.

    Stream framing (``encode_frames`` / ``decode_frames`` / ``iter_frames``): each message
    is preceded by its length as a 4-byte big-endian unsigned integer.
    """

    _tag_decoder = _tag_decoder_msgpack

    encode = staticmethod(msgspec.msgpack.encode)
    """One message as MessagePack bytes."""

    def __init__(
        self, type: Any, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, name: str | None = None
    ) -> None:
        super().__init__(type, msgspec.msgpack.Decoder(type), msgspec.msgpack.Encoder, max_frame_size, name)

    def encode_frames(self, objs: Iterable[Any]) -> bytes:
        """Messages as one length-prefixed stream."""
        encoder = self.encoder()
        buffer = bytearray()
        for obj in objs:
            start = len(buffer)
            buffer.extend(b"\0\0\0\0")
            encoder.encode_into(obj, buffer, -1)
            buffer[start : start + 4] = (len(buffer) - start - 4).to_bytes(4, "big")
        return bytes(buffer)

    def decode_frames(self, data: bytes | bytearray | memoryview) -> list[T]:
        """All messages of a complete length-prefixed stream."""
        frames = _LengthPrefixed(self._max_frame_size, self)
        out = [self.decode(frame) for frame in frames.feed(data)]
        if frames.pending:
            raise FrameDecodeError(
                f"invalid {self.type_name} stream: {frames.pending} bytes of an incomplete frame at the end",
                type_name=self.type_name,
                path=None,
                tag=None,
                size=len(data),
            )
        return out

    def iter_frames(self, chunks: Iterable[bytes | bytearray | memoryview]) -> Iterator[T]:
        """Decode a length-prefixed stream arriving in chunks of any size."""
        frames = _LengthPrefixed(self._max_frame_size, self)
        for chunk in chunks:
            for frame in frames.feed(chunk):
                yield self.decode(frame)
        if frames.pending:
            raise FrameDecodeError(
                f"invalid {self.type_name} stream: it ended inside a frame",
                type_name=self.type_name,
                path=None,
                tag=None,
                size=frames.pending,
            )


class _LengthPrefixed:
    """Splits a byte stream into 4-byte-length-prefixed frames."""

    def __init__(self, max_frame_size: int, codec: _CodecBase[Any]) -> None:
        self._buffer = bytearray()
        self._max = max_frame_size
        self._codec = codec

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        buffer.extend(chunk)
        frames: list[bytes] = []
        pos = 0
        # Frames are copied out through a view: one copy each, not a slice and then a copy.
        with memoryview(buffer) as view:
            while len(buffer) - pos >= 4:
                size = int.from_bytes(view[pos : pos + 4], "big")
                if size > self._max:
                    raise self._codec._too_large(_Sized(size))
                if len(buffer) - pos - 4 < size:
                    break
                frames.append(bytes(view[pos + 4 : pos + 4 + size]))
                pos += 4 + size
        del buffer[:pos]
        return frames


class _Sized:
    """Stands for a frame announced larger than allowed, without reading it."""

    def __init__(self, size: int) -> None:
        self._size = size

    def __len__(self) -> int:
        return self._size


class FrameWriter:
    """Encodes frames into one reused buffer: no allocation per frame.

    Each ``json``/``sse`` call returns the writer's own ``bytearray`` holding exactly the
    frame; it is overwritten by the next call on the same writer, so send it (or copy it)
    before encoding the next one, and do not keep a ``memoryview`` of it across calls (a
    live view would stop the buffer from resizing). A writer is for one thread or connection
    at a time.
    """

    __slots__ = ("_buffer", "_encoder")

    def __init__(self, initial_size: int = 512) -> None:
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray(initial_size)

    def json(self, obj: Any) -> bytearray:
        """``obj`` as one JSON frame (in the reused buffer)."""
        buffer = self._buffer
        self._encoder.encode_into(obj, buffer)
        return buffer

    def sse(self, obj: Any, event: str | None = None) -> bytearray:
        """Message struct ``obj`` as one Server-Sent Events frame (``data: <json>\\n\\n``, in the
        reused buffer); anything else is a ``TypeError`` (raw JSON bytes: ``sse_raw``)."""
        buffer = self._buffer
        _write_sse(self._encoder, buffer, obj, event, "FrameWriter.sse")
        return buffer

    def sse_raw(self, data: bytes | bytearray | memoryview, event: str | None = None) -> bytearray:
        """One JSON document, forwarded unchanged as a Server-Sent Events frame's data (in the
        reused buffer); checked as ``sse_frame_raw`` checks it."""
        buffer = self._buffer
        _write_sse_raw(buffer, data, event, "FrameWriter.sse_raw")
        return buffer


# ------------------------------------------------------------------------- server-sent events

_SSE_DATA = b"data: "


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


def _write_sse(
    encoder: msgspec.json.Encoder, buffer: bytearray, obj: Any, event: str | None, where: str
) -> None:
    # msgspec would encode bytes as a base64 string and a dict as itself: only structs pass.
    if not isinstance(obj, msgspec.Struct):
        raise _not_a_message(obj, where)
    if event is None:
        buffer[:] = _SSE_DATA
    else:
        buffer[:] = _check_event_name(event)
        buffer.extend(_SSE_DATA)
    # msgspec escapes control characters inside strings, so the JSON is one line.
    encoder.encode_into(obj, buffer, -1)
    buffer.extend(b"\n\n")


# Decoding into ``Raw`` parses the document (structure, literals, numbers, trailing bytes)
# but builds nothing: the cheapest full check msgspec offers (about 0.4x orjson.loads on a
# token frame). It does not read inside strings, so non-ASCII data is also checked as UTF-8.
_json_check = msgspec.json.Decoder(msgspec.Raw)


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


def _write_sse_raw(buffer: bytearray, data: Any, event: str | None, where: str) -> None:
    data = _checked_json_line(data, where)
    if event is None:
        buffer[:] = _SSE_DATA
    else:
        buffer[:] = _check_event_name(event)
        buffer.extend(_SSE_DATA)
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
    _write_sse(encoder, buffer, obj, event, "sse_frame")
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
    head = _SSE_DATA if event is None else _check_event_name(event) + _SSE_DATA
    return b"".join((head, data, b"\n\n"))


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
        return self._last_id

    def feed(self, chunk: bytes | bytearray | memoryview | str) -> list[SSEEvent]:
        if isinstance(chunk, str):
            text = chunk
        else:
            try:
                text = self._decoder.decode(bytes(chunk))
            except UnicodeDecodeError as exc:
                raise FrameDecodeError(
                    f"invalid event stream: {exc}",
                    type_name="text/event-stream",
                    path=None,
                    tag=None,
                    size=len(chunk),
                ) from None
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
            raise FrameDecodeError(
                f"invalid event stream: an event exceeds max_event_size={self._max}",
                type_name="text/event-stream",
                path=None,
                tag=None,
                size=size,
            )
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


# ------------------------------------------------------------------------- prebuilt instances

worker_request: JsonCodec[inference.WorkerRequest] = JsonCodec(inference.WorkerRequest)
worker_response: JsonCodec[inference.WorkerResponse] = JsonCodec(inference.WorkerResponse)
any_task: JsonCodec[protocol.AnyTask] = JsonCodec(protocol.AnyTask)
any_interaction: JsonCodec[protocol.AnyInteraction] = JsonCodec(protocol.AnyInteraction)

worker_request_msgpack: MsgpackCodec[inference.WorkerRequest] = MsgpackCodec(inference.WorkerRequest)
worker_response_msgpack: MsgpackCodec[inference.WorkerResponse] = MsgpackCodec(inference.WorkerResponse)
any_task_msgpack: MsgpackCodec[protocol.AnyTask] = MsgpackCodec(protocol.AnyTask)
any_interaction_msgpack: MsgpackCodec[protocol.AnyInteraction] = MsgpackCodec(protocol.AnyInteraction)

worker_response_envelope: JsonCodec[WorkerResponseEnvelope] = JsonCodec(
    WorkerResponseEnvelopes, name="inference.WorkerResponse envelope"
)
worker_request_envelope: JsonCodec[WorkerRequestEnvelope] = JsonCodec(
    WorkerRequestEnvelopes, name="inference.WorkerRequest envelope"
)

peek_worker_response = worker_response_envelope.decode
"""Tag and ``request_id`` of a worker frame, without decoding the rest (for relays).

Rejects what a full decode would reject at the envelope level (unknown or missing tag, a
non-string ``request_id``, malformed JSON); the rest of the frame is only checked to be JSON.
"""

peek_worker_request = worker_request_envelope.decode
"""Tag and ``id`` of a server frame, without decoding the rest (for relays)."""
