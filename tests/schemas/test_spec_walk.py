"""Every model, enum and union of the reference spec against our structs, field by field.

The reference (``oasst-reference-models.json``) lists per model its bases and its fields with
type, required, default / default factory and JSON Schema. A struct's wire fields are its
msgspec fields plus, for a tagged struct, the tag field (not required, default = the tag).
Anything that differs must be one of the registry's ``KNOWN_DIFFERENCES`` (``DEVIATIONS`` below
is that list in the walk's terms); an entry that no longer matches a real difference fails too,
so the list cannot go stale.
"""

from __future__ import annotations

import enum
import importlib
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any
from uuid import UUID

import msgspec
import msgspec.inspect as mi
import pytest

from oasst_shared.exceptions.error_codes import OasstErrorCode
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas._registry import (
    KNOWN_DIFFERENCES,
    MESSAGE_MODULES,
    Difference,
    struct_types,
    unions,
)

MODULES: dict[str, ModuleType] = {
    short: importlib.import_module(name) for short, name in MESSAGE_MODULES.items()
}

# The walk's name for each kind of known difference (the registry's KNOWN_DIFFERENCES). Aspects:
# missing / extra (wire field), required, default, type, base, union.
_ASPECT: dict[Difference, str] = {
    Difference.TAG_NOT_A_FIELD: "missing",
    Difference.REQUIRED_HERE: "required",
    Difference.WIRE_TYPE: "type",
    Difference.MISSING_BASE: "base",
    Difference.EXTRA_UNION_MEMBER: "union",
}

# (module.Model, field or base name, aspect) -> why we differ from the reference. Nothing else
# may differ.
DEVIATIONS: dict[tuple[str, str, str], str] = {
    (d.model, d.name, _ASPECT[d.kind]): d.reason for d in KNOWN_DIFFERENCES
}

# Constraints we enforce that the reference's JSON Schema does not show, because the reference
# checked them in a validator: (module.Model, field) -> key of the spec's validation_rules.
VALIDATOR_CONSTRAINTS: dict[tuple[str, str], str] = {
    ("inference.SafetyParameters", "level"): "inference.SafetyParameters.level",
}


def _enum_classes(module: ModuleType) -> dict[str, type[enum.Enum]]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, enum.Enum) and obj.__module__ == module.__name__
    }


ALL_MODELS = [(mod, name) for mod, _, name in (dotted.partition(".") for dotted in struct_types())]


# ------------------------------------------------------------------------------ normalising


@dataclass(frozen=True)
class Diff:
    key: tuple[str, str, str]
    message: str


def _our_kind(info: mi.Type) -> Any:
    """A JSON-level description of a msgspec type, comparable with ``_ref_kind``."""
    if isinstance(info, mi.UnionType):
        kinds = {_our_kind(t) for t in info.types if not isinstance(t, mi.NoneType)}
        return next(iter(kinds)) if len(kinds) == 1 else ("union", frozenset(kinds))
    if isinstance(info, mi.StrType):
        return ("string", None)
    if isinstance(info, mi.UUIDType):
        return ("string", "uuid")
    if isinstance(info, mi.DateTimeType):
        return ("string", "date-time")
    if isinstance(info, mi.IntType):
        return ("integer",)
    if isinstance(info, mi.FloatType):
        return ("number",)
    if isinstance(info, mi.BoolType):
        return ("boolean",)
    if isinstance(info, mi.AnyType):
        return ("any",)
    if isinstance(info, mi.ListType):
        return ("array", _our_kind(info.item_type))
    if isinstance(info, mi.DictType):
        return ("object", _our_kind(info.value_type))
    if isinstance(info, mi.StructType):
        return ("struct", info.cls.__name__)
    if isinstance(info, mi.EnumType):
        return ("enum", frozenset(m.value for m in info.cls))
    if isinstance(info, mi.LiteralType):
        return ("enum", frozenset(info.values))
    raise AssertionError(f"unexpected type {info!r}")


def _ref_enum_values(spec: Any, name: str) -> frozenset[Any] | None:
    if name == "OasstErrorCode":
        return frozenset(spec["error_codes"]["OasstErrorCode"].values())
    for module in spec["modules"].values():
        if name in module["enums"]:
            return frozenset(m["value"] for m in module["enums"][name]["members"].values())
    return None


