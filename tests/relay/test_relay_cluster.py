"""The relay on a real Redis Cluster (3 masters, 3 replicas, ``tests/support/cluster.py``): it
finds out it is on one, spreads its keys over the shards' hash tags, follows slot migrations
without a hole, and holds a bounded number of connections however many streams are open.

The failover under load is in ``test_relay_cluster_failover.py`` (a cluster of its own)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter

import pytest

from oasst_shared.relay import Relay, RelayConnectionError, RelayError
from oasst_shared.relay._cluster import SLOTS, cluster_tags, shard_of
from oasst_shared.schemas import inference
from tests.relay.helpers import final, token, token_frame
from tests.support.cluster import ClusterSet
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

_ids = itertools.count()


def _mid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _owner_port(cluster: ClusterSet, key: str) -> int:
    return cluster.node_for_slot(cluster.key_slot(key)).port or 0


def _client_counts(cluster: ClusterSet, name_part: str = "") -> dict[int, int]:
    """Connections each master holds, not counting the harness's own."""
    counts = {}
    for node in cluster.masters():
        listing = cluster.command(node, "CLIENT", "LIST")
        text = listing.decode() if isinstance(listing, bytes) else str(listing)
        lines = [ln for ln in text.splitlines() if "cmd=client" not in ln and name_part in ln]
        counts[node.port or 0] = len(lines)
    return counts


def _asking_calls(cluster: ClusterSet, node: RedisServer) -> int:
    info = cluster.client(node).info("commandstats")
    return int(info.get("cmdstat_asking", {}).get("calls", 0))


