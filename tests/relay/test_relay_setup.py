"""The relay's first connection: it asks whether the server is a Redis Cluster node (which decides
the key names), and what is sent or opened before the answer waits for it, in order."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from oasst_shared.relay import Relay, RelayConnectionError, RelayError
from tests.relay.helpers import final, token, token_frame
from tests.support.redis_server import RedisServer, _free_port

pytestmark = pytest.mark.anyio


async def test_a_single_redis_gets_the_reference_key_names(redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        assert relay.cluster is None
        await relay.connect()
        assert relay.cluster is False
        await relay.publish("m", token(0))
    plain = aioredis.Redis.from_url(redis_url)
    try:
        assert await plain.lrange("message:m", 0, -1) == [token_frame(0)]
    finally:
        await plain.aclose()


async def test_frames_sent_before_the_answer_wait_for_it_in_order(redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        pub = relay.publisher()
        for i in range(50):
            pub.send("early", token(i))  # (no connection yet: held until the layout is known)
        pub.send("early", final())
        assert pub.in_flight == 51
        await pub.flush()
        assert pub.in_flight == 0 and pub.error is None
        got = [m async for m in relay.stream("early", timeout=5)]
    assert got == [token(i) for i in range(50)] + [final()]


async def test_a_relay_closed_while_its_first_connection_retries_ends_what_waited(
    redis_server: RedisServer,
) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    relay = Relay(url, retry_timeout=30)
    pub = relay.publisher()
    pub.send("m", token(0))

    async def read() -> None:
        async for _ in relay.stream("m", timeout=30):
            pass

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    await asyncio.wait_for(relay.aclose(), 5)
    with pytest.raises(RelayError, match="closed") as info:
        await asyncio.wait_for(reader, 5)
    assert info.value.key == "message:m"
    with pytest.raises(RelayError, match="closed"):
        await pub.flush()
    assert not reader.cancelled()


async def test_an_unreachable_redis_fails_the_early_frames_with_its_error() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    async with Relay(url, retry_timeout=0.3, connect_timeout=0.2) as relay:
        pub = relay.publisher()
        pub.send("m", token(0))
        pub.send("n", token(0))
        with pytest.raises(RelayConnectionError, match="unreachable") as info:
            await pub.flush()
        assert info.value.key in {"message:m", "message:n"} and "publish" in info.value.operation
        assert pub.in_flight == 0
        with pytest.raises(RelayConnectionError):  # and the next call asks again
            await relay.connect()


async def test_connections_share_one_driver_info(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py 8 builds the ``CLIENT SETINFO`` metadata per connection from the package's
    metadata on disk unless the pool has it: a relay made from a URL reads it once, not once per
    connection (each dequeue waiting at once opens one)."""
    import redis.utils

    real = redis.utils.get_lib_version
    reads: list[str] = []

    def counted() -> str:
        version = real()
        reads.append(version)
        return version

    monkeypatch.setattr(redis.utils, "get_lib_version", counted)
    async with Relay(redis_url) as relay:
        waits = [relay.dequeue_work(f"setinfo-{i}", timeout=0.1) for i in range(8)]
        assert await asyncio.gather(*waits) == [None] * 8
    assert len(reads) <= 1, f"redis-py's version was read {len(reads)} times for one relay"
