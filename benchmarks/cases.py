"""The benchmark cases: one callable per (message, operation, implementation).

Implementations compared in one run:

* ``struct``: our msgspec structs through the prebuilt codec (``oasst_shared.codec``).
* ``struct-into``: encode into a reused buffer (``encode_into``).
* ``struct-msgpack``: the MessagePack codec.
* ``view``: the Pydantic v2 views (``oasst_compat``): ``TypeAdapter.validate_json`` and
  ``model_dump_json``, what a pydantic consumer pays.
* ``orjson``: the untyped floor, ``orjson.loads`` / ``orjson.dumps`` of the same document.
* ``json``: the standard library, for reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from benchmarks import messages
from oasst_shared import codec
from oasst_shared.schemas import inference


class _BareToken(msgspec.Struct, kw_only=True, gc=False, tag_field="response_type", tag="token"):
    """TokenResponse's fields on a plain msgspec struct: the construction floor."""

    request_id: str | None = None
    text: str
    log_prob: float | None = None
    token_id: int


@dataclass(frozen=True)
class Case:
    message: str
    op: str
    impl: str
    fn: Callable[[], Any]
    check: Callable[[], None] = field(default=lambda: None)

    @property
    def group(self) -> str:
        return f"{self.message} {self.op}"

    @property
    def id(self) -> str:
        return f"{self.message}-{self.op}-{self.impl}"


@dataclass(frozen=True)
class Message:
    name: str
    obj: Any
    codec: codec.JsonCodec[Any]
    msgpack: codec.MsgpackCodec[Any]
    view_type: str  # dotted name of the view type the consumer validates with


def message_set() -> list[Message]:
    worker_info_codec: codec.JsonCodec[inference.WorkerInfo] = codec.JsonCodec(inference.WorkerInfo)
    worker_info_msgpack: codec.MsgpackCodec[inference.WorkerInfo] = codec.MsgpackCodec(inference.WorkerInfo)
    return [
        Message(
            "TokenResponse",
            messages.token_response(),
            codec.worker_response,
            codec.worker_response_msgpack,
            "inference.WorkerResponse",
        ),
        Message(
            "GeneratedTextResponse",
            messages.generated_text_response(),
            codec.worker_response,
            codec.worker_response_msgpack,
            "inference.WorkerResponse",
        ),
        Message(
            "WorkRequest",
            messages.work_request(),
            codec.worker_request,
            codec.worker_request_msgpack,
            "inference.WorkerRequest",
        ),
        Message(
            "RankAssistantRepliesTask",
            messages.rank_assistant_replies_task(),
            codec.any_task,
            codec.any_task_msgpack,
            "protocol.AnyTask",
        ),
        Message(
            "TextLabels",
            messages.text_labels(),
            codec.any_interaction,
            codec.any_interaction_msgpack,
            "protocol.AnyInteraction",
        ),
        Message(
            "WorkerInfo",
            messages.worker_info(),
            worker_info_codec,
            worker_info_msgpack,
            "inference.WorkerInfo",
        ),
    ]


def _views() -> Any | None:
    """The ``oasst_compat`` modules, or ``None`` when the compat layer is not importable."""
    try:
        import oasst_compat
        from oasst_compat.schemas import inference as view_inference
        from oasst_compat.schemas import protocol as view_protocol
    except ImportError:
        return None
    return oasst_compat, {"inference": view_inference, "protocol": view_protocol}


def views_available() -> bool:
    return _views() is not None


def _expect_equal(got: Callable[[], Any], want: Any, what: str) -> Callable[[], None]:
    def check() -> None:
        value = got()
        if value != want:
            raise AssertionError(f"{what}: benchmark subject gives a different result")

    return check


def build_cases() -> list[Case]:
    views = _views()
    cases: list[Case] = []
    for m in message_set():
        cases += _message_cases(m, views)
    return cases + peek_cases() + relay_cases() + string_cases() + construction_cases()


