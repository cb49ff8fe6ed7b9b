"""The inference worker protocol structs: round trips, the reference's wire format, bad input,
behaviour. (Hardware collection is in test_hardware.py.)"""

from __future__ import annotations

import json
import re
import typing
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import msgspec
import pytest

from oasst_shared.model_configs import MODEL_CONFIGS, ModelConfig
from oasst_shared.schemas import inference
from tests.support import factories
from tests.support.decoding import assert_rejected, decode

LOREM = MODEL_CONFIGS["_lorem"]


def path_error(path: str) -> str:
    return re.escape(f"- at `{path}`")


def message_doc(i: int = 0, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"msg-{i}",
        "parent_id": None if i == 0 else f"msg-{i - 1}",
        "content": f"content {i}",
        "chat_id": "chat-1",
        "created_at": "2023-06-01T10:00:00",
        "role": "prompter" if i % 2 == 0 else "assistant",
        "state": "complete",
        "score": 0,
    }
    doc.update(changes)
    return doc


def work_request_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "request_type": "work",
        "id": "5a0ce3f0-4d49-4a0e-8ad6-3f1e0c2b6d7e",
        "thread": {"messages": [message_doc(i) for i in range(4)]},
        "created_at": "2023-06-01T10:00:01.500000+00:00",
        "parameters": {"model_config": msgspec.to_builtins(LOREM), "seed": 42},
        "safety_parameters": {"level": 0},
    }
    doc.update(changes)
    return doc


# ----------------------------------------------------------------------------- round trips


# The round trips of every struct and union: tests/schemas/test_registry.py (one test over the registry).


def test_token_response_wire_document() -> None:
    """The hottest frame: every field emitted, the tag included, as the reference sends it."""
    token = inference.TokenResponse(request_id="r1", text=" wor\u00e9ld", token_id=17)
    assert json.loads(token.json()) == {
        "request_id": "r1",
        "response_type": "token",
        "text": " wor\u00e9ld",
        "log_prob": None,
        "token_id": 17,
    }
    reference = (
        '{"request_id": "r1", "response_type": "token", "text": " wor\\u00e9ld", "log_prob": -0.25, '
        '"token_id": 17}'
    )
    decoded = decode(reference, inference.WorkerResponse)
    assert decoded == inference.TokenResponse(request_id="r1", text=" woréld", log_prob=-0.25, token_id=17)
    assert type(decoded) is inference.TokenResponse


def test_reference_work_request_decodes() -> None:
    request = decode(work_request_doc(), inference.WorkerRequest)
    assert type(request) is inference.WorkRequest
    assert request.id == "5a0ce3f0-4d49-4a0e-8ad6-3f1e0c2b6d7e"
    assert request.created_at == datetime(2023, 6, 1, 10, 0, 1, 500000, tzinfo=timezone.utc)
    assert request.created_at.utcoffset() == timedelta(0)
    first = request.thread.messages[0]
    assert first.created_at == datetime(2023, 6, 1, 10, 0)  # naive stays naive
    assert first.created_at.tzinfo is None
    assert first.state is inference.MessageState.complete
    assert first.reports == []
    assert [m.is_assistant for m in request.thread.messages] == [False, True, False, True]
    params = request.parameters
    assert params.model_config == LOREM
    assert params.seed == 42
    assert params.sampling_parameters == inference.SamplingParameters()
    assert params.do_sample is True
    assert params.plugins == []
    assert params.plugin_max_depth == 4
    assert request.safety_parameters.level == 0
    # and back: the same document, modulo the spelling of UTC
    ours = json.loads(request.json())
    assert ours["created_at"] in ("2023-06-01T10:00:01.500000Z", "2023-06-01T10:00:01.500000+00:00")
    assert ours["thread"]["messages"][1]["created_at"] == "2023-06-01T10:00:00"
    assert ours["parameters"]["sampling_parameters"]["max_new_tokens"] == 1024


def test_worker_info_first_frame() -> None:
    info = factories.worker_info(LOREM, max_parallel_requests=4, gpus=1)
    assert inference.WorkerInfo.parse_raw(info.json()) == info
    assert inference.WorkerInfo.parse_raw(info.json()).config.compat_hash == "_lorem-256-128-f"


# ------------------------------------------------------------------------------ bad input


