from __future__ import annotations

import json
import threading
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError, JsonCodec, MsgpackCodec, SSEEvent, SSEParser
from oasst_shared.schemas import inference, protocol
from tests.support.hostile_streams import feed_all
from tests.support.strategies import instances

JSON_CODECS = {
    "WorkerRequest": (codec.worker_request, codec.worker_request_msgpack, inference.WorkerRequest),
    "WorkerResponse": (codec.worker_response, codec.worker_response_msgpack, inference.WorkerResponse),
    "AnyTask": (codec.any_task, codec.any_task_msgpack, protocol.AnyTask),
    "AnyInteraction": (codec.any_interaction, codec.any_interaction_msgpack, protocol.AnyInteraction),
}

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _members(union: Any) -> tuple[type, ...]:
    return typing.get_args(union)


def token(i: int = 0, request_id: str | None = "req-1") -> inference.TokenResponse:
    return inference.TokenResponse(request_id=request_id, text=f" tok{i}", log_prob=-0.25, token_id=i)


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", list(JSON_CODECS))
def test_every_union_member_round_trips_in_every_framing(name: str) -> None:
    json_codec, msgpack_codec, union = JSON_CODECS[name]
    members = _members(union)

    @SETTINGS
    @given(st.lists(st.one_of(*[instances(m) for m in members]), min_size=1, max_size=4))
    def check(objs: list[Any]) -> None:
        for obj in objs:
            frame = json_codec.encode(obj)
            back = json_codec.decode(frame)
            assert type(back) is type(obj) and back == obj
            assert json_codec.decode(frame.decode()) == obj  # str input as well
            buf = bytearray(b"junk that must be replaced")
            json_codec.encode_into(obj, buf)
            assert bytes(buf) == frame
            assert msgpack_codec.decode(msgpack_codec.encode(obj)) == obj
            sse = codec.sse_frame(obj)
            assert sse == b"data: " + frame + b"\n\n"
            assert codec.sse_frame_raw(frame) == sse  # forwarding the frame gives the same event
            (event,) = SSEParser().feed(sse)
            assert json_codec.decode(event.data) == obj
        assert json_codec.decode_lines(json_codec.encode_lines(objs)) == objs
        assert list(json_codec.iter_lines(json_codec.encode_lines(objs).splitlines())) == objs
        assert msgpack_codec.decode_frames(msgpack_codec.encode_frames(objs)) == objs

    check()


def test_every_member_type_is_covered_by_the_unions() -> None:
    assert len(_members(inference.WorkerRequest)) == 6
    assert len(_members(inference.WorkerResponse)) == 9
    assert len(_members(protocol.AnyTask)) == 15
    assert len(_members(protocol.AnyInteraction)) == 4


def test_encode_is_the_reference_document() -> None:
    frame = codec.worker_response.encode(token(3))
    assert orjson.loads(frame) == {
        "request_id": "req-1",
        "response_type": "token",
        "text": " tok3",
        "log_prob": -0.25,
        "token_id": 3,
    }


def test_encode_into_offset_and_append() -> None:
    buf = bytearray(b"PREFIX")
    codec.worker_response.encode_into(token(1), buf, len(buf))
    assert buf.startswith(b"PREFIX") and orjson.loads(buf[6:])["token_id"] == 1
    codec.worker_response.encode_into(token(2), buf, -1)
    assert buf.count(b"response_type") == 2


def test_frame_writer_reuses_its_buffer() -> None:
    writer = codec.worker_response.writer()
    first = writer.json(token(1))
    assert orjson.loads(first)["token_id"] == 1
    second = writer.json(token(2))
    assert second is first  # same buffer, overwritten
    assert orjson.loads(second)["token_id"] == 2
    sse = writer.sse(token(3), event="token")
    assert bytes(sse).startswith(b"event: token\ndata: {") and bytes(sse).endswith(b"}\n\n")


def test_sse_frame_event_name_cannot_break_framing() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        codec.sse_frame(token(), event="x\ndata: injected")


