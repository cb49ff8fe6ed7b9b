"""Faults against a real Redis that the test stops, kills, pauses and restarts (its own process,
appending every write to an AOF so that a restart keeps the data, as a production Redis would).

What each test pins down:
* a connection refused before a round trip is retried with backoff, and the write lands once;
* past the retry deadline the caller gets ``RelayConnectionError`` and nothing was written;
* a write whose reply was lost raises ``RelayPublishError`` and is never resent (it may have
  been applied: the paused-then-resumed case shows it was);
* readers survive a Redis restart and a killed connection, and resume the same keys with no
  frame duplicated or reordered.
"""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from oasst_shared import codec
from oasst_shared.relay import Relay, RelayConnectionError, RelayError, RelayPublishError
from oasst_shared.schemas import inference
from tests.relay.helpers import final, token, token_frame
from tests.relay.wire import HookedConnection, Hooks, hooked_client, is_drain
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def in_thread(fn: object, *args: object) -> None:
    """Run a blocking server control call without blocking the event loop."""
    await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]


async def llen(url: str, key: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(await client.llen(key))
    finally:
        await client.aclose()


async def test_connection_refused_is_retried_until_redis_is_back(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url, retry_timeout=10) as relay:
        await relay.publish("warm", token(0))  # a live connection, which the restart will kill
        own_redis.stop()
        pending = asyncio.create_task(relay.publish("refused", token(1)))
        await asyncio.sleep(0.3)
        assert not pending.done()  # retrying with backoff
        await in_thread(own_redis.start)
        await asyncio.wait_for(pending, timeout=10)
        assert await llen(own_redis.url, "message:refused") == 1


async def test_retry_deadline_gives_connection_error_and_writes_nothing(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url, retry_timeout=0.3) as relay:
        own_redis.stop()
        t0 = time.monotonic()
        with pytest.raises(RelayConnectionError) as info:
            await relay.publish("never", token(1))
        assert time.monotonic() - t0 < 5
        assert info.value.key == "message:never" and "publish" in info.value.operation
        with pytest.raises(RelayConnectionError) as info2:
            await relay.enqueue_work("h", "m")
        assert info2.value.key == "work:h"
        await in_thread(own_redis.start)
        assert await llen(own_redis.url, "message:never") == 0
        assert await llen(own_redis.url, "work:h") == 0
        await relay.publish("never", token(2))  # and it works again afterwards
        assert await llen(own_redis.url, "message:never") == 1


async def test_lost_reply_raises_publish_error_and_is_not_resent(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url, command_timeout=0.5) as relay:
        await relay.publish("maybe", token(0))
        own_redis.pause()  # the next command is sent but not answered
        try:
            with pytest.raises(RelayPublishError) as info:
                await relay.publish("maybe", token(1))
        finally:
            own_redis.resume()
        err = info.value
        assert err.key == "message:maybe" and "publish" in err.operation and err.frames == 1
        assert "not resent" in str(err)
        await asyncio.sleep(0.2)
        # the paused Redis did apply it once resumed: exactly once, because the relay did not resend
        client = aioredis.Redis.from_url(own_redis.url)
        assert await client.lrange("message:maybe", 0, -1) == [token_frame(0), token_frame(1)]
        await client.aclose()
        await relay.publish("maybe", token(2))  # a fresh connection serves the next flush


async def test_crash_during_round_trip_raises_publish_error_for_every_queue_of_the_flush(
    own_redis: RedisServer,
) -> None:
    async with Relay(own_redis.url, retry_timeout=0.3) as relay:
        await relay.publish("a", token(0))
        own_redis.pause()
        flush = asyncio.gather(
            relay.publish("a", token(1)), relay.publish("b", token(1)), return_exceptions=True
        )
        await asyncio.sleep(0.2)
        await in_thread(
            functools.partial(own_redis.stop, kill=True)
        )  # SIGKILL while paused: the reply never comes
        results = await flush
        assert [type(r) for r in results] == [RelayPublishError, RelayPublishError]
        assert {r.key for r in results if isinstance(r, RelayError)} == {"message:a", "message:b"}


async def test_stale_connection_after_restart_is_replaced_before_sending(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url) as relay:
        await relay.publish("stale", token(0))
        await in_thread(own_redis.restart)
        await asyncio.sleep(0.05)  # the loop sees the old socket's EOF
        # not a RelayPublishError: the dead connection is detected before the command is sent,
        # and the script (gone with the restart) is loaded again on NOSCRIPT
        await relay.publish("stale", token(1))
        client = aioredis.Redis.from_url(own_redis.url)
        assert await client.lrange("message:stale", 0, -1) == [token_frame(0), token_frame(1)]
        await client.aclose()


async def test_reader_survives_a_restart_and_resumes_the_same_key(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url) as relay:
        got: list[inference.WorkerResponse] = []

        async def consume() -> None:
            async for m in relay.stream("survive", timeout=15):
                got.append(m)

        reader = asyncio.create_task(consume())
        for i in range(10):
            await relay.publish("survive", token(i))
        while len(got) < 10:
            await asyncio.sleep(0.01)
        await in_thread(own_redis.restart)  # the reader is blocked in BLPOP: its connection dies
        for i in range(10, 20):
            await relay.publish("survive", token(i))
        await relay.publish("survive", final())
        await asyncio.wait_for(reader, timeout=15)
        assert got == [*(token(i) for i in range(20)), final()]


async def test_frames_published_while_the_reader_is_down_are_read_after(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url) as relay, Relay(own_redis.url) as other:
        got: list[inference.WorkerResponse] = []

        async def consume() -> None:
            async for m in relay.stream("gap", timeout=15):
                got.append(m)

        reader = asyncio.create_task(consume())
        await other.publish("gap", token(0))
        while not got:
            await asyncio.sleep(0.01)
        own_redis.stop()
        await asyncio.sleep(0.3)  # the reader retries with backoff meanwhile
        await in_thread(own_redis.start)
        for i in range(1, 6):
            await other.publish("gap", token(i))
        await other.publish("gap", final())
        await asyncio.wait_for(reader, timeout=15)
        assert got == [*(token(i) for i in range(6)), final()]


async def test_killed_reader_connection_is_reopened_without_loss(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url) as relay:
        got: list[inference.WorkerResponse] = []

        async def consume() -> None:
            async for m in relay.stream("reset", timeout=15):
                got.append(m)

        reader = asyncio.create_task(consume())
        await relay.publish("reset", token(0))
        while not got:
            await asyncio.sleep(0.01)
        admin = aioredis.Redis.from_url(own_redis.url)
        # reset every blocked client: the relay's reader (CLIENT KILL TYPE normal would kill admin too)
        for c in await admin.client_list():
            if c.get("cmd") == "blpop":
                await admin.client_kill_filter(_id=c["id"])
        await admin.aclose()
        for i in range(1, 4):
            await relay.publish("reset", token(i))
        await relay.publish("reset", final())
        await asyncio.wait_for(reader, timeout=15)
        assert got == [*(token(i) for i in range(4)), final()]


async def test_restart_under_load_never_duplicates_or_reorders(own_redis: RedisServer) -> None:
    streams, per_stream = 8, 150
    async with Relay(own_redis.url, retry_timeout=10) as relay:
        received: dict[int, list[int]] = {s: [] for s in range(streams)}
        acked_after_restart: dict[int, list[int]] = {s: [] for s in range(streams)}
        restarted = asyncio.Event()

        async def consume(s: int) -> None:
            async for m in relay.stream(f"load{s}", timeout=15):
                if isinstance(m, inference.TokenResponse):
                    received[s].append(m.token_id)

        async def produce(s: int) -> None:
            for i in range(per_stream):
                after = restarted.is_set()
                try:
                    await relay.publish(f"load{s}", token(i))
                except (RelayPublishError, RelayConnectionError):
                    continue  # outcome unknown or not sent: the receiver may or may not see it
                if after:
                    acked_after_restart[s].append(i)
                await asyncio.sleep(0.001)
            await relay.publish(f"load{s}", final())

        readers = [asyncio.create_task(consume(s)) for s in range(streams)]
        writers = asyncio.gather(*(produce(s) for s in range(streams)))
        await asyncio.sleep(0.1)
        await in_thread(own_redis.restart)
        restarted.set()
        await asyncio.wait_for(writers, timeout=30)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=30)
    for s in range(streams):
        ids = received[s]
        assert ids == sorted(set(ids)), f"stream {s}: duplicated or reordered frames"
        assert set(acked_after_restart[s]) <= set(ids), f"stream {s}: acknowledged frames lost"
        assert len(ids) >= len(acked_after_restart[s]) > 0


