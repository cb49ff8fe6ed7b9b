"""``FrameDecodeError`` and the one place a codec turns a failure into it.

Every codec, framing and stream parser of the package raises ``FrameDecodeError`` through the
functions here: ``decode_error`` wraps what msgspec raised (described by
``oasst_shared._decode_errors.describe``, the translator ``parse_raw`` / ``parse_obj``, the API
client and the CLI share), ``too_large`` refuses a frame before decoding it and
``stream_error`` reports a broken framing. ``frame_tag`` reads the tag of a frame that failed
to decode, to name it in the error.

Only failures reach this module's functions; nothing here is on a hot path.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe, shorten

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "TAG_FIELDS",
    "FrameDecodeError",
    "decode_error",
    "frame_tag",
    "on_line",
    "stream_error",
    "too_large",
]

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
"""Largest frame a codec decodes unless told otherwise (16 MiB); larger ones are rejected."""


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


# ------------------------------------------------------------------------------------ tag probe

TAG_FIELDS: Final = ("response_type", "request_type", "type")
"""The fields the message unions are tagged on, in the order ``frame_tag`` reads them."""


class _TagOnly(msgspec.Struct, gc=False):
    """Reads whichever tag field a frame has, and nothing else."""

    type: Any = None
    request_type: Any = None
    response_type: Any = None


_json_tag: Final = msgspec.json.Decoder(_TagOnly)
_msgpack_tag: Final = msgspec.msgpack.Decoder(_TagOnly)


def frame_tag(data: Any, *, fields: tuple[str, ...] = TAG_FIELDS, msgpack: bool = False) -> str | None:
    """The tag ``data`` (one JSON or, with ``msgpack``, MessagePack frame) carries, if readable.

    The value of the first of ``fields`` (a subset of ``TAG_FIELDS``) that holds a string;
    ``None`` when none does or the frame is not a readable object (malformed, nested too
    deeply, not a mapping). The rest of the frame is not checked.
    """
    unknown = [name for name in fields if name not in TAG_FIELDS]
    if unknown:
        raise ValueError(f"frame_tag reads only the tag fields {TAG_FIELDS}, not {unknown}")
    try:
        found = (_msgpack_tag if msgpack else _json_tag).decode(data)
    except DECODE_ERRORS:
        return None
    for name in fields:
        value = getattr(found, name)
        if isinstance(value, str):
            return value
    return None


# ------------------------------------------------------------------------------- the errors


def decode_error(type_name: str, data: Any, exc: BaseException, *, msgpack: bool = False) -> FrameDecodeError:
    """What the codec for ``type_name`` raises when msgspec failed with ``exc`` on ``data``.

    The message names the type, the frame's tag when readable and what is wrong where
    (``invalid inference.WorkerResponse frame (tag 'token'): Expected `int`, got `str` - at
    `$.token_id```); the attributes carry the same as data.
    """
    problem = describe(exc, data, type_name.rpartition(".")[2])
    # After a RecursionError the probe would only recurse as deeply again.
    tag = None if isinstance(exc, RecursionError) else frame_tag(data, msgpack=msgpack)
    where = f" (tag {shorten(repr(tag))})" if tag is not None else ""
    return FrameDecodeError(
        f"invalid {type_name} frame{where}: {problem}",
        type_name=type_name,
        path=problem.path,
        tag=tag,
        size=len(data),
        in_key=problem.in_key,
        byte=problem.byte,
        line=problem.line,
        column=problem.column,
    )


def on_line(err: FrameDecodeError, lineno: int) -> FrameDecodeError:
    """``err``, raised for one line of a multi-line input, as the error of line ``lineno``."""
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


def too_large(type_name: str, size: int, limit: int) -> FrameDecodeError:
    """A frame of ``size`` bytes refused, unread, by a codec whose ``max_frame_size`` is ``limit``."""
    return FrameDecodeError(
        f"invalid {type_name} frame: {size} bytes exceeds max_frame_size={limit}",
        type_name=type_name,
        path="$",
        tag=None,
        size=size,
    )


def stream_error(type_name: str, what: str, problem: str, size: int) -> FrameDecodeError:
    """A stream of ``type_name`` (``what`` in the message) whose framing is broken: there is no
    frame to point into, so ``path`` is ``None``."""
    return FrameDecodeError(f"invalid {what}: {problem}", type_name=type_name, path=None, tag=None, size=size)
