"""Every message class is documented, and no docstring ever reaches an exported schema.

* Each public class of ``schemas.protocol`` and ``schemas.inference`` (structs and enums) has a
  docstring of its own (the API reference shows it; without one it shows only fields).
* msgspec and pydantic copy a class docstring into its JSON Schema as ``description``. The
  reference's message schemas have none at class level (only a few deprecated fields carry
  one), so the exports must not either: the msgspec export (``schemas.json_schema``) and the
  Pydantic views (``oasst_compat``) may only carry a description the reference has at the same
  place, and changing every docstring leaves every exported schema as it was.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from pydantic import TypeAdapter

from oasst_compat import OasstModel
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas import json_schema as js
from oasst_shared.schemas._registry import message_types
from tests.support.compat import MODULE_PAIRS, UNIONS

MODULES = (protocol, inference)

# Keys whose value maps names (properties, components) to schemas.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "schemas"})
# Keys whose value is data or names, not a schema.
_NOT_SCHEMAS = frozenset(
    {"enum", "const", "default", "examples", "required", "discriminator", "$ref", "type"}
)


def _public_classes(module: ModuleType) -> list[type]:
    return [
        obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and obj.__module__ == module.__name__ and not name.startswith("_")
    ]


def _own_docstring(cls: type) -> str:
    doc = vars(cls).get("__doc__")
    if not isinstance(doc, str) or doc.strip() in {"", "An enumeration."}:
        return ""
    return inspect.cleandoc(doc)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_class_has_a_docstring_of_its_own(module: ModuleType) -> None:
    classes = _public_classes(module)
    assert len(classes) > 30  # the walk finds the module's classes
    missing = [cls.__name__ for cls in classes if not _own_docstring(cls)]
    assert missing == [], f"{module.__name__}: classes without a docstring: {missing}"


def test_every_message_type_is_covered_by_the_docstring_walk() -> None:
    walked = {cls for module in MODULES for cls in _public_classes(module)}
    for name, tp in message_types().items():
        if name.partition(".")[0] in {"protocol", "inference"} and isinstance(tp, type):
            assert tp in walked, name


def test_the_docstring_check_sees_a_missing_or_inherited_docstring() -> None:
    class Undocumented(protocol.TaskDone, kw_only=True, tag="undocumented_test_task"):
        pass

    class Plain(str, enum.Enum):
        a = "a"

    assert _own_docstring(protocol.TaskDone)
    assert _own_docstring(Undocumented) == ""  # the base's docstring does not count
    assert _own_docstring(Plain) == ""


# ----------------------------------------------------------------------------- descriptions


def _descriptions(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every ``description`` of a JSON Schema document, with the path of keys to it.

    Knows which keys hold schemas: a property *named* ``description`` (as
    ``PluginOpenAPIParameter`` has) is not a description.
    """
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _descriptions(item, (*where, str(index)))
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "description":
            yield where, value
        elif key in _NAME_MAPS and isinstance(value, dict):
            for name, schema in value.items():
                yield from _descriptions(schema, (*where, key, name))
        elif key not in _NOT_SCHEMAS:
            yield from _descriptions(value, (*where, key))


def _reference_descriptions(ref_models: Any) -> dict[tuple[str, ...], str]:
    """The reference's descriptions, by (model,) for a model's own and (model, property) for a field's."""
    found: dict[tuple[str, ...], str] = {}
    for content in ref_models["modules"].values():
        for name, model in content["models"].items():
            schema = model["json_schema"]
            if "description" in schema:
                found[(name,)] = schema["description"]
            for prop, prop_schema in schema.get("properties", {}).items():
                if "description" in prop_schema:
                    found[(name, prop)] = prop_schema["description"]
    return found


def _place(where: tuple[str, ...]) -> tuple[str, ...] | None:
    """The reference place of a description at ``where``: (component,) or (component, property).

    None for a description anywhere else (inside a property's schema, on a document's root),
    where the reference has none.
    """
    names = [i for i, key in enumerate(where) if key in {"$defs", "definitions", "schemas"}]
    if not names:
        return None
    rest = where[names[-1] + 1 :]
    if len(rest) == 1:
        return (rest[0],)
    if len(rest) == 3 and rest[1] == "properties":
        return (rest[0], rest[2])
    return None


def _unknown_descriptions(document: Any, reference: dict[tuple[str, ...], str]) -> list[str]:
    return [
        f"{'/'.join(where)}: {text!r}"
        for where, text in _descriptions(document)
        if (place := _place(where)) is None or reference.get(place) != text
    ]


