"""Plain references for the stream decoders, shared by ``tests/codec/test_hostile_streams.py``
and the fuzz harnesses: per-line decoding for NDJSON ``decode_lines`` / ``iter_lines``, a
straightforward length-prefix splitter for msgpack ``decode_frames`` / ``iter_frames``, a
whole-stream WHATWG event-stream parser for ``SSEParser.feed``, and the pieces SSE streams are
drawn from.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from oasst_shared.codec import FrameDecodeError, SSEEvent, SSEParser
from tests.support.hostile import (
    CODECS,
    MSGSPEC_ERRORS,
    Failed,
    attempt,
    factory_only_difference,
    frame_decode_error_is_well_formed,
)

__all__ = [
    "SSE_PIECES",
    "check_ndjson",
    "chunked",
    "feed_all",
    "reference_frames",
    "reference_lines",
    "reference_sse",
]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (clamped to its length, deduplicated): the pieces, in order."""
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def reference_lines(name: str, lines: list[Any]) -> tuple[list[Any], int | None]:
    """Each non-blank line decoded on its own by msgspec: the messages, and the number of the
    first line that is not one (or None)."""
    decoder = CODECS[name][0].decoder
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip(b" \t\n\r\x0b\x0c" if isinstance(line, bytes) else " \t\n\r\x0b\x0c"):
            continue  # ASCII whitespace only, for str lines too
        got = attempt(lambda: decoder.decode(line), MSGSPEC_ERRORS)  # noqa: B023
        if isinstance(got, Failed):
            return out, lineno
        out.append(got)
    return out, None


def check_ndjson(name: str, data: bytes | str) -> None:
    """``decode_lines`` and ``iter_lines`` of the union ``name`` agree with ``reference_lines``:
    the same messages, or a ``FrameDecodeError`` naming the first bad line."""
    json_codec = CODECS[name][0]
    lines: list[Any] = data.split("\n") if isinstance(data, str) else data.split(b"\n")
    expected, first_bad = reference_lines(name, lines)
    got = attempt(lambda: json_codec.decode_lines(data), (FrameDecodeError,))
    if first_bad is None:
        assert not isinstance(got, Failed), got
        assert factory_only_difference(got, expected)
    elif isinstance(got, Failed):
        assert str(got.exc).startswith(f"line {first_bad}: "), (first_bad, str(got.exc))
        assert len(str(got.exc)) < 700
    else:
        # msgspec's one-call splitter is more lenient than one-document-per-line (it accepts
        # two documents on one line): what it accepts is exactly what msgspec decodes
        raw = json_codec.decoder.decode_lines(data)
        assert factory_only_difference(got, raw)
    # iter_lines: the same messages, lazily; an error at the first bad line
    if isinstance(data, bytes):
        produced: list[Any] = []
        try:
            for message in json_codec.iter_lines(data.split(b"\n")):
                produced.append(message)
        except FrameDecodeError as exc:
            frame_decode_error_is_well_formed(exc)
            assert first_bad is not None
        else:
            assert first_bad is None
        assert factory_only_difference(produced, expected[: len(produced)])


def reference_frames(name: str, limit: int, data: bytes) -> tuple[list[Any], bool]:
    """The messages of a length-prefixed stream, split and decoded plainly, and whether the
    stream has an error (an oversized or bad frame, or an incomplete one at the end)."""
    union = CODECS[name][2]
    out = []
    pos = 0
    while len(data) - pos >= 4:
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size > limit or len(data) - pos - 4 < size:
            return out, True
        frame = data[pos + 4 : pos + 4 + size]
        got = attempt(lambda: msgspec.msgpack.decode(frame, type=union), MSGSPEC_ERRORS)  # noqa: B023
        if isinstance(got, Failed):
            return out, True
        out.append(got)
        pos += 4 + size
    return out, pos != len(data)


def reference_sse(text: str) -> list[SSEEvent]:
    """The WHATWG event-stream rules applied to a whole decoded stream, the plain way."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end: never complete
    events: list[SSEEvent] = []
    data: list[str] = []
    event, last_id, retry = "", None, None
    for line in lines:
        if not line:
            if data:
                events.append(
                    SSEEvent(data="\n".join(data), event=event or "message", id=last_id, retry=retry)
                )
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            # ours: absurd delays are ignored (see codec)
            retry = int(value) if len(value.lstrip("0")) <= 18 else retry
    return events


SSE_PIECES: list[str] = [
    "data",
    "data:",
    "data: ",
    "event:",
    "id:",
    "id: 7",
    "retry:",
    "retry: 15",
    "retry: 0001",
    "retry: " + "9" * 30,
    "retry: \u0661",  # an Arabic-Indic digit: not ASCII, ignored
    ":",
    ": comment",
    " ",
    "x",
    "\r",
    "\n",
    "\r\n",
    "\n\n",
    "\r\r",
    "\ufeff",
    "\0",
    "é",
    "\U0001f600",
    "\u2028",
    "data: {}",
]


def feed_all(parser: SSEParser, chunks: list[Any]) -> list[SSEEvent]:
    """Every event ``parser`` dispatches for ``chunks``, then closed."""
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    parser.close()
    return events
