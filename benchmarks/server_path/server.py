"""The measured process: an inference server's token path, in one of four variants.

``python -m benchmarks.server_path.server VARIANT REDIS_URL`` listens on a free 127.0.0.1 port
and prints ``PORT <n>`` once ready. Endpoints (one port):

* ``GET /work`` (websocket): a worker's frames, one ``WorkerResponse`` JSON document per text
  frame, as the reference worker sends them.
* ``GET /chat/{message_id}/stream``: the chat's Server-Sent Events, one event per frame, ending
  after the terminal frame (``generated_text`` or an error).
* ``GET /stats``: this process's CPU time so far (user + system seconds), for the load process
  to read before and after a phase.

Variants (``message_id`` is the frame's ``request_id``: the reference looks it up in a dict):

* ``views``: the reference's pattern with the Pydantic v2 views: decode each frame through
  ``WorkerResponse``, ``RPUSH message:{id}`` its ``model_dump_json``; the event stream handler
  ``BLPOP``s one item per round trip, decodes it and writes it re-encoded as an event.
  (The reference's ``RedisQueue.enqueue`` also sends ``EXPIRE`` after each ``RPUSH``, a second
  round trip per token; (a) and (b) here send the ``RPUSH`` alone, so they cost if anything
  less than the reference. ``views-expire``, not in the report, adds the ``EXPIRE``.)
* ``structs``: the same pattern with the msgspec structs (``oasst_shared.codec``).
* ``relay``: ``oasst_shared.relay``: the worker handler peeks each frame and sends the same bytes
  through its connection's ``Publisher`` (group commit, no round trip awaited per frame: it
  drains once per read); the event stream handler reads ``relay.stream(raw=True)`` and forwards
  each frame unchanged as the event's data.
* ``floor``: no Redis at all: the worker handler hands each frame to the browser's handler in
  this process (an ``asyncio.Queue``). What websocket + SSE framing alone cost here.

Writes to a browser are corked per loop iteration (one ``send`` for all the events a handler
wrote in that iteration), the same for every variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.server_path import wire
from oasst_shared import codec

TERMINAL = frozenset({"generated_text", "error", "internal_error", "internal_finished_message"})
QUEUE_PREFIX = "message:"
STREAM_TIMEOUT = 120.0
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)

OnFrame = Callable[[bytes], Awaitable[None]]
Write = Callable[[bytes], None]
Stream = Callable[[str, Write], Awaitable[None]]


class CorkedWriter:
    """Gathers what a handler writes in one loop iteration into one ``transport.write``."""

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport
        self._parts: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._parts:
            self._loop.call_soon(self.flush)
        self._parts.append(data)

    def flush(self) -> None:
        if self._parts:
            data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts.clear()
            if not self._transport.is_closing():
                self._transport.write(data)


class WorkerSession:
    """What one worker connection's handler does with the frames of each read."""

    def __init__(self, on_frame: OnFrame) -> None:
        self._on_frame = on_frame

    async def on_frames(self, frames: list[bytes]) -> None:
        """Handle the frames of one read (the reference handles each in turn, awaiting it)."""
        on_frame = self._on_frame
        for frame in frames:
            await on_frame(frame)

    async def close(self) -> None:
        """The worker disconnected."""


class Variant:
    """A worker-frame handler and a chat stream handler, plus their set-up and tear-down."""

    async def start(self) -> None:
        """Connect what the variant needs."""

    async def stop(self) -> None:
        """Release it."""

    def worker_session(self) -> WorkerSession:
        """The handler of one worker connection."""
        return WorkerSession(self.on_frame)

    async def on_frame(self, frame: bytes) -> None:
        raise NotImplementedError

    async def stream(self, message_id: str, write: Write) -> None:
        raise NotImplementedError