def _ref_kind(schema: dict[str, Any], spec: Any) -> Any:
    """A JSON-level description of a reference (pydantic v1) JSON Schema fragment."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        values = _ref_enum_values(spec, name)
        return ("struct", name) if values is None else ("enum", values)
    if "allOf" in schema:
        (inner,) = schema["allOf"]
        return _ref_kind(inner, spec)
    if "anyOf" in schema:
        kinds = {_ref_kind(s, spec) for s in schema["anyOf"] if s.get("type") != "null"}
        return next(iter(kinds)) if len(kinds) == 1 else ("union", frozenset(kinds))
    if "enum" in schema:
        return ("enum", frozenset(schema["enum"]))
    kind = schema.get("type")
    if kind is None:
        return ("any",)
    if kind == "string":
        return ("string", schema.get("format"))
    if kind == "array":
        return ("array", _ref_kind(schema.get("items") or {}, spec))
    if kind == "object":
        return ("object", _ref_kind(schema.get("additionalProperties") or {}, spec))
    return (kind,)


_CONSTRAINT_KEYS = {
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def _our_constraints(info: mi.Type) -> dict[str, Any]:
    if isinstance(info, mi.UnionType):
        result: dict[str, Any] = {}
        for t in info.types:
            result.update(_our_constraints(t))
        return result
    pairs: list[tuple[str, Any]] = []
    if isinstance(info, mi.StrType):
        pairs = [("minLength", info.min_length), ("maxLength", info.max_length)]
    elif isinstance(info, mi.ListType | mi.DictType):
        pairs = [("minItems", info.min_length), ("maxItems", info.max_length)]
    elif isinstance(info, mi.IntType | mi.FloatType):
        pairs = [
            ("minimum", info.ge),
            ("maximum", info.le),
            ("exclusiveMinimum", info.gt),
            ("exclusiveMaximum", info.lt),
        ]
    return {k: v for k, v in pairs if v is not None}


# -------------------------------------------------------------------------------- defaults


def _canonical(value: Any) -> str:
    """Plain-value identity: ``False`` != ``0``, ``1024`` != ``1024.0``, enums by value."""
    return json.dumps(msgspec.to_builtins(value), sort_keys=True)


def _check_uuid4(factory: Callable[[], Any]) -> str | None:
    a, b = factory(), factory()
    if not (isinstance(a, UUID) and a.version == 4 and a != b):
        return f"expected a fresh uuid4 per call, got {a!r}, {b!r}"
    return None


def _check_uuid4_str(factory: Callable[[], Any]) -> str | None:
    a, b = factory(), factory()
    if not (isinstance(a, str) and UUID(a).version == 4 and str(UUID(a)) == a and a != b):
        return f"expected a fresh uuid4 string per call, got {a!r}, {b!r}"
    return None


def _check_empty_list(factory: Callable[[], Any]) -> str | None:
    a, b = factory(), factory()
    if not (type(a) is list and a == [] and a is not b):
        return f"expected a fresh empty list per call, got {a!r}"
    return None


def _check_seed(factory: Callable[[], Any]) -> str | None:
    seeds = [factory() for _ in range(20)]
    if not all(type(s) is int and 0 <= s <= 2**64 - 2 for s in seeds):
        return f"seeds outside [0, 2**64 - 2]: {seeds}"
    if len(set(seeds)) < 2:
        return f"seeds do not vary: {seeds}"
    return None


def _check_utcnow(factory: Callable[[], Any]) -> str | None:
    before = datetime.now(timezone.utc)
    value = factory()
    after = datetime.now(timezone.utc)
    if not (isinstance(value, datetime) and value.utcoffset() == timedelta(0)):
        return f"expected an aware UTC datetime, got {value!r}"
    if not before <= value <= after:
        return f"expected the current time, got {value!r}"
    return None


def _check_struct_factory(cls: type) -> Callable[[Callable[[], Any]], str | None]:
    def check(factory: Callable[[], Any]) -> str | None:
        a, b = factory(), factory()
        if not (type(a) is cls and a == cls() and a is not b):
            return f"expected a fresh {cls.__name__}() per call, got {a!r}"
        return None

    return check


# Spec default_factory name -> check of our factory. An unknown name fails the walk.
FACTORY_CHECKS: dict[str, Callable[[Callable[[], Any]], str | None]] = {
    "uuid4": _check_uuid4,
    "list": _check_empty_list,
    "make_seed": _check_seed,
    "utcnow": _check_utcnow,
    "SamplingParameters": _check_struct_factory(inference.SamplingParameters),
    "SafetyParameters": _check_struct_factory(inference.SafetyParameters),
}
# The reference's anonymous factories, by field: WorkerRequestBase.id = str(uuid4()).
LAMBDA_CHECKS: dict[str, Callable[[Callable[[], Any]], str | None]] = {"id": _check_uuid4_str}


# ------------------------------------------------------------------------------------ walk


@dataclass(frozen=True)
class WireField:
    required: bool
    default: Any  # msgspec.NODEFAULT when there is a factory or none
    factory: Callable[[], Any] | None
    info: mi.Type | None  # None for the tag field
    tag: str | None = None


def wire_fields(cls: type) -> dict[str, WireField]:
    """A struct's wire fields: the tag field (if tagged) and its msgspec fields."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields: dict[str, WireField] = {}
    if info.tag_field is not None:
        fields[info.tag_field] = WireField(False, info.tag, None, None, tag=str(info.tag))
    for f in info.fields:
        factory = None if f.default_factory is msgspec.NODEFAULT else f.default_factory
        fields[f.encode_name] = WireField(f.required, f.default, factory, f.type)
    return fields


