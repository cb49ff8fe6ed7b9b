"""The API client against a scripted real HTTP server: error bodies, retries, timeouts, broken answers."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

import anyio
import httpx
import pytest

from oasst_shared.api_client import (
    OasstApiAuthError,
    OasstApiClient,
    OasstApiConnectionError,
    OasstApiResponseError,
    OasstApiServerError,
    OasstApiTimeoutError,
    encode_body,
)
from oasst_shared.exceptions import OasstErrorCode
from oasst_shared.schemas import protocol
from tests.support.fault_server import (
    FaultServer,
    SleepRecorder,
    announce_only,
    close_mid_body,
    drip,
    flood_chunked,
    respond,
    respond_chunked,
    respond_json,
    stall,
    unused_port,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

API_KEY = "sk-fault-test-5a1e2c9d"
SECRET_TEXT = "my very private reply 81f2"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")
TASK_ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
TASK_DONE = {"id": TASK_ID, "type": "task_done"}
STATS = {"all": 10, "active": 8, "active_by_lang": {"en": 8}, "deleted": 2, "message_trees": 3}
HANG_GUARD = 15.0  # seconds; only detects a hang, far above every timeout used here


def make_client(url: str, session: httpx.AsyncClient | None = None, **options: Any) -> OasstApiClient:
    settings: dict[str, Any] = {
        "timeout": 10.0,
        "max_retries": 2,
        "retry_initial_delay": 0.02,
        "retry_max_delay": 0.08,
    }
    settings.update(options)
    return OasstApiClient(url, API_KEY, session, **settings)


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[OasstApiClient]:
    async with make_client(server.url, clock=SleepRecorder()) as api:
        yield api


def sleeps(client: OasstApiClient) -> list[float]:
    recorder = client.clock
    assert isinstance(recorder, SleepRecorder)
    return recorder.delays


# ------------------------------------------------------------------------- error answers


# --------------------------------------------------------------------------------- retries


async def test_retries_stop_at_the_overall_timeout(server: FaultServer) -> None:
    server.script(*(respond(503, headers={"Retry-After": "0.3"}) for _ in range(12)))
    async with make_client(server.url, timeout=1.0, max_retries=10) as api:
        started = anyio.current_time()
        # Usually the client sees that the next wait would pass the deadline and gives up with
        # the last 503; on a loaded machine the deadline may instead fall inside an attempt.
        with anyio.fail_after(HANG_GUARD), pytest.raises((OasstApiServerError, OasstApiTimeoutError)):
            await api.fetch_system_stats()
        elapsed = anyio.current_time() - started
    assert 1 <= len(server.requests) < 11  # ten retries at 0.3 s apart would take 3 s
    assert elapsed < 1.0 + 0.5


async def test_connect_refused_is_retried_then_fails() -> None:
    attempts: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        attempts.append(request)

    url = f"http://127.0.0.1:{unused_port()}"
    async with (
        httpx.AsyncClient(event_hooks={"request": [count]}) as session,
        make_client(url, session, max_retries=2, clock=SleepRecorder()) as api,
    ):
        with pytest.raises(OasstApiConnectionError) as info:
            await api.fetch_random_task(USER)
        assert len(sleeps(api)) == 2
    assert not isinstance(info.value, OasstApiTimeoutError)
    assert info.value.request_sent is False
    assert info.value.request == "POST /api/v1/tasks/"
    assert "POST /api/v1/tasks/" in str(info.value)
    assert len(attempts) == 3


# ----------------------------------------------------------------- broken or slow answers


async def test_slow_answer_times_out(server: FaultServer) -> None:
    server.script(stall(30))
    async with make_client(server.url, timeout=0.5) as api:
        with anyio.fail_after(HANG_GUARD), pytest.raises(OasstApiTimeoutError) as info:
            await api.fetch_random_task(USER)
    assert info.value.request == "POST /api/v1/tasks/"
    assert info.value.http_status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert isinstance(info.value, OasstApiConnectionError)
    assert len(server.requests) == 1


async def test_dripping_answer_hits_the_overall_deadline(server: FaultServer) -> None:
    server.script(drip(0.05), drip(0.05))
    async with make_client(server.url, timeout=0.6) as api:
        with anyio.fail_after(HANG_GUARD), pytest.raises(OasstApiTimeoutError) as info:
            await api.fetch_message(uuid.uuid4())
    assert info.value.method == "GET"


async def test_connection_closed_mid_body_on_post(server: FaultServer, client: OasstApiClient) -> None:
    server.script(close_mid_body(), respond_json(200, TASK_DONE))
    with pytest.raises(OasstApiConnectionError) as info:
        await client.fetch_random_task(USER)
    assert not isinstance(info.value, OasstApiTimeoutError)
    assert info.value.request_sent is True
    assert len(server.requests) == 1


async def test_connection_closed_mid_body_on_get_is_retried(
    server: FaultServer, client: OasstApiClient
) -> None:
    server.script(close_mid_body(), respond_json(200, STATS))
    assert (await client.fetch_system_stats()).message_trees == 3
    assert len(server.requests) == 2


# ----------------------------------------------------------------------- answer size limit

SMALL_CAP = 1000
STATS_RESULT = protocol.SystemStats(**STATS)  # type: ignore[arg-type]


def padded_stats(size: int) -> bytes:
    """``STATS`` as JSON, padded with trailing blanks to exactly ``size`` bytes."""
    body = json.dumps(STATS).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def pool_connections(api: OasstApiClient) -> list[Any]:
    """The connections the client's own session still holds (closed ones are dropped)."""
    transport: Any = api.session._transport  # httpx has no public view of the pool
    return list(transport._pool.connections)


