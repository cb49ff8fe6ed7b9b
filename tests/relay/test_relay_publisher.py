"""``Relay.publisher()``: frames sent without awaiting each one's round trip.

What each test pins down: frames land once, in send order, unchanged, sharing round trips;
``drain`` waits only above the limit and ``flush`` until every frame had its round trip; a
failed frame's error reaches the publisher (``flush``, ``drain`` and every later ``send``), and
what reached Redis is a prefix of what was sent to each queue (the frames queued behind a failed
one are withdrawn, other producers' frames are not); bad input is refused at ``send``.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.relay import (
    DEFAULT_PUBLISHER_LIMIT,
    Publisher,
    QueueFullError,
    Relay,
    RelayError,
    RelayPublishError,
)
from tests.relay.helpers import final, token, token_frame
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def lrange(url: str, key: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return list(await client.lrange(key, 0, -1))
    finally:
        await client.aclose()


async def evalsha_calls(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_sent_frames_land_in_order_unchanged_in_one_round_trip(relay: Relay, redis_url: str) -> None:
    await relay.publish("warm", token(0))  # connects and loads the script
    before = await evalsha_calls(redis_url)
    pub = relay.publisher()
    assert isinstance(pub, Publisher)
    for i in range(300):
        pub.send(f"q{i % 3}", token_frame(i, request_id=f"q{i % 3}"))
    assert pub.in_flight == 300
    await pub.flush()
    assert pub.in_flight == 0 and pub.error is None
    assert await evalsha_calls(redis_url) - before == 1
    for q in range(3):
        want = [token_frame(i, request_id=f"q{q}") for i in range(q, 300, 3)]
        assert await lrange(redis_url, f"message:q{q}") == want


async def test_structs_are_encoded_and_a_stream_reads_them(relay: Relay) -> None:
    async with relay.publisher() as pub:
        for i in range(5):
            pub.send("enc", token(i))
        pub.send("enc", bytearray(token_frame(5)))
        pub.send("enc", final())
    got = [m async for m in relay.stream("enc", timeout=5)]
    assert got == [token(i) for i in range(6)] + [final()]


async def test_drain_waits_only_above_the_limit(relay: Relay) -> None:
    pub = relay.publisher(limit=10)
    for i in range(5):
        pub.send("lim", token(i))
    await pub.drain()  # 5 <= 10 in flight: returns without waiting for the round trip
    assert pub.in_flight == 5
    for i in range(5, 30):
        pub.send("lim", token(i))
    await pub.drain()  # 30 > 10: waits until at most 10 are in flight
    assert pub.in_flight <= 10
    await pub.flush()
    assert pub.in_flight == 0


async def test_concurrent_waits_on_one_publisher_all_return(relay: Relay) -> None:
    pub = relay.publisher(limit=2)
    for i in range(10):
        pub.send("both", token(i))
    await asyncio.wait_for(asyncio.gather(pub.drain(), pub.flush(), pub.drain()), timeout=5)
    assert pub.in_flight == 0


async def test_publish_and_publisher_share_a_round_trip_and_keep_order(relay: Relay, redis_url: str) -> None:
    await relay.publish("warm", token(0))
    before = await evalsha_calls(redis_url)
    pub = relay.publisher()
    awaited = asyncio.ensure_future(relay.publish("mix", token(0)))
    await asyncio.sleep(0)  # the publish task queues its frame; the flusher runs next iteration
    pub.send("mix", token(1))  # same loop iteration: same round trip, behind it
    pub.send("mix", token(2))
    await asyncio.gather(awaited, pub.flush())
    assert await lrange(redis_url, "message:mix") == [token_frame(i) for i in range(3)]
    assert await evalsha_calls(redis_url) - before == 1


async def test_queue_full_reaches_the_publisher_and_only_a_prefix_lands(redis_url: str) -> None:
    async with Relay(redis_url, message_queue_max_length=3) as relay:
        await relay.connect()  # (else the first frames wait for it, and all go in one round trip)
        pub = relay.publisher()
        other = relay.publisher()
        for i in range(5):
            pub.send("full", token(i))
        await asyncio.sleep(0)  # the flusher takes that batch and starts its round trip
        pub.send("elsewhere", token(5))  # queued for the next round trip, behind the failure
        other.send("elsewhere", token(6))
        with pytest.raises(QueueFullError) as info:
            await pub.flush()
        err = info.value
        assert err.key == "message:full" and err.max_size == 3 and "publish" in err.operation
        assert pub.error is err and pub.in_flight == 0
        # every later call raises the same first error, and queues nothing
        with pytest.raises(QueueFullError):
            pub.send("elsewhere", token(7))
        with pytest.raises(QueueFullError):
            await pub.drain()
        await other.flush()
        assert other.error is None
        assert await lrange(redis_url, "message:full") == [token_frame(i) for i in range(3)]
        # pub's frame behind the failure was withdrawn; the other producer's frame was not
        assert await lrange(redis_url, "message:elsewhere") == [token_frame(6)]


async def test_a_failed_round_trip_reaches_every_publisher_in_it(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url, command_timeout=0.5) as relay:
        await relay.publish("warm", token(0))
        a, b = relay.publisher(), relay.publisher()
        own_redis.pause()  # the round trip is sent but not answered before the timeout
        try:
            a.send("pa", token(1))
            b.send("pb", token(1))
            results = await asyncio.gather(a.flush(), b.flush(), return_exceptions=True)
        finally:
            own_redis.resume()
        assert [type(r) for r in results] == [RelayPublishError, RelayPublishError]
        assert {r.key for r in results if isinstance(r, RelayError)} == {"message:pa", "message:pb"}
        assert "not resent" in str(results[0])
        with pytest.raises(RelayPublishError):
            a.send("pa", token(2))
        fresh = relay.publisher()  # the relay itself goes on: a new publisher works
        fresh.send("pa", token(3))
        await fresh.flush()


async def test_bad_input_is_refused_at_send(relay: Relay) -> None:
    pub = relay.publisher()
    with pytest.raises(ValueError, match="message_id"):
        pub.send("", token(0))
    with pytest.raises(ValueError, match="message_id"):
        pub.send(7, token(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="frame must be bytes or a WorkerResponse"):
        pub.send("m", {"response_type": "token"})
    with pytest.raises(TypeError, match="WorkRequest"):
        pub.send("m", codec.worker_request.decode(_work_request_json()))
    assert pub.in_flight == 0
    with pytest.raises(ValueError, match="limit"):
        relay.publisher(limit=-1)
    assert relay.publisher().drain is not None and DEFAULT_PUBLISHER_LIMIT > 0


async def test_send_on_a_closed_relay_raises(redis_url: str) -> None:
    relay = Relay(redis_url)
    pub = relay.publisher()
    await relay.aclose()
    with pytest.raises(RelayError, match="closed") as info:
        pub.send("late", token(0))
    assert info.value.key == "message:late"
    assert pub.in_flight == 0


async def test_context_manager_flushes_on_exit_and_not_on_error(relay: Relay, redis_url: str) -> None:
    async with relay.publisher() as pub:
        pub.send("ctx", token(0))
    assert pub.in_flight == 0
    assert await lrange(redis_url, "message:ctx") == [token_frame(0)]
    with pytest.raises(KeyError):
        async with relay.publisher() as pub2:
            pub2.send("ctx", token(1))
            raise KeyError("handler failed")
    assert pub2.in_flight == 1  # not waited for; the relay still sends it
    await asyncio.sleep(0.2)
    assert await lrange(redis_url, "message:ctx") == [token_frame(0), token_frame(1)]


def _work_request_json() -> bytes:
    from pathlib import Path

    return (Path(__file__).parents[2] / "examples" / "frames" / "work_request.json").read_bytes()
