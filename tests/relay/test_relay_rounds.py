"""The reader's rounds against a real Redis: their Redis work follows the keys that hold frames,
not the open streams, and no stream starves while others keep the reader busy.

Frames are pushed by a plain redis-py client (``RPUSH``, as a reference server process does), so
every ``EVALSHA`` Redis counts is a reader round (the relay's publish is also a script), and
``INFO commandstats`` counts the ``LPOP``/``EXISTS`` calls the rounds made inside the script.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from oasst_shared.relay import Relay, Subscription
from oasst_shared.relay._reader import COLD_SLICE as _COLD_SLICE
from tests.relay.helpers import final, token, token_frame
from tests.relay.wire import HookedConnection, Hooks, hooked_client, is_drain

pytestmark = pytest.mark.anyio


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def delta(after: dict[str, int], before: dict[str, int], name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


class Flood:
    """A plain client pushing ``per_push`` frames to one key per loop turn until stopped, and a
    subscription taking them, checking that they come once and in order."""

    def __init__(self, relay: Relay, client: aioredis.Redis, message_id: str, per_push: int = 16) -> None:
        self.relay = relay
        self.client = client
        self.key = f"message:{message_id}"
        self.message_id = message_id
        self.per_push = per_push
        self.sent = 0
        self.received = 0
        self.stop = asyncio.Event()
        self.pushed_all = asyncio.Event()  # set once the last push is counted in ``sent``

    async def push(self) -> None:
        while not self.stop.is_set():
            frames = [token_frame(self.sent + i) for i in range(self.per_push)]
            await self.client.rpush(self.key, *frames)
            self.sent += self.per_push
            await asyncio.sleep(0)
        self.pushed_all.set()

    async def take(self, sub: Subscription) -> None:
        # Not ``stop``: a push may still be on its way when the flood is told to stop.
        while not self.pushed_all.is_set() or self.received < self.sent:
            for frame in await sub.next_batch(5):
                assert frame == token_frame(self.received), f"frame {self.received} of the flood"
                self.received += 1


@pytest.fixture
async def plain(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def open_idle(relay: Relay, n: int, stack: list[Subscription]) -> None:
    for i in range(n):
        sub = relay.subscribe(f"idle{i}")
        await sub.__aenter__()
        stack.append(sub)


async def test_rounds_pop_the_busy_key_not_every_idle_one(redis_url: str, plain: aioredis.Redis) -> None:
    idle: list[Subscription] = []
    async with Relay(redis_url) as relay:
        await open_idle(relay, 1000, idle)
        flood = Flood(relay, plain, "busy")
        async with relay.subscribe("busy") as sub:
            taker = asyncio.create_task(flood.take(sub))
            pusher = asyncio.create_task(flood.push())
            # the busy key turns hot once a scan finds it (plain RPUSH rings no doorbell: the
            # reader's periodic scan, at least once a second, finds such frames); a stall of the
            # pusher (a busy machine) can cool it for a second, so the first window in which the
            # reader ran hot is measured
            for _ in range(8):
                before = await command_calls(plain)
                await asyncio.sleep(0.5)
                after = await command_calls(plain)
                if delta(after, before, "evalsha") > 20:
                    break
            flood.stop.set()
            await asyncio.gather(pusher, taker)
        rounds = delta(after, before, "evalsha")
        lpops = delta(after, before, "lpop")
        exists = delta(after, before, "exists")
        assert rounds > 20
        assert flood.received == flood.sent > 0
        # a round that drained every key would make 1001 LPOP calls (the old design), and a scan of
        # every key 32 EXISTS; a hot round pops the busy key and scans one slice of the idle ones
        # (2 EXISTS). Margin: a stall of the flood may cost a round over every key now and then.
        assert lpops / rounds < 5, (lpops, rounds)
        assert exists / rounds < _COLD_SLICE // 32 + 6, (exists, rounds)
        for s in idle:
            await s.aclose()


async def test_a_quiet_stream_is_not_starved_by_a_flooded_one(redis_url: str, plain: aioredis.Redis) -> None:
    idle: list[Subscription] = []
    async with Relay(redis_url) as relay:
        await open_idle(relay, 300, idle)
        flood = Flood(relay, plain, "flooded")
        async with relay.subscribe("flooded") as fsub, relay.subscribe("quiet") as qsub:
            taker = asyncio.create_task(flood.take(fsub))
            pusher = asyncio.create_task(flood.push())
            try:
                # the flooded key is hot (a scan found it: plain RPUSH rings no doorbell), "quiet" is
                # neither hot nor fresh
                await asyncio.sleep(1.5)
                assert flood.received > 0
                before = await command_calls(plain)
                await plain.rpush("message:quiet", token_frame(7))
                got = await asyncio.wait_for(qsub.next_batch(10), timeout=10)
                after = await command_calls(plain)
                assert not pusher.done()  # it came while the flood went on
            finally:
                flood.stop.set()
                await asyncio.gather(pusher, taker)
        assert got == [token_frame(7)]
        assert flood.received == flood.sent
        # within ceil(keys / slice) hot rounds, plus the rounds in flight around the two INFO calls
        keys = 300 + 2
        assert delta(after, before, "evalsha") <= math.ceil(keys / _COLD_SLICE) + 3
        for s in idle:
            await s.aclose()


async def test_a_stream_opened_during_a_flood_gets_its_waiting_frames_next_round(
    redis_url: str, plain: aioredis.Redis
) -> None:
    idle: list[Subscription] = []
    async with Relay(redis_url) as relay:
        await open_idle(relay, 300, idle)
        flood = Flood(relay, plain, "flood2")
        await plain.rpush("message:late", *(token_frame(i) for i in range(3)))
        async with relay.subscribe("flood2") as fsub:
            taker = asyncio.create_task(flood.take(fsub))
            pusher = asyncio.create_task(flood.push())
            try:
                await asyncio.sleep(1.5)  # the flood is hot (a scan found it)
                before = await command_calls(plain)
                async with relay.subscribe("late") as late:
                    got = await asyncio.wait_for(late.next_batch(10), timeout=10)
                    after = await command_calls(plain)
            finally:
                flood.stop.set()
                await asyncio.gather(pusher, taker)
        assert got == [token_frame(i) for i in range(3)]
        assert delta(after, before, "evalsha") <= 3  # a fresh key is popped in the next round
        for s in idle:
            await s.aclose()


async def test_frames_arrive_once_in_order_across_hot_scan_and_wait_rounds(redis_url: str) -> None:
    # bursts (keys turn hot), trickles (scan rounds) and pauses (wait rounds), on 40 streams
    async with Relay(redis_url) as relay:
        n = 40
        counts = [0] * n

        async def consume(s: int) -> list[int]:
            got = []
            async for m in relay.stream(f"mix{s}", timeout=10):
                got.append(getattr(m, "token_id", -1))
            return got

        tasks = [asyncio.create_task(consume(s)) for s in range(n)]
        await asyncio.sleep(0.05)
        for step in range(60):
            if step % 10 < 3:  # a burst: many frames to a few keys in one flush
                keys = (step % 7, 8)
                burst = [relay.publish(f"mix{s}", token(counts[s] + i)) for s in keys for i in range(20)]
                for s in keys:
                    counts[s] += 20
                await asyncio.gather(*burst)
            elif step % 10 < 8:  # a trickle: one frame to one key
                s = (step * 13) % n
                await relay.publish(f"mix{s}", token(counts[s]))
                counts[s] += 1
                await asyncio.sleep(0.0005)
            else:  # a pause: the reader blocks
                await asyncio.sleep(0.02)
        await asyncio.gather(*(relay.publish(f"mix{s}", final()) for s in range(n)))
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for s in range(n):
        assert results[s] == [*range(counts[s]), -1], f"stream {s}"


@pytest.mark.parametrize("interval", [0, 0.001, 0.02])
async def test_read_interval_bounds_the_wait_while_frames_flow(redis_url: str, interval: float) -> None:
    async with Relay(redis_url, read_interval=interval) as relay:
        assert relay.read_interval == interval

        async def consume() -> list[int]:
            return [getattr(m, "token_id", -1) async for m in relay.stream("ri", timeout=10)]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        for i in range(30):
            await relay.publish("ri", token(i))
            await asyncio.sleep(0.001)
        await relay.publish("ri", final())
        assert await asyncio.wait_for(task, timeout=10) == [*range(30), -1]


async def test_read_interval_is_checked(redis_url: str) -> None:
    for bad in (-0.001, 2, "1ms", None):
        with pytest.raises(ValueError, match="read_interval"):
            Relay(redis_url, read_interval=bad)  # type: ignore[arg-type]


async def test_a_stream_opened_while_the_reader_checks_its_connection_is_read_at_once(
    redis_url: str, plain: aioredis.Redis
) -> None:
    """Once idle, the reader decides to wait on its doorbell, then checks its connection, which
    may yield to the event loop (redis-py < 8's check does). A stream opened then finds the
    reader not yet blocked, so it sends no ``CLIENT UNBLOCK``: the reader must see the new
    stream and run a round rather than wait out its ``BLPOP`` (which nothing rings for frames
    pushed before the stream opened). The connection seam holds the check that follows a drain
    (an idle reader's next round is a wait) until the stream is open, so the order is certain."""
    hooks = Hooks()
    armed, held, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def before_check(conn: HookedConnection) -> None:
        if armed.is_set() and not release.is_set() and is_drain(conn.last_sent):
            held.set()
            await release.wait()  # the yield of a connection check, kept open

    hooks.before_check = before_check
    client = hooked_client(redis_url, hooks)
    loop = asyncio.get_running_loop()
    try:
        async with Relay(client) as relay, relay.subscribe("idle-before-the-race"):
            await asyncio.sleep(0.1)  # its first rounds
            armed.set()
            await asyncio.wait_for(held.wait(), 5)  # a drain ended; the reader checks its connection
            await plain.rpush("message:late", token_frame(0), token_frame(1))  # (no reader knew it: no bell)
            async with relay.subscribe("late") as sub:
                release.set()
                t0 = loop.time()
                got = await sub.next_batch(5)
                waited = loop.time() - t0
    finally:
        await client.aclose()
    assert got == [token_frame(0), token_frame(1)]
    # a round at once, not the end of the doorbell's BLPOP (1 s) or the next scan (1 s)
    assert waited < 0.5, f"the new stream's frames came after {waited:.2f} s"
