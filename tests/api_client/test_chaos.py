"""The API client against a chaos server: many mixed calls, each attempt answered at random.

The server (``tests/support/chaos_server.py``) keeps connections alive and answers each request with
a fault kind drawn from an RNG seeded on (seed, call, attempt): the valid answer, delays
under and over the client's timeout, connections closed or reset before answering or
mid-body, garbage (raw, as a body, as gzip, as chunks), 20 MB bodies, truncated JSON,
429/503 (with ``Retry-After``), 500 HTML.
It also drops a few new connections unread, closes idle keep-alive connections, and has
short outages in which connections are refused.

Every call carries a marker (in its body or path, and in the ``x-chaos-call`` header set by
an httpx request hook, with ``x-chaos-attempt`` counting the client's sends). For each call
the test checks: the correct typed result or an ``OasstError``; the kind of error fits what
the server last did; no call outlives its timeout by more than a margin; a POST is sent
again only after attempts the server answered 429/503 or never received; a ``Retry-After``
past the deadline ends the call. After ``close()`` the pool is empty and every socket the
client opened is closed (both ends).

The seed is ``OASST_CHAOS_SEED`` (default below) and is in every assertion message; rerun
with ``OASST_CHAOS_SEED=<seed> pytest tests/api_client/test_chaos.py`` to replay a run.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import random
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from oasst_shared.api_client import (
    OasstApiClient,
    OasstApiConnectionError,
    OasstApiError,
    OasstApiRateLimitError,
    OasstApiResponseError,
    OasstApiServerError,
    OasstApiTimeoutError,
)
from oasst_shared.exceptions import OasstError
from oasst_shared.schemas import protocol
from tests.support.chaos_server import (
    HUGE_BYTES,
    KINDS,
    ChaosRecord,
    ChaosServer,
    Chooser,
    huge_padding,
    seeded_chooser,
)
from tests.support.fault_server import unused_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

SEED = int(os.environ.get("OASST_CHAOS_SEED", "20240611"))
API_KEY = "sk-chaos-test-77c1"
TIMEOUT = 1.0  # the client's timeout per call
MARGIN = 2.0  # hang detection: a call must end within TIMEOUT + MARGIN
MAX_RETRIES = 3
CALLS = 200
WORKERS = 8
CALLER_CANCELS = 0.1  # the share of calls the caller cancels (its own shorter deadline)
TASK_ID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
STATS = {"all": 10, "active": 8, "deleted": 2, "message_trees": 3}
NS = uuid.UUID("6c1f6f0e-8d0a-4a43-9a4e-0c1b8f3a2d11")

_current_call: contextvars.ContextVar[str | None] = contextvars.ContextVar("chaos_call", default=None)


def call_uuid(call: str) -> uuid.UUID:
    return uuid.uuid5(NS, call)


# ------------------------------------------------------------------- the endpoints' answers


def valid_answer(method: str, path: str, body: bytes, call: str) -> tuple[int, bytes]:
    """What the backend answers when all is well; ids derived from the call marker."""
    parts = path.strip("/").split("/")  # api, v1, ...
    if method == "GET" and parts[2:] == ["stats"]:
        return 200, json.dumps({**STATS, "active_by_lang": {call: 1}}).encode()
    if method == "GET" and parts[2] == "messages" and len(parts) == 4:
        return 200, json.dumps({"id": parts[3], "text": call, "is_assistant": False}).encode()
    if method == "POST" and parts[2:] in (["tasks"], ["tasks", "close"], ["tasks", "interaction"]):
        return 200, json.dumps({"id": str(call_uuid(call)), "type": "task_done"}).encode()
    if method == "POST" and parts[2] == "tasks" and parts[-1] == "ack":
        return 204, b""
    return 404, json.dumps({"message": f"no route {method} {path}", "error_code": 1000}).encode()


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    invoke: Callable[[OasstApiClient, str], Awaitable[Any]]
    check: Callable[[Any, str], bool]  # is this the correct result for the call?
    has_body: bool = True  # False: any complete 2xx answer is success
    marker_in: str = "body"  # where the call's marker travels besides the header


def _user(call: str) -> protocol.User:
    return protocol.User(id=call, display_name="Chaos", auth_method="local")


def _is_task_done(result: Any, call: str) -> bool:
    return isinstance(result, protocol.TaskDone) and result.id == call_uuid(call)


ENDPOINTS = [
    Endpoint(
        "stats",
        "GET",
        lambda api, call: api.fetch_system_stats(),
        lambda r, call: r == protocol.SystemStats(**STATS, active_by_lang={call: 1}),
        marker_in="header",
    ),
    Endpoint(
        "message",
        "GET",
        lambda api, call: api.fetch_message(call_uuid(call)),
        lambda r, call: isinstance(r, protocol.Message) and r.id == call_uuid(call) and r.text == call,
        marker_in="path",
    ),
    Endpoint("task", "POST", lambda api, call: api.fetch_random_task(_user(call)), _is_task_done),
    Endpoint("close", "POST", lambda api, call: api.close_task(call), _is_task_done),
    Endpoint(
        "interaction",
        "POST",
        lambda api, call: api.post_interaction(
            protocol.TextReplyToMessage(
                user=_user(call), message_id="fm-1", user_message_id="fm-2", text=f"reply {call}"
            )
        ),
        _is_task_done,
    ),
    Endpoint("ack", "POST", lambda api, call: api.ack_task(TASK_ID, call), lambda r, call: r is None, False),
]

BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}

SUCCESS_KINDS = frozenset({"ok", "delay_short", "huge_valid"})
SUCCESS_KINDS_NO_BODY = SUCCESS_KINDS | {"garbage_body", "truncated_json", "huge_garbage"}
# The errors a call may end with when its last attempt got this kind (a timeout always may).
ERRORS_AFTER: dict[str, tuple[type[OasstApiError], ...]] = {
    "ok": (),
    "delay_short": (),
    "huge_valid": (),
    "delay_long": (),
    "drop_before": (OasstApiConnectionError,),
    "reset": (OasstApiConnectionError,),
    "drop_mid_body": (OasstApiConnectionError,),
    "garbage_http": (OasstApiConnectionError, OasstApiResponseError),
    "garbage_body": (OasstApiResponseError,),
    "bad_encoding": (OasstApiResponseError,),
    "bad_chunked": (OasstApiConnectionError,),
    "truncated_json": (OasstApiResponseError,),
    "huge_garbage": (OasstApiResponseError,),
    "huge_500": (OasstApiServerError,),
    "r500_html": (OasstApiServerError,),
    "r503": (OasstApiServerError,),
    "r429": (OasstApiRateLimitError,),
}
STATUS_OF = {"huge_500": 500, "r500_html": 500, "r503": 503, "r429": 429}
assert set(ERRORS_AFTER) == set(KINDS)


# ------------------------------------------------------------------------------ fixtures


ServerFactory = Callable[..., ChaosServer]


@pytest.fixture
def chaos_servers() -> Iterator[ServerFactory]:
    """Starts chaos servers on demand (127.0.0.1); all are stopped at teardown."""
    servers: list[ChaosServer] = []

    def start(chooser: Chooser, **options: Any) -> ChaosServer:
        server = ChaosServer(valid_answer, chooser, **options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def sockets_to(port: int) -> int:
    """How many TCP sockets this process holds whose peer is 127.0.0.1:``port`` (any state).

    Read from /proc (Linux): the process's socket inodes matched against /proc/net/tcp. A
    socket the client forgot to close stays listed here, even after the server closed its
    end. Elsewhere this counts nothing.
    """
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    own: set[str] = set()
    for fd in fds:
        with contextlib.suppress(OSError):  # e.g. the fd listdir itself used, closed since
            own.add(os.readlink(f"/proc/self/fd/{fd}"))
    count = 0
    for line in table:
        fields = line.split()
        remote_port = int(fields[2].rpartition(":")[2], 16)
        if remote_port == port and fields[9] != "0" and f"socket:[{fields[9]}]" in own:
            count += 1
    return count


class AttemptCounter:
    """An httpx request hook: tags each send with the current call and its attempt number."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    async def __call__(self, request: httpx.Request) -> None:
        call = _current_call.get()
        if call is None:
            return
        self.attempts[call] += 1
        request.headers["x-chaos-call"] = call
        request.headers["x-chaos-attempt"] = str(self.attempts[call])


