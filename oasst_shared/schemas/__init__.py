"""Message schemas: ``protocol`` (backend) and ``inference`` (workers), as msgspec Structs.

Also pydantic v1's module-level helpers, with its argument order, so that porting a call site
is an import change: ``parse_raw_as(inference.WorkerResponse, text)`` and
``parse_obj_as(protocol.AnyTask, obj)``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from oasst_shared.codec import JsonCodec

__all__ = ["parse_obj_as", "parse_raw_as"]

T = TypeVar("T")

# A codec per type, made on first use (the four unions reuse the prebuilt ones).
_codecs: dict[Any, JsonCodec[Any]] = {}


def _codec_for(tp: Any) -> JsonCodec[Any]:
    # Imported here: the codec imports both schema modules, and ``import
    # oasst_shared.schemas.inference`` must stay as cheap as msgspec (tests/test_import_cost.py).
    from oasst_shared import codec
    from oasst_shared.schemas import inference, protocol

    prebuilt: dict[Any, JsonCodec[Any]] = {
        inference.WorkerRequest: codec.worker_request,
        inference.WorkerResponse: codec.worker_response,
        protocol.AnyTask: codec.any_task,
        protocol.AnyInteraction: codec.any_interaction,
    }
    found = prebuilt.get(tp)
    if found is None:
        found = codec.JsonCodec(tp)
    with contextlib.suppress(TypeError):  # an unhashable type: not cached, still decoded
        _codecs[tp] = found
    return found


@overload
def parse_raw_as(tp: type[T], data: str | bytes | bytearray | memoryview) -> T: ...
@overload
def parse_raw_as(tp: Any, data: str | bytes | bytearray | memoryview) -> Any: ...
def parse_raw_as(tp: Any, data: str | bytes | bytearray | memoryview) -> Any:
    """Decode a JSON document as ``tp``: a struct class, a union (``inference.WorkerResponse``)
    or any type msgspec decodes (``list[protocol.Message]``).

    pydantic v1's ``parse_raw_as(tp, data)``. It decodes through ``oasst_shared.codec``: the
    prebuilt codec for the four message unions, else one ``JsonCodec`` per type made on first
    use, so a call costs one dict lookup more than the codec's ``decode``. Bad input raises
    what the codec raises: ``codec.FrameDecodeError`` (a ``msgspec.DecodeError`` and a
    ``ValueError``) with ``path``, ``tag`` and position; documents larger than the codec's
    ``max_frame_size`` (16 MiB) are refused.
    """
    try:
        found = _codecs.get(tp)
    except TypeError:  # unhashable
        found = None
    if found is None:
        found = _codec_for(tp)
    return found.decode(data)


@overload
def parse_obj_as(tp: type[T], obj: Any) -> T: ...
@overload
def parse_obj_as(tp: Any, obj: Any) -> Any: ...
def parse_obj_as(tp: Any, obj: Any) -> Any:
    """Build and validate ``tp`` from Python data (as decoded from JSON): pydantic v1's
    ``parse_obj_as(tp, obj)``, for the same types as ``parse_raw_as``.

    Through ``msgspec.convert``; an object that already is a ``tp`` struct is returned as is.
    Bad input raises ``msgspec.ValidationError`` whose message names the path as the codec's
    errors do (``- at `$.thread.messages[0].role```), like ``Struct.parse_obj``.
    """
    import msgspec

    from oasst_shared._decode_errors import DECODE_ERRORS, describe, type_name

    if isinstance(tp, type) and isinstance(obj, tp):
        return obj
    try:
        return msgspec.convert(obj, tp)
    except DECODE_ERRORS as exc:
        name = type_name(tp).rpartition(".")[2]
        if isinstance(exc, UnicodeEncodeError):
            # convert() encodes a str to UTF-8 wherever it reads one as something else.
            message = f"Input to convert to `{name}` holds a str with a lone surrogate"
            raise msgspec.ValidationError(message) from None
        problem = describe(exc, None, name)
        if isinstance(exc, msgspec.ValidationError):
            raise msgspec.ValidationError(str(problem)) from None
        raise msgspec.DecodeError(str(problem)) from None
