"""examples/relay_server.py against the embedded Redis: the worker handler and the event stream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from tests.support.redis_server import RedisServer

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
    assert events and all(
        e == {"event_type": "pending", "queue_position": 2, "queue_size": 2} for e in events
    )


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