def chaos_client(url: str, counter: AttemptCounter, **options: Any) -> OasstApiClient:
    settings: dict[str, Any] = {
        "timeout": TIMEOUT,
        "max_retries": MAX_RETRIES,
        "retry_initial_delay": 0.02,
        "retry_max_delay": 0.1,
    }
    settings.update(options)
    api = OasstApiClient(url, API_KEY, **settings)  # owns its session, so close() closes it
    api.session.event_hooks = {"request": [counter], "response": []}
    return api


def pool_of(api: OasstApiClient) -> Any:
    transport = api.session._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    return transport._pool


async def close_and_check_no_leak(api: OasstApiClient, servers: list[ChaosServer]) -> list[str]:
    """Close the client; the problems found with its connections (empty: none leaked).

    Before ``close()`` no connection may be busy (every call has ended); after it the pool
    is empty, the servers see every connection closed by the client, and this process
    holds no socket to their ports. The waits are bounded (the client closes at once; the
    server polls every 50 ms; asyncio closes a socket one loop turn after ``close``).
    """
    problems: list[str] = []
    pool = pool_of(api)
    busy = [c for c in pool.connections if not (c.is_idle() or c.is_closed())]
    if busy or pool._requests:
        problems.append(f"after all calls ended the pool still has busy connections {busy} / requests")
    await api.close()
    if pool.connections:
        problems.append(f"pool not empty after close: {pool.connections}")

    def left_open() -> tuple[list[int], list[int]]:
        return [s.open_connections for s in servers], [sockets_to(s.port) for s in servers]

    with anyio.move_on_after(5.0):
        while any(map(any, left_open())):
            await anyio.sleep(0.02)
    server_side, client_side = left_open()
    if any(server_side):
        problems.append(f"server-side connections still open 5 s after close: {server_side}")
    if any(client_side):
        problems.append(f"client sockets to the server still open 5 s after close: {client_side}")
    return problems


