"""The relay's stream and publish semantics against a real Redis (asyncio only: see conftest)."""

from __future__ import annotations

import asyncio
import functools
import pickle
from datetime import datetime
from http import HTTPStatus
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.exceptions import OasstError
from oasst_shared.relay import (
    TERMINAL_RESPONSE_TYPES,
    QueueFullError,
    Relay,
    RelayDecodeError,
    RelayError,
    RelayPublishError,
    RelayStalledError,
    RelayTimeoutError,
)
from oasst_shared.schemas import inference
from tests.relay.helpers import final, token, token_frame
from tests.relay.wire import HookedConnection, Hooks, hooked_client, with_blpop_timeout
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def evalsha_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_structs_in_structs_out(relay: Relay) -> None:
    sent = [token(i) for i in range(5)] + [final()]
    for msg in sent:
        await relay.publish("m1", msg)
    got = [item async for item in relay.stream("m1", timeout=5)]
    assert got == sent


async def test_raw_frames_are_forwarded_byte_for_byte(relay: Relay, redis_url: str) -> None:
    # a frame with spacing and key order the codec would not produce: it must arrive unchanged
    odd = b'{ "token_id": 7, "text": "x",  "response_type": "token", "request_id": "r" }'
    frames = [token_frame(1), odd, codec.worker_response.encode(final())]
    for f in frames:
        await relay.publish("m-raw", f)
    client = aioredis.Redis.from_url(redis_url)
    assert await client.lrange("message:m-raw", 0, -1) == frames
    await client.aclose()
    got = [item async for item in relay.stream("m-raw", timeout=5, raw=True)]
    assert got == frames
    assert all(type(g) is bytes for g in got)