def _default_diffs(where: str, name: str, ref: dict[str, Any], ours: WireField) -> list[Diff]:
    key = (where, name, "default")
    ref_factory = ref["default_factory"]
    if ref_factory is not None:
        if ours.factory is None:
            return [Diff(key, f"reference uses factory {ref_factory}, ours a plain default {ours.default!r}")]
        check = LAMBDA_CHECKS.get(name) if ref_factory == "<lambda>" else FACTORY_CHECKS.get(ref_factory)
        if check is None:
            return [Diff(key, f"no check known for the reference's factory {ref_factory!r}")]
        problem = check(ours.factory)
        return [] if problem is None else [Diff(key, problem)]
    value = ours.factory() if ours.factory is not None else ours.default
    if _canonical(value) != json.dumps(ref["default"], sort_keys=True):
        return [Diff(key, f"default {value!r}, reference {ref['default']!r}")]
    mutable = isinstance(value, list | dict | msgspec.Struct)
    if ours.factory is not None and mutable and ours.factory() is value:
        return [Diff(key, "mutable default shared between instances")]
    return []


def _type_diffs(where: str, name: str, ref_schema: dict[str, Any], ours: WireField, spec: Any) -> list[Diff]:
    key = (where, name, "type")
    ref_kind = _ref_kind(ref_schema, spec)
    if ours.info is None:  # the tag field: a Literal of one value
        our_kind: Any = ("enum", frozenset({ours.tag}))
    else:
        our_kind = _our_kind(ours.info)
    diffs = []
    if our_kind != ref_kind:
        diffs.append(Diff(key, f"type {our_kind}, reference {ref_kind}"))
    ref_constraints = {k: v for k, v in ref_schema.items() if k in _CONSTRAINT_KEYS}
    ours_constraints = _our_constraints(ours.info) if ours.info is not None else {}
    rule = VALIDATOR_CONSTRAINTS.get((where, name))
    if rule is not None:
        assert rule in spec["validation_rules"], rule
        ours_constraints = {k: v for k, v in ours_constraints.items() if k in ref_constraints}
    if ours_constraints != ref_constraints:
        diffs.append(Diff((where, name, "constraint"), f"{ours_constraints}, reference {ref_constraints}"))
    return diffs


def model_diffs(mod: str, name: str, spec: Any) -> list[Diff]:
    """Every difference between our struct ``mod.name`` and the reference's model."""
    where = f"{mod}.{name}"
    module = MODULES[mod]
    ref = spec["modules"][mod]["models"][name]
    cls = getattr(module, name)
    diffs: list[Diff] = []

    for base in ref["bases"]:
        if not issubclass(cls, getattr(module, base)):
            diffs.append(Diff((where, base, "base"), f"not a subclass of {base}"))
    for ancestor in cls.__mro__[1:]:
        if ancestor.__module__ == module.__name__ and ancestor.__name__ not in ref["bases"]:
            diffs.append(Diff((where, ancestor.__name__, "base"), "a base the reference does not have"))

    ours = wire_fields(cls)
    ref_fields = ref["fields"]
    properties = ref["json_schema"]["properties"]
    for field in ref_fields.keys() - ours.keys():
        diffs.append(Diff((where, field, "missing"), "field of the reference missing"))
    for field in ours.keys() - ref_fields.keys():
        diffs.append(Diff((where, field, "extra"), "field the reference does not have"))
    for field in ref_fields.keys() & ours.keys():
        r, o = ref_fields[field], ours[field]
        if r["required"] != o.required:
            diffs.append(
                Diff((where, field, "required"), f"required={o.required}, reference {r['required']}")
            )
        elif not o.required:
            diffs.extend(_default_diffs(where, field, r, o))
        diffs.extend(_type_diffs(where, field, properties[field], o, spec))
    return diffs


