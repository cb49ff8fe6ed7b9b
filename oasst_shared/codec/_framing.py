"""Putting frames on a stream and taking them off: NDJSON lines, 4-byte length prefixes and
``FrameWriter`` (one reused buffer per connection).

The layout only: the codecs (``JsonCodec.encode_lines`` / ``decode_lines``,
``MsgpackCodec.encode_frames`` / ``decode_frames``) encode and decode the messages in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from oasst_shared.codec.sse import write_sse, write_sse_raw

__all__ = ["FrameWriter", "LengthPrefixed", "encode_length_prefixed", "encode_lines", "is_blank"]

# What makes an NDJSON line blank, for bytes and str lines alike: ASCII whitespace (as
# ``bytes.strip()``), not str.strip()'s Unicode whitespace (\x1c-\x1f, \x85, \u2028, ...).
_BLANK: Final = " \t\n\r\x0b\x0c"
_BLANK_BYTES: Final = _BLANK.encode()


def is_blank(line: bytes | str) -> bool:
    """Whether an NDJSON line holds nothing but ASCII whitespace (and is skipped)."""
    if isinstance(line, str):
        return not line.strip(_BLANK)
    return not line.strip(_BLANK_BYTES)


def encode_lines(encoder: Any, objs: Iterable[Any]) -> bytes:
    """``objs`` as NDJSON through msgspec ``encoder``: one document per line, each ending in ``\\n``."""
    buffer = bytearray()
    for obj in objs:
        encoder.encode_into(obj, buffer, -1)
        buffer.extend(b"\n")
    return bytes(buffer)


def encode_length_prefixed(encoder: Any, objs: Iterable[Any]) -> bytes:
    """``objs`` through msgspec ``encoder``, each preceded by its length (4 bytes, big-endian)."""
    buffer = bytearray()
    for obj in objs:
        start = len(buffer)
        buffer.extend(b"\0\0\0\0")
        encoder.encode_into(obj, buffer, -1)
        buffer[start : start + 4] = (len(buffer) - start - 4).to_bytes(4, "big")
    return bytes(buffer)


class LengthPrefixed:
    """Splits a byte stream into 4-byte-length-prefixed frames.

    A frame announced longer than ``max_frame_size`` raises ``too_large(size)`` before any of
    it is buffered.
    """

    def __init__(self, max_frame_size: int, too_large: Callable[[int], Exception]) -> None:
        self._buffer = bytearray()
        self._max = max_frame_size
        self._too_large = too_large

    @property
    def pending(self) -> int:
        """Bytes received of a frame not yet complete."""
        return len(self._buffer)

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """The frames ``chunk`` completes, in order."""
        buffer = self._buffer
        buffer.extend(chunk)
        frames: list[bytes] = []
        pos = 0
        # Frames are copied out through a view: one copy each, not a slice and then a copy.
        with memoryview(buffer) as view:
            while len(buffer) - pos >= 4:
                size = int.from_bytes(view[pos : pos + 4], "big")
                if size > self._max:
                    raise self._too_large(size)
                if len(buffer) - pos - 4 < size:
                    break
                frames.append(bytes(view[pos + 4 : pos + 4 + size]))
                pos += 4 + size
        del buffer[:pos]
        return frames


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
        write_sse(self._encoder, buffer, obj, event, "FrameWriter.sse")
        return buffer

    def sse_raw(self, data: bytes | bytearray | memoryview, event: str | None = None) -> bytearray:
        """One JSON document, forwarded unchanged as a Server-Sent Events frame's data (in the
        reused buffer); checked as ``sse_frame_raw`` checks it."""
        buffer = self._buffer
        write_sse_raw(buffer, data, event, "FrameWriter.sse_raw")
        return buffer