BAD_REQUESTS = [
    pytest.param(
        work_request_doc(
            thread={"messages": [message_doc(0), message_doc(1), message_doc(2), message_doc(3, role="bot")]}
        ),
        "Invalid enum value 'bot'",
        "$.thread.messages[3].role",
        id="role",
    ),
    pytest.param(
        work_request_doc(thread={"messages": [message_doc(0, state="done")]}),
        "Invalid enum value 'done'",
        "$.thread.messages[0].state",
        id="state",
    ),
    pytest.param(
        work_request_doc(safety_parameters={"level": 10}), "<= 9", "$.safety_parameters.level", id="safety-10"
    ),
    pytest.param(
        work_request_doc(safety_parameters={"level": -1}),
        ">= 0",
        "$.safety_parameters.level",
        id="safety-neg",
    ),
    pytest.param(
        work_request_doc(parameters={"model_config": {"model_id": "m", "max_total_length": "long"}}),
        "Expected `int`, got `str`",
        "$.parameters.model_config.max_total_length",
        id="model-config",
    ),
    pytest.param(work_request_doc(created_at="June 1st"), "Invalid RFC3339", "$.created_at", id="created-at"),
    pytest.param(
        work_request_doc(thread=[]), "Expected `object`, got `array`", "$.thread", id="thread-array"
    ),
    pytest.param(
        work_request_doc(request_type="werk"), "Invalid value 'werk'", "$.request_type", id="unknown-tag"
    ),
    pytest.param({"request_type": "error"}, "missing required field `error`", None, id="error-without-error"),
]


@pytest.mark.parametrize(("doc", "problem", "path"), BAD_REQUESTS)
def test_bad_requests_are_rejected_with_their_path(doc: Any, problem: str, path: str | None) -> None:
    assert_rejected(doc, inference.WorkerRequest, problem, None if path is None else path_error(path))


BAD_RESPONSES = [
    pytest.param(
        {"response_type": "token", "text": "a", "token_id": "7"},
        "Expected `int`, got `str`",
        "$.token_id",
        id="token-id",
    ),
    pytest.param(
        {"response_type": "generated_text", "text": "a", "finish_reason": "tired"},
        "Invalid enum value 'tired'",
        "$.finish_reason",
        id="finish-reason",
    ),
    pytest.param(
        {"response_type": "pong", "metrics": {"created_at": "2023-01-01T00:00:00Z", "cpu_usage": "high"}},
        "Expected `float`, got `str`",
        "$.metrics.cpu_usage",
        id="metrics",
    ),
    pytest.param(
        {
            "response_type": "safe_prompt",
            "safe_prompt": "p",
            "safety_parameters": {"level": 12},
            "safety_label": "l",
            "safety_rots": "r",
        },
        "<= 9",
        "$.safety_parameters.level",
        id="safe-prompt-level",
    ),
    pytest.param(
        {"response_type": "tokens", "text": "a"},
        "Invalid value 'tokens'",
        "$.response_type",
        id="unknown-tag",
    ),
]


@pytest.mark.parametrize(("doc", "problem", "path"), BAD_RESPONSES)
def test_bad_responses_are_rejected_with_their_path(doc: Any, problem: str, path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        decode(doc, inference.WorkerResponse)
    assert problem in str(info.value)
    assert re.search(path_error(path), str(info.value)), str(info.value)


@pytest.mark.parametrize(
    ("union", "tag_field", "doc"),
    [
        (inference.WorkerRequest, "request_type", {"id": "x"}),
        (inference.WorkerRequest, "request_type", {"error": "boom"}),
        (inference.WorkerResponse, "response_type", {"request_id": "r", "text": "a", "token_id": 1}),
        (inference.WorkerResponse, "response_type", {}),
    ],
)
def test_missing_tag_is_an_error(union: Any, tag_field: str, doc: Any) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"missing required field `{tag_field}`"):
        decode(doc, union)


def test_work_request_requires_parameters() -> None:
    doc = work_request_doc()
    del doc["parameters"]
    with pytest.raises(msgspec.ValidationError, match="missing required field `parameters`"):
        decode(doc, inference.WorkerRequest)
    thread = inference.Thread(messages=[])
    with pytest.raises(TypeError, match="'parameters'"):
        inference.WorkRequest(thread=thread)  # type: ignore[call-arg]


