"""One translation of a failed decode into what went wrong and where.

Every decode path (the codecs, ``parse_raw`` / ``parse_obj``, the API client's response
decoding and ``oasst-shared validate``) describes a failure through ``describe`` so that the
same bad input gets the same path and wording everywhere, whichever msgspec release is
installed.

What msgspec reports, and what ``describe`` makes of it:

* ``Expected `str`, got `int` - at `$.text``` -> path ``$.text``.
* ``Object missing required field `role` - at `$.thread.messages[0]``` -> path
  ``$.thread.messages[0].role``: the missing field itself (a missing tag of a union is
  ``$.type`` / ``$.response_type``), as the reference's errors name it.
* ``Invalid enum value 'x' - at `key` in `$.labels``` -> path ``$.labels``, ``in_key``.
* ``JSON is malformed: ... (byte 36)`` / ``Input data was truncated`` -> path ``$``, with the
  byte offset and its line and column.
* Invalid UTF-8 inside a string: msgspec 0.22 lets CPython's ``UnicodeDecodeError`` out,
  0.23 raises ``DecodeError("Invalid UTF-8 encoded string")`` with no position; both become
  ``Invalid UTF-8`` with the offset of the first bad byte, found by decoding the input.
* ``RecursionError`` (absurd nesting) and a lone surrogate in ``str`` input
  (``UnicodeEncodeError``) -> path ``$``.

Only failures pay for this module's work; nothing here is on a hot path.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

import msgspec

__all__ = ["DECODE_ERRORS", "DecodeProblem", "as_msgspec_error", "describe", "shorten", "type_name"]

DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeError)
"""What msgspec's decoders let out on bad input: its own errors, ``RecursionError`` on absurd
nesting and ``UnicodeError`` (invalid UTF-8 in a string on msgspec < 0.23, a lone surrogate
in ``str`` input)."""

MAX_QUOTE: Final = 120
"""A description keeps at most this many characters of msgspec's detail, which may quote an
offending value of any length."""

# msgspec ends a message with " - at `$.a.b[0]`", or " - at `key` in `$.a`" for a mapping's key.
_PATH_SUFFIX: Final = re.compile(r" - at (?P<key>`key` in )?`(?P<path>\$[^`]*)`\Z")
_MISSING_FIELD: Final = re.compile(r"\AObject missing required field `(?P<field>[^`]+)`\Z")
_BYTE_SUFFIX: Final = re.compile(r" \(byte (?P<byte>\d+)\)\Z")
_IDENTIFIER: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


class DecodeProblem(NamedTuple):
    """What is wrong with an input, and where."""

    detail: str
    """What is wrong, on one line, without the location (at most about ``MAX_QUOTE`` characters
    of any value msgspec quoted)."""
    path: str
    """JSON path of the offending value (``$.thread.messages[3].role``); ``$`` for the whole."""
    in_key: bool = False
    """True when the offending value is a key of the mapping at ``path``."""
    byte: int | None = None
    """Offset of the offending byte, for malformed JSON and invalid UTF-8."""
    line: int | None = None
    """1-based line of ``byte`` in the input."""
    column: int | None = None
    """1-based column (in bytes) of ``byte`` on its line."""

    @property
    def message(self) -> str:
        """``detail`` with the key and position notes, without the path (the line is named only
        past the first: ``at column 41 (byte 40)``, ``at line 3, column 7 (byte 52)``)."""
        text = self.detail + (" (in a key)" if self.in_key else "")
        if self.byte is not None:
            where = f"line {self.line}, column {self.column}" if self.line and self.line > 1 else None
            where = where or (f"column {self.column}" if self.column else None)
            text += f" at {where} (byte {self.byte})" if where else f" at byte {self.byte}"
        return text

    def __str__(self) -> str:
        """``message``, then `` - at `PATH``` unless the path is the whole input (``$``)."""
        return self.message if self.path == "$" else f"{self.message} - at `{self.path}`"


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text) - limit} more characters)"


def _as_bytes(data: Any) -> bytes | None:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return None


def _located(detail: str, data: Any, byte: int) -> DecodeProblem:
    raw = _as_bytes(data)
    if raw is None:
        return DecodeProblem(detail, "$", byte=byte)
    byte = min(byte, len(raw))
    line = raw.count(b"\n", 0, byte) + 1
    column = byte - (raw.rfind(b"\n", 0, byte) + 1) + 1
    return DecodeProblem(detail, "$", byte=byte, line=line, column=column)


def _invalid_utf8(data: Any, fallback: str) -> DecodeProblem:
    raw = _as_bytes(data)
    if raw is not None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _located(f"Invalid UTF-8: {exc.reason}", raw, exc.start)
    return DecodeProblem(f"Invalid UTF-8: {fallback}", "$")


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if _IDENTIFIER.match(field) else f"{path}[{field!r}]"


def describe(exc: BaseException, data: Any, type_name: str) -> DecodeProblem:
    """What ``exc``, raised decoding ``data`` as ``type_name``, says is wrong, and where."""
    if isinstance(exc, RecursionError):
        return DecodeProblem(f"Input nested too deeply to decode as `{type_name}`", "$")
    if isinstance(exc, UnicodeEncodeError):
        return DecodeProblem("str input holds a lone surrogate (not encodable as UTF-8)", "$")
    if isinstance(exc, UnicodeDecodeError):
        return _invalid_utf8(data, exc.reason)
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError) or " - at `" in text:
        found = _PATH_SUFFIX.search(text)
        detail, path, in_key = text, "$", False
        if found is not None:
            detail, path, in_key = text[: found.start()], found["path"], bool(found["key"])
        missing = _MISSING_FIELD.match(detail)
        if missing is not None and not in_key:
            path = _join(path, missing["field"])
        return DecodeProblem(shorten(detail), path, in_key)
    if text.startswith("Invalid UTF-8"):  # msgspec >= 0.23, with no position
        return _invalid_utf8(data, text)
    if text == "Input data was truncated":
        raw = _as_bytes(data)
        return _located(text, data, len(raw) if raw is not None else 0)
    at = _BYTE_SUFFIX.search(text)
    if at is not None:
        return _located(shorten(text[: at.start()]), data, int(at["byte"]))
    return DecodeProblem(shorten(text), "$")


def type_name(tp: Any) -> str:
    """A readable name for a struct class or one of the unions (``inference.WorkerResponse``):
    the message registry's display name."""
    from oasst_shared.schemas._registry import display_name  # not at import: schemas import this module

    return display_name(tp)


def as_msgspec_error(exc: BaseException, data: Any, type_name: str) -> msgspec.DecodeError:
    """``exc`` as the msgspec error the v1-style helpers raise (``parse_raw``, ``parse_obj``,
    ``parse_obj_as``): ``msgspec.ValidationError`` for wrong content, ``msgspec.DecodeError``
    for input that is not JSON, with the message naming the path as the codecs do. ``data`` is
    ``None`` when there is no text to point into (a conversion from Python objects)."""
    if isinstance(exc, UnicodeEncodeError) and data is None:
        # convert() encodes a str to UTF-8 wherever it reads one as something else (a number,
        # a datetime, an enum, a field name): a lone surrogate there is invalid content.
        return msgspec.ValidationError(f"Input to convert to `{type_name}` holds a str with a lone surrogate")
    problem = str(describe(exc, data, type_name))
    if isinstance(exc, msgspec.ValidationError):
        return msgspec.ValidationError(problem)
    return msgspec.DecodeError(problem)