def _undocumented(diffs: list[Diff]) -> list[str]:
    return [f"{'/'.join(d.key)}: {d.message}" for d in diffs if d.key not in DEVIATIONS]


# ----------------------------------------------------------------------------------- tests


def test_every_reference_model_exists_and_no_other(ref_models: Any) -> None:
    for mod in MODULES:
        ours = {name for module, name in ALL_MODELS if module == mod}
        assert ours == set(ref_models["modules"][mod]["models"]), mod
    assert len(ref_models["modules"]["protocol"]["models"]) == 54
    assert len(ref_models["modules"]["inference"]["models"]) == 40
    assert len(ref_models["modules"]["model_configs"]["models"]) == 1


@pytest.mark.parametrize(("mod", "name"), ALL_MODELS, ids=[f"{m}.{n}" for m, n in ALL_MODELS])
def test_model_matches_reference(ref_models: Any, mod: str, name: str) -> None:
    assert name in ref_models["modules"][mod]["models"], f"{mod}.{name} is not a reference model"
    assert _undocumented(model_diffs(mod, name, ref_models)) == []


def test_every_deviation_is_real(ref_models: Any) -> None:
    """Each DEVIATIONS entry names a difference that exists (else it hides nothing: delete it)."""
    found = {d.key for mod, name in ALL_MODELS for d in model_diffs(mod, name, ref_models)}
    found |= {d.key for d in union_diffs(ref_models)}
    assert set(DEVIATIONS) - found == set()


def test_walk_detects_differences(ref_models: Any) -> None:
    """The walk is not vacuous: a doctored spec yields the differences it should."""
    spec = json.loads(json.dumps(ref_models))
    fields = spec["modules"]["inference"]["models"]["TokenResponse"]["fields"]
    fields["token_id"]["required"] = False
    fields["token_id"]["default"] = 0
    fields["log_prob"]["default"] = 0.0
    fields["new_field"] = dict(fields["text"])
    spec["modules"]["inference"]["models"]["TokenResponse"]["bases"].append("PongResponse")
    spec["modules"]["inference"]["models"]["TokenResponse"]["json_schema"]["properties"]["text"] = {
        "type": "string",
        "format": "uuid",
    }
    keys = {d.key for d in model_diffs("inference", "TokenResponse", spec)}
    where = "inference.TokenResponse"
    assert keys == {
        (where, "token_id", "required"),
        (where, "log_prob", "default"),
        (where, "new_field", "missing"),
        (where, "PongResponse", "base"),
        (where, "text", "type"),
    }


def test_abstract_bases_declare_the_tag_without_a_value() -> None:
    """Task / Interaction bases: ``type`` is a ClassVar the concrete subclasses fill."""
    for cls in (protocol.Task, protocol.AbstractRatingTask, protocol.AbstractLabelTask, protocol.Interaction):
        assert typing.get_type_hints(cls)["type"] == typing.ClassVar[str], cls
        assert "type" not in {f.name for f in msgspec.structs.fields(cls)}
        assert mi.type_info(cls).tag_field is None  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            _ = cls.type
    # The worker bases carry no tag in the reference either (checked by the walk: exactly `id`
    # and `request_id`); ours only annotate the attribute their subclasses set.
    assert set(wire_fields(inference.WorkerRequestBase)) == {"id"}
    assert set(wire_fields(inference.WorkerResponseBase)) == {"request_id"}


def test_hinted_tasks_carry_the_mixin_field() -> None:
    mixin = wire_fields(protocol.WithHintMixin)["hint"]
    for cls in (protocol.InitialPromptTask, protocol.PrompterReplyTask):
        hint = wire_fields(cls)["hint"]
        assert (hint.required, hint.default, _our_kind(hint.info)) == (  # type: ignore[arg-type]
            mixin.required,
            mixin.default,
            _our_kind(mixin.info),  # type: ignore[arg-type]
        )


# ------------------------------------------------------------------------------------ enums


def _enum_params() -> list[tuple[str, str]]:
    return [(mod, name) for mod, module in MODULES.items() for name in _enum_classes(module)]


def test_every_reference_enum_exists_and_no_other(ref_models: Any) -> None:
    for mod, module in MODULES.items():
        assert set(_enum_classes(module)) == set(ref_models["modules"][mod]["enums"]), mod


