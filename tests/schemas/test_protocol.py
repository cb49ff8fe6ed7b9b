"""The backend protocol structs: round trips, the reference's wire format, bad input, behaviour."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from oasst_shared.exceptions.error_codes import OasstErrorCode
from oasst_shared.schemas import protocol
from tests.support.decoding import assert_rejected, decode

USER = {"id": "u1", "display_name": "Jörg", "auth_method": "discord"}


def user() -> protocol.User:
    return protocol.User.parse_obj(USER)


MESSAGE_ID = "6f1c1f8e-9d39-4a9b-8d5e-0c1d2e3f4a5b"


def path_error(path: str) -> str:
    """A regex for msgspec's error suffix naming ``path`` (or a key of the object there)."""
    return r"- at (`key` in )?" + re.escape(f"`{path}`")


# ----------------------------------------------------------------------------- round trips


# The round trips of every struct and union: tests/schemas/test_registry.py (one test over the registry).


def test_reference_document_of_a_task_decodes() -> None:
    """A document as the reference's ``.json()`` writes it: mixin field first, escapes."""
    task_id = uuid4()
    doc = f'{{"hint": "Say \\u00bfqu\\u00e9?", "id": "{task_id}", "type": "initial_prompt"}}'
    task = decode(doc, protocol.AnyTask)
    assert type(task) is protocol.InitialPromptTask
    assert task == protocol.InitialPromptTask(id=task_id, hint="Say ¿qué?")
    assert json.loads(task.json()) == json.loads(doc)


def test_reference_document_with_datetimes_decodes() -> None:
    user_id = uuid4()
    doc = (
        '{"time_frame": "day", "last_updated": "2023-05-01T12:00:00.250000+00:00", '
        '"leaderboard": [{"rank": 1, "user_id": "' + str(user_id) + '", "highlighted": false, '
        '"username": "x", "auth_method": "local", "display_name": "X", "leader_score": 7, "level": 3, '
        '"base_date": "2023-04-30T00:00:00", "modified_date": null}]}'
    )
    stats = protocol.LeaderboardStats.parse_raw(doc)
    assert stats.last_updated == datetime(2023, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    assert stats.last_updated.utcoffset() == timedelta(0)
    score = stats.leaderboard[0]
    assert score.user_id == user_id
    assert score.base_date == datetime(2023, 4, 30)  # naive stays naive
    assert score.base_date.tzinfo is None
    assert score.prompts == 0  # missing optional field -> default
    out = json.loads(stats.json())
    assert out["last_updated"] in ("2023-05-01T12:00:00.250000Z", "2023-05-01T12:00:00.250000+00:00")
    assert out["leaderboard"][0]["base_date"] == "2023-04-30T00:00:00"
    assert out["leaderboard"][0]["streak_days"] is None  # every field emitted, nulls included
    # a UTC time written with Z decodes to the same instant
    assert protocol.LeaderboardStats.parse_raw(doc.replace("+00:00", "Z")) == stats


def test_uuids_are_written_lower_case_and_read_in_any_case() -> None:
    upper = MESSAGE_ID.upper()
    rev = protocol.MessageRevision.parse_raw(
        json.dumps({"id": upper, "text": "t", "message_id": MESSAGE_ID, "user_id": None})
    )
    assert rev.id == UUID(MESSAGE_ID)
    assert json.loads(rev.json())["id"] == MESSAGE_ID


# ------------------------------------------------------------------------------ bad input


def reply_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "type": "text_reply_to_message",
        "user": USER,
        "message_id": "m1",
        "user_message_id": "um1",
        "text": "hello",
    }
    doc.update(changes)
    return doc


def labels_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "type": "text_labels",
        "user": USER,
        "text": "t",
        "labels": {"spam": 0.5},
        "message_id": MESSAGE_ID,
    }
    doc.update(changes)
    return doc


