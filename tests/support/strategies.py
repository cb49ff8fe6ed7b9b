"""Hypothesis strategies for every message struct and union, and reference-style documents.

``instances(tp)`` (alias ``st_message``) gives valid instances of any struct class, union alias
(``protocol.AnyTask``, ``inference.WorkerResponse``, ...) or plain type the structs use. It is
derived from ``msgspec.inspect.type_info``, so it follows the structs as they change: field
types, optional fields (sometimes left out so their defaults apply), and the ``Meta``
constraints (``gt``/``ge``/``le``, ``min_length``). The few rules that live in
``__post_init__`` are covered by ``OVERRIDES``. A type the walker does not know raises
``NotImplementedError`` instead of silently producing nothing.

Every generated value survives JSON and msgpack: floats are finite, ints fit 64 bits, text has
no lone surrogates, datetimes are naive, UTC or whole-minute offsets between 1900 and 2200.

``reference_builtins(obj)`` / ``reference_json(obj)`` render a message the way the reference
(pydantic 1.10 ``.json()``, i.e. ``json.dumps`` with its defaults) puts it on the wire:
ASCII-only with ``\\uXXXX`` escapes, ``", "`` / ``": "`` separators, every field present
(``null`` included), datetimes via ``isoformat()`` (naive without offset, aware UTC with
``+00:00``), UUIDs lower-case with hyphens, enums as their values.

``check_round_trips(tp, obj)`` asserts that a message survives every codec path and matches
such a reference document; a codec suite can call it with its own encoders' output in mind.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from oasst_shared.schemas import inference, protocol

__all__ = [
    "ALWAYS_GIVEN",
    "OVERRIDES",
    "check_round_trips",
    "datetimes",
    "instances",
    "json_values",
    "normalize_json",
    "reference_builtins",
    "reference_json",
    "st_message",
]

INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1
MAX_LIST = 2  # items per generated list / dict: nested messages stay small and quick
MAX_TEXT = 12

texts = st.text(max_size=MAX_TEXT)

_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.none(), st.just(timezone.utc), _offsets),
)
"""Naive, aware UTC and aware fixed-offset datetimes (the reference sends the first two)."""

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: (
        st.lists(children, max_size=MAX_LIST)
        | st.dictionaries(st.text(max_size=6), children, max_size=MAX_LIST)
    ),
    max_leaves=6,
)
"""Values of ``Any``-typed fields: whatever JSON can carry."""


def _non_blank_text() -> st.SearchStrategy[str]:
    return st.text(min_size=1, max_size=MAX_TEXT).filter(lambda s: s.strip() != "")


def _stats_name() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([m.value for m in protocol.CachedStatsName]), texts)


# Field rules that ``type_info`` cannot express (they are checked in ``__post_init__``), and
# fields whose interesting values random text would practically never hit.
OVERRIDES: dict[tuple[type, str], Callable[[], st.SearchStrategy[Any]]] = {
    # stripped, then at least one character
    (protocol.TextReplyToMessage, "text"): _non_blank_text,
    # known names become CachedStatsName members, others stay strings
    (protocol.CachedStatsResponse, "name"): _stats_name,
    (protocol.AllCachedStatsResponse, "stats_by_name"): lambda: st.dictionaries(
        _stats_name(), instances(protocol.CachedStatsResponse), max_size=MAX_LIST
    ),
    # the full range the reference draws seeds from
    (inference.WorkParameters, "seed"): lambda: st.integers(min_value=0, max_value=inference.MAX_SEED),
}

# Optional fields always given a value: their default factory draws from ``random``, which
# hypothesis forbids inside strategies (the defaults are checked in test_spec_walk.py).
ALWAYS_GIVEN: frozenset[tuple[type, str]] = frozenset({(inference.WorkParameters, "seed")})

_struct_cache: dict[type, st.SearchStrategy[Any]] = {}


def instances(tp: Any) -> st.SearchStrategy[Any]:
    """Valid values of ``tp``: a struct class, a union alias, or a type used in a field."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        cached = _struct_cache.get(tp)
        if cached is not None:
            return cached
    return _from_info(mi.type_info(tp))


st_message = instances