# ------------------------------------------------------------------------------ the chaos


@dataclass
class Outcome:
    call: str
    endpoint: Endpoint
    cancel_after: float | None = None  # the caller gives up on the call after this long
    result: Any = None
    error: BaseException | None = None
    hung: bool = False
    cancelled: bool = False  # by the caller, before the call ended

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.cancelled and not self.hung


def judge(outcome: Outcome, attempts: int, records: list[ChaosRecord]) -> list[str]:
    """The problems with one call (empty: the call behaved)."""
    call, endpoint, error = outcome.call, outcome.endpoint, outcome.error
    seen = ", ".join(f"#{r.attempt} {r.kind}" for r in records) or "nothing"
    where = f"{call} ({endpoint.method} {endpoint.name}, sent {attempts}x, server saw {seen})"
    problems: list[str] = []
    if outcome.hung:
        return [f"{where}: still running {TIMEOUT + MARGIN} s after it started (timeout {TIMEOUT} s)"]
    if error is not None and not isinstance(error, OasstError):
        return [f"{where}: raised {type(error).__name__}: {error!r}, not an OasstError"]
    if not (0 if outcome.cancelled else 1) <= attempts <= MAX_RETRIES + 1:
        problems.append(f"{where}: {attempts} sends, max_retries is {MAX_RETRIES}")
    by_attempt: dict[int, ChaosRecord] = {}
    for record in records:
        if record.attempt in by_attempt or not 1 <= record.attempt <= attempts:
            problems.append(f"{where}: attempt #{record.attempt} received twice or never sent")
        by_attempt[record.attempt] = record
        marker = call if endpoint.marker_in == "body" else str(call_uuid(call))
        if endpoint.marker_in == "body" and marker.encode() not in record.body:
            problems.append(
                f"{where}: attempt #{record.attempt} body lacks the marker: {record.body[:200]!r}"
            )
        if endpoint.marker_in == "path" and marker not in record.path:
            problems.append(f"{where}: attempt #{record.attempt} path lacks the marker: {record.path}")
        if record.method != endpoint.method:
            problems.append(f"{where}: attempt #{record.attempt} sent as {record.method}")
        if record.retry_after is not None and record.retry_after >= TIMEOUT and record.attempt != attempts:
            problems.append(
                f"{where}: sent again after Retry-After {record.retry_after} s, past the deadline"
            )
    if endpoint.method == "POST":
        for earlier in range(1, attempts):
            before = by_attempt.get(earlier)
            if before is not None and before.processed:
                problems.append(f"{where}: POST sent again after attempt #{earlier} got {before.kind}")
    if outcome.cancelled:
        return problems  # no result to judge; the retries before the cancellation were judged
    last = by_attempt.get(attempts)
    if error is None:
        if not endpoint.check(outcome.result, call):
            problems.append(f"{where}: wrong result {outcome.result!r}")
        success = SUCCESS_KINDS if endpoint.has_body else SUCCESS_KINDS_NO_BODY
        if last is None or last.kind not in success:
            problems.append(f"{where}: succeeded although the last attempt got {last and last.kind}")
        return problems
    assert isinstance(error, OasstApiError)
    if error.method != endpoint.method:
        problems.append(f"{where}: error names method {error.method!r}")
    if isinstance(error, OasstApiConnectionError) and not error.request_sent and last is not None:
        problems.append(f"{where}: request_sent=False but the server received attempt #{attempts}")
    if isinstance(error, OasstApiTimeoutError):
        return problems  # any attempt may run out of time
    if last is None:
        if not isinstance(error, OasstApiConnectionError):
            problems.append(f"{where}: last attempt never arrived, yet {type(error).__name__}: {error}")
        return problems
    allowed = ERRORS_AFTER[last.kind]
    if not endpoint.has_body and last.kind in SUCCESS_KINDS_NO_BODY:
        allowed = ()
    if not isinstance(error, allowed):
        problems.append(f"{where}: {type(error).__name__} ({error}) after {last.kind}")
    if last.kind in STATUS_OF and getattr(error, "status_code", None) != STATUS_OF[last.kind]:
        problems.append(f"{where}: status_code {getattr(error, 'status_code', None)} after {last.kind}")
    if isinstance(error, OasstApiConnectionError) and not error.request_sent:
        problems.append(f"{where}: request_sent=False after the server received it")
    if len(str(error)) > 2000:
        problems.append(f"{where}: error message of {len(str(error))} chars")
    return problems


