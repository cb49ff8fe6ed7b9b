"""The message registry: every message type, its name, and how it knowingly differs from the reference.

Declared once here, read by everything that needs "all the messages": the JSON Schema export
(``schemas.json_schema``), ``oasst-shared validate`` / ``types`` / ``schema``, the display name
in decode errors (``_decode_errors.type_name``), the views' generator and the tests.

* **Message types**: the struct classes that ``protocol``, ``inference`` and ``model_configs``
  define (not those they import), by dotted name (``"inference.TokenResponse"``), plus the four
  unions named in ``UNION_NAMES``. ``message_types()`` lists them in module order.
* **Display names**: ``display_name(tp)`` (a union by its dotted name, ``inference.WorkerResponse``;
  a class by its own name, ``TokenResponse``).
* **Union tags**: ``union_tags(union)``, the field every member is tagged on and which member each
  tag names.
* **Known differences from the reference**: ``KNOWN_DIFFERENCES``, one entry per deliberate
  difference with its reason; the schema export and the tests that walk the reference derive
  their allowances from it.

The names are plain data; the message modules are imported on the first call that needs a class
(built once, ``functools.cache``): importing a schema module does not import this one, and
importing this one imports no message module.
"""

from __future__ import annotations

import enum
import importlib
import types as _types
import typing
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any, Final, Union

import msgspec

__all__ = [
    "ABSTRACT_BASES",
    "KNOWN_DIFFERENCES",
    "MESSAGE_MODULES",
    "UNION_NAMES",
    "Difference",
    "KnownDifference",
    "UnknownMessageTypeError",
    "defined_structs",
    "display_name",
    "extra_union_members",
    "is_union",
    "message_type_name",
    "message_types",
    "resolve_message_type",
    "struct_types",
    "union_tags",
    "unions",
]

MESSAGE_MODULES: Final[Mapping[str, str]] = _types.MappingProxyType(
    {
        "protocol": "oasst_shared.schemas.protocol",
        "inference": "oasst_shared.schemas.inference",
        "model_configs": "oasst_shared.model_configs",
    }
)
"""The modules whose messages are registered, by short name (the first part of a dotted name)."""

UNION_NAMES: Final = (
    "protocol.AnyTask",
    "protocol.AnyInteraction",
    "inference.WorkerRequest",
    "inference.WorkerResponse",
)
"""The message unions, by dotted name; each decodes into the member its tag names."""

ABSTRACT_BASES: Final = (
    "protocol.Task",
    "protocol.AbstractRatingTask",
    "protocol.AbstractLabelTask",
    "protocol.Interaction",
)
"""Bases never sent on their own: the reference declares a required ``type: str`` on them, here
``type`` is a class attribute each tagged subclass sets (``Difference.TAG_NOT_A_FIELD``)."""


class UnknownMessageTypeError(LookupError):
    """A name (or type) that is not a registered message type; the message suggests close matches."""


class Difference(enum.Enum):
    """What kind of deliberate difference from the reference a ``KnownDifference`` is."""

    TAG_NOT_A_FIELD = "tag-not-a-field"
    """The reference's required field (``name``) is a class attribute here, not a wire field."""
    REQUIRED_HERE = "required-here"
    """The field ``name`` is required here, optional (with a default) in the reference."""
    WIRE_TYPE = "wire-type"
    """The field ``name`` is declared with another type (the same JSON on the wire)."""
    MISSING_BASE = "missing-base"
    """The model does not subclass the reference's base ``name`` (it declares the base's fields)."""
    EXTRA_UNION_MEMBER = "extra-union-member"
    """The union includes ``name``, a model the reference defined but left out of it."""


class KnownDifference(msgspec.Struct, frozen=True):
    """One deliberate difference between a message (or union) and the reference's model."""

    model: str
    """Dotted name of the message or union (``inference.WorkRequest``)."""
    name: str
    """The field, base or union member that differs."""
    kind: Difference
    reason: str
    in_views: bool = True
    """Whether the Pydantic views (``oasst_compat``) differ the same way; the views declare
    what a struct cannot (an abstract base's ``type`` field)."""


_ABSTRACT_TAG = (
    "abstract base, never sent on its own: it declares `type: ClassVar[str]` and each concrete "
    "subclass sets the tag (reference: a required `type: str` field); the views declare the field"
)
_NO_MIXIN = (
    "msgspec cannot inherit fields from two struct bases: the task declares `hint` itself "
    "instead of subclassing WithHintMixin (same field, same default)"
)

KNOWN_DIFFERENCES: Final[tuple[KnownDifference, ...]] = (
    *(
        KnownDifference(base, "type", Difference.TAG_NOT_A_FIELD, _ABSTRACT_TAG, in_views=False)
        for base in ABSTRACT_BASES
    ),
    KnownDifference(
        "inference.WorkRequest",
        "parameters",
        Difference.REQUIRED_HERE,
        "the reference's default factory WorkParameters() always fails (model_config is "
        "required), so the field is required in practice (spec validation_rules)",
    ),
    KnownDifference(
        "protocol.CachedStatsResponse",
        "name",
        Difference.WIRE_TYPE,
        "msgspec cannot decode `CachedStatsName | str` (two string kinds): the field is a str "
        "on the wire and __post_init__ upgrades known names to CachedStatsName",
    ),
    KnownDifference("protocol.InitialPromptTask", "WithHintMixin", Difference.MISSING_BASE, _NO_MIXIN),
    KnownDifference("protocol.PrompterReplyTask", "WithHintMixin", Difference.MISSING_BASE, _NO_MIXIN),
    KnownDifference(
        "inference.WorkerResponse",
        "GeneralErrorResponse",
        Difference.EXTRA_UNION_MEMBER,
        "the reference defines GeneralErrorResponse but left it out of its union (spec "
        "validation_rules); a worker sending one must be decodable",
    ),
)
"""Every deliberate difference from the reference; nothing else may differ (the tests check
both ways: an entry that no longer matches a real difference fails too)."""


