"""examples/relay_server.py against the embedded Redis: the worker handler and the event stream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "relay_server.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("relay_server_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def events_of(frames: list[bytes]) -> list[dict[str, Any]]:
    parser = codec.SSEParser()
    return [json.loads(ev.data) for f in frames for ev in parser.feed(f)]


def check_chats(result: Any, chats: int, tokens: int) -> None:
    assert len(result.events) == chats
    for frames in result.events.values():
        events = [e for e in events_of(frames) if e["event_type"] != "pending"]
        assert [e["text"] for e in events[:-1]] == [f" w{i}" for i in range(tokens)]
        last = events[-1]
        assert last["event_type"] == "message"
        assert last["message"]["content"] == "".join(f" w{i}" for i in range(tokens))
        assert last["message"]["state"] == "complete"


async def test_demo_chats_get_every_token_in_order(example: ModuleType, redis_url: str) -> None:
    result = await example.demo(redis_url, chats=12, tokens=30)
    check_chats(result, 12, 30)


async def test_worker_and_browser_on_different_relays(example: ModuleType, redis_url: str) -> None:
    # a worker's tokens enter one relay (server process), its browser reads from another
    result = await example.demo(redis_url, redis_url, chats=6, tokens=15)
    check_chats(result, 6, 15)


async def test_pending_events_carry_the_queue_position(example: ModuleType, redis_url: str) -> None:
    async with Relay(redis_url) as relay:
        for mid in ("first", "second"):
            await relay.enqueue_work("nobody", mid)
        sent: list[bytes] = []

        async def send_event(data: bytes) -> None:
            sent.append(data)

        await example.message_events(
            relay, "second", "nobody", send_event, pending_interval=0.05, timeout=0.2
        )
    events = events_of(sent)
    assert len(events) >= 2 and all(
        e == {"event_type": "pending", "queue_position": 2, "queue_size": 2} for e in events[:-1]
    )
    # no answer within the timeout: the stream ends with an error event, never silently
    assert events[-1] == {
        "event_type": "error",
        "error": "no answer from the worker for 0.2 s",
        "message": None,
    }


async def test_frames_lost_in_a_redis_restart_end_the_chat_with_an_error_event(example: ModuleType) -> None:
    """A Redis restart without persistence loses what was not yet read: the chat's event stream
    ends with the reference's error event, never with a text missing a token."""
    with running_redis(use_env=False) as srv:
        async with Relay(srv.url) as relay:
            sent: list[bytes] = []

            async def send_event(data: bytes) -> None:
                sent.append(data)

            events = asyncio.create_task(
                example.message_events(relay, "lost", None, send_event, pending_interval=0.05, timeout=30)
            )
            await relay.publish("lost", inference.TokenResponse(request_id="r", text="a", token_id=0))
            for _ in range(100):
                if len(events_of(sent)) >= 1 and events_of(sent)[-1]["event_type"] == "token":
                    break
                await asyncio.sleep(0.02)
            await asyncio.to_thread(srv.restart, kill=True)
            await asyncio.wait_for(events, 15)
    got = events_of(sent)
    assert got[0] == {"event_type": "token", "text": "a"}
    assert got[-1]["event_type"] == "error" and "lost" in got[-1]["error"]


async def test_plugin_steps_stream_as_plugin_events_and_a_safe_prompt_does_not(
    example: ModuleType, redis_url: str
) -> None:
    """The website's parser shows ``plugin_intermediate`` events as plugin steps, not as text;
    the reference stores a safe prompt rather than streaming it."""
    message = example.MessageStore().create("chat")
    frames: list[inference.WorkerResponse] = [
        inference.PluginIntermediateResponse(
            request_id="r",
            current_plugin_thought="look it up",
            current_plugin_action_taken="search",
            current_plugin_action_input="weather",
            current_plugin_action_response="sunny",
        ),
        inference.SafePromptResponse(
            request_id="r",
            safe_prompt="a safer prompt",
            safety_parameters=inference.SafetyParameters(level=1),
            safety_label="casual",
            safety_rots="",
        ),
        inference.TokenResponse(request_id="r", text="sun", token_id=1),
        inference.InternalFinishedMessageResponse(message=message),
    ]
    sent: list[bytes] = []

    async def send_event(data: bytes) -> None:
        sent.append(data)

    async with Relay(redis_url) as relay:
        for frame in frames:
            await relay.publish(message.id, frame)
        await example.message_events(relay, message.id, None, send_event, timeout=5)
    events = events_of(sent)
    assert events[0] == {
        "event_type": "plugin_intermediate",
        "current_plugin_thought": "look it up",
        "current_plugin_action_taken": "search",
        "current_plugin_action_input": "weather",
        "current_plugin_action_response": "sunny",
        "message": None,
    }
    assert events[1] == {"event_type": "token", "text": "sun"}
    assert [e["event_type"] for e in events[2:]] == ["message"]