def _msgspec_documents() -> dict[str, Any]:
    documents: dict[str, Any] = {
        "schema_definitions()": {"$defs": js.schema_definitions()},
        "openapi_components()": js.openapi_components(),
    }
    for name, tp in message_types().items():
        documents[f"json_schema({name})"] = js.json_schema(tp)
    return documents


def _view_documents() -> dict[str, Any]:
    documents: dict[str, Any] = {}
    for _struct_module, view_module in MODULE_PAIRS.values():
        for name, view in vars(view_module).items():
            if (
                isinstance(view, type)
                and issubclass(view, OasstModel)
                and view.__module__ == view_module.__name__
            ):
                for mode in ("validation", "serialization"):
                    schema = view.model_json_schema(by_alias=True, mode=mode)
                    # the root is the view's own component: file it under its name
                    defs = schema.pop("$defs", {})
                    documents[f"{name} ({mode})"] = {"$defs": {**defs, name: schema}}
    for name, (_union, view_union) in UNIONS.items():
        documents[f"TypeAdapter({name})"] = TypeAdapter(view_union).json_schema(by_alias=True)
    return documents


def test_the_description_walk_finds_descriptions_and_their_places(ref_models: Any) -> None:
    reference = _reference_descriptions(ref_models)
    # the reference's own: deprecated fields, no model-level text
    assert reference[("LabelInitialPromptTask", "prompt")] == "deprecated, use `prompt_message`"
    assert not [place for place in reference if len(place) == 1]
    document = {
        "$defs": {
            "LabelInitialPromptTask": {
                "description": "A docstring.",
                "properties": {
                    "prompt": {"description": "deprecated, use `prompt_message`"},
                    "description": {"type": "string"},  # a property named so: not a description
                    "other": {"anyOf": [{"description": "nested"}]},
                },
            }
        }
    }
    assert _unknown_descriptions(document, reference) == [
        "$defs/LabelInitialPromptTask: 'A docstring.'",
        "$defs/LabelInitialPromptTask/properties/other/anyOf/0: 'nested'",
    ]


def test_the_msgspec_export_has_no_description_the_reference_lacks(ref_models: Any) -> None:
    reference = _reference_descriptions(ref_models)
    documents = _msgspec_documents()
    assert len(documents) > 90
    unknown = {
        name: found for name, doc in documents.items() if (found := _unknown_descriptions(doc, reference))
    }
    assert unknown == {}


def test_the_views_have_no_description_the_reference_lacks(ref_models: Any) -> None:
    reference = _reference_descriptions(ref_models)
    documents = _view_documents()
    assert len(documents) > 180
    unknown = {
        name: found for name, doc in documents.items() if (found := _unknown_descriptions(doc, reference))
    }
    assert unknown == {}


def _documented_classes() -> list[type]:
    """Every class whose docstring msgspec or pydantic could copy into an exported schema."""
    classes: list[type] = []
    for struct_module, view_module in MODULE_PAIRS.values():
        for module in (struct_module, view_module):
            classes += [
                obj
                for obj in vars(module).values()
                if isinstance(obj, type) and obj.__module__.startswith(("oasst_shared.", "oasst_compat."))
            ]
    return list(dict.fromkeys(classes))


@pytest.mark.parametrize(
    "export", [_msgspec_documents, _view_documents], ids=["msgspec-export", "pydantic-views"]
)
def test_changing_every_docstring_changes_no_schema(
    export: Callable[[], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = export()
    classes = _documented_classes()
    assert protocol.OasstErrorResponse in classes
    assert protocol.EmojiCode in classes  # enums too
    for cls in classes:
        monkeypatch.setattr(cls, "__doc__", f"Changed docstring of {cls.__name__}.")
    assert protocol.TaskAck.__doc__ == "Changed docstring of TaskAck."
    assert export() == before


def test_a_view_subclass_of_ones_own_keeps_pydantics_rule() -> None:
    """Only the generated views leave their docstring out; a consumer's model keeps it."""

    class MyTaskAck(MODULE_PAIRS["protocol"][1].TaskAck):  # type: ignore[misc,name-defined]
        """My own acknowledgement."""

    assert MyTaskAck.model_json_schema()["description"] == "My own acknowledgement."
    assert "description" not in MODULE_PAIRS["protocol"][1].TaskAck.model_json_schema()
