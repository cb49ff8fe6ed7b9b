"""The ``oasst-shared`` command line (also ``python -m oasst_shared``).

``validate`` checks captured JSON / NDJSON messages (one TYPE, then any number of FILEs)
against a message type, ``schema`` exports JSON Schema or OpenAPI components, ``types`` lists
the message type names. Exit status: 0 success (all messages valid), 1 invalid messages, 2
usage errors (unknown type, an abstract base as the type, unreadable file, bad option). The
benchmark suite is not part of the installed package: in a source checkout it is ``make
bench`` (``python -m benchmarks.report``).

Heavy modules (the schemas, msgspec) are imported by the command that needs them, so that
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Final

from oasst_shared import __version__

if TYPE_CHECKING:
    from oasst_shared.cli.validate import MessageValidator

__all__ = ["CliError", "build_parser", "main"]

PROG: Final = "oasst-shared"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
USAGE_ERROR: Final = 2


class CliError(Exception):
    """An error the command reports on one line of stderr, exiting with ``status``."""

    def __init__(self, message: str, status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------- helpers


def _resolve(name: str) -> Any:
    from oasst_shared.schemas._registry import UnknownMessageTypeError, resolve_message_type

    try:
        return resolve_message_type(name)
    except UnknownMessageTypeError as exc:
        raise CliError(f"{exc}; `{PROG} types` lists the valid names") from None


def _looks_like_a_file(name: str) -> bool:
    return name == "-" or os.path.exists(name) or "/" in name or name.endswith((".json", ".ndjson", ".jsonl"))


def _union_of_file(path: str) -> str | None:
    """The message union whose tag the file's first message carries, if it can be read."""
    from oasst_shared.codec._errors import frame_tag
    from oasst_shared.schemas._registry import union_tags, unions

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return None
    candidates = (head, head.lstrip().split(b"\n", 1)[0])  # one document, or NDJSON's first line
    for name, union in unions().items():
        tags = union_tags(union)
        if tags is not None and any(frame_tag(doc, fields=(tags[0],)) in tags[1] for doc in candidates):
            return name
    return None


def _resolve_validated(name: str) -> Any:
    """The TYPE of ``validate``: a message type that is sent on its own (not an abstract base)."""
    from oasst_shared.cli.validate import abstract_base_union
    from oasst_shared.schemas._registry import (
        UnknownMessageTypeError,
        message_type_name,
        resolve_message_type,
    )

    try:
        message_type = resolve_message_type(name)
    except UnknownMessageTypeError as exc:
        if not _looks_like_a_file(name):
            raise CliError(f"{exc}; `{PROG} types` lists the valid names") from None
        is_file = name != "-" and os.path.exists(name)
        what = "standard input" if name == "-" else "a file" if is_file else "a file name"
        example = (_union_of_file(name) if is_file else None) or "TYPE"
        raise CliError(
            f"{name!r} is {what}, not a message type: validate takes the TYPE first, then the FILEs "
            f"(`{PROG} validate TYPE [FILE ...]`, e.g. `{PROG} validate {example} {name} ...`); "
            f"`{PROG} types` lists the types"
        ) from None
    base = abstract_base_union(message_type)
    if base is not None:
        union, members = base
        examples = ", ".join(members[:2]) + (", ..." if len(members) > 2 else "")
        raise CliError(
            f"{message_type_name(message_type)} is an abstract base, never sent on its own (it accepts "
            f"any tag): validate with the union {union} (each message checked as the member its tag "
            f"names) or one concrete type ({examples})"
        )
    return message_type


