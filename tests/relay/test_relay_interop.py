"""Interoperability with the reference inference server, both ways, through plain Redis commands.

The reference (``oasst_inference_server/queueing.py``) writes ``message:{id}`` with ``RPUSH`` of
``response.json()`` then ``EXPIRE message_queue_expire``; reads with ``BLPOP``; enqueues work with
``LLEN`` (max size) + ``RPUSH work:{hash}`` + ``INCR ctr_enq:work:{hash}`` + ``SET pos:{id} ctr EX``;
dequeues with ``BLPOP`` + ``INCR ctr_deq:work:{hash}``; computes queue positions from those keys.
The plain redis-py calls below do exactly that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.relay import QueueFullError, QueuePosition, Relay, RelayError
from oasst_shared.schemas import inference
from tests.relay.helpers import final, reference_token_json, token

pytestmark = pytest.mark.anyio


@pytest.fixture
async def plain(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def blpop(client: aioredis.Redis, key: str) -> tuple[str, str]:
    """The reference's dequeue: ``BLPOP key 1``; fails the test on a timeout."""
    item = await client.blpop([key], timeout=1)
    assert item is not None, f"nothing in {key}"
    return str(item[0]), str(item[1])


async def test_what_we_publish_a_reference_reader_reads(relay: Relay, plain: aioredis.Redis) -> None:
    await relay.publish("m", token(3))
    await relay.publish("m", final())
    # the reference's event stream: BLPOP with a timeout, parse the JSON document
    key, doc = await blpop(plain, "message:m")
    assert key == "message:m"
    assert json.loads(doc) == {
        "request_id": "req",
        "response_type": "token",
        "text": " t3",
        "log_prob": -0.5,
        "token_id": 3,
    }
    _, doc2 = await blpop(plain, "message:m")
    assert json.loads(doc2)["response_type"] == "generated_text"
    assert json.loads(doc2)["finish_reason"] == "eos_token"


async def test_message_queue_expiry_is_the_reference_default(relay: Relay, plain: aioredis.Redis) -> None:
    assert relay.message_queue_expire == 60
    await relay.publish("ttl", token(0))
    assert 55 <= await plain.ttl("message:ttl") <= 60


async def test_message_queue_expires(redis_url: str, plain: aioredis.Redis) -> None:
    async with Relay(redis_url, message_queue_expire=1) as relay:
        await relay.publish("gone", token(0))
        assert await plain.exists("message:gone") == 1
        await asyncio.sleep(1.3)
        assert await plain.exists("message:gone") == 0


async def test_what_a_reference_server_pushes_we_read(relay: Relay, plain: aioredis.Redis) -> None:
    # the reference's message_queue.enqueue(response.json()): RPUSH then EXPIRE, one token at a time
    for i in range(3):
        await plain.rpush("message:ref", reference_token_json(i))
        await plain.expire("message:ref", 60)
    await plain.rpush(
        "message:ref",
        json.dumps(
            {
                "request_id": "req",
                "response_type": "generated_text",
                "text": "done",
                "finish_reason": "eos_token",
            }
        ),
    )
    got = [m async for m in relay.stream("ref", timeout=5)]
    assert got == [token(0), token(1), token(2), final()]


async def test_reference_frames_forwarded_raw_are_the_same_bytes(relay: Relay, plain: aioredis.Redis) -> None:
    docs = [reference_token_json(i) for i in range(2)]
    for d in docs:
        await plain.rpush("message:rawref", d)
    got: list[bytes] = []
    async with relay.subscribe("rawref") as sub:
        got = await sub.next_batch(5)
    assert got == [d.encode() for d in docs]


async def test_enqueue_work_writes_the_reference_keys(relay: Relay, plain: aioredis.Redis) -> None:
    assert await relay.enqueue_work("hash1", "msg-a") == 1
    assert await relay.enqueue_work("hash1", "msg-b") == 2
    assert await plain.lrange("work:hash1", 0, -1) == ["msg-a", "msg-b"]
    assert await plain.get("ctr_enq:work:hash1") == "2"
    assert await plain.get("pos:msg-b") == "2"
    assert 55 <= await plain.ttl("pos:msg-b") <= 60
    assert await plain.ttl("work:hash1") == -1  # the reference never expires work queues
    # the reference's worker handler: BLPOP then INCR ctr_deq
    _, first = await blpop(plain, "work:hash1")
    await plain.incr("ctr_deq:work:hash1")
    assert first == "msg-a"
    # the reference's event stream computation
    deq, enq, pos = (
        int(str(v)) for v in await plain.mget("ctr_deq:work:hash1", "ctr_enq:work:hash1", "pos:msg-b")
    )
    qpos = max(pos - deq, 0)
    assert await relay.queue_position("msg-b", "hash1") == QueuePosition(qpos, max(enq - deq, qpos)) == (1, 1)