async def closed_by_client(event: threading.Event) -> bool:
    """Wait (off the event loop, bounded) until the server saw the client close the connection."""
    return await anyio.to_thread.run_sync(event.wait, HANG_GUARD)


@pytest.mark.parametrize("status", [200, 503])
async def test_announced_body_over_the_cap_is_refused_unread(server: FaultServer, status: int) -> None:
    # The server announces 5000 bytes but sends none: a client that waited for the body would
    # end in its timeout instead. A 503 on a GET is normally retried; a too-large one is not.
    closed = threading.Event()
    server.script(announce_only(5000, closed, status), respond_json(200, STATS))
    async with make_client(
        server.url, timeout=5.0, max_response_bytes=SMALL_CAP, clock=SleepRecorder()
    ) as api:
        with anyio.fail_after(HANG_GUARD), pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
        assert pool_connections(api) == []
        assert await closed_by_client(closed)
        assert sleeps(api) == []
    assert info.value.status_code == status
    assert info.value.request == "GET /api/v1/stats/"
    assert str(info.value).startswith(f"GET /api/v1/stats/: answer larger than {SMALL_CAP} bytes")
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert len(server.requests) == 1


async def test_endless_chunked_answer_is_cut_at_the_cap(server: FaultServer) -> None:
    # No Content-Length, 4 MiB sent as fast as the client reads, and the answer never ends:
    # only the cap (not the 5 s timeout) can end this call with OasstApiResponseError.
    closed = threading.Event()
    server.script(flood_chunked(4 * 1024 * 1024, closed), respond_json(200, STATS))
    async with make_client(
        server.url, timeout=5.0, max_response_bytes=SMALL_CAP, clock=SleepRecorder()
    ) as api:
        with anyio.fail_after(HANG_GUARD), pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
        assert pool_connections(api) == []
        assert await closed_by_client(closed)
        assert sleeps(api) == []
    assert not isinstance(info.value, OasstApiConnectionError)
    assert info.value.status_code == 200
    assert f"answer larger than {SMALL_CAP} bytes" in info.value.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_answer_up_to_the_cap_decodes_one_more_byte_not(server: FaultServer, chunked: bool) -> None:
    def answer(size: int) -> Any:
        body = padded_stats(size)
        return respond_chunked(200, body, chunk_size=128) if chunked else respond(200, body)

    server.script(answer(SMALL_CAP - 1), answer(SMALL_CAP), answer(SMALL_CAP + 1), respond_json(200, STATS))
    async with make_client(server.url, max_response_bytes=SMALL_CAP, clock=SleepRecorder()) as api:
        assert await api.fetch_system_stats() == STATS_RESULT
        assert await api.fetch_system_stats() == STATS_RESULT
        with pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
        assert pool_connections(api) == []
        assert sleeps(api) == []
    assert info.value.status_code == 200
    assert f"answer larger than {SMALL_CAP} bytes" in info.value.message
    assert len(server.requests) == 3


