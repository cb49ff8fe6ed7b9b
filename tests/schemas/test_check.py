"""``oasst_shared.schemas.check``: the opt-in check of a message built in Python.

Struct constructors do not check field types (msgspec's choice, for speed); ``check(msg)``
tells whether the receiver's decoder would accept the message, naming the class, the path and
the expected type.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import msgspec
import pytest

from oasst_shared import codec
from oasst_shared.schemas import MessageCheckError, check, inference, protocol
from tests.support import factories
from tests.support.specs import REPO_ROOT

FRAMES = REPO_ROOT / "examples" / "frames"


def test_a_constructor_takes_a_wrong_type_that_the_decoder_then_refuses() -> None:
    """The problem ``check`` is for: the struct builds and encodes, its receiver refuses it."""
    token = inference.TokenResponse.new(request_id="r", text=3, token_id=1)
    frame = codec.worker_response.encode(token)
    assert b'"text":3' in frame
    with pytest.raises(codec.FrameDecodeError, match=r"Expected `str`, got `int`"):
        codec.worker_response.decode(frame)


def test_check_names_the_class_the_path_and_the_expected_type() -> None:
    token = inference.TokenResponse.new(request_id="r", text=3, token_id=1)
    with pytest.raises(MessageCheckError) as caught:
        check(token)
    err = caught.value
    assert (err.type_name, err.path, err.detail, err.checked_as) == (
        "TokenResponse",
        "$.text",
        "Expected `str`, got `int`",
        "TokenResponse",
    )
    assert str(err) == (
        "invalid TokenResponse at $.text: Expected `str`, got `int` "
        "(struct constructors do not check field types)"
    )
    # the same family as what Cls.parse_obj raises for the same content
    assert isinstance(err, msgspec.ValidationError)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("build", "path", "detail"),
    [
        (
            lambda: inference.GeneratedTextResponse(
                text="Hi",
                finish_reason="eos_token",
                metrics=inference.WorkerMetricsInfo(
                    created_at=factories.T0,
                    cpu_usage=1.0,
                    mem_usage=1.0,
                    swap_usage=0.0,
                    gpus=[inference.GpuMetricsInfo(gpu_usage="97%", mem_usage=1.0)],  # type: ignore[arg-type]
                ),
            ),
            "$.metrics.gpus[0].gpu_usage",
            "Expected `float`, got `str`",
        ),
        (
            lambda: inference.GeneratedTextResponse(text="Hi", finish_reason="tired"),  # type: ignore[arg-type]
            "$.finish_reason",
            "Invalid enum value 'tired'",
        ),
        (
            lambda: inference.TokenResponse(text="a", token_id=True),
            "$.token_id",
            "Expected `int`, got `bool`",
        ),
        (
            lambda: protocol.TaskRequest(type=protocol.TaskRequestType.random, user="ada"),  # type: ignore[arg-type]
            "$.user",
            "Expected `object | null`, got `str`",
        ),
    ],
)
def test_check_finds_wrong_values_inside_the_message(build: Any, path: str, detail: str) -> None:
    message = build()
    with pytest.raises(MessageCheckError) as caught:
        check(message)
    assert caught.value.path == path
    assert caught.value.type_name == type(message).__name__
    assert detail in caught.value.detail


def test_a_value_msgspec_cannot_encode_is_named_by_its_path() -> None:
    metrics = factories.metrics_info(gpus=2)
    metrics.gpus[1].mem_usage = object()  # type: ignore[index]
    response = inference.GeneratedTextResponse(text="Hi", finish_reason="length", metrics=metrics)
    with pytest.raises(MessageCheckError) as caught:
        check(response)
    assert caught.value.path == "$.metrics.gpus[1].mem_usage"
    assert caught.value.detail.startswith("cannot be encoded: TypeError: ")
    assert "object" in caught.value.detail


def test_valid_messages_pass_and_are_returned_unchanged() -> None:
    messages: list[Any] = [
        inference.TokenResponse.new(request_id="r", text="3", token_id=1),
        inference.WorkRequest.parse_raw((FRAMES / "work_request.json").read_bytes()),
        inference.WorkerInfo.parse_raw((FRAMES / "worker_info.json").read_bytes()),
        codec.any_task.decode((FRAMES / "assistant_reply_task.json").read_bytes()),
        codec.any_interaction.decode((FRAMES / "text_reply_to_message.json").read_bytes()),
        *codec.worker_response.decode_lines((FRAMES / "token_stream.ndjson").read_bytes()),
        factories.worker_info(),
    ]
    for message in messages:
        assert check(message) is message


def test_check_takes_structs_only() -> None:
    with pytest.raises(TypeError, match=r"check\(\) takes a message struct, not dict"):
        check({"text": 3})  # type: ignore[type-var]


def test_the_error_pickles_and_shows_its_public_path() -> None:
    try:
        check(inference.TokenResponse(text=3, token_id=1))  # type: ignore[arg-type]
    except MessageCheckError as exc:
        err = exc
    else:
        pytest.fail("check() accepted text=3")
    assert f"{type(err).__module__}.{type(err).__qualname__}" == "oasst_shared.schemas.MessageCheckError"
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.path, copy.type_name) == (
        MessageCheckError,
        str(err),
        "$.text",
        "TokenResponse",
    )


def test_the_migration_guide_and_the_readme_say_constructors_do_not_check_types() -> None:
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "migrating.md"):
        text = " ".join(Path(page).read_text(encoding="utf-8").split())
        assert "do not check field types" in text, page
        assert "oasst_shared.schemas.check" in text or "schemas.check" in text, page
