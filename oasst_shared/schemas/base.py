"""The base struct of every message and the pydantic-v1-style convenience methods.

Struct options, chosen by measurement (see ``benchmarks/``):

* ``kw_only=True`` on every class: the reference's models are built with keywords, and
  inherited optional fields may then precede required ones. It costs nothing at run time.
* not ``frozen``: consumers assign to fields (the reference's models are mutable) and
  validators normalise values in ``__post_init__``.
* ``gc=False`` only on leaf structs whose fields are scalars or strings (``TokenResponse``,
  ``ModelConfig``, ...): they can never be part of a reference cycle, and skipping GC tracking
  makes construction and decoding measurably cheaper (TokenResponse, same-run interleaved
  timing: decode 186 vs 202 ns, construction 62 vs 77 ns, 1,000 kept instances 61 vs 74 us).
  Structs holding lists or dicts stay tracked, since a caller could put the struct inside its
  own list.
* every field is encoded, ``None`` included (``omit_defaults`` off), as the reference does.
* unknown fields are ignored on decode (msgspec's default), as the reference does.
"""

from __future__ import annotations

import builtins
import copy as _copy
import keyword
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, as_msgspec_error

__all__ = ["OasstStruct"]

# Values that ``.dict()`` keeps as Python objects, like pydantic's ``.dict()`` does.
_PASSTHROUGH = (datetime, date, time, timedelta, UUID, Decimal, bytes)

_json_decoders: builtins.dict[type, msgspec.json.Decoder[Any]] = {}
_json_encoder = msgspec.json.Encoder()


# A keyword argument that was not passed (``None`` may be a value given on purpose).
_MISSING: Any = object()

# msgspec's own constructor, without our metaclass's ``__call__``: bound to a class
# (``_struct_call.__get__(cls)``) it is that class's fast path ``cls.new``.
_struct_call = msgspec.StructMeta.__call__

# Names the generated ``__call__`` uses itself; a tag field can never be one of them.
_CALL_NAMES = frozenset({"_cls_", "_args_", "_kwargs_", "_MISSING", "_wrong_tag"})


def _wrong_tag(cls: type, field: str, given: Any) -> ValueError:
    expected = getattr(cls, field)
    return ValueError(
        f"{cls.__name__}: {field}={given!r} given, expected {expected!r} "
        f"(the tag of {cls.__name__}; leave {field} out or pass {expected!r})"
    )


class _OasstStructMeta(msgspec.StructMeta):
    """Exposes a tagged struct's tag as a class attribute named after its tag field.

    ``TokenResponse.response_type == "token"`` and ``task.type == "initial_prompt"`` read the
    tag that msgspec writes and checks on the wire, so the value is declared once (``tag=``).

    It also gives every struct ``cls.new``: msgspec's constructor bound to the class, and
    moves every tagged struct to a metaclass whose ``__call__`` accepts the tag field as a
    keyword (see ``_tag_keyword_meta``).
    """

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: builtins.dict[str, Any], **kwargs: Any
    ) -> Any:
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if "new" in cls.__struct_fields__:
            raise TypeError(f"{name}: a field may not be named `new` (it is the fast constructor)")
        # A method-wrapper: calling it costs what calling the class cost before tag keywords.
        type.__setattr__(cls, "new", _struct_call.__get__(cls))
        config = cls.__struct_config__
        if config.tag_field is not None:
            setattr(cls, config.tag_field, config.tag)
            meta = _tag_keyword_meta(config.tag_field)
            if meta is not None and type(cls) is not meta:
                cls.__class__ = meta
        return cls


_tag_keyword_metas: builtins.dict[str, type] = {}