@pytest.mark.parametrize("level", [10, -1, 100])
def test_safety_level_out_of_range(level: int) -> None:
    with pytest.raises(msgspec.ValidationError, match=path_error("$.level")):
        inference.SafetyParameters.parse_raw(json.dumps({"level": level}))
    with pytest.raises(msgspec.ValidationError, match=path_error("$.level")):
        inference.SafetyParameters.parse_obj({"level": level})
    with pytest.raises(ValueError, match="`level`"):
        inference.SafetyParameters(level=level)


@pytest.mark.parametrize("level", [0, 9])
def test_safety_level_bounds_accepted(level: int) -> None:
    assert inference.SafetyParameters.parse_raw(json.dumps({"level": level})).level == level
    assert inference.SafetyParameters(level=level).level == level


# -------------------------------------------------------------------------------- behaviour


def test_request_and_response_type_attributes() -> None:
    assert {cls: cls.request_type for cls in typing.get_args(inference.WorkerRequest)} == {
        inference.WorkRequest: "work",
        inference.PingRequest: "ping",
        inference.ErrorRequest: "error",
        inference.TerminateRequest: "terminate",
        inference.UpgradeProtocolRequest: "upgrade_protocol",
        inference.WrongApiKeyRequest: "wrong_api_key",
    }
    assert {cls: cls.response_type for cls in typing.get_args(inference.WorkerResponse)} == {
        inference.TokenResponse: "token",
        inference.GeneratedTextResponse: "generated_text",
        inference.ErrorResponse: "error",
        inference.PongResponse: "pong",
        inference.InternalFinishedMessageResponse: "internal_finished_message",
        inference.InternalErrorResponse: "internal_error",
        inference.SafePromptResponse: "safe_prompt",
        inference.PluginIntermediateResponse: "plugin_intermediate",
        inference.GeneralErrorResponse: "general_error",
    }
    ping = inference.PingRequest()
    assert ping.request_type == "ping"
    assert isinstance(ping, inference.WorkerRequestBase)
    assert inference.TokenResponse(text="a", token_id=1).response_type == "token"


def test_worker_dispatch_by_type() -> None:
    """What a worker does with each frame: decode through the union, branch on the class."""
    frames = [
        json.dumps(work_request_doc()),
        '{"request_type": "ping", "id": "p1"}',
        '{"request_type": "error", "id": "e1", "error": "boom"}',
        '{"request_type": "terminate", "id": "t1"}',
        '{"request_type": "upgrade_protocol", "id": "u1"}',
        '{"request_type": "wrong_api_key", "id": "w1"}',
    ]
    decoder = msgspec.json.Decoder(inference.WorkerRequest)
    kinds = [type(decoder.decode(frame)) for frame in frames]
    assert kinds == [
        inference.WorkRequest,
        inference.PingRequest,
        inference.ErrorRequest,
        inference.TerminateRequest,
        inference.UpgradeProtocolRequest,
        inference.WrongApiKeyRequest,
    ]
    general = decode({"response_type": "general_error", "error": "oops"}, inference.WorkerResponse)
    assert type(general) is inference.GeneralErrorResponse
    assert (general.error, general.metrics, general.request_id) == ("oops", None, None)


def test_message_read_is_assistant() -> None:
    prompter = inference.MessageRead.parse_obj(message_doc(0))
    assistant = inference.MessageRead.parse_obj(message_doc(1))
    assert (prompter.role, prompter.is_assistant) == ("prompter", False)
    assert (assistant.role, assistant.is_assistant) == ("assistant", True)


def test_worker_config_compat_hash() -> None:
    config = inference.WorkerConfig(model_config=MODEL_CONFIGS["OA_SFT_Pythia_12Bq"])
    assert config.max_parallel_requests == 1
    assert config.compat_hash == "OpenAssistant/oasst-sft-1-pythia-12b-2048-1024-q"
    assert config.compat_hash == config.model_config.compat_hash
    other = inference.WorkerConfig(model_config=ModelConfig(model_id="m", max_input_length=100))
    assert other.compat_hash == "m-1024-100-f"


def test_work_request_defaults() -> None:
    params = inference.WorkParameters(model_config=LOREM)
    before = datetime.now(timezone.utc)
    a = inference.WorkRequest(thread=inference.Thread(messages=[]), parameters=params)
    b = inference.WorkRequest(thread=inference.Thread(messages=[]), parameters=params)
    after = datetime.now(timezone.utc)
    assert UUID(a.id).version == 4
    assert a.id == str(UUID(a.id))
    assert a.id != b.id
    assert before <= a.created_at <= after
    assert a.created_at.utcoffset() == timedelta(0)
    assert a.safety_parameters == inference.SafetyParameters(level=0)
    assert a.safety_parameters is not b.safety_parameters
    assert UUID(inference.PingRequest().id).version == 4


