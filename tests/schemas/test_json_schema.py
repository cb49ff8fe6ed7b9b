"""JSON Schema / OpenAPI export: every message against the reference's schema."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas import json_schema as js
from oasst_shared.schemas._registry import ABSTRACT_BASES, extra_union_members


def _spec_models(ref_models: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for module, content in ref_models["modules"].items():
        for name, model in content["models"].items():
            yield f"{module}.{name}", model["json_schema"]


def _spec_unions(ref_models: Any) -> dict[str, list[str]]:
    """Union dotted name -> member names (the spec's keys read "name (discriminator x)")."""
    return {key.split(" ")[0]: members for key, members in ref_models["unions"].items()}


def _component(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The component a ``$ref`` schema points at."""
    name = schema["$ref"].rpartition("/")[2]
    found: dict[str, Any] = components[name]
    return found


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _struct_info(cls: Any) -> msgspec.inspect.StructType:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType), cls
    return info


def _expected_required(name: str, reference: dict[str, Any]) -> set[str]:
    deviation = js.SCHEMA_DEVIATIONS.get(name)
    required = set(reference.get("required", []))
    if deviation is None:
        return required
    return (required - deviation.required_in_reference_only) | deviation.required_here_only


# ---------------------------------------------------------------------------------- registry


def test_registry_holds_exactly_the_reference_models_and_unions(ref_models: Any) -> None:
    registry = js.message_types()
    structs = {name for name, tp in registry.items() if not js.is_union(tp)}
    unions = {name for name, tp in registry.items() if js.is_union(tp)}
    assert structs == {name for name, _ in _spec_models(ref_models)}
    assert unions == set(_spec_unions(ref_models))


def test_resolve_message_type_by_dotted_and_bare_name() -> None:
    assert js.resolve_message_type("inference.TokenResponse") is inference.TokenResponse
    assert js.resolve_message_type("TokenResponse") is inference.TokenResponse
    assert js.resolve_message_type("protocol.AnyTask") == protocol.AnyTask
    assert js.message_type_name(inference.WorkerResponse) == "inference.WorkerResponse"


@pytest.mark.parametrize(
    "name", ["inference.ModelConfig", "protocol.Nope", "inference.OasstStruct", "AuthMethod"]
)
def test_resolve_rejects_names_that_are_not_messages(name: str) -> None:
    # ModelConfig is imported by inference but defined in model_configs; AuthMethod is a Literal.
    with pytest.raises(js.UnknownMessageTypeError):
        js.resolve_message_type(name)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(js.UnknownMessageTypeError, match=r"did you mean inference\.TokenResponse"):
        js.resolve_message_type("inference.TokenRespons")


# ------------------------------------------------------------------------- against the spec


def test_every_model_has_the_reference_properties_and_required_set(ref_models: Any) -> None:
    registry = js.message_types()
    mismatches = []
    for name, reference in _spec_models(ref_models):
        schema = js.json_schema(registry[name])
        ours = _component(schema, schema["$defs"])
        properties = set(ours.get("properties", {}))
        required = set(ours.get("required", []))
        if properties != set(reference.get("properties", {})):
            mismatches.append(f"{name}: properties {sorted(properties ^ set(reference['properties']))}")
        if required != _expected_required(name, reference):
            expected = sorted(_expected_required(name, reference))
            mismatches.append(f"{name}: required {sorted(required)}, expected {expected}")
    assert mismatches == []


def test_documented_deviations_are_real(ref_models: Any) -> None:
    """Each deviation names a model of the spec, and the spec differs from us exactly there."""
    references = dict(_spec_models(ref_models))
    registry = js.message_types()
    for name, deviation in js.SCHEMA_DEVIATIONS.items():
        assert deviation.required_here_only or deviation.required_in_reference_only, name
        reference_required = set(references[name].get("required", []))
        schema = js.json_schema(registry[name])
        ours = set(_component(schema, schema["$defs"]).get("required", []))
        assert deviation.required_in_reference_only <= reference_required - ours, name
        assert deviation.required_here_only <= ours - reference_required, name


def test_tags_are_optional_properties_with_the_reference_default(ref_models: Any) -> None:
    registry = js.message_types()
    tagged = 0
    for name, reference in _spec_models(ref_models):
        info = _struct_info(registry[name])
        if info.tag_field is None:
            continue
        tagged += 1
        schema = js.json_schema(registry[name])
        ours = _component(schema, schema["$defs"])
        prop = ours["properties"][info.tag_field]
        ref_prop = reference["properties"][info.tag_field]
        assert prop == {"enum": ref_prop["enum"], "default": ref_prop["default"], "type": "string"}
        assert info.tag_field not in ours.get("required", [])
    assert tagged >= 29  # every task, interaction, worker request and response


def test_abstract_bases_list_type_as_an_optional_string() -> None:
    for name in ABSTRACT_BASES:
        schema = js.json_schema(js.resolve_message_type(name))
        ours = _component(schema, schema["$defs"])
        assert ours["properties"]["type"] == {"type": "string"}
        assert "type" not in ours.get("required", [])
    # A base tagged on another field is left alone, as in the reference.
    schema = js.json_schema(inference.WorkerRequestBase)
    assert "request_type" not in _component(schema, schema["$defs"])["properties"]


def test_empty_required_lists_are_dropped() -> None:
    schema = js.json_schema(inference.PingRequest)
    assert "required" not in _component(schema, schema["$defs"])
    assert "required" not in _component(js.json_schema(protocol.Task), js.json_schema(protocol.Task)["$defs"])


def test_union_schemas_discriminate_on_the_reference_members(ref_models: Any) -> None:
    unions = _spec_unions(ref_models)
    registry = js.message_types()
    for name, members in unions.items():
        schema = js.json_schema(registry[name])
        discriminator = schema["discriminator"]
        # plus a member the reference defined but left out of its union (GeneralErrorResponse)
        expected_members = set(members) | extra_union_members(name)
        module = inference if name.startswith("inference") else protocol
        classes = [getattr(module, member) for member in expected_members]
        tag_field = {_struct_info(c).tag_field for c in classes}
        assert {discriminator["propertyName"]} == tag_field
        tags = {_struct_info(c).tag for c in classes}
        assert set(discriminator["mapping"]) == tags
        assert {ref.rpartition("/")[2] for ref in discriminator["mapping"].values()} == expected_members
        assert all(ref in (f"#/$defs/{m}" for m in expected_members) for ref in _refs(schema["anyOf"]))


def test_openapi_components_hold_every_message_and_every_ref_resolves(ref_models: Any) -> None:
    schemas = js.openapi_components()["schemas"]
    for name, _ in _spec_models(ref_models):
        assert name.rpartition(".")[2] in schemas, name
    for alias in ("AnyTask", "AnyInteraction", "WorkerRequest", "WorkerResponse"):
        assert "discriminator" in schemas[alias]
    refs = set(_refs(schemas))
    assert refs, "components reference each other"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rpartition("/")[2] in schemas, ref


def test_schema_components_for_a_selection_only_includes_what_is_reachable() -> None:
    (schema,), components = js.schema_components([inference.TokenResponse])
    assert schema == {"$ref": "#/$defs/TokenResponse"}
    assert set(components) == {"TokenResponse"}
    definitions = js.schema_definitions([inference.WorkerRequest])
    assert "WorkerRequest" in definitions
    assert "TokenResponse" not in definitions
    assert {"WorkRequest", "Thread", "MessageRead", "WorkParameters"} <= set(definitions)


def test_tags_are_fixed_even_when_component_names_clash() -> None:
    """msgspec names clashing classes by their import path; the post-processing follows it."""

    def first_module() -> type[msgspec.Struct]:
        class Clash(msgspec.Struct, tag_field="kind", tag="one"):
            value: int

        return Clash

    def second_module() -> type[msgspec.Struct]:
        class Clash(msgspec.Struct, tag_field="kind", tag="two"):
            value: int

        return Clash

    union = typing.Union[first_module(), second_module()]  # a runtime union of two local classes
    (schema,), components = js.schema_components([union])
    assert len(components) == 2
    assert all("." in name for name in components)
    for component in components.values():
        assert component["properties"]["kind"]["default"] in ("one", "two")
        assert component["required"] == ["value"]
    assert set(schema["discriminator"]["mapping"]) == {"one", "two"}


def test_json_schema_carries_no_runtime_state() -> None:
    """Two exports are equal and independent (post-processing never mutates shared data)."""
    first = js.json_schema(inference.WorkerResponse)
    first["$defs"]["TokenResponse"]["properties"].clear()
    second = js.json_schema(inference.WorkerResponse)
    assert second["$defs"]["TokenResponse"]["properties"]
    assert msgspec.json.encode(js.json_schema(inference.WorkerResponse)) == msgspec.json.encode(second)
