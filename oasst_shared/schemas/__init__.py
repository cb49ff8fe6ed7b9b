"""Message schemas: ``protocol`` (backend) and ``inference`` (workers), as msgspec Structs.

Also pydantic v1's module-level helpers, with its argument order, so that porting a call site
is an import change: ``parse_raw_as(inference.WorkerResponse, text)`` and
``parse_obj_as(protocol.AnyTask, obj)``.

Struct constructors do not check field types (msgspec's choice, for speed): ``check(msg)``
is the opt-in check that a message's receiver would accept it, raising ``MessageCheckError``
naming the class, the path and the expected type.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, as_msgspec_error, type_name
from oasst_shared.schemas._check import MessageCheckError, check

if TYPE_CHECKING:
    from oasst_shared.codec import JsonCodec

__all__ = ["MessageCheckError", "check", "parse_obj_as", "parse_raw_as"]

T = TypeVar("T")

# What each helper needs per type, made on first use: a codec for ``parse_raw_as``, a
# converter for ``parse_obj_as``. Found per call by the type object's ``id`` (an ``id`` costs
# nothing; hashing ``inference.WorkerResponse``, a typing.Union, hashes its nine members), then,
# for a new object equal to a known type (``list[X]`` written at the call site makes a new
# one each time), by equality. The id table is cleared when it fills, so it stays small.
_BY_ID_MAX = 256
_codecs: dict[Any, JsonCodec[Any]] = {}
_codecs_by_id: dict[int, tuple[Any, JsonCodec[Any]]] = {}
_converters: dict[Any, Callable[[Any], Any]] = {}
_converters_by_id: dict[int, tuple[Any, Callable[[Any], Any]]] = {}


def _remember(tp: Any, value: Any, by_type: dict[Any, Any], by_id: dict[int, tuple[Any, Any]]) -> None:
    with contextlib.suppress(TypeError):  # an unhashable type: found by id only
        by_type[tp] = value
    if len(by_id) >= _BY_ID_MAX:
        by_id.clear()
    by_id[id(tp)] = (tp, value)  # holding ``tp`` keeps its id from being reused


def _known(tp: Any, by_type: dict[Any, Any]) -> Any:
    try:
        return by_type.get(tp)
    except TypeError:  # unhashable
        return None


def _codec_for(tp: Any) -> JsonCodec[Any]:
    # Imported here: the codec imports both schema modules, and ``import
    # oasst_shared.schemas.inference`` must stay as cheap as msgspec (tests/package/test_import_cost.py).
    from oasst_shared import codec
    from oasst_shared.schemas import inference, protocol

    found: JsonCodec[Any] | None = _known(tp, _codecs)
    if found is None:
        prebuilt: dict[Any, JsonCodec[Any]] = {
            inference.WorkerRequest: codec.worker_request,
            inference.WorkerResponse: codec.worker_response,
            protocol.AnyTask: codec.any_task,
            protocol.AnyInteraction: codec.any_interaction,
        }
        found = _known(tp, prebuilt) or codec.JsonCodec(tp)
    _remember(tp, found, _codecs, _codecs_by_id)
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
    use. Bad input raises what the codec raises: ``codec.FrameDecodeError`` (a
    ``msgspec.DecodeError`` and a ``ValueError``) with ``path``, ``tag`` and position;
    documents larger than the codec's ``max_frame_size`` (16 MiB) are refused.
    """
    entry = _codecs_by_id.get(id(tp))
    if entry is not None and entry[0] is tp:
        return entry[1].decode(data)
    return _codec_for(tp).decode(data)


def _converter_for(tp: Any) -> Callable[[Any], Any]:
    found: Callable[[Any], Any] | None = _known(tp, _converters)
    if found is None:
        found = _tagged_union_converter(tp)
    if found is None:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            struct_cls = tp

            def found(obj: Any) -> Any:
                return obj if isinstance(obj, struct_cls) else msgspec.convert(obj, struct_cls)
        else:

            def found(obj: Any) -> Any:
                return msgspec.convert(obj, tp)

    _remember(tp, found, _converters, _converters_by_id)
    return found


def _tagged_union_converter(tp: Any) -> Callable[[Any], Any] | None:
    """For a union of tagged structs: pick the member by the tag, convert into it.

    ``msgspec.convert`` builds its plan for a union on every call (about 5 us for
    ``WorkerResponse``, against 0.15 us into one struct, whose plan msgspec keeps on the
    class). Anything the fast way does not settle (no mapping, no or an unknown tag, invalid
    content) goes to ``msgspec.convert`` with the union itself, so the result or error is the
    union's own.
    """
    if typing.get_origin(tp) is not typing.Union:
        return None
    members = typing.get_args(tp)
    if not all(isinstance(m, type) and issubclass(m, msgspec.Struct) for m in members):
        return None
    fields = {m.__struct_config__.tag_field for m in members}
    field = fields.pop() if len(fields) == 1 else None
    if not isinstance(field, str):
        return None
    by_tag: dict[Any, type] = {m.__struct_config__.tag: m for m in members}
    member_types = frozenset(members)
    convert = msgspec.convert

    def converter(obj: Any) -> Any:
        if type(obj) in member_types:
            return obj
        if type(obj) is dict:
            tag = obj.get(field)
            cls = by_tag.get(tag) if type(tag) is str else None
            if cls is not None:
                try:
                    return convert(obj, cls)
                except DECODE_ERRORS:
                    pass  # the union's own conversion below raises the error
        return convert(obj, tp)

    return converter


@overload
def parse_obj_as(tp: type[T], obj: Any) -> T: ...
@overload
def parse_obj_as(tp: Any, obj: Any) -> Any: ...
def parse_obj_as(tp: Any, obj: Any) -> Any:
    """Build and validate ``tp`` from Python data (as decoded from JSON): pydantic v1's
    ``parse_obj_as(tp, obj)``, for the same types as ``parse_raw_as``.

    Through ``msgspec.convert`` (for the message unions, into the member the tag names); an
    object that already is a ``tp`` struct is returned as is. Bad input raises
    ``msgspec.ValidationError`` whose message names the path as the codec's errors do
    (``- at `$.thread.messages[0].role` ``), like ``Struct.parse_obj``.
    """
    entry = _converters_by_id.get(id(tp))
    convert = entry[1] if entry is not None and entry[0] is tp else _converter_for(tp)
    try:
        return convert(obj)
    except DECODE_ERRORS as exc:
        raise as_msgspec_error(exc, None, type_name(tp).rpartition(".")[2]) from None
