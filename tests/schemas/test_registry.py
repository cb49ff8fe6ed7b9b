"""The message registry (``oasst_shared.schemas._registry``), and the checks every message gets.

The registry declares the message types once; the per-message checks here (round trips, method
names) are parametrized over it, so a new struct or union is covered without touching a test.
"""

from __future__ import annotations

import importlib
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasst_shared._decode_errors import type_name
from oasst_shared.schemas import _registry as registry
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas.base import OasstStruct
from tests.support.strategies import check_round_trips, instances

MESSAGE_TYPES = list(registry.message_types().items())
STRUCTS = list(registry.struct_types().items())

ROUND_TRIP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------- registry


def test_every_union_of_messages_in_the_modules_is_declared() -> None:
    """A union of message structs a module defines but ``UNION_NAMES`` leaves out fails here."""
    found = set()
    for short, module_name in registry.MESSAGE_MODULES.items():
        for attr, value in vars(importlib.import_module(module_name)).items():
            if registry.is_union(value) and all(
                isinstance(m, type) and issubclass(m, msgspec.Struct) for m in typing.get_args(value)
            ):
                found.add(f"{short}.{attr}")
    assert found == set(registry.UNION_NAMES)
    assert list(registry.unions()) == list(registry.UNION_NAMES)


def test_the_registry_holds_the_structs_and_unions_of_three_modules() -> None:
    types = registry.message_types()
    assert len(registry.struct_types()) == 95  # 54 protocol, 40 inference, 1 model_configs
    assert len(types) == 95 + 4
    assert types["inference.TokenResponse"] is inference.TokenResponse
    assert types["protocol.AnyTask"] == protocol.AnyTask
    assert "inference.ModelConfig" not in types  # imported by inference, defined in model_configs
    assert types["model_configs.ModelConfig"].__name__ == "ModelConfig"
    assert not any(registry.is_union(tp) for tp in registry.struct_types().values())


def test_defined_structs_leaves_out_imports_and_private_names() -> None:
    structs = registry.defined_structs(inference)
    assert "ModelConfig" not in structs and "OasstStruct" not in structs
    assert structs["TokenResponse"] is inference.TokenResponse
    assert all(not name.startswith("_") for name in structs)


def test_display_names() -> None:
    assert registry.display_name(inference.WorkerResponse) == "inference.WorkerResponse"
    assert registry.display_name(protocol.AnyInteraction) == "protocol.AnyInteraction"
    assert registry.display_name(inference.TokenResponse) == "TokenResponse"
    assert registry.display_name(list[int]) == "list"
    other = typing.Union[inference.TokenResponse, inference.PingRequest]  # not a registered union
    assert registry.display_name(other) in ("Union", repr(other))  # its __name__ where it has one
    assert type_name(inference.WorkerRequest) == "inference.WorkerRequest"  # the errors' name is this one


def test_message_type_name_inverts_resolve() -> None:
    for name, tp in MESSAGE_TYPES:
        assert registry.message_type_name(tp) == name
        assert registry.resolve_message_type(name) is tp
    with pytest.raises(registry.UnknownMessageTypeError, match="not a registered message type"):
        registry.message_type_name(int)
    with pytest.raises(registry.UnknownMessageTypeError):
        registry.message_type_name(inference.TokenResponse | inference.PingRequest)


def test_union_tags() -> None:
    tags = registry.union_tags(inference.WorkerRequest)
    assert tags is not None
    tag_field, members = tags
    assert tag_field == "request_type"
    assert members["work"] is inference.WorkRequest
    assert set(members.values()) == set(typing.get_args(inference.WorkerRequest))
    assert registry.union_tags(protocol.AnyTask) is not None
    assert registry.union_tags(inference.TokenResponse) is None  # not a union
    untagged = inference.Thread | inference.MessageRead
    assert registry.union_tags(untagged) is None
    mixed = inference.TokenResponse | inference.PingRequest  # response_type vs request_type
    assert registry.union_tags(mixed) is None


def test_known_differences_name_what_differs() -> None:
    """Each entry names a registered type and, per kind, something that exists there; whether
    the reference differs there is checked by the spec walks (tests/schemas/test_spec_walk.py)."""
    types = registry.message_types()
    for d in registry.KNOWN_DIFFERENCES:
        assert d.model in types and d.reason, d
        if d.kind is registry.Difference.EXTRA_UNION_MEMBER:
            assert d.name in {m.__name__ for m in typing.get_args(types[d.model])}, d
            continue
        fields = {f.encode_name for f in msgspec.structs.fields(types[d.model])}
        if d.kind is registry.Difference.MISSING_BASE:
            module = importlib.import_module(registry.MESSAGE_MODULES[d.model.partition(".")[0]])
            assert not issubclass(types[d.model], getattr(module, d.name)), d
        elif d.kind is registry.Difference.TAG_NOT_A_FIELD:
            assert d.model in registry.ABSTRACT_BASES and d.name not in fields, d
            assert msgspec.inspect.type_info(types[d.model]).tag_field is None  # type: ignore[attr-defined]
        else:
            assert d.name in fields, d
    assert registry.extra_union_members("inference.WorkerResponse") == {"GeneralErrorResponse"}
    assert registry.extra_union_members("protocol.AnyTask") == frozenset()


# ---------------------------------------------------------------------------- every message


@pytest.mark.parametrize(("name", "tp"), MESSAGE_TYPES, ids=[name for name, _ in MESSAGE_TYPES])
@ROUND_TRIP
@given(data=st.data())
def test_round_trips(name: str, tp: Any, data: st.DataObject) -> None:
    obj = data.draw(instances(tp))
    if registry.is_union(tp):
        assert isinstance(obj, typing.get_args(tp)), name
    check_round_trips(tp, obj)


RESERVED = {"dict", "json", "copy", "parse_obj", "parse_raw"}


@pytest.mark.parametrize(("name", "cls"), STRUCTS, ids=[name for name, _ in STRUCTS])
def test_no_field_shadows_a_method(name: str, cls: type[OasstStruct]) -> None:
    assert {f.name for f in msgspec.structs.fields(cls)} & RESERVED == set(), name
    for method in RESERVED:
        assert callable(getattr(cls, method)), method
