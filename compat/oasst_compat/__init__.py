"""Pydantic v2 views of the ``oasst_shared`` message structs, for FastAPI and pydantic users.

Every struct of ``oasst_shared.schemas.protocol``, ``oasst_shared.schemas.inference`` and
``oasst_shared.model_configs`` has a ``pydantic.BaseModel`` with the same name in the module of
the same name under ``oasst_compat``: change ``from oasst_shared.schemas import protocol`` to
``from oasst_compat.schemas import protocol`` and the rest keeps working. Enums, constants and
exceptions are the core's own objects. The views are generated from the structs
(``python -m oasst_compat._generate``); the structs stay the one source of truth.

``to_pydantic(struct)`` and ``from_pydantic(model)`` convert any message either way without a
JSON round trip (attributes are read directly and validated once).

Importing ``oasst_compat`` is cheap: the view modules are imported on first use. It needs
pydantic (the ``pydantic`` extra); without it the import fails with a ``ModuleNotFoundError``
that says so.
"""

from __future__ import annotations

import importlib

from oasst_shared._optional import require

require("pydantic", extra="pydantic", needed_by="oasst_compat (the Pydantic views)")

from oasst_compat._base import OasstModel  # noqa: E402  (after the check, which names the extra)
from oasst_shared.schemas.base import OasstStruct  # noqa: E402

__all__ = ["OasstModel", "from_pydantic", "struct_class", "to_pydantic", "view_class"]

_VIEWS: dict[type[OasstStruct], type[OasstModel]] = {}


def view_class(struct_cls: type[OasstStruct]) -> type[OasstModel]:
    """The Pydantic view of a struct class (``inference.TokenResponse`` -> its view)."""
    view = _VIEWS.get(struct_cls)
    if view is not None:
        return view
    module_name = struct_cls.__module__
    if not module_name.startswith("oasst_shared."):
        raise TypeError(f"{struct_cls.__qualname__} is not an oasst_shared message struct")
    try:
        module = importlib.import_module("oasst_compat" + module_name.removeprefix("oasst_shared"))
    except ImportError:
        raise TypeError(f"{module_name} has no Pydantic views") from None
    view = getattr(module, struct_cls.__name__, None)
    if not (isinstance(view, type) and issubclass(view, OasstModel) and view.__oasst_struct__ is struct_cls):
        raise TypeError(f"{struct_cls.__qualname__} has no Pydantic view")
    _VIEWS[struct_cls] = view
    return view


def struct_class(view_cls: type[OasstModel]) -> type[OasstStruct]:
    """The struct class a view (or a subclass of a view) mirrors."""
    return view_cls.__oasst_struct__


def to_pydantic(struct: OasstStruct) -> OasstModel:
    """The Pydantic view of a message struct (``TokenResponse`` -> view ``TokenResponse``)."""
    return view_class(type(struct)).from_struct(struct)


def from_pydantic(model: OasstModel) -> OasstStruct:
    """The message struct of a Pydantic view (validated by msgspec)."""
    return model.to_struct()