def test_sse_frame_text_with_newlines_stays_one_data_line() -> None:
    obj = inference.TokenResponse(text="line1\nline2\r\n\u2028", token_id=1)
    frame = codec.sse_frame(obj)
    assert frame.count(b"\n") == 2 and frame.endswith(b"\n\n")
    (event,) = SSEParser().feed(frame)
    assert codec.worker_response.decode(event.data) == obj


@pytest.mark.parametrize(
    "given",
    [b'{"response_type": "token"}', bytearray(b"{}"), memoryview(b"{}"), {"a": 1}, "{}", None, [token()]],
    ids=["bytes", "bytearray", "memoryview", "dict", "str", "None", "list"],
)
def test_sse_frame_encodes_a_message_struct_and_nothing_else(given: Any) -> None:
    """msgspec would encode bytes as a base64 string in the event; a dict or list would pass
    unchecked. Both encoders refuse anything but a struct, naming what they were given."""
    kind = type(given).__name__
    with pytest.raises(TypeError, match=f"sse_frame encodes a message struct, got {kind}") as info:
        codec.sse_frame(given)
    assert ("sse_frame_raw" in str(info.value)) == isinstance(given, (bytes, bytearray, memoryview))
    with pytest.raises(TypeError, match=f"FrameWriter.sse encodes a message struct, got {kind}"):
        codec.worker_response.writer().sse(given)


def test_sse_frame_raw_forwards_a_peeked_frame_unchanged() -> None:
    """A relay reads the tag and request_id, then forwards the worker's bytes as the event's
    data: exactly those bytes, whitespace and key order included."""
    text = '{"response_type": "token", "request_id": "r1", "text": " caf\u00e9 \\n", "token_id": 5}'
    frame = text.encode()
    assert codec.peek_worker_response(frame).request_id == "r1"
    for data in (frame, bytearray(frame), memoryview(frame)):
        out = codec.sse_frame_raw(data, event="token")
        assert out == b"event: token\ndata: " + frame + b"\n\n"
        (event,) = SSEParser().feed(out)
        assert event.event == "token" and event.data == text
    assert codec.sse_frame_raw(frame) == b"data: " + frame + b"\n\n"
    writer = codec.worker_response.writer()
    assert bytes(writer.sse_raw(frame, event="token")) == b"event: token\ndata: " + frame + b"\n\n"
    assert bytes(writer.sse_raw(b"[1]")) == b"data: [1]\n\n"  # the writer's buffer is reused


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":\n 1}', "line break at byte 5"),
        (b'{"a": 1}\r', "line break at byte 8"),
        (b'{"a": 1}\n', "line break at byte 8"),
        (b'{"a": 1} {"b": 2}', "not one JSON document: JSON is malformed: trailing characters"),
        (b'{"a": ', "not one JSON document: Input data was truncated"),
        (b"", "not one JSON document: Input data was truncated"),
        (b"data: {}", "not one JSON document: JSON is malformed: invalid character at column 1"),
        (b'{"a": "\xff"}', r"not one JSON document: Invalid UTF-8: invalid start byte at column 8 \(byte 7"),
    ],
    ids=["newline", "cr", "trailing-newline", "two-documents", "truncated", "empty", "not-json", "bad-utf8"],
)
def test_sse_frame_raw_refuses_what_is_not_one_line_of_json(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"sse_frame_raw: the data (holds a |is )?{message}"):
        codec.sse_frame_raw(data)
    with pytest.raises(ValueError, match=f"FrameWriter.sse_raw: the data (holds a |is )?{message}"):
        codec.worker_response.writer().sse_raw(data)


@pytest.mark.parametrize("given", [token(), "{}", None], ids=["struct", "str", "None"])
def test_sse_frame_raw_refuses_anything_but_bytes(given: Any) -> None:
    kind = type(given).__name__
    with pytest.raises(TypeError, match=f"sse_frame_raw forwards JSON bytes, got {kind}") as info:
        codec.sse_frame_raw(given)
    assert ("with sse_frame" in str(info.value)) == isinstance(given, msgspec.Struct)


# -------------------------------------------------------------------------------- envelopes


