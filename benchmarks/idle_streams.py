"""What open streams cost the relay: ``python -m benchmarks.idle_streams [--streams 0,1000,5000,20000]``.

For each count N, in one server process against a real ``redis-server``: N idle subscriptions,
then one active stream among them with a token published every 10 ms, and the time from
``publish`` to the consumer's ``next_batch`` taken (p50 / p95); idle CPU of this process and of
Redis over a few seconds with nothing published; memory per open stream (RSS). Then the waiting
chats: ``--waiting`` chats (5,000) waiting on an empty worker pool, each asking its queue position
once per second as the reference's event stream does (``queue_position``; with ``max_age`` where
the relay offers it), with Redis's commands per second and this process's CPU.

Prints a markdown table and, with ``--json FILE``, writes every figure. Run it from a checkout
(``cd`` into another worktree to measure another version: the relay is imported from the current
directory first).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.getcwd())

import redis.asyncio as aioredis

from oasst_shared import codec
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference
from tests.support.redis_server import running_redis


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def redis_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def idle_phase(url: str, n: int, *, tokens: int, idle_seconds: float) -> dict[str, Any]:
    plain = aioredis.Redis.from_url(url)
    frames = [
        codec.worker_response.encode(inference.TokenResponse(request_id="r", text=f" t{i}", token_id=i))
        for i in range(tokens)
    ]
    async with Relay(url) as relay:
        rss0 = rss_kb()
        subs = []
        for i in range(n):
            sub = relay.subscribe(f"idle-{n}-{i}")
            await sub.__aenter__()
            subs.append(sub)
        await asyncio.sleep(0.5)  # the reader settles into its idle wait
        rss1 = rss_kb()
        c0, r0, k0 = time.process_time(), await redis_cpu(plain), await redis_calls(plain)
        await asyncio.sleep(idle_seconds)
        c1, r1, k1 = time.process_time(), await redis_cpu(plain), await redis_calls(plain)
        loop = asyncio.get_running_loop()
        lat: list[float] = []
        sent: dict[int, float] = {}
        active = relay.subscribe(f"active-{n}")
        async with active:

            async def consume() -> None:
                got = 0
                while got < tokens:
                    for frame in await active.next_batch(10):
                        i = codec.worker_response.decode(frame).token_id  # type: ignore[union-attr]
                        lat.append(loop.time() - sent[i])
                        got += 1

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            for i, frame in enumerate(frames):
                sent[i] = loop.time()
                await relay.publish(f"active-{n}", frame)
                await asyncio.sleep(0.01)
            await asyncio.wait_for(consumer, 30)
        for sub in subs:
            await sub.aclose()
    await plain.aclose()
    lat.sort()
    return {
        "streams": n,
        "memory_kb_per_stream": (rss1 - rss0) / n if n else None,
        "idle_cpu_process_pct": (c1 - c0) / idle_seconds * 100,
        "idle_cpu_redis_pct": (r1 - r0) / idle_seconds * 100,
        "idle_redis_commands_per_s": (k1 - k0) / idle_seconds,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p95_ms": lat[int(len(lat) * 0.95)] * 1e3,
    }


async def waiting_phase(url: str, chats: int, *, seconds: float) -> dict[str, Any]:
    """``chats`` waiting on an empty pool, each asking its position once per second."""
    plain = aioredis.Redis.from_url(url)
    async with Relay(url) as relay:
        for i in range(chats):
            await relay.enqueue_work("nobody", f"wait-{i}")
        batched = "max_age" in inspect.signature(relay.queue_position).parameters
        stop = asyncio.Event()
        asked = 0

        async def chat(i: int) -> None:
            nonlocal asked
            await asyncio.sleep(i / chats)  # spread over the second, as chats arrive
            while not stop.is_set():
                if batched:
                    await relay.queue_position(f"wait-{i}", "nobody", max_age=1.0)  # type: ignore[call-arg]
                else:
                    await relay.queue_position(f"wait-{i}", "nobody")
                asked += 1
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(chat(i)) for i in range(chats)]
        await asyncio.sleep(1.5)  # every chat has started
        c0, r0, k0, a0 = time.process_time(), await redis_cpu(plain), await redis_calls(plain), asked
        await asyncio.sleep(seconds)
        c1, r1, k1, a1 = time.process_time(), await redis_cpu(plain), await redis_calls(plain), asked
        stop.set()
        await asyncio.gather(*tasks)
    await plain.aclose()
    return {
        "chats": chats,
        "batched": batched,
        "positions_per_s": (a1 - a0) / seconds,
        "redis_commands_per_s": (k1 - k0) / seconds,
        "redis_cpu_pct": (r1 - r0) / seconds * 100,
        "process_cpu_pct": (c1 - c0) / seconds * 100,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"idle": [], "waiting": None}
    with running_redis(use_env=False) as srv:
        for n in args.streams:
            srv.flushall()
            out["idle"].append(
                await idle_phase(srv.url, n, tokens=args.tokens, idle_seconds=args.idle_seconds)
            )
            print(json.dumps(out["idle"][-1]), file=sys.stderr, flush=True)
        if args.waiting:
            srv.flushall()
            out["waiting"] = await waiting_phase(srv.url, args.waiting, seconds=args.idle_seconds)
            print(json.dumps(out["waiting"]), file=sys.stderr, flush=True)
    return out


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "| idle streams | memory per stream | idle CPU, process / Redis | Redis cmds/s idle | p50 / p95 |",
        "|---|---|---|---|---|",
    ]
    for r in out["idle"]:
        mem = "-" if r["memory_kb_per_stream"] is None else f"{r['memory_kb_per_stream']:.1f} KB"
        lines.append(
            f"| {r['streams']:,} | {mem} | {r['idle_cpu_process_pct']:.1f}% / {r['idle_cpu_redis_pct']:.1f}% "
            f"| {r['idle_redis_commands_per_s']:.0f} | {r['p50_ms']:.2f} / {r['p95_ms']:.2f} ms |"
        )
    w = out.get("waiting")
    if w:
        lines += [
            "",
            f"Waiting chats: {w['chats']:,} (positions {'batched' if w['batched'] else 'one MGET each'}): "
            f"{w['positions_per_s']:.0f} positions/s, Redis {w['redis_commands_per_s']:.0f} commands/s "
            f"({w['redis_cpu_pct']:.1f}% CPU), process {w['process_cpu_pct']:.1f}% CPU",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_streams", description=__doc__)
    parser.add_argument(
        "--streams", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1000, 5000, 20000]
    )
    parser.add_argument("--tokens", type=int, default=200, help="tokens of the active stream (one per 10 ms)")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--waiting", type=int, default=5000, help="waiting chats (0: skip)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    out = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
