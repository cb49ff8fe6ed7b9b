"""The Redis Cluster harness (tests/support/cluster.py) against real ``redis-server`` nodes: the
cluster it forms, a key through redis-py's cluster client, a slot migration with keys in it, and a
master's failover to its replica."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis.cluster import RedisCluster

from tests.support.cluster import MIGRATION_STEPS, ClusterSet


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[ClusterSet, ClusterSet]]:
    """Two clusters started side by side (a start is mostly Redis's 2 s writable delay, a wait):
    one shared by the tests that leave it as they found it, one for the failover test to break."""
    shared, spare = ClusterSet(), ClusterSet()
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(shared.start), pool.submit(spare.start)]:
                started.result()
        yield shared, spare
    finally:
        shared.close()
        spare.close()


@pytest.fixture
def cluster(clusters: tuple[ClusterSet, ClusterSet]) -> ClusterSet:
    return clusters[0]


@pytest.fixture
def own_cluster(clusters: tuple[ClusterSet, ClusterSet]) -> ClusterSet:
    """A cluster of the test's own: no other test uses it."""
    return clusters[1]


def cluster_client(cl: ClusterSet) -> RedisCluster:
    return RedisCluster.from_url(cl.url)


def test_the_cluster_forms_with_every_slot_covered_and_a_replica_per_master(cluster: ClusterSet) -> None:
    masters = cluster.masters()
    assert len(masters) == 3
    assert len(cluster.nodes) == 6
    for master in masters:
        assert len(cluster.replicas_of(master)) == 1, master.port
    master_ports = {m.port for m in masters}
    for node in cluster.nodes:
        info = cluster.cluster_info(node)
        assert info["cluster_state"] == "ok", (node.port, info)
        assert info["cluster_slots_assigned"] == "16384", (node.port, info)
        assert info["cluster_known_nodes"] == "6", (node.port, info)
        owners = cluster.slot_owners(node)
        assert None not in owners, node.port
        assert set(owners) == master_ports, node.port
    assert cluster.addresses == [f"127.0.0.1:{n.port}" for n in cluster.nodes]
    assert cluster.url == f"redis://127.0.0.1:{masters[0].port}/0"


def test_a_key_written_through_the_cluster_client_reads_back_from_its_slots_master(
    cluster: ClusterSet,
) -> None:
    client = cluster_client(cluster)
    try:
        client.set("harness:key", b"value")
        assert client.get("harness:key") == b"value"
        owner = cluster.node_for_slot(cluster.key_slot("harness:key"))
        assert cluster.client(owner).get("harness:key") == b"value"  # on that master itself
        for key in ("harness:key", "{user1}:a", "{user1}:b", "a{b}c", "{}x", "ünïcode"):
            assert cluster.key_slot(key) == cluster.command(owner, "CLUSTER", "KEYSLOT", key), key
    finally:
        client.delete("harness:key")
        client.close()


def test_migrate_slot_moves_the_slot_and_its_keys_to_another_master(cluster: ClusterSet) -> None:
    keys = [f"{{mig}}:{i}" for i in range(250)]  # one slot; 3 MIGRATE batches of 100
    slot = cluster.key_slot("{mig}")
    source = cluster.node_for_slot(slot)
    target = next(m for m in cluster.masters() if m is not source)
    client = cluster_client(cluster)
    steps: list[str] = []

    def between(step: str) -> None:  # mid-migration every key still reads (MOVED / ASK followed)
        steps.append(step)
        assert [client.get(k) for k in keys] == [k.encode() for k in keys], step

    try:
        for k in keys:
            client.set(k, k)
        cluster.migrate_slot(slot, target, between=between)
        assert steps == [
            "importing",
            "migrating",
            "batch",
            "batch",
            "batch",
            "keys-moved",
            "target-owns",
            "done",
        ]
        assert set(steps) <= set(MIGRATION_STEPS)
        assert cluster.node_for_slot(slot) is target
        for node in cluster.nodes:
            assert cluster.slot_owners(node)[slot] == target.port, node.port
        assert cluster.command(target, "CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
        assert cluster.command(source, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        fresh = cluster_client(cluster)
        try:
            assert [fresh.get(k) for k in keys] == [k.encode() for k in keys]
        finally:
            fresh.close()
        assert [client.get(k) for k in keys] == [k.encode() for k in keys]  # stale slot map: MOVED
    finally:
        if cluster.node_for_slot(slot) is not source:  # leave the shared cluster as formed
            cluster.migrate_slot(slot, source)
        client.delete(*keys)
        client.close()
    assert cluster.node_for_slot(slot) is source


@pytest.mark.slow
def test_a_killed_master_fails_over_to_its_replica_with_the_data_it_had_replicated(
    own_cluster: ClusterSet,
) -> None:
    cl = own_cluster
    client = cluster_client(cl)
    try:
        client.set("{fo}:key", b"before")
    finally:
        client.close()
    slot = cl.key_slot("{fo}:key")
    victim = cl.node_for_slot(slot)
    assert cl.command(victim, "WAIT", 1, 1000) == 1  # it reached the replica
    replica = cl.replicas_of(victim)[0]
    survivor = next(n for n in cl.nodes if n is not victim)
    victim_slots = [s for s, owner in enumerate(cl.slot_owners(survivor)) if owner == victim.port]
    assert slot in victim_slots

    cl.kill_master(victim)
    assert not victim.running
    took = cl.wait_failover(victim)

    assert took < 15, took
    assert cl.node_for_slot(slot) is replica
    masters_now = cl.masters()
    assert len(masters_now) == 3 and replica in masters_now, [m.port for m in masters_now]
    for node in cl.nodes:
        if node.running:
            assert cl.cluster_info(node)["cluster_state"] == "ok", node.port
            owners = cl.slot_owners(node)
            assert {owners[s] for s in victim_slots} == {replica.port}, node.port
    assert cl.client(replica).get("{fo}:key") == b"before"
    client = cluster_client(cl)  # from a surviving node
    try:
        assert client.get("{fo}:key") == b"before"
    finally:
        client.close()
