"""``Shard``: what a relay runs on one Redis, or on one shard of a Redis Cluster (``_cluster``):
its connections, group commit, reader, give-backs and work queues, all under one key layout."""

from __future__ import annotations

from dataclasses import dataclass

from oasst_shared.relay._commit import GroupCommit
from oasst_shared.relay._connector import Connector
from oasst_shared.relay._drain import DrainWire
from oasst_shared.relay._errors import RelayError
from oasst_shared.relay._giveback import GiveBacks
from oasst_shared.relay._keys import KeyLayout
from oasst_shared.relay._link import Link
from oasst_shared.relay._reader import Reader
from oasst_shared.relay._work import WorkQueues

__all__ = ["Shard", "ShardSettings"]


@dataclass(frozen=True)
class ShardSettings:
    """The relay's settings each shard is built with."""

    expire: int
    max_length: int
    max_frame_size: int
    work_max_size: int
    read_interval: float
    stream_buffer: int
    retry_window: float


class Shard:
    """The parts of a relay over one key layout, on the connections ``connector`` makes: three
    connections (publish, control, the reader's blocking one) and the work queues' own."""

    def __init__(self, connector: Connector, keys: KeyLayout, settings: ShardSettings) -> None:
        self.connector = connector
        self.keys = keys
        control = Link(connector, "control", blocking=False)
        self.links = (
            Link(connector, "publish", blocking=False),
            control,
            Link(connector, "reader", blocking=True),
        )
        self.commit = GroupCommit(
            self.links[0],
            expire=settings.expire,
            max_length=settings.max_length,
            max_frame_size=settings.max_frame_size,
            keys=keys,
        )
        self.reader = Reader(
            self.links[2],
            control,
            GiveBacks(control),
            read_interval=settings.read_interval,
            stream_buffer=settings.stream_buffer,
            backup_expire=settings.expire,
            retry_window=settings.retry_window,
            wire=DrainWire(settings.expire, keys.tag),
        )
        self.work = WorkQueues(
            connector, control, expire=settings.expire, max_size=settings.work_max_size, keys=keys
        )

    async def stop(self) -> None:
        """Send what was published; give back what streams hold; refuse publishes from now on."""
        await self.commit.wait_idle()
        self.commit.accepting = False
        await self.reader.stop()

    async def close(self) -> None:
        """After ``stop`` (and the connector closed): fail what is left, close the connections."""
        await self.commit.close(RelayError("the relay was closed", key=None, operation="publish"))
        self.reader.fail_all(RelayError, "the relay was closed")
        for link in self.links:
            await link.close()
        await self.work.close()