async def test_worker_error_ends_the_stream_with_an_error_event(example: ModuleType, redis_url: str) -> None:
    store = example.MessageStore()
    async with Relay(redis_url) as relay:
        message = store.create("chat")
        await relay.enqueue_work("err", message.id)
        to_server: asyncio.Queue[bytes | None] = asyncio.Queue()
        from_server: asyncio.Queue[bytes] = asyncio.Queue()

        async def frames() -> Any:
            while (f := await to_server.get()) is not None:
                yield f

        handler = asyncio.create_task(example.handle_worker(relay, store, "err", frames(), from_server.put))
        request = codec.worker_request.decode(await asyncio.wait_for(from_server.get(), 5))
        assert isinstance(request, inference.WorkRequest)
        await to_server.put(
            codec.worker_response.encode(inference.TokenResponse(request_id=request.id, text="a", token_id=1))
        )
        await to_server.put(
            codec.worker_response.encode(inference.ErrorResponse(request_id=request.id, error="oom"))
        )
        sent: list[bytes] = []

        async def send_event(data: bytes) -> None:
            sent.append(data)

        await example.message_events(relay, message.id, "err", send_event, timeout=5)
        await to_server.put(None)
        await asyncio.wait_for(handler, 5)
    events = events_of(sent)
    assert events[0] == {"event_type": "token", "text": "a"}
    assert events[1]["event_type"] == "error" and events[1]["error"] == "oom"
    assert events[1]["message"]["state"] == "aborted_by_worker"


class WorkerConnection:
    """One worker's websocket on the example's ``handle_worker``: what it sends, what it is sent."""

    def __init__(self, example: ModuleType, relay: Relay, store: Any, compat_hash: str) -> None:
        self.to_server: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.from_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.dispatched = example.DispatchedWork()
        self.handler = asyncio.create_task(
            example.handle_worker(
                relay, store, compat_hash, self.frames(), self.from_server.put, dispatched=self.dispatched
            )
        )

    async def frames(self) -> Any:
        while (f := await self.to_server.get()) is not None:
            yield f

    async def work_request(self) -> inference.WorkRequest:
        request = codec.worker_request.decode(await asyncio.wait_for(self.from_server.get(), 5))
        assert isinstance(request, inference.WorkRequest)
        return request

    async def send(self, *responses: inference.WorkerResponse | bytes) -> None:
        for r in responses:
            await self.to_server.put(r if isinstance(r, bytes) else codec.worker_response.encode(r))

    async def close(self) -> None:
        await self.to_server.put(None)
        await asyncio.wait_for(self.handler, 5)


async def chat_events(example: ModuleType, relay: Relay, message_id: str, compat_hash: str) -> list[Any]:
    sent: list[bytes] = []

    async def send_event(data: bytes) -> None:
        sent.append(data)

    await example.message_events(relay, message_id, compat_hash, send_event, pending_interval=0.1, timeout=5)
    return [e for e in events_of(sent) if e["event_type"] != "pending"]


