"""A Redis Cluster master killed under load (a cluster of this module's own: 3 masters, 3
replicas): its replica is promoted, and the relay follows (``experiments.cluster_failover``).

64 streams x 300 tokens through one relay, published at about 10,000 tokens/s, read through a
second one; the master that owns the most shards is SIGKILLed at a third of the tokens. The
counts (``experiments.judge``):

* every stream of a shard on another master completes, every token once, in order;
* every stream of a shard on the killed master completes the same way or ends with
  ``RelayDataLossError`` (the promoted replica may lack what was not yet replicated) after an
  in-order prefix: 0 silent holes, 0 duplicates, 0 reorders;
* the relay carries on afterwards: a new stream on the promoted master's shards gets everything.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.relay.experiments import check, cluster_failover
from tests.support.cluster import ClusterSet, running_cluster

pytestmark = pytest.mark.anyio

STREAMS, TOKENS, RATE = 64, 300, 10_000.0


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[ClusterSet]:
    with running_cluster() as cluster:
        yield cluster


async def test_a_master_killed_under_load_leaves_no_silent_hole(own_cluster: ClusterSet) -> None:
    affected, spared, failover, after = await cluster_failover(
        own_cluster, streams=STREAMS, tokens=TOKENS, rate=RATE
    )
    n_affected = affected.complete + sum(affected.ended_with.values())
    assert 0 < n_affected < STREAMS  # both kinds are there to count
    check(spared, STREAMS - n_affected)
    assert spared.complete == STREAMS - n_affected, spared  # not disturbed
    assert not spared.publish_errors, spared
    check(affected, n_affected)
    # what ended did so saying frames may be lost, never silently
    assert set(affected.ended_with) <= {"RelayDataLossError"}, affected
    assert after  # and a new stream on the promoted master's shards gets everything
    print(f"\nfailover in {failover:.1f} s; the killed master's {n_affected} streams: {affected}")
    print(f"the other masters' streams: {spared}")