def _from_info(info: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(info, mi.StructType):
        return _struct(info)
    if isinstance(info, mi.UnionType):
        return st.one_of(*(_from_info(t) for t in info.types))
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        return _ints(info)
    if isinstance(info, mi.FloatType):
        return _floats(info)
    if isinstance(info, mi.StrType):
        if info.pattern is not None:
            raise NotImplementedError(f"no strategy for string patterns ({info.pattern!r})")
        return st.text(min_size=info.min_length or 0, max_size=max(MAX_TEXT, info.min_length or 0))
    if isinstance(info, mi.UUIDType):
        return st.uuids()
    if isinstance(info, mi.DateTimeType):
        return datetimes
    if isinstance(info, mi.ListType):
        return st.lists(
            _from_info(info.item_type),
            min_size=info.min_length or 0,
            max_size=max(MAX_LIST, info.min_length or 0),
        )
    if isinstance(info, mi.DictType):
        return st.dictionaries(
            _from_info(info.key_type),
            _from_info(info.value_type),
            min_size=info.min_length or 0,
            max_size=max(MAX_LIST, info.min_length or 0),
        )
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    if isinstance(info, mi.EnumType):
        return st.sampled_from(list(info.cls))
    if isinstance(info, mi.AnyType):
        return json_values
    raise NotImplementedError(f"no strategy for {info!r}")


def _ints(info: mi.IntType) -> st.SearchStrategy[int]:
    low, high = INT_MIN, UINT_MAX
    if info.ge is not None:
        low = max(low, info.ge)
    if info.gt is not None:
        low = max(low, info.gt + 1)
    if info.le is not None:
        high = min(high, info.le)
    if info.lt is not None:
        high = min(high, info.lt - 1)
    if info.multiple_of is not None:
        raise NotImplementedError("no strategy for multiple_of")
    return st.integers(min_value=low, max_value=high)


def _floats(info: mi.FloatType) -> st.SearchStrategy[float]:
    if info.multiple_of is not None:
        raise NotImplementedError("no strategy for multiple_of")
    low = info.ge if info.ge is not None else info.gt
    high = info.le if info.le is not None else info.lt
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=info.gt is not None,
        exclude_max=info.lt is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _struct(info: mi.StructType) -> st.SearchStrategy[Any]:
    cls = info.cls
    cached = _struct_cache.get(cls)
    if cached is not None:
        return cached
    # deferred: a struct could (in future) contain itself; the cache breaks the cycle
    strategy = st.deferred(lambda: _build_struct(info))
    _struct_cache[cls] = strategy
    return strategy


def _build_struct(info: mi.StructType) -> st.SearchStrategy[Any]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for f in info.fields:
        override = OVERRIDES.get((info.cls, f.name))
        strategy = override() if override is not None else _from_info(f.type)
        given = f.required or (info.cls, f.name) in ALWAYS_GIVEN
        (required if given else optional)[f.name] = strategy
    # Optional fields are sometimes left out, so that their defaults (and factories) apply.
    return st.fixed_dictionaries(required, optional=optional).map(lambda kwargs: info.cls(**kwargs))


# ----------------------------------------------------------------- reference-style documents


def reference_builtins(obj: Any, field_order: Callable[[type], Sequence[str]] | None = None) -> Any:
    """``obj`` as the JSON-ready value the reference's ``.json()`` would serialise.

    ``field_order(cls)`` may give the key order of a struct's document (the reference's field
    declaration order); by default it is the tag field, then the struct's fields.
    """
    if isinstance(obj, msgspec.Struct):
        cls = type(obj)
        config = cls.__struct_config__
        values: dict[str, Any] = {}
        if config.tag_field is not None:
            values[config.tag_field] = config.tag
        for f in msgspec.structs.fields(cls):
            values[f.encode_name] = reference_builtins(getattr(obj, f.name), field_order)
        if field_order is None:
            return values
        order = list(field_order(cls))
        assert sorted(order) == sorted(values), f"{cls.__name__}: field order {order} vs {list(values)}"
        return {key: values[key] for key in order}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {
            reference_builtins(k, field_order): reference_builtins(v, field_order) for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [reference_builtins(v, field_order) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"no reference rendering for {type(obj).__name__}")


def reference_json(obj: Any, field_order: Callable[[type], Sequence[str]] | None = None) -> str:
    """``obj`` as the reference's ``.json()`` text (``json.dumps`` defaults)."""
    return json.dumps(reference_builtins(obj, field_order), ensure_ascii=True)


_UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def normalize_json(value: Any) -> Any:
    """A parsed JSON document with ``...Z`` datetimes written ``...+00:00``.

    Both spellings denote the same instant and the reference's consumers accept both; this is
    the only difference allowed between our documents and the reference's.
    """
    if isinstance(value, dict):
        return {normalize_json(k): normalize_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_json(v) for v in value]
    if isinstance(value, str) and _UTC_Z.fullmatch(value):
        return value[:-1] + "+00:00"
    return value


# ---------------------------------------------------------------------------------- checks


def check_round_trips(tp: Any, obj: Any) -> None:
    """Assert that ``obj`` (an instance of ``tp``, a struct class or union) survives every
    codec path unchanged and matches the reference's wire format.

    JSON (msgspec and ``.json()``/``parse_raw``), ``.dict()``/``parse_obj``, msgpack; a
    reference-style document decodes to an equal message; and our document, parsed as JSON,
    equals the reference-style one (every field present, nulls included).
    """
    cls = type(obj)

    def same(decoded: Any, how: str) -> None:
        assert type(decoded) is cls, f"{how}: decoded a {type(decoded).__name__}, not a {cls.__name__}"
        assert decoded == obj, f"{how}: {decoded!r} != {obj!r}"

    data = msgspec.json.encode(obj)
    same(msgspec.json.decode(data, type=tp), "msgspec.json")
    same(msgspec.msgpack.decode(msgspec.msgpack.encode(obj), type=tp), "msgspec.msgpack")
    same(msgspec.convert(obj.dict(), tp), ".dict() + convert")
    if tp is cls:
        text = obj.json()
        assert isinstance(text, str)
        same(cls.parse_raw(text), ".json() + parse_raw(str)")
        same(cls.parse_raw(text.encode()), ".json() + parse_raw(bytes)")
        same(cls.parse_obj(obj.dict()), ".dict() + parse_obj")
        same(cls.parse_obj(json.loads(text)), "parse_obj(json.loads(.json()))")

    reference = reference_json(obj)
    same(msgspec.json.decode(reference, type=tp), "reference document")
    assert normalize_json(json.loads(data)) == json.loads(reference)
