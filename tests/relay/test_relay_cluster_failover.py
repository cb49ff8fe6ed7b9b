"""A Redis Cluster master killed under load (a cluster of this module's own: 3 masters, 3
replicas): its replica is promoted, and the relay follows.

64 streams x 300 tokens through one relay, published at about 10,000 tokens/s, read through a
second one; the master that owns the most shards is SIGKILLed at a third of the tokens. The
counts (``experiments.judge``):

* every stream of a shard on another master completes, every token once, in order;
* every stream of a shard on the killed master completes the same way or ends with a typed error
  (``RelayDataLossError``: the promoted replica may lack what was not yet replicated) after an
  in-order prefix: 0 silent holes, 0 duplicates, 0 reorders;
* the relay carries on afterwards: a new stream on the promoted master's shards gets everything.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from oasst_shared.relay import Relay, RelayError
from oasst_shared.relay._cluster import cluster_tags, shard_of
from oasst_shared.schemas import inference
from tests.relay.experiments import Outcome, check, judge
from tests.relay.helpers import final, token
from tests.support.cluster import ClusterSet, running_cluster

pytestmark = pytest.mark.anyio

STREAMS, TOKENS, RATE = 64, 300, 10_000.0


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[ClusterSet]:
    with running_cluster() as cluster:
        yield cluster


async def test_a_master_killed_under_load_leaves_no_silent_hole(own_cluster: ClusterSet) -> None:
    cluster = own_cluster
    async with Relay(cluster.url, retry_timeout=15) as writer, Relay(cluster.url, retry_timeout=15) as reader:
        tags = cluster_tags(writer.cluster_shards)
        owner = {t: cluster.node_for_slot(cluster.key_slot(t)) for t in tags}
        victim = Counter(owner.values()).most_common(1)[0][0]
        mids = [f"failover-{j}" for j in range(STREAMS)]
        on_victim = {m for m in mids if owner[tags[shard_of(m, writer.cluster_shards)]] is victim}
        assert 0 < len(on_victim) < STREAMS  # both kinds are there to count
        affected, spared = Outcome(), Outcome()
        published = 0
        killed_at: list[float] = []

        async def consume(mid: str) -> None:
            got: list[inference.WorkerResponse] = []
            outcome = affected if mid in on_victim else spared
            try:
                async for item in reader.stream(mid, timeout=20):
                    got.append(item)
            except RelayError as exc:
                outcome.ended_with[type(exc).__name__] += 1
                judge(got, TOKENS, False, outcome)
                return
            judge(got, TOKENS, True, outcome)

        async def produce(mid: str) -> None:
            nonlocal published
            outcome = affected if mid in on_victim else spared
            try:
                for i in range(TOKENS):
                    await writer.publish(mid, token(i, mid))
                    published += 1
                    await asyncio.sleep(STREAMS / RATE)
                await writer.publish(mid, final(mid))
            except RelayError as exc:  # (a worker's handler aborts the message)
                outcome.publish_errors[type(exc).__name__] += 1

        async def kill() -> None:
            while published < STREAMS * TOKENS // 3:
                await asyncio.sleep(0.005)
            killed_at.append(time.monotonic())
            cluster.kill_master(victim)

        consumers = [asyncio.create_task(consume(m)) for m in mids]
        await asyncio.sleep(0.1)
        await asyncio.gather(kill(), *(produce(m) for m in mids))
        await asyncio.wait_for(asyncio.gather(*consumers), 60)
        failover = await asyncio.to_thread(cluster.wait_failover, victim)

        check(spared, STREAMS - len(on_victim))
        assert spared.complete == STREAMS - len(on_victim), spared  # not disturbed
        assert not spared.publish_errors, spared
        check(affected, len(on_victim))
        # what ended did so saying frames may be lost (or that a publish failed), never silently
        assert set(affected.ended_with) <= {"RelayDataLossError", "RelayTimeoutError"}, affected
        print(f"\nfailover in {failover:.1f} s; on the killed master {len(on_victim)} streams: {affected}")
        print(f"on the others {STREAMS - len(on_victim)} streams: {spared}")

        # the relays go on: a new stream on a shard of the promoted master gets everything
        mid = next(
            f"after-{j}"
            for j in range(10_000)
            if owner[tags[shard_of(f"after-{j}", writer.cluster_shards)]] is victim
        )
        for i in range(20):
            await writer.publish(mid, token(i))
        await writer.publish(mid, final())
        assert [m async for m in reader.stream(mid, timeout=15)] == [token(i) for i in range(20)] + [final()]
