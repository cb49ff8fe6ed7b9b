"""Open streams cost O(1): the reader's idle wait names its doorbell alone, whatever the number of
streams, and a frame on any of thousands of them is still delivered, including frames that rang
no doorbell (a plain RPUSH, a doorbell entry lost with a connection). Registrations expire when
their reader dies. Waiting chats' queue positions are read in one round trip per interval.

Against the real ``redis-server`` the tests start; the reader's commands are seen through the
connection seam (``tests/relay/wire.py``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from oasst_shared.relay import QueuePosition, Relay, Subscription
from tests.relay.helpers import token, token_frame
from tests.relay.wire import HookedConnection, Hooks, hooked_client
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def open_streams(relay: Relay, n: int, prefix: str) -> list[Subscription]:
    subs = []
    for i in range(n):
        sub = relay.subscribe(f"{prefix}{i}")
        await sub.__aenter__()
        subs.append(sub)
    return subs


async def close_all(subs: list[Subscription]) -> None:
    for sub in subs:
        await sub.aclose()


def blpop_keys(command: bytes) -> int:
    """How many keys a ``BLPOP`` command names (its array length minus the name and timeout)."""
    start = command.index(b"BLPOP") - len(b"$5\r\n")
    header = command[:start].rsplit(b"*", 1)[1]
    return int(header.split(b"\r\n", 1)[0]) - 2


async def test_an_idle_reader_waits_on_its_doorbell_alone(redis_url: str) -> None:
    waits: list[int] = []

    async def record(conn: HookedConnection, command: bytes) -> bytes:
        if b"BLPOP" in command:
            waits.append(blpop_keys(command))
        return command

    hooks = Hooks()
    hooks.before_send = record
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(hooked_client(redis_url, hooks)) as relay:
        subs = await open_streams(relay, 2000, "idle")
        await asyncio.sleep(0.3)  # registered, scanned once, now waiting
        waits.clear()
        before = await plain.info("commandstats")
        await asyncio.sleep(2.2)
        after = await plain.info("commandstats")
        assert waits and set(waits) == {1}, "each idle wait names one key, the doorbell"

        def calls(name: str) -> int:
            return int(after.get(f"cmdstat_{name}", {}).get("calls", 0)) - int(
                before.get(f"cmdstat_{name}", {}).get("calls", 0)
            )

        # about one BLPOP timeout and one scan of every key (one EVALSHA) a second: not O(streams)
        assert calls("blpop") <= 5 and calls("evalsha") <= 5, (calls("blpop"), calls("evalsha"))
        await close_all(subs)
    await plain.aclose()


async def test_a_frame_on_any_of_thousands_of_streams_is_delivered(redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        subs = await open_streams(relay, 3000, "many")
        await asyncio.sleep(0.2)
        for i in (0, 1234, 2999, 17, 2500):
            await relay.publish(f"many{i}", token(i))
            assert await subs[i].next_batch(5) == [token_frame(i)]
        await close_all(subs)


async def test_a_plain_rpush_that_rings_no_doorbell_is_found_by_the_scan(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(redis_url) as relay:
        subs = await open_streams(relay, 2000, "ref")
        await asyncio.sleep(0.3)
        await plain.rpush("message:ref1500", token_frame(7))  # a reference server process's push
        assert await subs[1500].next_batch(5) == [token_frame(7)]
        await close_all(subs)
    await plain.aclose()


async def test_a_doorbell_entry_lost_with_its_connection_is_found_by_the_scan(redis_url: str) -> None:
    """The reader's connection dies after Redis popped the doorbell entry for it: the entry is
    lost, the frame is not (the next scan drains the key)."""
    hooks = Hooks()
    armed = False
    lost: list[object] = []

    async def lose_a_bell(conn: HookedConnection, reply: object) -> None:
        if armed and not lost and reply and b"BLPOP" in conn.last_sent and b"relay:bell:" in conn.last_sent:
            lost.append(reply)  # Redis popped the entry and answered; the answer never arrives
            await conn.disconnect(nowait=True)
            raise RedisConnectionError("connection reset (injected): the doorbell's reply is lost")

    hooks.after_read = lose_a_bell
    async with Relay(hooked_client(redis_url, hooks)) as relay:
        subs = await open_streams(relay, 500, "bell")
        await asyncio.sleep(0.3)  # waiting on the doorbell
        armed = True
        await relay.publish("bell250", token(250))
        assert await subs[250].next_batch(10) == [token_frame(250)]
        assert lost, "the injected loss hit a doorbell wait"
        await close_all(subs)


async def test_registrations_name_the_reader_and_expire(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(redis_url, message_queue_expire=30) as relay:
        async with relay.subscribe("reg") as sub:
            await relay.publish("reg", token(0))
            assert await sub.next_batch(5) == [token_frame(0)]
            reader = await plain.get("relay:reader:reg")
            assert reader is not None
            assert 0 < await plain.ttl("relay:reader:reg") <= 30
            bell = f"relay:bell:{reader.decode()}"
            assert 0 < await plain.ttl(bell) <= 30 or await plain.exists(bell) == 0
        async with relay.subscribe("other"):  # a round that carries the closed stream's deletion
            for _ in range(50):
                if not await plain.exists("relay:reader:reg"):
                    break
                await asyncio.sleep(0.1)
        assert not await plain.exists("relay:reader:reg")
    await plain.aclose()


async def test_a_dead_readers_registrations_expire(redis_url: str) -> None:
    """A process killed while it reads streams leaves registrations that expire by themselves;
    publishes meanwhile ring a doorbell nobody reads, which expires too."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from oasst_shared.relay import Relay
        async def main():
            relay = Relay({redis_url!r}, message_queue_expire=2)
            subs = [relay.subscribe(f"dead{{i}}") for i in range(50)]
            for s in subs:
                await s.__aenter__()
            await asyncio.sleep(0.5)
            print("ready", flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == b"ready"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    plain = aioredis.Redis.from_url(redis_url)
    assert len(await plain.keys("relay:reader:dead*")) == 50
    async with Relay(redis_url, message_queue_expire=2) as relay:
        await relay.publish("dead7", token(7))  # rings the dead reader's doorbell
    assert await plain.keys("relay:bell:*")
    assert await plain.lrange("message:dead7", 0, -1) == [token_frame(7)]  # the frame waits for a reader
    await asyncio.sleep(2.5)
    assert await plain.keys("relay:reader:dead*") == []
    assert await plain.keys("relay:bell:*") == []
    await plain.aclose()


async def test_waiting_chats_share_one_position_read_per_interval(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(redis_url) as relay:
        for i in range(300):
            await relay.enqueue_work("pool", f"w{i}")
        before = (await plain.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0)
        positions = await asyncio.gather(
            *(relay.queue_position(f"w{i}", "pool", max_age=0.5) for i in range(300))
        )
        assert positions == [QueuePosition(i + 1, 300) for i in range(300)]
        for _ in range(3):  # asked again within the interval: served from the last reading
            await asyncio.sleep(0.2)
            again = await asyncio.gather(
                *(relay.queue_position(f"w{i}", "pool", max_age=0.5) for i in range(300))
            )
            assert again == positions
        after = (await plain.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0)
        assert 1 <= after - before <= 3  # one MGET per half second, not 1,200
        # the queue moves on: a later reading sees it
        assert await relay.dequeue_work("pool", 1) == "w0"
        await asyncio.sleep(1.1)
        assert await relay.queue_position("w5", "pool", max_age=0.5) == QueuePosition(5, 299)
        assert await relay.queue_position("w5", "pool") == QueuePosition(5, 299)  # the exact call
    await plain.aclose()


async def test_a_position_asked_while_a_reading_is_slow_is_read_not_dropped(own_redis: RedisServer) -> None:
    """A chat that asks while the poll's reading is held up (Redis paused) gets its position
    from the next reading: it is not dropped from the poll as stale before it was ever read
    (that left the poll with nothing to read, and an MGET of no keys failed every waiting chat)."""
    async with Relay(own_redis.url) as relay:
        await relay.enqueue_work("slow", "m1")
        await relay.enqueue_work("slow", "m2")
        assert await relay.queue_position("m1", "slow", max_age=0.05) == QueuePosition(1, 2)
        await asyncio.sleep(0.06)  # the poll's next reading is due
        own_redis.pause()  # SIGSTOP: that reading waits
        try:
            await asyncio.sleep(0.1)
            late = asyncio.create_task(relay.queue_position("m2", "slow", max_age=0.05))
            await asyncio.sleep(0.4)  # far older than two intervals by the time Redis answers
        finally:
            own_redis.resume()
        assert await asyncio.wait_for(late, 5) == QueuePosition(2, 2)
