"""What the hostile-input suites (``tests/codec/test_hostile_*.py``) and the fuzz harnesses
(``fuzz/``) share: the decoders under test, the outcome oracle, the per-frame oracles and the
mutations.

The rule every check enforces: a decoder given any input either returns the right value or
raises its documented error, never anything else:

* a prebuilt codec (``codec.worker_response`` ...): ``FrameDecodeError``;
* ``Struct.parse_raw`` / ``Struct.parse_obj``: ``msgspec.DecodeError`` (``ValidationError`` is
  one), never ``RecursionError`` nor ``UnicodeError``;
* ``msgspec.json.decode(type=...)`` itself (not ours, documented here): ``msgspec.DecodeError``,
  or ``RecursionError`` on absurd nesting, or ``UnicodeError`` for invalid UTF-8 inside a
  string / a lone surrogate in ``str`` input (msgspec leaves both checks to CPython).

"The right value" is checked against an oracle: our decoders must agree with msgspec's own
decode of the same bytes, and a value that decodes must survive a JSON round trip
(``check_struct_json``, ``check_union_json``, ``check_union_msgpack``, ``check_peek``). The
stream references (NDJSON, length-prefixed msgpack, SSE) are in ``tests.support.hostile_streams``.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import strategies as st

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError
from oasst_shared.schemas import _registry as registry
from oasst_shared.schemas import inference, protocol
from tests.support.strategies import instances

__all__ = [
    "ALL_STRUCTS",
    "CODECS",
    "FACTORY_FIELDS",
    "MSGSPEC_ERRORS",
    "SNIPPETS",
    "UNIONS",
    "Failed",
    "attempt",
    "check_peek",
    "check_struct_json",
    "check_union_json",
    "check_union_msgpack",
    "deep_array",
    "deep_object",
    "factory_only_difference",
    "frame_decode_error_is_well_formed",
    "mutated",
    "numbers_equal",
    "union_members",
]


ALL_STRUCTS: list[type[msgspec.Struct]] = [cls for _, cls in sorted(registry.struct_types().items())]
"""Every struct of protocol, inference and model_configs (the message registry's), by dotted name."""

UNIONS: dict[str, Any] = {name.rpartition(".")[2]: union for name, union in registry.unions().items()}
"""The message unions by their bare name (``WorkerResponse``)."""

CODECS: dict[str, tuple[codec.JsonCodec[Any], codec.MsgpackCodec[Any], Any]] = {
    "WorkerRequest": (codec.worker_request, codec.worker_request_msgpack, inference.WorkerRequest),
    "WorkerResponse": (codec.worker_response, codec.worker_response_msgpack, inference.WorkerResponse),
    "AnyTask": (codec.any_task, codec.any_task_msgpack, protocol.AnyTask),
    "AnyInteraction": (codec.any_interaction, codec.any_interaction_msgpack, protocol.AnyInteraction),
}

MSGSPEC_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeError)
"""What msgspec's own decoders may raise on bad input (see the module docs)."""

# Fields whose default is drawn at random or from the clock: two decodes of a document that
# leaves them out differ there, and only there.
FACTORY_FIELDS: frozenset[str] = frozenset({"id", "seed", "created_at"})


