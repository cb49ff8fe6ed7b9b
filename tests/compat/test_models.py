"""Behaviour of the Pydantic views: pydantic v1 methods, the ``model_config`` field, validation
rules, properties and methods, class hierarchy, conversions, and what importing costs."""

from __future__ import annotations

import copy
import json
import pickle
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

import oasst_compat
from oasst_compat import exceptions as compat_exceptions
from oasst_compat import from_pydantic, to_pydantic
from oasst_compat import utils as compat_utils
from oasst_compat.model_configs import MODEL_CONFIGS, ModelConfig
from oasst_compat.schemas import inference, protocol
from oasst_shared import exceptions as core_exceptions
from oasst_shared import model_configs as core_model_configs
from oasst_shared import utils as core_utils
from oasst_shared.schemas import inference as core_inference
from oasst_shared.schemas import protocol as core_protocol
from tests.support.processes import run_python


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    """Nothing here may warn: no pydantic deprecation, no serialisation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


USER = {"id": "u1", "display_name": "Ada", "auth_method": "local"}


def _worker_config(model_id: str = "OpenAssistant/oasst-sft-6-llama-30b") -> inference.WorkerConfig:
    return inference.WorkerConfig(model_config=ModelConfig(model_id=model_id, max_total_length=1792))


def _message_read(role: str = "assistant") -> inference.MessageRead:
    return inference.MessageRead(
        id="m1",
        chat_id="c1",
        created_at=datetime(2023, 5, 1, 12, 0, tzinfo=timezone.utc),
        role=role,  # type: ignore[arg-type]
        state=inference.MessageState.complete,
        score=1,
    )


# ---------------------------------------------------------------------- pydantic v1 methods


def test_v1_dict_and_json_use_wire_names() -> None:
    config = _worker_config()
    as_dict = config.dict()
    assert as_dict == config.model_dump(by_alias=True)
    assert set(as_dict) == {"model_config", "max_parallel_requests"}
    assert as_dict["model_config"]["model_id"] == "OpenAssistant/oasst-sft-6-llama-30b"
    assert json.loads(config.json()) == config.model_dump(mode="json")
    assert config.dict(exclude={"max_parallel_requests"}) == {"model_config": as_dict["model_config"]}
    assert "model_config_" in config.dict(by_alias=False)
    with pytest.raises(TypeError, match=r"json\.dumps arguments"):
        config.json(indent=2)


def test_v1_dict_keeps_python_values() -> None:
    task = protocol.TaskDone()
    assert task.dict() == {"type": "task_done", "id": task.id}
    assert isinstance(task.dict()["id"], UUID)
    assert task.dict(exclude_unset=True) == {}


def test_v1_parse_obj_and_parse_raw() -> None:
    token = inference.TokenResponse(request_id="r", text="hi", token_id=3, log_prob=-0.5)
    assert inference.TokenResponse.parse_raw(token.json()) == token
    assert inference.TokenResponse.parse_raw(token.json().encode()) == token
    assert inference.TokenResponse.parse_raw(token.json().encode("utf-16"), encoding="utf-16") == token
    assert inference.TokenResponse.parse_obj(json.loads(token.json())) == token
    assert inference.WorkerConfig.parse_obj({"model_config": {"model_id": "x"}}).model_config.model_id == "x"
    with pytest.raises(ValidationError):
        inference.TokenResponse.parse_raw('{"text": "hi"}')
    with pytest.raises(TypeError, match="JSON only"):
        inference.TokenResponse.parse_raw(token.json(), content_type="application/pickle")
    with pytest.raises(TypeError, match="JSON only"):
        inference.TokenResponse.parse_raw(token.json(), allow_pickle=True)


def test_v1_copy_update_is_not_validated_and_leaves_the_original() -> None:
    scale = protocol.RateSummaryTask(full_text="t", summary="s")
    updated = scale.copy(update={"summary": "new"})
    assert (updated.summary, scale.summary) == ("new", "s")
    assert updated.id == scale.id
    unvalidated = scale.copy(update={"summary": 42})  # v1 semantics: update is not validated
    assert unvalidated.summary == 42  # type: ignore[comparison-overlap]


def test_v1_copy_deep_and_include() -> None:
    conversation = protocol.Conversation(
        messages=[protocol.ConversationMessage(text="a", is_assistant=False)]
    )
    shallow, deep = conversation.copy(), conversation.copy(deep=True)
    assert shallow.messages is conversation.messages
    assert deep.messages is not conversation.messages and deep == conversation
    request = protocol.TaskRequest(type=protocol.TaskRequestType.summarize_story, lang="de")
    partial = request.copy(include={"lang"}, update={"collective": True})
    assert (partial.type, partial.lang, partial.collective) == (protocol.TaskRequestType.random, "de", True)


def test_v1_construct_schema_and_schema_json() -> None:
    built = protocol.TaskAck.construct(message_id="m")
    assert built.message_id == "m"
    assert protocol.TaskAck.schema() == protocol.TaskAck.model_json_schema(by_alias=True)
    assert "model_config" in inference.WorkerConfig.schema()["properties"]
    assert json.loads(inference.WorkerConfig.schema_json()) == inference.WorkerConfig.schema()


def test_pydantic_own_deprecated_methods_are_not_what_runs() -> None:
    # the base class overrides them; pydantic's versions would raise a DeprecationWarning here
    for name in ("dict", "json", "copy", "parse_obj", "parse_raw", "construct", "schema", "schema_json"):
        assert getattr(oasst_compat.OasstModel, name) is not getattr(BaseModel, name), name


# ---------------------------------------------------------------------- the model_config field


def test_model_config_on_the_class_is_the_pydantic_config() -> None:
    for cls in (inference.WorkerConfig, inference.WorkParameters):
        config = cls.model_config
        assert isinstance(config, dict)
        assert config["serialize_by_alias"] is True and config["validate_by_name"] is True
        assert "model_config_" in cls.model_fields
        assert cls.model_fields["model_config_"].alias == "model_config"


def test_model_config_on_an_instance_is_the_field() -> None:
    config = _worker_config()
    assert isinstance(config.model_config, ModelConfig)
    assert config.model_config is config.model_config_
    assert config.model_config.max_total_length == 1792
    assert config.compat_hash == "OpenAssistant/oasst-sft-6-llama-30b-1792-512-f"


def test_model_config_construction_by_wire_name_or_field_name() -> None:
    by_alias = inference.WorkerConfig(model_config=ModelConfig(model_id="a"))
    by_name = inference.WorkerConfig(model_config_=ModelConfig(model_id="a"))  # type: ignore[call-arg]
    from_wire = inference.WorkerConfig.model_validate({"model_config": {"model_id": "a"}})
    from_json = inference.WorkerConfig.model_validate_json('{"model_config": {"model_id": "a"}}')
    assert by_alias == by_name == from_wire == from_json
    with pytest.raises(ValidationError, match="model_config"):
        inference.WorkerConfig.model_validate({"max_parallel_requests": 2})


def test_model_config_dump_repr_equality_pickle_copy() -> None:
    config = _worker_config()
    assert list(config.model_dump()) == ["model_config", "max_parallel_requests"]
    assert json.loads(config.model_dump_json())["model_config"]["max_total_length"] == 1792
    assert repr(config).startswith("WorkerConfig(model_config=ModelConfig(model_id=")
    assert config == _worker_config() and config != _worker_config("other")
    assert pickle.loads(pickle.dumps(config)) == config
    assert copy.copy(config).model_config is config.model_config
    deep = copy.deepcopy(config)
    assert deep == config and deep.model_config is not config.model_config
    assert (
        inference.WorkerConfig.model_construct(model_config_=ModelConfig(model_id="c")).model_config.model_id
        == "c"
    )


def test_model_config_assignment_and_copy_update() -> None:
    params = inference.WorkParameters(model_config=ModelConfig(model_id="a"), seed=7)
    params.model_config = ModelConfig(model_id="b")
    assert params.model_config.model_id == "b" and params.model_dump()["model_config"]["model_id"] == "b"
    for key in ("model_config", "model_config_"):
        copied = params.model_copy(update={key: ModelConfig(model_id="c")})
        assert copied.model_config.model_id == "c" and params.model_config.model_id == "b"
        assert copied.seed == 7 and "model_config_" in copied.model_fields_set
    deep = params.model_copy(update={"do_sample": False}, deep=True)
    assert deep.do_sample is False and deep.model_config is not params.model_config
    assert params.copy(update={"model_config": ModelConfig(model_id="d")}).model_config.model_id == "d"


def test_model_config_survives_subclassing_and_type_adapters() -> None:
    class MyConfig(inference.WorkerConfig):
        label: str = "mine"

    mine = MyConfig(model_config=ModelConfig(model_id="z"))
    assert mine.model_config.model_id == "z" and MyConfig.model_config["serialize_by_alias"] is True
    assert mine.model_dump()["model_config"]["model_id"] == "z"
    assert from_pydantic(mine) == core_inference.WorkerConfig(
        model_config=core_model_configs.ModelConfig(model_id="z")
    )
    adapter = TypeAdapter(list[inference.WorkerConfig])
    configs = adapter.validate_json(b'[{"model_config": {"model_id": "q"}}]')
    assert configs[0].model_config.model_id == "q"
    assert json.loads(adapter.dump_json(configs))[0]["model_config"]["model_id"] == "q"


def test_model_config_nested_in_work_request() -> None:
    thread = inference.Thread(messages=[_message_read("prompter")])
    request = inference.WorkRequest(
        thread=thread, parameters=inference.WorkParameters(model_config=MODEL_CONFIGS["_lorem"])
    )
    decoded = inference.WorkRequest.parse_raw(request.json())
    assert decoded.parameters.model_config.is_lorem
    assert (
        decoded.parameters.model_config.compat_hash == core_model_configs.MODEL_CONFIGS["_lorem"].compat_hash
    )
    assert msgspec.json.decode(
        request.json(), type=core_inference.WorkRequest
    ).parameters.model_config.is_lorem


def test_plain_wire_keys_in_and_schema() -> None:
    parameter = inference.PluginOpenAPIParameter(
        name="q", in_="query", description="the query", required=True, schema_={"type": "string"}
    )
    assert parameter.model_dump() == {
        "name": "q",
        "in_": "query",
        "description": "the query",
        "required": True,
        "schema_": {"type": "string"},
    }
    assert inference.PluginOpenAPIParameter.model_validate_json(parameter.model_dump_json()) == parameter


def test_importing_the_views_does_not_warn() -> None:
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import oasst_compat.schemas.protocol, oasst_compat.schemas.inference, oasst_compat.model_configs;"
        "from oasst_compat.schemas import inference;"
        "inference.WorkerConfig.model_json_schema(); inference.PluginOpenAPIParameter.model_json_schema()"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------ validation rules


def _invalid(model: type[BaseModel], data: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    locations = [".".join(str(p) for p in error["loc"]) for error in caught.value.errors()]
    assert any(where in location for location in locations) or where == "", locations


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_text_reply_must_not_be_blank(text: str) -> None:
    data = {"user": USER, "message_id": "m", "user_message_id": "u", "text": text}
    _invalid(protocol.TextReplyToMessage, data, "")


def test_text_reply_is_stripped() -> None:
    reply = protocol.TextReplyToMessage(
        user=protocol.User(**USER), message_id="m", user_message_id="u", text="  hello \n"
    )
    assert reply.text == "hello"
    assert from_pydantic(reply) == core_protocol.TextReplyToMessage(
        user=core_protocol.User(**USER), message_id="m", user_message_id="u", text="hello"
    )


@pytest.mark.parametrize("rating", [0, -1])
def test_message_rating_must_be_positive(rating: int) -> None:
    _invalid(protocol.MessageRating, {"user": USER, "message_id": "m", "rating": rating}, "rating")


def test_message_ranking_must_not_be_empty() -> None:
    _invalid(protocol.MessageRanking, {"user": USER, "message_id": "m", "ranking": []}, "ranking")


@pytest.mark.parametrize(
    ("labels", "where"), [({"nope": 0.5}, "labels"), ({"spam": 1.5}, "labels"), ({"spam": -0.1}, "labels")]
)
def test_text_labels_keys_and_values(labels: dict[str, float], where: str) -> None:
    data = {"user": USER, "text": "t", "labels": labels, "message_id": str(uuid4())}
    _invalid(protocol.TextLabels, data, where)


def test_text_labels_keys_are_text_label_members() -> None:
    labels = protocol.TextLabels(
        user=protocol.User(**USER),
        text="t",
        labels={"spam": 0.0, "quality": 1.0},  # type: ignore[dict-item]
        message_id=uuid4(),
    )
    assert all(isinstance(key, protocol.TextLabel) for key in labels.labels)
    assert labels.labels[protocol.TextLabel.quality] == 1.0
    assert labels.has_message_id
    assert json.loads(labels.model_dump_json())["labels"] == {"spam": 0.0, "quality": 1.0}


@pytest.mark.parametrize("level", [-1, 10])
def test_safety_level_range(level: int) -> None:
    _invalid(inference.SafetyParameters, {"level": level}, "level")


def test_enum_literal_tag_and_required_checks() -> None:
    _invalid(protocol.TaskRequest, {"type": "nope"}, "type")
    _invalid(protocol.User, {"id": "1", "display_name": "x", "auth_method": "fax"}, "auth_method")
    _invalid(protocol.SummarizeStoryTask, {"type": "task_done", "story": "s"}, "type")
    _invalid(protocol.SummarizeStoryTask, {}, "story")
    _invalid(inference.MessageRead, {**_message_read().model_dump(), "created_at": "yesterday"}, "created_at")
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        TypeAdapter(protocol.AnyTask).validate_python({"type": "nope"})
    with pytest.raises(ValidationError, match="Unable to extract tag"):
        TypeAdapter(inference.WorkerResponse).validate_json(b'{"text": "no tag"}')


def test_unknown_fields_are_ignored() -> None:
    token = inference.TokenResponse.model_validate_json(b'{"text": "a", "token_id": 1, "extra": [1, 2]}')
    assert token.model_dump() == {
        "request_id": None,
        "response_type": "token",
        "text": "a",
        "log_prob": None,
        "token_id": 1,
    }


def test_cached_stats_names_are_upgraded_like_the_struct() -> None:
    stats = protocol.AllCachedStatsResponse.model_validate(
        {
            "stats_by_name": {
                name: {"name": name, "last_updated": "2023-01-01T00:00:00Z", "stats": {}}
                for name in ("human_messages_by_lang", "custom")
            }
        }
    )
    known = stats.stats_by_name["human_messages_by_lang"]
    assert known.name is protocol.CachedStatsName.human_messages_by_lang
    assert stats.stats_by_name["custom"].name == "custom"
    assert protocol.CachedStatsName.human_messages_by_lang in stats.stats_by_name
    assert json.loads(stats.model_dump_json())["stats_by_name"]["human_messages_by_lang"]["name"] == (
        "human_messages_by_lang"
    )


# ----------------------------------------------------------------- properties and methods


def test_conversation_turn_and_length() -> None:
    empty = protocol.Conversation()
    assert len(empty) == 0 and empty.is_prompter_turn
    prompter = protocol.ConversationMessage(text="q", is_assistant=False)
    assistant = protocol.ConversationMessage(text="a", is_assistant=True)
    assert not protocol.Conversation(messages=[prompter]).is_prompter_turn
    conversation = protocol.Conversation(messages=[prompter, assistant])
    assert conversation.is_prompter_turn and len(conversation) == 2


@pytest.mark.parametrize("key", sorted(core_model_configs.MODEL_CONFIGS))
def test_model_config_properties_match_the_struct(key: str) -> None:
    struct, view = core_model_configs.MODEL_CONFIGS[key], MODEL_CONFIGS[key]
    assert (view.compat_hash, view.is_llama, view.is_lorem) == (
        struct.compat_hash,
        struct.is_llama,
        struct.is_lorem,
    )
    assert inference.WorkerConfig(model_config=view).compat_hash == struct.compat_hash


def test_message_read_is_assistant() -> None:
    assert _message_read("assistant").is_assistant
    assert not _message_read("prompter").is_assistant


def test_collect_returns_views_of_this_machine() -> None:
    hardware = inference.WorkerHardwareInfo.collect()
    assert type(hardware) is inference.WorkerHardwareInfo
    assert hardware.cpu_count_logical == core_inference.WorkerHardwareInfo.collect().cpu_count_logical
    metrics = inference.WorkerMetricsInfo.collect()
    assert type(metrics) is inference.WorkerMetricsInfo and metrics.created_at.tzinfo is not None


def test_parsing_never_reads_the_local_machine() -> None:
    sent = {
        "uname_sysname": "Elsewhere",
        "uname_release": "1",
        "uname_version": "1",
        "uname_machine": "m",
        "uname_processor": "p",
        "cpu_count_physical": 1024,
        "cpu_count_logical": 2048,
        "cpu_freq_max": 1.0,
        "cpu_freq_min": 1.0,
        "mem_total": 1,
        "swap_total": 1,
        "gpus": [{"name": "g", "total_memory": 5}],
    }
    assert inference.WorkerHardwareInfo.model_validate(sent).model_dump() == {
        **sent,
        "nvidia_driver_version": None,
    }


# ------------------------------------------------------------------------ class hierarchy


def test_tags_are_fields_with_the_tag_as_default() -> None:
    assert protocol.TaskDone().type == "task_done"
    assert protocol.SummarizeStoryTask.model_fields["type"].default == "summarize_story"
    assert inference.TokenResponse(text="a", token_id=1).response_type == "token"
    assert inference.PingRequest().request_type == "ping"
    assert protocol.PrompterReplyTask(conversation=protocol.Conversation()).type == "prompter_reply"


def test_isinstance_dispatch_like_the_reference() -> None:
    task = TypeAdapter(protocol.AnyTask).validate_python({"type": "rank_assistant_replies", **_rank_fields()})
    assert isinstance(task, protocol.RankAssistantRepliesTask)
    assert isinstance(task, protocol.RankConversationRepliesTask)
    assert isinstance(task, protocol.Task) and not isinstance(task, protocol.Interaction)
    label = protocol.LabelAssistantReplyTask(
        message_id=uuid4(), valid_labels=["spam"], conversation=protocol.Conversation()
    )
    assert isinstance(label, protocol.LabelConversationReplyTask) and isinstance(
        label, protocol.AbstractLabelTask
    )
    assert issubclass(inference.TokenResponse, inference.WorkerResponseBase)
    assert issubclass(inference.WorkRequest, inference.WorkerRequestBase)
    assert issubclass(protocol.FrontEndUser, protocol.User)


def _rank_fields() -> dict[str, Any]:
    return {
        "conversation": {"messages": []},
        "replies": ["a", "b"],
        "reply_messages": [{"text": "a", "is_assistant": True}, {"text": "b", "is_assistant": True}],
        "message_tree_id": str(uuid4()),
        "ranking_parent_id": str(uuid4()),
        "reveal_synthetic": False,
    }


def test_enums_exceptions_and_utils_are_the_core_objects() -> None:
    assert protocol.TextLabel is core_protocol.TextLabel
    assert protocol.TextLabel.spam.widget is protocol.LabelWidget.yes_no
    assert inference.MessageState is core_inference.MessageState
    assert inference.make_seed is core_inference.make_seed
    assert compat_exceptions.OasstError is core_exceptions.OasstError
    assert compat_exceptions.OasstErrorCode is core_exceptions.OasstErrorCode
    assert compat_utils.utcnow is core_utils.utcnow and compat_utils.Anonymizer is core_utils.Anonymizer


def test_default_factories() -> None:
    params = [inference.WorkParameters(model_config=ModelConfig(model_id="m")) for _ in range(3)]
    assert all(0 <= p.seed <= inference.MAX_SEED for p in params)
    assert len({p.seed for p in params}) > 1, "seeds are drawn per message"
    assert params[0].sampling_parameters == inference.SamplingParameters()
    assert params[0].plugins == [] and params[0].plugins is not params[1].plugins
    request = inference.WorkRequest(thread=inference.Thread(messages=[]), parameters=params[0])
    assert request.created_at.tzinfo is not None and request.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert str(UUID(request.id)) == request.id
    assert request.safety_parameters.level == 0


# ------------------------------------------------------------------------------ conversions


def test_conversions_keep_types_and_are_independent() -> None:
    struct = core_inference.WorkRequest(
        thread=core_inference.Thread(messages=[]),
        parameters=core_inference.WorkParameters(
            model_config=core_model_configs.MODEL_CONFIGS["distilgpt2"], seed=5
        ),
    )
    view = to_pydantic(struct)
    assert isinstance(view, inference.WorkRequest)
    assert isinstance(view.parameters.model_config, ModelConfig)
    assert view.created_at == struct.created_at and view.parameters.seed == struct.parameters.seed
    back = from_pydantic(view)
    assert back == struct and back is not struct
    view.parameters.seed = 1
    view.parameters.model_config.max_input_length = 1
    assert (struct.parameters.seed, back.parameters.seed) == (5, 5)
    assert (
        struct.parameters.model_config.max_input_length
        == back.parameters.model_config.max_input_length
        == 512
    )


def test_conversions_reject_what_they_cannot_map() -> None:
    from oasst_shared.schemas.base import OasstStruct

    with pytest.raises(TypeError, match="no Pydantic views"):
        oasst_compat.view_class(OasstStruct)
    broken = protocol.TaskAck.model_construct(message_id=5)  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError, match="message_id"):
        from_pydantic(broken)


def test_importing_the_core_does_not_import_pydantic_nor_the_views() -> None:
    code = (
        "import sys; import oasst_shared.schemas.inference, oasst_shared.schemas.protocol;"
        "assert 'pydantic' not in sys.modules, 'pydantic imported';"
        "import oasst_compat;"
        "assert 'oasst_compat.schemas.protocol' not in sys.modules, 'views imported eagerly'"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_old_pydantic_is_refused_loudly() -> None:
    # before 2.11, pydantic would dump `model_config_` instead of the wire key `model_config`
    code = "import pydantic; pydantic.VERSION = '2.10.6'; import oasst_compat"
    result = run_python(code)
    assert result.returncode != 0
    assert "ImportError: oasst_compat needs pydantic >= 2.11, found 2.10.6" in result.stderr
