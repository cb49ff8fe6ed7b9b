"""Generate the Pydantic view modules from the msgspec structs.

``python -m tools.generate_views`` (``make compat``) rewrites
``oasst_compat/model_configs.py``, ``oasst_compat/schemas/protocol.py`` and
``oasst_compat/schemas/inference.py``; ``--check`` only reports whether they are current (exit
status 1 if not). The structs are the one source of truth: every field, type, constraint,
default, tag, base class, union, property and method of a view is read from the struct with
``msgspec.inspect`` and ``inspect``; nothing here lists fields by hand. The only rules of our
own are:

* a field whose name pydantic reserves (``model_config``) becomes ``model_config_`` with the
  wire name as its alias (see ``oasst_compat._base``);
* a tagged struct's tag becomes a real field, ``Literal[tag]`` defaulting to the tag, as in the
  reference; abstract bases that declare ``type: ClassVar[str]`` (``Task``, ``Interaction``)
  get a required ``type: str`` field, as the reference declared one on them, while the worker
  bases (``request_type`` / ``response_type``) had none;
* ``__post_init__`` (the structs' custom checks) runs on the view as an "after" model validator;
  properties and methods delegate to the struct's own functions; a classmethod returning the
  struct returns the view;
* a default factory returning a struct returns the view of what it returns.

The rendered text goes through ruff (import sorting, ``__all__`` order, ``ruff format``; see
``tools._output``), so committing it keeps the lint clean; ``tests/compat/test_generate.py``
fails when a committed module is stale.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import msgspec
import msgspec.inspect as mi
from pydantic import BaseModel

from oasst_shared.schemas import _registry as registry
from oasst_shared.schemas.base import OasstStruct
from tools._output import ruff_format, run

__all__ = ["COMPAT_ROOT", "MODULES", "generate", "generate_module", "main"]

COMPAT_ROOT = Path(__file__).resolve().parents[1] / "compat" / "oasst_compat"
"""The ``oasst_compat`` package folder, where the generated modules live."""

MODULES: dict[str, str] = {
    "oasst_shared.model_configs": "model_configs.py",
    "oasst_shared.schemas.protocol": "schemas/protocol.py",
    "oasst_shared.schemas.inference": "schemas/inference.py",
}
"""Struct module -> generated view module (path relative to ``COMPAT_ROOT``)."""

INDENT = "    "

# Field names pydantic reserves on models: the view uses `<name>_` with the wire name as alias.
_RESERVED_FIELDS = frozenset({"model_config"})

# Tag fields that the reference declared as a required `str` field on abstract bases.
_TAG_FIELDS_DECLARED_ON_BASES = frozenset({"type"})

_CORE_ALIAS = "_core"


def view_module_name(core_module: str) -> str:
    """``oasst_shared.schemas.protocol`` -> ``oasst_compat.schemas.protocol``."""
    if core_module not in MODULES:
        raise ValueError(f"{core_module} has no generated view module")
    return "oasst_compat" + core_module.removeprefix("oasst_shared")


# ------------------------------------------------------------------------------------ imports


@dataclass
class _Imports:
    """The imports a generated module needs."""

    names: dict[str, set[str]] = field(default_factory=dict)  # module -> names (from-imports)
    modules: dict[str, str] = field(default_factory=dict)  # module -> alias (import x as y)
    plain: set[str] = field(default_factory=set)  # modules imported as they are (import x.y)

    def add(self, module: str, name: str) -> str:
        self.names.setdefault(module, set()).add(name)
        return name

    def add_module(self, module: str, alias: str) -> str:
        self.modules[module] = alias
        return alias

    def render(self) -> list[str]:
        """One statement per module; ruff sorts, merges and wraps them (see ``generate_module``)."""
        lines = [f"import {module} as {alias}" for module, alias in sorted(self.modules.items())]
        lines += [f"import {module}" for module in sorted(self.plain)]
        lines += [
            f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(self.names.items())
        ]
        return lines


# ---------------------------------------------------------------------------- rendering


def _literal(value: Any) -> str:
    """A Python literal in ruff-format style (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    raise NotImplementedError(f"no literal for {value!r}")


def _docstring(doc: str | None, indent: str) -> list[str]:
    if not doc:
        return []
    text = inspect.cleandoc(doc).replace("\\", "\\\\")
    if '"""' in text:
        raise NotImplementedError('docstrings containing """ are not supported')
    lines = text.splitlines()
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    body = [f"{indent}{line}" if line else "" for line in lines[1:]]
    return [f'{indent}"""{lines[0]}', *body, f'{indent}"""']


def _literals(hint: Any) -> list[tuple[Any, ...]]:
    """The value tuples of every ``Literal`` in a type hint, as declared."""
    if typing.get_origin(hint) is typing.Literal:
        return [typing.get_args(hint)]
    return [found for arg in typing.get_args(hint) for found in _literals(arg)]


class _ModuleWriter:
    """Renders the view module of one struct module."""

    def __init__(self, core: ModuleType) -> None:
        self.core = core
        self.view_module = view_module_name(core.__name__)
        self.imports = _Imports()
        self.imports.add("__future__", "annotations")
        self.imports.add_module(core.__name__, _CORE_ALIAS)
        self.imports.add("oasst_compat._base", "OasstModel")
        self.exported: list[str] = []
        self.declared_literals: list[tuple[Any, ...]] = []  # of the field being rendered
        self.structs = list(registry.defined_structs(core).values())

    # ----------------------------------------------------------------------------- types

    def type_ref(self, cls: type) -> str:
        """The name to use for a class (importing it where needed)."""
        if isinstance(cls, type) and issubclass(cls, OasstStruct):
            module = view_module_name(cls.__module__)
            if module != self.view_module:
                self.imports.add(module, cls.__name__)
            return cls.__name__
        if cls.__module__ == "builtins":
            return cls.__name__
        return self.imports.add(cls.__module__, cls.__name__)

    def annotation(self, info: mi.Type) -> str:
        constraints: dict[str, Any] = {}
        text: str
        if isinstance(info, mi.NoneType):
            return "None"
        if isinstance(info, mi.AnyType):
            return self.imports.add("typing", "Any")
        if isinstance(info, mi.BoolType):
            return "bool"
        if isinstance(info, mi.IntType | mi.FloatType):
            text = "int" if isinstance(info, mi.IntType) else "float"
            constraints = {k: getattr(info, k) for k in ("gt", "ge", "lt", "le", "multiple_of")}
        elif isinstance(info, mi.StrType):
            text = "str"
            constraints = {k: getattr(info, k) for k in ("min_length", "max_length", "pattern")}
        elif isinstance(info, mi.UUIDType):
            if getattr(info, "version", None) is not None:
                raise NotImplementedError("UUID versions are not supported")
            text = self.imports.add("uuid", "UUID")
        elif isinstance(info, mi.DateTimeType):
            if info.tz is None:
                text = self.imports.add("datetime", "datetime")
            else:
                text = self.imports.add("pydantic", "AwareDatetime" if info.tz else "NaiveDatetime")
        elif isinstance(info, mi.ListType):
            text = f"list[{self.annotation(info.item_type)}]"
            constraints = {"min_length": info.min_length, "max_length": info.max_length}
        elif isinstance(info, mi.DictType):
            text = f"dict[{self.annotation(info.key_type)}, {self.annotation(info.value_type)}]"
            constraints = {"min_length": info.min_length, "max_length": info.max_length}
        elif isinstance(info, mi.LiteralType):
            # msgspec sorts a Literal's values: keep the order the struct declares
            declared = [v for v in self.declared_literals if set(v) == set(info.values)]
            values = ", ".join(_literal(v) for v in (declared[0] if declared else info.values))
            return f"{self.imports.add('typing', 'Literal')}[{values}]"
        elif isinstance(info, mi.EnumType | mi.StructType):
            return self.type_ref(info.cls)
        elif isinstance(info, mi.UnionType):
            return " | ".join(self.annotation(t) for t in info.types)
        else:
            raise NotImplementedError(f"no view annotation for {info!r}")
        given = {k: v for k, v in constraints.items() if v is not None}
        if not given:
            return text
        self.imports.add("typing", "Annotated")
        self.imports.add("pydantic", "Field")
        args = ", ".join(f"{k}={_literal(v)}" for k, v in given.items())
        return f"Annotated[{text}, Field({args})]"

    # ---------------------------------------------------------------------------- defaults

    def default_value(self, value: Any) -> str:
        if isinstance(value, enum.Enum):
            return f"{self.type_ref(type(value))}.{value.name}"
        return _literal(value)

    def default_factory(self, factory: Callable[[], Any], owner: type) -> str:
        if factory in (list, dict, set):
            return factory.__name__
        if isinstance(factory, type) and issubclass(factory, OasstStruct):
            return self.type_ref(factory)
        if not isinstance(factory, FunctionType):
            raise NotImplementedError(f"{owner.__name__}: unsupported default factory {factory!r}")
        if factory.__name__.startswith("_"):
            # the API reference shows the field's default: it must not name a private function
            raise NotImplementedError(f"{owner.__name__}: default factory {factory.__qualname__} is private")
        ref = self.imports.add(factory.__module__, factory.__name__)
        produced = factory()  # what the factory builds: a struct is handed out as its view
        if isinstance(produced, OasstStruct):
            return f"lambda: {self.type_ref(type(produced))}.from_struct({ref}())"
        return ref

    # ------------------------------------------------------------------------------ fields

    def field_line(self, owner: type, f: mi.Field) -> str:
        name = f.name
        alias = f.encode_name if f.encode_name != f.name else None
        if name in _RESERVED_FIELDS:
            alias, name = f.encode_name, f"{name}_"
        elif name.startswith("_") or hasattr(BaseModel, name):
            raise NotImplementedError(f"{owner.__name__}.{name}: field name clashes with pydantic")
        self.declared_literals = _literals(typing.get_type_hints(owner, include_extras=True)[f.name])
        annotation = self.annotation(f.type)
        args: list[str] = []
        default: str | None = None
        if f.default_factory is not msgspec.NODEFAULT:
            args.append(f"default_factory={self.default_factory(f.default_factory, owner)}")
        elif f.default is not msgspec.NODEFAULT:
            if isinstance(f.default, list | dict | set):
                if f.default:
                    raise NotImplementedError(f"{owner.__name__}.{name}: non-empty mutable default")
                args.append(f"default_factory={type(f.default).__name__}")
            else:
                default = self.default_value(f.default)
        if alias is not None:
            if default is not None:
                args.insert(0, f"default={default}")
                default = None
            args.append(f"alias={_literal(alias)}")
        if args:
            self.imports.add("pydantic", "Field")
            default = f"Field({', '.join(args)})"
        head = f"{INDENT}{name}: {annotation}"
        if default is None:
            return head
        return f"{head} = {default}"

    # ----------------------------------------------------------------------------- classes

    def struct_base(self, cls: type) -> type | None:
        base = cls.__bases__[0]
        if len(cls.__bases__) != 1 or not issubclass(base, OasstStruct):
            raise NotImplementedError(f"{cls.__name__}: expected one struct base")
        return None if base is OasstStruct else base

    def class_source(self, cls: type) -> list[str]:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        base = self.struct_base(cls)
        base_info = mi.type_info(base) if base is not None else None
        assert base_info is None or isinstance(base_info, mi.StructType)
        base_fields = {f.name: f for f in base_info.fields} if base_info is not None else {}
        view_base = self.type_ref(base) if base is not None else "OasstModel"

        lines = [f"class {cls.__name__}({view_base}):"]
        doc = cls.__dict__.get("__doc__")
        lines += _docstring(doc, INDENT)
        if doc:
            lines.append("")
        self.imports.add("typing", "ClassVar")
        self.imports.add("oasst_shared.schemas.base", "OasstStruct")
        lines.append(f"{INDENT}__oasst_struct__: ClassVar[type[OasstStruct]] = {_CORE_ALIAS}.{cls.__name__}")

        body: list[str] = []
        # the tag field: a real field with the tag as its Literal type and default
        if info.tag_field is not None:
            inherited_tag = base_info.tag if base_info is not None else None
            if info.tag != inherited_tag:
                literal = f"{self.imports.add('typing', 'Literal')}[{_literal(info.tag)}]"
                line = f"{INDENT}{info.tag_field}: {literal} = {_literal(info.tag)}"
                if inherited_tag is not None:
                    # the parent view's Literal is another tag: narrowing it is what we want
                    line += "  # type: ignore[assignment]"
                body.append(line)
        else:
            for name in self.classvar_tags(cls):
                body.append(f"{INDENT}{name}: str")
        for f in info.fields:
            if base_fields.get(f.name) != f:
                body.append(self.field_line(cls, f))
        if body:
            lines.append("")
            lines += body
        aliased = [f for f in info.fields if f.name in _RESERVED_FIELDS and base_fields.get(f.name) != f]
        for f in aliased:
            lines += ["", *self.reserved_attribute_typing(f)]
        for member in self.members(cls):
            lines += ["", *member]
        return lines

    def classvar_tags(self, cls: type) -> list[str]:
        hints = inspect.get_annotations(cls, eval_str=True)
        tags: list[str] = []
        for name, hint in hints.items():
            origin: object = typing.get_origin(hint)
            if origin is typing.ClassVar and name in _TAG_FIELDS_DECLARED_ON_BASES:
                tags.append(name)
        return tags

    def reserved_attribute_typing(self, f: mi.Field) -> list[str]:
        """Static typing of ``instance.model_config`` (the runtime side is in ``_base``)."""
        self.imports.add("typing", "TYPE_CHECKING")
        annotation = self.annotation(f.type)
        return [
            f"{INDENT}if TYPE_CHECKING:",
            f"{INDENT * 2}# On instances `{f.name}` is the field above (see oasst_compat._base).",
            f"{INDENT * 2}@property  # type: ignore[override]",
            f"{INDENT * 2}def {f.name}(self) -> {annotation}: ...",
            "",
            f"{INDENT * 2}@{f.name}.setter",
            f"{INDENT * 2}def {f.name}(self, value: {annotation}) -> None: ...",
        ]

    # ----------------------------------------------------------------------------- members

    def members(self, cls: type) -> Iterable[list[str]]:
        """Properties, methods, classmethods and ``__post_init__`` of the struct class itself."""
        struct_ref = f"{_CORE_ALIAS}.{cls.__name__}"
        for name, member in vars(cls).items():
            if name == "__post_init__":
                yield self.post_init(cls)
            elif isinstance(member, property):
                yield self.property_source(cls, name, member, struct_ref)
            elif isinstance(member, classmethod):
                yield self.classmethod_source(cls, name, member, struct_ref)
            elif isinstance(member, staticmethod | FunctionType):
                if isinstance(member, staticmethod):
                    raise NotImplementedError(f"{cls.__name__}.{name}: staticmethods are not supported")
                yield self.method_source(cls, name, member, struct_ref)

    def post_init(self, cls: type) -> list[str]:
        self.imports.add("pydantic", "model_validator")
        return [
            f'{INDENT}@model_validator(mode="after")',
            f"{INDENT}def _post_init(self) -> {cls.__name__}:",
            f'{INDENT * 2}"""The struct\'s checks (``{cls.__name__}.__post_init__``), run on this view."""',
            f'{INDENT * 2}{_CORE_ALIAS}.{cls.__name__}.__dict__["__post_init__"](self)',
            f"{INDENT * 2}return self",
        ]

    def _returns(self, func: Callable[..., Any]) -> str | None:
        annotation = inspect.get_annotations(func).get("return")
        if annotation is None:
            return None
        if not isinstance(annotation, str):
            raise NotImplementedError(f"{func.__qualname__}: expected string annotations")
        return annotation

    def _parameters(self, func: Callable[..., Any]) -> tuple[str, str]:
        """The parameters after ``self`` / ``cls``: (declaration, call arguments)."""
        params = list(inspect.signature(func).parameters.values())[1:]
        declared: list[str] = []
        passed: list[str] = []
        for p in params:
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.annotation is p.empty:
                raise NotImplementedError(f"{func.__qualname__}: unsupported parameter {p}")
            text = f"{p.name}: {p.annotation}"
            if p.default is not p.empty:
                text += f" = {_literal(p.default)}"
            if p.kind is p.KEYWORD_ONLY and "*" not in declared:
                declared.append("*")
            declared.append(text)
            passed.append(p.name if p.kind is p.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}")
        return "".join(f", {d}" for d in declared), ", ".join(passed)

    def _check_return(self, cls: type, returns: str | None) -> None:
        if returns is not None and returns != cls.__name__:
            structs = {s.__name__ for s in self.structs}
            if any(token in structs for token in returns.replace("|", " ").replace("[", " ").split()):
                raise NotImplementedError(f"{cls.__name__}: members returning other structs: {returns}")

    def property_source(self, cls: type, name: str, prop: property, struct_ref: str) -> list[str]:
        if prop.fset is not None or prop.fdel is not None or prop.fget is None:
            raise NotImplementedError(f"{cls.__name__}.{name}: only read-only properties are supported")
        returns = self._returns(prop.fget)
        self._check_return(cls, returns)
        call = f'{struct_ref}.__dict__["{name}"].fget(self)'
        return [
            f"{INDENT}@property",
            f"{INDENT}def {name}(self) -> {returns or 'Any'}:",
            *_docstring(prop.__doc__, INDENT * 2),
            f"{INDENT * 2}return {self._cast(returns, call)}",
        ]

    def method_source(self, cls: type, name: str, func: FunctionType, struct_ref: str) -> list[str]:
        returns = self._returns(func)
        self._check_return(cls, returns)
        declared, passed = self._parameters(func)
        call = f'{struct_ref}.__dict__["{name}"](self{", " + passed if passed else ""})'
        return [
            f"{INDENT}def {name}(self{declared}) -> {returns or 'Any'}:",
            *_docstring(func.__doc__, INDENT * 2),
            f"{INDENT * 2}return {self._cast(returns, call)}",
        ]

    def classmethod_source(
        self, cls: type, name: str, member: classmethod[Any, Any, Any], struct_ref: str
    ) -> list[str]:
        func = member.__func__
        returns = self._returns(func)
        declared, passed = self._parameters(func)
        call = f"{struct_ref}.{name}({passed})"
        if returns == cls.__name__:
            result = f"cls.from_struct({call})"
        else:
            self._check_return(cls, returns)
            result = self._cast(returns, call)
        return [
            f"{INDENT}@classmethod",
            f"{INDENT}def {name}(cls{declared}) -> {returns or 'Any'}:",
            *_docstring(func.__doc__, INDENT * 2),
            f"{INDENT * 2}return {result}",
        ]

    def _cast(self, returns: str | None, call: str) -> str:
        if returns is None or returns == "Any":
            self.imports.add("typing", "Any")
            return call
        self.imports.add("typing", "cast")
        return f"cast({_literal(returns)}, {call})"

    # ------------------------------------------------------------------------------ unions

    def unions(self) -> list[tuple[str, list[type], str]]:
        found: list[tuple[str, list[type], str]] = []
        for dotted, value in registry.unions().items():
            short, _, name = dotted.partition(".")
            if registry.MESSAGE_MODULES[short] != self.core.__name__:
                continue
            tags = registry.union_tags(value)
            if tags is None:
                raise NotImplementedError(f"{name}: union members must share one tag field")
            found.append((name, list(typing.get_args(value)), tags[0]))
        # in the order the module exports them
        return sorted(found, key=lambda union: self.core.__all__.index(union[0]))

    def union_source(self, name: str, members: list[type], tag_field: str) -> list[str]:
        self.imports.add("typing", "Annotated")
        self.imports.add("typing", "Union")
        self.imports.add("pydantic", "Field")
        return [
            f"{name} = Annotated[",
            f"{INDENT}Union[",
            *(f"{INDENT * 2}{self.type_ref(m)}," for m in members),
            f"{INDENT}],",
            f"{INDENT}Field(discriminator={_literal(tag_field)}),",
            "]",
            f'"""``{name}`` of ``{self.core.__name__}``, discriminated on ``{tag_field}``."""',
        ]

    # ------------------------------------------------------------------------- re-exports

    def core_ref(self, name: str) -> str:
        """The core module's ``name`` by its full path: a constant's value, which the API reference
        shows, names no private alias."""
        self.imports.plain.add(self.core.__name__)
        return f"{self.core.__name__}.{name}"

    def constant_source(self, name: str, value: Any) -> list[str] | None:
        """A module constant holding structs, rebuilt from views; ``None`` for plain re-exports."""
        if isinstance(value, OasstStruct):
            view = self.type_ref(type(value))
            return [f"{name}: {view} = {view}.from_struct({self.core_ref(name)})"]
        if isinstance(value, dict) and value and all(isinstance(v, OasstStruct) for v in value.values()):
            kinds = {type(v) for v in value.values()}
            keys = {type(k) for k in value}
            if len(kinds) != 1 or keys != {str}:
                raise NotImplementedError(f"{name}: mixed struct tables are not supported")
            view = self.type_ref(kinds.pop())
            return [
                f"{name}: dict[str, {view}] = {{",
                f"{INDENT}key: {view}.from_struct(value) for key, value in {self.core_ref(name)}.items()",
                "}",
            ]
        if isinstance(value, list | tuple | set) and any(isinstance(v, OasstStruct) for v in value):
            raise NotImplementedError(f"{name}: struct collections other than dicts are not supported")
        return None

    # ------------------------------------------------------------------------------ module

    def render(self) -> str:
        blocks: list[list[str]] = []
        for cls in self.structs:
            blocks.append(self.class_source(cls))
            self.exported.append(cls.__name__)
        union_names: set[str] = set()
        for name, members, tag_field in self.unions():
            blocks.append(self.union_source(name, members, tag_field))
            self.exported.append(name)
            union_names.add(name)
        struct_names = {cls.__name__ for cls in self.structs}
        for name in self.core.__all__:
            if name in struct_names or name in union_names:
                continue
            constant = self.constant_source(name, getattr(self.core, name))
            if constant is not None:
                blocks.append(constant)
            else:
                self.imports.add(self.core.__name__, name)
            self.exported.append(name)

        exported = sorted(set(self.exported))  # ruff puts them in its isort-style order (RUF022)
        out = [
            f"# Generated by `python -m tools.generate_views` from {self.core.__name__}: do not edit.",
            "# Regenerate with `make compat` after changing the structs.",
            f'"""Pydantic v2 views of ``{self.core.__name__}`` (generated).',
            "",
            "Every struct of the module as a ``pydantic.BaseModel`` with the same name, fields, defaults,",
            "constraints, tags and methods; unions are discriminated unions; enums and constants are the",
            "core's own objects. See ``oasst_compat`` for the conversions and ``oasst_compat._base`` for the",
            "``model_config`` field.",
            '"""',
            "",
            *self.imports.render(),
            "",
            "__all__ = [",
            *(f"{INDENT}{_literal(name)}," for name in exported),
            "]",
        ]
        for block in blocks:
            out += ["", "", *block]
        return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------- entry points


def generate_module(core_module: str) -> str:
    """The source of the view module of ``core_module`` (e.g. ``oasst_shared.schemas.protocol``)."""
    source = _ModuleWriter(importlib.import_module(core_module)).render()
    return ruff_format(source, f"compat/oasst_compat/{MODULES[core_module]}")


def generate() -> dict[Path, str]:
    """Every generated module: path -> source."""
    return {COMPAT_ROOT / path: generate_module(module) for module, path in MODULES.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the stale view modules; with ``--check`` only report them (exit status 1)."""
    return run(
        argv,
        prog="python -m tools.generate_views",
        description=__doc__.split("\n")[0],
        generate=generate,
        fix="make compat",
    )


if __name__ == "__main__":
    raise SystemExit(main())