BAD_INTERACTIONS = [
    pytest.param(reply_doc(text=""), "length >= 1", "$.text", id="reply-text-empty"),
    pytest.param(reply_doc(text=3), "Expected `str`, got `int`", "$.text", id="reply-text-int"),
    pytest.param(
        {"type": "message_rating", "user": USER, "message_id": "m", "rating": 0},
        ">= 1",
        "$.rating",
        id="rating-0",
    ),
    pytest.param(
        {"type": "message_rating", "user": USER, "message_id": "m", "rating": -1},
        ">= 1",
        "$.rating",
        id="rating-negative",
    ),
    pytest.param(
        {"type": "message_rating", "user": USER, "message_id": "m", "rating": "5"},
        "Expected `int`, got `str`",
        "$.rating",
        id="rating-str",
    ),
    pytest.param(
        {"type": "message_ranking", "user": USER, "message_id": "m", "ranking": []},
        "length >= 1",
        "$.ranking",
        id="ranking-empty",
    ),
    pytest.param(
        {"type": "message_ranking", "user": USER, "message_id": "m", "ranking": [0, "1"]},
        "Expected `int`, got `str`",
        "$.ranking[1]",
        id="ranking-item-str",
    ),
    pytest.param(labels_doc(labels={"spam": 1.5}), "<= 1.0", "$.labels[...]", id="label-above-1"),
    pytest.param(labels_doc(labels={"spam": -0.1}), ">= 0.0", "$.labels[...]", id="label-below-0"),
    pytest.param(
        labels_doc(labels={"bogus": 0.5}), "Invalid enum value 'bogus'", "$.labels", id="label-unknown"
    ),
    pytest.param(labels_doc(message_id="not-a-uuid"), "Invalid UUID", "$.message_id", id="labels-bad-uuid"),
    pytest.param(
        reply_doc(user={"id": "u", "display_name": "d", "auth_method": "myspace"}),
        "Invalid enum value 'myspace'",
        "$.user.auth_method",
        id="user-auth-method",
    ),
    pytest.param(reply_doc(type="text_reply"), "Invalid value 'text_reply'", "$.type", id="unknown-tag"),
    pytest.param(reply_doc(type=1), "Expected `str`", "$.type", id="tag-not-a-string"),
]


@pytest.mark.parametrize(("doc", "problem", "path"), BAD_INTERACTIONS)
def test_bad_interactions_are_rejected_with_their_path(doc: Any, problem: str, path: str) -> None:
    assert_rejected(doc, protocol.AnyInteraction, problem, path_error(path))


@pytest.mark.parametrize(
    ("cls", "doc", "problem", "path"),
    [
        (protocol.MessageRating, {"user": USER, "message_id": "m", "rating": 0}, ">= 1", "$.rating"),
        (
            protocol.MessageRanking,
            {"user": USER, "message_id": "m", "ranking": []},
            "length >= 1",
            "$.ranking",
        ),
        (protocol.TextLabels, labels_doc(labels={"humor": 2}), "<= 1.0", "$.labels[...]"),
    ],
)
def test_bad_input_rejected_by_parse_raw_and_parse_obj(cls: Any, doc: Any, problem: str, path: str) -> None:
    attempts: tuple[Callable[[], object], ...] = (
        lambda: cls.parse_raw(json.dumps(doc)),
        lambda: cls.parse_obj(doc),
    )
    for attempt in attempts:
        with pytest.raises(msgspec.ValidationError, match=re.escape(problem) + ".*" + path_error(path)):
            attempt()


@pytest.mark.parametrize("text", [" ", "   ", "\n\t ", "\u3000"])
def test_whitespace_only_reply_is_rejected(text: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="`text`"):
        decode(reply_doc(text=text), protocol.AnyInteraction)
    # nested: the error still says where
    docs = [reply_doc(), reply_doc(text=text)]
    with pytest.raises(msgspec.ValidationError, match=r"`text`.*" + path_error("$[1]")):
        decode(docs, list[protocol.AnyInteraction])