@pytest.mark.parametrize(("mod", "name"), _enum_params(), ids=[f"{m}.{n}" for m, n in _enum_params()])
def test_enum_matches_reference(ref_models: Any, mod: str, name: str) -> None:
    ref = ref_models["modules"][mod]["enums"][name]
    cls = getattr(MODULES[mod], name)
    assert ref["base"] == ["str", "Enum"]
    assert issubclass(cls, str)
    assert issubclass(cls, enum.Enum)
    assert [m.name for m in cls] == list(ref["members"])  # names, in order
    aliases = {alias: m.name for alias, m in cls.__members__.items() if alias != m.name}
    assert aliases == ref["aliases"]
    for member_name, expected in ref["members"].items():
        member = cls[member_name]
        assert member.value == expected["value"], member_name
        assert member == expected["value"]  # a str enum compares equal to its value
        for attribute, value in expected.items():  # TextLabel: widget, display_text, help_text
            if attribute != "value":
                assert msgspec.to_builtins(getattr(member, attribute)) == value, (member_name, attribute)


def test_text_label_presentation(ref_models: Any) -> None:
    """TextLabel members carry their widget (a LabelWidget) and texts, as frontends read them."""
    members = ref_models["modules"]["protocol"]["enums"]["TextLabel"]["members"]
    assert {m["widget"] for m in members.values()} == {w.value for w in protocol.LabelWidget}
    for label in protocol.TextLabel:
        assert isinstance(label.widget, protocol.LabelWidget)
        assert label.display_text == members[label.name]["display_text"] != ""
        assert label.help_text == members[label.name]["help_text"]
    assert protocol.TextLabel.lang_mismatch.help_text is not None
    assert protocol.TextLabel("spam") is protocol.TextLabel.spam  # type: ignore[call-arg]


# ----------------------------------------------------------------------------------- unions


def _parse_union_key(key: str) -> tuple[str, str, str]:
    """'inference.WorkerRequest (discriminator request_type)' -> (module, name, tag field)."""
    qualified, _, rest = key.partition(" ")
    mod, name = qualified.split(".")
    tag_field = rest.removeprefix("(discriminator ").removesuffix(")") if rest else "type"
    return mod, name, tag_field


def union_diffs(spec: Any) -> list[Diff]:
    diffs = []
    for key, members in spec["unions"].items():
        mod, name, tag_field = _parse_union_key(key)
        where = f"{mod}.{name}"
        ours = {cls.__name__: cls for cls in typing.get_args(unions()[where])}
        for missing in set(members) - set(ours):
            diffs.append(Diff((where, missing, "union"), "member missing"))
        for extra in set(ours) - set(members):
            diffs.append(Diff((where, extra, "union"), "member the reference does not have"))
        for member, cls in ours.items():
            info = mi.type_info(cls)
            assert isinstance(info, mi.StructType)
            ref_tag = spec["modules"][mod]["models"][member]["fields"][tag_field]
            if info.tag_field != tag_field or info.tag != ref_tag["default"]:
                diffs.append(
                    Diff(
                        (where, member, "tag"),
                        f"tag {info.tag_field}={info.tag!r}, reference {tag_field}={ref_tag['default']!r}",
                    )
                )
    return diffs


def test_unions_match_reference(ref_models: Any) -> None:
    assert len(ref_models["unions"]) == 4
    assert _undocumented(union_diffs(ref_models)) == []


def test_union_tags_are_distinct_and_exposed() -> None:
    for union, tag_field in (
        (protocol.AnyTask, "type"),
        (protocol.AnyInteraction, "type"),
        (inference.WorkerRequest, "request_type"),
        (inference.WorkerResponse, "response_type"),
    ):
        members = typing.get_args(union)
        tags = [mi.type_info(cls).tag for cls in members]  # type: ignore[attr-defined]
        assert len(set(tags)) == len(tags)
        for cls, tag in zip(members, tags, strict=True):
            assert getattr(cls, tag_field) == tag  # the class attribute consumers read


# -------------------------------------------------------------------------------- constants


def test_constants(ref_models: Any) -> None:
    assert ref_models["constants"] == {"inference.INFERENCE_PROTOCOL_VERSION": "1"}
    assert inference.INFERENCE_PROTOCOL_VERSION == "1"
    assert isinstance(inference.INFERENCE_PROTOCOL_VERSION, str)


def test_error_code_enum_used_by_error_response(ref_models: Any) -> None:
    kind = _our_kind(wire_fields(protocol.OasstErrorResponse)["error_code"].info)  # type: ignore[arg-type]
    assert kind == ("enum", frozenset(ref_models["error_codes"]["OasstErrorCode"].values()))
    assert kind == ("enum", frozenset(m.value for m in OasstErrorCode))