def _message_cases(m: Message, views: Any | None) -> list[Case]:
    obj = m.obj
    data = m.codec.encode(obj)
    packed = m.msgpack.encode(obj)
    plain = orjson.loads(data)
    decode = m.codec.decode
    encode = m.codec.encode
    encode_into = m.codec.encoder().encode_into  # the thread's encoder, taken once per thread
    unpack = m.msgpack.decode
    pack = m.msgpack.encode
    buffer = bytearray(len(data) * 2)

    def into() -> bytearray:
        encode_into(obj, buffer)
        return buffer

    cases = [
        Case(
            m.name, "decode", "struct", lambda: decode(data), _expect_equal(lambda: decode(data), obj, m.name)
        ),
        Case(
            m.name,
            "decode",
            "struct-msgpack",
            lambda: unpack(packed),
            _expect_equal(lambda: unpack(packed), obj, m.name),
        ),
        Case(m.name, "decode", "orjson", lambda: orjson.loads(data)),
        Case(m.name, "decode", "json", lambda: json.loads(data)),
        Case(
            m.name,
            "encode",
            "struct",
            lambda: encode(obj),
            _expect_equal(lambda: orjson.loads(encode(obj)), plain, m.name),
        ),
        Case(
            m.name,
            "encode",
            "struct-into",
            into,
            _expect_equal(lambda: orjson.loads(bytes(into())), plain, m.name),
        ),
        Case(
            m.name,
            "encode",
            "struct-msgpack",
            lambda: pack(obj),
            _expect_equal(lambda: unpack(pack(obj)), obj, m.name),
        ),
        Case(m.name, "encode", "orjson", lambda: orjson.dumps(plain)),
        Case(m.name, "encode", "json", lambda: json.dumps(plain)),
    ]
    if views is None:
        return cases
    compat, modules = views
    from pydantic import TypeAdapter

    module, name = m.view_type.split(".")
    adapter: TypeAdapter[Any] = TypeAdapter(getattr(modules[module], name))
    view_obj = compat.to_pydantic(obj)
    validate = adapter.validate_json
    cases += [
        Case(
            m.name,
            "decode",
            "view",
            lambda: validate(data),
            _expect_equal(lambda: compat.from_pydantic(validate(data)), obj, m.name),
        ),
        Case(
            m.name,
            "encode",
            "view",
            lambda: view_obj.model_dump_json(by_alias=True),
            _expect_equal(lambda: orjson.loads(view_obj.model_dump_json(by_alias=True)), plain, m.name),
        ),
    ]
    return cases


class SkipAll(msgspec.Struct, gc=False):
    """No fields: decoding a frame into it checks the JSON and skips every value. No msgspec
    view struct can read a frame for less."""


class RequestIdOnly(msgspec.Struct, gc=False):
    """The least a relay must read: ``request_id``, every other key skipped (the tag too).
    The floor under any msgspec peek a relay can route with."""

    request_id: str | None = None


def peek_cases() -> list[Case]:
    """Reading a token frame's tag and ``request_id`` only, against what bounds it."""
    token = messages.token_response()
    frame = codec.worker_response.encode(token)
    peek = codec.peek_worker_response
    raw = codec.worker_response_envelope.decoder.decode
    skip_all = msgspec.json.Decoder(SkipAll).decode
    request_id_only = msgspec.json.Decoder(RequestIdOnly).decode
    want = ("token", token.request_id)

    def check(fn: Callable[[bytes], Any]) -> Callable[[], None]:
        def run() -> None:
            env = fn(frame)
            if (env.response_type, env.request_id) != want:
                raise AssertionError("peek disagrees with the frame")

        return run

    def check_skip_all() -> None:
        if skip_all(frame) != SkipAll():
            raise AssertionError("skip-all decode failed")

    return [
        Case("TokenResponse", "peek", "struct", lambda: peek(frame), check(peek)),
        Case("TokenResponse", "peek", "struct-unchecked", lambda: raw(frame), check(raw)),
        Case("TokenResponse", "peek", "msgspec-skip-all", lambda: skip_all(frame), check_skip_all),
        Case(
            "TokenResponse",
            "peek",
            "msgspec-request-id-only",
            lambda: request_id_only(frame),
            _expect_equal(lambda: request_id_only(frame).request_id, token.request_id, "request_id only"),
        ),
        Case("TokenResponse", "peek", "orjson", lambda: orjson.loads(frame)),
    ]