async def test_dequeue_retries_refused_connections_and_reports_a_dropped_blpop(
    own_redis: RedisServer,
) -> None:
    async with Relay(own_redis.url, retry_timeout=10) as relay:
        own_redis.stop()
        waiter = asyncio.create_task(relay.dequeue_work("h", timeout=5))
        await asyncio.sleep(0.2)
        await in_thread(own_redis.start)
        await relay.enqueue_work("h", "m1")
        assert await asyncio.wait_for(waiter, timeout=10) == "m1"
        blocked = asyncio.create_task(relay.dequeue_work("h", timeout=10))
        await asyncio.sleep(0.2)
        await in_thread(own_redis.restart)
        with pytest.raises(RelayConnectionError) as info:
            await asyncio.wait_for(blocked, timeout=10)
        assert info.value.key == "work:h" and "BLPOP" in info.value.operation


async def test_stream_timeout_while_redis_is_down_says_so(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url) as relay:
        await relay.publish("down", codec.worker_response.encode(token(0)))
        async with relay.subscribe("down") as sub:
            assert await sub.next_batch(5) == [token_frame(0)]
            own_redis.stop()
            with pytest.raises(RelayConnectionError) as info:
                await sub.next_batch(0.5)
            assert info.value.key == "message:down"


async def test_frames_given_back_on_close_keep_their_order_with_a_round_in_flight(
    own_redis: RedisServer,
) -> None:
    """A stream closes while the reader's round trip holding a newer frame of its queue is in
    flight: the frames it had and that newer one go back to the head of the list together, in
    order (given back separately, the newer one would land ahead of the older ones)."""
    async with Relay(own_redis.url, read_interval=0) as relay:
        plain = aioredis.Redis.from_url(own_redis.url)
        sub = relay.subscribe("back")
        await sub.__aenter__()
        await plain.rpush("message:back", *[token_frame(i) for i in range(5)])
        for _ in range(200):  # the reader drains them into the subscription
            if await plain.llen("message:back") == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # its next round finds nothing and blocks in BLPOP
        own_redis.pause()
        try:
            # queued while Redis is stopped: a newer frame (it will serve the blocked BLPOP),
            # then the close (its unblock and give-back)
            push = asyncio.create_task(plain.rpush("message:back", *[token_frame(i) for i in range(5, 8)]))
            await asyncio.sleep(0.05)
            closing = asyncio.create_task(sub.aclose())
            await asyncio.sleep(0.05)
        finally:
            own_redis.resume()
        await asyncio.wait_for(asyncio.gather(push, closing), timeout=10)
        await asyncio.sleep(0.3)  # any give-back still in flight lands
        assert await plain.lrange("message:back", 0, -1) == [token_frame(i) for i in range(8)]
        # and a new stream reads them all, once, in order
        await relay.publish("back", final())
        got = [m async for m in relay.stream("back", timeout=5)]
        assert got == [*(token(i) for i in range(8)), final()]
        await plain.aclose()