def test_the_tags_fall_one_per_equal_slot_range() -> None:
    for shards in (1, 3, 16, 64):
        tags = cluster_tags(shards)
        assert len(set(tags)) == shards
        ranges = [ClusterSet.key_slot(t.encode()) * shards // SLOTS for t in tags]
        assert ranges == list(range(shards)), (shards, ranges)


async def test_a_url_naming_any_node_finds_the_cluster_and_streams_in_order(
    redis_cluster: ClusterSet,
) -> None:
    replica = next(n for n in redis_cluster.nodes if n not in redis_cluster.masters())
    for url in (redis_cluster.url, replica.url):
        async with Relay(url) as relay:
            assert relay.cluster is None  # not known before the first connection
            mid = _mid("any-node")

            async def read(relay: Relay = relay, mid: str = mid) -> list[inference.WorkerResponse]:
                return [m async for m in relay.stream(mid, timeout=10)]

            reader = asyncio.create_task(read())
            for i in range(20):
                await relay.publish(mid, token(i))
            await relay.publish(mid, final())
            got = await asyncio.wait_for(reader, 10)
            assert relay.cluster is True
            assert got == [token(i) for i in range(20)] + [final()]


async def test_the_keys_carry_their_shards_tag_and_the_shards_spread_over_the_masters(
    redis_cluster: ClusterSet,
) -> None:
    async with Relay(redis_cluster.url, message_queue_expire=30) as relay:
        mids = [_mid("spread") for _ in range(200)]
        await asyncio.gather(*(relay.publish(m, token(0)) for m in mids))
        tags = cluster_tags(relay.cluster_shards)
        per_master: Counter[int] = Counter()
        for m in mids:
            key = f"message:{tags[shard_of(m, relay.cluster_shards)]}{m}"
            node = redis_cluster.node_for_slot(redis_cluster.key_slot(key))
            assert redis_cluster.client(node).lrange(key, 0, -1) == [token_frame(0)], key
            per_master[node.port or 0] += 1
        # no key under the reference's name (it would sit in a slot of its own)
        plain = [f"message:{m}" for m in mids[:20]]
        assert not any(
            redis_cluster.client(redis_cluster.node_for_slot(redis_cluster.key_slot(k))).exists(k)
            for k in plain
        )
        # the tags fall in equal slot ranges, and the masters own equal ranges: each carries a
        # third of the shards (8 of 24), so about a third of the streams
        shards_per_master = Counter(_owner_port(redis_cluster, t) for t in tags)
        assert sorted(shards_per_master.values()) == [8, 8, 8], shards_per_master
        assert len(per_master) == 3 and min(per_master.values()) > 30, per_master


async def test_startup_nodes_in_the_url_and_a_replica_first(redis_cluster: ClusterSet) -> None:
    """``redis://host:port,host:port`` names startup nodes: a dead one first is skipped."""
    dead = "127.0.0.1:1"
    url = "redis://" + ",".join([dead, *redis_cluster.addresses]) + "/0"
    async with Relay(url) as relay:
        assert relay.cluster is True  # several nodes: a cluster, without asking
        mid = _mid("startup")
        await relay.publish(mid, token(0))
        await relay.publish(mid, final())
        assert [m async for m in relay.stream(mid, timeout=10)] == [token(0), final()]


async def test_work_queues_keep_the_reference_counters_and_positions(redis_cluster: ClusterSet) -> None:
    async with Relay(redis_cluster.url) as relay:
        compat = _mid("compat")
        mids = [_mid("work") for _ in range(4)]
        counters = [await relay.enqueue_work(compat, m) for m in mids]
        assert counters == [1, 2, 3, 4]
        assert [tuple(await relay.queue_position(m, compat)) for m in mids] == [
            (1, 4),
            (2, 4),
            (3, 4),
            (4, 4),
        ]
        assert await relay.dequeue_work(compat, timeout=1) == mids[0]
        assert tuple(await relay.queue_position(mids[1], compat)) == (1, 3)
        assert tuple(await relay.queue_position(mids[3], compat, max_age=0.05)) == (3, 3)
        # the queue, its counters and the positions share the compat hash's shard (one slot)
        tag = cluster_tags(relay.cluster_shards)[shard_of(compat, relay.cluster_shards)]
        slots = {
            redis_cluster.key_slot(k)
            for k in (f"work:{tag}{compat}", f"ctr_enq:work:{tag}{compat}", f"pos:{tag}{mids[1]}")
        }
        assert len(slots) == 1
        node = redis_cluster.node_for_slot(slots.pop())
        assert redis_cluster.client(node).llen(f"work:{tag}{compat}") == 3
        assert redis_cluster.client(node).get(f"ctr_deq:work:{tag}{compat}") == b"1"


async def test_many_streams_from_two_relays_get_every_frame_once_in_order(redis_cluster: ClusterSet) -> None:
    """Two relays (two server processes' worth): one publishes through a ``Publisher``, the
    other reads, 64 streams over every shard."""
    async with Relay(redis_cluster.url) as writer, Relay(redis_cluster.url) as reader:
        mids = [_mid("many") for _ in range(64)]
        results: dict[str, list[inference.WorkerResponse]] = {}

        async def read(mid: str) -> None:
            results[mid] = [m async for m in reader.stream(mid, timeout=20)]

        tasks = [asyncio.create_task(read(m)) for m in mids]
        pub = writer.publisher(limit=256)
        for i in range(50):
            for m in mids:
                pub.send(m, token(i))
            await pub.drain()
        for m in mids:
            pub.send(m, final())
        await pub.flush()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for m in mids:
            assert results[m] == [token(i) for i in range(50)] + [final()], m


async def test_a_live_streams_slot_migrates_without_a_hole(redis_cluster: ClusterSet) -> None:
    """The slot of a stream's shard moves to another master (``SETSLOT``/``MIGRATE``) while frames
    are published between every step: the stream gets them all, once, in order, and no error."""
    async with Relay(redis_cluster.url, read_interval=0) as relay:
        mid = _mid("migrate")
        tag = cluster_tags(relay.cluster_shards)[shard_of(mid, relay.cluster_shards)]
        slot = redis_cluster.key_slot(tag[1:-1])
        source = redis_cluster.node_for_slot(slot)
        target = next(n for n in redis_cluster.masters() if n is not source)
        got: list[inference.WorkerResponse] = []

        async def read() -> None:
            got.extend([m async for m in relay.stream(mid, timeout=20)])

        reader = asyncio.create_task(read())
        sent = 0
        loop = asyncio.get_running_loop()

        def between(step: str) -> None:
            nonlocal sent
            # publish from the event loop (this runs in the migration's thread) and wait
            for _ in range(5):
                asyncio.run_coroutine_threadsafe(relay.publish(mid, token(sent)), loop).result(15)
                sent += 1

        for _ in range(10):
            await relay.publish(mid, token(sent))
            sent += 1
        asked_before = _asking_calls(redis_cluster, target)
        await asyncio.to_thread(redis_cluster.migrate_slot, slot, target, between=between)
        # while the slot was migrating, publishes went to the target with ASKING (the stream's
        # key, drained empty, was not on the source)
        assert _asking_calls(redis_cluster, target) > asked_before
        for _ in range(10):
            await relay.publish(mid, token(sent))
            sent += 1
        await relay.publish(mid, final())
        await asyncio.wait_for(reader, 20)
        assert got == [token(i) for i in range(sent)] + [final()]
        assert redis_cluster.node_for_slot(slot) is target
        # and back, with nothing in flight: the next stream of that shard reads from the new owner
        await asyncio.to_thread(redis_cluster.migrate_slot, slot, source)
        await relay.publish(mid + "-after", token(0))
        await relay.publish(mid + "-after", final())
        assert [m async for m in relay.stream(mid + "-after", timeout=10)] == [token(0), final()]


async def test_thousands_of_open_streams_hold_a_bounded_number_of_connections(
    redis_cluster: ClusterSet,
) -> None:
    """Per process: three connections per shard (publish, control, the reader's) to the node
    that owns it, however many streams are open."""
    before = _client_counts(redis_cluster)
    async with Relay(redis_cluster.url) as relay:
        mids = [_mid("open") for _ in range(2000)]
        subs = [relay.subscribe(m) for m in mids]
        for sub in subs:
            await sub.__aenter__()
        await asyncio.gather(*(relay.publish(m, token(0)) for m in mids))
        batches = await asyncio.gather(*(sub.next_batch(10) for sub in subs))
        assert all(b == [token_frame(0)] for b in batches)
        during = _client_counts(redis_cluster)
        for sub in subs:
            await sub.aclose()
    tags = cluster_tags(relay.cluster_shards)
    shards_on = Counter(_owner_port(redis_cluster, t) for t in tags)
    for port, n in during.items():
        added = n - before.get(port, 0)
        # 3 per shard on that master: publish, control, reader (and nothing per stream)
        assert added <= 3 * shards_on[port], (port, added, shards_on)
        assert added >= shards_on[port], (port, added, shards_on)  # the readers are there


async def test_a_cluster_that_no_node_of_answers_fails_within_the_retry_window() -> None:
    async with Relay("redis://127.0.0.1:1,127.0.0.1:2/0", retry_timeout=0.5, connect_timeout=0.2) as relay:
        with pytest.raises(RelayConnectionError) as info:
            await relay.publish("m", token(0))
        tag = cluster_tags(relay.cluster_shards)[shard_of("m", relay.cluster_shards)]
        assert info.value.key == f"message:{tag}m" and "publish" in info.value.operation
        assert "CLUSTER SLOTS" in str(info.value) or "unreachable" in str(info.value), info.value


_PUBLISHER = """
import asyncio, sys
from oasst_shared.relay import Relay
from oasst_shared.schemas import inference

async def main(url, prefix, streams, tokens):
    async with Relay(url) as relay:
        pub = relay.publisher(limit=512)
        for i in range(tokens):
            for s in range(streams):
                pub.send(f"{prefix}{s}", inference.TokenResponse(
                    request_id="req", text=f" t{i}", log_prob=-0.5, token_id=i))
            await pub.drain()
        for s in range(streams):
            pub.send(f"{prefix}{s}", inference.GeneratedTextResponse(
                request_id="req", text="done", finish_reason="length"))
        await pub.flush()
    print("published", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def test_two_processes_one_publishing_one_reading(redis_cluster: ClusterSet) -> None:
    """A server process of its own publishes 32 streams x 100 tokens (a worker's side); this one
    reads them (a browser's side), both on the cluster."""
    prefix, streams, tokens = _mid("proc") + "-", 32, 100
    async with Relay(redis_cluster.url) as relay:
        results: dict[int, list[inference.WorkerResponse]] = {}

        async def read(s: int) -> None:
            results[s] = [m async for m in relay.stream(f"{prefix}{s}", timeout=30)]

        readers = [asyncio.create_task(read(s)) for s in range(streams)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PUBLISHER,
            redis_cluster.url,
            prefix,
            str(streams),
            str(tokens),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and out == b"published\n", err.decode()[-2000:]
        await asyncio.wait_for(asyncio.gather(*readers), 30)
    for s in range(streams):
        got = results[s]
        ids = [r.token_id for r in got if isinstance(r, inference.TokenResponse)]
        assert ids == list(range(tokens)), (s, ids[:10])
        assert isinstance(got[-1], inference.GeneratedTextResponse) and len(got) == tokens + 1


async def test_a_redis_cluster_client_is_taken_for_its_nodes_and_settings(redis_cluster: ClusterSet) -> None:
    """``Relay(RedisCluster(...))``: its startup nodes and connection settings (a client name here,
    on a client that decodes responses), without the client's own retries or decoding."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    first = redis_cluster.masters()[0]
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", first.port or 0)], decode_responses=True, client_name="mine"
    )
    try:
        async with Relay(client) as relay:
            assert relay.cluster is True  # a cluster client: known without asking
            mid = _mid("client")
            await relay.publish(mid, token(0))
            await relay.publish(mid, final())
            assert [m async for m in relay.stream(mid, timeout=10)] == [token(0), final()]
            names = [
                line
                for node in redis_cluster.masters()
                for line in redis_cluster.command(node, "CLIENT", "LIST").decode().splitlines()
                if "name=mine" in line
            ]
            assert names  # its connections carry the client's settings
    finally:
        await client.aclose()


async def test_a_bad_id_is_a_value_error_naming_it_on_a_cluster_too(redis_cluster: ClusterSet) -> None:
    async with Relay(redis_cluster.url) as relay:
        await relay.connect()
        for bad in ("", "\ud800", 7):
            with pytest.raises(ValueError, match="message_id"):
                await relay.publish(bad, token(0))  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="message_id"):
                relay.publisher().send(bad, token(0))  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="compat_hash"):
                await relay.enqueue_work(bad, "m")  # type: ignore[arg-type]


async def test_a_relay_with_another_number_of_shards_is_refused(redis_cluster: ClusterSet) -> None:
    """Relays that disagree on ``cluster_shards`` would put a message's frames where the other
    relays never read: the first records the number, another is refused saying so."""
    async with Relay(redis_cluster.url) as relay:
        await relay.connect()  # (the default, 24: recorded by the first relay on this cluster)
    async with Relay(redis_cluster.url, cluster_shards=16) as other:
        with pytest.raises(RelayError, match="over 24 shards, and this one over 16") as info:
            await other.connect()
        assert "relay:cluster_shards:" in str(info.value)
        pub = other.publisher()
        pub.send("m", token(0))
        with pytest.raises(RelayError, match="every process must use the same cluster_shards"):
            await pub.flush()
        with pytest.raises(RelayError, match="cluster_shards"):
            async for _ in other.stream("m", timeout=5):
                pass