async def test_a_worker_cannot_write_into_another_chat(
    example: ModuleType, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two worker connections, one chat each: the second forges frames naming the first chat's
    request id and its message id; they never reach that chat (nor its queue), are logged at
    WARNING without their text, and the second connection's own frames still reach its chat."""
    caplog.set_level(logging.WARNING, logger="relay_server")
    store = example.MessageStore()
    async with Relay(redis_url) as relay:
        alice, bob = store.create("alice"), store.create("bob")
        await relay.enqueue_work("iso", alice.id)
        honest = WorkerConnection(example, relay, store, "iso")
        alice_request = await honest.work_request()  # alice's message went to the honest worker
        await relay.enqueue_work("iso", bob.id)
        intruder = WorkerConnection(example, relay, store, "iso")
        bob_request = await intruder.work_request()
        assert alice_request.thread.messages[0].id == alice.id and bob_request.thread.messages[0].id == bob.id

        await intruder.send(
            inference.TokenResponse(request_id=alice_request.id, text=" FORGED-BY-REQUEST", token_id=9),
            inference.TokenResponse(request_id=alice.id, text=" FORGED-BY-MESSAGE", token_id=9),
            inference.GeneratedTextResponse(
                request_id=alice_request.id, text="FORGED", finish_reason="length"
            ),
            inference.TokenResponse(request_id=bob_request.id, text=" b", token_id=1),
            inference.GeneratedTextResponse(request_id=bob_request.id, text=" b", finish_reason="length"),
        )
        await honest.send(
            inference.TokenResponse(request_id=alice_request.id, text=" a", token_id=1),
            inference.GeneratedTextResponse(request_id=alice_request.id, text=" a", finish_reason="length"),
        )
        alice_events, bob_events = await asyncio.gather(
            chat_events(example, relay, alice.id, "iso"), chat_events(example, relay, bob.id, "iso")
        )
        await intruder.send(inference.TokenResponse(request_id=alice_request.id, text=" LATE", token_id=9))
        await honest.close()
        await intruder.close()
        async with relay.subscribe(alice.id) as sub:
            left_for_alice = await sub.next_batch(0.3)  # anything pushed after alice's stream ended

    assert [e["event_type"] for e in alice_events] == ["token", "message"]
    assert alice_events[0]["text"] == " a" and alice_events[1]["message"]["content"] == " a"
    assert [e["event_type"] for e in bob_events] == ["token", "message"]
    assert bob_events[0]["text"] == " b" and bob_events[1]["message"]["content"] == " b"
    assert left_for_alice == []
    assert store.messages[alice.id].content == " a" and store.messages[bob.id].content == " b"
    assert (honest.dispatched.relayed, honest.dispatched.dropped) == (2, 0)
    assert (intruder.dispatched.relayed, intruder.dispatched.dropped) == (2, 4)
    assert len(honest.dispatched) == len(intruder.dispatched) == 0  # finished requests are forgotten
    warnings = [r for r in caplog.records if r.name == "relay_server"]
    assert len(warnings) == 4 and all(r.levelno == logging.WARNING for r in warnings)
    assert all("not dispatch" in r.getMessage() for r in warnings)
    assert not [r.getMessage() for r in warnings if "FORGED" in r.getMessage() or "LATE" in r.getMessage()]


async def test_a_finished_request_and_a_broken_frame_are_dropped_and_the_socket_stays_open(
    example: ModuleType, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay_server")
    store = example.MessageStore()
    async with Relay(redis_url) as relay:
        first, second = store.create("c1"), store.create("c2")
        await relay.enqueue_work("again", first.id)
        worker = WorkerConnection(example, relay, store, "again")
        request = await worker.work_request()
        await worker.send(
            b'{"response_type": "token", "text": "no request id", "token_id": 1}',
            b'{"response_type": "token", "request_id": "x", "text": "broken',
            inference.GeneratedTextResponse(request_id=request.id, text="one", finish_reason="length"),
        )
        assert [e["event_type"] for e in await chat_events(example, relay, first.id, "again")] == ["message"]
        # the same connection takes the next message; a frame of the finished request is dropped
        await relay.enqueue_work("again", second.id)
        next_request = await worker.work_request()
        message = store.messages[first.id]
        await worker.send(
            inference.InternalFinishedMessageResponse(request_id=next_request.id, message=message),
            inference.TokenResponse(request_id=request.id, text=" stale", token_id=2),
            inference.TokenResponse(request_id=next_request.id, text=" two", token_id=1),
            inference.GeneratedTextResponse(request_id=next_request.id, text=" two", finish_reason="length"),
        )
        events = await chat_events(example, relay, second.id, "again")
        await worker.close()
    assert [e.get("text") for e in events] == [" two", None]
    assert worker.dispatched.dropped == 4
    messages = [r.getMessage() for r in caplog.records if r.name == "relay_server"]
    assert len(messages) == 4 and "not a WorkerResponse" in messages[1]
    assert "internal_finished_message frame: the server sends these" in messages[2]
    assert not [m for m in messages if "broken" in m or "stale" in m or "no request id" in m]


def test_example_runs_as_a_script(redis_server: RedisServer) -> None:
    redis_server.flushall()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), redis_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "8 chats" in proc.stdout
    assert '"event_type":"message"' in proc.stdout
