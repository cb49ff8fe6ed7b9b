"""The API client against prism serving the backend's OpenAPI spec (a real HTTP peer).

Prism checks every request against the spec (API key, parameters, body) and answers with bodies
valid for the spec's schemas: its examples by default, random ones with ``Prefer: dynamic=true``.
So each method is shown to send what the backend accepts and to decode what it may answer.
"""

from __future__ import annotations

import inspect
import re
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from oasst_shared.api_client import (
    OasstApiAuthError,
    OasstApiClient,
    OasstApiResponseError,
    OasstApiValidationError,
    UserStatsTimeFrame,
)
from oasst_shared.exceptions import OasstErrorCode
from oasst_shared.schemas import protocol
from tests.support.backend_mock import (
    DYNAMIC,
    MockServer,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

API_KEY = "prism-test-key-7f3a"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")
MESSAGE_ID = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
TASK_ID = uuid.UUID("9b2d8f3e-8c1f-4c36-9d6c-0d5f5f1f6a10")
WHEN = datetime(2023, 3, 1, 12, 0, tzinfo=timezone.utc)

ALL_TASK_TAGS = {member.__struct_config__.tag for member in typing.get_args(protocol.AnyTask)}


class Recorder:
    """Event hook of a caller-owned session: the requests the client sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(prism: MockServer, recorder: Recorder) -> AsyncIterator[OasstApiClient]:
    async with (
        httpx.AsyncClient(event_hooks={"request": [recorder]}) as session,
        OasstApiClient(
            prism.url, API_KEY, session, timeout=30, max_retries=0, bearer_token="root-token"
        ) as api,
    ):
        yield api


@pytest.fixture
async def dynamic_client(prism: MockServer) -> AsyncIterator[OasstApiClient]:
    async with (
        httpx.AsyncClient(headers=DYNAMIC) as session,
        OasstApiClient(
            prism.url, API_KEY, session, timeout=30, max_retries=0, bearer_token="root-token"
        ) as api,
    ):
        yield api


# One call of every public method, with the type its result must have. ``None`` results are
# the endpoints answering 204; the two label listings have no response schema in the spec.
Call = Callable[[OasstApiClient], Awaitable[Any]]
NO_SCHEMA = "no response schema in the spec"

CALLS: dict[str, tuple[Call, Any]] = {
    "post": (lambda c: c.post("/api/v1/tasks/", {"type": "random"}), dict),
    "get": (lambda c: c.get("/api/v1/stats/"), dict),
    "put": (lambda c: c.put(f"/api/v1/messages/{MESSAGE_ID}/tree/state", params={"halt": True}), dict),
    "delete": (lambda c: c.delete(f"/api/v1/messages/{MESSAGE_ID}"), type(None)),
    "fetch_task": (
        lambda c: c.fetch_task(protocol.TaskRequestType.initial_prompt, USER, lang="en"),
        protocol.Task,
    ),
    "fetch_random_task": (lambda c: c.fetch_random_task(USER, collective=True), protocol.Task),
    "ack_task": (lambda c: c.ack_task(TASK_ID, "frontend-msg-1", user=USER), type(None)),
    "nack_task": (lambda c: c.nack_task(str(TASK_ID), "cannot show it"), type(None)),
    "post_interaction": (
        lambda c: c.post_interaction(
            protocol.TextReplyToMessage(
                user=USER, message_id="fm-1", user_message_id="fm-2", text="Hello there"
            )
        ),
        protocol.Task,
    ),
    "fetch_task_availability": (lambda c: c.fetch_task_availability(USER, lang="de"), dict),
    "close_task": (lambda c: c.close_task("fm-1"), protocol.TaskDone),
    "post_text_labels": (
        lambda c: c.post_text_labels(
            protocol.TextLabels(
                user=USER, text="a reply", labels={"spam": 0.0, "quality": 0.75}, message_id=MESSAGE_ID
            )
        ),
        type(None),
    ),
    "fetch_valid_text_labels": (lambda c: c.fetch_valid_text_labels(MESSAGE_ID), NO_SCHEMA),
    "fetch_report_text_labels": (lambda c: c.fetch_report_text_labels(), NO_SCHEMA),
    "fetch_message": (lambda c: c.fetch_message(MESSAGE_ID, user=USER), protocol.Message),
    "fetch_message_conversation": (lambda c: c.fetch_message_conversation(MESSAGE_ID), protocol.Conversation),
    "fetch_message_tree": (
        lambda c: c.fetch_message_tree(MESSAGE_ID, include_spam=False, include_deleted=True),
        protocol.MessageTree,
    ),
    "fetch_message_children": (lambda c: c.fetch_message_children(str(MESSAGE_ID)), list),
    "fetch_message_descendants": (lambda c: c.fetch_message_descendants(MESSAGE_ID), protocol.MessageTree),
    "fetch_longest_conversation": (lambda c: c.fetch_longest_conversation(MESSAGE_ID), protocol.Conversation),
    "fetch_max_children": (lambda c: c.fetch_max_children(MESSAGE_ID), protocol.MessageTree),
    "post_message_emoji": (
        lambda c: c.post_message_emoji(MESSAGE_ID, protocol.EmojiCode.thumbs_up, USER, protocol.EmojiOp.add),
        (protocol.Message, type(None)),
    ),
    "delete_message": (lambda c: c.delete_message(MESSAGE_ID, user=USER), type(None)),
    "undelete_message": (lambda c: c.undelete_message(str(MESSAGE_ID)), type(None)),
    "fetch_frontend_message": (lambda c: c.fetch_frontend_message("discord/msg 1"), protocol.Message),
    "fetch_frontend_message_conversation": (
        lambda c: c.fetch_frontend_message_conversation("fm-1"),
        protocol.Conversation,
    ),
    "fetch_frontend_message_tree": (
        lambda c: c.fetch_frontend_message_tree("fm-1", include_spam=True),
        protocol.MessageTree,
    ),
    "fetch_frontend_message_children": (lambda c: c.fetch_frontend_message_children("fm-1"), list),
    "fetch_frontend_message_descendants": (
        lambda c: c.fetch_frontend_message_descendants("fm-1"),
        protocol.MessageTree,
    ),
    "fetch_user": (lambda c: c.fetch_user(uuid.uuid4(), api_client_id=uuid.uuid4()), protocol.FrontEndUser),
    "fetch_users_by_username": (
        lambda c: c.fetch_users_by_username(gte_username="a", gt_id=uuid.uuid4(), max_count=5, desc=True),
        list,
    ),
    "fetch_users_by_display_name": (
        lambda c: c.fetch_users_by_display_name(search_text="test", auth_method="discord", max_count=3),
        list,
    ),
    "fetch_users_cursor": (
        lambda c: c.fetch_users_cursor(after="x", sort_key="username", max_count=2),
        protocol.FrontEndUserPage,
    ),
    "fetch_user_messages": (
        lambda c: c.fetch_user_messages(
            uuid.uuid4(), start_date=WHEN, only_roots=True, max_count=3, user=USER
        ),
        list,
    ),
    "fetch_user_messages_cursor": (
        lambda c: c.fetch_user_messages_cursor(uuid.uuid4(), desc=True, lang="en"),
        protocol.MessagePage,
    ),
    "fetch_user_stats": (lambda c: c.fetch_user_stats(uuid.uuid4()), dict),
    "fetch_user_stats_time_frame": (
        lambda c: c.fetch_user_stats_time_frame(uuid.uuid4(), UserStatsTimeFrame.month),
        protocol.UserScore,
    ),
    "update_user": (lambda c: c.update_user(uuid.uuid4(), enabled=False, notes="spam wave"), type(None)),
    "delete_user": (lambda c: c.delete_user(uuid.uuid4()), type(None)),
    "delete_user_messages": (lambda c: c.delete_user_messages(uuid.uuid4(), user=USER), type(None)),
    "delete_frontend_user_messages": (
        lambda c: c.delete_frontend_user_messages("discord", "test user/1"),
        type(None),
    ),
    "fetch_frontend_users": (lambda c: c.fetch_frontend_users(search_text="te", max_count=10), list),
    "create_frontend_user": (
        lambda c: c.create_frontend_user(
            protocol.CreateFrontendUserRequest(id="1234", display_name="Test User", auth_method="discord")
        ),
        protocol.FrontEndUser,
    ),
    "fetch_frontend_user": (lambda c: c.fetch_frontend_user("discord", "test user/1"), protocol.FrontEndUser),
    "fetch_frontend_user_messages": (
        lambda c: c.fetch_frontend_user_messages("discord", "1234", end_date=WHEN, include_deleted=False),
        list,
    ),
    "fetch_frontend_user_messages_cursor": (
        lambda c: c.fetch_frontend_user_messages_cursor("discord", "1234", before="y", user="discord:1234"),
        protocol.MessagePage,
    ),
    "fetch_system_stats": (lambda c: c.fetch_system_stats(), protocol.SystemStats),
    "fetch_cached_stats": (
        lambda c: c.fetch_cached_stats(protocol.CachedStatsName.human_messages_by_lang),
        protocol.CachedStatsResponse,
    ),
    "fetch_all_cached_stats": (lambda c: c.fetch_all_cached_stats(), protocol.AllCachedStatsResponse),
    "fetch_leaderboard": (
        lambda c: c.fetch_leaderboard("week", max_count=10, user=USER),
        protocol.LeaderboardStats,
    ),
    "fetch_trollboard": (
        lambda c: c.fetch_trollboard(UserStatsTimeFrame.day, max_count=10, enabled=True),
        protocol.TrollboardStats,
    ),
    "create_api_client": (lambda c: c.create_api_client("test bot", "discord", trusted=True), str),
}

ITEM_TYPES: dict[str, type] = {
    "fetch_message_children": protocol.Message,
    "fetch_frontend_message_children": protocol.Message,
    "fetch_users_by_username": protocol.FrontEndUser,
    "fetch_users_by_display_name": protocol.FrontEndUser,
    "fetch_user_messages": protocol.Message,
    "fetch_frontend_users": protocol.FrontEndUser,
    "fetch_frontend_user_messages": protocol.Message,
}


def _public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(OasstApiClient)
        if not name.startswith("_") and inspect.iscoroutinefunction(member) and name not in ("close",)
    }


def _spec_operations(openapi: Any) -> list[tuple[str, str, re.Pattern[str], dict[str, Any]]]:
    operations = []
    for template, ops in openapi["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method, op in ops.items():
            operations.append((method.upper(), template, pattern, op))
    return operations


def _operation_for(openapi: Any, request: httpx.Request) -> dict[str, Any]:
    raw_path = request.url.raw_path.decode().split("?", 1)[0]
    matches = [
        (template.count("{"), op)
        for method, template, pattern, op in _spec_operations(openapi)
        if method == request.method and pattern.match(raw_path)
    ]
    assert matches, f"{request.method} {raw_path} is not an operation of the spec"
    # a literal route ("/users/cursor") also matches its templated sibling ("/users/{user_id}")
    return min(matches, key=lambda match: match[0])[1]


def _success_schema(op: dict[str, Any]) -> Any:
    for status, answer in op["responses"].items():
        if status.startswith("2"):
            return answer.get("content", {}).get("application/json", {}).get("schema")
    return None


def _check_result(name: str, result: Any, expected: Any) -> None:
    assert isinstance(result, expected), f"{name} gave {type(result).__name__}"
    item_type = ITEM_TYPES.get(name)
    if item_type is not None:
        assert result, f"{name}: the spec's example list should not decode to an empty list"
        assert all(isinstance(item, item_type) for item in result)


def test_every_public_method_is_exercised() -> None:
    assert _public_methods() == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_method_against_spec_examples(
    name: str, client: OasstApiClient, recorder: Recorder, backend_openapi: Any
) -> None:
    call, expected = CALLS[name]
    if expected == NO_SCHEMA:
        with pytest.raises(OasstApiResponseError) as info:
            await call(client)
        assert info.value.status_code == 200
        assert info.value.http_status_code == HTTPStatus.OK
        assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    else:
        _check_result(name, await call(client), expected)

    assert len(recorder.requests) == 1  # max_retries=0: prism accepted the request as sent
    request = recorder.requests[0]
    op = _operation_for(backend_openapi, request)
    if expected == NO_SCHEMA:
        assert _success_schema(op) == {}
    assert request.headers["x-api-key"] == API_KEY
    allowed = {scheme for requirement in op.get("security", []) for scheme in requirement}
    if "x-oasst-user" in request.headers:
        assert "oasst-user" in allowed, f"{name} sends x-oasst-user where the spec does not accept it"
    if "authorization" in request.headers:
        assert "HTTPBearer" in allowed
    if request.content:
        assert request.headers["content-type"] == "application/json"


async def test_fetch_task_sends_every_task_request_type(client: OasstApiClient) -> None:
    for task_type in protocol.TaskRequestType:
        task = await client.fetch_task(task_type, USER, collective=False, lang="en")
        assert isinstance(task, protocol.Task)


async def test_dynamic_answers_give_every_task_type(dynamic_client: OasstApiClient) -> None:
    seen: set[str] = set()
    for _ in range(400):
        task = await dynamic_client.fetch_random_task(USER)
        assert isinstance(task, protocol.Task)
        assert isinstance(task.id, uuid.UUID)
        seen.add(task.type)
        if seen == ALL_TASK_TAGS:
            break
    assert seen == ALL_TASK_TAGS


async def test_dynamic_answers_of_post_interaction_decode(dynamic_client: OasstApiClient) -> None:
    interaction = protocol.MessageRanking(user=USER, message_id="fm-1", ranking=[2, 0, 1])
    for _ in range(10):
        assert isinstance(await dynamic_client.post_interaction(interaction), protocol.TaskDone)


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_method_decodes_random_valid_answers(
    name: str, dynamic_client: OasstApiClient, backend_openapi: Any
) -> None:
    call, expected = CALLS[name]
    if expected == NO_SCHEMA or name == "post_message_emoji":
        # No response schema: prism invents a body; the client must reject it cleanly.
        with pytest.raises(OasstApiResponseError):
            await call(dynamic_client)
        return
    for _ in range(8):
        result = await call(dynamic_client)
        assert isinstance(result, expected)


async def test_missing_api_key_is_refused_by_the_mock(prism: MockServer) -> None:
    async with OasstApiClient(prism.url, "", max_retries=3) as api:
        with pytest.raises(OasstApiAuthError) as info:
            await api.fetch_system_stats()
    assert info.value.http_status_code == HTTPStatus.UNAUTHORIZED
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert info.value.request == "GET /api/v1/stats/"


async def test_invalid_request_gives_validation_error(client: OasstApiClient, recorder: Recorder) -> None:
    with pytest.raises(OasstApiValidationError) as info:
        await client.fetch_message("not-a-uuid")
    assert info.value.status_code == 422
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert "422" in info.value.message
    assert len(recorder.requests) == 1
