"""``JsonCodec``, and the codec base it shares with ``MsgpackCodec``: the decode function
built per codec, the frame-size limit, the errors and the per-thread encoders.

Everything a frame passes through on the hot path is here; the reasons for each choice are in
the package docstring (``oasst_shared.codec``) and measured in ``benchmarks/``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, Generic, TypeVar, cast

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, type_name
from oasst_shared.codec._errors import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecodeError,
    decode_error,
    on_line,
    too_large,
)
from oasst_shared.codec._framing import FrameWriter, encode_lines, is_blank
from oasst_shared.schemas._check import encode_check_enabled, make_verifier

__all__ = ["JsonCodec"]

T = TypeVar("T")

CHECK_ENCODE: Final = encode_check_enabled()
"""Whether codecs check every message they encode unless told otherwise (``check_encode=``):
``OASST_SHARED_CHECK_ENCODE=1`` in the environment when this module is first imported."""


class _CheckingEncoder:
    """A msgspec encoder that first checks each message as its receiver would decode it."""

    __slots__ = ("_encoder", "_verify")

    def __init__(self, encoder: Any, verify: Callable[[Any], bytes]) -> None:
        self._encoder = encoder
        self._verify = verify

    def encode(self, obj: Any) -> bytes:
        return self._verify(obj)

    def encode_into(self, obj: Any, buffer: bytearray, offset: int = 0) -> None:
        self._verify(obj)
        self._encoder.encode_into(obj, buffer, offset)

    def __getattr__(self, name: str) -> Any:  # the encoder's other attributes (enc_hook, ...)
        return getattr(self._encoder, name)


class _CheckingFrameWriter(FrameWriter):
    """A ``FrameWriter`` that first checks each message as its receiver would decode it."""

    __slots__ = ("_verify",)

    def __init__(self, initial_size: int, verify: Callable[[Any], bytes]) -> None:
        super().__init__(initial_size)
        self._verify = verify

    def json(self, obj: Any) -> bytearray:
        self._verify(obj)
        return super().json(obj)

    def sse(self, obj: Any, event: str | None = None) -> bytearray:
        self._verify(obj)
        return super().sse(obj, event)


class _CodecBase(Generic[T]):
    """What the JSON and MessagePack codecs share: decoding with limits and errors, and the
    per-thread encoders."""

    decode: Callable[[Any], T]
    """One frame as a typed message; ``FrameDecodeError`` if it is not one.

    A plain function built per codec (no bound-method or attribute lookups per call): on the
    hot path every Python-level step shows in the ratios.
    """

    _msgpack: ClassVar[bool]
    """Whether frames are MessagePack (else JSON): how ``frame_tag`` reads a bad frame's tag."""

    def __init__(
        self,
        type: Any,
        decoder: Any,
        encoder_class: Any,
        max_frame_size: int,
        name: str | None,
        *,
        encode: Callable[[Any], bytes],
        check_encode: bool | None,
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
        self._check_encode = CHECK_ENCODE if check_encode is None else check_encode
        if self._check_encode:
            self._check_every_encode(make_verifier(encode, decoder.decode, self.type_name))

    @property
    def check_encode(self) -> bool:
        """Whether every encoding call first checks the message as its receiver would decode it.

        Off unless the codec was made with ``check_encode=True``, or ``OASST_SHARED_CHECK_ENCODE=1``
        was set when ``oasst_shared.codec`` was imported (the prebuilt codecs). On, ``encode``,
        ``encode_into``, ``encoder()``, the stream encoders and ``writer()`` raise
        ``oasst_shared.schemas.MessageCheckError`` (naming the class, the path and the expected
        type) for a message whose encoding this codec's decoder would refuse. Off, nothing of it
        runs: ``encode`` is msgspec's own function.
        """
        return self._check_encode

    def _check_every_encode(self, verify: Callable[[Any], bytes]) -> None:
        """Debug mode: put the check in front of every encoding call of this codec, as instance
        attributes, so that the class's own (unchecked) encode path stays as it is."""
        vars(self)["encode"] = verify  # encodes, decodes the bytes, returns them
        plain_encoder = self._encoder_class
        self._encoder_class = lambda: _CheckingEncoder(plain_encoder(), verify)

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
                raise too_large(_len(data))
            try:
                return raw(data)
            except errors as exc:
                raise error(data, exc) from None

        decode.__doc__ = f"Decode one frame as {self.type_name}; FrameDecodeError if it is not one."
        return decode

    def _error(self, data: Any, exc: BaseException) -> FrameDecodeError:
        return decode_error(self.type_name, data, exc, msgpack=self._msgpack)

    def _too_large(self, size: int) -> FrameDecodeError:
        return too_large(self.type_name, size, self._max_frame_size)

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
    across threads (see the module docs). ``check_encode=True`` (default: the
    ``OASST_SHARED_CHECK_ENCODE`` environment variable) makes every encode check the message
    first (see ``check_encode``).
    """

    _msgpack = False

    encode = staticmethod(msgspec.json.encode)
    """One message as JSON bytes (every field included, as the reference sends it)."""

    def __init__(
        self,
        type: Any,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        name: str | None = None,
        check_encode: bool | None = None,
    ) -> None:
        super().__init__(
            type,
            msgspec.json.Decoder(type),
            msgspec.json.Encoder,
            max_frame_size,
            name,
            encode=msgspec.json.encode,
            check_encode=check_encode,
        )

    def _check_every_encode(self, verify: Callable[[Any], bytes]) -> None:
        super()._check_every_encode(verify)
        vars(self)["writer"] = lambda initial_size=512: _CheckingFrameWriter(initial_size, verify)

    def encode_lines(self, objs: Iterable[Any]) -> bytes:
        """Messages as NDJSON: one JSON document per line, each line ending in ``\\n``."""
        return encode_lines(self.encoder(), objs)

    def decode_lines(self, data: bytes | bytearray | memoryview | str) -> list[T]:
        """All messages of an NDJSON document (blank lines are skipped).

        An invalid line raises ``FrameDecodeError`` whose message names the line number
        (1-based) and whose ``path`` is the JSON path within that line.
        """
        # Size first, before any copy (a str's length is a lower bound of its UTF-8 size).
        if len(data) > self._max_frame_size:
            raise self._too_large(len(data))
        if isinstance(data, str):
            try:
                encoded = data.encode()
            except UnicodeEncodeError:  # a lone surrogate: name the first bad line
                return self._decode_each_line(data.split("\n"))
            if len(encoded) > self._max_frame_size:
                raise self._too_large(len(encoded))
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
            if is_blank(line):
                continue
            try:
                out.append(decode(line))
            except DECODE_ERRORS as exc:
                raise on_line(self._error(line, exc), lineno) from None
        return out

    def iter_lines(self, lines: Iterable[bytes | str]) -> Iterator[T]:
        """Decode a stream of NDJSON lines lazily (e.g. a file opened in binary mode)."""
        for line in lines:
            if not is_blank(line):
                yield self.decode(line)

    def writer(self, initial_size: int = 512) -> FrameWriter:
        """A ``FrameWriter`` for one thread or connection (see ``FrameWriter``)."""
        return FrameWriter(initial_size)