def test_envelope_tags_are_exactly_the_union_tags() -> None:
    response_tags = {cls.response_type for cls in _members(inference.WorkerResponse)}
    request_tags = {cls.request_type for cls in _members(inference.WorkerRequest)}
    response_envelopes = typing.get_args(codec.WorkerResponseEnvelopes)
    request_envelopes = typing.get_args(codec.WorkerRequestEnvelopes)
    assert {env.response_type for env in response_envelopes} == response_tags
    assert {env.request_type for env in request_envelopes} == request_tags
    assert all(issubclass(env, codec.WorkerResponseEnvelope) for env in response_envelopes)
    assert all(issubclass(env, codec.WorkerRequestEnvelope) for env in request_envelopes)
    # only the routing field is decoded
    assert all(env.__struct_fields__ == ("request_id",) for env in response_envelopes)
    assert all(env.__struct_fields__ == ("id",) for env in request_envelopes)


PEEKS: dict[str, tuple[JsonCodec[Any], Callable[[bytes], Any], tuple[str, str]]] = {
    "responses": (codec.worker_response, codec.peek_worker_response, ("response_type", "request_id")),
    "requests": (codec.worker_request, codec.peek_worker_request, ("request_type", "id")),
}


@pytest.mark.parametrize("direction", list(PEEKS))
def test_peek_agrees_with_full_decode(direction: str) -> None:
    json_codec, peek, routed = PEEKS[direction]

    @SETTINGS
    @given(instances(json_codec.type))
    def check(obj: Any) -> None:
        frame = json_codec.encode(obj)
        env, full = peek(frame), json_codec.decode(frame)
        assert [getattr(env, field) for field in routed] == [getattr(full, field) for field in routed]

    check()


def test_peek_reads_reference_key_order() -> None:
    # The reference's .json() writes request_id before response_type.
    frame = b'{"request_id": "abc", "response_type": "token", "text": "x", "log_prob": null, "token_id": 5}'
    env = codec.peek_worker_response(frame)
    assert (env.response_type, env.request_id) == ("token", "abc")


@pytest.mark.parametrize(
    "frame",
    [
        b'{"request_id": "abc"}',
        b'{"response_type": "nope"}',
        b'{"response_type": "token", "request_id": 5}',
        b"{",
    ],
)
def test_peek_rejects_what_full_decode_rejects_at_envelope_level(frame: bytes) -> None:
    with pytest.raises(FrameDecodeError):
        codec.peek_worker_response(frame)
    with pytest.raises(FrameDecodeError):
        codec.worker_response.decode(frame)


# ----------------------------------------------------------------------------------- errors


def test_bad_frame_error_names_path_and_tag() -> None:
    frame = orjson.dumps({"response_type": "token", "request_id": "r", "text": "x", "token_id": "seven"})
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_response.decode(frame)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, msgspec.DecodeError)
    assert err.path == "$.token_id" and err.tag == "token"
    assert "$.token_id" in str(err) and "'token'" in str(err) and "inference.WorkerResponse" in str(err)
    assert err.size == len(frame)


def test_deep_path_in_work_request() -> None:
    from benchmarks.messages import work_request

    doc = orjson.loads(codec.worker_request.encode(work_request()))
    doc["thread"]["messages"][3]["role"] = "robot"
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_request.decode(orjson.dumps(doc))
    assert info.value.path == "$.thread.messages[3].role"
    assert info.value.tag == "work"


@pytest.mark.parametrize(
    ("frame", "tag"),
    [
        (b'{"response_type": "unknown_kind", "request_id": "r"}', "unknown_kind"),
        (b'{"request_id": "r", "text": "x", "token_id": 1}', None),
        (b"not json", None),
        (b'{"response_type": "token", "text": "x", "token_id": 1', None),
        (b"\xff\xfe", None),
        (b"", None),
    ],
)
def test_unknown_missing_or_malformed_frames(frame: bytes, tag: str | None) -> None:
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_response.decode(frame)
    assert info.value.tag == tag
    if b"response_type" not in frame and frame.startswith(b"{") and frame.endswith(b"}"):
        assert "response_type" in str(info.value)


def test_task_without_type_is_an_error_not_task_done() -> None:
    with pytest.raises(FrameDecodeError, match="type"):
        codec.any_task.decode(b'{"id": "8f4d0a5e-5b8e-4a6b-9d8b-2f9a7c1e3d4b"}')


