"""A Redis Cluster on 127.0.0.1 (3 masters with one replica each by default), ``redis-server``
processes of the binary the tests use, formed with cluster commands only (no ``redis-cli --cluster``)::

    with running_cluster() as cl:          # ready: every slot covered, cluster_state:ok everywhere
        client = redis.cluster.RedisCluster.from_url(cl.url)
        slot = cl.key_slot("{user1}:a")
        cl.migrate_slot(slot, cl.masters()[1])   # resharding: the slot and its keys move
        victim = cl.node_for_slot(slot)
        cl.kill_master(victim)             # SIGKILL: its replica is promoted by the cluster
        cl.wait_failover(victim)           # returns once the survivors agree it is

The nodes run with ``cluster-node-timeout`` (1000 ms by default: a killed master is failed over
in about 2-3 s), ``cluster-replica-validity-factor 0`` (a replica is always allowed to take over,
however long its link has been down) and ``cluster-require-full-coverage no``: while a killed
master's slots wait for its replica to be promoted, the other masters keep serving theirs (only
the keys of the dead master's slots fail), which is what a client in production sees.

``start()`` takes a little over 2 s, however fast the nodes meet: a Redis master does not turn
``cluster_state:ok`` until 2 s after its first cluster cron (``CLUSTER_WRITABLE_DELAY``).

Ports are at most 55535: Redis listens for the cluster bus on the port + 10000.
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.crc import key_slot as _crc_key_slot
from redis.retry import Retry

from tests.support.redis_server import RedisServer

__all__ = ["MIGRATION_STEPS", "ClusterSet", "running_cluster"]

SLOTS = REDIS_CLUSTER_HASH_SLOTS  # 16384
HOST = "127.0.0.1"
POLL = 0.01
_BUS_OFFSET = 10000
_MAX_PORT = 65535 - _BUS_OFFSET

#: The step names ``migrate_slot(..., between=f)`` passes to ``f``, in order ("batch" once per
#: MIGRATE of up to ``batch`` keys; "target-owns": the target has taken the slot, the source is still
#: MIGRATING it and the other masters still name the source).
MIGRATION_STEPS = ("importing", "migrating", "batch", "keys-moved", "target-owns", "done")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(1000):
        port = random.randint(20000, _MAX_PORT)
        if _bindable(port) and _bindable(port + _BUS_OFFSET):
            return port
    raise RuntimeError("found no free port pair (port, port + 10000) on 127.0.0.1")  # pragma: no cover


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterSet:
    """The nodes of one cluster; ``nodes`` lists the masters first, then the replicas (those of
    master 0, then of master 1, ...) as they were formed (``masters()`` asks who is master now)."""

    def __init__(
        self, *, masters: int = 3, replicas_per_master: int = 1, node_timeout_ms: int = 1000
    ) -> None:
        if masters < 1 or replicas_per_master < 0:
            raise ValueError("a cluster needs at least one master and no negative replica count")
        self._dir = tempfile.mkdtemp(prefix="oasst-cluster-")
        self._node_timeout_ms = node_timeout_ms
        self._n_masters = masters
        self._replicas_per_master = replicas_per_master
        self.nodes: list[RedisServer] = []
        for i in range(masters * (1 + replicas_per_master)):
            args = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"{self._dir}/nodes-{i}.conf",
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-replica-validity-factor",
                "0",
                "--cluster-require-full-coverage",
                "no",
                "--appendonly",
                "no",
                # disk-based full sync starts at once (a diskless one waits repl-diskless-sync-delay,
                # 5 s by default on Redis >= 7)
                "--repl-diskless-sync",
                "no",
            )
            node = RedisServer(extra_args=args)
            self._set_port(node, _cluster_port())
            self.nodes.append(node)
        self._clients: dict[int, redis.Redis] = {}
        self._ids: dict[int, str] = {}
        # formed topology: master index -> its replicas (indexes into self.nodes)
        self._replicas_of = {
            m: [masters + m * replicas_per_master + r for r in range(replicas_per_master)]
            for m in range(masters)
        }
        # what kill_master() saw before the kill: killed port -> (its slots, its replicas' ports)
        self._killed: dict[int, tuple[list[int], list[int]]] = {}

    # -- addresses -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the first node still running (master 0 until it is killed)."""
        for node in self.nodes:
            if node.running:
                return f"redis://{HOST}:{node.port}/0"
        return f"redis://{HOST}:{self.nodes[0].port}/0"

    @property
    def addresses(self) -> list[str]:
        """``"127.0.0.1:<port>"`` of every node (masters first)."""
        return [f"{HOST}:{node.port}" for node in self.nodes]

    @property
    def startup_urls(self) -> list[str]:
        """``redis://127.0.0.1:<port>/0`` of every node (masters first)."""
        return [f"redis://{a}/0" for a in self.addresses]

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, assign the slots, join them and attach the replicas; return once every
        node says ``cluster_state:ok``, sees every slot covered and every master with its replicas,
        and every replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        self._start_processes()
        for i, node in enumerate(self.nodes):
            self._ids[self._port(node)] = _text(self.command(node, "CLUSTER", "MYID"))
            # distinct epochs up front, as redis-cli does: no epoch-collision rounds after the meet
            self.command(node, "CLUSTER", "SET-CONFIG-EPOCH", str(i + 1))
        bounds = [SLOTS * m // self._n_masters for m in range(self._n_masters + 1)]
        for m in range(self._n_masters):
            self.command(self.nodes[m], "CLUSTER", "ADDSLOTS", *map(str, range(bounds[m], bounds[m + 1])))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.command(first, "CLUSTER", "MEET", HOST, str(node.port))
        self._wait(self._all_known, deadline, "every node to know every other node")
        for m, replicas in self._replicas_of.items():
            master_id = self.node_id(self.nodes[m])
            for r in replicas:
                self.command(self.nodes[r], "CLUSTER", "REPLICATE", master_id)
        self._wait(self._formed, deadline, "the cluster to be formed")

    def _start_processes(self) -> None:
        for node in self.nodes:
            for attempt in range(3):  # a free port may be taken between probing and binding
                try:
                    node.start()
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    self._set_port(node, _cluster_port())

    def close(self) -> None:
        """SIGKILL every node and remove every temp directory."""
        for client in self._clients.values():
            with suppress(Exception):
                client.close()
        self._clients.clear()
        for node in self.nodes:
            node.stop(kill=True)
            node.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- queries -------------------------------------------------------------------------------

    def node_id(self, node: RedisServer) -> str:
        """The node's cluster id (``CLUSTER MYID``; it never changes)."""
        port = self._port(node)
        if port not in self._ids:
            self._ids[port] = _text(self.command(node, "CLUSTER", "MYID"))
        return self._ids[port]

    def masters(self) -> list[RedisServer]:
        """The running nodes that say (``ROLE``) they are masters, in ``nodes`` order."""
        found = []
        for node in self.nodes:
            if not node.running:
                continue
            with suppress(redis.RedisError, OSError):
                if _text(self.command(node, "ROLE")[0]) == "master":
                    found.append(node)
        return found

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """The running nodes that say (``ROLE``) they replicate ``master``."""
        found = []
        for node in self.nodes:
            if node is master or not node.running:
                continue
            with suppress(redis.RedisError, OSError):
                role = self.command(node, "ROLE")
                if _text(role[0]) == "slave" and int(role[2]) == master.port:
                    found.append(node)
        return found

    @staticmethod
    def key_slot(key: str | bytes) -> int:
        """The hash slot of ``key`` (hash tags respected), as ``CLUSTER KEYSLOT`` computes it."""
        return int(_crc_key_slot(key.encode() if isinstance(key, str) else key))

    def node_for_slot(self, slot: int) -> RedisServer:
        """The master that owns ``slot`` now: the running master whose own ``CLUSTER SLOTS`` names
        itself for it (the first such in ``nodes`` order: mid-migration, after ``"target-owns"``,
        both the target and the source still claim it)."""
        for node in self.masters():
            with suppress(redis.RedisError, OSError):
                if self.slot_owners(node)[slot] == node.port:
                    return node
        raise RuntimeError(f"no running master claims slot {slot}")

    def slot_owners(self, node: RedisServer) -> list[int | None]:
        """Per slot, the port of its master as ``node``'s ``CLUSTER SLOTS`` says (None: uncovered)."""
        return [owner for owner, _ in self._slot_table(node)]

    def cluster_info(self, node: RedisServer) -> dict[str, str]:
        """``node``'s ``CLUSTER INFO`` as a dict of strings."""
        info = {}
        for line in _text(self.command(node, "CLUSTER", "INFO")).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return info

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain (non-cluster) sync client of ``node`` without retries; replies are bytes."""
        port = self._port(node)
        if port not in self._clients:
            self._clients[port] = redis.Redis(
                host=HOST,
                port=port,
                socket_timeout=5.0,
                socket_connect_timeout=1.0,
                retry=Retry(NoBackoff(), 0),
            )
        return self._clients[port]

    def command(self, node: RedisServer, *args: str | bytes | int) -> Any:
        """One command to ``node`` through ``client(node)``; the raw reply (bytes, ints, lists: the
        multi-word commands, ``CLUSTER ...``, get no redis-py parsing)."""
        execute: Callable[..., Any] = self.client(node).execute_command  # (an untyped def)
        return execute(*args)

    # -- faults and resharding -----------------------------------------------------------------

    def kill_master(self, node: RedisServer) -> None:
        """SIGKILL the master ``node`` (a crash), noting its slots and replicas for ``wait_failover``."""
        if node not in self.masters():
            raise RuntimeError(f"127.0.0.1:{node.port} is not a running master")
        table = self._slot_table(node)
        slots = [s for s, (owner, _) in enumerate(table) if owner == node.port]
        listed = {p for owner, reps in table if owner == node.port for p in reps}
        replicas = sorted(listed | {self._port(r) for r in self.replicas_of(node)})
        self._killed[self._port(node)] = (slots, replicas)
        node.stop(kill=True)
        client = self._clients.pop(self._port(node), None)
        if client is not None:
            client.close()

    def wait_failover(self, killed: RedisServer, timeout: float = 30.0) -> float:
        """Wait until one former replica of ``killed`` (a node ``kill_master`` killed) is master and
        owns all its slots in every running node's ``CLUSTER SLOTS``, and ``cluster_state:ok``
        everywhere; the seconds waited."""
        port = self._port(killed)
        if port not in self._killed:
            raise ValueError(f"127.0.0.1:{port} was not killed by kill_master()")
        slots, replicas = self._killed[port]
        if not replicas:
            raise RuntimeError(f"127.0.0.1:{port} had no replica to fail over to")
        started = time.monotonic()

        def missing() -> str | None:
            owners: set[int | None] = set()
            for node in self.nodes:
                if not node.running:
                    continue
                info = self.cluster_info(node)
                if info.get("cluster_state") != "ok":
                    return f"127.0.0.1:{node.port} says cluster_state:{info.get('cluster_state')}"
                table = self.slot_owners(node)
                owners |= {table[s] for s in slots}
            if len(owners) != 1 or next(iter(owners)) not in replicas:
                return (
                    f"the killed master's slots are owned by {owners}, not by one of its replicas {replicas}"
                )
            winner = next(iter(owners))
            promoted = next(n for n in self.nodes if n.port == winner)
            if _text(self.command(promoted, "ROLE")[0]) != "master":
                return f"127.0.0.1:{winner} does not say ROLE master yet"
            return None

        self._wait(missing, started + timeout, f"the failover of 127.0.0.1:{port}")
        return time.monotonic() - started

    def migrate_slot(
        self,
        slot: int,
        target: RedisServer,
        *,
        between: Callable[[str], None] | None = None,
        batch: int = 100,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> None:
        """Move ``slot`` and all its keys from its owner to the master ``target``, the way
        ``redis-cli --cluster reshard`` does: ``SETSLOT IMPORTING`` on the target, ``SETSLOT
        MIGRATING`` on the source, ``GETKEYSINSLOT`` + ``MIGRATE ... KEYS`` in batches of ``batch``
        until the slot is empty, then ``SETSLOT NODE`` on the target, the source and the other masters.

        ``between(step)`` (if given) is called after each step, ``step`` one of ``MIGRATION_STEPS``:
        a test can act there (write, read, sleep: a slow migration). With ``wait`` (the default)
        this returns once every running node's ``CLUSTER SLOTS`` names the target (replicas learn
        it by gossip).
        """
        source = self.node_for_slot(slot)
        if source is target:
            return
        if target not in self.masters():
            raise RuntimeError(f"127.0.0.1:{target.port} is not a running master")
        step = between or (lambda _name: None)
        src_id, dst_id = self.node_id(source), self.node_id(target)
        self.command(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id)
        step("importing")
        self.command(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id)
        step("migrating")
        while True:
            keys = self.command(source, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch))
            if not keys:
                break
            self.command(source, "MIGRATE", HOST, str(target.port), "", "0", "5000", "KEYS", *keys)
            step("batch")
        step("keys-moved")
        self.command(target, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
        step("target-owns")
        self.command(source, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
        for node in self.masters():
            if node is not source and node is not target:
                self.command(node, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
        if wait:

            def missing() -> str | None:
                for node in self.nodes:
                    if node.running and self.slot_owners(node)[slot] != target.port:
                        return f"127.0.0.1:{node.port} names {self.slot_owners(node)[slot]}"
                return None

            self._wait(
                missing, time.monotonic() + timeout, f"every node to name the new owner of slot {slot}"
            )
        step("done")

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _port(node: RedisServer) -> int:
        assert node.port is not None
        return node.port

    @staticmethod
    def _set_port(node: RedisServer, port: int) -> None:
        node.port = port
        node.url = f"redis://{HOST}:{port}/0"

    def _slot_table(self, node: RedisServer) -> list[tuple[int | None, list[int]]]:
        """Per slot: (master port, replica ports) from ``node``'s ``CLUSTER SLOTS``."""
        table: list[tuple[int | None, list[int]]] = [(None, [])] * SLOTS
        for entry in self.command(node, "CLUSTER", "SLOTS"):
            start, end, master, *replicas = entry
            row = (int(master[1]), [int(r[1]) for r in replicas])
            for s in range(int(start), int(end) + 1):
                table[s] = row
        return table

    def _known(self, node: RedisServer) -> dict[str, list[str]]:
        """``node``'s ``CLUSTER NODES``: node id -> the rest of its line, split."""
        known = {}
        for line in _text(self.command(node, "CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if len(fields) >= 8:
                known[fields[0]] = fields[1:]
        return known

    def _all_known(self) -> str | None:
        ids = set(self._ids.values())
        for node in self.nodes:
            known = self._known(node)
            if set(known) != ids:
                return f"127.0.0.1:{node.port} knows {len(set(known) & ids)} of {len(ids)} nodes"
            if any("handshake" in fields[1] or "noaddr" in fields[1] for fields in known.values()):
                return f"127.0.0.1:{node.port} is still in a handshake"
        return None

    def _formed(self) -> str | None:
        expected: list[tuple[int | None, list[int]]] = [(None, [])] * SLOTS
        bounds = [SLOTS * m // self._n_masters for m in range(self._n_masters + 1)]
        for m, replicas in self._replicas_of.items():
            row = (self.nodes[m].port, sorted(self._port(self.nodes[r]) for r in replicas))
            expected[bounds[m] : bounds[m + 1]] = [row] * (bounds[m + 1] - bounds[m])
        for node in self.nodes:
            info = self.cluster_info(node)
            if info.get("cluster_state") != "ok":
                return f"127.0.0.1:{node.port} says cluster_state:{info.get('cluster_state')}"
            table = [(owner, sorted(reps)) for owner, reps in self._slot_table(node)]
            if table != expected:
                wrong = sum(1 for a, b in zip(table, expected, strict=True) if a != b)
                return f"127.0.0.1:{node.port}'s CLUSTER SLOTS differs from the plan in {wrong} slots"
        for replicas in self._replicas_of.values():
            for r in replicas:
                status = self.client(self.nodes[r]).info("replication").get("master_link_status")
                if status != "up":
                    return f"replica 127.0.0.1:{self.nodes[r].port}'s link to its master is {status}"
        return None

    @staticmethod
    def _wait(missing: Callable[[], str | None], deadline: float, what: str) -> None:
        """Poll ``missing`` (None: done; else what is not there yet) until ``deadline``."""
        last = "no answer"
        started = time.monotonic()
        while True:
            try:
                gap = missing()
            except (redis.RedisError, OSError) as exc:
                gap = f"{type(exc).__name__}: {exc}"
            if gap is None:
                return
            last = gap
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        raise RuntimeError(f"timed out after {time.monotonic() - started:.1f} s waiting for {what}: {last}")


@contextmanager
def running_cluster(
    *, masters: int = 3, replicas_per_master: int = 1, node_timeout_ms: int = 1000
) -> Iterator[ClusterSet]:
    """A started, ready :class:`ClusterSet`; every node is killed and cleaned up on exit."""
    cluster = ClusterSet(
        masters=masters, replicas_per_master=replicas_per_master, node_timeout_ms=node_timeout_ms
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
