"""Redis Cluster: the relay's key layout on a cluster, the slot map, and the connections that
follow it.

**Layout.** A script may only touch keys of one hash slot, and the reference's keys carry no
hash tag (each ``message:<id>`` sits in a slot of its own). On a cluster the relay therefore
splits its keys into ``shards`` shards, each named by a hash tag: a message's keys carry the tag
of the shard its id falls in (``zlib.crc32(message_id) % shards``), a work queue's keys the tag
of the shard its compat hash falls in::

    message:{r7}<message_id>          relay:reader:{r7}<message_id>
    relay:bell:{r7}<reader id>        relay:inflight:{r7}<reader id>
    work:{r3}<compat_hash>            ctr_enq:work:{r3}<compat_hash>   ctr_deq:work:{r3}<compat_hash>
    pos:{r3}<message_id>

Each shard is then what one Redis is to the single-node relay (its flushes, drains, doorbells,
work queues: one script call per shard per round), run on the node that owns the shard's slot.
The tags are chosen so their slots are spread evenly over the 16,384 (tag ``i`` hashes into the
``i``-th of ``shards`` equal slot ranges), so masters that own equal slot ranges carry equal
numbers of shards. Every process of a deployment must use the same ``shards``.

**Routing.** ``Topology`` holds the slot map (``CLUSTER SLOTS``), refreshed from any node that
answers when a connection fails or a node answers ``MOVED``. ``ShardConnector`` makes a shard's
connections to the current owner of its slot.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Sequence
from itertools import count
from typing import Any, Final

from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from oasst_shared.relay._connector import Connector
from oasst_shared.relay._errors import RelayConnectionError
from oasst_shared.relay._link import NETWORK_ERRORS

__all__ = [
    "DEFAULT_CLUSTER_SHARDS",
    "SLOTS",
    "ShardConnector",
    "Topology",
    "cluster_tags",
    "parse_addresses",
    "shard_of",
]

SLOTS: Final = 16384
DEFAULT_CLUSTER_SHARDS: Final = 24
"""Shards of the cluster layout (``Relay``'s ``cluster_shards``): an equal number on each of 2, 3,
4, 6, 8, 12 or 24 masters that own equal slot ranges (16 left 3 masters with 6, 5 and 5: a node
spread of 1.3x at 20,000 tok/s, 1.02-1.07x with 24); every shard costs each process three
connections."""
REFRESH_EVERY: Final = 0.05
"""Seconds between two reads of the slot map, at least (a burst of failures reads it once)."""


def cluster_tags(shards: int) -> list[str]:
    """The hash tags (with their braces) of ``shards`` shards, tag ``i`` in slot range ``i``."""
    tags = []
    for i in range(shards):
        for n in count():
            tag = f"r{i}.{n}" if n else f"r{i}"
            if key_slot(tag.encode()) * shards // SLOTS == i:
                tags.append("{" + tag + "}")
                break
    return tags


def shard_of(name: str, shards: int) -> int:
    """The shard of a message id or a compat hash."""
    return zlib.crc32(name.encode()) % shards


def parse_addresses(url: str) -> tuple[str, list[tuple[str, int]]]:
    """``redis://[user:password@]host:port[,host:port...][/db]``: the URL of its first node (for
    the connection settings) and every node named."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    nodes = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"bad node address {part!r} in the Redis Cluster URL (want host:port)")
        nodes.append((host.strip("[]"), int(port)))
    first = f"{scheme}{sep}{userinfo}{at}{hosts.split(',')[0].strip()}{slash}{path}"
    return first, nodes


