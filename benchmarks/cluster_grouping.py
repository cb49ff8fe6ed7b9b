"""How to group a flush on a Redis Cluster, measured on one ``redis-server`` (a master's view).

``python -m benchmarks.cluster_grouping [--keys N] [--frames F] [--rounds R]``

A script may touch only keys of one slot. With the reference's key names every message queue is
in a slot of its own, so a flush of N queues is N script calls (pipelined, one round trip per
node); with hash-tagged keys (``message:{r7}<id>``) the queues of one shard share a slot, so a
flush is one call per shard. The same holds for a read round (DRAIN). This sends both ways, on
one connection, pipelined, and reads Redis's CPU (``INFO cpu``) and this process's around each:

* ``per key``: N ``EVALSHA PUBLISH`` calls of one key each, then N ``EVALSHA DRAIN`` of one key;
* ``per shard``: ``shards`` calls with N / shards keys each, for both.

Prints Redis CPU and client CPU per frame for each, and their ratio.
"""

from __future__ import annotations

import argparse
import time

import redis

from oasst_shared.relay._link import pack
from oasst_shared.relay._scripts import DRAIN, PUBLISH, sha1
from tests.support.redis_server import running_redis

FRAME = b'{"response_type":"token","request_id":"r","text":" tok","log_prob":-0.5,"token_id":1}'


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _publish(keys: list[bytes], frames: int) -> bytes:
    args: list[bytes | int | str] = ["EVALSHA", sha1(PUBLISH), len(keys), *keys, 60, 0]
    for _ in keys:
        args += [frames, *([FRAME] * frames)]
    return pack(args)


def _drain(backup: bytes, keys: list[bytes], round_id: int) -> bytes:
    return pack(["EVALSHA", sha1(DRAIN), len(keys) + 1, backup, *keys, 4096, len(keys), round_id, 60])


def run(keys: int, frames: int, rounds: int, shards: int) -> dict[str, tuple[float, float]]:
    out = {}
    with running_redis(use_env=False) as srv:
        client = redis.Redis.from_url(srv.url)
        client.script_load(PUBLISH)
        client.script_load(DRAIN)
        conn = client.connection_pool.get_connection()
        names = [f"message:{{r{i % shards}}}m{i}".encode() for i in range(keys)]
        for label, groups in (
            ("per key", [[k] for k in names]),
            ("per shard", [names[s::shards] for s in range(shards)]),
        ):
            r0, c0 = _cpu(client), time.process_time()
            for r in range(rounds):
                conn.send_packed_command([b"".join(_publish(g, frames) for g in groups)])
                for _ in groups:
                    conn.read_response()
                backups = [f"relay:inflight:{{g{j}}}".encode() for j in range(len(groups))]
                drains = b"".join(_drain(b, g, r + 1) for b, g in zip(backups, groups, strict=True))
                conn.send_packed_command([drains])
                for _ in groups:
                    conn.read_response()
            r1, c1 = _cpu(client), time.process_time()
            total = keys * frames * rounds
            out[label] = ((r1 - r0) / total * 1e6, (c1 - c0) / total * 1e6)
        client.connection_pool.release(conn)
        client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster_grouping", description=__doc__)
    parser.add_argument("--keys", type=int, default=256, help="queues per flush (open streams)")
    parser.add_argument("--frames", type=int, default=1, help="frames per queue per flush")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--shards", type=int, default=16)
    args = parser.parse_args()
    res = run(args.keys, args.frames, args.rounds, args.shards)
    print(f"{args.keys} queues x {args.frames} frames per flush, {args.rounds} flushes and drains:")
    for label, (redis_us, client_us) in res.items():
        print(f"  {label:9}: Redis {redis_us:.2f} us/frame, client {client_us:.2f} us/frame")
    (rk, ck), (rs, cs) = res["per key"], res["per shard"]
    print(f"  per key / per shard: Redis {rk / rs:.2f}x, client {ck / cs:.2f}x")


if __name__ == "__main__":
    main()