class _PerMessage(Variant):
    """The reference's pattern: one ``RPUSH`` per frame, one ``BLPOP`` per event."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio

        # redis-py 8's defaults (100 connections, a 5 s socket timeout) do not fit one blocked
        # BLPOP per open chat; the reference ran on redis-py 4, unbounded and without a timeout.
        self.redis = redis.asyncio.Redis.from_url(redis_url, max_connections=1 << 20, socket_timeout=None)

    async def stop(self) -> None:
        await self.redis.aclose()

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def encode(self, msg: Any) -> bytes:
        raise NotImplementedError

    async def on_frame(self, frame: bytes) -> None:
        msg = self.decode(frame)
        await self.redis.rpush(QUEUE_PREFIX + msg.request_id, self.encode(msg))

    async def stream(self, message_id: str, write: Write) -> None:
        key = QUEUE_PREFIX + message_id
        while True:
            item = await self.redis.blpop([key], timeout=STREAM_TIMEOUT)
            if item is None:
                return
            msg = self.decode(item[1])
            write(b"data: " + self.encode(msg) + b"\n\n")
            if msg.response_type in TERMINAL:
                return


class Views(_PerMessage):
    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        from pydantic import TypeAdapter

        from oasst_compat.schemas import inference as views

        self._adapter: Any = TypeAdapter(views.WorkerResponse)

    def decode(self, data: bytes) -> Any:
        return self._adapter.validate_json(data)

    def encode(self, msg: Any) -> bytes:
        return msg.model_dump_json().encode()  # type: ignore[no-any-return]


class ViewsExpire(Views):
    """(a) exactly as the reference's ``RedisQueue.enqueue``: ``RPUSH`` then ``EXPIRE``."""

    async def on_frame(self, frame: bytes) -> None:
        msg = self.decode(frame)
        key = QUEUE_PREFIX + msg.request_id
        await self.redis.rpush(key, self.encode(msg))
        await self.redis.expire(key, 120)


class Structs(_PerMessage):
    def decode(self, data: bytes) -> Any:
        return codec.worker_response.decode(data)

    def encode(self, msg: Any) -> bytes:
        return codec.worker_response.encode(msg)


class RelayVariant(Variant):
    def __init__(self, redis_url: str) -> None:
        from oasst_shared.relay import Relay
        from oasst_shared.relay._cluster import DEFAULT_CLUSTER_SHARDS

        # (on a Redis Cluster: how many shards; a knob for comparing layouts, not for the report)
        shards = int(os.environ.get("OASST_BENCH_CLUSTER_SHARDS", DEFAULT_CLUSTER_SHARDS))
        self.relay = Relay(redis_url, cluster_shards=shards)

    async def start(self) -> None:
        await self.relay.__aenter__()

    async def stop(self) -> None:
        await self.relay.__aexit__(None, None, None)

    def worker_session(self) -> WorkerSession:
        return RelaySession(self.relay)

    async def on_frame(self, frame: bytes) -> None:
        env = codec.peek_worker_response(frame)
        await self.relay.publish(env.request_id, frame)

    async def stream(self, message_id: str, write: Write) -> None:
        async for frame in self.relay.stream(message_id, timeout=STREAM_TIMEOUT, raw=True):
            write(b"data: " + frame + b"\n\n")


class RelaySession(WorkerSession):
    """A worker connection on the relay: each frame is sent through the connection's
    ``Publisher`` (no wait per frame); ``drain`` after each read raises an earlier frame's
    failure and waits only if Redis falls behind; ``flush`` at the end."""

    def __init__(self, relay: Any) -> None:
        self._pub = relay.publisher()
        self._peek = codec.peek_worker_response

    async def on_frames(self, frames: list[bytes]) -> None:
        send = self._pub.send
        peek = self._peek
        for frame in frames:
            send(peek(frame).request_id, frame)
        await self._pub.drain()

    async def close(self) -> None:
        await self._pub.flush()


class Floor(Variant):
    def __init__(self, redis_url: str) -> None:
        self.queues: dict[str, asyncio.Queue[bytes]] = {}

    def _queue(self, message_id: str) -> asyncio.Queue[bytes]:
        queue = self.queues.get(message_id)
        if queue is None:
            queue = self.queues[message_id] = asyncio.Queue()
        return queue

    async def on_frame(self, frame: bytes) -> None:
        env = codec.peek_worker_response(frame)
        self._queue(env.request_id).put_nowait(frame)

    async def stream(self, message_id: str, write: Write) -> None:
        queue = self._queue(message_id)
        try:
            while True:
                if queue.empty():
                    frame = await asyncio.wait_for(queue.get(), STREAM_TIMEOUT)
                else:
                    frame = queue.get_nowait()
                write(b"data: " + frame + b"\n\n")
                if codec.peek_worker_response(frame).response_type in TERMINAL:
                    return
        finally:
            self.queues.pop(message_id, None)