def test_reply_text_is_stripped() -> None:
    assert decode(reply_doc(text="  hi there \n"), protocol.AnyInteraction).text == "hi there"
    built = protocol.TextReplyToMessage(user=user(), message_id="m", user_message_id="u", text="\tok ")
    assert built.text == "ok"


def test_deep_paths_are_named() -> None:
    message = {"text": "t", "is_assistant": False}
    tree = {"id": MESSAGE_ID, "messages": [message, message, dict(message, created_date="yesterday")]}
    with pytest.raises(
        msgspec.ValidationError, match=r"Invalid RFC3339.*" + path_error("$.messages[2].created_date")
    ):
        protocol.MessageTree.parse_raw(json.dumps(tree))

    task = {
        "type": "assistant_reply",
        "conversation": {"messages": [message, message, message, {"is_assistant": True}]},
    }
    with pytest.raises(
        msgspec.ValidationError,
        match=r"missing required field `text`.*" + path_error("$.conversation.messages[3]"),
    ):
        decode(task, protocol.AnyTask)


@pytest.mark.parametrize(
    ("cls", "doc", "field"),
    [
        (protocol.TaskAck, {}, "message_id"),
        (protocol.User, {"id": "u", "display_name": "d"}, "auth_method"),
        (protocol.MessageTree, {"messages": []}, "id"),
        (protocol.RateSummaryTask, {"full_text": "f"}, "summary"),
        (protocol.LeaderboardStats, {"time_frame": "day", "leaderboard": []}, "last_updated"),
    ],
)
def test_missing_required_field_is_named(cls: Any, doc: Any, field: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"Object missing required field `{field}`"):
        cls.parse_raw(json.dumps(doc))


@pytest.mark.parametrize(
    "union", [protocol.AnyTask, protocol.AnyInteraction], ids=["AnyTask", "AnyInteraction"]
)
def test_missing_tag_is_an_error_not_a_default_member(union: Any) -> None:
    """The reference's plain union made a typeless task a TaskDone; ours names `type`."""
    for doc in ({"id": MESSAGE_ID}, {}, {"user": USER, "text": "t"}):
        with pytest.raises(msgspec.ValidationError, match="missing required field `type`"):
            decode(doc, union)


def test_tag_of_the_other_union_is_rejected() -> None:
    with pytest.raises(
        msgspec.ValidationError, match=r"Invalid value 'text_labels'.*" + path_error("$.type")
    ):
        decode(labels_doc(), protocol.AnyTask)
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value 'task_done'.*" + path_error("$.type")):
        decode({"type": "task_done"}, protocol.AnyInteraction)


def test_not_an_object_is_rejected() -> None:
    for raw, got in ((b"[]", "array"), (b'"task_done"', "str"), (b"null", "null")):
        with pytest.raises(msgspec.ValidationError, match=f"Expected `object`, got `{got}`"):
            decode(raw, protocol.AnyTask)
    with pytest.raises(msgspec.DecodeError):
        decode(b'{"type": "task_done"', protocol.AnyTask)


# ----------------------------------------------------------------- rules on construction


def test_construction_enforces_the_rules() -> None:
    author = user()
    with pytest.raises(ValueError, match="`text`"):
        protocol.TextReplyToMessage(user=author, message_id="m", user_message_id="u", text="  ")
    with pytest.raises(ValueError, match="`text`"):
        protocol.TextReplyToMessage(user=author, message_id="m", user_message_id="u", text="")
    for rating in (0, -1):
        with pytest.raises(ValueError, match="`rating`"):
            protocol.MessageRating(user=author, message_id="m", rating=rating)
    with pytest.raises(ValueError, match="`ranking`"):
        protocol.MessageRanking(user=author, message_id="m", ranking=[])
    mid = UUID(MESSAGE_ID)
    for labels in ({"spam": 1.5}, {"spam": -0.1}, {protocol.TextLabel.quality: 1.01}):
        with pytest.raises(ValueError, match="`labels"):
            protocol.TextLabels(user=author, text="t", labels=labels, message_id=mid)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown label 'bogus'"):
        protocol.TextLabels(user=author, text="t", labels={"bogus": 0.5}, message_id=mid)  # type: ignore[dict-item]


