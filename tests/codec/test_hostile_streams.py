"""Hostile input for the stream decoders and the limits: NDJSON ``decode_lines`` /
``iter_lines``, msgpack ``decode_frames`` / ``iter_frames``, ``SSEParser.feed``,
``max_frame_size`` and memory.

Each stream decoder is checked against a plain reference (per-line decode, a straightforward
length-prefix splitter, a whole-stream WHATWG event-stream parser): same messages, or the
documented ``FrameDecodeError`` where the reference finds an error, never another exception.
Limits are checked for what they cost: an oversized frame is rejected without calling the
decoder and without memory proportional to its announced size; a 50 MB string decodes with
about one copy; slow-loris streams and floods of tiny lines are parsed in linear time.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError, JsonCodec, MsgpackCodec, SSEEvent, SSEParser
from oasst_shared.schemas import inference
from tests.support.hostile import (
    CODECS,
    Failed,
    attempt,
    factory_only_difference,
    frame_decode_error_is_well_formed,
    mutated,
)
from tests.support.hostile_streams import (
    SSE_PIECES,
    check_ndjson,
    chunked,
    feed_all,
    reference_frames,
    reference_sse,
)
from tests.support.strategies import instances

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
NAMES = st.sampled_from(list(CODECS))
MiB = 1024 * 1024


# ----------------------------------------------------------------------------------- NDJSON


@st.composite
def ndjson_streams(draw: st.DrawFn, name: str) -> bytes:
    json_codec, _, union = CODECS[name]
    line = st.one_of(
        instances(union).map(json_codec.encode),
        mutated(union, json_codec.encode),
        st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0c", b"\x0b", b"{}", b"[]", b"null", b"\xff"]),
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    )
    lines = draw(st.lists(line, max_size=6))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return ending.join(lines) + draw(st.sampled_from([b"", ending]))


@pytest.mark.parametrize("name", list(CODECS))
def test_decode_lines_agrees_with_per_line_decoding(name: str) -> None:
    @FUZZ
    @given(ndjson_streams(name))
    def check(data: bytes) -> None:
        check_ndjson(name, data)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            check_ndjson(name, data.decode("utf-8", "surrogateescape"))  # str with lone surrogates
        else:
            check_ndjson(name, text)
        check_ndjson(name, bytes(memoryview(data)))

    check()


@pytest.mark.parametrize("blank", ["\x1f\x1e", "\u2028", "\xa0", "\x85", "\u3000"])
def test_only_ascii_whitespace_makes_a_line_blank(blank: str) -> None:
    """Found by fuzz_decode_lines: str lines were blank by ``str.strip()`` (Unicode
    whitespace) in ``iter_lines`` and for str input with a surrogate, while bytes input
    counts only ASCII whitespace; the same document was skipped or refused by input type."""
    pong = '{"response_type": "pong"}'
    for data in (f"{pong}\n{blank}\n", f"{pong}\n{blank}\n\ud800"):
        with pytest.raises(FrameDecodeError, match=r"^line 2: "):
            codec.worker_response.decode_lines(data)
    with pytest.raises(FrameDecodeError, match=r"^line 2: "):
        codec.worker_response.decode_lines(f"{pong}\n{blank}\n".encode())
    with pytest.raises(FrameDecodeError):
        list(codec.worker_response.iter_lines([pong, blank]))
    with pytest.raises(FrameDecodeError):
        list(codec.worker_response.iter_lines([pong.encode(), blank.encode()]))
    for ascii_blank in (" \t\r", "\x0b\x0c"):
        assert len(codec.worker_response.decode_lines(f"{pong}\n{ascii_blank}\n{pong}")) == 2
        assert len(list(codec.worker_response.iter_lines([pong, ascii_blank, pong + "\r\n"]))) == 2


def test_decode_lines_names_the_first_bad_line_in_str_input() -> None:
    good = '{"response_type": "pong"}'
    text = "\n".join([good, "{", good, '{"response_type": "\ud800"}'])
    with pytest.raises(FrameDecodeError, match=r"^line 2: .*(malformed|truncated)"):
        codec.worker_response.decode_lines(text)
    text = "\n".join([good, '{"response_type": "\ud800"}', "{"])
    with pytest.raises(FrameDecodeError, match=r"^line 2: .*lone surrogate"):
        codec.worker_response.decode_lines(text)


# ------------------------------------------------------------------- msgpack length framing


@st.composite
def msgpack_streams(draw: st.DrawFn, name: str) -> bytes:
    _, msgpack_codec, union = CODECS[name]

    def framed(payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + payload

    part = st.one_of(
        instances(union).map(lambda obj: framed(msgpack_codec.encode(obj))),
        mutated(union, msgpack_codec.encode).map(framed),
        st.binary(max_size=12),  # garbage: random length prefixes, short tails
        st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x10\x01", b"\x00\x00\x10\x00"]),
    )
    return b"".join(draw(st.lists(part, max_size=5)))


@pytest.mark.parametrize("name", list(CODECS))
def test_msgpack_framing_agrees_with_a_plain_splitter(name: str) -> None:
    limit = 4096
    small: MsgpackCodec[Any] = MsgpackCodec(CODECS[name][2], max_frame_size=limit)

    @FUZZ
    @given(msgpack_streams(name), st.lists(st.integers(0, 2000), max_size=10))
    def check(data: bytes, cuts: list[int]) -> None:
        expected, has_error = reference_frames(name, limit, data)
        whole = attempt(lambda: small.decode_frames(data), (FrameDecodeError,))
        if has_error:
            assert isinstance(whole, Failed), whole
            frame_decode_error_is_well_formed(whole.exc)
        else:
            assert not isinstance(whole, Failed), whole
            assert factory_only_difference(whole, expected)
        produced: list[Any] = []
        try:
            for message in small.iter_frames(chunked(data, cuts)):
                produced.append(message)
        except FrameDecodeError:
            assert has_error
        else:
            assert not has_error
        assert factory_only_difference(produced, expected[: len(produced)])
        assert len(produced) == len(expected) or has_error

    check()


# --------------------------------------------------------------------------------- SSE


@st.composite
def sse_streams(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(st.sampled_from(SSE_PIECES), max_size=30)))


@FUZZ
@given(sse_streams(), st.lists(st.integers(0, 200), max_size=12))
def test_sse_parser_agrees_with_the_whole_stream_reference(text: str, cuts: list[int]) -> None:
    expected = reference_sse(text)
    data = text.encode()
    assert feed_all(SSEParser(), chunked(data, cuts)) == expected  # bytes split anywhere
    str_cuts = sorted({min(c, len(text)) for c in cuts})
    str_chunks = [text[a:b] for a, b in zip([0, *str_cuts], [*str_cuts, len(text)], strict=True)]
    assert feed_all(SSEParser(), str_chunks) == expected


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=12))
def test_sse_parser_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    # errors="replace": what a browser does; the same events as the whole stream decoded
    assert feed_all(SSEParser(errors="replace"), chunked(data, cuts)) == reference_sse(
        data.decode("utf-8", "replace")
    )
    # strict: the documented error for invalid UTF-8, or the events of the valid text
    parser = SSEParser()
    try:
        events = feed_all(parser, chunked(data, cuts))
    except FrameDecodeError as exc:
        assert "invalid event stream" in str(exc)
        with pytest.raises(UnicodeDecodeError):
            data.decode()
    else:
        # only a sequence cut off at the very end may be invalid, and it is never dispatched
        assert events == reference_sse(data.decode("utf-8", "ignore"))


def test_sse_retry_with_thousands_of_digits_is_ignored_not_a_crash() -> None:
    """Regression: ``int()`` refuses strings over 4300 digits; a huge ``retry`` raised a plain
    ValueError out of ``feed``."""
    parser = SSEParser()
    events = parser.feed(b"retry: 1500\nretry: " + b"9" * 5000 + b"\ndata: x\n\n")
    assert events == [SSEEvent(data="x", retry=1500)]
    events = parser.feed(b"retry: " + b"0" * 5000 + b"42\ndata: y\n\n")
    assert events == [SSEEvent(data="y", retry=42)]


@pytest.mark.timeout(60)
def test_sse_slow_loris_line_is_linear() -> None:
    """Regression: a line arriving in small chunks was re-joined and re-scanned on every chunk
    (quadratic: a 16 MiB line took 16 s in 1 KiB chunks, over a minute in 256-byte ones)."""
    parser = SSEParser()
    line = b"data: " + b"x" * (codec.DEFAULT_MAX_FRAME_SIZE - 64)
    for i in range(0, len(line), 256):
        assert parser.feed(line[i : i + 256]) == []
    (event,) = parser.feed(b"\n\n")
    assert len(event.data) == codec.DEFAULT_MAX_FRAME_SIZE - 64 and event.data.strip("x") == ""


@pytest.mark.timeout(60)
def test_sse_flood_of_line_ends_in_one_chunk_is_linear() -> None:
    """Regression: every line searched the rest of the chunk for the other line end
    (quadratic: four million blank lines took minutes)."""
    parser = SSEParser()
    assert parser.feed(b"\n" * 4_000_000 + b"\r") == []
    assert parser.feed(b"\ndata: after\r\n\r\n") == [SSEEvent(data="after")]
    assert parser.feed(b"data: a\r" * 200_000 + b"\r") == [SSEEvent(data="\n".join(["a"] * 200_000))]


def test_sse_tiny_chunks_use_bounded_memory() -> None:
    parser = SSEParser()
    parser.feed(b"data: ")
    tracemalloc.start()
    try:
        for _ in range(100_000):
            parser.feed(b"y")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB  # a StringIO of 100,000 characters, not 100,000 objects
    assert parser.feed(b"\n\n") == [SSEEvent(data="y" * 100_000)]


def test_sse_event_size_limit_then_recovery() -> None:
    parser = SSEParser(max_event_size=1000)
    with pytest.raises(FrameDecodeError, match="max_event_size=1000"):
        for _ in range(100):
            parser.feed(b"data: " + b"z" * 50 + b"\n")
    with pytest.raises(FrameDecodeError, match="max_event_size=1000"):
        parser.feed(b"x" * 2000)  # one line, no line end
    assert parser.feed(b"\n\ndata: fine\n\n") == [SSEEvent(data="fine")]


# ------------------------------------------------------------------------ max_frame_size


class _SpyDecoder:
    """Stands for msgspec's decoder: records every call and refuses to decode."""

    calls: list[int]

    def __init__(self, *_: Any, **__: Any) -> None:
        self.calls = []

    def _called(self, data: Any) -> Any:
        self.calls.append(len(data))
        raise msgspec.DecodeError("spy")

    decode = _called
    decode_lines = _called


