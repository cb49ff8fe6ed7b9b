"""``WorkerConnection`` on a real Redis: frames routed only to the messages their connection
dispatched, the same bytes published, every other frame dropped and logged without its text,
and the token path's metrics."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from oasst_shared import codec
from oasst_shared.relay import QueueFullError, Relay
from oasst_shared.schemas import inference
from oasst_shared.server import DispatchedRequest, ServerMetrics, WorkerConnection

pytestmark = pytest.mark.anyio

SECRET = "s3cret words of the answer"


class FakeSocket:
    """ASGI websocket messages as Starlette's ``WebSocket.receive`` returns them."""

    def __init__(self, frames: list[bytes | str]) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for f in frames:
            self.push(f)

    def push(self, frame: bytes | str) -> None:
        if isinstance(frame, str):
            self.queue.put_nowait({"type": "websocket.receive", "text": frame})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": frame})

    def close(self) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})

    async def receive(self) -> dict[str, Any]:
        return await self.queue.get()


def token(request_id: str, i: int, text: str = " w") -> str:
    """A token frame as the reference worker sends it: pydantic 1's ``.json()``, a text frame."""
    return (
        f'{{"request_id": "{request_id}", "response_type": "token", "text": "{text}{i}", '
        f'"log_prob": null, "token_id": {i}}}'
    )


def message_read(message_id: str) -> inference.MessageRead:
    return inference.MessageRead(
        id=message_id,
        chat_id="c",
        content="done",
        created_at=datetime(2024, 1, 2, tzinfo=timezone.utc),
        role="assistant",
        state=inference.MessageState.complete,
        score=0,
    )


async def stored(redis_url: str, message_id: str) -> list[bytes]:
    plain = aioredis.from_url(redis_url)
    try:
        return list(await plain.lrange(f"message:{message_id}", 0, -1))
    finally:
        await plain.aclose()


async def test_frames_go_only_to_dispatched_messages(
    relay: Relay, redis_url: str, metrics: ServerMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    conn = WorkerConnection(relay, metrics=metrics)
    conn.dispatch("r1", "m1")
    conn.dispatch("r2", "m2")
    handed: list[tuple[DispatchedRequest | None, inference.WorkerResponse]] = []

    async def on_response(request: DispatchedRequest | None, response: inference.WorkerResponse) -> None:
        handed.append((request, response))
        if isinstance(response, inference.GeneratedTextResponse):
            assert request is not None
            await conn.finish(request, inference.InternalFinishedMessageResponse(message=message_read("m1")))

    mine = [token("r1", i) for i in range(3)]
    frames: list[bytes | str] = [
        mine[0],
        token("intruder", 0, SECRET),  # a request this connection never sent
        mine[1],
        '{"response_type": "internal_finished_message", "request_id": "r2", "message": {}}',  # server-only
        b"not json " + SECRET.encode(),
        token("r2", 0).encode(),  # (binary frames work too)
        mine[2],
        '{"response_type": "pong", "request_id": "ping-1", "metrics": null}',
        '{"response_type": "generated_text", "request_id": "r1", "text": "w0 w1 w2", '
        '"finish_reason": "length"}',
        token("r1", 3, SECRET),  # after its end: dropped
    ]
    ws = FakeSocket(frames)
    ws.close()
    with caplog.at_level(logging.WARNING, logger="oasst_shared.server"):
        await conn.run(ws, on_response)
        await conn.close()
    got = await stored(redis_url, "m1")
    assert got[:3] == [f.encode() for f in mine]  # the bytes the worker sent
    assert codec.worker_response.decode(got[3]).response_type == "internal_finished_message"
    assert len(got) == 4
    assert [codec.worker_response.decode(f).text for f in await stored(redis_url, "m2")] == [" w0"]  # type: ignore[union-attr]
    assert [(r.request_id if r else None, type(x).__name__) for r, x in handed] == [
        (None, "PongResponse"),
        ("r1", "GeneratedTextResponse"),
    ]
    assert (conn.relayed, conn.dropped) == (5, 4)
    assert list(conn.requests) == ["r2"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert not any(SECRET in w for w in warnings)  # type and request id, never the text
    assert any("'intruder'" in w for w in warnings)
    assert metrics.frames_dropped._value.get() == 4


async def test_metrics_of_the_token_path(
    relay: Relay, registry: CollectorRegistry, metrics: ServerMetrics
) -> None:
    conn = WorkerConnection(relay, metrics=metrics)
    request = conn.dispatch("r1", "m1", enqueued_at=0.0)  # (a long time ago)
    ws = FakeSocket([])

    async def on_response(request: DispatchedRequest | None, response: inference.WorkerResponse) -> None:
        assert request is not None
        await conn.finish(request, inference.InternalFinishedMessageResponse(message=message_read("m1")))

    runner = asyncio.ensure_future(conn.run(ws, on_response))
    for i in range(10):
        ws.push(token("r1", i))
        await asyncio.sleep(0.003)
    ws.push('{"response_type": "generated_text", "request_id": "r1", "text": "x", "finish_reason": "length"}')
    ws.close()
    await runner
    await conn.close()
    value = registry.get_sample_value
    assert value("oasst_tokens_relayed_total") == 10
    assert value("oasst_inter_token_latency_seconds_count") == 9
    assert value("oasst_inter_token_latency_seconds_bucket", {"le": "0.0025"}) == 0  # 3 ms apart at least
    assert 9 * 0.003 <= value("oasst_inter_token_latency_seconds_sum") < 5  # type: ignore[operator]
    assert value("oasst_time_to_first_token_seconds_count") == 1
    assert value("oasst_time_to_first_token_seconds_bucket", {"le": "80.0"}) == 0  # enqueued at the epoch
    # every frame (10 tokens and the end) in some round trip
    assert value("oasst_relay_frames_per_round_trip_sum") == 11
    assert 1 <= value("oasst_relay_frames_per_round_trip_count") <= 11  # type: ignore[operator]
    assert request.frames == 10


async def test_tokens_read_at_once_share_round_trips(relay: Relay, registry: CollectorRegistry) -> None:
    metrics = ServerMetrics(registry)
    conn = WorkerConnection(relay, metrics=metrics)
    conn.dispatch("r1", "m1")
    ws = FakeSocket([token("r1", i) for i in range(200)])
    ws.close()
    await conn.run(ws, lambda r, x: asyncio.sleep(0))
    await conn.close()
    value = registry.get_sample_value
    assert value("oasst_relay_frames_per_round_trip_sum") == 200
    assert value("oasst_relay_frames_per_round_trip_count") < 50  # type: ignore[operator]


async def test_a_publish_failure_is_raised_and_counted_by_kind(
    redis_url: str, registry: CollectorRegistry
) -> None:
    metrics = ServerMetrics(registry)
    async with Relay(redis_url, message_queue_max_length=2) as small:
        conn = WorkerConnection(small, metrics=metrics)
        conn.dispatch("r1", "m1")
        ws = FakeSocket([token("r1", i) for i in range(5)])
        runner = asyncio.ensure_future(conn.run(ws, lambda r, x: asyncio.sleep(0)))
        await asyncio.sleep(0.2)
        ws.push(token("r1", 5))  # the next send learns the failure
        with pytest.raises(QueueFullError):
            await asyncio.wait_for(runner, 5)
        with pytest.raises(QueueFullError):
            await conn.close()
    value = registry.get_sample_value
    assert value("oasst_relay_publish_failures_total", {"kind": "QueueFullError"}) == 1
    assert value("oasst_relay_publish_failures_total", {"kind": "RelayConnectionError"}) == 0
