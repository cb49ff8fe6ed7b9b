"""Views and structs agree on the wire, for every message type, with generated messages.

For each concrete struct, hypothesis builds valid messages (``tests.support.strategies``, derived from
the structs). Each message must survive, unchanged:

* ``to_pydantic`` then ``from_pydantic`` (no JSON in between);
* the struct's JSON parsed by the view, dumped by the view (``model_dump(mode="json",
  by_alias=True)`` and ``model_dump_json``), decoded by msgspec;
* the reference's document (``json.dumps`` style, as pydantic 1.10 sent it) parsed by the view;
  the view's own document equals the reference's (``...Z`` and ``...+00:00`` are one instant).

The four unions are checked the same way through ``pydantic.TypeAdapter``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import TypeAdapter

from oasst_compat import from_pydantic, to_pydantic
from oasst_shared.schemas.base import OasstStruct
from tests.support.compat import CONCRETE_STRUCTS, UNIONS, view_of
from tests.support.strategies import instances, normalize_json, reference_json

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def _check_message(struct_cls: type[OasstStruct], message: OasstStruct) -> None:
    view_cls = view_of(struct_cls)

    # direct conversions, both ways
    view = to_pydantic(message)
    assert type(view) is view_cls
    back = from_pydantic(view)
    assert type(back) is struct_cls
    assert back == message

    # the struct's JSON through the view and back to msgspec
    parsed = view_cls.model_validate_json(message.json())
    assert parsed == view
    dumped = parsed.model_dump(mode="json", by_alias=True)
    assert msgspec.convert(dumped, struct_cls) == message
    assert msgspec.json.decode(parsed.model_dump_json(), type=struct_cls) == message

    # the reference's document
    reference = reference_json(message)
    from_reference = view_cls.model_validate_json(reference)
    assert from_reference == view
    assert from_pydantic(from_reference) == message
    assert normalize_json(json.loads(from_reference.model_dump_json())) == json.loads(reference)


@pytest.mark.parametrize("struct_cls", CONCRETE_STRUCTS, ids=lambda c: c.__name__)
def test_message_round_trips(struct_cls: type[OasstStruct]) -> None:
    @SETTINGS
    @given(message=instances(struct_cls))
    def check(message: OasstStruct) -> None:
        _check_message(struct_cls, message)

    check()


@pytest.mark.parametrize("union_name", sorted(UNIONS))
def test_union_round_trips(union_name: str) -> None:
    struct_union, view_union = UNIONS[union_name]
    adapter: TypeAdapter[Any] = TypeAdapter(view_union)
    decoder = msgspec.json.Decoder(struct_union)

    @settings(SETTINGS, max_examples=40)
    @given(message=instances(struct_union))
    def check(message: OasstStruct) -> None:
        view = adapter.validate_json(message.json())
        assert type(view) is view_of(type(message))
        assert adapter.validate_python(view.model_dump()) == view
        assert decoder.decode(adapter.dump_json(view)) == message
        reference = adapter.validate_json(reference_json(message))
        assert from_pydantic(reference) == message

    check()
