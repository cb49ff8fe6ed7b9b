"""Validating a stream of JSON messages (NDJSON, or one document) against a message type.

The engine behind ``oasst-shared validate``; it reports through callbacks and never prints.

Input framing:

* **NDJSON** (the default): one message per line, as a websocket or Redis capture is written.
  Blank lines are skipped, ``\\r\\n`` endings and a leading UTF-8 byte-order mark are accepted.
* **One pretty-printed document**: when the first non-blank line is not a complete JSON value
  on its own, the lines are collected (up to ``MAX_DOCUMENT_BYTES``) and decoded as one
  document, reported at that first line. A later line that starts with ``{`` and is a
  complete JSON object on its own shows that the input is NDJSON whose first line is broken:
  from there (or past the limit) the lines are validated one by one. Collected lines (more
  than one) that do not form one JSON document, none of them a message on its own, are one
  invalid message: a truncated (or malformed) document, with the line, column and byte of the
  input where it ends (or breaks).

The input is read in binary chunks (``read1``) and split on ``\\n``: memory stays constant
whatever the input's size (a single line is held whole, since msgspec decodes a whole
document). One prebuilt ``msgspec.json.Decoder`` decodes every line. Any failure decoding a
line, including invalid UTF-8 and nesting too deep for the interpreter's recursion limit, is
an invalid message: the run always goes on to the end of the input.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe
from oasst_shared.codec._errors import frame_tag
from oasst_shared.schemas._registry import (
    UnknownMessageTypeError,
    is_union,
    message_type_name,
    union_tags,
    unions,
)

__all__ = [
    "CHUNK_SIZE",
    "MAX_DOCUMENT_BYTES",
    "UNKNOWN",
    "InvalidMessage",
    "MessageValidator",
    "abstract_base_union",
    "read_line_batches",
]

CHUNK_SIZE: Final = 1 << 20
"""Bytes asked of the stream per read."""

MAX_DOCUMENT_BYTES: Final = 32 << 20
"""Largest multi-line (pretty-printed) document collected before falling back to NDJSON."""

UNKNOWN: Final = "unknown"
"""The label of an invalid message of a union whose tag is missing or not a member's."""

_BOM: Final = b"\xef\xbb\xbf"
_TRUNCATED: Final = "Input data was truncated"
_MALFORMED: Final = "JSON is malformed: "


@dataclasses.dataclass(frozen=True)
class InvalidMessage:
    """One message that failed to decode."""

    line: int
    """1-based line number (of the document's first line, for a multi-line document)."""
    label: str
    """The message's type name (the member a union's tag names) or ``UNKNOWN``."""
    path: str
    """Where in the message, as msgspec writes it (``$.metrics.cpu_usage``); ``$`` for the whole."""
    message: str
    """What is wrong, on one line."""


def read_line_batches(stream: IO[bytes], chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[list[bytes], int]]:
    """Yield ``(lines, bytes_read_so_far)``: the complete lines of each chunk, without ``\\n``.

    Reads with ``read1`` when the stream has it (a buffered stream: whatever is available, so a
    live pipe is validated as it arrives), else ``read``. A last line without a final newline
    is yielded at the end of the input. A line longer than a chunk is assembled from its pieces
    (each piece copied once).
    """
    read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
    pending: list[bytes] = []
    total = 0
    while True:
        chunk = read(chunk_size)
        if not chunk:
            break
        total += len(chunk)
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            pending.append(chunk)
            yield [], total
            continue
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
            pending = []
        last = lines.pop()
        if last:
            pending.append(last)
        yield lines, total
    if pending:
        yield [b"".join(pending)], total


def _describe(exc: BaseException, line: bytes, type_name: str) -> tuple[str, str]:
    """``(path, message)`` for an exception raised decoding ``line``."""
    if isinstance(exc, DECODE_ERRORS):
        problem = describe(exc, line, type_name)
        return problem.path, problem.message
    return "$", f"{type(exc).__name__}: {exc}"


