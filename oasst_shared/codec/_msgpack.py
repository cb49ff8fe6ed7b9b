"""``MsgpackCodec``: the MessagePack variant of ``JsonCodec``, with length-prefixed streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import msgspec

from oasst_shared.codec._errors import DEFAULT_MAX_FRAME_SIZE, stream_error
from oasst_shared.codec._framing import LengthPrefixed, encode_length_prefixed
from oasst_shared.codec._json import _CodecBase

__all__ = ["MsgpackCodec"]

T = TypeVar("T")


class MsgpackCodec(_CodecBase[T]):
    """The MessagePack variant of ``JsonCodec`` for binary transports.

    Stream framing (``encode_frames`` / ``decode_frames`` / ``iter_frames``): each message
    is preceded by its length as a 4-byte big-endian unsigned integer.
    """

    _msgpack = True

    encode = staticmethod(msgspec.msgpack.encode)
    """One message as MessagePack bytes."""

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
            msgspec.msgpack.Decoder(type),
            msgspec.msgpack.Encoder,
            max_frame_size,
            name,
            encode=msgspec.msgpack.encode,
            check_encode=check_encode,
        )

    def encode_frames(self, objs: Iterable[Any]) -> bytes:
        """Messages as one length-prefixed stream."""
        return encode_length_prefixed(self.encoder(), objs)

    def decode_frames(self, data: bytes | bytearray | memoryview) -> list[T]:
        """All messages of a complete length-prefixed stream."""
        frames = LengthPrefixed(self._max_frame_size, self._too_large)
        out = [self.decode(frame) for frame in frames.feed(data)]
        if frames.pending:
            problem = f"{frames.pending} bytes of an incomplete frame at the end"
            raise stream_error(self.type_name, f"{self.type_name} stream", problem, len(data))
        return out

    def iter_frames(self, chunks: Iterable[bytes | bytearray | memoryview]) -> Iterator[T]:
        """Decode a length-prefixed stream arriving in chunks of any size."""
        frames = LengthPrefixed(self._max_frame_size, self._too_large)
        for chunk in chunks:
            for frame in frames.feed(chunk):
                yield self.decode(frame)
        if frames.pending:
            raise stream_error(
                self.type_name, f"{self.type_name} stream", "it ended inside a frame", frames.pending
            )