async def test_a_stream_opened_while_another_gives_back_reads_after_the_given_back_frames(
    own_redis: RedisServer,
) -> None:
    """A new stream on a queue whose previous stream is still closing (its give-back not yet
    landed) starts reading only once those older frames are back at the head of the list."""
    async with Relay(own_redis.url, read_interval=0) as relay:
        plain = aioredis.Redis.from_url(own_redis.url)
        first = relay.subscribe("reopen")
        await first.__aenter__()
        await plain.rpush("message:reopen", *[token_frame(i) for i in range(5)])
        for _ in range(200):
            if await plain.llen("message:reopen") == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the reader is blocked in BLPOP again
        own_redis.pause()
        try:
            closing = asyncio.create_task(first.aclose())  # its unblock is queued in Redis
            await asyncio.sleep(0.05)
            push = asyncio.create_task(plain.rpush("message:reopen", *[token_frame(i) for i in range(5, 8)]))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(_collect(relay, "reopen"))
            await asyncio.sleep(0.05)
        finally:
            own_redis.resume()
        await asyncio.wait_for(asyncio.gather(closing, push), timeout=10)
        await relay.publish("reopen", final())
        got = await asyncio.wait_for(second, timeout=10)
        assert got == [*(token(i) for i in range(8)), final()]
        await plain.aclose()