async def test_publishes_of_one_iteration_share_one_round_trip(relay: Relay, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await relay.publish("warm", token(0))  # loads the script and connects
    before = await evalsha_calls(client)
    # 40 publishes to 10 queues, all issued in the same loop iteration
    await asyncio.gather(*(relay.publish(f"q{i % 10}", token(i)) for i in range(40)))
    assert await evalsha_calls(client) - before == 1
    for q in range(10):
        assert await client.llen(f"message:q{q}") == 4
        ttl = await client.ttl(f"message:q{q}")
        assert 0 < ttl <= relay.message_queue_expire
    # a lone publish does not wait for company: it completes in its own round trip
    await asyncio.wait_for(relay.publish("alone", token(1)), timeout=5)
    assert await evalsha_calls(client) - before == 2
    await client.aclose()


async def test_publishes_during_a_flush_go_in_the_next_one_in_order(relay: Relay, redis_url: str) -> None:
    async def burst(start: int) -> None:
        for i in range(start, start + 50):
            await relay.publish("ordered", token(i))

    # two concurrent publishers on one queue: each one's frames stay in its own order
    await asyncio.gather(burst(0), burst(1000))
    client = aioredis.Redis.from_url(redis_url)
    msgs = [codec.worker_response.decode(f) for f in await client.lrange("message:ordered", 0, -1)]
    ids = [m.token_id for m in msgs if isinstance(m, inference.TokenResponse)]
    assert len(ids) == 100
    await client.aclose()
    assert [i for i in ids if i < 1000] == list(range(50))
    assert [i for i in ids if i >= 1000] == list(range(1000, 1050))


@pytest.mark.parametrize("terminal", sorted(TERMINAL_RESPONSE_TYPES))
async def test_stream_stops_after_each_terminal_type_and_gives_back_the_rest(
    relay: Relay, redis_url: str, terminal: str
) -> None:
    done = inference.MessageRead(
        id="m",
        chat_id="c",
        created_at=datetime(2023, 1, 1),
        role="assistant",
        state=inference.MessageState.complete,
        score=0,
    )
    terminal_msgs: dict[str, inference.WorkerResponse] = {
        "generated_text": final(),
        "error": inference.ErrorResponse(request_id="req", error="boom"),
        "internal_error": inference.InternalErrorResponse(request_id="req", error="x", message=done),
        "internal_finished_message": inference.InternalFinishedMessageResponse(
            request_id="req", message=done
        ),
    }
    stop = terminal_msgs[terminal]
    await asyncio.gather(
        relay.publish("t", token(0)),
        relay.publish("t", stop),
        relay.publish("t", token(1)),
        relay.publish("t", token(2)),
    )
    got = [item async for item in relay.stream("t", timeout=5)]
    assert got == [token(0), stop]
    # the two frames after the terminal one were drained with it; they are back, in order
    client = aioredis.Redis.from_url(redis_url)
    left = await client.lrange("message:t", 0, -1)
    await client.aclose()
    assert left == [token_frame(1), token_frame(2)]


async def test_a_stream_that_times_out_says_so(relay: Relay) -> None:
    """No frame for ``timeout`` seconds while Redis answers: a typed error naming the key and the
    seconds waited, never a normal end without the terminal response."""
    await relay.publish("idle", token(0))
    got: list[object] = []
    with pytest.raises(RelayTimeoutError) as info:
        async for item in relay.stream("idle", timeout=0.2):
            got.append(item)
    assert got == [token(0)]
    err = info.value
    assert type(err) is RelayTimeoutError and not isinstance(err, RelayStalledError)
    assert (err.key, err.operation, err.waited) == ("message:idle", "stream", 0.2)
    assert "no frame for 0.2 s" in str(err) and err.http_status_code == HTTPStatus.GATEWAY_TIMEOUT


async def test_a_quiet_stop_on_timeout_is_an_explicit_option(relay: Relay) -> None:
    await relay.publish("quiet", token(0))
    got = [item async for item in relay.stream("quiet", timeout=0.2, stop_on_timeout=True)]
    assert got == [token(0)]


async def test_consumer_that_stops_early_gives_frames_back_in_order(relay: Relay, redis_url: str) -> None:
    await asyncio.gather(*(relay.publish("early", token(i)) for i in range(6)))
    stream = relay.stream("early", timeout=5)
    first = await stream.__anext__()
    assert first == token(0)
    await stream.aclose()
    client = aioredis.Redis.from_url(redis_url)
    left = await client.lrange("message:early", 0, -1)
    await client.aclose()
    assert left == [token_frame(i) for i in range(1, 6)]
    # a new stream on the same queue resumes where the first stopped
    await relay.publish("early", final())
    assert [m async for m in relay.stream("early", timeout=5)] == [*(token(i) for i in range(1, 6)), final()]


async def test_invalid_frame_raises_decode_error_holding_it(relay: Relay, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.rpush("message:bad", token_frame(0), b'{"response_type":"token","text":1}', token_frame(2))
    await client.aclose()
    got: list[object] = []
    with pytest.raises(RelayDecodeError) as info:
        async for item in relay.stream("bad", timeout=5):
            got.append(item)
    assert got == [token(0)]
    err = info.value
    assert err.frame == b'{"response_type":"token","text":1}'
    assert err.key == "message:bad" and err.operation == "stream"
    assert isinstance(err.__cause__, codec.FrameDecodeError)
    # the frame after the bad one is not lost
    assert [m async for m in relay.stream("bad", timeout=0.3, stop_on_timeout=True)] == [token(2)]


async def test_raw_stream_checks_frames_too(relay: Relay, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.rpush("message:badraw", b"not json")
    await client.aclose()
    with pytest.raises(RelayDecodeError):
        async for _ in relay.stream("badraw", timeout=5, raw=True):
            pass


async def test_one_local_stream_per_queue(relay: Relay) -> None:
    async with relay.subscribe("dup"):
        with pytest.raises(RelayError, match="already streams"):
            async with relay.subscribe("dup"):
                pass


async def test_many_streams_are_served_by_one_reader_connection(relay: Relay, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    n = 50

    async def consume(i: int) -> list[inference.WorkerResponse]:
        return [m async for m in relay.stream(f"s{i}", timeout=5)]

    tasks = [asyncio.create_task(consume(i)) for i in range(n)]
    await asyncio.sleep(0.1)
    clients = await client.client_list()
    # the relay's connections: one reader, one publisher, one control link at most
    assert len(clients) <= 4
    for t in range(3):
        await asyncio.gather(*(relay.publish(f"s{i}", token(t)) for i in range(n)))
    await asyncio.gather(*(relay.publish(f"s{i}", final()) for i in range(n)))
    results = await asyncio.gather(*tasks)
    assert all(r == [token(0), token(1), token(2), final()] for r in results)
    await client.aclose()


async def _blpop_for_a_minute(sent: list[float], conn: HookedConnection, command: bytes) -> bytes:
    """A send hook: the reader's BLPOP waits 60 s instead of its 1 s (so only CLIENT UNBLOCK can
    make it see a new key); a poll's short timeout is left as it is. Records each timeout sent."""
    if b"BLPOP" in command:
        timeout = float(command.rstrip(b"\r\n").rpartition(b"\r\n")[2])
        sent.append(timeout)
        if timeout == 1.0:
            return with_blpop_timeout(command, 60.0)
    return command


async def test_a_new_stream_wakes_the_blocked_reader(redis_url: str) -> None:
    hooks = Hooks()
    timeouts: list[float] = []
    hooks.before_send = functools.partial(_blpop_for_a_minute, timeouts)
    async with Relay(hooked_client(redis_url, hooks)) as relay:

        async def consume(mid: str) -> list[inference.WorkerResponse]:
            return [m async for m in relay.stream(mid, timeout=30)]

        first = asyncio.create_task(consume("a"))
        await asyncio.sleep(0.2)  # the reader is now blocked in BLPOP on message:a alone
        second = asyncio.create_task(consume("b"))
        await asyncio.sleep(0.05)
        await relay.publish("b", final())
        assert await asyncio.wait_for(second, timeout=20) == [final()]
        await relay.publish("a", final())
        assert await asyncio.wait_for(first, timeout=20) == [final()]
        assert timeouts and set(timeouts) == {1.0}, "the reader blocked, and never polled"


async def test_message_queue_max_length(redis_url: str) -> None:
    async with Relay(redis_url, message_queue_max_length=3) as relay:
        results = await asyncio.gather(
            *(relay.publish("full", token(i)) for i in range(5)), return_exceptions=True
        )
        assert results[:3] == [None, None, None]
        for r in results[3:]:
            assert isinstance(r, QueueFullError)
            assert r.key == "message:full" and r.max_size == 3 and "publish" in r.operation
            assert r.http_status_code == HTTPStatus.SERVICE_UNAVAILABLE
        client = aioredis.Redis.from_url(redis_url)
        assert await client.llen("message:full") == 3
        await client.aclose()
        # a reader makes room again
        async with relay.subscribe("full") as sub:
            assert len(await sub.next_batch(5)) == 3
        await relay.publish("full", token(9))


async def test_a_queue_already_over_the_max_length_takes_nothing(redis_url: str) -> None:
    # another writer (e.g. a reference server, which has no limit) filled it past the maximum:
    # the publish pushes nothing and leaves the list (and its expiry) as it was
    client = aioredis.Redis.from_url(redis_url)
    await client.rpush("message:over", *(token_frame(i) for i in range(5)))
    async with Relay(redis_url, message_queue_max_length=3) as relay:
        with pytest.raises(QueueFullError):
            await relay.publish("over", token(9))
        results = await asyncio.gather(
            relay.publish("over", token(10)), relay.publish("room", token(11)), return_exceptions=True
        )
        assert isinstance(results[0], QueueFullError) and results[1] is None
    assert await client.lrange("message:over", 0, -1) == [token_frame(i) for i in range(5)]
    assert await client.ttl("message:over") == -1
    assert await client.lrange("message:room", 0, -1) == [token_frame(11)]
    await client.aclose()


async def test_publish_and_stream_reject_bad_ids(relay: Relay) -> None:
    with pytest.raises(ValueError, match="message_id"):
        await relay.publish("", token(0))
    with pytest.raises(ValueError, match="message_id"):
        relay.subscribe(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis or .*RedisCluster client or a URL, got int"):
        Relay(42)  # type: ignore[arg-type]


async def test_closed_relay_refuses_work(redis_url: str) -> None:
    relay = Relay(redis_url)
    await relay.publish("c", token(0))
    stream_task = asyncio.ensure_future(relay.stream("c2", timeout=5).__anext__())
    await asyncio.sleep(0.05)
    await relay.aclose()
    with pytest.raises(RelayError, match="closed"):
        await stream_task
    with pytest.raises(RelayError, match="closed"):
        await relay.publish("c", token(1))


def test_errors_are_oasst_errors_with_key_and_operation_and_pickle() -> None:
    err = RelayPublishError("lost reply", key="message:x", operation="publish (EVALSHA)", frames=3)
    assert isinstance(err, OasstError) and isinstance(err, RelayError)
    assert "message:x" in str(err) and "publish (EVALSHA)" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RelayPublishError
    assert (back.key, back.operation, back.frames, back.detail) == (
        "message:x",
        "publish (EVALSHA)",
        3,
        "lost reply",
    )
    full = pickle.loads(pickle.dumps(QueueFullError("full", key="work:h", operation="enqueue", max_size=2)))
    assert full.max_size == 2 and full.http_status_code == HTTPStatus.SERVICE_UNAVAILABLE


async def test_closing_the_relay_gives_back_frames_drained_but_not_taken(redis_url: str) -> None:
    relay = Relay(redis_url)
    await asyncio.gather(*(relay.publish("held", token(i)) for i in range(5)))
    sub = relay.subscribe("held")
    await sub.__aenter__()
    client = aioredis.Redis.from_url(redis_url)
    for _ in range(200):  # wait until the reader has drained the queue into the subscription
        await asyncio.sleep(0.005)
        if await client.llen("message:held") == 0:
            break
    assert await client.llen("message:held") == 0
    await relay.aclose()
    assert await client.lrange("message:held", 0, -1) == [token_frame(i) for i in range(5)]
    await client.aclose()
    with pytest.raises(RelayError, match="closed"):
        await sub.next_batch(1)


async def test_without_the_client_command_the_reader_polls(redis_url: str) -> None:
    # an ACL user that may not run CLIENT (so no CLIENT ID / CLIENT UNBLOCK): new streams are
    # picked up by the reader's short BLPOP timeout instead
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command("ACL", "SETUSER", "noclient", "on", ">pw", "~*", "+@all", "-client")
    try:
        url = urlparse(redis_url)
        hooks = Hooks()
        timeouts: list[float] = []
        # a blocking BLPOP would wait a minute: only polling (short timeouts) sees the new stream
        hooks.before_send = functools.partial(_blpop_for_a_minute, timeouts)
        noclient = url._replace(netloc=f"noclient:pw@{url.hostname}:{url.port}").geturl()
        async with Relay(hooked_client(noclient, hooks)) as relay:

            async def consume(mid: str) -> list[inference.WorkerResponse]:
                return [m async for m in relay.stream(mid, timeout=30)]

            first = asyncio.create_task(consume("pa"))
            await asyncio.sleep(0.2)
            second = asyncio.create_task(consume("pb"))
            await asyncio.sleep(0.05)
            await relay.publish("pb", final())
            assert await asyncio.wait_for(second, timeout=20) == [final()]
            assert timeouts and set(timeouts) == {0.05}, "without CLIENT, every BLPOP is a short poll"
            await relay.publish("pa", final())
            assert await asyncio.wait_for(first, timeout=20) == [final()]
    finally:
        await admin.execute_command("ACL", "DELUSER", "noclient")
        await admin.aclose()


async def test_a_flush_larger_than_one_lua_unpack(redis_url: str) -> None:
    async with Relay(redis_url, message_queue_max_length=None) as relay:
        n = 12_000
        await asyncio.gather(*(relay.publish("big", token(i)) for i in range(n)))
        await relay.publish("big", final())
        got = [m async for m in relay.stream("big", timeout=10)]
    assert got == [*(token(i) for i in range(n)), final()]


def test_redis_is_a_release_the_relay_supports(redis_server: RedisServer) -> None:
    """The relay needs Redis >= 6.2 (``LPOP key count``; Valkey reports a compatible
    ``redis_version``). ``OASST_EXPECT_REDIS_SERVER`` (set by ``make test-redis-versions``, e.g.
    ``valkey 8.``) pins the server these tests must have run on, so a run meant for another
    server cannot pass on the default one."""
    import os

    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        info = client.info("server")
    finally:
        client.close()
    version = str(info["redis_version"])
    assert tuple(int(p) for p in version.split(".")[:2]) >= (6, 2), version
    name = str(info.get("server_name") or "redis")
    server = f"{name} {info.get(f'{name}_version', version)}"
    expected = os.environ.get("OASST_EXPECT_REDIS_SERVER")
    if expected:
        assert server.startswith(expected), f"tests ran on {server}, expected {expected}*"


async def test_a_consumer_that_stops_reading_holds_a_bounded_number_of_frames(redis_url: str) -> None:
    """The reader stops draining a queue whose stream holds ``stream_buffer`` frames not yet
    taken: later frames wait in Redis (where the queue's maximum length bounds them, so the
    publisher hears QueueFullError), and the stream resumes where it stopped once the consumer
    reads again; nothing is lost or reordered."""
    async with Relay(redis_url, stream_buffer=10, message_queue_max_length=40, read_interval=0) as relay:
        client = aioredis.Redis.from_url(redis_url)
        async with relay.subscribe("slow") as sub:
            await asyncio.gather(*(relay.publish("slow", token(i)) for i in range(12)))
            await asyncio.sleep(0.2)  # the reader drains those 12: over the buffer, it pauses
            await asyncio.gather(*(relay.publish("slow", token(i)) for i in range(12, 52)))
            await asyncio.sleep(0.2)
            assert await client.llen("message:slow") == 40  # waiting in Redis, not here
            with pytest.raises(QueueFullError):
                await relay.publish("slow", token(52))  # bounded end to end
            got = await sub.next_batch(1)
            assert got == [token_frame(i) for i in range(12)]
            for _ in range(100):  # taken: the reader reads the queue again
                if await client.llen("message:slow") == 0:
                    break
                await asyncio.sleep(0.01)
            rest: list[bytes] = []
            while len(rest) < 40:
                rest += await sub.next_batch(1)
            assert rest == [token_frame(i) for i in range(12, 52)]
        await client.aclose()
    with pytest.raises(ValueError, match="stream_buffer"):
        Relay(redis_url, stream_buffer=0)
