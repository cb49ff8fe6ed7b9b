"""Every model, enum, union and constant of the reference spec against the Pydantic views.

The reference (``oasst-reference-models.json``) lists per model its bases, its fields (type,
required, default / default factory) and its JSON Schema. For each model the view with the
same name must have the same wire fields (by alias), the same required set, the same defaults,
the same base classes, and a ``model_json_schema(by_alias=True)`` with the same property names,
required set and property shapes (types, refs, enums, items; pydantic v2 spells nullable
fields and refs differently, which the shape ignores). Anything that differs must be
one of the registry's ``KNOWN_DIFFERENCES`` the views share (``DEVIATIONS`` below is that list
in this walk's terms); an entry that no longer matches a real difference fails too.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from oasst_compat import OasstModel
from oasst_compat.model_configs import MODEL_CONFIGS
from oasst_compat.schemas import inference as view_inference
from oasst_shared.schemas._registry import KNOWN_DIFFERENCES, Difference, extra_union_members
from tests.support.compat import MODULE_PAIRS, UNIONS

# The view walk's names for each kind of known difference (the registry's KNOWN_DIFFERENCES that
# the views share); an extra union member is checked by the union test.
_ASPECTS: dict[Difference, tuple[str, ...]] = {
    Difference.REQUIRED_HERE: ("required", "default"),
    Difference.WIRE_TYPE: ("shape",),
    Difference.MISSING_BASE: ("base",),
    Difference.EXTRA_UNION_MEMBER: (),
}

# (module.Model, field or base, aspect) -> why the view differs from the reference.
DEVIATIONS: dict[tuple[str, str, str], str] = {
    (d.model, d.name, aspect): d.reason
    for d in KNOWN_DIFFERENCES
    if d.in_views
    for aspect in _ASPECTS[d.kind]
}

_seen_deviations: set[tuple[str, str, str]] = set()


def _differs(model: str, name: str, aspect: str) -> bool:
    """True when the difference is an allowed deviation (and records that it was needed)."""
    key = (model, name, aspect)
    if key in DEVIATIONS:
        _seen_deviations.add(key)
        return True
    return False


def _models(ref_models: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (module, name, spec)
        for module, content in ref_models["modules"].items()
        for name, spec in content["models"].items()
    ]


def _view(module: str, name: str) -> type[OasstModel]:
    view = getattr(MODULE_PAIRS[module][1], name, None)
    assert isinstance(view, type) and issubclass(view, OasstModel), f"{module}.{name}: no view"
    return view


def _wire_fields(view: type[OasstModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in view.model_fields.items()}


# --------------------------------------------------------------------------- model lists


def test_every_reference_model_has_a_view_and_no_view_is_extra(ref_models: Any) -> None:
    for module, (_struct_module, view_module) in MODULE_PAIRS.items():
        spec_names = set(ref_models["modules"][module]["models"])
        view_names = {
            name
            for name, value in vars(view_module).items()
            if isinstance(value, type)
            and issubclass(value, OasstModel)
            and value.__module__ == view_module.__name__
        }
        assert view_names == spec_names, module


def test_enums_are_the_core_enums_with_the_reference_members(ref_models: Any) -> None:
    checked = 0
    for module, content in ref_models["modules"].items():
        struct_module, view_module = MODULE_PAIRS[module]
        for name, spec in content["enums"].items():
            view_enum = getattr(view_module, name)
            assert view_enum is getattr(struct_module, name)
            assert issubclass(view_enum, enum.Enum)
            members = {member.name: member.value for member in view_enum}
            assert members == {key: value["value"] for key, value in spec["members"].items()}
            checked += 1
    assert checked == sum(len(c["enums"]) for c in ref_models["modules"].values()) > 0


def test_constants_and_model_configs(ref_models: Any) -> None:
    constants = ref_models["constants"]
    assert constants == {"inference.INFERENCE_PROTOCOL_VERSION": view_inference.INFERENCE_PROTOCOL_VERSION}
    assert set(MODEL_CONFIGS) == set(ref_models["model_configs"])
    for key, config in MODEL_CONFIGS.items():
        assert config.model_dump() == ref_models["model_configs"][key], key


# -------------------------------------------------------------------------------- fields


def test_fields_required_and_defaults(ref_models: Any) -> None:
    for module, name, spec in _models(ref_models):
        model = f"{module}.{name}"
        view = _view(module, name)
        fields = _wire_fields(view)
        assert set(fields) == set(spec["fields"]), model
        for field_name, field_spec in spec["fields"].items():
            info = fields[field_name]
            if info.is_required() != field_spec["required"]:
                assert _differs(model, field_name, "required"), f"{model}.{field_name}: required"
            if field_spec["required"] or info.is_required():
                continue
            default = info.get_default(call_default_factory=True, validated_data={})
            if field_spec["default_factory"] is not None:
                # a factory in the reference: a factory here, building a fresh value per message
                if info.default_factory is None:
                    assert _differs(model, field_name, "default"), f"{model}.{field_name}: factory"
                continue
            if isinstance(default, OasstModel):
                default = default.model_dump(mode="json")
            elif isinstance(default, enum.Enum):
                default = default.value
            assert default == field_spec["default"], f"{model}.{field_name}: default"
            if field_spec["allow_none"]:
                # optional fields accept an explicit null
                TypeAdapter(info.annotation).validate_python(None)
    _check_parameters_deviation(ref_models)


def _check_parameters_deviation(ref_models: Any) -> None:
    spec = ref_models["modules"]["inference"]["models"]["WorkRequest"]["fields"]["parameters"]
    assert spec["default_factory"] == "WorkParameters" and not spec["required"]
    assert view_inference.WorkRequest.model_fields["parameters"].is_required()
    assert _differs("inference.WorkRequest", "parameters", "default")


def test_default_factories_build_fresh_values() -> None:
    from oasst_compat.schemas import protocol

    first, second = protocol.TaskDone(), protocol.TaskDone()
    assert first.id != second.id and first.id.version == 4
    a, b = (
        protocol.RateSummaryTask(full_text="t", summary="s"),
        protocol.RateSummaryTask(full_text="t", summary="s"),
    )
    assert a.scale == protocol.RatingScale(min=1, max=5)
    a.scale.max = 10
    assert b.scale.max == 5, "the default scale must not be shared between messages"
    request = view_inference.PingRequest()
    assert request.id != view_inference.PingRequest().id


def test_bases(ref_models: Any) -> None:
    for module, name, spec in _models(ref_models):
        view = _view(module, name)
        for base in spec["bases"]:
            if not issubclass(view, _view(module, base)):
                assert _differs(f"{module}.{name}", base, "base"), f"{module}.{name} should subclass {base}"


# ---------------------------------------------------------------------------- JSON Schema


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _shape(schema: dict[str, Any]) -> Any:
    """The type structure of a property schema, the same for pydantic 1 and 2 spellings."""
    if "$ref" in schema:
        return ("ref", _ref_name(schema["$ref"]))
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _shape(schema["allOf"][0])
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) == 1:
            return _shape(options[0])
        return ("anyOf", sorted((_shape(s) for s in options), key=repr))
    if "const" in schema:
        return ("enum", (schema["const"],))
    if "enum" in schema:
        return ("enum", tuple(schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        return ("array", _shape(schema.get("items", {})))
    if kind == "object":
        extra = schema.get("additionalProperties")
        return ("object", _shape(extra) if isinstance(extra, dict) and extra else None)
    if kind is None:
        return ("any",)
    return (kind, schema.get("format"))


_CONSTRAINTS = ("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum")


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    found = {key: schema[key] for key in _CONSTRAINTS if key in schema}
    for option in schema.get("anyOf", []):
        found.update(_constraints(option))
    return found


def test_json_schema_properties_and_required(ref_models: Any) -> None:
    for module, name, spec in _models(ref_models):
        model = f"{module}.{name}"
        expected = spec["json_schema"]
        actual = _view(module, name).model_json_schema(by_alias=True)
        assert set(actual["properties"]) == set(expected["properties"]), model
        missing = set(expected.get("required", [])) ^ set(actual.get("required", []))
        for field_name in missing:
            assert _differs(model, field_name, "required"), f"{model}.{field_name}: JSON Schema required"


def test_json_schema_property_shapes_and_constraints(ref_models: Any) -> None:
    for module, name, spec in _models(ref_models):
        model = f"{module}.{name}"
        actual = _view(module, name).model_json_schema(by_alias=True)["properties"]
        for field_name, expected in spec["json_schema"]["properties"].items():
            if _shape(actual[field_name]) != _shape(expected):
                assert _differs(model, field_name, "shape"), (
                    f"{model}.{field_name}: {_shape(actual[field_name])} != {_shape(expected)}"
                )
            # every reference constraint holds in the view (the view may add the validation rules)
            constraints = _constraints(actual[field_name])
            for key, value in _constraints(expected).items():
                assert constraints.get(key) == value, f"{model}.{field_name}: {key}"


def test_validation_rules_show_in_the_json_schema() -> None:
    from oasst_compat.schemas import protocol

    labels = protocol.TextLabels.model_json_schema()["properties"]["labels"]["additionalProperties"]
    assert (labels["minimum"], labels["maximum"]) == (0.0, 1.0)
    level = view_inference.SafetyParameters.model_json_schema()["properties"]["level"]
    assert (level["minimum"], level["maximum"]) == (0, 9)


# --------------------------------------------------------------------------------- unions


def test_unions_members_and_discriminators(ref_models: Any) -> None:
    assert len(ref_models["unions"]) == len(UNIONS)
    for spec_name, members in ref_models["unions"].items():
        key = spec_name.split(" ")[0]
        struct_union, view_union = UNIONS[key]
        module = key.split(".")[0]
        schema = TypeAdapter(view_union).json_schema(by_alias=True)
        refs = [_ref_name(option["$ref"]) for option in schema["oneOf"]]
        struct_members = [cls.__name__ for cls in struct_union.__args__]
        assert refs == struct_members
        # the reference's members, plus GeneralErrorResponse which it defined but left out
        extra = set(refs) - set(members)
        assert set(members) <= set(refs)
        assert extra == extra_union_members(key)
        tag_field = schema["discriminator"]["propertyName"]
        assert {cls.__struct_config__.tag_field for cls in struct_union.__args__} == {tag_field}
        if "discriminator" in spec_name:  # "inference.WorkerRequest (discriminator request_type)"
            assert spec_name.endswith(f"(discriminator {tag_field})")
        else:  # plain unions in the reference, every member with its own Literal `type`
            assert tag_field == "type"
        for tag, ref in schema["discriminator"]["mapping"].items():
            view = _view(module, _ref_name(ref))
            assert view.model_fields[tag_field].default == tag
            assert view.__oasst_struct__.__struct_config__.tag == tag


def test_no_deviation_is_stale(ref_models: Any) -> None:
    test_fields_required_and_defaults(ref_models)
    test_json_schema_properties_and_required(ref_models)
    test_json_schema_property_shapes_and_constraints(ref_models)
    test_bases(ref_models)
    assert set(DEVIATIONS) == _seen_deviations, "a listed deviation no longer happens"


@pytest.mark.parametrize("key", sorted(DEVIATIONS))
def test_deviations_name_real_models(ref_models: Any, key: tuple[str, str, str]) -> None:
    module, name = key[0].split(".")
    assert name in ref_models["modules"][module]["models"]
