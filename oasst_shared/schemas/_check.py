"""``check(msg)``: whether a message built in Python is one its receiver's decoder accepts.

Struct constructors do not check field types: that is msgspec's choice, for speed (a check
would cost more than building the struct). ``TokenResponse.new(request_id="r", text=3,
token_id=1)`` builds, and encodes ``"text":3``, which every decoder then refuses (the
reference's pydantic models coerced ``3`` to ``"3"``). ``check`` is the opt-in test a worker
runs before sending, or a test suite on what it builds: it encodes the message as JSON and
decodes the bytes as the message's own class, exactly as the receiver would, so it checks
what matters on the wire (types, constraints such as ``TextLabels.labels`` within [0, 1], the
validators of ``__post_init__``) and nothing else.

The codecs (``oasst_shared.codec``) do the same on every encode when the environment variable
``OASST_SHARED_CHECK_ENCODE`` is set to ``1`` when the codec module is imported
(``encode_check_enabled``): a debug setting, off by default, that costs nothing when off (the
codecs' ``encode`` is then msgspec's own function, untouched).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe, shorten

__all__ = [
    "CHECK_ENCODE_ENV",
    "MessageCheckError",
    "check",
    "encode_check_enabled",
    "make_verifier",
]

S = TypeVar("S", bound=msgspec.Struct)

CHECK_ENCODE_ENV: Final = "OASST_SHARED_CHECK_ENCODE"
"""The environment variable that makes the codecs check every message they encode."""

_ON: Final = frozenset({"1", "true", "yes", "on"})
_OFF: Final = frozenset({"", "0", "false", "no", "off"})

_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
"""What msgspec's encoders raise for a value they cannot encode (an unsupported type, a str
holding a lone surrogate, which is a ``UnicodeEncodeError``)."""

_HINT: Final = "struct constructors do not check field types"


class MessageCheckError(msgspec.ValidationError):
    """A message whose encoding its receiver's decoder would refuse (or that cannot be encoded).

    A ``msgspec.ValidationError`` (so a ``ValueError``), as ``Cls.parse_obj`` raises for the
    same content. Attributes: ``type_name`` (the message's class, ``TokenResponse``), ``path``
    (JSON path of the offending value, ``$.text``; ``$`` for the whole message), ``detail``
    (what is wrong, naming the expected type: ``Expected `str`, got `int```) and
    ``checked_as`` (the type it was decoded as: the class itself for ``check``, the codec's
    type, e.g. ``inference.WorkerResponse``, for a codec's encode).
    """

    __module__ = "oasst_shared.schemas"  # its public path, in tracebacks and for pickle

    def __init__(self, type_name: str, path: str, detail: str, checked_as: str | None = None) -> None:
        self.type_name = type_name
        self.path = path
        self.detail = detail
        self.checked_as = checked_as or type_name
        as_what = "" if self.checked_as == type_name else f" (checked as {self.checked_as})"
        super().__init__(f"invalid {type_name} at {path}{as_what}: {detail} ({_HINT})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.path, self.detail, self.checked_as))


def encode_check_enabled(environ: Any = None) -> bool:
    """Whether ``OASST_SHARED_CHECK_ENCODE`` (in ``environ``, default ``os.environ``) asks the
    codecs to check what they encode: ``1``, ``true``, ``yes`` or ``on`` (any case) turn it on;
    unset, empty, ``0``, ``false``, ``no`` or ``off`` leave it off. Any other value is a
    ``ValueError`` naming the variable: a typo must not silently turn a requested check off."""
    value = (os.environ if environ is None else environ).get(CHECK_ENCODE_ENV, "")
    normal = value.strip().lower()
    if normal in _ON:
        return True
    if normal in _OFF:
        return False
    raise ValueError(
        f"{CHECK_ENCODE_ENV}={value!r}: expected 1 (check what the codecs encode) or 0 (do not); "
        "also accepted: true/false, yes/no, on/off"
    )


# ------------------------------------------------------------------------------- the check


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The values ``value`` holds, each with its JSON path (as msgspec writes paths)."""
    if isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            yield f"{path}.{field.encode_name}", getattr(value, field.name)
    elif isinstance(value, dict):  # a mapping's values, as msgspec names them: ``$.labels[...]``
        for item in value.values():
            yield f"{path}[...]", item
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item


def _unencodable_at(value: Any, encode: Callable[[Any], bytes], path: str = "$") -> str:
    """The path of the innermost value of ``value`` that ``encode`` refuses (``value`` itself
    when none of what it holds is refused on its own)."""
    for child_path, child in _children(value, path):
        try:
            encode(child)
        except _ENCODE_ERRORS:
            return _unencodable_at(child, encode, child_path)
    return path


def make_verifier(
    encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], checked_as: str
) -> Callable[[Any], bytes]:
    """A function that encodes a message with ``encode``, decodes the bytes with ``decode``
    (the receiver's decoder, for the type named ``checked_as``) and returns the bytes, or
    raises ``MessageCheckError`` naming the message's class, the path and what is wrong."""

    def verify(obj: Any) -> bytes:
        try:
            data = encode(obj)
        except _ENCODE_ERRORS as exc:
            path = _unencodable_at(obj, encode)
            detail = f"cannot be encoded: {type(exc).__name__}: {shorten(str(exc))}"
            raise MessageCheckError(type(obj).__name__, path, detail, checked_as) from None
        try:
            decode(data)
        except DECODE_ERRORS as exc:
            problem = describe(exc, data, checked_as)
            raise MessageCheckError(type(obj).__name__, problem.path, problem.message, checked_as) from None
        return data

    return verify


_verifiers: dict[type, Callable[[Any], bytes]] = {}


def check(obj: S) -> S:
    """``obj`` itself, after checking that its receiver would accept it; else ``MessageCheckError``.

    The message is encoded as JSON and the bytes decoded as its own class, as a receiver
    decodes them: a field holding a value of the wrong type (``text=3`` where a ``str`` is
    declared), a value outside its constraints or one msgspec cannot encode at all is refused,
    and the error names the class, the path (``$.text``) and the expected type (``Expected
    `str`, got `int```). Costs an encode and a decode: for tests, debugging, or a worker that
    wants the check before it sends (``frame = codec.worker_response.encode(check(msg))``).
    """
    cls = type(obj)
    verify = _verifiers.get(cls)
    if verify is None:
        if not isinstance(obj, msgspec.Struct):
            raise TypeError(f"check() takes a message struct, not {cls.__name__}: {shorten(repr(obj), 80)}")
        verify = make_verifier(msgspec.json.encode, msgspec.json.Decoder(cls).decode, cls.__name__)
        _verifiers[cls] = verify
    verify(obj)
    return obj
