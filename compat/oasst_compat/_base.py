"""The base of every Pydantic view, and the ``model_config`` attribute trick.

``OasstModel`` is a ``pydantic.BaseModel`` that knows the struct it mirrors
(``__oasst_struct__``), converts to and from it (``from_struct`` / ``to_struct``) and offers the
pydantic v1 methods the reference's consumers call (``.dict()``, ``.json()``, ``.copy()``,
``parse_obj``, ``parse_raw``, ``construct``, ``schema``, ``schema_json``) without pydantic's
deprecation warnings: they are thin layers over the v2 API.

Serialisation uses the wire names (``serialize_by_alias``) and validation accepts both the
wire name and the Python name of a field (``validate_by_name``); both need pydantic >= 2.11.

The ``model_config`` field
--------------------------
``WorkerConfig`` and ``WorkParameters`` carry a wire field called ``model_config``, a name
pydantic v2 reserves for the class configuration. The views declare it as the Python field
``model_config_`` with ``alias="model_config"``, so the wire key, ``WorkerConfig(model_config=...)``
and ``model_validate({"model_config": ...})`` all work. To keep ``worker_config.model_config``
working too, the class attribute ``model_config`` of those classes is replaced (after pydantic has
built the class) by ``_ConfigOrField``, a ``property`` subclass that returns:

* on the class (``WorkerConfig.model_config``): the pydantic ``ConfigDict``, unchanged. Pydantic
  and FastAPI only ever read the configuration from the class, so validation, serialisation,
  JSON Schema, ``model_rebuild``, subclassing and FastAPI keep working;
* on an instance (``worker_config.model_config``): the field value.

The one pydantic method that reads ``self.model_config`` on an instance is ``model_copy`` (with
``update``); ``OasstModel.model_copy`` applies the update itself for those classes. Assigning
``worker_config.model_config = ...`` sets the field (``__setattr__`` maps the wire name to the
field name), ``model_copy(update=...)`` / ``copy(update=...)`` accept the wire name, and
``repr()`` shows ``model_config=...``; equality, pickling, ``copy``/``deepcopy``, ``TypeAdapter``
and FastAPI need nothing special (tests/compat/test_models.py, test_fastapi.py). Only
an explicit ``model_dump(by_alias=False)`` shows the Python name ``model_config_``.

We chose this over a plain ``model_config_`` attribute because consumers read
``work_request.parameters.model_config.model_id`` on every request: with a renamed attribute
that code would silently get the ConfigDict. Static typing: the generated classes declare
``model_config`` as a property under ``TYPE_CHECKING``, so mypy types
``worker_config.model_config`` as the ``ModelConfig`` view and ``WorkerConfig(model_config=...)``
as the constructor's keyword.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import msgspec
import pydantic
from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic.main import IncEx
from pydantic_core import CoreSchema
from typing_extensions import Self

from oasst_shared.schemas.base import OasstStruct

__all__ = ["MIN_PYDANTIC", "OasstModel"]

MIN_PYDANTIC = (2, 11)
"""``serialize_by_alias`` / ``validate_by_name`` arrived in pydantic 2.11. Older versions would
silently dump ``model_config_`` instead of the wire key ``model_config``: refuse them instead."""

if tuple(int(part) for part in pydantic.VERSION.split(".")[:2]) < MIN_PYDANTIC:
    raise ImportError(
        f"oasst_compat needs pydantic >= {'.'.join(map(str, MIN_PYDANTIC))}, found {pydantic.VERSION}"
    )

# Wire names that pydantic reserves and that a view field may still carry through an alias.
_CONFIG_ATTRIBUTE = "model_config"


class _ConfigOrField(property):
    """``cls.model_config`` is the ConfigDict; ``instance.model_config`` is the field value."""

    def __init__(self, config: ConfigDict, field_name: str) -> None:
        def fget(obj: Any) -> Any:
            return obj.__dict__[field_name]

        def fset(obj: Any, value: Any) -> None:
            BaseModel.__setattr__(obj, field_name, value)

        super().__init__(fget, fset, doc=f"The `{field_name}` field (wire name `{_CONFIG_ATTRIBUTE}`).")
        self.config = config

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self.config
        return super().__get__(obj, objtype)


class OasstModel(BaseModel):
    """Base of every Pydantic view of an ``oasst_shared`` message struct."""

    model_config = ConfigDict(
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        protected_namespaces=(),  # wire fields such as `model_name`, `model_id`
    )

    __oasst_struct__: ClassVar[type[OasstStruct]]
    """The struct this view mirrors (set by the generated classes, inherited by subclasses)."""

    __attribute_aliases__: ClassVar[dict[str, str]] = {}
    """Attribute / wire name -> Python field name, for fields whose names differ (``model_config``)."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The view's JSON Schema without a ``description`` from its docstring, as in the reference.

        A view's docstring is the struct's documentation; like ``oasst_shared.schemas.json_schema``,
        the views keep it out of their schemas. A subclass defined elsewhere keeps pydantic's rule.
        """
        json_schema = handler(core_schema)
        if cls.__module__.partition(".")[0] == __name__.partition(".")[0]:
            handler.resolve_ref_schema(json_schema).pop("description", None)
        return json_schema

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        aliases = {
            info.alias: name
            for name, info in cls.__pydantic_fields__.items()
            if info.alias is not None and info.alias != name
        }
        cls.__attribute_aliases__ = aliases
        field_name = aliases.get(_CONFIG_ATTRIBUTE)
        if field_name is not None:
            config = cls.__dict__[_CONFIG_ATTRIBUTE]
            if isinstance(config, _ConfigOrField):  # pragma: no cover - pydantic always sets a dict
                config = config.config
            # pydantic reads the class attribute as the model configuration; instances see the field
            setattr(cls, _CONFIG_ATTRIBUTE, _ConfigOrField(config, field_name))

    # ---------------------------------------------------------------------------- struct links

    @classmethod
    def from_struct(cls, struct: OasstStruct) -> Self:
        """The view of ``struct`` (validated, read attribute by attribute: no JSON round trip)."""
        return cls.model_validate(struct, from_attributes=True)

    def to_struct(self) -> OasstStruct:
        """The struct of this message (validated by msgspec, read attribute by attribute)."""
        return msgspec.convert(self, type(self).__oasst_struct__, from_attributes=True)

    # --------------------------------------------------------------------- attribute aliases

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(self.__attribute_aliases__.get(name, name), value)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        if not self.__attribute_aliases__:
            yield from super().__repr_args__()
            return
        names = {field: alias for alias, field in self.__attribute_aliases__.items()}
        for key, value in super().__repr_args__():
            yield (names.get(key, key) if key is not None else None), value

    def _field_names(self, update: Mapping[str, Any]) -> dict[str, Any]:
        aliases = self.__attribute_aliases__
        return {aliases.get(key, key): value for key, value in update.items()}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with the fields in ``update`` replaced (not validated); wire names accepted."""
        if not update:
            return super().model_copy(deep=deep)
        values = self._field_names(update)
        if type(self).__attribute_aliases__.get(_CONFIG_ATTRIBUTE) is None:
            return super().model_copy(update=values, deep=deep)
        # pydantic's model_copy reads `self.model_config`, which is a field here: apply the
        # update ourselves (these views never allow extra fields, so every key is a field).
        copied = super().model_copy(deep=deep)
        copied.__dict__.update(values)
        copied.__pydantic_fields_set__.update(values)
        return copied

    # ----------------------------------------------------------------- pydantic v1 methods

    def dict(
        self,
        *,
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool = True,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
    ) -> builtins.dict[str, Any]:
        """The message as a dict keyed by wire names (``model_dump``; v1 name, no warning)."""
        return self.model_dump(
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def json(
        self,
        *,
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool = True,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        **dumps_kwargs: Any,
    ) -> str:
        """The message as a JSON document (``model_dump_json``; v1 name, no warning)."""
        if dumps_kwargs:
            raise TypeError(f"json() no longer takes json.dumps arguments: {sorted(dumps_kwargs)}")
        return self.model_dump_json(
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def copy(
        self,
        *,
        include: Any = None,  # v1's AbstractSetIntStr | MappingIntStrAny
        exclude: Any = None,
        update: Mapping[str, Any] | None = None,
        deep: bool = False,
    ) -> Self:
        """A copy with ``update`` applied (not validated, as in v1); ``include`` / ``exclude``
        rebuild the message from the selected fields (validated)."""
        if include is None and exclude is None:
            return self.model_copy(update=update, deep=deep)
        data = self.model_dump(include=include, exclude=exclude, round_trip=True, by_alias=False)
        data.update(self._field_names(update or {}))
        return self.model_validate(data)

    @classmethod
    def parse_obj(cls, obj: Any) -> Self:
        """Validate a mapping (``model_validate``; v1 name, no warning)."""
        return cls.model_validate(obj)

    @classmethod
    def parse_raw(
        cls,
        b: str | bytes,
        *,
        content_type: str | None = None,
        encoding: str = "utf8",
        proto: Any = None,
        allow_pickle: bool = False,
    ) -> Self:
        """Validate a JSON document (``model_validate_json``; v1 name, no warning)."""
        if proto not in (None, "json") or allow_pickle:
            raise TypeError("parse_raw() reads JSON only")
        if content_type is not None and not content_type.endswith("json"):
            raise TypeError(f"parse_raw() reads JSON only, not {content_type!r}")
        if isinstance(b, bytes) and encoding.replace("-", "").lower() != "utf8":
            b = b.decode(encoding)
        return cls.model_validate_json(b)

    @classmethod
    def construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self:
        """Build without validation (``model_construct``; v1 name, no warning)."""
        return cls.model_construct(_fields_set, **values)

    @classmethod
    def schema(cls, by_alias: bool = True, ref_template: str = "#/$defs/{model}") -> builtins.dict[str, Any]:
        """The JSON Schema (``model_json_schema``; v1 name, no warning)."""
        return cls.model_json_schema(by_alias=by_alias, ref_template=ref_template)

    @classmethod
    def schema_json(
        cls, *, by_alias: bool = True, ref_template: str = "#/$defs/{model}", **dumps_kwargs: Any
    ) -> str:
        """The JSON Schema as JSON text (v1 name, no warning)."""
        import json

        return json.dumps(cls.model_json_schema(by_alias=by_alias, ref_template=ref_template), **dumps_kwargs)
