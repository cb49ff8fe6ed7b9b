"""The struct <-> view pairs the compat suites (``tests/compat/``) walk: the module pairs, the
unions on both sides, every struct class and its view.

The checks of that pairing are in ``tests/compat/test_pairs.py``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

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