class Failed:
    """The outcome of a call that raised one of the allowed errors."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"Failed({type(self.exc).__name__}: {str(self.exc)[:200]})"


def attempt(call: Callable[[], Any], allowed: tuple[type[BaseException], ...]) -> Any:
    """``call()``'s value, or ``Failed`` if it raised one of ``allowed``.

    Any other exception propagates and fails the test with its traceback.
    """
    try:
        return call()
    except allowed as exc:
        return Failed(exc)


def factory_only_difference(a: Any, b: Any) -> bool:
    """True when ``a == b`` or they differ only in random / clock default fields."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, msgspec.Struct) and type(a) is type(b):
        for field in msgspec.structs.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if x != y and not (field.name in FACTORY_FIELDS or factory_only_difference(x, y)):
                return False
        return True
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(factory_only_difference(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(factory_only_difference(a[k], b[k]) for k in a)
    return False


def numbers_equal(expected: Any, actual: Any) -> bool:
    """JSON equality where a number compares by value (an int sent to a float field is the
    same number) and NaN equals NaN; containers compare item by item."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if isinstance(expected, float) and math.isnan(expected):
            return isinstance(actual, float) and math.isnan(actual)
        if isinstance(actual, float) or isinstance(expected, float):
            return float(expected) == float(actual)
        return bool(expected == actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            numbers_equal(x, y) for x, y in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            numbers_equal(expected[k], actual[k]) for k in expected
        )
    return type(expected) is type(actual) and bool(expected == actual)


# ------------------------------------------------------------------------------- nesting


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"null" + b"}" * depth


# ------------------------------------------------------------------------------ mutations

# Bytes and snippets that break parsers in interesting ways when dropped into a frame.
SNIPPETS: list[bytes] = [
    b'"',
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\x00",
    b"\n",
    b"\r",
    b"\xff",
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8 (CESU)
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xe2\x82",  # truncated sequence
    b"\\ud800",
    b"\\udc00\\ud800",
    b"\\u0000",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"NaN",
    b"Infinity",
    b"-0",
    b"null",
    b"true",
    b'"response_type":"token",',
    b'"request_type":"work",',
    b'"type":"task_done",',
    b"\xc1",  # msgpack: never used
    b"\xdd\xff\xff\xff\xff",  # msgpack: array32 announcing 4G items
    b"\xdf\xff\xff\xff\xff",  # msgpack: map32 announcing 4G pairs
    b"\xdb\xff\xff\xff\xff",  # msgpack: str32 announcing 4 GiB
    b"\xc7\x01\xff",  # msgpack: ext8 of type -1 (timestamp) with a wrong length
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # msgpack: uint64 max
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # msgpack: float64 NaN
]


@st.composite
def mutated(draw: st.DrawFn, tp: Any, encode: Callable[[Any], bytes]) -> bytes:
    """A valid encoded instance of ``tp`` with one to four mutations: truncation, bit flips,
    byte replacement, insertion of a hostile snippet, deletion or duplication of a range."""
    data = bytearray(encode(draw(instances(tp))))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data = bytearray(draw(st.binary(max_size=8)))
            continue
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["truncate", "flip", "byte", "snippet", "delete", "duplicate"]))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "snippet":
            data[at:at] = draw(st.sampled_from(SNIPPETS))
        else:
            end = draw(st.integers(at, min(len(data), at + 16)))
            if kind == "delete":
                del data[at:end]
            else:
                data[at:at] = data[at:end]
    return bytes(data)


def union_members(union: Any) -> tuple[type, ...]:
    return typing.get_args(union)


def frame_decode_error_is_well_formed(err: FrameDecodeError, data: Any = None) -> None:
    """What every ``FrameDecodeError`` promises: a ValueError and a msgspec DecodeError, a
    bounded message that does not carry the frame, the frame's size (when ``data`` is the
    frame), a path that is a JSON path."""
    assert isinstance(err, ValueError) and isinstance(err, msgspec.DecodeError)
    assert data is None or err.size == len(data) or "exceeds max_frame_size" in str(err)
    assert err.path is None or err.path.startswith("$")
    assert err.tag is None or isinstance(err.tag, str)
    assert len(str(err)) < 600, str(err)[:600]


# ------------------------------------------------------------------------------- oracles


def check_struct_json(cls: Any, data: bytes | str) -> Any:
    """``parse_raw`` agrees with ``msgspec.json.decode(type=cls)`` on ``data`` and raises only
    ``msgspec.DecodeError``; a decoded value survives a JSON round trip. Returns the value or
    ``Failed``."""
    raw = attempt(lambda: msgspec.json.decode(data, type=cls), MSGSPEC_ERRORS)
    ours = attempt(lambda: cls.parse_raw(data), (msgspec.DecodeError,))
    if isinstance(raw, Failed):
        assert isinstance(ours, Failed), f"msgspec failed ({raw}) but parse_raw gave {ours!r}"
        if isinstance(raw.exc, msgspec.ValidationError):
            assert isinstance(ours.exc, msgspec.ValidationError), ours
        return ours
    assert not isinstance(ours, Failed), f"msgspec decoded {raw!r} but parse_raw failed: {ours}"
    assert type(ours) is cls
    assert factory_only_difference(raw, ours), (raw, ours)
    assert cls.parse_raw(msgspec.json.encode(ours)) == ours
    assert cls.parse_raw(ours.json()) == ours
    return ours


def check_union_json(name: str, data: bytes | str) -> Any:
    """The union's JSON codec agrees with msgspec and raises only ``FrameDecodeError``; for the
    worker unions, the envelope peek never disagrees with a successful full decode."""
    json_codec, _, union = CODECS[name]
    raw = attempt(lambda: msgspec.json.decode(data, type=union), MSGSPEC_ERRORS)
    ours = attempt(lambda: json_codec.decode(data), (FrameDecodeError,))
    if name in ("WorkerResponse", "WorkerRequest"):
        check_peek(name, data, ours)
    if _codec_agrees_with_msgspec(union, data, raw, ours):
        assert json_codec.decode(json_codec.encode(ours)) == ours
    return ours


def check_union_msgpack(name: str, data: bytes) -> Any:
    """The union's MessagePack codec agrees with msgspec and raises only ``FrameDecodeError``."""
    _, msgpack_codec, union = CODECS[name]
    raw = attempt(lambda: msgspec.msgpack.decode(data, type=union), MSGSPEC_ERRORS)
    ours = attempt(lambda: msgpack_codec.decode(data), (FrameDecodeError,))
    if _codec_agrees_with_msgspec(union, data, raw, ours):
        frame = msgpack_codec.encode(ours)
        assert msgpack_codec.encode(msgpack_codec.decode(frame)) == frame  # NaN-proof equality
    return ours


def _codec_agrees_with_msgspec(union: Any, data: Any, raw: Any, ours: Any) -> bool:
    """A codec's outcome ``ours`` on ``data`` matches msgspec's own ``raw``: both failed (ours
    with a well-formed ``FrameDecodeError``), or both decoded to a member of ``union``, differing
    at most in random or clock defaults. True when a value was decoded."""
    if isinstance(raw, Failed):
        assert isinstance(ours, Failed), f"msgspec failed ({raw}) but the codec gave {ours!r}"
        frame_decode_error_is_well_formed(ours.exc, data)
        return False
    assert not isinstance(ours, Failed), f"msgspec decoded {raw!r} but the codec failed: {ours}"
    assert type(ours) in union_members(union)
    assert factory_only_difference(raw, ours), (raw, ours)
    return True


def check_peek(name: str, data: bytes | str, full: Any) -> None:
    """A relay may route by the peek: whenever the full decode succeeds, the peek must too and
    give the same tag and id; whenever the peek fails, the full decode must fail too."""
    if name == "WorkerResponse":
        peek, tag_field, id_field = codec.peek_worker_response, "response_type", "request_id"
    else:
        peek, tag_field, id_field = codec.peek_worker_request, "request_type", "id"
    env = attempt(lambda: peek(data), (FrameDecodeError,))
    if isinstance(env, Failed):
        frame_decode_error_is_well_formed(env.exc, data)
        assert isinstance(full, Failed), f"peek failed ({env}) on a frame that decodes: {full!r}"
        return
    if isinstance(full, Failed):
        return  # the peek checks the envelope only
    assert getattr(env, tag_field) == getattr(full, tag_field)
    # ``id`` of a request is drawn at random when the frame has none; the peek reports None
    assert getattr(env, id_field) == getattr(full, id_field) or (
        id_field == "id" and getattr(env, id_field) is None
    )