def test_construction_accepts_the_boundaries() -> None:
    author = user()
    assert protocol.MessageRating(user=author, message_id="m", rating=1).rating == 1
    assert protocol.MessageRanking(user=author, message_id="m", ranking=[0]).ranking == [0]
    labels = protocol.TextLabels(
        user=author,
        text="t",
        labels={"spam": 0.0, "quality": 1.0},  # type: ignore[dict-item]
        message_id=UUID(MESSAGE_ID),
    )
    # plain string keys become TextLabel members
    assert labels.labels == {protocol.TextLabel.spam: 0.0, protocol.TextLabel.quality: 1.0}
    assert all(type(k) is protocol.TextLabel for k in labels.labels)


def test_construction_names_missing_and_unknown_arguments() -> None:
    with pytest.raises(TypeError, match="Missing required argument 'text'"):
        protocol.TextReplyToMessage(user=user(), message_id="m", user_message_id="u")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Unexpected keyword argument 'colour'"):
        protocol.TaskAck(message_id="m", colour="red")  # type: ignore[call-arg]


# -------------------------------------------------------------------------------- behaviour


def conversation(*roles: bool) -> protocol.Conversation:
    return protocol.Conversation(
        messages=[protocol.ConversationMessage(text=f"m{i}", is_assistant=a) for i, a in enumerate(roles)]
    )


def test_conversation_length_and_turn() -> None:
    assert len(protocol.Conversation()) == 0
    assert protocol.Conversation().is_prompter_turn
    assert len(conversation(False, True, False)) == 3
    assert not conversation(False).is_prompter_turn
    assert conversation(False, True).is_prompter_turn
    assert not conversation(False, True, False).is_prompter_turn


def test_text_labels_has_message_id() -> None:
    labels = protocol.TextLabels.parse_obj(labels_doc())
    assert labels.has_message_id
    assert labels.message_id == UUID(MESSAGE_ID)


def test_task_type_attributes_and_dispatch() -> None:
    expected = {
        protocol.TaskDone: "task_done",
        protocol.SummarizeStoryTask: "summarize_story",
        protocol.RateSummaryTask: "rate_summary",
        protocol.InitialPromptTask: "initial_prompt",
        protocol.ReplyToConversationTask: "reply_to_conversation",
        protocol.PrompterReplyTask: "prompter_reply",
        protocol.AssistantReplyTask: "assistant_reply",
        protocol.RankInitialPromptsTask: "rank_initial_prompts",
        protocol.RankConversationRepliesTask: "rank_conversation_replies",
        protocol.RankPrompterRepliesTask: "rank_prompter_replies",
        protocol.RankAssistantRepliesTask: "rank_assistant_replies",
        protocol.LabelInitialPromptTask: "label_initial_prompt",
        protocol.LabelConversationReplyTask: "label_conversation_reply",
        protocol.LabelPrompterReplyTask: "label_prompter_reply",
        protocol.LabelAssistantReplyTask: "label_assistant_reply",
    }
    assert set(expected) == set(typing.get_args(protocol.AnyTask))
    for cls, tag in expected.items():
        assert getattr(cls, "type") == tag  # noqa: B009 - the class attribute set from the tag
    task = decode({"type": "prompter_reply", "conversation": {"messages": []}, "hint": "h"}, protocol.AnyTask)
    assert type(task) is protocol.PrompterReplyTask  # the exact member, not its parent
    assert isinstance(task, protocol.ReplyToConversationTask)
    assert isinstance(task, protocol.Task)
    assert task.type == "prompter_reply"
    assert task.hint == "h"
    assert isinstance(task.id, UUID)
    assert protocol.TaskDone().type == "task_done"
    label_task = decode(
        {
            "type": "label_assistant_reply",
            "message_id": MESSAGE_ID,
            "valid_labels": ["spam"],
            "conversation": {},
        },
        protocol.AnyTask,
    )
    assert isinstance(label_task, protocol.LabelConversationReplyTask)
    assert isinstance(label_task, protocol.AbstractLabelTask)


