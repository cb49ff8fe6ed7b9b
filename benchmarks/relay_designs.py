"""Measure the relay designs against each other (not a test): ``python -m benchmarks.relay_designs``.

K concurrent streams x N tokens in one process, through a real redis-server (tests/support/redis_server.py);
each stream's publisher awaits each publish (as a worker handler does), each consumer decodes every
response to a struct. Reports this process's CPU time per token (Redis's own CPU is not counted) and
tokens/s. Designs:

* ``per-message``: the reference's pattern with our structs: ``RPUSH`` + ``EXPIRE`` per token through a
  redis-py client, one ``BLPOP`` per token per stream.
* ``relay-pipelined``: the relay's group commit and single reader, but a flush is a pipeline of
  ``RPUSH`` + ``EXPIRE`` per queue and a drain is a pipeline of ``LPOP key count`` per key it
  drains (the same rounds as the relay: hot keys and a slice while frames pile up, else every
  key with a ``BLPOP`` behind). Built from the relay's parts with the two seams they offer: the
  group commit's ``send`` and the reader's ``wire``.
* ``relay``: the relay as built: one ``EVALSHA`` per flush and one ``EVALSHA`` per drain.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.relay import Relay, RelayError, message_queue_key
from oasst_shared.relay._commit import Batch, GroupCommit
from oasst_shared.relay._connector import Connector
from oasst_shared.relay._drain import DRAIN_PER_KEY, DrainWire
from oasst_shared.relay._giveback import GiveBacks
from oasst_shared.relay._inbox import Inbox
from oasst_shared.relay._link import Link, pack
from oasst_shared.relay._reader import Reader
from oasst_shared.schemas import inference
from tests.support.redis_server import running_redis


def token_frame(i: int) -> bytes:
    return codec.worker_response.encode(
        inference.TokenResponse(request_id="work-request-id", text=f" tok{i}", log_prob=-0.25, token_id=i)
    )


FINAL = codec.worker_response.encode(
    inference.GeneratedTextResponse(request_id="work-request-id", text="all", finish_reason="length")
)


class PipelinedCommit(GroupCommit):
    """A flush as a pipeline of ``RPUSH`` + ``EXPIRE`` per queue instead of one script call."""

    def __init__(self, link: Link) -> None:
        super().__init__(link, expire=60, max_length=0, max_frame_size=1 << 24)
        self._pipe_link = link

    async def send(self, batch: Batch) -> None:
        link = self._pipe_link
        conn = await link.connected(op="publish", key=None, deadline=time.monotonic() + 5)
        cmds: list[tuple[Any, ...]] = []
        for key, frames in batch.frames.items():
            cmds.append(("RPUSH", key, *frames))
            cmds.append(("EXPIRE", key, 60))
        async with link.lock:
            await conn.send_packed_command(b"".join(pack(c) for c in cmds), check_health=False)
            for _ in cmds:
                await conn.read_response(disable_decoding=True)
        batch.settle({key: len(frames) for key, frames in batch.frames.items()}, "publish", 0)


class PipelinedWire(DrainWire):
    """A drain as a pipeline of ``LPOP key count`` per key instead of one script call (no backup)."""

    def command(self, keys: list[bytes], body: bytes, nhot: int) -> bytes:
        self._keys = keys
        return b"".join(pack(("LPOP", k, DRAIN_PER_KEY)) for k in keys)

    async def send(self, conn: Any, cmd: bytes, tail: bytes = b"", head: bytes = b"") -> None:
        self._sent = self._keys
        await conn.send_packed_command(head + cmd + tail, check_health=False)

    async def read(self, conn: Any) -> list[Any] | None:
        out: list[Any] = []
        for i in range(len(self._sent)):
            frames = await conn.read_response(disable_decoding=True)
            if frames:
                out += [i + 1, frames]
        return out


class PipelinedRelay:
    """The relay's parts with the pipelined commit and wire: publish, and a stream's frame count."""

    def __init__(self, url: str) -> None:
        self._connector = Connector(url, connect_timeout=5, command_timeout=10, retry_timeout=10)
        control = Link(self._connector, "control", blocking=False)
        reader_link = Link(self._connector, "reader", blocking=True)
        self._links = [Link(self._connector, "publish", blocking=False), control, reader_link]
        self._commit = PipelinedCommit(self._links[0])
        self._reader = Reader(
            reader_link,
            control,
            GiveBacks(control),
            read_interval=0.001,
            stream_buffer=4096,
            backup_expire=60,
            retry_window=10,
            wire=PipelinedWire(60),
        )

    async def publish(self, message_id: str, frame: bytes) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit.enqueue(message_id, frame, fut)
        await fut

    async def count(self, message_id: str) -> int:
        """Decode every frame of the stream until its terminal one; how many there were."""
        inbox = Inbox(message_queue_key(message_id))
        self._reader.open(inbox)
        decode, count = codec.worker_response.decode, 0
        try:
            while True:
                if not inbox.frames:
                    inbox.waiter = asyncio.get_running_loop().create_future()
                    await asyncio.wait_for(inbox.waiter, 10)
                for frame in inbox.take():
                    count += 1
                    if decode(frame).response_type == "generated_text":
                        return count
        finally:
            self._reader.close(inbox)

    async def aclose(self) -> None:
        await self._commit.wait_idle()
        await self._reader.stop()
        self._connector.closed = True
        await self._commit.close(RelayError("closed", key=None, operation="publish"))
        for link in self._links:
            await link.close()


async def run_relay(url: str, pipelined: bool, k: int, n: int) -> int:
    frames = [token_frame(i) for i in range(n)]
    relay: Relay | PipelinedRelay = PipelinedRelay(url) if pipelined else Relay(url)

    async def consume(mid: str) -> int:
        if isinstance(relay, PipelinedRelay):
            return await relay.count(mid)
        count = 0
        async for _item in relay.stream(mid, timeout=10):
            count += 1
        return count

    async def produce(mid: str) -> None:
        for f in frames:
            await relay.publish(mid, f)
        await relay.publish(mid, FINAL)

    try:
        consumers = [asyncio.create_task(consume(f"m{j}")) for j in range(k)]
        await asyncio.sleep(0.05)
        await asyncio.gather(*(produce(f"m{j}") for j in range(k)))
        counts = await asyncio.gather(*consumers)
    finally:
        await relay.aclose()
    return sum(counts)


async def run_per_message(url: str, k: int, n: int) -> int:
    frames = [token_frame(i) for i in range(n)]
    client = aioredis.Redis.from_url(url, max_connections=2 * k + 4)
    decode = codec.worker_response.decode

    async def consume(mid: str) -> int:
        key = message_queue_key(mid)
        count = 0
        while True:
            item = await client.blpop([key], timeout=10)
            if item is None:
                return count
            msg = decode(item[1])
            count += 1
            if msg.response_type == "generated_text":
                return count

    async def produce(mid: str) -> None:
        key = message_queue_key(mid)
        for f in [*frames, FINAL]:
            await client.rpush(key, f)
            await client.expire(key, 60)

    consumers = [asyncio.create_task(consume(f"m{j}")) for j in range(k)]
    await asyncio.sleep(0.05)
    await asyncio.gather(*(produce(f"m{j}") for j in range(k)))
    total = sum(await asyncio.gather(*consumers))
    await client.aclose()
    return total


def measure(name: str, url: str, k: int, n: int) -> dict[str, float]:
    async def go() -> int:
        if name == "per-message":
            return await run_per_message(url, k, n)
        return await run_relay(url, name == "relay-pipelined", k, n)

    c0, t0 = time.process_time(), time.perf_counter()
    total = asyncio.run(go())
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    assert total == k * (n + 1), (name, total)
    return {"cpu_us_per_token": cpu / total * 1e6, "tokens_per_s": total / wall}


async def latency(url: str, k: int, n: int, rate: float, read_interval: float) -> tuple[float, float, float]:
    """p50, p99 (ms) from publish call to the consumer's receipt, and the CPU per token (us), with
    ``k`` streams each publishing one token every ``k / rate`` seconds (``rate`` tokens/s in all)."""
    frames = [token_frame(i) for i in range(n)]
    sent: dict[tuple[int, int], float] = {}
    lat: list[float] = []
    loop = asyncio.get_running_loop()
    async with Relay(url, read_interval=read_interval) as relay:

        async def consume(j: int) -> None:
            async for item in relay.stream(f"lat{j}", timeout=10):
                if isinstance(item, inference.TokenResponse):
                    lat.append(loop.time() - sent[(j, item.token_id)])

        async def produce(j: int) -> None:
            interval = k / rate
            start = loop.time() + j * interval / k
            for i, f in enumerate(frames):
                delay = start + i * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[(j, i)] = loop.time()
                await relay.publish(f"lat{j}", f)
            await relay.publish(f"lat{j}", FINAL)

        consumers = [asyncio.create_task(consume(j)) for j in range(k)]
        await asyncio.sleep(0.05)
        c0 = time.process_time()
        await asyncio.gather(*(produce(j) for j in range(k)))
        await asyncio.gather(*consumers)
        cpu = time.process_time() - c0
    lat.sort()
    return lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, cpu / len(lat) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--unix", action="store_true", help="connect over a unix socket")
    ap.add_argument("--latency-rate", type=float, default=0, help="also measure latency at this load")
    ap.add_argument(
        "--read-interval", type=float, default=0.001, help="the relay's read_interval (latency run)"
    )
    args = ap.parse_args()
    with running_redis(unix_socket=args.unix) as srv:
        if args.latency_rate:
            p50, p99, cpu = asyncio.run(
                latency(srv.url, args.streams, args.tokens, args.latency_rate, args.read_interval)
            )
            print(
                f"relay latency at {args.latency_rate:.0f} tokens/s offered ({args.streams} streams,"
                f" read_interval {args.read_interval * 1e3:g} ms):"
                f" p50 {p50:.2f} ms, p99 {p99:.2f} ms, {cpu:.1f} us CPU/token"
            )
            srv.flushall()
        for name in ("per-message", "relay-pipelined", "relay"):
            best: dict[str, float] | None = None
            for _ in range(args.rounds):
                srv.flushall()
                r = measure(name, srv.url, args.streams, args.tokens)
                if best is None or r["cpu_us_per_token"] < best["cpu_us_per_token"]:
                    best = r
            assert best is not None
            print(
                f"{name:16s} {best['cpu_us_per_token']:7.1f} us CPU/token"
                f"  {best['tokens_per_s']:9.0f} tokens/s"
                f"  ({args.streams} streams x {args.tokens} tokens, best of {args.rounds})"
            )


if __name__ == "__main__":
    main()