VARIANTS: dict[str, Callable[[str], Variant]] = {
    "floor": Floor,
    "views": Views,
    "views-expire": ViewsExpire,
    "structs": Structs,
    "relay": RelayVariant,
}


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads, user + system), at nanosecond resolution."""
    return time.process_time()


class GcPauses:
    """The garbage collector's pauses in this process (``gc.callbacks``): a full collection of
    a big heap stops the event loop for milliseconds, which shows up as latency."""

    def __init__(self) -> None:
        self.total = 0.0
        self.longest = 0.0  # since the last ``take``
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.total += pause
        self.longest = max(self.longest, pause)
        if info["generation"] == 2:
            self.full += 1

    def take(self) -> dict[str, float]:
        """Totals so far, and the longest pause since the previous call (then reset)."""
        out = {"gc_seconds": self.total, "gc_longest": self.longest, "gc_full": float(self.full)}
        self.longest = 0.0
        return out


GC_PAUSES = GcPauses()


def freeze_start_up_heap() -> None:
    """Move everything start-up allocated (modules, the variant's clients) out of the
    collector's reach (``gc.freeze``), as a production Python server does after start-up: a full
    collection then walks only what serving allocated. Without it, the full collections that
    connection churn triggers walked the whole start-up heap, pausing a relay server for 14-19
    ms in a 20,000 tok/s phase (``server_gc_longest_ms``). Every variant does the same."""
    gc.collect()
    gc.freeze()


async def _worker(variant: Variant, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    parser = wire.FrameParser()
    session = variant.worker_session()
    try:
        while data := await reader.read(1 << 18):
            frames: list[bytes] = []
            for opcode, payload in parser.feed(data):
                if opcode in (wire.OP_TEXT, wire.OP_BINARY):
                    frames.append(payload)
                elif opcode == wire.OP_PING:
                    writer.write(wire.server_frame(payload, wire.OP_PONG))
                elif opcode == wire.OP_CLOSE:
                    await session.on_frames(frames)
                    writer.write(wire.server_frame(payload[:2], wire.OP_CLOSE))
                    return
            if frames:
                await session.on_frames(frames)
    finally:
        await session.close()


async def _handle(variant: Variant, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        _method, target, headers = wire.parse_head(head)
        if target == "/work":
            writer.write(wire.handshake_response(headers))
            await _worker(variant, reader, writer)
        elif target.startswith("/chat/") and target.endswith("/stream"):
            message_id = target[len("/chat/") : -len("/stream")]
            corked = CorkedWriter(writer.transport)
            corked.write(SSE_HEAD)
            await variant.stream(message_id, corked.write)
            corked.flush()
        elif target == "/stats":
            body = json.dumps({"cpu": cpu_seconds(), "pid": os.getpid(), **GC_PAUSES.take()}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    except Exception as exc:
        print(f"server: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        writer.close()


async def serve(variant_name: str, redis_url: str, port: int = 0) -> None:
    """Run the server until SIGTERM or SIGINT; prints ``PORT <n>`` when it accepts connections."""
    variant = VARIANTS[variant_name](redis_url)
    await variant.start()
    freeze_start_up_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(variant, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await variant.stop()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "asgi-app":  # the example server (app.py)
        from benchmarks.server_path import app
        from benchmarks.server_path.asgi import run_on_stack
        from benchmarks.server_path.load import raise_fd_limit

        raise_fd_limit()
        run_on_stack(lambda: app.serve(args[1]))
        return
    name = args[0].removeprefix("asgi-") if args else ""
    if len(args) != 2 or name not in VARIANTS:
        raise SystemExit(
            f"usage: python -m benchmarks.server_path.server [asgi-]{{{','.join(VARIANTS)}}} REDIS_URL"
        )
    from benchmarks.server_path.load import raise_fd_limit

    raise_fd_limit()
    if args[0].startswith("asgi-"):
        from benchmarks.server_path import asgi

        asgi.run_on_stack(lambda: asgi.serve(name, args[1]))
    else:
        asyncio.run(serve(name, args[1]))


if __name__ == "__main__":
    main()