def test_deep_nesting_is_a_frame_error_not_recursion_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    frame = b'{"name": "p", "in_": "query", "description": "d", "required": true, "schema_": ' + deep + b"}"
    param_codec: JsonCodec[inference.PluginOpenAPIParameter] = JsonCodec(inference.PluginOpenAPIParameter)
    with pytest.raises(FrameDecodeError, match="nested too deeply"):
        param_codec.decode(frame)
    packed_codec: MsgpackCodec[inference.PluginOpenAPIParameter] = MsgpackCodec(
        inference.PluginOpenAPIParameter
    )
    nested: Any = []
    for _ in range(20_000):
        nested = [nested]
    with pytest.raises(RecursionError):
        msgspec.msgpack.encode(nested)  # msgspec itself: the reason the codec must catch it
    packed = (
        b"\x85\xa4name\xa1p\xa3in_\xa1q\xabdescription\xa1d\xa8required\xc3\xa7schema_"
        + b"\x91" * 100_000
        + b"\x90"
    )
    with pytest.raises(FrameDecodeError, match="nested too deeply"):
        packed_codec.decode(packed)


def test_max_frame_size_rejects_before_decoding() -> None:
    small: JsonCodec[inference.WorkerResponse] = JsonCodec(inference.WorkerResponse, max_frame_size=64)
    frame = codec.worker_response.encode(token())
    assert len(frame) > 64
    with pytest.raises(FrameDecodeError, match="exceeds max_frame_size=64"):
        small.decode(frame)
    assert small.max_frame_size == 64
    assert codec.worker_response.max_frame_size == codec.DEFAULT_MAX_FRAME_SIZE
    with pytest.raises(FrameDecodeError, match="exceeds"):
        small.decode_lines(frame + b"\n" + frame)


def test_decode_lines_names_the_bad_line() -> None:
    lines = (
        codec.worker_response.encode_lines([token(1), token(2)]) + b"\n\n" + b'{"response_type": "token"}\n'
    )
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_response.decode_lines(lines)
    assert str(info.value).startswith("line 5:")  # 2 frames, 2 blank lines, then the bad one
    assert "text" in str(info.value) and info.value.tag == "token"


def test_raw_decoder_is_msgspec_own() -> None:
    frame = codec.worker_response.encode(token())
    assert codec.worker_response.decoder.decode(frame) == token()
    with pytest.raises(msgspec.ValidationError):
        codec.worker_response.decoder.decode(b'{"response_type": "zzz"}')


# --------------------------------------------------------------------------- msgpack framing


