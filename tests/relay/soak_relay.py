"""The relay's long fault runs: ``make soak`` (not part of ``make test``; the file name keeps it out
of the default collection). Each prints its counts; each asserts the relay's promise: every
stream gets all its frames once and in order, or ends with a typed error after an in-order
prefix; 0 silent holes, duplicates or reorders.

* the restart experiment: 10 runs of 20 streams x 500 tokens, Redis (no persistence) killed and
  restarted 3 times in each run;
* the same with ``appendonly yes`` + ``appendfsync always``: no data-loss error at all;
* a Sentinel failover under load, 3 runs of 20 streams x 500 tokens;
* a Redis Cluster master killed under load, 5 runs of 64 streams x 300 tokens (a fresh cluster
  each), and a cluster slot migrated back and forth 20 times under 64 streams x 300 tokens;
* a timed soak (``OASST_SOAK_SECONDS``, 120 by default): rounds of 20 streams x 300 tokens with a
  random fault each (a restart, a pause of 0.5-2 s, a killed client connection).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from oasst_shared.relay import Relay
from oasst_shared.relay._cluster import cluster_tags, shard_of
from tests.relay.experiments import Outcome, check, cluster_failover, run_streams
from tests.support.cluster import ClusterSet, running_cluster
from tests.support.redis_server import RedisServer, running_redis
from tests.support.sentinel import running_sentinels

pytestmark = pytest.mark.anyio

RESULTS = Path(os.environ.get("OASST_SOAK_RESULTS", "bench-results/soak.json"))


def report(name: str, outcome: Outcome, **extra: object) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {
        "complete": outcome.complete,
        "ended_with": dict(outcome.ended_with),
        "silent_holes": outcome.silent_holes,
        "holes_before_error": outcome.holes_before_error,
        "duplicates": outcome.duplicates,
        "reorders": outcome.reorders,
        "publish_errors": dict(outcome.publish_errors),
        **extra,
    }
    RESULTS.write_text(json.dumps(data, indent=2))
    print(f"\n{name}: {json.dumps(data[name])}")


def restart(srv: RedisServer):  # type: ignore[no-untyped-def]
    async def fault() -> None:
        await asyncio.to_thread(srv.restart, kill=True)

    return fault


@pytest.mark.parametrize("persist", [False, True], ids=["no-persistence", "aof-always"])
async def test_the_restart_experiment(persist: bool) -> None:
    total = Outcome()
    with running_redis(use_env=False, persist=persist) as srv:
        async with Relay(srv.url) as relay:
            for run in range(10):
                outcome = await run_streams(
                    relay,
                    streams=20,
                    tokens=500,
                    faults=[restart(srv)] * 3,
                    prefix=f"r{run}-",
                    stream_timeout=5,
                )
                check(outcome, 20)
                total.add(outcome)
    report(f"restart experiment ({'aof always' if persist else 'no persistence'}), 10 runs", total)
    if persist:
        assert total.data_loss == 0, total


async def test_failover_under_load() -> None:
    total = Outcome()
    follow: list[float] = []
    promote: list[float] = []
    for run in range(3):
        with running_sentinels() as ha:
            async with Relay(ha.url, retry_timeout=20) as relay:

                async def fail_over(run: int = run) -> None:
                    await asyncio.to_thread(ha.kill_master)
                    killed = time.monotonic()
                    promote.append(await asyncio.to_thread(ha.wait_failover))
                    probe = f"probe{run}"
                    while True:  # the relay follows: a publish and a read on the new master
                        try:
                            await relay.publish(probe, b'{"response_type":"token","text":"p","token_id":0}')
                            break
                        except Exception:
                            await asyncio.sleep(0.01)
                    follow.append(time.monotonic() - killed)

                outcome = await run_streams(
                    relay,
                    streams=20,
                    tokens=500,
                    faults=[fail_over],
                    prefix=f"ha{run}-",
                    rate=10_000,
                    stream_timeout=30,
                )
                check(outcome, 20)
                total.add(outcome)
    report("sentinel failover, 3 runs", total, sentinels_promoted_s=promote, relay_followed_s=follow)
    assert total.data_loss > 0


async def test_timed_soak() -> None:
    seconds = float(os.environ.get("OASST_SOAK_SECONDS", "120"))
    rng = random.Random(20261206)
    total = Outcome()
    kinds: dict[str, int] = {}
    with running_redis(use_env=False) as srv:
        async with Relay(srv.url, retry_timeout=5) as relay:
            deadline = time.monotonic() + seconds
            run = 0
            while time.monotonic() < deadline:
                kind = rng.choice(["restart", "pause", "kill-clients"])
                kinds[kind] = kinds.get(kind, 0) + 1

                async def fault(kind: str = kind) -> None:
                    if kind == "restart":
                        await asyncio.to_thread(srv.restart, kill=True)
                    elif kind == "pause":
                        srv.pause()
                        await asyncio.sleep(rng.uniform(0.5, 2.0))
                        srv.resume()
                    else:  # every client connection, the relay's among them
                        admin = aioredis.Redis.from_url(srv.url)
                        await admin.client_kill_filter(_type="normal", skipme=True)
                        await admin.aclose()

                outcome = await run_streams(
                    relay, streams=20, tokens=300, faults=[fault], prefix=f"s{run}-", stream_timeout=5
                )
                check(outcome, 20)
                total.add(outcome)
                run += 1
    report(f"timed soak, {seconds:g} s", total, rounds=run, faults=kinds)


async def test_cluster_failover_under_load() -> None:
    affected, spared = Outcome(), Outcome()
    seconds = []
    for _ in range(5):
        with running_cluster() as cluster:
            a, s, failover, after = await cluster_failover(cluster, streams=64, tokens=300, rate=10_000.0)
        assert after, "a stream opened after the failover did not get everything"
        check(s, s.complete + sum(s.ended_with.values()))
        check(a, a.complete + sum(a.ended_with.values()))
        assert not s.ended_with and not s.publish_errors, s  # the other masters' streams: undisturbed
        affected.add(a)
        spared.add(s)
        seconds.append(round(failover, 2))
    report("cluster failover, killed master's streams", affected, failover_seconds=seconds)
    report("cluster failover, other masters' streams", spared)


async def test_cluster_slot_migrations_under_load(redis_cluster: ClusterSet) -> None:
    """20 migrations of the slot of one shard (the one with the most streams: to another master
    and back) while 64 streams of every shard get 300 tokens: every stream complete, in order,
    no error."""
    cluster = redis_cluster
    async with Relay(cluster.url) as relay:
        # the shard with the most of the streams
        busiest = Counter(shard_of(f"migrating-{j}", relay.cluster_shards) for j in range(64)).most_common(1)
        tag = cluster_tags(relay.cluster_shards)[busiest[0][0]]
        slot = cluster.key_slot(tag)
        home = cluster.node_for_slot(slot)
        away = next(n for n in cluster.masters() if n is not home)

        async def migrate() -> None:
            for i in range(20):
                await asyncio.to_thread(cluster.migrate_slot, slot, away if i % 2 == 0 else home)
                await asyncio.sleep(0.05)

        outcome, _ = await asyncio.gather(
            run_streams(relay, streams=64, tokens=300, faults=[], prefix="migrating-", rate=5_000.0),
            migrate(),
        )
    check(outcome, 64)
    assert outcome.complete == 64, outcome
    report("cluster slot migrated 20 times", outcome)