async def test_error_bodies_under_the_cap_are_mapped_as_before(server: FaultServer) -> None:
    html = b"<html><body><h1>Internal Server Error</h1><p>upstream exploded</p></body></html>"
    backend_error = json.dumps({"message": "Invalid API key", "error_code": 2}).encode()
    server.script(respond_chunked(403, backend_error, chunk_size=7), respond_chunked(500, html), respond(502))
    async with make_client(server.url, max_response_bytes=SMALL_CAP, max_retries=0) as api:
        with pytest.raises(OasstApiAuthError) as auth:
            await api.fetch_random_task(USER)
        with pytest.raises(OasstApiServerError) as server_error:
            await api.close_task("fm-1")
        with pytest.raises(OasstApiServerError) as empty:
            await api.ack_task(TASK_ID, "fm-1")
    assert auth.value.message == "Invalid API key"
    assert auth.value.error_code == OasstErrorCode.API_CLIENT_NOT_AUTHORIZED
    excerpt = server_error.value.body_excerpt
    assert excerpt is not None and "upstream exploded" in excerpt
    assert "(empty body)" in empty.value.message


async def test_the_cap_counts_decoded_bytes(server: FaultServer) -> None:
    # 100 kB of JSON gzipped to a few hundred bytes: under the cap on the wire, over it decoded.
    compressed = gzip.compress(padded_stats(100_000))
    assert len(compressed) < SMALL_CAP
    server.script(*(respond(200, compressed, {"Content-Encoding": "gzip"}) for _ in range(2)))
    async with make_client(server.url, max_response_bytes=SMALL_CAP) as api:
        with pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
    assert f"answer larger than {SMALL_CAP} bytes" in info.value.message
    async with make_client(server.url, max_response_bytes=200_000) as roomy:
        assert await roomy.fetch_system_stats() == STATS_RESULT


async def test_no_limit_accepts_a_5_mb_answer(server: FaultServer) -> None:
    body = padded_stats(5 * 1024 * 1024)
    server.script(respond(200, body), respond_chunked(200, body, chunk_size=65536), respond(200, body))
    async with make_client(server.url, max_response_bytes=None) as api:
        assert api.max_response_bytes is None
        assert await api.fetch_system_stats() == STATS_RESULT
        assert await api.fetch_system_stats() == STATS_RESULT
    async with make_client(server.url, max_response_bytes=1024 * 1024) as capped:
        with pytest.raises(OasstApiResponseError):
            await capped.fetch_system_stats()


async def test_default_cap_is_32_mib(server: FaultServer) -> None:
    default = 32 * 1024 * 1024
    closed = threading.Event()
    server.script(announce_only(default + 1, closed))
    async with make_client(server.url, timeout=5.0) as api:
        assert api.max_response_bytes == default
        with anyio.fail_after(HANG_GUARD), pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
    assert f"answer larger than {default} bytes" in info.value.message
    assert await closed_by_client(closed)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1000"])
