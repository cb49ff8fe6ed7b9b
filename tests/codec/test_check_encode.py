"""The codecs' debug setting: ``OASST_SHARED_CHECK_ENCODE=1`` (or ``check_encode=True``) makes
every encoding call check the message as the codec's decoder would; off, it costs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from oasst_shared import codec
from oasst_shared.codec import JsonCodec, MsgpackCodec
from oasst_shared.schemas import MessageCheckError, inference
from oasst_shared.schemas._check import CHECK_ENCODE_ENV, encode_check_enabled

PREBUILT_JSON = [
    codec.worker_request,
    codec.worker_response,
    codec.any_task,
    codec.any_interaction,
    codec.worker_response_envelope,
    codec.worker_request_envelope,
]
PREBUILT_MSGPACK = [
    codec.worker_request_msgpack,
    codec.worker_response_msgpack,
    codec.any_task_msgpack,
    codec.any_interaction_msgpack,
]


def bad_token() -> inference.TokenResponse:
    token: inference.TokenResponse = inference.TokenResponse.new(request_id="r", text=3, token_id=1)
    return token


def good_token() -> inference.TokenResponse:
    token: inference.TokenResponse = inference.TokenResponse.new(request_id="r", text="3", token_id=1)
    return token


@pytest.fixture(autouse=True)
def _setting_off() -> None:
    if encode_check_enabled():
        pytest.skip(f"{CHECK_ENCODE_ENV} is set in this process: the tests of the default need it off")


# ------------------------------------------------------------------------------ off: nothing


@pytest.mark.parametrize("c", PREBUILT_JSON + PREBUILT_MSGPACK, ids=lambda c: c.type_name)
def test_off_the_prebuilt_codecs_encode_is_msgspecs_own_function(c: Any) -> None:
    """Off (the default), the setting costs nothing: ``encode`` is the very same object as
    without the feature, and no instance attribute shadows an encoding method."""
    own = msgspec.msgpack.encode if isinstance(c, MsgpackCodec) else msgspec.json.encode
    assert c.check_encode is False
    assert c.encode is own
    assert not {"encode", "writer"} & set(vars(c))
    assert type(c.encoder()) is (
        msgspec.msgpack.Encoder if isinstance(c, MsgpackCodec) else msgspec.json.Encoder
    )


def test_off_a_wrong_type_is_encoded_as_it_is() -> None:
    assert b'"text":3' in JsonCodec(inference.WorkerResponse).encode(bad_token())
    assert JsonCodec(inference.WorkerResponse, check_encode=False).encode is msgspec.json.encode


# ------------------------------------------------------------------------------- on: checked


def _json_calls(c: JsonCodec[Any]) -> dict[str, Callable[[Any], object]]:
    return {
        "encode": c.encode,
        "encode_into": lambda obj: c.encode_into(obj, bytearray()),
        "encoder().encode": lambda obj: c.encoder().encode(obj),
        "encoder().encode_into": lambda obj: c.encoder().encode_into(obj, bytearray(), -1),
        "encode_lines": lambda obj: c.encode_lines([good_token(), obj]),
        "writer().json": lambda obj: c.writer().json(obj),
        "writer().sse": lambda obj: c.writer(64).sse(obj, event="token"),
    }


def _msgpack_calls(c: MsgpackCodec[Any]) -> dict[str, Callable[[Any], object]]:
    return {
        "encode": c.encode,
        "encode_into": lambda obj: c.encode_into(obj, bytearray()),
        "encoder().encode": lambda obj: c.encoder().encode(obj),
        "encode_frames": lambda obj: c.encode_frames([good_token(), obj]),
    }


CHECKED_CALLS = [
    *(
        (name, call)
        for name, call in _json_calls(JsonCodec(inference.WorkerResponse, check_encode=True)).items()
    ),
    *(
        (f"msgpack {name}", call)
        for name, call in _msgpack_calls(MsgpackCodec(inference.WorkerResponse, check_encode=True)).items()
    ),
]


@pytest.mark.parametrize(("name", "call"), CHECKED_CALLS, ids=[name for name, _ in CHECKED_CALLS])
def test_on_every_encoding_call_refuses_a_wrong_type_naming_field_and_type(
    name: str, call: Callable[[Any], object]
) -> None:
    with pytest.raises(MessageCheckError) as caught:
        call(bad_token())
    err = caught.value
    assert (err.type_name, err.path, err.checked_as) == (
        "TokenResponse",
        "$.text",
        "inference.WorkerResponse",
    )
    assert "Expected `str`, got `int`" in str(err)
    call(good_token())  # a valid message goes through


def test_on_the_bytes_are_those_of_the_unchecked_codec() -> None:
    checked: JsonCodec[inference.WorkerResponse] = JsonCodec(inference.WorkerResponse, check_encode=True)
    assert checked.check_encode is True
    assert checked.encode is not msgspec.json.encode
    token = good_token()
    assert checked.encode(token) == codec.worker_response.encode(token)
    assert checked.encode_lines([token, token]) == codec.worker_response.encode_lines([token, token])
    assert bytes(checked.writer().json(token)) == codec.worker_response.encode(token)
    packed: MsgpackCodec[inference.WorkerResponse] = MsgpackCodec(inference.WorkerResponse, check_encode=True)
    assert packed.encode_frames([token]) == codec.worker_response_msgpack.encode_frames([token])


def test_on_a_message_outside_the_codecs_union_is_refused() -> None:
    checked: JsonCodec[inference.WorkerRequest] = JsonCodec(inference.WorkerRequest, check_encode=True)
    with pytest.raises(MessageCheckError) as caught:
        checked.encode(good_token())
    assert caught.value.checked_as == "inference.WorkerRequest"
    assert caught.value.path == "$.request_type"


# ---------------------------------------------------------------------- the environment variable


def _run(code: str, value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CHECK_ENCODE_ENV: value}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )


_PREBUILT_PROBE = """
import msgspec
from oasst_shared import codec
from oasst_shared.schemas import MessageCheckError, inference

bad = inference.TokenResponse.new(request_id="r", text=3, token_id=1)
print(codec.worker_response.check_encode, codec.worker_response.encode is msgspec.json.encode)
for c in (codec.worker_response, codec.worker_response_msgpack):
    try:
        c.encode(bad)
    except MessageCheckError as err:
        print(err.path, err.checked_as)
    else:
        print("encoded")
"""


def test_the_environment_variable_turns_the_prebuilt_codecs_check_on() -> None:
    on = _run(_PREBUILT_PROBE, "1")
    assert on.returncode == 0, on.stderr
    assert on.stdout.splitlines() == [
        "True False",
        "$.text inference.WorkerResponse",
        "$.text inference.WorkerResponse",
    ]
    off = _run(_PREBUILT_PROBE, "0")
    assert off.returncode == 0, off.stderr
    assert off.stdout.splitlines() == ["False True", "encoded", "encoded"]


def test_a_value_of_the_variable_that_means_neither_is_an_error_naming_it() -> None:
    result = _run("import oasst_shared.codec", "maybe")
    assert result.returncode == 1
    assert f"ValueError: {CHECK_ENCODE_ENV}='maybe': expected 1" in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("", False), ("0", False), ("off", False)],
)
def test_the_values_the_variable_takes(value: str, expected: bool) -> None:
    assert encode_check_enabled({CHECK_ENCODE_ENV: value}) is expected
    assert encode_check_enabled({}) is False