def _spied(monkeypatch: pytest.MonkeyPatch, limit: int) -> tuple[JsonCodec[Any], MsgpackCodec[Any]]:
    with monkeypatch.context() as patch:
        patch.setattr(msgspec.json, "Decoder", _SpyDecoder)
        patch.setattr(msgspec.msgpack, "Decoder", _SpyDecoder)
        return (
            JsonCodec(inference.WorkerResponse, max_frame_size=limit),
            MsgpackCodec(inference.WorkerResponse, max_frame_size=limit),
        )


def test_max_frame_size_rejects_before_the_decoder_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 100
    json_codec, msgpack_codec = _spied(monkeypatch, limit)
    json_spy, msgpack_spy = json_codec.decoder, msgpack_codec.decoder
    over = b"x" * (limit + 1)
    for data in (over, bytearray(over), memoryview(over), over.decode()):
        with pytest.raises(FrameDecodeError, match=f"exceeds max_frame_size={limit}"):
            json_codec.decode(data)
        with pytest.raises(FrameDecodeError, match="exceeds"):
            json_codec.decode_lines(data)
        if isinstance(data, bytes | str):
            with pytest.raises(FrameDecodeError, match="exceeds"):
                list(json_codec.iter_lines([data]))
    with pytest.raises(FrameDecodeError, match="exceeds"):
        json_codec.decode_lines("é" * (limit // 2 + 1))  # fewer characters than the limit, more bytes
    for data in (over, bytearray(over), memoryview(over)):
        with pytest.raises(FrameDecodeError, match="exceeds"):
            msgpack_codec.decode(data)
    announced = (limit + 1).to_bytes(4, "big")
    with pytest.raises(FrameDecodeError, match="exceeds"):
        msgpack_codec.decode_frames(announced + b"x" * (limit + 1))
    with pytest.raises(FrameDecodeError, match="exceeds"):
        list(msgpack_codec.iter_frames([announced[:2], announced[2:]]))  # rejected on the header
    assert json_spy.calls == [] and msgpack_spy.calls == []
    # at the limit the decoder is reached: the spies do see what gets through
    with pytest.raises(FrameDecodeError, match="spy"):
        json_codec.decode(b"x" * limit)
    with pytest.raises(FrameDecodeError, match="spy"):
        msgpack_codec.decode_frames(limit.to_bytes(4, "big") + b"x" * limit)
    assert json_spy.calls == [limit] and msgpack_spy.calls == [limit]


def _peak_during(call: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with contextlib.suppress(FrameDecodeError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_oversized_frame_costs_no_memory_proportional_to_its_size() -> None:
    """Regression for ``decode_lines``: it copied its input (``bytes(data)`` / ``str.encode``)
    before checking the size."""
    big = b"x" * (codec.DEFAULT_MAX_FRAME_SIZE + 1)
    for data in (big, bytearray(big), memoryview(big), big.decode()):
        assert _peak_during(lambda: codec.worker_response.decode(data)) < 64 * 1024  # noqa: B023
        assert _peak_during(lambda: codec.worker_response.decode_lines(data)) < 64 * 1024  # noqa: B023
    for data in (big, bytearray(big)):
        assert _peak_during(lambda: codec.worker_response_msgpack.decode(data)) < 64 * 1024  # noqa: B023
    # a header announcing 4 GiB, then the first bytes of it: rejected on the header
    header = b"\xff\xff\xff\xff" + b"x" * 1000
    assert _peak_during(lambda: codec.worker_response_msgpack.decode_frames(header)) < 64 * 1024
    assert _peak_during(lambda: list(codec.worker_response_msgpack.iter_frames([header] * 3))) < 64 * 1024


def test_msgpack_announced_lengths_allocate_nothing() -> None:
    """Inside an allowed frame, msgpack headers announcing 4G items or 4 GiB of text are cut
    short by the data actually present."""
    for header in (b"\xdd", b"\xdf", b"\xdb", b"\xc6", b"\xc9"):
        for prefix in (
            b"",
            b"\x82\xadresponse_type\xa5token\xa2zz",
            b"\x82\xadresponse_type\xa5token\xa4text",
        ):
            frame = prefix + header + b"\xff\xff\xff\xff" + b"\x01" * 16
            assert _peak_during(lambda: codec.worker_response_msgpack.decode(frame)) < 64 * 1024  # noqa: B023


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_fifty_megabyte_string_decodes_with_a_few_copies() -> None:
    """Measured: an ASCII string decodes with one copy (the result), a non-ASCII one with two
    (CPython's UTF-8 decoder); the stream framings add one copy of the frame each."""
    size = 50_000_000
    text = "x" * (size - 2) + "\u00e9"  # ends in a two-byte character
    expected = inference.TokenResponse(request_id="r", text=text, token_id=1)
    frame = codec.worker_response.encode(expected)
    escaped = b'{"response_type": "token", "text": "' + b"\\n" * (size // 2) + b'", "token_id": 1}'
    packed = codec.worker_response_msgpack.encode(expected)
    stream = codec.worker_response_msgpack.encode_frames([expected])
    json_codec: JsonCodec[Any] = JsonCodec(inference.WorkerResponse, max_frame_size=64 * MiB)
    msgpack_codec: MsgpackCodec[Any] = MsgpackCodec(inference.WorkerResponse, max_frame_size=64 * MiB)

    def measure(call: Callable[[], Any], copies: float, want: Any = expected) -> None:
        result: list[Any] = []
        peak = _peak_during(lambda: result.append(call()))
        assert peak < copies * size, f"{peak / size:.2f} copies"
        got = result[0][0] if isinstance(result[0], list) else result[0]
        assert got == want  # and the right value
        result.clear()

    measure(lambda: inference.TokenResponse.parse_raw(frame), 2.3)
    measure(lambda: json_codec.decode(frame), 2.3)
    measure(lambda: json_codec.decode_lines(frame), 2.3)
    # str input: msgspec reads the str's UTF-8 form, which CPython builds and caches in it
    frame_text = frame.decode()
    measure(lambda: json_codec.decode(frame_text), 3.3)
    measure(lambda: msgpack_codec.decode(packed), 2.3)
    # the stream framing copies each frame out of its buffer once
    measure(lambda: msgpack_codec.decode_frames(stream), 3.3)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    measure(lambda: list(msgpack_codec.iter_frames(chunks)), 3.3)
    newlines = inference.TokenResponse(text="\n" * (size // 2), token_id=1)
    measure(lambda: json_codec.decode(escaped), 1.3, newlines)
    # SSE: the event's data is the frame's text, then the frame decodes from it
    sse = codec.sse_frame(expected)
    events: list[SSEEvent] = []
    assert _peak_during(lambda: events.extend(SSEParser(max_event_size=64 * MiB).feed(sse))) < 4.3 * size
    assert json_codec.decode(events[0].data) == expected
    # forwarding the frame unchanged: the JSON check builds nothing, the UTF-8 check of the
    # non-ASCII text one short-lived str, the event one copy
    forwarded: list[bytes] = []
    assert _peak_during(lambda: forwarded.append(codec.sse_frame_raw(frame))) < 2.3 * size
    assert forwarded[0] == sse


@pytest.mark.parametrize("nesting", [b"[", b'{"a":'], ids=["arrays", "objects"])
def test_sse_frame_raw_on_absurd_nesting_is_a_clear_error(nesting: bytes) -> None:
    """A relay forwarding a hostile frame gets a ValueError, not a RecursionError."""
    closing = b"]" if nesting == b"[" else b"}"
    data = nesting * 200_000 + b"1" + closing * 200_000
    with pytest.raises(ValueError, match="the data is not one JSON document: Input nested too deeply"):
        codec.sse_frame_raw(data)


def test_any_typed_containers_memory_amplification_is_bounded() -> None:
    """Documented, not fixed: an ``Any`` field decodes each empty msgpack array (one byte) into
    a Python list (about 60 bytes), so a frame of ``max_frame_size`` can cost ~60 times its
    size; the same in JSON (3 bytes per ``[],``) about 20 times. A server that accepts
    untrusted msgpack should lower ``max_frame_size`` accordingly."""
    param = b"\x85\xa4name\xa1p\xa3in_\xa1q\xabdescription\xa1d\xa8required\xc3\xa7schema_"
    count = 200_000
    frame = param + b"\xdd" + count.to_bytes(4, "big") + b"\x90" * count
    packed_codec: MsgpackCodec[Any] = MsgpackCodec(inference.PluginOpenAPIParameter)
    result: list[Any] = []
    peak = _peak_during(lambda: result.append(packed_codec.decode(frame)))
    assert len(result[0].schema_) == count
    assert peak < 80 * len(frame)
    doc = (
        b'{"name": "p", "in_": "q", "description": "d", "required": true, "schema_": ['
        + b"[]," * count
        + b"[]]}"
    )
    result.clear()
    peak = _peak_during(lambda: result.append(inference.PluginOpenAPIParameter.parse_raw(doc)))
    assert len(result[0].schema_) == count + 1
    assert peak < 30 * len(doc)


def _lines(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield codec.worker_response.encode(inference.TokenResponse(text=str(i), token_id=i))


def test_iter_lines_holds_one_line_at_a_time() -> None:
    lines = list(_lines(20_000))

    def consume() -> int:
        count = 0
        for _ in codec.worker_response.iter_lines(iter(lines)):
            count += 1
        return count

    assert _peak_during(consume) < 64 * 1024
    assert consume() == 20_000
