"""The sample documents in ``examples/frames``: valid, lossless, and on the reference's wire.

Each file must

* decode with its struct (and through its union codec, when it travels in one) and with the
  struct's Pydantic view;
* re-encode, by the struct and by the view, to the same JSON object (nothing lost or changed;
  ``...Z`` and ``...+00:00`` are one instant);
* be what the reference (``oasst_shared`` 1.0.0) sends: every object has exactly the reference
  model's fields, in its declaration order, nulls included, each value of the type the
  reference's JSON Schema gives; the NDJSON lines are byte for byte the reference's ``.json()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest

from oasst_compat import view_class
from oasst_shared import codec
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas.base import OasstStruct
from tests.support.specs import REPO_ROOT
from tests.support.strategies import normalize_json

FRAMES = REPO_ROOT / "examples" / "frames"

# file -> (struct class, the union codec it travels in, or None)
DOCUMENTS: dict[str, tuple[type[OasstStruct], codec.JsonCodec[Any] | None]] = {
    "work_request.json": (inference.WorkRequest, codec.worker_request),
    "worker_info.json": (inference.WorkerInfo, None),
    "initial_prompt_task.json": (protocol.InitialPromptTask, codec.any_task),
    "assistant_reply_task.json": (protocol.AssistantReplyTask, codec.any_task),
    "text_reply_to_message.json": (protocol.TextReplyToMessage, codec.any_interaction),
}
TOKEN_STREAM = "token_stream.ndjson"


def _read(name: str) -> bytes:
    return (FRAMES / name).read_bytes()


def _stream_lines() -> list[bytes]:
    return [line for line in _read(TOKEN_STREAM).split(b"\n") if line]


def test_every_sample_file_is_checked() -> None:
    assert {p.name for p in FRAMES.iterdir() if p.suffix in {".json", ".ndjson"}} == {
        *DOCUMENTS,
        TOKEN_STREAM,
    }


# ------------------------------------------------------------------------- decode, re-encode


def _same_object(encoded: bytes | str, original: bytes) -> None:
    assert normalize_json(json.loads(encoded)) == normalize_json(json.loads(original))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_decodes_and_reencodes_unchanged(name: str) -> None:
    cls, union_codec = DOCUMENTS[name]
    data = _read(name)

    struct = cls.parse_raw(data)
    assert type(struct) is cls
    _same_object(msgspec.json.encode(struct), data)
    _same_object(struct.json(), data)
    if union_codec is not None:
        via_union = union_codec.decode(data)
        assert type(via_union) is cls
        assert via_union == struct

    view = view_class(cls).model_validate_json(data)
    _same_object(view.model_dump_json(), data)
    assert view.to_struct() == struct


def test_token_stream_is_a_reply_to_the_work_request() -> None:
    """TokenResponses for the request, then the GeneratedTextResponse with their text."""
    work = inference.WorkRequest.parse_raw(_read("work_request.json"))
    messages = codec.worker_response.decode_lines(_read(TOKEN_STREAM))
    *tokens, final = messages
    assert len(tokens) >= 10
    assert all(isinstance(m, inference.TokenResponse) for m in tokens)
    assert isinstance(final, inference.GeneratedTextResponse)
    assert {m.request_id for m in messages} == {work.id}
    assert final.text == "".join(m.text for m in tokens if isinstance(m, inference.TokenResponse))
    assert final.metrics is not None


@pytest.mark.parametrize("lineno", range(1, len(_stream_lines()) + 1))
def test_token_stream_line_decodes_and_reencodes_unchanged(lineno: int) -> None:
    line = _stream_lines()[lineno - 1]
    message = codec.worker_response.decode(line)
    _same_object(codec.worker_response.encode(message), line)
    view = view_class(type(message)).model_validate_json(line)
    _same_object(view.model_dump_json(), line)
    assert view.to_struct() == message


# ------------------------------------------------------------------------- the reference wire


def _named(ref_models: Any, kind: str) -> dict[str, Any]:
    return {name: spec for mod in ref_models["modules"].values() for name, spec in mod.get(kind, {}).items()}


class _Walker:
    """Checks a document against the reference's models: fields, their order, value types."""

    def __init__(self, ref_models: Any) -> None:
        self.models = _named(ref_models, "models")
        self.enums = _named(ref_models, "enums")

    def model(self, value: Any, name: str, path: str) -> Iterator[str]:
        if not isinstance(value, dict):
            yield f"{path}: {name} must be an object, got {type(value).__name__}"
            return
        spec = self.models[name]
        fields = list(spec["fields"])
        if list(value) != fields:
            yield f"{path}: {name} keys {list(value)}, the reference sends {fields}"
        properties = spec["json_schema"]["properties"]
        for key, item in value.items():
            if key not in properties:
                continue  # reported above
            if item is None:
                if not spec["fields"][key]["allow_none"]:
                    yield f"{path}.{key}: null, which {name}.{key} does not allow"
                continue
            yield from self.value(item, properties[key], f"{path}.{key}")

    def value(self, value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
        if "$ref" in schema:
            name = schema["$ref"].rpartition("/")[2]
            if name in self.enums:
                values = [member["value"] for member in self.enums[name]["members"].values()]
                if value not in values:
                    yield f"{path}: {value!r} is not a value of {name} {values}"
            else:
                yield from self.model(value, name, path)
            return
        if "allOf" in schema:
            for part in schema["allOf"]:
                yield from self.value(value, part, path)
            return
        if "anyOf" in schema:
            options = [list(self.value(value, option, path)) for option in schema["anyOf"]]
            if all(options):
                yield f"{path}: matches none of {schema['anyOf']}"
            return
        if "enum" in schema and value not in schema["enum"]:
            yield f"{path}: {value!r} is not one of {schema['enum']}"
        kind = schema.get("type")
        if kind is None:
            return  # the reference's `object` fields: any value
        if not _is_json_type(value, kind):
            yield f"{path}: {kind} expected, got {value!r}"
            return
        if kind == "string":
            yield from _format_errors(value, schema.get("format"), path)
        elif kind == "array":
            for i, item in enumerate(value):
                yield from self.value(item, schema.get("items", {}), f"{path}[{i}]")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                yield from self.value(item, schema["additionalProperties"], f"{path}.{key}")


def _is_json_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "array": list, "object": dict}[kind]
    return isinstance(value, expected)


