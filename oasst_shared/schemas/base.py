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
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import msgspec

__all__ = ["OasstStruct", "decode_error_from_recursion"]

_S = TypeVar("_S", bound="OasstStruct")

# Values that ``.dict()`` keeps as Python objects, like pydantic's ``.dict()`` does.
_PASSTHROUGH = (datetime, date, time, timedelta, UUID, Decimal, bytes)

_json_decoders: builtins.dict[type, msgspec.json.Decoder[Any]] = {}
_json_encoder = msgspec.json.Encoder()


def decode_error_from_recursion(type_name: str) -> msgspec.DecodeError:
    """msgspec raises ``RecursionError`` on very deep nesting; we report a DecodeError."""
    return msgspec.DecodeError(f"Input nested too deeply to decode as `{type_name}`")


class _OasstStructMeta(msgspec.StructMeta):
    """Exposes a tagged struct's tag as a class attribute named after its tag field.

    ``TokenResponse.response_type == "token"`` and ``task.type == "initial_prompt"`` read the
    tag that msgspec writes and checks on the wire, so the value is declared once (``tag=``).
    """

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: builtins.dict[str, Any], **kwargs: Any
    ) -> Any:
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        config = cls.__struct_config__
        if config.tag_field is not None:
            setattr(cls, config.tag_field, config.tag)
        return cls


class OasstStruct(msgspec.Struct, metaclass=_OasstStructMeta, kw_only=True):
    """Base of every message struct.

    Besides msgspec's own API (``msgspec.json.encode(obj)``,
    ``msgspec.json.decode(data, type=Cls)``) it offers the pydantic v1 methods the
    reference's consumers call: ``.dict()``, ``.json()``, ``Cls.parse_obj()``,
    ``Cls.parse_raw()`` and ``.copy(update=...)``. They are thin layers over msgspec; none
    of them is on a hot path that a prebuilt codec (``oasst_shared.codec``) would not serve
    better.
    """

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
    def parse_obj(cls: type[_S], obj: Any) -> _S:
        """Build and validate from a mapping (as decoded from JSON, or with Python values)."""
        if isinstance(obj, cls):
            return obj
        try:
            return msgspec.convert(obj, cls)
        except RecursionError:
            raise decode_error_from_recursion(cls.__name__) from None
        except UnicodeError:
            # msgspec encodes a str to UTF-8 wherever it reads one as something else (a number,
            # a datetime, an enum, a field name): a lone surrogate there is invalid input.
            message = f"Input to convert to `{cls.__name__}` holds a str with a lone surrogate"
            raise msgspec.ValidationError(message) from None

    @classmethod
    def parse_raw(cls: type[_S], data: str | bytes | bytearray | memoryview) -> _S:
        """Decode and validate a JSON document (``str`` or bytes)."""
        decoder = _json_decoders.get(cls)
        if decoder is None:
            decoder = _json_decoders[cls] = msgspec.json.Decoder(cls)
        try:
            return decoder.decode(data)  # type: ignore[no-any-return]
        except RecursionError:
            raise decode_error_from_recursion(cls.__name__) from None
        except UnicodeError:
            # msgspec leaves invalid UTF-8 inside a string (UnicodeDecodeError) and a lone
            # surrogate in str input (UnicodeEncodeError) to CPython, which raises these.
            message = f"Input to decode as `{cls.__name__}` is not valid UTF-8 text"
            raise msgspec.DecodeError(message) from None

    def copy(self: _S, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> _S:
        """A copy, with the fields in ``update`` replaced (not validated, as in pydantic v1)."""
        obj = _copy.deepcopy(self) if deep else self
        return msgspec.structs.replace(obj, **(update or {}))