class Topology:
    """The cluster's slot map: which master owns each slot, read with ``CLUSTER SLOTS`` from
    any node that answers (the startup nodes, then every node seen since)."""

    def __init__(self, connector: Connector, startup: Sequence[tuple[str, int]]) -> None:
        self._connector = connector
        self.known: dict[tuple[str, int], None] = dict.fromkeys(startup)
        self._owner: list[tuple[str, int] | None] = [None] * SLOTS
        self._read_at = -float("inf")
        self._reading: asyncio.Future[None] | None = None
        self.version = 0
        """Counts the slot maps read: a connection made under an older one may be stale."""

    def owner(self, slot: int) -> tuple[str, int] | None:
        return self._owner[slot]

    def moved(self, slot: int, address: tuple[str, int]) -> None:
        """A node answered ``MOVED slot host:port``: that is the owner now."""
        self._owner[slot] = address
        self.known[address] = None

    async def refresh(self, *, op: str, key: str | None) -> None:
        """Read the slot map again (at most once per ``REFRESH_EVERY``; concurrent calls share
        one read). Raises ``RelayConnectionError`` when no known node answers."""
        if self._reading is not None:
            await asyncio.shield(self._reading)
            return
        if time.monotonic() - self._read_at < REFRESH_EVERY:
            return
        self._reading = asyncio.get_running_loop().create_future()
        try:
            await self._read(op=op, key=key)
            self._reading.set_result(None)
        except BaseException as exc:
            self._reading.set_exception(exc)
            self._reading.exception()  # (retrieved: the others get it from their await)
            raise
        finally:
            self._reading = None
            self._read_at = time.monotonic()

    async def _read(self, *, op: str, key: str | None) -> None:
        errors = []
        for address in list(self.known):
            conn = self._connector.connection_to(address)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("CLUSTER", "SLOTS")
                reply = await conn.read_response(disable_decoding=True)
            except (*NETWORK_ERRORS, RedisError) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            finally:
                await conn.disconnect(nowait=True)
            self._apply(reply, default_host=address[0])
            self.known = {address: None, **self.known}  # (asked first next time)
            return
        raise RelayConnectionError(
            f"no node of the Redis Cluster answered CLUSTER SLOTS ({'; '.join(errors)})",
            key=key,
            operation=op,
        )

    def _apply(self, reply: Any, *, default_host: str) -> None:
        owner: list[tuple[str, int] | None] = [None] * SLOTS
        for entry in reply or ():
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            host = bytes(master[0]).decode() or default_host
            address = (host, int(master[1]))
            for slot in range(start, end + 1):
                owner[slot] = address
            for node in entry[2:]:
                self.known[(bytes(node[0]).decode() or default_host, int(node[1]))] = None
        self._owner = owner
        self.version += 1


class ShardConnector(Connector):
    """A shard's connections: made to the master that owns ``slot`` in ``topology``, with the
    settings of ``base`` (and its closed flag)."""

    cluster = True

    def __init__(self, base: Connector, topology: Topology, slot: int) -> None:  # (no super: a copy)
        self._pool = base._pool
        self.connection_class = base.connection_class
        self.kwargs = base.kwargs
        self.command_timeout = base.command_timeout
        self.retry_timeout = base.retry_timeout
        self.state = base.state
        self.topology = topology
        self.slot = slot

    async def locate(self, *, op: str, key: str | None) -> None:
        if self.topology.owner(self.slot) is None:
            await self.topology.refresh(op=op, key=key)
            if self.topology.owner(self.slot) is None:
                raise RelayConnectionError(
                    f"no master of the Redis Cluster serves slot {self.slot}", key=key, operation=op
                )

    async def unreachable(self, *, op: str, key: str | None) -> None:
        await self.topology.refresh(op=op, key=key)

    def redirected(self, exc: ResponseError) -> bool:
        if isinstance(exc, MovedError):
            self.topology.moved(exc.slot_id, (exc.host, exc.port))
            return True
        return isinstance(exc, (AskError, TryAgainError, ClusterDownError))

    def new_connection(self, *, blocking: bool) -> AbstractConnection:
        address = self.topology.owner(self.slot)
        if address is None:  # (not known yet: it fails or answers MOVED, and the map is read again)
            address = next(iter(self.topology.known))
        return self.connection_to(address, blocking=blocking)
