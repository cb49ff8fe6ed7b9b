"""Hostile input for every message decoder: nothing crashes, hangs or lies.

Decoders: ``parse_raw`` / ``parse_obj`` and ``msgspec.json.decode(type=...)`` of every struct
of protocol, inference and model_configs; every union codec, JSON and MessagePack; the
envelope peeks. Inputs: random bytes; valid frames (from ``instances``) truncated, bit-flipped
and spliced with hostile snippets; every value of a valid document replaced in turn by a
value of another type (huge numbers, NaN/Infinity, lone surrogates, invalid UTF-8, 100,000
levels of nesting, ...); duplicate keys; raw surrogates in ``str`` input.

Every outcome is the right value (equal to what msgspec itself decodes, and surviving a round
trip; a replaced value reads back as what was sent) or the documented error (see
``tests/support/hostile.py``). The stream decoders (NDJSON, msgpack framing, SSE) and the
limits are in ``test_hostile_streams.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError, JsonCodec, MsgpackCodec
from oasst_shared.schemas import inference, protocol
from tests.support.hostile import (
    ALL_STRUCTS,
    CODECS,
    SNIPPETS,
    Failed,
    attempt,
    check_struct_json,
    check_union_json,
    check_union_msgpack,
    deep_array,
    deep_object,
    factory_only_difference,
    frame_decode_error_is_well_formed,
    mutated,
    numbers_equal,
)
from tests.support.strategies import instances

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
PER_STRUCT = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
EVERY_PATH = settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))

STRUCT_IDS = [cls.__name__ for cls in ALL_STRUCTS]
DEPTH = 100_000


# --------------------------------------------------------------- random and mutated frames


@pytest.mark.parametrize("cls", ALL_STRUCTS, ids=STRUCT_IDS)
def test_every_struct_survives_mutated_json(cls: Any) -> None:
    @PER_STRUCT
    @given(mutated(cls, msgspec.json.encode))
    def check(data: bytes) -> None:
        check_struct_json(cls, data)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = data.decode("utf-8", "surrogateescape")  # str input with lone surrogates
            assert isinstance(check_struct_json(cls, text), Failed)
        else:
            check_struct_json(cls, text)

    check()


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
def test_random_bytes_every_struct_and_codec(data: bytes) -> None:
    for cls in ALL_STRUCTS:
        check_struct_json(cls, data)
    for name in CODECS:
        check_union_json(name, data)
        check_union_msgpack(name, data)


@pytest.mark.parametrize("name", list(CODECS))
def test_union_codecs_survive_mutated_frames(name: str) -> None:
    json_codec, msgpack_codec, union = CODECS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutated(union, json_codec.encode), mutated(union, msgpack_codec.encode))
    def check(json_frame: bytes, msgpack_frame: bytes) -> None:
        check_union_json(name, json_frame)
        check_union_msgpack(name, msgpack_frame)
        check_union_msgpack(name, json_frame)  # the wrong format altogether
        check_union_json(name, msgpack_frame)

    check()


@pytest.mark.parametrize("name", list(CODECS))
def test_every_truncation_of_a_frame(name: str) -> None:
    json_codec, msgpack_codec, union = CODECS[name]

    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(union))
    def check(obj: Any) -> None:
        json_frame, msgpack_frame = json_codec.encode(obj), msgpack_codec.encode(obj)
        for cut in range(len(json_frame)):
            assert isinstance(check_union_json(name, json_frame[:cut]), Failed)
        for cut in range(len(msgpack_frame)):
            assert isinstance(check_union_msgpack(name, msgpack_frame[:cut]), Failed)
        assert check_union_json(name, json_frame) == obj
        assert check_union_msgpack(name, msgpack_frame) == obj

    check()


# ----------------------------------------------------------- every value, every wrong type

MUST_FAIL = object()
"""Expected outcome of a token that no field may accept."""

SENTINEL = "\x00HOSTILE\x00"


def _json_tokens() -> list[tuple[bytes, Any]]:
    """Raw JSON values to put at every path, with the value they must read back as when the
    decode succeeds (``MUST_FAIL``: it must not)."""
    return [
        (b"null", None),
        (b"true", True),
        (b"false", False),
        (b"0", 0),
        (b"-0", 0),
        (b"-1", -1),
        (b"1.5", 1.5),
        (b"1.0", 1.0),
        (b"1e-400", 0.0),  # underflows to zero, as in every JSON parser
        (b'""', ""),
        (b'"x"', "x"),
        (b"[]", []),
        (b"{}", {}),
        (b"[1, 2]", [1, 2]),
        (b'{"spam": 0.5}', {"spam": 0.5}),
        (b'"2024-01-01T00:00:00Z"', "2024-01-01T00:00:00Z"),
        (b'"8f4d0a5e-5b8e-4a6b-9d8b-2f9a7c1e3d4b"', "8f4d0a5e-5b8e-4a6b-9d8b-2f9a7c1e3d4b"),
        (b'"token"', "token"),
        (b'"\\ud83d\\ude00"', "\U0001f600"),  # a proper surrogate pair
        (b"18446744073709551615", 2**64 - 1),
        (b"18446744073709551616", 2**64),
        (b"-9223372036854775808", -(2**63)),
        (b"-9223372036854775809", -(2**63) - 1),
        (b"1" + b"0" * 400, 10**400),
        (b"1" * 5000, MUST_FAIL),  # beyond msgspec's integer range
        (b"1e400", MUST_FAIL),
        (b"-1e400", MUST_FAIL),
        (b"NaN", MUST_FAIL),
        (b"Infinity", MUST_FAIL),
        (b"-Infinity", MUST_FAIL),
        (b'"\\ud800"', MUST_FAIL),  # a lone surrogate, escaped
        (b'"\\udc00\\ud800"', MUST_FAIL),
        (b'"\xff"', MUST_FAIL),  # invalid UTF-8 inside a string
        (b'"\xed\xa0\x80"', MUST_FAIL),  # a surrogate encoded as UTF-8
        (b'"\xc0\xaf"', MUST_FAIL),  # overlong
        (b'"\xf4\x90\x80\x80"', MUST_FAIL),  # beyond U+10FFFF
        (b"[" * 200 + b"]" * 200, json.loads("[" * 200 + "]" * 200)),
        (deep_array(DEPTH), MUST_FAIL),
        (deep_object(DEPTH), MUST_FAIL),
        (b'{"a": ' + deep_array(DEPTH) + b', "b": 1}', MUST_FAIL),
    ]


JSON_TOKENS = _json_tokens()


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path of a parsed JSON document, the root first."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from paths(value, (*prefix, i))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: (replaced(v, rest, value) if k == head else v) for k, v in doc.items()}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(doc)]


def lookup(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def json_with_token_at(doc: Any, path: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """The document with a sentinel at ``path``, split around it."""
    text = json.dumps(replaced(doc, path, SENTINEL)).encode()
    marker = json.dumps(SENTINEL).encode()
    assert text.count(marker) == 1
    before, _, after = text.partition(marker)
    return before, after


def check_read_back(decoded: Any, path: tuple[Any, ...], expected: Any, token: bytes) -> None:
    """A document that decodes with ``token`` at ``path`` reads back the same value there."""
    assert expected is not MUST_FAIL, f"{token[:40]!r} at {path} was accepted: {decoded!r}"[:2000]
    actual = lookup(json.loads(msgspec.json.encode(decoded)), path)
    assert_read_back(expected, actual, token, path)


def assert_read_back(expected: Any, actual: Any, token: bytes, path: tuple[Any, ...]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict) and expected.keys() != actual.keys():
        # an object given for a struct whose fields all have defaults: unknown keys are
        # ignored, missing fields take their defaults; the keys it shares must read back
        shared = expected.keys() & actual.keys()
        assert all(numbers_equal(expected[k], actual[k]) for k in shared), (token[:40], path, actual)
        return
    assert numbers_equal(expected, actual), f"{token[:40]!r} at {path} read back as {actual!r}"[:2000]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", ALL_STRUCTS, ids=STRUCT_IDS)
def test_every_struct_wrong_value_at_every_path(cls: Any) -> None:
    @EVERY_PATH
    @given(instances(cls))
    def check(obj: Any) -> None:
        doc = json.loads(msgspec.json.encode(obj))
        assert check_struct_json(cls, json.dumps(doc)) == obj  # the harness itself is sound
        for path in paths(doc):
            before, after = json_with_token_at(doc, path)
            for token, expected in JSON_TOKENS:
                data = before + token + after
                decoded = check_struct_json(cls, data)
                if not isinstance(decoded, Failed):
                    check_read_back(decoded, path, expected, token)
                if expected is not MUST_FAIL and len(token) < 1000:
                    check_parse_obj_agrees(cls, data, decoded)

    check()


def check_parse_obj_agrees(cls: Any, data: bytes, decoded: Any) -> None:
    """``parse_obj`` of the parsed document agrees with ``parse_raw`` of the document."""
    ours = attempt(lambda: cls.parse_obj(json.loads(data)), (msgspec.DecodeError,))
    if isinstance(decoded, Failed):
        assert isinstance(ours, Failed), f"parse_raw failed ({decoded}) but parse_obj gave {ours!r}"
    else:
        assert not isinstance(ours, Failed), f"parse_raw gave {decoded!r} but parse_obj failed: {ours}"
        assert factory_only_difference(decoded, ours)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CODECS))
def test_union_codec_wrong_value_at_every_path(name: str) -> None:
    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(CODECS[name][2]))
    def check(obj: Any) -> None:
        doc = json.loads(msgspec.json.encode(obj))
        for path in paths(doc):
            before, after = json_with_token_at(doc, path)
            for token, expected in JSON_TOKENS:
                decoded = check_union_json(name, before + token + after)
                if not isinstance(decoded, Failed):
                    check_read_back(decoded, path, expected, token)

    check()


def _msgpack_tokens() -> list[tuple[bytes, Any]]:
    enc = msgspec.msgpack.encode
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [
        *[
            (enc(v), v)
            for v in (None, True, 0, -1, 1.5, "", "x", [], {}, 2**64 - 1, -(2**63), b"\x00bin", when)
        ],
        (enc(float("nan")), float("nan")),  # msgpack carries NaN and infinities
        (enc(float("inf")), float("inf")),
        (enc(msgspec.msgpack.Ext(5, b"ext")), msgspec.msgpack.Ext(5, b"ext")),
        (b"\xa1\xff", MUST_FAIL),  # str with invalid UTF-8
        (b"\xa3\xed\xa0\x80", MUST_FAIL),  # str holding a UTF-8-encoded surrogate
        (b"\xc1", MUST_FAIL),  # the one byte msgpack never uses
        (b"\xdd\xff\xff\xff\xff", MUST_FAIL),  # array32 announcing 4G items
        (b"\xdf\xff\xff\xff\xff", MUST_FAIL),  # map32 announcing 4G pairs
        (b"\xdb\xff\xff\xff\xff", MUST_FAIL),  # str32 announcing 4 GiB
        (b"\xc6\xff\xff\xff\xff", MUST_FAIL),  # bin32 announcing 4 GiB
        (b"\xc7\x03\xff\x00\x00\x00", MUST_FAIL),  # a timestamp extension of an invalid length
        (b"\x91" * DEPTH + b"\x90", MUST_FAIL),
        (b"\x81\xa1a" * DEPTH + b"\xc0", MUST_FAIL),
    ]


MSGPACK_TOKENS = _msgpack_tokens()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CODECS))
def test_union_msgpack_codec_wrong_value_at_every_path(name: str) -> None:
    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(CODECS[name][2]))
    def check(obj: Any) -> None:
        doc = msgspec.msgpack.decode(msgspec.msgpack.encode(obj))
        marker = msgspec.msgpack.encode(SENTINEL)
        for path in paths(doc):
            packed = msgspec.msgpack.encode(replaced(doc, path, SENTINEL))
            assert packed.count(marker) == 1
            before, _, after = packed.partition(marker)
            for token, expected in MSGPACK_TOKENS:
                decoded = check_union_msgpack(name, before + token + after)
                if isinstance(decoded, Failed):
                    continue
                assert expected is not MUST_FAIL, f"{token[:20]!r} at {path} accepted: {decoded!r}"
                actual = lookup(msgspec.msgpack.decode(msgspec.msgpack.encode(decoded)), path)
                assert_read_back(expected, actual, token, path)

    check()


class _Weird:
    def __repr__(self) -> str:
        return "Weird()"


class _StrSub(str):
    pass


class _IntSub(int):
    pass


def _python_tokens() -> list[Any]:
    """Python values ``parse_obj`` may be handed that JSON cannot carry."""
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    deep: Any = []
    for _ in range(DEPTH):
        deep = [deep]
    deep_dict: Any = {}
    for _ in range(DEPTH):
        deep_dict = {"a": deep_dict}
    return [
        float("nan"),
        float("inf"),
        2**200,
        -(2**200),
        "\ud800",
        b"bytes",
        bytearray(b"x"),
        (1, 2),
        {1, 2},
        frozenset(),
        Decimal("1.5"),
        Decimal("NaN"),
        1j,
        _Weird(),
        _StrSub("spam"),
        _IntSub(3),
        datetime(2024, 1, 1),
        UUID(int=1),
        protocol.TaskRequestType.random,
        inference.TokenResponse(text="x", token_id=1),
        cyclic,
        deep,
        deep_dict,
    ]


PY_TOKENS = _python_tokens()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", ALL_STRUCTS, ids=STRUCT_IDS)
def test_parse_obj_any_python_value_at_every_path(cls: Any) -> None:
    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
    @given(instances(cls))
    def check(obj: Any) -> None:
        doc = json.loads(msgspec.json.encode(obj))
        for path in paths(doc):
            for token in PY_TOKENS:
                # only ValidationError / DecodeError may come out, RecursionError never
                got = attempt(lambda: cls.parse_obj(replaced(doc, path, token)), (msgspec.DecodeError,))  # noqa: B023
                if isinstance(got, Failed):
                    continue
                assert isinstance(got, cls)  # an instance of a subclass is returned as it is
                # parse_obj passes ``Any`` values through untouched (a dict or list holding
                # them is copied one level): the very objects sent, not a deep copy. (A
                # struct whose fields all have defaults may take the dict, ignoring its keys.)
                value = _python_lookup(got, path)
                if any(token is t for t in PY_TOKENS[-3:]) and not isinstance(value, msgspec.Struct):
                    assert value is token or value == token

    check()


def _python_lookup(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(obj, msgspec.Struct):
            names = {f.encode_name: f.name for f in msgspec.structs.fields(obj)}
            obj = getattr(obj, names[key])
        else:
            obj = obj[key]
    return obj


# ------------------------------------------------------------------------- deep nesting


def _any_spots() -> list[tuple[Any, str]]:
    """Every struct field whose type holds ``Any`` somewhere (directly or in a container)."""
    import msgspec.inspect as mi

    def holds_any(info: Any) -> bool:
        if isinstance(info, mi.AnyType):
            return True
        if isinstance(info, mi.UnionType):
            return any(holds_any(t) for t in info.types)
        if isinstance(info, mi.ListType | mi.DictType):
            return holds_any(info.item_type if isinstance(info, mi.ListType) else info.value_type)
        return False

    spots = []
    for cls in ALL_STRUCTS:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        spots += [(cls, f.encode_name) for f in info.fields if holds_any(f.type)]
    return spots


ANY_SPOTS = _any_spots()


def test_the_any_spots_are_the_known_ones() -> None:
    assert {(cls.__name__, name) for cls, name in ANY_SPOTS} == {
        ("PluginOpenAPIParameter", "schema_"),
        ("PluginOpenAPIEndpoint", "payload"),
        ("PageResult", "items"),
        ("CachedStatsResponse", "stats"),
    }


@pytest.mark.parametrize(("cls", "field"), ANY_SPOTS, ids=[f"{c.__name__}.{f}" for c, f in ANY_SPOTS])
@pytest.mark.parametrize("deep", [deep_array(DEPTH), deep_object(DEPTH), b"[" * DEPTH, b'{"a":' * DEPTH])
def test_deep_nesting_at_every_any_spot(cls: Any, field: str, deep: bytes) -> None:
    doc = json.loads(msgspec.json.encode(_example(cls)))
    wrapped = {"payload": b'{"k": ' + deep + b"}", "items": b"[" + deep + b"]"}.get(field, deep)
    before, after = json_with_token_at(doc, (field,))
    data = before + wrapped + after
    with pytest.raises(msgspec.DecodeError, match=r"nested too deeply|malformed|truncated"):
        cls.parse_raw(data)
    with pytest.raises(msgspec.DecodeError):
        cls.parse_raw(data.decode())
    json_codec: JsonCodec[Any] = JsonCodec(cls)
    with pytest.raises(FrameDecodeError) as info:
        json_codec.decode(data)
    frame_decode_error_is_well_formed(info.value, data)
    with pytest.raises(FrameDecodeError):
        json_codec.decode_lines(data + b"\n")
    # and the same through msgpack
    packed_doc = msgspec.msgpack.encode(replaced(doc, (field,), SENTINEL))
    before_p, _, after_p = packed_doc.partition(msgspec.msgpack.encode(SENTINEL))
    packed_deep = b"\x91" * DEPTH + b"\x90"
    if field == "payload":
        packed_deep = b"\x81\xa1k" + packed_deep
    with pytest.raises(FrameDecodeError, match="nested too deeply"):
        MsgpackCodec(cls).decode(before_p + packed_deep + after_p)


def _example(cls: Any) -> Any:
    """A fixed valid instance (drawn once, deterministically)."""
    from hypothesis import find

    return find(instances(cls), lambda _: True, settings=settings(database=None, max_examples=10))


@pytest.mark.parametrize("deep", [deep_array(DEPTH), deep_object(DEPTH)], ids=["array", "object"])
@pytest.mark.parametrize("name", list(CODECS))
def test_deep_nesting_in_the_envelope_and_tag_path(name: str, deep: bytes) -> None:
    tag_field = {"WorkerRequest": "request_type", "WorkerResponse": "response_type"}.get(name, "type")
    frames = [
        deep,  # the frame itself
        b'{"' + tag_field.encode() + b'": ' + deep + b"}",  # the tag's value
        b'{"unknown": ' + deep + b', "' + tag_field.encode() + b'": "x"}',  # before the tag
        b'{"request_id": ' + deep + b', "id": ' + deep + b"}",  # the routed ids
        b'{"' + tag_field.encode() + b'": "token", "unknown": ' + deep + b"}",  # a skipped field
    ]
    for frame in frames:
        for data in (frame, frame.decode()):
            assert isinstance(check_union_json(name, data), Failed)
        for peek in (codec.peek_worker_response, codec.peek_worker_request):
            with pytest.raises(FrameDecodeError):
                peek(frame)


def test_parse_raw_and_parse_obj_never_leak_recursion_error() -> None:
    deep = deep_array(DEPTH)
    for cls in ALL_STRUCTS:
        for data in (deep, b'{"x": ' + deep + b"}", deep_object(DEPTH)):
            with pytest.raises(msgspec.DecodeError):
                cls.parse_raw(data)
    nested: Any = []
    for _ in range(DEPTH):
        nested = {"items": [nested]}
    for cls in ALL_STRUCTS:
        got = attempt(lambda: cls.parse_obj(nested), (msgspec.DecodeError,))  # noqa: B023
        assert isinstance(got, Failed | cls)


# ----------------------------------------------------------------- duplicate keys (msgspec)


def test_duplicate_keys_last_one_wins_everywhere() -> None:
    """msgspec keeps the last of duplicate keys (as ``json.loads`` does), for struct fields and
    for dict entries; parse_raw, msgspec and the codec agree."""
    frame = b'{"response_type": "token", "text": "first", "text": "last", "token_id": 1, "token_id": 2}'
    expected = inference.TokenResponse(text="last", token_id=2)
    assert inference.TokenResponse.parse_raw(frame) == expected
    assert msgspec.json.decode(frame, type=inference.TokenResponse) == expected
    assert codec.worker_response.decode(frame) == expected
    assert json.loads(frame)["text"] == "last"
    stats = b'{"active_by_lang": {"en": 1, "de": 2, "en": 3}}'
    assert protocol.SystemStats.parse_raw(stats).active_by_lang == {"en": 3, "de": 2}
    endpoint = json.loads(msgspec.json.encode(_example(inference.PluginOpenAPIEndpoint)))
    endpoint["payload"] = {"k": 1}
    data = json.dumps(endpoint).encode().replace(b'"payload": {"k": 1}', b'"payload": {"k": 1, "k": [2]}')
    assert inference.PluginOpenAPIEndpoint.parse_raw(data).payload == {"k": [2]}


def test_duplicate_routing_keys_peek_agrees_with_the_full_decode() -> None:
    frame = b'{"request_id": "a", "response_type": "token", "request_id": "b", "text": "x", "token_id": 1}'
    full = codec.worker_response.decode(frame)
    env = codec.peek_worker_response(frame)
    assert full.request_id == env.request_id == "b"
    assert check_union_json("WorkerResponse", frame) == full
    request = b'{"request_type": "ping", "id": "a", "id": "b"}'
    assert codec.worker_request.decode(request).id == codec.peek_worker_request(request).id == "b"


def test_duplicate_tags() -> None:
    """A repeated tag with the same value is accepted; with another value both the full decode
    and the envelope peek reject the frame (the envelope is a tagged union like the message)."""
    same = b'{"response_type": "token", "response_type": "token", "text": "x", "token_id": 1}'
    assert codec.worker_response.decode(same) == inference.TokenResponse(text="x", token_id=1)
    assert codec.peek_worker_response(same).response_type == "token"
    for first, second in (("token", "pong"), ("pong", "token")):
        frame = f'{{"response_type": "{first}", "response_type": "{second}", "text": "x", "token_id": 1}}'
        with pytest.raises(FrameDecodeError, match="Invalid value") as info:
            codec.worker_response.decode(frame)
        assert info.value.path == "$.response_type"
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(frame, type=inference.WorkerResponse)
        with pytest.raises(FrameDecodeError, match="Invalid value") as peeked:
            codec.peek_worker_response(frame)
        assert peeked.value.path == "$.response_type"
    task = b'{"type": "task_done", "type": "initial_prompt"}'
    with pytest.raises(FrameDecodeError, match="Invalid value"):
        codec.any_task.decode(task)


# ------------------------------------------------------------------- text: UTF-8 and surrogates


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"],
    ids=["ff", "cesu-surrogate", "overlong", "beyond-10ffff", "truncated", "lone-continuation"],
)
@pytest.mark.parametrize("where", ["text", "tag", "request_id", "unknown-field", "unknown-key"])
def test_invalid_utf8_is_a_frame_error(bad: bytes, where: str) -> None:
    """Regression: msgspec leaves UTF-8 validation of strings to CPython, whose
    ``UnicodeDecodeError`` escaped from the codecs, parse_raw and the error path itself."""
    fields = {"response_type": b'"token"', "request_id": b'"r"', "text": b'"ok"', "token_id": b"1"}
    if where == "text":
        fields["text"] = b'"a' + bad + b'b"'
    elif where == "tag":
        fields["response_type"] = b'"tok' + bad + b'en"'
    elif where == "request_id":
        fields["request_id"] = b'"' + bad + b'"'
    frame = b"{" + b", ".join(b'"' + k.encode() + b'": ' + v for k, v in fields.items())
    if where == "unknown-field":
        frame += b', "zz": "' + bad + b'"'
    elif where == "unknown-key":
        frame += b', "z' + bad + b'": 1'
    frame += b"}"
    full = check_union_json("WorkerResponse", frame)
    struct = check_struct_json(inference.TokenResponse, frame)
    if where.startswith("unknown"):
        # msgspec skips unknown fields without reading their text: not an error, and the
        # message is exactly the known fields
        assert full == inference.TokenResponse(request_id="r", text="ok", token_id=1)
        assert not isinstance(struct, Failed)
    else:
        assert isinstance(full, Failed) and "UTF-8" in str(full.exc)
        assert isinstance(struct, Failed)
    packed = msgspec.msgpack.encode({"response_type": "token", "text": "@", "token_id": 1})
    packed = packed.replace(b"\xa1@", bytes([0xA0 | (len(bad) + 2)]) + b"a" + bad + b"b")
    assert isinstance(check_union_msgpack("WorkerResponse", packed), Failed)


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "\udc80"])
def test_lone_surrogates_in_str_input(surrogate: str) -> None:
    """Regression: a ``str`` frame holding a lone surrogate raised ``UnicodeEncodeError`` from
    every decoder that takes ``str``."""
    for frame in (
        f'{{"response_type": "token", "text": "{surrogate}", "token_id": 1}}',
        f'{{"response_type": "token", "text": "x", "token_id": 1, "zz": "{surrogate}"}}',
        f'{{"response_type": "{surrogate}"}}',
        surrogate,
    ):
        assert isinstance(check_union_json("WorkerResponse", frame), Failed)
        with pytest.raises(msgspec.DecodeError, match="UTF-8"):
            inference.TokenResponse.parse_raw(frame.replace('"response_type": "token", ', ""))
        with pytest.raises(FrameDecodeError, match=r"line 2: .*lone surrogate"):
            codec.worker_response.decode_lines('{"response_type": "pong"}\n' + frame + "\n")
        with pytest.raises(FrameDecodeError, match="lone surrogate"):
            list(codec.worker_response.iter_lines(['{"response_type": "pong"}', frame]))


def test_escaped_lone_surrogates_are_rejected_and_pairs_accepted() -> None:
    """msgspec rejects an escaped lone surrogate (``json.loads`` would accept it and give a
    string no encoder can write back); a proper pair decodes to its character."""
    for escaped in (b'"\\ud800"', b'"\\udfff"', b'"\\udc00\\ud800"', b'"\\ud800x"', b'"\\ud800\\u0041"'):
        frame = b'{"response_type": "token", "text": ' + escaped + b', "token_id": 1}'
        assert isinstance(check_union_json("WorkerResponse", frame), Failed)
    frame = b'{"response_type": "token", "text": "\\ud83d\\ude00", "token_id": 1}'
    assert codec.worker_response.decode(frame) == inference.TokenResponse(text="\U0001f600", token_id=1)


# ------------------------------------------------------------------------ numbers


def test_huge_numbers_are_exact_or_rejected() -> None:
    """Integers beyond 64 bits decode exactly (never wrapped or rounded) where the field is an
    ``int``; floats out of range are errors, never ``inf``."""
    for big in (2**64, 2**64 - 1, -(2**63) - 1, 10**400):
        frame = b'{"response_type": "token", "text": "", "token_id": %d}' % big
        assert codec.worker_response.decode(frame).token_id == big
    for text in (b"1e400", b"-1e400", b"1e309"):
        frame = b'{"response_type": "token", "text": "", "token_id": 1, "log_prob": ' + text + b"}"
        with pytest.raises(FrameDecodeError, match="out of range") as info:
            codec.worker_response.decode(frame)
        assert info.value.path == "$.log_prob"
    frame = b'{"response_type": "token", "text": "", "token_id": 1, "log_prob": 1e-400}'
    assert codec.worker_response.decode(frame).log_prob == 0.0
    with pytest.raises(FrameDecodeError, match="out of range"):
        codec.worker_response.decode(
            b'{"response_type": "token", "text": "", "token_id": ' + b"9" * 5000 + b"}"
        )
    with pytest.raises(FrameDecodeError):  # SafetyLevel's bounds hold for huge values too
        codec.worker_response.decode(
            b'{"response_type": "safe_prompt", "safe_prompt": "", "safety_label": "", "safety_rots": "",'
            b' "safety_parameters": {"level": 18446744073709551616}}'
        )


def test_nan_and_infinity_literals_are_malformed_json() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"):
        frame = b'{"response_type": "token", "text": "", "token_id": 1, "log_prob": ' + literal + b"}"
        with pytest.raises(FrameDecodeError, match="malformed"):
            codec.worker_response.decode(frame)


def test_non_finite_floats_documented() -> None:
    """Not a decoder outcome, but where a NaN goes: msgpack carries NaN and infinities, and
    JSON cannot, so msgspec's JSON encoder writes them as ``null`` (a relay turning msgpack
    into JSON sends ``null`` for a NaN ``log_prob``). Integers beyond 64 bits, which JSON
    decoding accepts, cannot be written as msgpack."""
    nan_frame = msgspec.msgpack.encode(
        {"response_type": "token", "text": "", "token_id": 1, "log_prob": math.nan}
    )
    decoded = codec.worker_response_msgpack.decode(nan_frame)
    assert isinstance(decoded, inference.TokenResponse)
    assert decoded.log_prob is not None and math.isnan(decoded.log_prob)
    assert json.loads(codec.worker_response.encode(decoded))["log_prob"] is None
    big = codec.worker_response.decode(b'{"response_type": "token", "text": "", "token_id": %d}' % 2**64)
    with pytest.raises(OverflowError):
        codec.worker_response_msgpack.encode(big)


# --------------------------------------------------------------------- error messages


def test_error_messages_stay_short_whatever_the_frame_holds() -> None:
    """Regression: msgspec quotes an offending value whole, and the codec quoted the tag whole:
    a 1 MB tag made a 2 MB error message (and log line)."""
    huge = "x" * 1_000_000
    js, mp = json.dumps, msgspec.msgpack.encode
    cases: list[tuple[Any, Any]] = [
        (codec.worker_response.decode, js({"response_type": huge})),
        (codec.peek_worker_response, js({"response_type": huge})),
        (codec.peek_worker_request, js({"request_type": "ping", "id": [huge]})),
        (
            codec.worker_response.decode,
            js({"response_type": "generated_text", "text": "", "finish_reason": huge}),
        ),
        (codec.worker_request.decode, js({"request_type": "work", "thread": {"messages": [{"role": huge}]}})),
        (codec.any_interaction.decode, js({"type": "text_labels", "labels": {huge: 0.5}})),
        (codec.worker_response_msgpack.decode, mp({"response_type": huge})),
        (codec.any_task_msgpack.decode, mp({"type": huge})),
    ]
    for decode, data in cases:
        with pytest.raises(FrameDecodeError) as info:
            decode(data)
        frame_decode_error_is_well_formed(info.value, data)
    with pytest.raises(FrameDecodeError) as info:
        codec.worker_response.decode(json.dumps({"response_type": huge}))
    assert info.value.tag == huge  # the attribute keeps the exact value
    assert info.value.path == "$.response_type"


@FUZZ
@given(st.sampled_from(SNIPPETS), st.sampled_from(list(CODECS)))
def test_snippets_alone_and_doubled(snippet: bytes, name: str) -> None:
    for data in (snippet, snippet * 2, b"{" + snippet + b"}", b"[" + snippet + b"]"):
        check_union_json(name, data)
        check_union_msgpack(name, data)


def test_what_msgspec_itself_raises_and_we_do_not() -> None:
    """msgspec's own decoders (not ours) let other kinds of exception out on bad input, and
    which ones depends on its release (invalid UTF-8 in a string: ``UnicodeDecodeError`` up to
    0.22, ``DecodeError`` without a position from 0.23). The codecs turn each into the same
    ``FrameDecodeError`` and parse_raw into the same ``DecodeError``, whichever is installed."""
    deep = b'{"response_type": "token", "text": "", "token_id": 1, "x": ' + deep_array(DEPTH) + b"}"
    bad_utf8 = b'{"response_type": "token", "text": "\xff", "token_id": 1}'
    surrogate = '{"response_type": "token", "text": "\ud800", "token_id": 1}'
    cls = inference.TokenResponse
    for data, raised, ours in (
        (deep, (RecursionError,), "Input nested too deeply to decode as `TokenResponse`"),
        (
            bad_utf8,
            (UnicodeDecodeError, msgspec.DecodeError),
            "Invalid UTF-8: invalid start byte at column 37 (byte 36)",
        ),
        (surrogate, (UnicodeEncodeError,), "str input holds a lone surrogate (not encodable as UTF-8)"),
    ):
        with pytest.raises(raised):
            msgspec.json.decode(data, type=cls)
        with pytest.raises(msgspec.DecodeError) as info:
            cls.parse_raw(data)
        assert type(info.value) is msgspec.DecodeError
        assert str(info.value) == ours
        with pytest.raises(FrameDecodeError) as frame_info:
            codec.worker_response.decode(data)
        assert str(frame_info.value).endswith(": " + ours.replace("`TokenResponse`", "`WorkerResponse`"))
        assert frame_info.value.path == "$"
    with pytest.raises(UnicodeEncodeError):
        msgspec.convert({"text": "", "token_id": "\ud800"}, cls)
    with pytest.raises(msgspec.ValidationError, match="lone surrogate"):
        cls.parse_obj({"text": "", "token_id": "\ud800"})
