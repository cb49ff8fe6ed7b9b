"""The struct <-> view pairs the ``test_compat_*`` suites walk, and the checks of that pairing.

Other suites import the helpers from here (``from tests.test_compat_helpers import ...``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import oasst_compat
from oasst_compat import model_configs as view_model_configs
from oasst_compat.schemas import inference as view_inference
from oasst_compat.schemas import protocol as view_protocol
from oasst_shared import model_configs
from oasst_shared.schemas import inference, protocol
from oasst_shared.schemas._registry import ABSTRACT_BASES, message_types, struct_types, unions
from oasst_shared.schemas.base import OasstStruct

# spec module name -> (struct module, view module)
MODULE_PAIRS: dict[str, tuple[ModuleType, ModuleType]] = {
    "protocol": (protocol, view_protocol),
    "inference": (inference, view_inference),
    "model_configs": (model_configs, view_model_configs),
}

UNIONS: dict[str, tuple[Any, Any]] = {
    name: (union, getattr(MODULE_PAIRS[name.partition(".")[0]][1], name.partition(".")[2]))
    for name, union in unions().items()
}

# Abstract bases: never sent alone. The views declare the reference's required `type: str` on
# them, which the struct bases (a ClassVar, set by each tagged subclass) cannot provide.
ABSTRACT_WITH_TYPE = frozenset(message_types()[name] for name in ABSTRACT_BASES)


def struct_classes() -> list[type[OasstStruct]]:
    """Every public struct class of the three struct modules, in definition order."""
    return [cls for cls in struct_types().values() if issubclass(cls, OasstStruct)]


def view_of(struct_cls: type[OasstStruct]) -> Any:
    """The view class with the struct's name in the matching view module."""
    for struct_module, view_module in MODULE_PAIRS.values():
        if struct_cls.__module__ == struct_module.__name__:
            return getattr(view_module, struct_cls.__name__)
    raise LookupError(struct_cls)


CONCRETE_STRUCTS = [cls for cls in struct_classes() if cls not in ABSTRACT_WITH_TYPE]


# ------------------------------------------------------------------------------------ checks


def test_the_walk_covers_every_struct_module() -> None:
    names = {cls.__name__ for cls in struct_classes()}
    # one struct of each module, so an empty walk (e.g. a broken filter) fails
    assert {"ModelConfig", "TokenResponse", "TextReplyToMessage"} <= names
    assert len(CONCRETE_STRUCTS) == len(struct_classes()) - len(ABSTRACT_WITH_TYPE)


@pytest.mark.parametrize("struct_cls", struct_classes(), ids=lambda c: c.__name__)
def test_every_struct_has_its_view_and_back(struct_cls: type[OasstStruct]) -> None:
    view = view_of(struct_cls)
    assert issubclass(view, oasst_compat.OasstModel)
    assert view.__oasst_struct__ is struct_cls
    assert oasst_compat.view_class(struct_cls) is view
    assert oasst_compat.struct_class(view) is struct_cls
    assert view.__module__ == "oasst_compat" + struct_cls.__module__.removeprefix("oasst_shared")


def test_view_class_rejects_what_is_not_a_message() -> None:
    class Local(OasstStruct):
        x: int

    with pytest.raises(TypeError, match="not an oasst_shared message struct"):
        oasst_compat.view_class(Local)
