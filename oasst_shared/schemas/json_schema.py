"""JSON Schema and OpenAPI export of the message types, shaped like the reference's schemas.

``msgspec.json.schema`` describes a struct exactly as msgspec decodes it. Two things differ
from the reference's (pydantic) schemas, and are post-processed here so that every message
has the reference's property names and required set:

* **Tags.** msgspec lists a tagged struct's tag field (``type``, ``request_type``,
  ``response_type``) as a required property ``{"enum": [tag]}``. In the reference it is a
  field with a default, so not required. Here it becomes ``{"enum": [tag], "default": tag,
  "type": "string"}`` and leaves ``required``. That is also what our decoder accepts: a
  struct decoded on its own may omit its tag. A *union* needs the tag to pick its member;
  the union's schema says so with its ``discriminator``.
* **Empty ``required``.** msgspec writes ``"required": []``; it is dropped, as in the
  reference (OpenAPI 3.0 tools reject an empty list).
* **Docstrings.** msgspec copies a class docstring into the class's schema as
  ``description``. The reference's message schemas have no class descriptions, and a
  docstring is documentation for Python readers, so every component's own ``description`` is
  dropped: adding or editing a docstring never changes an exported schema. (The Pydantic views
  drop theirs too: ``oasst_compat.OasstModel`` and the enums' ``__get_pydantic_json_schema__``.)

Documented deviations from the reference (``SCHEMA_DEVIATIONS``, derived from the registry's
``KNOWN_DIFFERENCES``, checked by the tests):

* The abstract bases ``protocol.Task``, ``protocol.AbstractRatingTask``,
  ``protocol.AbstractLabelTask`` and ``protocol.Interaction`` declare a required ``type: str``
  in the reference. Ours have no ``type`` field (only their tagged subclasses are ever sent;
  ``Task.type`` is a class attribute): their schema lists ``type`` as an optional string
  property (an unknown field, which the decoder ignores), not as required.
* ``inference.WorkRequest.parameters`` is required: the reference's default factory could
  never succeed, so it was required in practice.
* ``inference.WorkerResponse`` includes ``GeneralErrorResponse``, which the reference defined
  but left out of its union.

The message types are those of the registry (``schemas._registry``): every struct class of
``protocol``, ``inference`` and ``model_configs`` and the four unions (``protocol.AnyTask``,
``protocol.AnyInteraction``, ``inference.WorkerRequest``, ``inference.WorkerResponse``).
``message_types()`` lists them by dotted name, ``resolve_message_type()`` looks one up (both
re-exported from the registry).
Nothing here prints or logs.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec
from msgspec import inspect as mi

from oasst_shared.schemas._registry import (
    KNOWN_DIFFERENCES,
    Difference,
    UnknownMessageTypeError,
    is_union,
    message_type_name,
    message_types,
    resolve_message_type,
)

__all__ = [
    "DEFS_REF_TEMPLATE",
    "OPENAPI_REF_TEMPLATE",
    "SCHEMA_DEVIATIONS",
    "SchemaDeviation",
    "UnknownMessageTypeError",
    "component_name",
    "is_union",
    "json_schema",
    "message_type_name",
    "message_types",
    "openapi_components",
    "resolve_message_type",
    "schema_components",
    "schema_definitions",
]

DEFS_REF_TEMPLATE: Final = "#/$defs/{name}"
OPENAPI_REF_TEMPLATE: Final = "#/components/schemas/{name}"

# Abstract bases whose reference schema has a required tag field (see the module docstring), by
# dotted name; their subclasses without a tag of their own inherit the rule.
_ABSTRACT_TAGGED_BASES: Final = {
    d.model: d.name for d in KNOWN_DIFFERENCES if d.kind is Difference.TAG_NOT_A_FIELD
}


@dataclasses.dataclass(frozen=True)
class SchemaDeviation:
    """How one message's schema knowingly differs from the reference's, and why."""

    reason: str
    required_here_only: frozenset[str] = frozenset()
    """Required in our schema, optional in the reference's."""
    required_in_reference_only: frozenset[str] = frozenset()
    """Required in the reference's schema, optional (or absent) in ours."""


def schema_deviations() -> dict[str, SchemaDeviation]:
    """The registry's known differences that change a schema's required set, per message."""
    found: dict[str, SchemaDeviation] = {}
    for d in KNOWN_DIFFERENCES:
        if d.kind is Difference.TAG_NOT_A_FIELD:
            found[d.model] = SchemaDeviation(d.reason, required_in_reference_only=frozenset({d.name}))
        elif d.kind is Difference.REQUIRED_HERE:
            found[d.model] = SchemaDeviation(d.reason, required_here_only=frozenset({d.name}))
    return found


SCHEMA_DEVIATIONS: Final[Mapping[str, SchemaDeviation]] = MappingProxyType(schema_deviations())
"""Per dotted message name, the known differences of its required set from the reference's
(derived from ``schemas._registry.KNOWN_DIFFERENCES``)."""


# ------------------------------------------------------------------------- component naming

_COMPONENT_TYPES = (mi.StructType, mi.TypedDictType, mi.DataclassType, mi.NamedTupleType, mi.EnumType)
# ``FrozenDictType`` is new in msgspec 0.22; the package supports older versions too.
_DICT_TYPES: tuple[type, ...] = (
    mi.DictType,
    *((mi.FrozenDictType,) if hasattr(mi, "FrozenDictType") else ()),
)