def test_max_response_bytes_must_be_a_positive_int_or_none(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        make_client("http://127.0.0.1:1", max_response_bytes=bad)


# ------------------------------------------------------------------------ requests sent


async def test_request_bodies_and_headers(server: FaultServer) -> None:
    server.script(respond_json(200, TASK_DONE), respond(204), respond_json(200, "new-api-key"))
    async with make_client(server.url, oasst_user="discord:999", bearer_token="root-token") as api:
        await api.fetch_task(protocol.TaskRequestType.rank_assistant_replies, USER, collective=True)
        await api.ack_task(TASK_ID, "fm-1", user=USER)
        assert await api.create_api_client("bot", "discord") == "new-api-key"
    fetch, ack, create = server.requests

    expected = protocol.TaskRequest(
        type=protocol.TaskRequestType.rank_assistant_replies, user=USER, collective=True
    )
    assert fetch.body == encode_body(expected)
    assert json.loads(fetch.body) == {
        "type": "rank_assistant_replies",
        "user": USER.dict(),
        "collective": True,
    }
    assert fetch.headers["content-type"] == "application/json"
    assert fetch.headers["x-api-key"] == API_KEY
    assert "x-oasst-user" not in fetch.headers  # the spec does not take it on this endpoint
    assert "authorization" not in fetch.headers

    assert (ack.method, ack.path) == ("POST", f"/api/v1/tasks/{TASK_ID}/ack")
    assert json.loads(ack.body) == {"message_id": "fm-1"}
    assert ack.headers["x-oasst-user"] == "discord:1234"

    assert create.headers["authorization"] == "Bearer root-token"
    assert json.loads(create.body) == {"description": "bot", "frontend_type": "discord", "trusted": False}


async def test_default_oasst_user_and_query_parameters(server: FaultServer) -> None:
    server.script(
        respond_json(200, {"time_frame": "week", "last_updated": "2023-01-01T00:00:00Z", "leaderboard": []})
    )
    server.script(respond_json(200, []))
    async with make_client(server.url, oasst_user=USER) as api:
        board = await api.fetch_leaderboard("week", max_count=5)
        await api.fetch_user_messages(
            "5e5a5d7e-0000-4000-8000-000000000001",
            start_date=datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            only_roots=True,
        )
    assert board.leaderboard == []
    leaderboard, messages = server.requests
    assert leaderboard.path == "/api/v1/leaderboards/week?max_count=5"
    assert leaderboard.headers["x-oasst-user"] == "discord:1234"
    assert messages.path == (
        "/api/v1/users/5e5a5d7e-0000-4000-8000-000000000001/messages"
        "?start_date=2023-01-02T03%3A04%3A05%2B00%3A00&only_roots=true"
    )


# --------------------------------------------------------------------- session, secrets


async def test_caller_session_stays_open_own_session_closes(server: FaultServer) -> None:
    server.script(respond_json(200, STATS), respond_json(200, STATS))
    async with httpx.AsyncClient() as session:
        api = make_client(server.url, session)
        await api.fetch_system_stats()
        await api.close()
        assert not session.is_closed
        response = await session.get(f"{server.url}/still-usable")
        assert response.status_code == 200
    own = make_client(server.url)
    await own.close()
    assert own.session.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        await own.fetch_system_stats()


async def test_api_key_and_user_text_never_logged(
    server: FaultServer, client: OasstApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = protocol.TextReplyToMessage(
        user=USER, message_id="fm-1", user_message_id="fm-2", text=SECRET_TEXT
    )
    server.script(
        respond(429, headers={"Retry-After": "0"}),
        respond_json(200, TASK_DONE),
        respond_json(403, {"message": "Invalid API key", "error_code": 2}),
    )
    await client.post_interaction(reply)
    with pytest.raises(OasstApiAuthError) as info:
        await client.post_interaction(reply)

    messages = [record.getMessage() for record in caplog.records]
    assert any("retry 1 of 2" in message for message in messages), messages  # logging did happen
    assert not [message for message in messages if API_KEY in message]
    assert not [message for message in messages if SECRET_TEXT in message]
    assert API_KEY not in repr(client)
    assert "<hidden>" in repr(client)
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)
    assert SECRET_TEXT.encode() in server.requests[0].body  # the text was sent, just not logged
