"""``EventStreamResponse`` as an ASGI app, driven with an in-memory ``receive``/``send``: one
send per chunk, the headers, comment pings, a send timeout, and the disconnect that closes the
chunks' iterator (no socket behaviour is under test here; the example server's end-to-end
tests run it on uvicorn)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from oasst_shared.server import EventStreamResponse, ServerMetrics

pytestmark = pytest.mark.anyio

SCOPE: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/"}


class Client:
    """The other end: records every message sent; ``disconnect()`` makes ``receive`` report it."""

    def __init__(self, *, hang_on_body: int | None = None) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self._gone = asyncio.Event()
        self._hang_on_body = hang_on_body
        self.sending = 0

    async def receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    def disconnect(self) -> None:
        self._gone.set()

    async def send(self, message: dict[str, Any]) -> None:
        self.sending += 1
        assert self.sending == 1, "two sends at once"
        try:
            bodies = sum(1 for _, m in self.sent if m["type"] == "http.response.body")
            if message["type"] == "http.response.body" and bodies == self._hang_on_body:
                await asyncio.Event().wait()  # a client that reads nothing
            self.sent.append((time.monotonic(), message))
        finally:
            self.sending -= 1

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for _, m in self.sent if m["type"] == "http.response.body"]


class Chunks:
    """An async iterator of chunks that records whether it was closed."""

    def __init__(self, chunks: list[bytes], *, pause: float = 0.0, then_wait: bool = False) -> None:
        self.chunks = chunks
        self.pause = pause
        self.then_wait = then_wait
        self.closed = False
        self._gen = self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                if self.pause:
                    await asyncio.sleep(self.pause)
                yield chunk
            if self.then_wait:
                await asyncio.Event().wait()
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen

    async def aclose(self) -> None:
        await self._gen.aclose()


async def test_one_send_per_chunk_then_the_end_and_the_proxy_headers() -> None:
    client = Client()
    chunks = [b'data: {"event_type":"token","text":"a"}\n\n' * 3, b'data: {"x":1}\n\n', b": c\n\n"]
    response = EventStreamResponse(Chunks(chunks), headers={"X-Extra": "1"})
    await response(SCOPE, client.receive, client.send)
    start = client.sent[0][1]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    assert headers[b"x-extra"] == b"1"
    assert client.bodies == [*chunks, b""]  # each chunk in one send, then the end
    assert client.sent[-1][1]["more_body"] is False
    assert response.stopped is None


async def test_comment_pings_while_nothing_is_sent() -> None:
    client = Client()
    chunks = Chunks([b"data: 1\n\n", b"data: 2\n\n"], pause=0.35)
    response = EventStreamResponse(chunks, ping_interval=0.1)
    await response(SCOPE, client.receive, client.send)
    bodies = client.bodies
    assert bodies[-1] == b"" and [b for b in bodies if b.startswith(b"data")] == [
        b"data: 1\n\n",
        b"data: 2\n\n",
    ]
    pings = [b for b in bodies if b == b": ping\n\n"]
    assert 4 <= len(pings) <= 8  # about three per pause of 0.35 s
    first_data = bodies.index(b"data: 1\n\n")
    assert bodies[:first_data] == [b": ping\n\n"] * first_data  # pings only while waiting


async def test_no_pings_when_disabled() -> None:
    client = Client()
    response = EventStreamResponse(Chunks([b"data: 1\n\n"], pause=0.2), ping_interval=None)
    await response(SCOPE, client.receive, client.send)
    assert client.bodies == [b"data: 1\n\n", b""]


async def test_a_disconnect_stops_the_stream_and_closes_the_iterator() -> None:
    client = Client()
    metrics = ServerMetrics(registry=None)
    chunks = Chunks([b"data: 1\n\n"], then_wait=True)
    response = EventStreamResponse(chunks, metrics=metrics)
    task = asyncio.ensure_future(response(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    assert metrics.open_event_streams._value.get() == 1
    assert not chunks.closed
    client.disconnect()
    await asyncio.wait_for(task, 2)
    assert response.stopped == "client disconnected"
    assert chunks.closed
    assert client.bodies == [b"data: 1\n\n"]  # no end of body to a client that left
    assert metrics.open_event_streams._value.get() == 0


async def test_a_send_timeout_stops_a_hung_client() -> None:
    client = Client(hang_on_body=1)  # the second body send never returns
    chunks = Chunks([b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"])
    response = EventStreamResponse(chunks, send_timeout=0.2, ping_interval=0.05)
    t0 = time.monotonic()
    await asyncio.wait_for(response(SCOPE, client.receive, client.send), 3)
    assert 0.15 < time.monotonic() - t0 < 1.5
    assert response.stopped == "send timed out"
    assert chunks.closed
    assert client.bodies == [b"data: 1\n\n"]


async def test_an_error_in_the_chunks_propagates() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("the source failed")

    client = Client()
    with pytest.raises(RuntimeError, match="the source failed"):
        await EventStreamResponse(failing())(SCOPE, client.receive, client.send)
    assert client.bodies == [b"data: 1\n\n"]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="ping_interval"):
        EventStreamResponse(Chunks([]), ping_interval=0)
    with pytest.raises(ValueError, match="send_timeout"):
        EventStreamResponse(Chunks([]), send_timeout=-1)