@SETTINGS
@given(st.lists(instances(inference.WorkerResponse), min_size=1, max_size=5), st.data())
def test_msgpack_stream_in_arbitrary_chunks(objs: list[Any], data: st.DataObject) -> None:
    stream = codec.worker_response_msgpack.encode_frames(objs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert list(codec.worker_response_msgpack.iter_frames(chunks)) == objs


def test_msgpack_stream_errors() -> None:
    stream = codec.worker_response_msgpack.encode_frames([token(1), token(2)])
    with pytest.raises(FrameDecodeError, match="incomplete frame"):
        codec.worker_response_msgpack.decode_frames(stream[:-3])
    with pytest.raises(FrameDecodeError, match="ended inside a frame"):
        list(codec.worker_response_msgpack.iter_frames([stream[:-1]]))
    small: MsgpackCodec[inference.WorkerResponse] = MsgpackCodec(inference.WorkerResponse, max_frame_size=10)
    with pytest.raises(FrameDecodeError, match="exceeds max_frame_size=10"):
        small.decode_frames(b"\xff\xff\xff\xff")  # announced 4 GiB: rejected without waiting for it
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_response_msgpack.decode(msgspec.msgpack.encode({"response_type": "token", "text": 1}))
    assert info.value.tag == "token" and info.value.path == "$.text"


# ------------------------------------------------------------------------------ SSE parser

SSE_STREAM = (
    b"\xef\xbb\xbf: a comment first\r\n"
    + codec.sse_frame(token(1))
    + b'event: token\r\nid: 7\r\ndata: {"a": 1,\r\n'
    + b'data:  "b": "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}\r\n\r\n'
    + b"retry: 1500\rdata: cr only\r\r"
    + b"data\n\n"  # a field with no colon: empty data line
    + b":keepalive\n\n"  # a comment alone dispatches nothing
    + b"event: ignored-without-data\n\n"
    + codec.sse_frame(token(2), event="token")
    + b"data: incomplete at the end"
)


def _expected_events() -> list[SSEEvent]:
    return [
        SSEEvent(data=codec.worker_response.encode(token(1)).decode()),
        SSEEvent(data='{"a": 1,\n "b": "\u00e9\u20ac\U0001f600"}', event="token", id="7"),
        SSEEvent(data="cr only", id="7", retry=1500),
        SSEEvent(data="", id="7", retry=1500),
        SSEEvent(data=codec.worker_response.encode(token(2)).decode(), event="token", id="7", retry=1500),
    ]


def test_sse_whole_stream() -> None:
    assert feed_all(SSEParser(), [SSE_STREAM]) == _expected_events()


def test_sse_every_single_split_point_and_byte_by_byte() -> None:
    expected = _expected_events()
    for cut in range(len(SSE_STREAM) + 1):
        assert feed_all(SSEParser(), [SSE_STREAM[:cut], SSE_STREAM[cut:]]) == expected, cut
    assert feed_all(SSEParser(), [SSE_STREAM[i : i + 1] for i in range(len(SSE_STREAM))]) == expected


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_sse_any_chunking(data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(SSE_STREAM)), max_size=20)))
    chunks = [SSE_STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(SSE_STREAM)], strict=True)]
    assert feed_all(SSEParser(), chunks) == _expected_events()


def test_sse_str_chunks_and_last_event_id() -> None:
    parser = SSEParser()
    events = parser.feed("id: 42\ndata: x\n\n")
    assert events == [SSEEvent(data="x", id="42")]
    assert parser.last_event_id == "42"


def test_sse_invalid_utf8_is_an_error_unless_replaced() -> None:
    with pytest.raises(FrameDecodeError, match="event stream"):
        SSEParser().feed(b"data: \xff\n\n")
    (event,) = SSEParser(errors="replace").feed(b"data: \xff\n\n")
    assert event.data == "\ufffd"


def test_sse_event_size_bound() -> None:
    parser = SSEParser(max_event_size=100)
    with pytest.raises(FrameDecodeError, match="max_event_size=100"):
        for _ in range(10):
            parser.feed(b"data: " + b"x" * 30 + b"\n")


# ------------------------------------------------------------------------------- threads


def test_eight_threads_encoding_at_once_produce_only_valid_frames() -> None:
    per_thread = 400
    start = threading.Barrier(8)

    def work(worker: int) -> list[bytes]:
        start.wait()
        writer = codec.worker_response.writer()
        buf = bytearray()
        frames: list[bytes] = []
        for i in range(per_thread):
            obj = inference.TokenResponse(request_id=f"w{worker}", text="x" * (i % 50), token_id=i)
            codec.worker_response.encode_into(obj, buf)
            frames.append(bytes(buf))
            frames.append(bytes(writer.json(obj)))
            frames.append(codec.sse_frame(obj)[6:-2])
            frames.append(codec.worker_response.encode(obj))
        return frames

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    for worker, frames in enumerate(results):
        assert len(frames) == per_thread * 4
        for n, frame in enumerate(frames):
            msg = codec.worker_response.decode(frame)
            assert isinstance(msg, inference.TokenResponse)
            assert msg.request_id == f"w{worker}" and msg.token_id == n // 4
            assert msg.text == "x" * (msg.token_id % 50)


def test_thread_encoders_are_per_thread() -> None:
    mine = codec.worker_response.encoder()
    assert codec.worker_response.encoder() is mine
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(codec.worker_response.encoder()))
    t.start()
    t.join()
    assert other[0] is not mine


def test_json_module_agrees_on_ndjson() -> None:
    lines = codec.worker_response.encode_lines([token(1), token(2)])
    assert [json.loads(line)["token_id"] for line in lines.splitlines()] == [1, 2]
    assert lines.endswith(b"\n")
