"""The relay never fails silently: each way it was seen to fail, against a real Redis started with
the settings that make it happen (requirepass, maxmemory, a key of the wrong type, a paused
process, a cluster-mode node, a 20 MB frame).

Every error is an ``OasstError`` subclass naming the key and the operation, and says truthfully
whether a write may have been applied (``maybe_applied``): False when Redis answered with an
error, so nothing was pushed and the caller may resend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from oasst_shared.exceptions import OasstError
from oasst_shared.relay import (
    Relay,
    RelayConnectionError,
    RelayFrameError,
    RelayOutOfMemoryError,
    RelayResponseError,
    RelayStalledError,
)
from tests.relay.helpers import final, token, token_frame
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.anyio


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    """A Redis at its maxmemory (2 MB, noeviction): every write that may grow memory is refused."""
    with running_redis(
        use_env=False, extra_args=("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    ) as srv:
        yield srv


async def fill(url: str) -> aioredis.Redis:
    """Write ballast until Redis refuses a write for memory; the client that wrote it."""
    plain = aioredis.Redis.from_url(url)
    i = 0
    for size in (256 << 10, 32 << 10, 4 << 10, 512, 64, 8):  # until even a small write is refused
        for _ in range(400):
            i += 1
            try:
                await plain.set(f"ballast:{i}", b"x" * size)
            except OutOfMemoryError:
                break
        else:
            raise AssertionError("Redis never refused a write: is maxmemory set?")
    return plain


def names_key_and_op(err: OasstError, key: str, op: str) -> None:
    assert isinstance(err, OasstError)
    assert getattr(err, "key", None) == key, err
    assert op in getattr(err, "operation", ""), err
    assert key in str(err) and op in str(err)


async def test_publish_to_a_full_redis_is_out_of_memory_and_not_applied(full_redis: RedisServer) -> None:
    plain = await fill(full_redis.url)
    async with Relay(full_redis.url) as relay:
        with pytest.raises(RelayOutOfMemoryError) as info:
            await relay.publish("oom", token(0))
        err = info.value
        names_key_and_op(err, "message:oom", "publish")
        assert err.maybe_applied is False and "OOM" in err.reply
        pub = relay.publisher()
        pub.send("oom", token(1))
        with pytest.raises(RelayOutOfMemoryError):
            await pub.flush()
        assert await plain.exists("message:oom") == 0
        # memory freed: the same relay publishes again (nothing was half-written)
        await plain.delete(*[k async for k in plain.scan_iter("ballast:*")])
        await relay.publish("oom", token(2))
        assert await plain.lrange("message:oom", 0, -1) == [token_frame(2)]
    await plain.aclose()


async def test_work_queues_on_a_full_redis_name_the_key(full_redis: RedisServer) -> None:
    plain = await fill(full_redis.url)
    async with Relay(full_redis.url) as relay:
        with pytest.raises(RelayOutOfMemoryError) as info:
            await relay.enqueue_work("h", "m1")
        names_key_and_op(info.value, "work:h", "enqueue_work")
        assert info.value.maybe_applied is False
        assert await plain.exists("work:h", "ctr_enq:work:h", "pos:m1") == 0
        # reading is not refused: the position of a message nobody queued
        assert await relay.queue_position("m1", "h") == (0, 0)
    await plain.aclose()


async def test_a_stream_reads_what_was_pushed_before_redis_filled_up(full_redis: RedisServer) -> None:
    plain = aioredis.Redis.from_url(full_redis.url)
    await plain.rpush("message:before", token_frame(0), codec_final())
    await fill(full_redis.url)
    async with Relay(full_redis.url) as relay:
        got = [m async for m in relay.stream("before", timeout=5)]
    assert got == [token(0), final()]
    await plain.aclose()


def codec_final() -> bytes:
    from oasst_shared import codec

    return codec.worker_response.encode(final())


async def test_a_key_of_the_wrong_type_is_a_typed_error_and_other_queues_are_pushed(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    await plain.set("message:str", "not a list")
    await plain.set("work:str", "not a list")
    await plain.set("ctr_enq:work:ctr", "not a number")
    async with Relay(redis_url) as relay:
        results = await asyncio.gather(
            relay.publish("str", token(0)), relay.publish("ok", token(0)), return_exceptions=True
        )
        assert results[1] is None
        err = results[0]
        assert isinstance(err, RelayResponseError)
        names_key_and_op(err, "message:str", "publish")
        assert err.code == "WRONGTYPE" and err.maybe_applied is False
        assert await plain.lrange("message:ok", 0, -1) == [token_frame(0)]
        with pytest.raises(RelayResponseError) as info:
            await relay.enqueue_work("str", "m1")
        names_key_and_op(info.value, "work:str", "enqueue_work")
        assert "WRONGTYPE" in info.value.reply and info.value.maybe_applied is False
        with pytest.raises(RelayResponseError) as info:
            await relay.enqueue_work("ctr", "m2")
        names_key_and_op(info.value, "work:ctr", "enqueue_work")
        assert "not an integer" in info.value.reply
        # nothing half-written: the script refuses before its first write
        assert await plain.exists("work:ctr", "pos:m2") == 0
        with pytest.raises(RelayResponseError) as info:
            await relay.dequeue_work("str", 0.1)
        names_key_and_op(info.value, "work:str", "dequeue_work")
    await plain.aclose()


async def test_a_frame_over_max_frame_size_is_refused_at_publish_and_send(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(redis_url, max_frame_size=1 << 20) as relay:
        big = b'{"response_type":"token","request_id":"r","text":"' + b"x" * (20 << 20) + b'"}'
        with pytest.raises(RelayFrameError) as info:
            await relay.publish("big", big)
        names_key_and_op(info.value, "message:big", "publish")
        assert info.value.size == len(big) and info.value.maybe_applied is False
        assert isinstance(info.value, ValueError)
        pub = relay.publisher()
        with pytest.raises(RelayFrameError):
            pub.send("big", big)
        assert pub.in_flight == 0 and pub.error is None  # refused before it was queued
        assert await plain.exists("message:big") == 0
        await relay.publish("big", final())  # the queue is not poisoned
        assert [m async for m in relay.stream("big", timeout=5)] == [final()]
    await plain.aclose()


async def test_the_default_max_frame_size_is_what_a_stream_decodes(redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        big = b'{"response_type":"token","request_id":"r","text":"' + b"x" * (17 << 20) + b'"}'
        with pytest.raises(RelayFrameError, match="max_frame_size"):
            await relay.publish("big", big)


async def test_invalid_utf8_is_refused_at_publish(redis_url: str) -> None:
    plain = aioredis.Redis.from_url(redis_url)
    async with Relay(redis_url) as relay:
        bad = b'{"response_type":"token","request_id":"r","text":"\xff\xfe","log_prob":null,"token_id":1}'
        with pytest.raises(RelayFrameError, match="not UTF-8") as info:
            await relay.publish("utf", bad)
        names_key_and_op(info.value, "message:utf", "publish")
        with pytest.raises(RelayFrameError):
            relay.publisher().send("utf", bytearray(bad))
        assert await plain.exists("message:utf") == 0
        good = (
            '{"response_type":"token","request_id":"r","text":"h\u00e9\u4e16","log_prob":null,"token_id":1}'
        )
        await relay.publish("utf", good.encode())  # UTF-8 beyond ASCII passes
    await plain.aclose()


async def test_a_message_id_that_cannot_be_encoded_names_the_parameter(redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        for call in (
            lambda: relay.publish("bad\ud800", token(0)),
            lambda: relay.enqueue_work("h", "bad\ud800"),
            lambda: relay.queue_position("bad\ud800", "h"),
        ):
            with pytest.raises(ValueError, match="message_id"):
                await call()
        with pytest.raises(ValueError, match="message_id"):
            relay.subscribe("bad\ud800")
        with pytest.raises(ValueError, match="compat_hash"):
            await relay.enqueue_work("h\udfff", "m")


async def test_a_wrong_password_ends_the_stream_at_once_saying_so() -> None:
    with running_redis(use_env=False, extra_args=("--requirepass", "right")) as srv:
        url = urlparse(srv.url)
        wrong = url._replace(netloc=f":wrong@{url.hostname}:{url.port}").geturl()
        async with Relay(wrong, retry_timeout=30) as relay:
            started = time.monotonic()
            with pytest.raises(RelayConnectionError, match=r"credentials|password|WRONGPASS") as info:
                async for _ in relay.stream("m", timeout=60):
                    pass
            assert time.monotonic() - started < 5  # not after the 60 s timeout, nor the retry window
            assert info.value.key == "message:m"
            with pytest.raises(RelayConnectionError, match=r"credentials|password|WRONGPASS"):
                await relay.publish("m", token(0))


async def test_tls_against_a_plain_port_ends_the_stream_within_the_retry_window(redis_url: str) -> None:
    url = urlparse(redis_url)
    async with Relay(url._replace(scheme="rediss").geturl(), retry_timeout=1.0, connect_timeout=1.0) as relay:
        started = time.monotonic()
        with pytest.raises(RelayConnectionError) as info:
            async for _ in relay.stream("tls", timeout=60):
                pass
        waited = time.monotonic() - started
        assert waited < 10, waited  # the retry window, not the stream's 60 s
        assert info.value.key == "message:tls" and "unreachable" in str(info.value)


async def test_an_unreachable_redis_ends_the_stream_within_the_retry_window() -> None:
    with running_redis(use_env=False) as srv:
        url = srv.url
        srv.stop()
        async with Relay(url, retry_timeout=1.0) as relay:
            started = time.monotonic()
            with pytest.raises(RelayConnectionError, match="unreachable for"):
                async for _ in relay.stream("gone", timeout=60):
                    pass
            assert time.monotonic() - started < 10


async def test_a_stalled_redis_ends_the_stream_with_a_stall_error(own_redis: RedisServer) -> None:
    async with Relay(own_redis.url, read_interval=0) as relay:
        await relay.publish("stall", token(0))
        got: list[object] = []

        async def consume() -> None:
            async for item in relay.stream("stall", timeout=1.5):
                got.append(item)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)  # token 0 delivered; the reader waits in BLPOP
        own_redis.pause()
        try:
            with pytest.raises(RelayStalledError) as info:
                await asyncio.wait_for(task, 10)
        finally:
            own_redis.resume()
        assert got == [token(0)]
        err = info.value
        assert err.key == "message:stall" and err.waited == 1.5 and err.stalled > 0.3
        assert "not answered" in str(err)
