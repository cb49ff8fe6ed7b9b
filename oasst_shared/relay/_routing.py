"""``Shards``: a relay's shards (one on a single Redis, ``cluster_shards`` on a Redis Cluster),
which one a message or a work queue belongs to, and the first connection that decides which.

The key layout depends on whether the URL names a single Redis or a Cluster node, and a plain
``redis://`` URL does not say: the relay asks (``INFO cluster``) on its first use. On a cluster
it also checks that the cluster's other relays use its number of shards (``_check_layout``).
Frames sent with ``Publisher.send`` before that is done wait here, in order, and join their
shards' group commits as soon as it is (or fail with its error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

from redis.crc import key_slot
from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError

from oasst_shared.relay._cluster import ShardConnector, Topology, cluster_tags, shard_of
from oasst_shared.relay._commit import Batch, Frame, Owner, Tally, checked_frame
from oasst_shared.relay._connector import Connector
from oasst_shared.relay._errors import RelayConnectionError, RelayError, readdressed
from oasst_shared.relay._keys import REFERENCE_KEYS, KeyLayout, check_id, message_queue_key
from oasst_shared.relay._link import BACKOFF, NETWORK_ERRORS, reply_int
from oasst_shared.relay._server import cluster_mode
from oasst_shared.relay._shard import Shard, ShardSettings
from oasst_shared.schemas import inference

__all__ = ["Shards"]

SETUP_OP: Final = "first connection: INFO cluster"
LAYOUT: Final = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.pcall('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
"""The cluster's ``cluster_shards``, recorded by the first relay (a refused write: not recorded)."""