def touring_chooser(seed: int) -> Chooser:
    """The seeded chooser, except that the first attempts of the first calls tour every kind."""
    random_kind = seeded_chooser(seed)
    tour = {f"c{i:03d}": kind for i, kind in enumerate(KINDS)}

    def choose(call: str, attempt: int) -> str:
        if attempt == 1 and call in tour:
            return tour[call]
        return random_kind(call, attempt)

    return choose


async def test_chaos_mixed_calls(chaos_servers: ServerFactory, anyio_backend: str) -> None:
    seed = SEED + (0 if anyio_backend == "asyncio" else 1)
    context = f"seed {seed} ({anyio_backend}); replay with OASST_CHAOS_SEED={SEED}"
    server = chaos_servers(touring_chooser(seed), seed=seed, client_timeout=TIMEOUT)
    counter = AttemptCounter()
    api = chaos_client(server.url, counter)
    rng = random.Random(seed)
    plan = [
        Outcome(
            f"c{i:03d}",
            rng.choice(ENDPOINTS),
            cancel_after=rng.choice([0.001, 0.003, 0.01, 0.05, 0.3])
            if rng.random() < CALLER_CANCELS
            else None,
        )
        for i in range(CALLS)
    ]
    pending = iter(plan)
    outcomes: list[Outcome] = []

    async def worker() -> None:
        for outcome in pending:  # the iterator is shared: each call runs once
            _current_call.set(outcome.call)
            caller_limit = math.inf if outcome.cancel_after is None else outcome.cancel_after
            with anyio.move_on_after(TIMEOUT + MARGIN) as hang_scope:
                with anyio.move_on_after(caller_limit) as caller_scope:
                    try:
                        outcome.result = await outcome.endpoint.invoke(api, outcome.call)
                    except Exception as exc:  # judged below: it must be an OasstError
                        outcome.error = exc
            outcome.hung = hang_scope.cancelled_caught
            outcome.cancelled = caller_scope.cancelled_caught
            outcomes.append(outcome)

    with anyio.fail_after(60):  # the whole run; each call is bounded above
        async with anyio.create_task_group() as tg:
            for _ in range(WORKERS):
                tg.start_soon(worker)

    problems: list[str] = []
    for outcome in outcomes:
        problems += judge(outcome, counter.attempts[outcome.call], server.records_of(outcome.call))
    stray = [r for r in server.records if not r.call]
    if stray:
        problems.append(f"{len(stray)} requests without the call header")
    problems += await close_and_check_no_leak(api, [server])

    errors = Counter(type(o.error).__name__ for o in outcomes if o.error is not None)
    cancelled = sum(o.cancelled for o in outcomes)
    resent_posts = sum(1 for o in outcomes if o.endpoint.method == "POST" and counter.attempts[o.call] > 1)
    summary = (
        f"{context}: {len(outcomes)} calls, {sum(o.succeeded for o in outcomes)} ok, "
        f"errors {dict(errors)}, cancelled by the caller {cancelled}; "
        f"{len(server.records)} requests received, {sum(counter.attempts.values())} sent, "
        f"POSTs sent more than once {resent_posts}; server {server.stats}"
    )
    print(summary)
    assert len(outcomes) == CALLS, summary
    assert not problems, f"{len(problems)} problems, {summary}:\n" + "\n".join(problems[:25])
    # the run did meet the chaos it was meant to (guards against a silently tame server); a
    # kind of the tour may go missing when its attempt was refused or dropped unread
    missing = set(KINDS) - set(server.stats.kinds)
    assert len(missing) <= 2, f"kinds never drawn: {missing}; {summary}"
    assert sum(o.succeeded for o in outcomes) >= CALLS // 4, summary
    assert errors and resent_posts, summary