class MessageValidator:
    """Validates lines against one message type, counting valid and invalid messages per type.

    ``feed(lines)`` takes consecutive lines (without ``\\n``), ``finish()`` ends the input. Each
    invalid message is passed to ``on_invalid`` as it is found (a multi-line document's only
    when it is complete).
    """

    def __init__(
        self,
        message_type: Any,
        on_invalid: Callable[[InvalidMessage], None],
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self._type = message_type
        self._decode = msgspec.json.Decoder(message_type).decode
        self._on_invalid = on_invalid
        self._max_document_bytes = max_document_bytes
        self.type_name: str = _type_name(message_type)
        self.labels: list[str] = _member_names(message_type)
        self._valid: dict[type, int] = {}
        self.invalid: dict[str, int] = {}
        self._lineno = 0
        self._state = "start"  # -> "ndjson", or "collect" (a multi-line document) -> "ndjson"
        self._collected: list[bytes] = []
        self._collected_bytes = 0
        self._collect_start = 0
        self._start_offset = 0  # bytes before the first non-blank line (a BOM, blank lines)
        self._tag_field = ""
        self._tag_labels: dict[Any, str] = {}
        self._setup_tag_probe()

    # ------------------------------------------------------------------------------ results

    @property
    def valid(self) -> dict[str, int]:
        """Valid messages per type name."""
        return {cls.__name__: n for cls, n in self._valid.items()}

    @property
    def messages(self) -> int:
        """Messages seen so far (valid and invalid)."""
        return sum(self._valid.values()) + sum(self.invalid.values())

    @property
    def invalid_count(self) -> int:
        return sum(self.invalid.values())

    # -------------------------------------------------------------------------------- input

    def feed(self, lines: list[bytes]) -> None:
        """Validate the next lines of the input."""
        if self._state == "ndjson":
            self._validate_lines(lines, self._lineno + 1)
        elif self._state == "start":
            self._feed_start(lines)
        else:
            self._feed_collect(lines)
        self._lineno += len(lines)

    def finish(self) -> None:
        """The input has ended: decide a pending multi-line document."""
        if self._state != "collect":
            return
        self._state = "ndjson"
        document = b"\n".join(self._collected)
        try:
            obj = self._decode(document)
        except msgspec.ValidationError as exc:
            self._report(self._collect_start, document, exc)
        except Exception as exc:  # not one JSON document: truncated or malformed, as one message
            self._report_document(document, exc)
        else:
            self._count_valid(obj)
        self._collected = []

    # -------------------------------------------------------------------------------- states

    def _feed_start(self, lines: list[bytes]) -> None:
        if self._lineno == 0 and lines and lines[0].startswith(_BOM):
            lines[0] = lines[0][len(_BOM) :]
            self._start_offset += len(_BOM)
        for index, line in enumerate(lines):
            if not line or line.isspace():
                self._start_offset += len(line) + 1
                continue
            first = self._lineno + index + 1
            if self._is_incomplete_json(line):
                self._state = "collect"
                self._collect_start = first
                self._collected = []
                self._collected_bytes = 0
                self._feed_collect(lines[index:])
            else:
                self._state = "ndjson"
                self._validate_lines(lines[index:], first)
            return

    def _is_incomplete_json(self, line: bytes) -> bool:
        """True if ``line`` is not a complete JSON value (a syntax error, not a type mismatch)."""
        try:
            self._decode(line)
        except msgspec.ValidationError:
            return False
        except msgspec.DecodeError:
            return True
        except Exception:
            return False
        return False

    def _feed_collect(self, lines: list[bytes]) -> None:
        for index, line in enumerate(lines):
            if (index or self._collected) and _is_message_line(line):
                # NDJSON after all (its first line is broken): line by line from here on
                self._collected.extend(lines[:index])
                first = self._collect_start + len(self._collected)
                self._switch_to_ndjson()
                self._validate_lines(lines[index:], first)
                return
        self._collected.extend(lines)
        self._collected_bytes += sum(map(len, lines)) + len(lines)
        if self._collected_bytes > self._max_document_bytes:
            self._switch_to_ndjson()

    def _switch_to_ndjson(self) -> None:
        self._state = "ndjson"
        self._replay_collected()
        self._collected = []

    def _replay_collected(self) -> None:
        self._validate_lines(self._collected, self._collect_start)

    # ------------------------------------------------------------------------------ hot path

    def _validate_lines(self, lines: list[bytes], first_lineno: int) -> None:
        decode = self._decode
        valid = self._valid
        lineno = first_lineno - 1
        for line in lines:
            lineno += 1
            if not line or line.isspace():
                continue
            try:
                obj = decode(line)
            except Exception as exc:  # any failure is an invalid message; RecursionError included
                self._report(lineno, line, exc)
                continue
            cls = type(obj)
            valid[cls] = valid.get(cls, 0) + 1

    def _count_valid(self, obj: Any) -> None:
        cls = type(obj)
        self._valid[cls] = self._valid.get(cls, 0) + 1

    # ---------------------------------------------------------------------------- reporting

    def _report(self, lineno: int, line: bytes, exc: BaseException) -> None:
        label = self._label_of_invalid(line)
        self.invalid[label] = self.invalid.get(label, 0) + 1
        path, message = _describe(exc, line, label if label != UNKNOWN else self.type_name)
        self._on_invalid(InvalidMessage(lineno, label, path, " ".join(message.split())))

    def _report_document(self, document: bytes, exc: BaseException) -> None:
        """One invalid message for collected lines that are not one JSON document: where the
        input ends inside it (truncated) or where it breaks (malformed), as lines of the input."""
        if len(self._collected) == 1:
            self._replay_collected()  # one line: an NDJSON line like any other
            return
        if not isinstance(exc, DECODE_ERRORS):
            self._report(self._collect_start, document, exc)
            return
        start = self._collect_start
        problem = describe(exc, document, self.type_name)
        where = ""
        if problem.byte is not None and problem.line is not None and problem.column is not None:
            line = start + problem.line - 1  # named past the first line, as every decode error does
            column = f"line {line}, column {problem.column}" if line > 1 else f"column {problem.column}"
            where = f" at {column} (byte {self._start_offset + problem.byte})"
        if problem.detail == _TRUNCATED:
            ends = f"the input ends inside it{where and ','}{where}"
            message = f"truncated JSON document (from line {start}): {ends}"
        else:
            detail = problem.detail.removeprefix(_MALFORMED)
            message = f"malformed JSON document (from line {start}): {detail}{where}"
        label = self._label_of_invalid(document)
        self.invalid[label] = self.invalid.get(label, 0) + 1
        self._on_invalid(InvalidMessage(start, label, "$", message))

    def _setup_tag_probe(self) -> None:
        tags = union_tags(self._type)
        if tags is None:  # not a union, or its members are untagged or tagged on different fields
            return
        tag_field, members = tags
        self._tag_field = tag_field
        self._tag_labels = {tag: member.__name__ for tag, member in members.items()}

    def _label_of_invalid(self, line: bytes) -> str:
        """The type an invalid message claims to be: its tag's member for a union."""
        if not is_union(self._type):
            return self.type_name
        if not self._tag_field:
            return UNKNOWN
        tag = frame_tag(line, fields=(self._tag_field,))  # None when unreadable
        return self._tag_labels.get(tag, UNKNOWN)


def _is_message_line(line: bytes) -> bool:
    """Whether ``line`` is a JSON object on its own, starting at its first column: an NDJSON
    message (the lines inside a pretty-printed document are indented, or not complete)."""
    if line[:1] != b"{":
        return False
    try:
        msgspec.json.decode(line)
    except DECODE_ERRORS:
        return False
    return True


def abstract_base_union(message_type: Any) -> tuple[str, list[str]] | None:
    """``(union, members)`` when ``message_type`` is an abstract base of a message union.

    An abstract base (``protocol.Task``, ``inference.WorkerResponseBase``, ...) is a struct
    class that is no union's member but the base of some members of a registered union: it is
    never sent on its own, and decoding as it accepts any tag, or none. ``union`` is the dotted
    name of that union, ``members`` the dotted names of its members that subclass the base.
    ``None`` for any other type.
    """
    if not isinstance(message_type, type):
        return None
    registered = unions()
    if any(message_type in typing.get_args(union) for union in registered.values()):
        return None
    for name, union in registered.items():
        members = [m for m in typing.get_args(union) if issubclass(m, message_type)]
        if members:
            return name, [message_type_name(m) for m in members]
    return None


def _type_name(message_type: Any) -> str:
    if is_union(message_type):
        try:
            return message_type_name(message_type).rpartition(".")[2]
        except UnknownMessageTypeError:  # not a registered union: named by its members
            return " | ".join(m.__name__ for m in typing.get_args(message_type))
    return str(message_type.__name__)


def _member_names(message_type: Any) -> list[str]:
    """The type names a summary lists, in declaration order."""
    if is_union(message_type):
        return [m.__name__ for m in typing.get_args(message_type)]
    return [str(message_type.__name__)]