async def _collect(relay: Relay, message_id: str) -> list[inference.WorkerResponse]:
    return [m async for m in relay.stream(message_id, timeout=5)]


async def test_a_lost_drain_reply_loses_no_frame(redis_server: RedisServer) -> None:
    """The reader's connection fails after Redis ran a drain but before its reply was read (a
    reset on the way back, injected on the client side once Redis has answered): the frames that
    drain popped are delivered from the reader's backup after it reconnects, once, in order."""
    redis_server.flushall()
    plain = aioredis.Redis.from_url(redis_server.url)
    hooks = Hooks()
    armed = False
    lost: list[int] = []

    async def lose_a_drain_reply(conn: HookedConnection) -> None:
        if armed and not lost and is_drain(conn.last_sent):
            await asyncio.sleep(0.1)  # Redis has run the drain and sent its reply
            lost.append(await plain.llen("message:lost"))
            await conn.disconnect(nowait=True)
            raise RedisConnectionError("connection reset (injected): the reply is lost")

    hooks.before_read = lose_a_drain_reply
    async with Relay(hooked_client(redis_server.url, hooks), read_interval=0) as relay:
        consumer = asyncio.create_task(_collect(relay, "lost"))
        await asyncio.sleep(0.1)  # the reader blocks in BLPOP on the stream's key
        armed = True
        await asyncio.gather(*(relay.publish("lost", token(i)) for i in range(10)))
        for _ in range(300):
            if lost:
                break
            await asyncio.sleep(0.01)
        assert lost == [0], "the injected failure hit a drain that had popped the frames"
        await relay.publish("lost", final())
        got = await asyncio.wait_for(consumer, timeout=10)
        assert got == [*(token(i) for i in range(10)), final()]
    await plain.aclose()


async def test_a_drain_that_never_ran_is_not_recovered_twice(redis_server: RedisServer) -> None:
    """The connection fails while a drain is being sent, before Redis ran it: the backup still
    holds the previous round's frames, which were delivered; the reader recognises them by their
    round id and delivers nothing again."""
    redis_server.flushall()
    plain = aioredis.Redis.from_url(redis_server.url)
    hooks = Hooks()
    armed = False
    failed: list[bytes] = []

    async def fail_before_sending(conn: HookedConnection, command: bytes) -> bytes:
        # fail the first drain sent while the backup holds a delivered round's frames
        if armed and not failed and is_drain(command):
            backups = await plain.keys("relay:inflight:*")
            if backups and await plain.llen(backups[0]) > 0:
                failed.append(command)
                await conn.disconnect(nowait=True)
                raise RedisConnectionError("connection reset while sending (injected)")
        return command

    hooks.before_send = fail_before_sending
    async with Relay(hooked_client(redis_server.url, hooks), read_interval=0) as relay:
        consumer = asyncio.create_task(_collect(relay, "twice"))
        await asyncio.sleep(0.1)  # the reader blocks in BLPOP
        armed = True
        # one flush of two frames: the BLPOP takes the first, the next drain pops the second
        # (the backup now holds it), and the drain after that is the one that fails
        await asyncio.gather(relay.publish("twice", token(0)), relay.publish("twice", token(1)))
        for _ in range(300):
            if failed:
                break
            await asyncio.sleep(0.01)
        assert failed
        for i in range(2, 6):
            await relay.publish("twice", token(i))
        await relay.publish("twice", final())
        got = await asyncio.wait_for(consumer, timeout=10)
        assert got == [*(token(i) for i in range(6)), final()]
    await plain.aclose()