# --------------------------------------------------------------------- single faults


def always(*kinds: str) -> Chooser:
    """Attempt n gets kinds[n-1] (the last one thereafter)."""
    return lambda call, attempt: kinds[min(max(attempt, 1), len(kinds)) - 1]


async def test_huge_valid_body_is_read_whole_and_decoded(chaos_servers: ServerFactory) -> None:
    """A 20 MB answer (under the default 32 MiB max_response_bytes) is read whole and decoded.

    The padding field is unknown to ``TaskDone`` and skipped, so the result is the task;
    peak Python memory during the call stays a small multiple of the body (chunks + joined
    bytes), it does not grow with anything else.
    """
    server = chaos_servers(always("huge_valid"), outages=False, slam_probability=0.0)
    counter = AttemptCounter()
    api = chaos_client(server.url, counter, timeout=10.0)
    _current_call.set("huge-1")
    huge_padding()  # made before tracing: the server's copy is not the client's memory
    tracemalloc.start()
    try:
        with anyio.fail_after(10.0 + MARGIN):
            task = await api.close_task("huge-1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _is_task_done(task, "huge-1")
    assert HUGE_BYTES <= peak < 4 * HUGE_BYTES, f"peak {peak / 2**20:.1f} MiB for a 20 MiB body"
    assert await close_and_check_no_leak(api, [server]) == []


async def test_huge_error_bodies_give_short_errors(chaos_servers: ServerFactory) -> None:
    """A 20 MB 500 page or 200 garbage body: a typed error whose message stays short."""
    server = chaos_servers(always("huge_500"), outages=False, slam_probability=0.0)
    counter = AttemptCounter()
    api = chaos_client(server.url, counter, timeout=10.0, max_retries=0)
    _current_call.set("huge-500")
    with anyio.fail_after(10.0 + MARGIN), pytest.raises(OasstApiServerError) as info:
        await api.close_task("huge-500")
    assert info.value.status_code == 500
    assert "server on fire" in info.value.message
    assert len(str(info.value)) < 1000 and info.value.body_excerpt is not None
    assert len(info.value.body_excerpt) < 300

    garbage = chaos_servers(always("huge_garbage"), outages=False, slam_probability=0.0)
    other = chaos_client(garbage.url, counter, timeout=10.0)
    _current_call.set("huge-garbage")
    with anyio.fail_after(10.0 + MARGIN), pytest.raises(OasstApiResponseError) as bad:
        await other.fetch_system_stats()
    assert "not valid JSON" in bad.value.message
    assert len(str(bad.value)) < 1000
    assert counter.attempts["huge-garbage"] == 1
    assert await close_and_check_no_leak(api, [server]) == []
    assert await close_and_check_no_leak(other, [garbage]) == []


# ------------------------------------------------------------------- refused connections


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_refused_connection_is_retried_then_fails_unsent(method: str, anyio_backend: str) -> None:
    counter = AttemptCounter()
    api = chaos_client(f"http://127.0.0.1:{unused_port()}", counter, retry_initial_delay=0.01)
    call = f"refused-{method}"
    _current_call.set(call)
    endpoint = BY_NAME["task"] if method == "POST" else BY_NAME["stats"]
    with anyio.fail_after(TIMEOUT + MARGIN), pytest.raises(OasstApiConnectionError) as info:
        await endpoint.invoke(api, call)
    assert not isinstance(info.value, OasstApiTimeoutError), info.value
    assert info.value.request_sent is False
    assert info.value.method == method
    assert counter.attempts[call] == MAX_RETRIES + 1
    pool = pool_of(api)
    await api.close()
    assert pool.connections == []


async def test_post_refused_then_served_is_received_once(
    chaos_servers: ServerFactory, anyio_backend: str
) -> None:
    """A POST refused twice is sent again once the backend listens, and arrives exactly once."""
    port = unused_port()
    counter = AttemptCounter()
    started: list[ChaosServer] = []
    waits: list[float] = []

    class StartOnSecondWait:
        """The client's clock: after the second refusal the backend comes up on that port."""

        def now(self) -> float:
            return anyio.current_time()

        async def sleep(self, delay: float) -> None:
            waits.append(delay)
            if len(waits) == 2:
                try:
                    started.append(
                        chaos_servers(always("ok"), outages=False, slam_probability=0.0, port=port)
                    )
                except OSError:
                    pytest.skip(f"port {port} was taken meanwhile")
            await anyio.sleep(delay)

    api = chaos_client(
        f"http://127.0.0.1:{port}", counter, retry_initial_delay=0.01, clock=StartOnSecondWait()
    )
    _current_call.set("late-1")
    with anyio.fail_after(TIMEOUT + MARGIN):
        task = await api.close_task("late-1")
    assert _is_task_done(task, "late-1")
    assert counter.attempts["late-1"] == 3
    (server,) = started
    assert [(r.attempt, r.kind, r.method) for r in server.records] == [(3, "ok", "POST")]
    assert await close_and_check_no_leak(api, [server]) == []
