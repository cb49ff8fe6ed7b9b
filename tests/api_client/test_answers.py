"""The API client's handling of answers, without a socket: the backend is a ``MockBackend``
(``httpx.MockTransport``) given as ``transport=``. Error bodies and their mapping, the retry
rules for statuses (waits recorded by an injected clock), success bodies that do not decode,
and what each request carries. Connection-level faults are in ``api_client/test_faults``."""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import anyio
import httpx
import pytest

from oasst_shared.api_client import (
    AnyioClock,
    OasstApiAuthError,
    OasstApiClient,
    OasstApiClientSync,
    OasstApiConnectionError,
    OasstApiRateLimitError,
    OasstApiResponseError,
    OasstApiServerError,
    OasstApiStatusError,
    OasstApiTimeoutError,
    OasstApiValidationError,
    ValidLabelsResponse,
)
from oasst_shared.api_client._request import query
from oasst_shared.api_client._response import UNCHECKED_CHUNKS
from oasst_shared.exceptions import OasstError, OasstErrorCode
from oasst_shared.schemas import protocol
from tests.support.fault_server import MockBackend, SleepRecorder, respond, respond_json

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

API_KEY = "sk-answers-test-7d2b"
USER = protocol.User(id="1234", display_name="Test User", auth_method="discord")
TASK_ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
TASK_DONE = {"id": TASK_ID, "type": "task_done"}
STATS = {"all": 10, "active": 8, "active_by_lang": {"en": 8}, "deleted": 2, "message_trees": 3}


def make_client(backend: MockBackend, **options: Any) -> OasstApiClient:
    settings: dict[str, Any] = {
        "timeout": 10.0,
        "max_retries": 2,
        "retry_initial_delay": 0.02,
        "retry_max_delay": 0.08,
        "transport": backend.transport,
    }
    settings.update(options)
    return OasstApiClient(backend.url, API_KEY, **settings)


@pytest.fixture
async def client(backend: MockBackend) -> AsyncIterator[OasstApiClient]:
    async with make_client(backend, clock=SleepRecorder()) as api:
        yield api


def sleeps(client: OasstApiClient) -> list[float]:
    recorder = client.clock
    assert isinstance(recorder, SleepRecorder)
    return recorder.delays


# ------------------------------------------------------------------------ error answers


async def test_backend_error_body_keeps_message_and_code(
    backend: MockBackend, client: OasstApiClient
) -> None:
    backend.script(respond_json(403, {"message": "Invalid API key", "error_code": 2}))
    with pytest.raises(OasstApiAuthError) as info:
        await client.fetch_random_task(USER)
    error = info.value
    assert isinstance(error, OasstError)
    assert error.message == "Invalid API key"
    assert error.error_code == OasstErrorCode.API_CLIENT_NOT_AUTHORIZED
    assert error.http_status_code == HTTPStatus.FORBIDDEN
    assert error.status_code == 403
    assert error.request == "POST /api/v1/tasks/"
    assert str(error).startswith("POST /api/v1/tasks/: Invalid API key")
    assert len(backend.requests) == 1


async def test_unknown_error_code_falls_back_to_generic(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond_json(409, {"message": "Something new", "error_code": 31337}))
    with pytest.raises(OasstApiStatusError) as info:
        await client.close_task("fm-1")
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert info.value.backend_error_code == 31337
    assert "Something new" in info.value.message
    assert "31337" in info.value.message
    assert info.value.http_status_code == HTTPStatus.CONFLICT


async def test_html_500_on_post_is_generic_and_not_retried(
    backend: MockBackend, client: OasstApiClient
) -> None:
    html = b"<html><body><h1>Internal Server Error</h1><p>upstream exploded</p></body></html>"
    backend.script(respond(500, html, content_type="text/html"), respond_json(200, TASK_DONE))
    with pytest.raises(OasstApiServerError) as info:
        await client.fetch_random_task(USER)
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert info.value.http_status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert "Internal Server Error" in info.value.message
    assert info.value.body_excerpt is not None and "upstream exploded" in info.value.body_excerpt
    assert len(backend.requests) == 1
    assert sleeps(client) == []