def _write_json(document: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")


def _open_input(path: str) -> tuple[str, IO[bytes], int | None, bool]:
    """``(name for messages, binary stream, size if a regular file, close when done)``."""
    from oasst_shared.cli.validate import CHUNK_SIZE

    if path == "-":
        if sys.stdin is None:
            raise CliError("no standard input to read")
        stream: IO[bytes] = sys.stdin.buffer
        name, close = "<stdin>", False
    else:
        try:
            stream = open(path, "rb", buffering=CHUNK_SIZE)  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise CliError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        name, close = path, True
    try:
        info = os.fstat(stream.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
    except (OSError, ValueError):  # no file descriptor (an in-memory stream)
        size = None
    return name, stream, size, close


# --------------------------------------------------------------------------------- validate


class _Run:
    """What ``validate`` has seen over all its FILEs: counts per type and errors shown."""

    def __init__(self, max_errors: int | None) -> None:
        self.max_errors = max_errors
        self.shown = 0
        self.files = 0
        self.labels: list[str] = []
        self.valid: dict[str, int] = {}
        self.invalid: dict[str, int] = {}

    def add(self, validator: MessageValidator) -> None:
        self.files += 1
        self.labels = validator.labels
        for totals, counts in ((self.valid, validator.valid), (self.invalid, validator.invalid)):
            for label, n in counts.items():
                totals[label] = totals.get(label, 0) + n


def _cmd_validate(args: argparse.Namespace) -> int:
    message_type = _resolve_validated(args.type)
    if args.max_errors is not None and args.max_errors < 0:
        raise CliError("--max-errors must be >= 0")
    files: list[str] = args.files or ["-"]
    if files.count("-") > 1:
        raise CliError("standard input (-) can be read only once")
    run = _Run(args.max_errors)
    status = 0
    for path in files:
        try:
            interrupted, invalid = _validate_file(path, message_type, run)
        except CliError as exc:
            if len(files) == 1:
                raise
            sys.stdout.flush()
            sys.stderr.write(f"{PROG}: error: {exc}\n")
            status = USAGE_ERROR  # the other files are still validated
            continue
        if interrupted:
            return 130
        if invalid and not status:
            status = 1
    if len(files) > 1:
        unread = len(files) - run.files
        head = f"total: {_messages(run.valid, run.invalid)} in {run.files} files"
        if unread:
            head += f" ({unread} more not readable)"
        sys.stdout.write(_summary(head, run.labels, run.valid, run.invalid) + "\n")
        sys.stdout.flush()
    return status


def _validate_file(path: str, message_type: Any, run: _Run) -> tuple[bool, int]:
    """Validate one FILE, print its errors and summary; ``(interrupted, invalid messages)``."""
    from oasst_shared.cli.progress import Progress
    from oasst_shared.cli.validate import UNKNOWN, InvalidMessage, MessageValidator, read_line_batches

    source, stream, size, close = _open_input(path)
    out = sys.stdout
    progress = Progress(sys.stderr, size, enabled=sys.stderr.isatty())
    shown_before = run.shown

    def on_invalid(error: InvalidMessage) -> None:
        if run.max_errors is not None and run.shown >= run.max_errors:
            return
        run.shown += 1
        progress.clear()
        what = "message" if error.label == UNKNOWN else error.label
        out.write(f"{source}:{error.line}: invalid {what} at {error.path}: {error.message}\n")

    validator = MessageValidator(message_type, on_invalid)
    interrupted = False
    try:
        for lines, done in read_line_batches(stream):
            validator.feed(lines)
            progress.update(done, validator.messages)
        validator.finish()
    except OSError as exc:
        progress.clear()
        raise CliError(f"cannot read {source!r}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.clear()
        if close:
            stream.close()

    run.add(validator)
    hidden = validator.invalid_count - (run.shown - shown_before)
    if hidden:
        out.write(f"{source}: {hidden} more invalid messages not shown (--max-errors {run.max_errors})\n")
    head = f"summary: {_messages(validator.valid, validator.invalid)} in {source}"
    out.write(_summary(head, validator.labels, validator.valid, validator.invalid, interrupted) + "\n")
    out.flush()
    return interrupted, validator.invalid_count


def _messages(valid: dict[str, int], invalid: dict[str, int]) -> str:
    total = sum(valid.values()) + sum(invalid.values())
    return f"{total} message{'' if total == 1 else 's'}"


def _summary(
    head: str, labels: list[str], valid: dict[str, int], invalid: dict[str, int], interrupted: bool = False
) -> str:
    """``head``, the valid / invalid counts, then the counts per type (``unknown`` last)."""
    from oasst_shared.cli.validate import UNKNOWN

    parts = []
    for label in [*labels, UNKNOWN]:
        counts = []
        if valid.get(label):
            counts.append(f"{valid[label]} valid")
        if invalid.get(label):
            counts.append(f"{invalid[label]} invalid")
        if counts:
            parts.append(f"{label}: {', '.join(counts)}")
    head += f", {sum(valid.values())} valid, {sum(invalid.values())} invalid"
    if interrupted:
        head += " (interrupted)"
    return "; ".join([head, *parts])


# ----------------------------------------------------------------------------- schema, types


def _cmd_schema(args: argparse.Namespace) -> int:
    from oasst_shared.schemas import json_schema as js

    selected = [_resolve(name) for name in args.types] or None
    if args.openapi:
        _write_json(
            {
                "openapi": "3.1.0",
                "info": {"title": "oasst-shared messages", "version": __version__},
                "components": js.openapi_components(selected),
            }
        )
    elif selected is not None and len(selected) == 1:
        _write_json({"$schema": JSON_SCHEMA_DIALECT, **js.json_schema(selected[0])})
    else:
        _write_json({"$schema": JSON_SCHEMA_DIALECT, "$defs": js.schema_definitions(selected)})
    return 0


def _cmd_types(args: argparse.Namespace) -> int:
    from oasst_shared.schemas._registry import message_types

    sys.stdout.write("".join(f"{name}\n" for name in message_types()))
    return 0


# ----------------------------------------------------------------------------------- parser

_MAIN_EPILOG = f"""\
examples:
  {PROG} validate inference.WorkerResponse capture.ndjson
  {PROG} schema inference.TokenResponse
  {PROG} schema --openapi > components.json
  {PROG} types

exit status: 0 success, 1 invalid messages, 2 usage error

The benchmarks are not installed with the package: in a source checkout, run `make bench`.
"""

_VALIDATE_EPILOG = f"""\
The first argument is the TYPE, then come the FILEs (any number; none, or -, reads stdin):
  {PROG} validate TYPE [FILE ...]
TYPE is a dotted name (`{PROG} types` lists them): a message struct or one of the unions
protocol.AnyTask, protocol.AnyInteraction, inference.WorkerRequest, inference.WorkerResponse.
A bare name (TokenResponse) works when one module defines it. The abstract bases
(protocol.Task, protocol.AbstractRatingTask, protocol.AbstractLabelTask, protocol.Interaction,
inference.WorkerRequestBase, inference.WorkerResponseBase) are refused (exit 2): they are
never sent on their own and would accept any tag; the error names the union to use instead.

Each FILE is NDJSON (one message per line, blank lines skipped), or one pretty-printed JSON
document (when the first line is not a complete JSON value; up to 32 MiB). A document that
is cut short is one invalid message ("truncated JSON document", with the line and column
where the input ends). Input is streamed: memory stays constant whatever the size.

Each invalid message is reported on stdout, and the run goes on to the end:
  FILE:LINE: invalid TYPE at $.PATH: MESSAGE
(TYPE is the member a union's tag names, or "message" when the tag is unreadable), then one
summary line per FILE with valid / invalid counts per type ("unknown" for unreadable tags),
and a "total:" line when there are several FILEs. Progress (large input, stderr on a
terminal) and errors of the command itself go to stderr.

examples:
  {PROG} validate inference.WorkerResponse ws-capture.ndjson
  {PROG} validate protocol.AnyTask task1.json task2.json task3.json
  redis-cli --raw LRANGE q 0 -1 | {PROG} validate inference.WorkerResponse -
  {PROG} validate protocol.AnyTask task.json --max-errors 20

exit status: 0 all messages valid, 1 some invalid, 2 usage error (unknown or abstract TYPE,
an unreadable FILE: the other FILEs are still validated)
"""

_SCHEMA_EPILOG = f"""\
With one TYPE: its JSON Schema (2020-12), components under $defs. With several or none (all
message types): a document whose $defs hold every component, unions under their alias
(AnyTask, WorkerResponse, ...). With --openapi: an OpenAPI 3.1 document whose
components.schemas hold them, referenced as #/components/schemas/NAME.

Property names and required sets follow the reference's schemas; a tag (type, request_type,
response_type) is an optional property with its value as default. Documented deviations are
listed in oasst_shared.schemas.json_schema.

examples:
  {PROG} schema inference.WorkerResponse
  {PROG} schema protocol.TaskRequest protocol.AnyTask
  {PROG} schema --openapi > oasst-components.json
"""

_TYPES_EPILOG = f"""\
examples:
  {PROG} types
  {PROG} types | grep Response
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``oasst-shared`` and its commands."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Open-Assistant shared messages: validate captures, export schemas.",
        epilog=_MAIN_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="validate JSON / NDJSON messages against a message type: one TYPE, then FILEs",
        description=(
            "Validate JSON or NDJSON messages (captures, files, stdin) against one message type:\n"
            "the first argument is the TYPE, all the others are FILEs."
        ),
        epilog=_VALIDATE_EPILOG,
        formatter_class=formatter,
    )
    validate.add_argument(
        "type",
        metavar="TYPE",
        help=f"the message type, always the first argument: e.g. inference.WorkerResponse ({PROG} types)",
    )
    validate.add_argument(
        "files",
        metavar="FILE",
        nargs="*",
        help="input files (any number), or - for stdin; default: stdin",
    )
    validate.add_argument(
        "--max-errors",
        metavar="N",
        type=int,
        default=None,
        help="report at most N invalid messages in detail, over all FILEs (all are counted); default: all",
    )
    validate.set_defaults(handler=_cmd_validate)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema (or OpenAPI components) of message types",
        description="Print the JSON Schema of message types (all when none is named).",
        epilog=_SCHEMA_EPILOG,
        formatter_class=formatter,
    )
    schema.add_argument("types", metavar="TYPE", nargs="*", help="message types (default: all)")
    schema.add_argument(
        "--openapi", action="store_true", help="print an OpenAPI 3.1 document with the components"
    )
    schema.set_defaults(handler=_cmd_schema)

    types = commands.add_parser(
        "types",
        help="list the message type names",
        description="List the message type names that validate and schema accept, one per line.",
        epilog=_TYPES_EPILOG,
        formatter_class=formatter,
    )
    types.set_defaults(handler=_cmd_types)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return int(handler(args))
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.status
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, without a second error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