def _strings(value: Any) -> list[str]:
    """Every string value (not key) of a plain JSON document, depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def string_cases() -> list[Case]:
    """The 22 KB WorkRequest's string values alone (about 60% of its bytes), encoded as
    one JSON array: string escaping is where msgspec and orjson differ most (orjson uses
    AVX-512 when the CPU has it, msgspec scans byte by byte)."""
    strings = _strings(orjson.loads(codec.worker_request.encode(messages.work_request())))
    encode = msgspec.json.encode
    return [
        Case(
            "WorkRequest strings",
            "encode",
            "msgspec",
            lambda: encode(strings),
            _expect_equal(lambda: orjson.loads(encode(strings)), strings, "WorkRequest strings"),
        ),
        Case("WorkRequest strings", "encode", "orjson", lambda: orjson.dumps(strings)),
    ]


def relay_cases() -> list[Case]:
    """Per token on the inference server: full decode + re-encode vs envelope peek + forward."""
    token = messages.token_response()
    frame = codec.worker_response.encode(token)
    decode = codec.worker_response.decode
    encode = codec.worker_response.encode
    peek = codec.peek_worker_response

    def full() -> bytes:
        return encode(decode(frame))

    def relay() -> bytes:
        env = peek(frame)
        if env.request_id is None:  # routing needs it; keeps the lookup honest
            raise AssertionError("no request_id")
        return frame

    def check_full() -> None:
        if orjson.loads(full()) != orjson.loads(frame):
            raise AssertionError("re-encoded token differs")

    def check_relay() -> None:
        env = peek(frame)
        if (env.response_type, env.request_id, relay()) != ("token", token.request_id, frame):
            raise AssertionError("peek disagrees with the frame")

    cases = [
        Case("TokenResponse", "relay", "struct", full, check_full),
        Case("TokenResponse", "relay", "struct-peek", relay, check_relay),
        Case("TokenResponse", "relay", "orjson", lambda: orjson.dumps(orjson.loads(frame))),
    ]
    views = _views()
    if views is not None:
        _, modules = views
        from pydantic import TypeAdapter

        adapter: TypeAdapter[Any] = TypeAdapter(modules["inference"].WorkerResponse)
        cases.append(
            Case(
                "TokenResponse",
                "relay",
                "view",
                lambda: adapter.validate_json(frame).model_dump_json(by_alias=True),
            )
        )
    return cases


def construction_cases() -> list[Case]:
    """Building one TokenResponse in the worker, per generated token.

    ``struct`` is the drop-in call (through the metaclass ``__call__`` that accepts the tag
    keyword), ``struct-tag`` the same call passing ``response_type="token"`` as the
    reference's code may, ``struct-new`` the fast path ``TokenResponse.new`` (msgspec's
    constructor alone, what the plain call cost before tag keywords), and ``msgspec-bare`` the
    floor: the same fields on a plain ``msgspec.Struct``, whose class call is a C vectorcall.
    """
    rid = messages.REQUEST_ID
    token = inference.TokenResponse
    new_token = inference.TokenResponse.new
    cases = [
        Case(
            "TokenResponse",
            "construct",
            "struct",
            lambda: token(request_id=rid, text=" a", log_prob=-0.5, token_id=7),
        ),
        Case(
            "TokenResponse",
            "construct",
            "struct-tag",
            lambda: token(response_type="token", request_id=rid, text=" a", log_prob=-0.5, token_id=7),
            _expect_equal(
                lambda: token(response_type="token", request_id=rid, text=" a", log_prob=-0.5, token_id=7),
                token(request_id=rid, text=" a", log_prob=-0.5, token_id=7),
                "TokenResponse construct with the tag keyword",
            ),
        ),
        Case(
            "TokenResponse",
            "construct",
            "struct-new",
            lambda: new_token(request_id=rid, text=" a", log_prob=-0.5, token_id=7),
            _expect_equal(
                lambda: type(new_token(request_id=rid, text=" a", log_prob=-0.5, token_id=7)),
                inference.TokenResponse,
                "TokenResponse.new",
            ),
        ),
        Case(
            "TokenResponse",
            "construct",
            "msgspec-bare",
            lambda: _BareToken(request_id=rid, text=" a", log_prob=-0.5, token_id=7),
        ),
        Case(
            "TokenResponse",
            "construct",
            "dict",
            lambda: {
                "request_id": rid,
                "response_type": "token",
                "text": " a",
                "log_prob": -0.5,
                "token_id": 7,
            },
        ),
    ]
    views = _views()
    if views is not None:
        _, modules = views
        view_token = modules["inference"].TokenResponse
        cases.append(
            Case(
                "TokenResponse",
                "construct",
                "view",
                lambda: view_token(request_id=rid, text=" a", log_prob=-0.5, token_id=7),
            )
        )
    return cases
