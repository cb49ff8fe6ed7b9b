"""The PUT and DELETE endpoints (moderation and user administration) against a scripted
in-process backend (``MockBackend``, an ``httpx.MockTransport``): what each request carries,
which answers count as success, and that these idempotent requests are retried where a POST
would not be."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from oasst_shared.api_client import OasstApiClient, OasstApiNotFoundError
from oasst_shared.schemas import protocol
from tests.support.fault_server import MockBackend, RecordedRequest, respond, respond_json

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

API_KEY = "sk-moderation-test-3c1d"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")
MESSAGE_ID = uuid.UUID("6f1c2d3e-4b5a-4f60-8e7d-9c0b1a2f3e4d")
USER_ID = uuid.UUID("0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d")


@pytest.fixture
async def client(backend: MockBackend) -> AsyncIterator[OasstApiClient]:
    async with OasstApiClient(
        backend.url,
        API_KEY,
        timeout=10.0,
        max_retries=2,
        retry_initial_delay=0.01,
        retry_max_delay=0.02,
        transport=backend.transport,
    ) as api:
        yield api


def query(request: RecordedRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(request.path).query, keep_blank_values=True)


def path_of(request: RecordedRequest) -> str:
    return urlsplit(request.path).path


async def test_update_user_sends_only_the_given_settings(
    backend: MockBackend, client: OasstApiClient
) -> None:
    backend.script(respond(204))
    assert await client.update_user(USER_ID, enabled=False, notes="spam wave") is None
    (request,) = backend.requests
    assert (request.method, path_of(request)) == ("PUT", f"/api/v1/users/{USER_ID}")
    assert query(request) == [("enabled", "false"), ("notes", "spam wave")]
    assert request.body == b""
    assert "x-oasst-user" not in request.headers  # the spec takes only the API key here


async def test_update_user_with_nothing_to_change_sends_nothing(
    backend: MockBackend, client: OasstApiClient
) -> None:
    with pytest.raises(ValueError, match="at least one setting"):
        await client.update_user(USER_ID)
    assert backend.requests == []


async def test_delete_and_undelete_message_for_a_user(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(204), respond_json(202, {}))
    await client.delete_message(MESSAGE_ID, user=USER)
    await client.undelete_message(str(MESSAGE_ID), user="discord:1234")
    deleted, restored = backend.requests
    assert (deleted.method, path_of(deleted)) == ("DELETE", f"/api/v1/messages/{MESSAGE_ID}")
    assert deleted.headers["x-oasst-user"] == "discord:1234"
    assert (restored.method, path_of(restored)) == ("PUT", f"/api/v1/messages/{MESSAGE_ID}/undelete")
    assert restored.headers["x-oasst-user"] == "discord:1234"
    assert all(r.headers["x-api-key"] == API_KEY for r in backend.requests)


async def test_user_deletions_hit_their_paths(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(204), respond(204), respond(204))
    await client.delete_user(USER_ID)
    await client.delete_user_messages(USER_ID)
    await client.delete_frontend_user_messages("discord", "name with/slash")
    assert [(r.method, urlsplit(r.path).path) for r in backend.requests] == [
        ("DELETE", f"/api/v1/users/{USER_ID}"),
        ("DELETE", f"/api/v1/users/{USER_ID}/messages"),
        ("DELETE", "/api/v1/frontend_users/discord/name%20with%2Fslash/messages"),
    ]


async def test_put_and_delete_are_retried_after_a_502(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(502, b"bad gateway"), respond(204), respond(502, b"bad gateway"), respond(204))
    await client.delete_message(MESSAGE_ID)
    await client.update_user(USER_ID, tos_acceptance=True)
    assert [r.method for r in backend.requests] == ["DELETE", "DELETE", "PUT", "PUT"]


async def test_generic_put_and_delete_give_the_answer(backend: MockBackend, client: OasstApiClient) -> None:
    state = {"message_tree_id": str(MESSAGE_ID), "state": "halted_by_moderator", "active": False}
    backend.script(respond_json(200, state), respond(204))
    assert await client.put(f"/api/v1/messages/{MESSAGE_ID}/tree/state", params={"halt": True}) == state
    assert await client.delete(f"/api/v1/messages/{MESSAGE_ID}") is None
    put, delete = backend.requests
    assert query(put) == [("halt", "true")] and put.body == b""
    assert delete.method == "DELETE"


async def test_generic_put_sends_a_json_body(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(204))
    await client.put("/api/v1/some/admin/thing", {"enabled": True, "notes": None})
    (request,) = backend.requests
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"enabled":true,"notes":null}'


async def test_a_missing_message_is_not_found(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond_json(404, {"message": "Message not found", "error_code": 2000}))
    with pytest.raises(OasstApiNotFoundError) as info:
        await client.delete_message(MESSAGE_ID)
    assert info.value.message == "Message not found"
    assert info.value.request == f"DELETE /api/v1/messages/{MESSAGE_ID}"