def extra_union_members(union_name: str) -> frozenset[str]:
    """The members of the union ``union_name`` that the reference's union does not have."""
    return frozenset(
        d.name for d in KNOWN_DIFFERENCES if d.model == union_name and d.kind is Difference.EXTRA_UNION_MEMBER
    )


# ------------------------------------------------------------------------------------ types


def is_union(tp: Any) -> bool:
    """True for a ``Union[...]`` (or ``X | Y``) type."""
    return typing.get_origin(tp) in (Union, _types.UnionType)


def _is_struct_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, msgspec.Struct)


def defined_structs(module: ModuleType) -> dict[str, type[msgspec.Struct]]:
    """The public struct classes ``module`` defines (not those it imports), by name, in
    definition order: which structs of a message module are messages."""
    return {
        attr: value
        for attr, value in vars(module).items()
        if not attr.startswith("_") and _is_struct_class(value) and value.__module__ == module.__name__
    }


@cache
def message_types() -> Mapping[str, Any]:
    """Every message type by dotted name (``"inference.TokenResponse"``), in module order.

    The struct classes each module of ``MESSAGE_MODULES`` defines (``defined_structs``) and the
    unions of ``UNION_NAMES``, each where its module defines it.
    """
    found: dict[str, Any] = {}
    for short, module_name in MESSAGE_MODULES.items():
        module = importlib.import_module(module_name)
        structs = defined_structs(module)
        for attr, value in vars(module).items():
            name = f"{short}.{attr}"
            if attr in structs or name in UNION_NAMES:
                found[name] = value
    missing = [name for name in (*UNION_NAMES, *ABSTRACT_BASES) if name not in found]
    if missing:  # pragma: no cover - only if a module drops a declared name
        raise RuntimeError(f"declared message types not found: {', '.join(missing)}")
    return _types.MappingProxyType(found)


@cache
def struct_types() -> Mapping[str, type[msgspec.Struct]]:
    """The struct classes of ``message_types()`` (no unions), by dotted name, in module order."""
    return _types.MappingProxyType({name: tp for name, tp in message_types().items() if not is_union(tp)})


@cache
def unions() -> Mapping[str, Any]:
    """The unions of ``UNION_NAMES`` by dotted name, in that order."""
    registry = message_types()
    return _types.MappingProxyType({name: registry[name] for name in UNION_NAMES})


def resolve_message_type(name: str) -> Any:
    """The message type called ``name``: ``module.Name``, or a bare ``Name`` defined in one module.

    Raises ``UnknownMessageTypeError`` (with close matches, if any) for any other name.
    """
    registry = message_types()
    if name in registry:
        return registry[name]
    if "." not in name:
        matches = [full for full in registry if full.rpartition(".")[2] == name]
        if len(matches) == 1:
            return registry[matches[0]]
        if matches:
            raise UnknownMessageTypeError(f"ambiguous message type {name!r}: one of {', '.join(matches)}")
    import difflib  # only for the error message; not at import (the codec's import reads this module)

    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise UnknownMessageTypeError(f"unknown message type {name!r}{hint}")


def message_type_name(tp: Any) -> str:
    """The dotted name of a message type (inverse of ``resolve_message_type``)."""
    if is_union(tp):
        for name, union in unions().items():
            if union == tp:
                return name
    else:
        for name, candidate in struct_types().items():
            if candidate is tp:
                return name
    raise UnknownMessageTypeError(f"not a registered message type: {tp!r}")


def display_name(tp: Any) -> str:
    """How errors name a type: a union by its dotted name (``inference.WorkerResponse``), a
    class by its name (``TokenResponse``), anything else by its ``repr``."""
    if is_union(tp):
        for name, union in unions().items():
            if union == tp:
                return name
    return getattr(tp, "__name__", None) or repr(tp)


def union_tags(union: Any) -> tuple[str, Mapping[Any, type[msgspec.Struct]]] | None:
    """``(tag_field, {tag: member})`` of a union whose members are all tagged on one field.

    None for anything else (not a union, an untagged member, members tagged on different fields).
    """
    return _union_tags(union) if is_union(union) else None  # a union is hashable: typing hashes its members


@cache
def _union_tags(union: Any) -> tuple[str, Mapping[Any, type[msgspec.Struct]]] | None:
    members = typing.get_args(union)
    by_tag: dict[Any, type[msgspec.Struct]] = {}
    fields: set[str | None] = set()
    for member in members:
        info = msgspec.inspect.type_info(member)
        if not isinstance(info, msgspec.inspect.StructType):
            return None
        fields.add(info.tag_field)
        by_tag[info.tag] = member
    tag_field = fields.pop()
    if fields or tag_field is None:
        return None
    return tag_field, _types.MappingProxyType(by_tag)