def _tag_keyword_meta(field: str) -> type | None:
    """The metaclass of the tagged structs whose tag field is ``field``, made once per name.

    msgspec's constructor is C code that refuses unknown keywords, and msgspec forbids
    ``__init__``/``__new__`` on a struct and a field named like the tag field; the only hook
    left is the metaclass's ``__call__``, which then hands the other arguments to ``cls.new``.
    It is generated per tag field name so that the tag is a keyword-only parameter (Python
    binds it; no dict lookups). Measured on TokenResponse (Python 3.11, alternating
    processes): a call without the tag costs about 2.5x ``cls.new`` (the Python frame and
    the re-packing of the arguments) whichever way the tag is taken out; a call with it about
    2.7x, against 3.4x for a closure that pops it from ``**kwargs``. Workers on a hot loop
    call ``cls.new(...)``, which skips it. A tag field that is not an identifier cannot be
    written as a keyword, so its classes get no ``__call__``.
    """
    meta = _tag_keyword_metas.get(field)
    if meta is not None:
        return meta
    if not field.isidentifier() or keyword.iskeyword(field) or field in _CALL_NAMES:
        return None
    source = (
        f"def __call__(_cls_, /, *_args_, {field}=_MISSING, **_kwargs_):\n"
        f"    if {field} is not _MISSING and {field} != _cls_.{field}:\n"
        f"        raise _wrong_tag(_cls_, {field!r}, {field})\n"
        f"    return _cls_.new(*_args_, **_kwargs_)\n"
    )
    namespace: builtins.dict[str, Any] = {"_MISSING": _MISSING, "_wrong_tag": _wrong_tag}
    exec(source, namespace)  # a fixed template; ``field`` was checked to be an identifier
    call = namespace["__call__"]
    call.__qualname__ = f"_TagKeywordMeta[{field}].__call__"
    call.__doc__ = f"Build the struct; ``{field}=`` is accepted when it equals the class's tag."
    meta = type(
        f"_TagKeywordMeta[{field}]",
        (_OasstStructMeta,),
        {"__call__": call, "__module__": __name__, "__doc__": _OasstStructMeta.__doc__},
    )
    _tag_keyword_metas[field] = meta
    return meta


class OasstStruct(msgspec.Struct, metaclass=_OasstStructMeta, kw_only=True):
    """Base of every message struct.

    Besides msgspec's own API (``msgspec.json.encode(obj)``,
    ``msgspec.json.decode(data, type=Cls)``) it offers the pydantic v1 methods the
    reference's consumers call: ``.dict()``, ``.json()``, ``Cls.parse_obj()``,
    ``Cls.parse_raw()`` and ``.copy(update=...)``. They are thin layers over msgspec; none
    of them is on a hot path that a prebuilt codec (``oasst_shared.codec``) would not serve
    better.

    Building a message: ``Cls(field=..., ...)``, and, on a tagged struct, with its tag field as
    a keyword too (``TextReplyToMessage(type="text_reply_to_message", ...)``) as the
    reference's models allowed; a tag keyword that is not the class's tag is a ``ValueError``.
    Accepting it puts a Python ``__call__`` in front of msgspec's constructor. ``Cls.new(...)``
    is msgspec's constructor itself (the same arguments, without the tag keyword): the fast
    path for a loop that builds one message per token.
    """

    if TYPE_CHECKING:

        @classmethod
        def new(cls, *args: Any, **kwargs: Any) -> Self:
            """Build the struct through msgspec's constructor alone (no tag keyword)."""
            ...

    def dict(self) -> builtins.dict[str, Any]:
        """The message as a dict (nested structs as dicts, tag fields included).

        UUIDs and datetimes stay Python objects as in pydantic's ``.dict()``; enum members are
        given as their values (they compare equal to the members).
        """
        result: builtins.dict[str, Any] = msgspec.to_builtins(self, builtin_types=_PASSTHROUGH)
        return result

    def json(self) -> str:
        """The message as a JSON document (``str``), every field included."""
        return _json_encoder.encode(self).decode()

    @classmethod
    def parse_obj(cls, obj: Any) -> Self:
        """Build and validate from a mapping (as decoded from JSON, or with Python values).

        Invalid input raises ``msgspec.ValidationError`` naming the path (see ``parse_raw``).
        """
        if isinstance(obj, cls):
            return obj
        try:
            return msgspec.convert(obj, cls)
        except DECODE_ERRORS as exc:
            raise as_msgspec_error(exc, None, cls.__name__) from None

    @classmethod
    def parse_raw(cls, data: str | bytes | bytearray | memoryview) -> Self:
        """Decode and validate a JSON document (``str`` or bytes).

        Invalid input raises ``msgspec.ValidationError`` (wrong content) or
        ``msgspec.DecodeError`` (not JSON, invalid UTF-8, nested too deeply), whose message
        names the path as the codecs' ``FrameDecodeError`` does: the missing field itself
        (``- at `$.thread.messages[0].role` ``), the mapping of a bad key, the line and column
        of malformed JSON.
        """
        decoder = _json_decoders.get(cls)
        if decoder is None:
            decoder = _json_decoders[cls] = msgspec.json.Decoder(cls)
        try:
            return decoder.decode(data)  # type: ignore[no-any-return]
        except DECODE_ERRORS as exc:
            raise as_msgspec_error(exc, data, cls.__name__) from None

    def copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with the fields in ``update`` replaced (not validated, as in pydantic v1)."""
        obj = _copy.deepcopy(self) if deep else self
        return msgspec.structs.replace(obj, **(update or {}))