async def test_validation_422_is_summarised(backend: MockBackend, client: OasstApiClient) -> None:
    detail = [
        {"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"},
        {"loc": ["query", "lang"], "msg": "str type expected", "type": "type_error.str"},
    ]
    backend.script(respond_json(422, {"detail": detail}))
    with pytest.raises(OasstApiValidationError) as info:
        await client.fetch_task_availability(USER, lang="en")
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert info.value.http_status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert "body.text: field required" in info.value.message
    assert "query.lang: str type expected" in info.value.message


async def test_empty_error_body_on_post(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(502))
    with pytest.raises(OasstApiServerError) as info:
        await client.ack_task(TASK_ID, "fm-1")
    assert info.value.http_status_code == HTTPStatus.BAD_GATEWAY
    assert "(empty body)" in info.value.message
    assert len(backend.requests) == 1


async def test_non_standard_status_does_not_crash(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(599, b"weird"))
    with pytest.raises(OasstApiServerError) as info:
        await client.nack_task(TASK_ID, "no")
    assert info.value.status_code == 599
    assert info.value.http_status_code == HTTPStatus.INTERNAL_SERVER_ERROR


# ------------------------------------------------------------------------------ retries


async def test_429_is_retried_after_retry_after_seconds(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(
        respond_json(429, {"message": "Too many requests", "error_code": 429}, {"Retry-After": "2"}),
        respond_json(200, TASK_DONE),
    )
    task = await client.fetch_random_task(USER)
    assert isinstance(task, protocol.TaskDone)
    assert len(backend.requests) == 2
    assert sleeps(client) == [2.0]
    assert backend.requests[0].body == backend.requests[1].body


async def test_429_retry_after_http_date(backend: MockBackend) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    backend.script(
        respond(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
        respond_json(200, STATS),
    )
    async with make_client(backend, timeout=120.0, clock=SleepRecorder()) as api:
        stats = await api.fetch_system_stats()
        (delay,) = sleeps(api)
    assert stats.all == 10
    assert 20.0 <= delay <= 30.0


async def test_retry_after_past_the_deadline_fails_at_once(backend: MockBackend) -> None:
    backend.script(respond_json(429, {"message": "Slow down", "error_code": 429}, {"Retry-After": "120"}))
    async with make_client(backend, timeout=5.0, clock=SleepRecorder()) as api:
        with pytest.raises(OasstApiRateLimitError) as info:
            await api.fetch_random_task()
        assert sleeps(api) == []
    assert info.value.error_code == OasstErrorCode.TOO_MANY_REQUESTS
    assert len(backend.requests) == 1


async def test_429_gives_up_after_max_retries(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(*(respond(429, headers={"Retry-After": "0"}) for _ in range(4)))
    with pytest.raises(OasstApiRateLimitError):
        await client.post_interaction(protocol.MessageRating(user=USER, message_id="fm-1", rating=3))
    assert len(backend.requests) == 3  # max_retries=2
    assert sleeps(client) == [0.0, 0.0]


async def test_503_is_retried_with_growing_backoff(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(503), respond(503), respond_json(200, STATS))
    stats = await client.fetch_system_stats()
    assert stats == protocol.SystemStats(**STATS)  # type: ignore[arg-type]
    assert len(backend.requests) == 3
    first, second = sleeps(client)
    assert 0.01 <= first <= 0.02  # initial delay 0.02, half of it jittered
    assert 0.02 <= second <= 0.04


async def test_503_on_post_is_retried(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(503), respond_json(200, TASK_DONE))
    assert isinstance(await client.close_task("fm-1"), protocol.TaskDone)
    assert len(backend.requests) == 2


async def test_get_502_is_retried_but_post_502_is_not(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(502), respond_json(200, STATS), respond(502), respond_json(200, TASK_DONE))
    assert (await client.fetch_system_stats()).active == 8
    assert len(backend.requests) == 2
    with pytest.raises(OasstApiServerError):
        await client.close_task("fm-1")
    assert len(backend.requests) == 3


# ------------------------------- success answers that are not what the endpoint returns


async def test_truncated_json_success_body(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(200, json.dumps(TASK_DONE).encode()[:-12]))
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_random_task(USER)
    assert info.value.status_code == 200
    assert info.value.http_status_code == HTTPStatus.OK
    assert info.value.error_code == OasstErrorCode.GENERIC_ERROR
    assert "not valid JSON" in info.value.message


async def test_non_json_success_body(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(200, b"<html>maintenance</html>", content_type="text/html"))
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_system_stats()
    assert "maintenance" in info.value.message


async def test_unknown_task_type(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond_json(200, {"id": TASK_ID, "type": "write_a_poem"}))
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_random_task(USER)
    assert "$.type" in info.value.message


async def test_success_body_of_wrong_shape(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond_json(200, [1, 2, 3]), respond_json(200, {"text": "hi", "is_assistant": "maybe"}))
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_message(uuid.uuid4())
    assert "Message" in info.value.message
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_message(uuid.uuid4())
    assert "$.is_assistant" in info.value.message


async def test_204_where_a_body_is_expected(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(204), respond(204), respond_json(200, {"ignored": True}))
    with pytest.raises(OasstApiResponseError) as info:
        await client.fetch_random_task(USER)
    assert "no body" in info.value.message
    assert info.value.http_status_code == HTTPStatus.NO_CONTENT
    assert await client.ack_task(TASK_ID, "fm-1") is None
    assert await client.ack_task(TASK_ID, "fm-2") is None


# ------------------------------------------------------------------------ requests sent


async def test_path_segments_are_escaped(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond_json(200, {"messages": []}))
    await client.fetch_frontend_message_conversation("a/b c?d")
    assert backend.requests[0].path == "/api/v1/frontend_messages/a%2Fb%20c%3Fd/conversation"


async def test_bearer_endpoint_without_token_sends_nothing(
    backend: MockBackend, client: OasstApiClient
) -> None:
    with pytest.raises(ValueError, match="bearer_token"):
        await client.create_api_client("bot", "discord")
    assert backend.requests == []


async def test_valid_labels_and_emoji_with_backend_shapes(
    backend: MockBackend, client: OasstApiClient
) -> None:
    labels = {
        "valid_labels": [
            {"name": "spam", "widget": "yes_no", "display_text": "Spam", "help_text": None},
            {"name": "quality", "widget": "likert", "display_text": "Quality", "help_text": "How good"},
        ]
    }
    message = {
        "id": TASK_ID,
        "text": "hello",
        "is_assistant": False,
        "emojis": {"+1": 1},
        "user_emojis": ["+1"],
    }
    backend.script(respond_json(200, labels), respond_json(202, message))
    result = await client.fetch_valid_text_labels(TASK_ID)
    assert isinstance(result, ValidLabelsResponse)
    assert [label.name for label in result.valid_labels] == ["spam", "quality"]
    assert result.valid_labels[1].help_text == "How good"
    updated = await client.post_message_emoji(TASK_ID, protocol.EmojiCode.thumbs_up, USER)
    assert isinstance(updated, protocol.Message)
    assert updated.emojis == {"+1": 1}
    assert backend.requests[0].path == f"/api/v1/text_labels/valid_labels?message_id={TASK_ID}"
    assert json.loads(backend.requests[1].body) == {"user": USER.dict(), "op": "toggle", "emoji": "+1"}


async def test_generic_post_and_get(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(204), respond_json(200, {"a": [1, 2]}), respond_json(200, STATS))
    assert await client.post("/api/v1/tasks/close", {"message_id": "x"}) is None
    assert await client.post("/api/v1/anything", {"k": 1}) == {"a": [1, 2]}
    assert await client.get("/api/v1/stats/", {"x": None, "y": 2}) == STATS
    assert json.loads(backend.requests[1].body) == {"k": 1}
    assert backend.requests[2].path == "/api/v1/stats/?y=2"


# ------------------------------------------------------- transport, clock, errors with httpx objects


class VirtualClock:
    """A clock whose waits take no real time: each wait moves it on by ``overshoot`` times the
    delay (1: exactly the delay; more: a wait that ends late)."""

    def __init__(self, overshoot: float = 1.0) -> None:
        self.time = 1000.0
        self.overshoot = overshoot
        self.delays: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.time += seconds * self.overshoot


async def test_status_errors_carry_the_httpx_request_and_response(
    backend: MockBackend, client: OasstApiClient
) -> None:
    backend.script(
        respond_json(403, {"message": "Invalid API key", "error_code": 2}, {"X-Request-Id": "r-1"})
    )
    with pytest.raises(OasstApiAuthError) as info:
        await client.ack_task(TASK_ID, "fm-1", user=USER)
    error = info.value
    request, response = error.http_request, error.http_response
    assert isinstance(request, httpx.Request) and isinstance(response, httpx.Response)
    assert (request.method, request.url.path) == ("POST", f"/api/v1/tasks/{TASK_ID}/ack")
    assert request.headers["x-oasst-user"] == "discord:1234"
    assert json.loads(request.content) == {"message_id": "fm-1"}
    assert response.status_code == 403 and response.headers["x-request-id"] == "r-1"
    assert response.request is request
    # The attributes of before are read from them.
    assert (error.method, error.path, error.status_code) == ("POST", f"/api/v1/tasks/{TASK_ID}/ack", 403)
    assert error.request == f"POST /api/v1/tasks/{TASK_ID}/ack"


async def test_errors_with_httpx_objects_pickle(backend: MockBackend, client: OasstApiClient) -> None:
    backend.script(respond(500, b"<p>upstream exploded</p>", {"Retry-After": "1"}, "text/html"))
    with pytest.raises(OasstApiServerError) as info:
        await client.close_task("fm-1")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is OasstApiServerError
    assert str(copy) == str(info.value)
    assert (copy.method, copy.path, copy.status_code) == ("POST", "/api/v1/tasks/close", 500)
    assert copy.body_excerpt == info.value.body_excerpt and "upstream exploded" in str(copy.body_excerpt)
    assert copy.http_response is not None and copy.http_response.headers["retry-after"] == "1"
    assert copy.http_request is not None and info.value.http_request is not None
    assert copy.http_request.url == info.value.http_request.url


async def test_errors_never_hold_the_api_key_or_the_bearer_token(backend: MockBackend) -> None:
    """The request an error carries is the one sent, less its secrets: the error can be logged,
    pickled or sent on (the README: the key never appears in errors)."""
    backend.script(respond_json(403, {"message": "Invalid API key", "error_code": 2}))
    async with make_client(backend, bearer_token="root-token-91c3") as api:
        with pytest.raises(OasstApiAuthError) as info:
            await api.close_task("fm-1")
        backend.script(respond_json(500, {"message": "boom", "error_code": 0}))
        with pytest.raises(OasstApiServerError) as root_info:
            await api.create_api_client(description="d", frontend_type="discord")
    sent = backend.requests
    assert sent[0].headers["x-api-key"] == API_KEY  # they were sent
    assert sent[-1].headers["authorization"] == "Bearer root-token-91c3"
    for err, secret_header in ((info.value, "X-API-Key"), (root_info.value, "Authorization")):
        assert err.http_request is not None and err.http_response is not None
        assert err.http_request.headers[secret_header] == "[redacted]"
        assert err.http_response.request is err.http_request
        dumped = pickle.dumps(err) + repr(err).encode() + str(err).encode() + repr(err.__dict__).encode()
        assert API_KEY.encode() not in dumped and b"root-token-91c3" not in dumped


async def test_connection_errors_carry_the_request_and_no_response() -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    clock = VirtualClock()
    async with OasstApiClient(
        "http://backend.test", API_KEY, transport=httpx.MockTransport(refuse), clock=clock, max_retries=2
    ) as api:
        with pytest.raises(OasstApiConnectionError) as info:
            await api.close_task("fm-1")
    error = info.value
    assert type(error) is OasstApiConnectionError
    assert error.request_sent is False
    assert error.http_request is not None  # the last attempt's, less its API key
    assert (error.http_request.method, error.http_request.url) == (attempts[-1].method, attempts[-1].url)
    assert error.http_request.headers["X-API-Key"] == "[redacted]"
    assert error.http_response is None and error.status_code is None
    assert len(attempts) == 3 and len(clock.delays) == 2  # nothing was sent: a POST is retried too


async def test_retry_waits_run_on_the_injected_clock(backend: MockBackend) -> None:
    backend.script(
        respond(429, headers={"Retry-After": "30"}),
        respond(503, headers={"Retry-After": "20"}),
        respond_json(200, STATS),
    )
    clock = VirtualClock()
    async with make_client(backend, timeout=60.0, clock=clock) as api:
        assert (await api.fetch_system_stats()).all == 10
    assert clock.delays == [30.0, 20.0]  # 50 s of waits, taken by the clock and not the test
    assert clock.time == 1050.0


async def test_the_deadline_is_read_from_the_injected_clock(backend: MockBackend) -> None:
    # The wait of 4 s fits the 10 s timeout, but ends 12 s later: no time is left for an attempt.
    backend.script(respond(503, headers={"Retry-After": "4"}), respond_json(200, STATS))
    async with make_client(backend, timeout=10.0, clock=VirtualClock(overshoot=3.0)) as api:
        with pytest.raises(OasstApiTimeoutError) as info:
            await api.fetch_system_stats()
    assert str(info.value).startswith("GET /api/v1/stats/: no complete answer within the timeout of 10 s")
    assert info.value.http_request is not None
    assert len(backend.requests) == 1


async def test_too_large_answers_carry_their_response(backend: MockBackend) -> None:
    backend.script(respond_json(200, STATS))
    async with make_client(backend, max_response_bytes=10) as api:
        with pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
    assert info.value.http_response is not None and info.value.http_response.status_code == 200
    assert info.value.status_code == 200
    assert str(info.value).startswith("GET /api/v1/stats/: answer larger than 10 bytes")


async def test_default_clock_and_transport_with_session_refused(backend: MockBackend) -> None:
    async with OasstApiClient(backend.url, API_KEY) as api:
        assert isinstance(api.clock, AnyioClock)
    async with httpx.AsyncClient() as session:
        with pytest.raises(ValueError, match="session or transport"):
            OasstApiClient(backend.url, API_KEY, session, transport=backend.transport)


def test_query_leaves_out_none_and_keeps_order() -> None:
    params = query(b=0, a=None, c=False, d="", e=uuid.UUID(TASK_ID))
    assert params == {"b": 0, "c": False, "d": "", "e": uuid.UUID(TASK_ID)}
    assert list(params) == ["b", "c", "d", "e"]


def test_sync_facade_takes_a_transport(backend: MockBackend) -> None:
    backend.script(respond_json(200, STATS))
    with OasstApiClientSync(backend.url, API_KEY, transport=backend.transport) as api:
        assert api.fetch_system_stats().deleted == 2
    (request,) = backend.requests
    assert (request.method, request.path, request.headers["x-api-key"]) == ("GET", "/api/v1/stats/", API_KEY)


class EndlessBody(httpx.AsyncByteStream):
    """An answer body that never ends, counting the chunks the client pulled. With
    ``checkpoints`` each chunk waits on the event loop first, as a socket read does."""

    def __init__(self, chunk: bytes, *, checkpoints: bool) -> None:
        self.chunk = chunk
        self.checkpoints = checkpoints
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self.checkpoints:
                await anyio.sleep(0)
            self.pulled += 1
            yield self.chunk

    async def aclose(self) -> None:
        self.closed = True


async def fetch_capped(body: EndlessBody) -> OasstApiResponseError:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    async with OasstApiClient(
        "http://backend.test", API_KEY, transport=transport, max_response_bytes=10_000
    ) as api:
        with pytest.raises(OasstApiResponseError) as info:
            await api.fetch_system_stats()
    return info.value


async def test_the_cap_cancels_the_read_of_an_endless_body() -> None:
    body = EndlessBody(b" " * 1000, checkpoints=True)
    error = await fetch_capped(body)
    assert str(error).startswith("GET /api/v1/stats/: answer larger than 10000 bytes (status 200)")
    assert body.pulled == 11  # ten chunks fit, the eleventh is over the cap: nothing more is read
    assert body.closed  # the response was closed, not left to the garbage collector


# Only on asyncio: the generators httpx stacks over a body are left half-way by the bounded
# exit, and trio reports each one the garbage collector closes (a ResourceWarning).
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_body_that_never_yields_to_the_loop_is_left_after_a_bound() -> None:
    body = EndlessBody(b" " * 1000, checkpoints=False)
    error = await fetch_capped(body)
    assert str(error).startswith("GET /api/v1/stats/: answer larger than 10000 bytes (status 200)")
    # No checkpoint, so the cancellation never arrives: the read stops after a bounded number.
    assert body.pulled == 11 + UNCHECKED_CHUNKS + 1
    assert body.closed