def test_interaction_type_attributes() -> None:
    tags = {cls: cls.type for cls in typing.get_args(protocol.AnyInteraction)}
    assert tags == {
        protocol.TextReplyToMessage: "text_reply_to_message",
        protocol.MessageRating: "message_rating",
        protocol.MessageRanking: "message_ranking",
        protocol.TextLabels: "text_labels",
    }
    interaction = decode(reply_doc(), protocol.AnyInteraction)
    assert isinstance(interaction, protocol.Interaction)
    assert interaction.type == "text_reply_to_message"
    assert json.loads(interaction.json())["type"] == "text_reply_to_message"


def test_page_results_have_typed_items() -> None:
    user = {
        **USER,
        "user_id": MESSAGE_ID,
        "enabled": True,
        "deleted": False,
        "notes": "",
        "show_on_leaderboard": True,
    }
    page = protocol.FrontEndUserPage.parse_raw(
        json.dumps({"sort_key": "k", "items": [user], "order": "asc", "next": "n"})
    )
    assert isinstance(page, protocol.PageResult)
    assert isinstance(page.items[0], protocol.FrontEndUser)
    assert isinstance(page.items[0], protocol.User)
    assert (page.prev, page.next) == (None, "n")
    messages = protocol.MessagePage.parse_raw(
        json.dumps({"sort_key": "k", "items": [{"text": "t", "is_assistant": True}], "order": "desc"})
    )
    assert isinstance(messages.items[0], protocol.Message)
    with pytest.raises(msgspec.ValidationError, match=path_error("$.items[0].is_assistant")):
        protocol.MessagePage.parse_raw(
            json.dumps({"sort_key": "k", "items": [{"text": "t", "is_assistant": "no"}], "order": "desc"})
        )
    with pytest.raises(msgspec.ValidationError, match=path_error("$.order")):
        protocol.MessagePage.parse_raw(json.dumps({"sort_key": "k", "items": [], "order": "up"}))


def test_copy_with_update() -> None:
    task = protocol.PrompterReplyTask(conversation=conversation(False, True), hint="h")
    changed = task.copy(update={"hint": "new"})
    assert type(changed) is protocol.PrompterReplyTask
    assert (changed.hint, task.hint) == ("new", "h")
    assert changed.id == task.id
    assert changed.conversation is task.conversation  # shallow by default, as in pydantic
    same = task.copy()
    assert same == task
    assert same is not task
    deep = task.copy(deep=True)
    assert deep == task
    assert deep.conversation is not task.conversation
    deep.conversation.messages.append(protocol.ConversationMessage(text="x", is_assistant=False))
    assert len(task.conversation) == 2


def test_dict_keeps_python_objects_and_the_tag() -> None:
    when = datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    mid, uid = uuid4(), uuid4()
    msg = protocol.Message(id=mid, text="t", is_assistant=False, created_date=when, user_id=uid)
    d = msg.dict()
    assert d["id"] == mid
    assert isinstance(d["id"], UUID)
    assert d["created_date"] is when
    assert d["parent_id"] is None  # every field, None included
    assert set(d) == {f.name for f in msgspec.structs.fields(protocol.Message)}

    labels = protocol.TextLabels.parse_obj(labels_doc())
    ld = labels.dict()
    assert ld["type"] == "text_labels"
    assert ld["user"] == USER  # nested structs as dicts
    assert ld["labels"] == {"spam": 0.5}
    assert ld["message_id"] == UUID(MESSAGE_ID)

    emoji = protocol.MessageEmojiRequest(user=user(), emoji=protocol.EmojiCode.thumbs_up)
    assert emoji.dict()["emoji"] == "+1"
    assert emoji.dict()["op"] == protocol.EmojiOp.togggle