def _collect_classes(infos: Iterable[mi.Type]) -> dict[type, mi.Type]:
    """Every named class msgspec extracts into components, in msgspec's order."""
    found: dict[type, mi.Type] = {}

    def visit(t: mi.Type) -> None:
        if isinstance(t, _COMPONENT_TYPES):
            if t.cls in found:
                return
            found[t.cls] = t
            if isinstance(t, mi.EnumType):
                return
            for f in t.fields:
                visit(f.type)
        elif isinstance(t, mi.Metadata):
            visit(t.type)
        elif isinstance(t, mi.CollectionType):
            visit(t.item_type)
        elif isinstance(t, mi.TupleType):
            for item in t.item_types:
                visit(item)
        elif isinstance(t, _DICT_TYPES):
            mapping = typing.cast("mi.DictType", t)  # FrozenDictType has the same fields
            visit(mapping.key_type)
            visit(mapping.value_type)
        elif isinstance(t, mi.UnionType):
            for member in t.types:
                visit(member)

    for info in infos:
        visit(info)
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9.\-_]", "_", name)


def _component_names(classes: Iterable[type]) -> dict[type, str]:
    """msgspec's naming rule: the class name, or the full import path when two names clash."""
    classes = list(classes)
    counts: dict[str, int] = {}
    for cls in classes:
        short = _normalize(cls.__name__)
        counts[short] = counts.get(short, 0) + 1
    return {
        cls: (
            _normalize(cls.__name__)
            if counts[_normalize(cls.__name__)] == 1
            else _normalize(f"{cls.__module__}.{cls.__qualname__}")
        )
        for cls in classes
    }


def component_name(tp: Any) -> str:
    """The name of ``tp`` among components: its class name, or its union alias (``WorkerResponse``)."""
    if is_union(tp):
        return message_type_name(tp).rpartition(".")[2]
    if not isinstance(tp, type):
        raise TypeError(f"expected a message class or union, got {tp!r}")
    return _normalize(tp.__name__)


# --------------------------------------------------------------------------- post-processing


def _abstract_tag_field(cls: type) -> str | None:
    """The tag field an untagged subclass of an abstract base lists as an optional property."""
    registry = message_types()
    for name, field_name in _ABSTRACT_TAGGED_BASES.items():
        if issubclass(cls, registry[name]):
            return field_name
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "string"


def _fix_struct_schema(info: mi.StructType, schema: dict[str, Any]) -> None:
    """Make a struct's component schema use the reference's property names and required set."""
    properties: dict[str, Any] = schema.get("properties", {})
    required: list[str] = schema.get("required", [])
    if info.tag_field is not None:
        properties[info.tag_field] = {"enum": [info.tag], "default": info.tag, "type": _json_type(info.tag)}
        required[:] = [name for name in required if name != info.tag_field]
    else:
        abstract_field = _abstract_tag_field(info.cls)
        if abstract_field is not None and abstract_field not in properties:
            schema["properties"] = {abstract_field: {"type": "string"}, **properties}
    if "required" in schema and not required:
        del schema["required"]


def _fix_components(infos: Iterable[mi.Type], components: dict[str, Any]) -> None:
    classes = _collect_classes(infos)
    names = _component_names(classes)
    for cls, info in classes.items():
        name = names[cls]
        if name not in components:  # pragma: no cover - only if msgspec changes its naming
            raise RuntimeError(f"msgspec named the component of {cls!r} differently than expected")
        # A component's own description is msgspec's copy of the class docstring.
        components[name].pop("description", None)
        if isinstance(info, mi.StructType) and not info.array_like:
            _fix_struct_schema(info, components[name])


# ------------------------------------------------------------------------------------ export


def schema_components(
    types: Iterable[Any], ref_template: str = DEFS_REF_TEMPLATE
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """Like ``msgspec.json.schema_components``, post-processed to the reference's shape.

    Returns one schema per type (a ``$ref`` for a struct, an ``anyOf`` with a
    ``discriminator`` for a union) and the shared components by name.
    """
    types = tuple(types)
    schemas, components = msgspec.json.schema_components(types, ref_template=ref_template)
    _fix_components(mi.multi_type_info(types), components)
    return schemas, components


def json_schema(tp: Any, ref_template: str = DEFS_REF_TEMPLATE) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one message type, with its components under ``$defs``."""
    (schema,), components = schema_components((tp,), ref_template=ref_template)
    if components:
        schema["$defs"] = components
    return schema


def schema_definitions(
    types: Iterable[Any] | None = None, ref_template: str = DEFS_REF_TEMPLATE
) -> dict[str, Any]:
    """The components of ``types`` (all message types when None), each union named by its alias.

    Every struct reachable from ``types`` is a component; a union (``WorkerResponse`` ...) is added
    under its alias, as its ``anyOf`` of references with a ``discriminator``.
    """
    selected = tuple(message_types().values()) if types is None else tuple(types)
    schemas, components = schema_components(selected, ref_template=ref_template)
    for tp, schema in zip(selected, schemas, strict=True):
        if is_union(tp):
            components[component_name(tp)] = schema
    return components


def openapi_components(types: Iterable[Any] | None = None) -> dict[str, Any]:
    """An OpenAPI 3.1 ``components`` object (``{"schemas": {...}}``) for ``types`` (all when None)."""
    return {"schemas": schema_definitions(types, ref_template=OPENAPI_REF_TEMPLATE)}
