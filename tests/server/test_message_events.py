"""``message_event_chunks`` on a real Redis: the reference's events from a relay stream, one
chunk per batch, and the frames a closed stream had not taken going back to Redis."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from oasst_shared.server import EventStreamResponse, message_event_chunks

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/"}


def token(i: int, text: str | None = None) -> bytes:
    return codec.worker_response.encode(
        inference.TokenResponse(request_id="r", text=text if text is not None else f" t{i}", token_id=i)
    )


def message_read(message_id: str, content: str | None = None) -> inference.MessageRead:
    return inference.MessageRead(
        id=message_id,
        chat_id="c",
        content=content,
        created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        role="assistant",
        state=inference.MessageState.complete if content else inference.MessageState.aborted_by_worker,
        score=0,
    )


def events_of(chunks: list[bytes]) -> list[dict[str, Any]]:
    parser = codec.SSEParser()
    return [json.loads(e.data) for chunk in chunks for e in parser.feed(chunk)]


async def collect(relay: Relay, message_id: str, compat_hash: str | None = None, **kw: Any) -> list[bytes]:
    gen = message_event_chunks(relay, message_id, compat_hash, **kw)
    return [chunk async for chunk in gen]


async def test_tokens_then_the_message_one_chunk_per_batch(relay: Relay) -> None:
    frames = [token(i) for i in range(5)]
    final = inference.InternalFinishedMessageResponse(message=message_read("m1", "t"))
    for f in frames:
        await relay.publish("m1", f)
    await relay.publish("m1", final)
    chunks = await collect(relay, "m1", pending_interval=0.1)
    assert len(chunks) == 1  # all six frames were in Redis: one batch, one chunk
    events = events_of(chunks)
    assert events[:5] == [{"event_type": "token", "text": f" t{i}"} for i in range(5)]
    assert events[5]["event_type"] == "message"
    assert events[5]["message"] == json.loads(codec.worker_response.encode(final))["message"]
    assert chunks[0].startswith(b'data: {"event_type":"token","text":" t0"}\n\n')


async def test_pending_events_carry_the_queue_position(relay: Relay, redis_url: str) -> None:
    await relay.enqueue_work("model-a", "m0")
    await relay.enqueue_work("model-a", "m1")
    gen = message_event_chunks(relay, "m1", "model-a", pending_interval=0.05)
    first = await gen.__anext__()
    assert events_of([first]) == [{"event_type": "pending", "queue_position": 2, "queue_size": 2}]
    assert await relay.dequeue_work("model-a", 1) == "m0"
    second = await gen.__anext__()
    assert events_of([second]) == [{"event_type": "pending", "queue_position": 1, "queue_size": 1}]
    await relay.publish("m1", token(0, "Hi"))
    error = inference.InternalErrorResponse(error="model crashed", message=message_read("m1"))
    await relay.publish("m1", error)
    rest = [c async for c in gen]
    events = events_of(rest)
    assert [e["event_type"] for e in events] == ["token", "error"]
    assert events[1]["error"] == "model crashed" and events[1]["message"]["id"] == "m1"


async def test_frames_after_the_end_stay_in_redis(relay: Relay, redis_url: str) -> None:
    await relay.publish("m1", token(0))
    await relay.publish("m1", inference.InternalFinishedMessageResponse(message=message_read("m1", "x")))
    late = token(9, "late")
    await relay.publish("m1", late)
    events = events_of(await collect(relay, "m1"))
    assert [e["event_type"] for e in events] == ["token", "message"]
    plain = aioredis.from_url(redis_url)
    try:
        assert await plain.lrange("message:m1", 0, -1) == [late]
    finally:
        await plain.aclose()


async def test_plugin_frames_become_plugin_events(relay: Relay) -> None:
    plugin = inference.PluginIntermediateResponse(
        request_id="r",
        current_plugin_thought="think",
        current_plugin_action_taken="search",
        current_plugin_action_input="trees",
        current_plugin_action_response="redwoods",
    )
    await relay.publish("m1", plugin)
    await relay.publish("m1", inference.InternalFinishedMessageResponse(message=message_read("m1", "x")))
    events = events_of(await collect(relay, "m1"))
    assert events[0] == {
        "event_type": "plugin_intermediate",
        "current_plugin_thought": "think",
        "current_plugin_action_taken": "search",
        "current_plugin_action_input": "trees",
        "current_plugin_action_response": "redwoods",
        "message": None,
    }


async def test_a_started_answer_that_stalls_ends_with_an_error(relay: Relay) -> None:
    await relay.publish("m1", token(0))
    t0 = time.monotonic()
    events = events_of(await collect(relay, "m1", pending_interval=0.05, timeout=0.2))
    assert time.monotonic() - t0 < 2
    assert [e["event_type"] for e in events] == ["token", "error"]
    assert "no answer from the worker" in events[-1]["error"]


async def test_a_bad_frame_ends_the_stream_with_an_error_event(relay: Relay, redis_url: str) -> None:
    plain = aioredis.from_url(redis_url)
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    try:
        await plain.rpush("message:m1", token(0), b'{"response_type": "token", "text": 3, "token_id": 1}')
        events = events_of(await collect(relay, "m1", on_error=on_error))
    finally:
        await plain.aclose()
    assert [e["event_type"] for e in events] == ["token", "error"]
    assert events[-1] == {
        "event_type": "error",
        "error": "the stream failed; please try again",
        "message": None,
    }
    assert type(errors[0]).__name__ == "RelayDecodeError"


async def test_a_closed_stream_gives_back_what_it_had_not_sent(relay: Relay, redis_url: str) -> None:
    """The client stops reading after the first chunk, then leaves: the frames that arrived
    meanwhile go back to the head of the Redis list, in order, for another reader."""
    sent: list[bytes] = []
    first_sent = asyncio.Event()
    gone = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])
            first_sent.set()
            await gone.wait()  # a client that stopped reading, then left
            raise OSError("the client is gone")  # (as uvicorn's ClientDisconnected)

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    await relay.publish("m1", token(0))
    response = EventStreamResponse(message_event_chunks(relay, "m1", None), send_timeout=None)
    task = asyncio.ensure_future(response(SCOPE, receive, send))
    await asyncio.wait_for(first_sent.wait(), 5)
    later = [token(i) for i in range(1, 6)]
    for f in later:
        await relay.publish("m1", f)
    await asyncio.sleep(0.2)  # the relay's reader delivers them to the open subscription
    gone.set()
    await asyncio.wait_for(task, 5)
    assert response.stopped == "client disconnected"
    assert events_of(sent) == [{"event_type": "token", "text": " t0"}]  # (sent as the client left)
    plain = aioredis.from_url(redis_url)
    try:
        assert await plain.lrange("message:m1", 0, -1) == later  # back, in order
    finally:
        await plain.aclose()