def test_work_parameters_defaults() -> None:
    a = inference.WorkParameters(model_config=LOREM)
    b = inference.WorkParameters(model_config=LOREM)
    assert a.sampling_parameters == inference.SamplingParameters(max_new_tokens=1024)
    assert a.sampling_parameters is not b.sampling_parameters
    assert a.plugins == []
    assert a.plugins is not b.plugins
    assert (a.do_sample, a.system_prompt, a.plugin_max_depth) == (True, None, 4)
    seeds = {inference.WorkParameters(model_config=LOREM).seed for _ in range(10)} | {a.seed, b.seed}
    assert all(0 <= s <= inference.MAX_SEED for s in seeds)
    assert inference.MAX_SEED == 2**64 - 2
    assert len(seeds) > 1
    # a decoded message without a seed gets a fresh one; a large one survives
    assert (
        0
        <= inference.WorkParameters.parse_obj({"model_config": {"model_id": "m"}}).seed
        <= inference.MAX_SEED
    )
    big = inference.WorkParameters(model_config=LOREM, seed=inference.MAX_SEED)
    assert inference.WorkParameters.parse_raw(big.json()).seed == inference.MAX_SEED


def test_copy_with_update() -> None:
    token = inference.TokenResponse(request_id="r", text="a", token_id=1)
    other = token.copy(update={"text": "b", "token_id": 2})
    assert (other.text, other.token_id, other.request_id) == ("b", 2, "r")
    assert (token.text, token.token_id) == ("a", 1)
    assert type(other) is inference.TokenResponse
    request = decode(work_request_doc(), inference.WorkerRequest)
    retargeted = request.copy(update={"parameters": request.parameters.copy(update={"seed": 7})})
    assert (retargeted.parameters.seed, request.parameters.seed) == (7, 42)
    assert retargeted.thread is request.thread


def test_dict_keeps_datetimes_and_the_tag() -> None:
    request = decode(work_request_doc(), inference.WorkerRequest)
    d = request.dict()
    assert d["request_type"] == "work"
    assert isinstance(d["created_at"], datetime)
    assert d["created_at"] == request.created_at
    assert d["thread"]["messages"][0]["state"] == "complete"
    assert d["parameters"]["model_config"] == msgspec.to_builtins(LOREM)
    assert inference.WorkRequest.parse_obj(d) == request


def test_unknown_fields_are_ignored() -> None:
    doc = work_request_doc(priority="high", thread={"messages": [message_doc(0, mood="happy")], "title": "t"})
    plain = work_request_doc(thread={"messages": [message_doc(0)]})
    assert decode(doc, inference.WorkerRequest) == decode(plain, inference.WorkerRequest)
    token = decode(
        {"response_type": "token", "text": "a", "token_id": 1, "top_logprobs": [1, 2]},
        inference.WorkerResponse,
    )
    assert token == inference.TokenResponse(text="a", token_id=1)


def test_missing_optional_fields_decode_to_defaults() -> None:
    token = decode({"response_type": "token", "text": "a", "token_id": 1}, inference.WorkerResponse)
    assert (token.request_id, token.log_prob) == (None, None)
    entry = inference.PluginEntry.parse_raw('{"url": "https://p"}')
    assert (entry.enabled, entry.plugin_config, entry.trusted) == (True, None, False)
    api = inference.PluginApiType.parse_raw('{"type": "openapi", "url": "u"}')
    assert (api.has_user_authentication, api.is_user_authenticated) == (False, False)
    intermediate = inference.PluginIntermediateResponse.parse_obj(
        {
            "current_plugin_thought": "t",
            "current_plugin_action_taken": "a",
            "current_plugin_action_input": "i",
            "current_plugin_action_response": "r",
        }
    )
    assert intermediate.text == ""
    param = inference.PluginOpenAPIParameter.parse_raw(
        '{"name": "q", "in_": "query", "description": "d", "required": true}'
    )
    assert param.schema_ is None
    assert json.loads(param.json())["schema_"] is None  # wire keys keep the reference's spelling


def test_report_type_member_spelling() -> None:
    report = inference.Report.parse_raw('{"id": "r", "report_type": "feedback", "reason": "x"}')
    assert report.report_type is inference.ReportType.feeback