def _format_errors(value: str, fmt: str | None, path: str) -> Iterator[str]:
    try:
        if fmt == "date-time":
            datetime.fromisoformat(value)
        elif fmt == "uuid":
            UUID(value)
    except ValueError:
        yield f"{path}: {value!r} is not a {fmt}"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_the_reference_wire(ref_models: Any, name: str) -> None:
    cls, _ = DOCUMENTS[name]
    assert list(_Walker(ref_models).model(json.loads(_read(name)), cls.__name__, "$")) == []


def test_token_stream_is_what_the_reference_worker_sends(ref_models: Any) -> None:
    walker = _Walker(ref_models)
    for lineno, line in enumerate(_stream_lines(), 1):
        doc = json.loads(line)
        member = codec.worker_response.decode(line)
        assert list(walker.model(doc, type(member).__name__, f"line {lineno}")) == []
        # the reference's .json(): json.dumps defaults (ASCII, ", " and ": " separators)
        assert line.decode() == json.dumps(doc), f"line {lineno}"


def test_walker_finds_what_differs(ref_models: Any) -> None:
    """The reference check is not vacuous: a doctored document yields each difference."""
    doc = json.loads(_read("work_request.json"))
    doc["parameters"]["sampling_parameters"]["top_k"] = "50"
    doc["thread"]["messages"][0]["state"] = "finished"
    doc["thread"]["messages"][0]["role"] = None
    doc["created_at"] = "yesterday"
    del doc["safety_parameters"]
    doc["extra"] = 1
    doc["thread"]["messages"][1]["work_parameters"]["model_config"]["quantized"] = 1
    errors = list(_Walker(ref_models).model(doc, "WorkRequest", "$"))
    assert len(errors) == 6, errors
    for where in (
        "$.parameters.sampling_parameters.top_k",
        "$.thread.messages[0].state",
        "$.thread.messages[0].role",
        "$.created_at",
        "$: WorkRequest keys",
        "$.thread.messages[1].work_parameters.model_config.quantized",
    ):
        assert any(error.startswith(where) for error in errors), (where, errors)