class Shards:
    """The shards of one relay. ``cluster``: True or False when the URL says (several nodes,
    Sentinel, a unix socket), None to ask the server on first use."""

    def __init__(
        self,
        connector: Connector,
        settings: ShardSettings,
        *,
        cluster: bool | None,
        startup: list[tuple[str, int]],
        cluster_shards: int,
    ) -> None:
        self.connector = connector
        self.settings = settings
        self._startup = startup
        self._count = cluster_shards
        self.all: list[Shard] | None = None
        """The shards, once the layout is known."""
        self.cluster = cluster
        """True on a Redis Cluster, False on a single Redis, None until known."""
        self._early: list[tuple[str, bytes, Owner]] = []
        self._setup: asyncio.Task[None] | None = None
        if cluster is False:
            self.all = [Shard(connector, REFERENCE_KEYS, settings)]

    def _cluster_shards(self) -> list[Shard]:
        topology = Topology(self.connector, self._startup)
        return [
            Shard(ShardConnector(self.connector, topology, slot), KeyLayout(tag), self.settings)
            for tag in cluster_tags(self._count)
            for slot in (key_slot(tag[1:-1].encode()),)
        ]

    async def _check_layout(self, first: Shard) -> None:
        """Every relay on a cluster must spread its keys over the same shards: the first to
        connect records its ``cluster_shards`` (``relay:cluster_shards:{tag}``, in the first
        shard's slot, never expiring), and a relay with another count is refused, rather than
        publish where no reader of the others looks."""
        key = f"relay:cluster_shards:{first.keys.tag}"
        op = f"{SETUP_OP} (cluster_shards)"
        reply = await first.links[1].call(
            ["EVAL", LAYOUT, 1, key, self._count], op=op, key=key, idempotent=True
        )
        recorded = reply_int(reply, op=op, key=key)
        if recorded != self._count:
            raise RelayError(
                f"the relays on this cluster spread their keys over {recorded} "
                f"shards, and this one over {self._count}: every process must use the same "
                f"cluster_shards (to change it, stop them all and delete {key})",
                key=key,
                operation=op,
            )

    # ------------------------------------------------------------------ routing

    def of(self, name: str) -> Shard:
        """The shard of a message id or a compat hash (the layout is known)."""
        shards = self.all
        assert shards is not None
        if len(shards) == 1:
            return shards[0]
        return shards[shard_of(name, len(shards))]

    async def shard(self, name: str, key: str, op: str) -> Shard:
        """The shard of a message id or a compat hash, once the layout is known (an error in
        finding it out is about ``key``, the caller's, and its ``op``)."""
        if self.all is None:
            try:
                await self.ready()
            except RelayError as exc:
                raise readdressed(exc, key, f"{op} ({SETUP_OP})") from exc.__cause__
        return self.of(name)

    def enqueue(self, message_id: str, frame: Frame | inference.WorkerResponse, owner: Owner) -> None:
        """A frame for ``message_id``'s shard's next round trip (or, before the layout is known,
        checked now and held until it is)."""
        shards = self.all
        if shards is not None:
            if len(shards) == 1:
                shards[0].commit.enqueue(message_id, frame, owner)
            else:  # (the id checked before it picks a shard)
                self.of(check_id("message_id", message_id)).commit.enqueue(message_id, frame, owner)
            return
        check_id("message_id", message_id)
        self.connector.check_open("publish", message_queue_key(message_id))
        data = checked_frame(message_queue_key(message_id), frame, self.settings.max_frame_size)
        self._early.append((message_id, data, owner))
        self._start_setup()

    def withdraw(self, tally: Tally) -> None:
        """A frame of ``tally`` failed: its frames not yet sent stay out, in every shard."""
        if self._early:
            kept = [e for e in self._early if e[2] is not tally]
            withdrawn = len(self._early) - len(kept)
            self._early = kept
            if withdrawn:
                tally.settled(withdrawn)
        for shard in self.all or ():
            shard.commit.withdraw(tally)

    # ------------------------------------------------------------------ the first connection

    async def ready(self) -> list[Shard]:
        """The shards; asks the server for the layout first if it is not known (retrying until
        the relay's ``retry_timeout``; ``RelayConnectionError`` then, and the next call asks again)."""
        if self.all is not None:
            return self.all
        task = self._start_setup()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # (the relay closed while asking: the caller was not cancelled)
                raise RelayError("the relay was closed", key=None, operation=SETUP_OP) from None
            raise
        shards: list[Shard] | None = self.all  # (set by the setup)
        assert shards is not None
        return shards

    def _start_setup(self) -> asyncio.Task[None]:
        if self._setup is None or self._setup.done():
            self._setup = asyncio.get_running_loop().create_task(self._detect())
            # (its error reaches the frames that waited and every caller of ready; none may be left)
            self._setup.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self._setup

    async def _detect(self) -> None:
        candidates: list[Shard] = []
        try:
            cluster = self.cluster if self.cluster is not None else await self._ask()
            if cluster:
                candidates = self._cluster_shards()
                await self._check_layout(candidates[0])
        except BaseException as exc:
            if candidates:
                await candidates[0].links[1].close()
            early, self._early = self._early, []
            if early:
                err = (
                    exc
                    if isinstance(exc, RelayError)
                    else RelayError("the relay was closed", key=None, operation="publish")
                    if isinstance(exc, asyncio.CancelledError)
                    else RelayError(f"setting up failed: {exc!r}", key=None, operation=SETUP_OP)
                )
                batch = Batch()
                for message_id, data, owner in early:
                    batch.add(self._key_of(message_id).encode(), data, owner)
                batch.fail(readdressed(err, None, f"publish ({SETUP_OP})"))
            raise
        self.cluster = cluster
        self.all = candidates or [Shard(self.connector, REFERENCE_KEYS, self.settings)]
        early, self._early = self._early, []
        for message_id, data, owner in early:  # in order, before any frame sent after them
            shard = self.of(message_id)
            shard.commit.add(shard.keys.message(message_id).encode(), data, owner)

    def _key_of(self, message_id: str) -> str:
        """A message's queue key before the shards exist (for the errors of frames that waited)."""
        if not self.cluster:
            return message_queue_key(message_id)
        return KeyLayout(cluster_tags(self._count)[shard_of(message_id, self._count)]).message(message_id)

    async def _ask(self) -> bool:
        """Whether the URL's server is a Redis Cluster node."""
        connector = self.connector
        started = time.monotonic()
        attempts = BACKOFF.until(started + connector.retry_timeout)
        while True:
            connector.check_open(SETUP_OP, None)
            conn = connector.new_connection(blocking=False)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                return await cluster_mode(conn)
            except AuthenticationError as exc:
                raise RelayConnectionError(
                    f"Redis refused the credentials: {exc}", key=None, operation=SETUP_OP
                ) from exc
            except (*NETWORK_ERRORS, BusyLoadingError) as exc:
                down = time.monotonic() - started
                message = f"cannot connect to Redis: unreachable for {down:.1f} s ({exc})"
                await attempts.again(exc, message, key=None, op=SETUP_OP)
            except RedisError as exc:  # the handshake was refused (e.g. no such database)
                raise RelayConnectionError(
                    f"Redis refused the connection: {exc}", key=None, operation=SETUP_OP
                ) from exc
            finally:
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)

    async def close(self) -> None:
        """Stop asking; fail the frames that waited for the answer."""
        if self._setup is not None and not self._setup.done():
            self._setup.cancel()
            with contextlib.suppress(BaseException):
                await self._setup
        early, self._early = self._early, []
        if early:
            batch = Batch()
            for message_id, data, owner in early:
                batch.add(message_queue_key(message_id).encode(), data, owner)
            batch.fail(RelayError("the relay was closed", key=None, operation="publish"))