async def test_reference_enqueue_is_dequeued_and_counted_by_us(relay: Relay, plain: aioredis.Redis) -> None:
    for mid in ("x1", "x2", "x3"):
        await plain.rpush("work:h2", mid)
        ctr = await plain.incr("ctr_enq:work:h2")
        await plain.set(f"pos:{mid}", ctr, ex=60)
    assert await relay.queue_position("x3", "h2") == (3, 3)
    assert await relay.dequeue_work("h2", timeout=1) == "x1"
    assert await plain.get("ctr_deq:work:h2") == "1"
    assert await relay.queue_position("x3", "h2") == (2, 2)
    assert await relay.queue_position("x1", "h2") == (0, 2)
    assert await relay.queue_position("unknown", "h2") == (0, 2)
    assert await relay.queue_position("x3", None) == (0, 1)  # no compat hash: as the reference


async def test_dequeue_timeout_returns_none(relay: Relay) -> None:
    assert await relay.dequeue_work("empty", timeout=0.1) is None


async def test_dequeue_waits_for_an_enqueue(relay: Relay) -> None:
    waiter = asyncio.create_task(relay.dequeue_work("later", timeout=5))
    await asyncio.sleep(0.1)
    await relay.enqueue_work("later", "msg-late")
    assert await waiter == "msg-late"


async def test_work_queue_max_size(redis_url: str, plain: aioredis.Redis) -> None:
    async with Relay(redis_url, work_queue_max_size=2) as relay:
        await relay.enqueue_work("h3", "a")
        await relay.enqueue_work("h3", "b")
        with pytest.raises(QueueFullError) as info:
            await relay.enqueue_work("h3", "c")
        assert info.value.key == "work:h3" and info.value.max_size == 2
        assert "enqueue_work" in info.value.operation
        # nothing of the refused enqueue was written
        assert await plain.lrange("work:h3", 0, -1) == ["a", "b"]
        assert await plain.get("ctr_enq:work:h3") == "2"
        assert await plain.exists("pos:c") == 0
        # the reference's re-enqueue of unstarted work ignores the limit
        assert await relay.enqueue_work("h3", "c", enforce_max_size=False) == 3


async def test_reference_default_has_no_work_queue_limit(relay: Relay) -> None:
    assert relay.work_queue_max_size is None
    for i in range(20):
        assert await relay.enqueue_work("nolimit", f"m{i}") == i + 1


async def test_a_client_with_decode_responses_still_gets_bytes(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    async with Relay(client) as relay:
        await relay.publish("dec", codec.worker_response.encode(token(1)))
        await relay.publish("dec", final())
        got = [m async for m in relay.stream("dec", timeout=5, raw=True)]
        assert got == [codec.worker_response.encode(token(1)), codec.worker_response.encode(final())]
        assert isinstance(codec.worker_response.decode(got[0]), inference.TokenResponse)
    await client.aclose()


async def test_the_reference_event_stream_code_parses_what_we_publish(
    relay: Relay, plain: aioredis.Redis
) -> None:
    # the reference's reader: BLPOP, then pydantic.parse_raw_as(inference.WorkerResponse, ...),
    # here through the Pydantic views (oasst_compat), then its branches on response_type
    from oasst_compat import parse_raw_as
    from oasst_compat.schemas import inference as views

    await relay.publish("pyd", token(1))
    await relay.publish("pyd", codec.worker_response.encode(token(2)))
    await relay.publish("pyd", inference.ErrorResponse(request_id="req", error="boom"))
    seen = []
    for _ in range(3):
        _, doc = await blpop(plain, "message:pyd")
        packet = parse_raw_as(views.WorkerResponse, doc)
        seen.append((packet.response_type, getattr(packet, "text", None) or getattr(packet, "error", None)))
    assert seen == [("token", " t1"), ("token", " t2"), ("error", "boom")]


async def test_a_counter_that_is_not_an_integer_is_a_relay_error_naming_it(
    relay: Relay, plain: aioredis.Redis
) -> None:
    await relay.enqueue_work("h", "m1")
    await plain.set("ctr_deq:work:h", "not a number")
    with pytest.raises(RelayError) as caught:
        await relay.queue_position("m1", "h")
    assert caught.value.key == "ctr_deq:work:h"
    assert caught.value.operation == "queue_position (MGET)"
    assert "not a number" in str(caught.value)
