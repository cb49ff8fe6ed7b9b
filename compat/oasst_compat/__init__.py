"""Pydantic v2 views of the ``oasst_shared`` message structs, for FastAPI and pydantic users.

Every struct of ``oasst_shared.schemas.protocol``, ``oasst_shared.schemas.inference`` and
``oasst_shared.model_configs`` has a ``pydantic.BaseModel`` with the same name in the module of
the same name under ``oasst_compat``: change ``from oasst_shared.schemas import protocol`` to
``from oasst_compat.schemas import protocol`` and the rest keeps working. Enums, constants and
exceptions are the core's own objects. The views are generated from the structs
(``python -m tools.generate_views`` in a source checkout); the structs stay the one source of truth.

``to_pydantic(struct)`` and ``from_pydantic(model)`` convert any message either way without a
JSON round trip (attributes are read directly and validated once). ``parse_raw_as(tp, data)``
and ``parse_obj_as(tp, obj)`` replace pydantic v1's helpers of those names (removed in
pydantic 2), with their argument order.

Importing ``oasst_compat`` is cheap: the view modules are imported on first use. It needs
pydantic (the ``pydantic`` extra); without it the import fails with a ``ModuleNotFoundError``
that says so.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any, TypeVar, overload

from oasst_shared._optional import require

require("pydantic", extra="pydantic", needed_by="oasst_compat (the Pydantic views)")

from oasst_compat._base import OasstModel  # noqa: E402  (after the check, which names the extra)
from oasst_shared.schemas.base import OasstStruct  # noqa: E402

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "OasstModel",
    "from_pydantic",
    "parse_obj_as",
    "parse_raw_as",
    "struct_class",
    "to_pydantic",
    "view_class",
]

T = TypeVar("T")

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


# One TypeAdapter per type, built on first use (building one costs far more than validating).
# Found per call by the type object's id (hashing ``inference.WorkerResponse``, an Annotated
# union, costs about as much as validating a token), then by equality for a new object equal
# to a known type; the id table is cleared when it fills.
_BY_ID_MAX = 256
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_ADAPTERS_BY_ID: dict[int, tuple[Any, TypeAdapter[Any]]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    entry = _ADAPTERS_BY_ID.get(id(tp))
    if entry is not None and entry[0] is tp:
        return entry[1]
    try:
        adapter = _ADAPTERS.get(tp)
    except TypeError:  # unhashable: found by id only
        adapter = None
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = TypeAdapter(tp)
        with contextlib.suppress(TypeError):
            _ADAPTERS[tp] = adapter
    if len(_ADAPTERS_BY_ID) >= _BY_ID_MAX:
        _ADAPTERS_BY_ID.clear()
    _ADAPTERS_BY_ID[id(tp)] = (tp, adapter)  # holding ``tp`` keeps its id from being reused
    return adapter


@overload
def parse_raw_as(tp: type[T], data: str | bytes | bytearray) -> T: ...
@overload
def parse_raw_as(tp: Any, data: str | bytes | bytearray) -> Any: ...
def parse_raw_as(tp: Any, data: str | bytes | bytearray) -> Any:
    """Validate a JSON document as ``tp`` (a view, a view union such as
    ``inference.WorkerResponse``, or any type pydantic validates): pydantic v1's
    ``parse_raw_as(tp, data)``, through a ``TypeAdapter`` cached per type
    (``TypeAdapter(tp).validate_json(data)``). Bad input raises ``pydantic.ValidationError``.
    """
    return _adapter(tp).validate_json(data)


@overload
def parse_obj_as(tp: type[T], obj: Any) -> T: ...
@overload
def parse_obj_as(tp: Any, obj: Any) -> Any: ...
def parse_obj_as(tp: Any, obj: Any) -> Any:
    """Validate Python data as ``tp``: pydantic v1's ``parse_obj_as(tp, obj)``, through a
    ``TypeAdapter`` cached per type (``TypeAdapter(tp).validate_python(obj)``). Bad input
    raises ``pydantic.ValidationError``.
    """
    return _adapter(tp).validate_python(obj)