def test_unknown_fields_are_ignored() -> None:
    doc = reply_doc(colour="red", user={**USER, "avatar": "x.png", "extra": {"deep": [1, 2]}})
    assert decode(doc, protocol.AnyInteraction) == decode(reply_doc(), protocol.AnyInteraction)
    page = protocol.MessagePage.parse_obj(
        {
            "sort_key": "k",
            "order": "asc",
            "items": [{"text": "t", "is_assistant": False, "new": 1}],
            "total": 3,
        }
    )
    assert page.items[0] == protocol.Message(text="t", is_assistant=False)


def test_missing_optional_fields_decode_to_defaults() -> None:
    req = protocol.TaskRequest.parse_raw("{}")
    assert req == protocol.TaskRequest()
    assert req.type is protocol.TaskRequestType.random
    assert (req.user, req.collective, req.lang) == (None, False, None)
    stats = protocol.SystemStats.parse_raw("{}")
    assert stats == protocol.SystemStats(all=0, active=0, active_by_lang={}, deleted=0, message_trees=0)
    emoji = protocol.MessageEmojiRequest.parse_obj({"user": USER, "emoji": "red_flag"})
    assert emoji.op is protocol.EmojiOp.togggle
    assert emoji.emoji is protocol.EmojiCode.red_flag
    task = decode({"type": "rate_summary", "full_text": "f", "summary": "s"}, protocol.AnyTask)
    assert task.scale == protocol.RatingScale(min=1, max=5)
    tree = protocol.MessageTree.parse_obj({"id": MESSAGE_ID})
    assert tree.messages == []
    assert tree.messages is not protocol.MessageTree.parse_obj({"id": MESSAGE_ID}).messages


def test_task_ids_are_fresh() -> None:
    a, b = protocol.TaskDone(), protocol.TaskDone()
    assert a.id != b.id
    assert a.id.version == 4
    assert decode({"type": "task_done"}, protocol.AnyTask).id not in (a.id, b.id)


def test_cached_stats_names() -> None:
    known = protocol.CachedStatsResponse.parse_obj(
        {"name": "users_accepted_tos", "last_updated": "2023-01-01T00:00:00Z", "stats": {"n": 1}}
    )
    assert known.name is protocol.CachedStatsName.users_accepted_tos
    other = protocol.CachedStatsResponse.parse_obj(
        {"name": "something_new", "last_updated": "2023-01-01T00:00:00Z", "stats": [1, 2]}
    )
    assert other.name == "something_new"
    assert not isinstance(other.name, protocol.CachedStatsName)
    both = protocol.AllCachedStatsResponse.parse_obj(
        {"stats_by_name": {"users_accepted_tos": known.dict(), "something_new": other.dict()}}
    )
    assert set(both.stats_by_name) == {protocol.CachedStatsName.users_accepted_tos, "something_new"}
    assert any(isinstance(k, protocol.CachedStatsName) for k in both.stats_by_name)
    assert json.loads(both.json())["stats_by_name"]["users_accepted_tos"]["name"] == "users_accepted_tos"


def test_error_response_body() -> None:
    body = protocol.OasstErrorResponse.parse_raw('{"message": "bad key", "error_code": 2}')
    assert body.error_code is OasstErrorCode.API_CLIENT_NOT_AUTHORIZED
    assert json.loads(body.json()) == {"error_code": 2, "message": "bad key"}
    with pytest.raises(msgspec.ValidationError, match=path_error("$.error_code")):
        protocol.OasstErrorResponse.parse_raw('{"message": "m", "error_code": 99999}')


def test_troll_score_keeps_the_backend_spelling() -> None:
    score = protocol.TrollScore.parse_obj(
        {
            "user_id": MESSAGE_ID,
            "username": "u",
            "auth_method": "local",
            "display_name": "U",
            "enabled": True,
            "deleted": False,
            "show_on_leaderboard": True,
            "lang_mismach": 4,
        }
    )
    assert score.lang_mismach == 4
    assert "lang_mismach" in json.loads(score.json())
