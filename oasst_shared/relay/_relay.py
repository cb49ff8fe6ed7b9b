"""``Relay``: the public relay. Its settings, the wiring of its parts, and its public methods.

The parts, each in a module of its own, imports running one way (nothing imports this module
but the package's ``__init__``):

* ``_link``: connections and the one backoff policy; ``_scripts``: the Lua scripts;
* ``_commit``: the group commit (``Publisher`` in ``_publish`` holds it);
* ``_reader``: the one reader of every stream (``Subscription`` in ``_subscription`` reads it);
* ``_giveback``: frames going back to the head of their queue; ``_work``: the work queues.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, Final, Literal, overload

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError
from oasst_shared.relay._cluster import DEFAULT_CLUSTER_SHARDS, parse_addresses
from oasst_shared.relay._connector import Connector
from oasst_shared.relay._errors import RelayDecodeError
from oasst_shared.relay._keys import check_id, work_queue_key
from oasst_shared.relay._publish import DEFAULT_PUBLISHER_LIMIT, Publisher
from oasst_shared.relay._routing import Shards
from oasst_shared.relay._shard import ShardSettings
from oasst_shared.relay._subscription import Subscription
from oasst_shared.relay._work import QueuePosition
from oasst_shared.schemas import inference

__all__ = [
    "DEFAULT_MESSAGE_QUEUE_EXPIRE",
    "DEFAULT_MESSAGE_QUEUE_MAX_LENGTH",
    "DEFAULT_STREAM_BUFFER",
    "DEFAULT_WORK_QUEUE_MAX_SIZE",
    "TERMINAL_RESPONSE_TYPES",
    "Relay",
]

DEFAULT_MESSAGE_QUEUE_EXPIRE: Final = 60
"""Seconds a message queue lives after its last push (the reference's ``message_queue_expire``);
also the expiry of the ``pos:{message_id}`` keys, as in the reference."""

DEFAULT_WORK_QUEUE_MAX_SIZE: Final[int | None] = None
"""The reference's ``work_queue_max_size``: no limit unless configured."""

DEFAULT_MESSAGE_QUEUE_MAX_LENGTH: Final[int | None] = 65536
"""Most frames a message queue may hold before a publish to it raises ``QueueFullError``
(the reference has no limit; this bounds a queue whose reader went away)."""

DEFAULT_STREAM_BUFFER: Final = 4096
"""Frames a stream holds in the process before the reader stops draining its queue (``Relay``'s
``stream_buffer``)."""

TERMINAL_RESPONSE_TYPES: Final = frozenset(
    {"generated_text", "internal_finished_message", "error", "internal_error"}
)
"""Response types after which the reference's event stream stops reading a message queue."""


class Relay:
    """The inference server's token relay over Redis, with the reference server's keys.

    ``redis_or_url`` is a ``redis.asyncio.Redis`` client (its connection settings are used;
    the relay opens its own connections, so the client's retry policy never resends a
    relay write; a Sentinel-managed client's connections follow its master), a
    ``redis.asyncio.cluster.RedisCluster`` client (its startup nodes and connection settings) or a URL
    (``redis://``, ``rediss://``, ``unix://``, or
    ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``). A
    ``redis://`` URL (or client) may name any node of a Redis Cluster, and
    ``redis://[user:password@]host:port,host:port...`` names several (startup nodes): the first
    connection asks the server, and on a cluster the relay spreads its keys over
    ``cluster_shards`` hash tags (``message:{r7}<id>``: see the server guide's cluster section);
    on a single Redis it uses the reference's key names.

    - ``message_queue_expire``: seconds a ``message:{id}`` queue lives after a push (and the
      expiry of ``pos:{id}``), the reference's ``message_queue_expire`` (60).
    - ``work_queue_max_size``: the reference's ``work_queue_max_size`` (None: no limit).
    - ``message_queue_max_length``: most frames a message queue holds (None: no limit).
    - ``retry_timeout``: how long a connection refused/reset before a command is retried.
    - ``command_timeout``: longest wait for a non-blocking command's reply.
    - ``connect_timeout``: longest wait for one connection attempt.
    - ``read_interval``: while frames keep arriving, the stream reader starts a round trip at
      most once per this many seconds (default 1 ms), so the frames of that interval share it;
      a frame that arrives when the reader is idle is delivered at once. 0: read again as soon
      as a round trip ends (lowest latency, most round trips and most Redis work per frame).
      A round that scans every open stream's key is also spaced by 1 us per open stream (10 ms
      for 10,000 streams), so that scanning idle streams stays a small share of a Redis core.
    - ``stream_buffer``: most frames a stream holds in this process (drained from Redis, not
      yet taken by its consumer) before the reader leaves its queue alone until the consumer
      catches up (4096; a round in flight may add one drain's worth). Frames then wait in
      Redis, where ``message_queue_max_length`` bounds them: a consumer that stops reading
      costs this process a bounded amount of memory.
    - ``max_frame_size``: the largest frame, in bytes, that a publish accepts and a stream
      decodes (``codec.DEFAULT_MAX_FRAME_SIZE``, 16 MiB): a larger one is refused at publish
      (``RelayFrameError``), so it never reaches a reader.
    - ``cluster_shards``: on a Redis Cluster, how many hash tags the keys are spread over (24);
      every process of a deployment must use the same. Each shard costs a process three
      connections (publish, control, the reader's) to the node that owns it, plus one per
      ``dequeue_work`` waiting at once.

    The settings are fixed at construction (the attributes say what they are).
    Use it as ``async with Relay(...) as relay:`` or call ``aclose``. It belongs to the
    event loop that first uses it. asyncio only: redis-py's asyncio client does not run on trio.
    """

    def __init__(
        self,
        redis_or_url: aioredis.Redis | RedisCluster | str,
        *,
        message_queue_expire: int = DEFAULT_MESSAGE_QUEUE_EXPIRE,
        work_queue_max_size: int | None = DEFAULT_WORK_QUEUE_MAX_SIZE,
        message_queue_max_length: int | None = DEFAULT_MESSAGE_QUEUE_MAX_LENGTH,
        retry_timeout: float = 10.0,
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        read_interval: float = 0.001,
        stream_buffer: int = DEFAULT_STREAM_BUFFER,
        max_frame_size: int = codec.DEFAULT_MAX_FRAME_SIZE,
        cluster_shards: int = DEFAULT_CLUSTER_SHARDS,
    ) -> None:
        cluster: bool | None = None
        startup: list[tuple[str, int]] = []
        if isinstance(redis_or_url, str) and not redis_or_url.startswith(("redis://", "rediss://")):
            cluster = False  # a unix socket, a Sentinel-managed master
        elif isinstance(redis_or_url, str) and "," in redis_or_url.partition("://")[2].partition("/")[0]:
            redis_or_url, startup = parse_addresses(redis_or_url)
            cluster = True  # startup nodes: a cluster's
        connector = Connector(
            redis_or_url,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            retry_timeout=retry_timeout,
        )
        if connector.startup:  # a cluster client
            startup, cluster = connector.startup, True
        if not startup:
            host, port = connector.kwargs.get("host"), connector.kwargs.get("port")
            if isinstance(host, str) and isinstance(port, int) and "path" not in connector.kwargs:
                startup = [(host, port)]
            else:
                cluster = False
        if not isinstance(message_queue_expire, int) or message_queue_expire <= 0:
            raise ValueError(f"message_queue_expire must be a positive int, got {message_queue_expire!r}")
        for name, value in (
            ("work_queue_max_size", work_queue_max_size),
            ("message_queue_max_length", message_queue_max_length),
        ):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
        if not isinstance(read_interval, (int, float)) or not 0 <= read_interval <= 1:
            raise ValueError(f"read_interval must be a number of seconds in [0, 1], got {read_interval!r}")
        if not isinstance(stream_buffer, int) or isinstance(stream_buffer, bool) or stream_buffer < 1:
            raise ValueError(f"stream_buffer must be an int >= 1, got {stream_buffer!r}")
        if not isinstance(max_frame_size, int) or isinstance(max_frame_size, bool) or max_frame_size < 1:
            raise ValueError(f"max_frame_size must be an int >= 1, got {max_frame_size!r}")
        if type(cluster_shards) is not int or not 1 <= cluster_shards <= 1024:
            raise ValueError(f"cluster_shards must be an int in [1, 1024], got {cluster_shards!r}")
        self.message_queue_expire = message_queue_expire
        """Seconds a message queue (and a ``pos:`` key) lives after its last write."""
        self.work_queue_max_size = work_queue_max_size
        """Most message ids a work queue holds (None or 0: no limit), as the reference."""
        self.message_queue_max_length = message_queue_max_length
        """Most frames a message queue holds (None or 0: no limit)."""
        self.read_interval = float(read_interval)
        """While frames flow, the reader starts a round trip at most once per this many seconds."""
        self.stream_buffer = stream_buffer
        """Frames a stream holds in this process, drained and not yet taken, before the reader
        stops draining its queue until the consumer has taken them."""
        self.max_frame_size = max_frame_size
        """The largest frame (bytes) a publish accepts and a stream decodes."""
        self.cluster_shards = cluster_shards
        """Shards of the key layout on a Redis Cluster (``_cluster``): the same in every process."""
        self._connector = connector
        self._shards = Shards(
            connector,
            ShardSettings(
                expire=message_queue_expire,
                max_length=message_queue_max_length or 0,
                max_frame_size=max_frame_size,
                work_max_size=work_queue_max_size or 0,
                read_interval=self.read_interval,
                stream_buffer=stream_buffer,
                retry_window=retry_timeout,
            ),
            cluster=cluster,
            startup=startup,
            cluster_shards=cluster_shards,
        )
        self._decode = codec.worker_response.decode
        self._peek = codec.peek_worker_response
        if max_frame_size != codec.DEFAULT_MAX_FRAME_SIZE:
            limited: codec.JsonCodec[inference.WorkerResponse]
            limited = codec.JsonCodec(inference.WorkerResponse, max_frame_size=max_frame_size)
            self._decode = limited.decode
            envelopes: codec.JsonCodec[codec.WorkerResponseEnvelope] = codec.JsonCodec(
                codec.WorkerResponseEnvelopes,
                max_frame_size=max_frame_size,
                name="inference.WorkerResponse envelope",
            )
            self._peek = envelopes.decode

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Send what was already published, put frames drained for streams but not yet taken
        back at the head of their lists, end every stream (``RelayError``), close the connections."""
        if self._connector.closed:
            return
        shards = self._shards.all or []
        await asyncio.gather(*(shard.stop() for shard in shards))
        self._connector.closed = True
        await self._shards.close()
        await asyncio.gather(*(shard.close() for shard in shards))

    async def connect(self) -> None:
        """Connect now, rather than on first use: learns whether the server is a Redis Cluster
        node (and so the key layout). Raises ``RelayConnectionError`` when Redis stays
        unreachable for ``retry_timeout``. Optional: every call connects when it needs to."""
        await self._shards.ready()

    @property
    def cluster(self) -> bool | None:
        """Whether the relay runs on a Redis Cluster (None until its first connection says)."""
        return self._shards.cluster

    # ------------------------------------------------------------------ publish

    async def publish(
        self, message_id: str, frame: bytes | bytearray | memoryview | inference.WorkerResponse
    ) -> None:
        """Append one ``WorkerResponse`` to ``message:{message_id}``; returns once the Redis
        round trip carrying it has completed.

        ``frame`` is a struct (encoded with the codec) or a JSON document as bytes (forwarded
        unchanged: bytes a caller peeked with ``codec.peek_worker_response``). Every publish made
        in the same event-loop iteration, to any queues, goes in one round trip (one ``EVALSHA``
        pushing to every list and setting each list's expiry once); publishes made while a round
        trip is in flight go in the next one. Frames of one queue keep their publish order.

        Raises ``QueueFullError`` (the queue is at ``message_queue_max_length``: not pushed),
        ``RelayConnectionError`` (Redis unreachable: not pushed) or ``RelayPublishError`` (the
        round trip failed after sending: maybe pushed, never resent). Cancelling a publish does
        not withdraw its frame once queued for the round trip.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._shards.enqueue(message_id, frame, fut)
        await fut

    def publisher(self, *, limit: int = DEFAULT_PUBLISHER_LIMIT) -> Publisher:
        """A ``Publisher``: ``send`` frames without awaiting each one's round trip, learn their
        outcome in ``drain`` (which waits only while more than ``limit`` frames are in flight)
        or ``flush``. For a producer that gets frames faster than one round trip each, e.g. a
        worker connection's handler: one wake-up per read instead of one per frame."""
        return Publisher(self, limit)

    # ------------------------------------------------------------------ streams

    def subscribe(self, message_id: str) -> Subscription:
        """A ``Subscription`` to ``message:{message_id}`` (use ``async with``): lower level
        than ``stream``, for a handler that does something while it waits (e.g. the
        reference's pending events with the queue position)."""
        check_id("message_id", message_id)
        return Subscription(self, message_id)

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: Literal[False] = ..., stop_on_timeout: bool = ...
    ) -> AsyncGenerator[inference.WorkerResponse, None]: ...

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: Literal[True], stop_on_timeout: bool = ...
    ) -> AsyncGenerator[bytes, None]: ...

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: bool, stop_on_timeout: bool = ...
    ) -> AsyncGenerator[inference.WorkerResponse | bytes, None]: ...

    async def stream(
        self, message_id: str, *, timeout: float = 60.0, raw: bool = False, stop_on_timeout: bool = False
    ) -> AsyncGenerator[Any, None]:
        """The responses pushed to ``message:{message_id}``, in order, until a terminal one.

        Yields ``WorkerResponse`` structs (decoded once, by the codec) or, with ``raw=True``, the
        frames' bytes exactly as stored (peeked for the terminal check only). Stops after
        yielding a terminal response (``TERMINAL_RESPONSE_TYPES``: as the reference's event
        stream). Frames drained from Redis but not yielded (after a terminal one, or when the
        consumer stops early) go back to the head of the list.

        It never ends without its terminal response but with an error saying why, naming the
        key and the seconds waited: no frame for ``timeout`` seconds raises
        ``RelayTimeoutError`` (``RelayStalledError`` when Redis stopped answering meanwhile;
        with ``stop_on_timeout=True`` the stream just stops instead), Redis unreachable raises
        ``RelayConnectionError`` (within the relay's ``retry_timeout``, at once for refused
        credentials), frames possibly lost in Redis (a restart without persistence, a failover)
        raise ``RelayDataLossError``, and a frame that is not a valid ``WorkerResponse`` raises
        ``RelayDecodeError`` holding its bytes.
        """
        peek, decode = self._peek, self._decode
        sub = self.subscribe(message_id)
        async with sub:
            while True:
                batch = await sub.next_batch(timeout)
                if not batch:
                    if stop_on_timeout:
                        return
                    raise sub.timeout_error(timeout)
                for i, frame in enumerate(batch):
                    try:
                        if raw:
                            tag = peek(frame).response_type
                            item: Any = frame
                        else:
                            item = decode(frame)
                            tag = item.response_type
                    except FrameDecodeError as exc:
                        sub.give_back(batch[i + 1 :])
                        raise RelayDecodeError(
                            f"frame is not a valid WorkerResponse: {exc}",
                            key=sub.key,
                            operation="stream",
                            frame=frame,
                        ) from exc
                    if tag in TERMINAL_RESPONSE_TYPES:
                        sub.give_back(batch[i + 1 :])
                        yield item
                        return
                    try:
                        yield item
                    except GeneratorExit:
                        sub.give_back(batch[i + 1 :])
                        raise

    # ------------------------------------------------------------------ work queues

    async def enqueue_work(self, compat_hash: str, message_id: str, *, enforce_max_size: bool = True) -> int:
        """Queue ``message_id`` on ``work:{compat_hash}``, as the reference's ``enqueue`` with
        its counters: ``RPUSH``, ``INCR ctr_enq:work:{compat_hash}``, ``SET pos:{message_id}``
        (expiring after ``message_queue_expire``), atomically in one script call.

        Returns the enqueue counter (the message's ``pos:`` value). Raises ``QueueFullError``
        when the queue holds ``work_queue_max_size`` ids (unless ``enforce_max_size`` is False,
        as the reference's re-enqueue of unstarted work), ``RelayConnectionError`` or
        ``RelayPublishError`` (maybe enqueued: never resent).
        """
        check_id("compat_hash", compat_hash)
        shard = await self._shards.shard(compat_hash, work_queue_key(compat_hash), "enqueue_work")
        return await shard.work.enqueue(compat_hash, message_id, enforce_max_size=enforce_max_size)

    async def dequeue_work(self, compat_hash: str, timeout: float) -> str | None:
        """Pop the next message id from ``work:{compat_hash}`` (``BLPOP``, waiting up to
        ``timeout`` seconds; 0 waits forever, as Redis), then ``INCR ctr_deq:work:{compat_hash}``
        as the reference does. Returns None on timeout.

        A connection lost while the ``BLPOP`` was pending raises ``RelayConnectionError``:
        if Redis had popped an id for it, that id is lost (as with the reference's BLPOP).
        """
        check_id("compat_hash", compat_hash)
        shard = await self._shards.shard(compat_hash, work_queue_key(compat_hash), "dequeue_work")
        return await shard.work.dequeue(compat_hash, timeout)

    async def queue_position(
        self, message_id: str, compat_hash: str | None, *, max_age: float = 0.0
    ) -> QueuePosition:
        """Where ``message_id`` stands in ``work:{compat_hash}``, as the reference's event stream
        computes it from ``ctr_deq:``, ``ctr_enq:`` and ``pos:{message_id}`` (one ``MGET``):
        ``position = max(pos - deq, 0)``, ``size = max(enq - deq, position)``. Without a
        compat hash: ``(0, 1)``, as the reference.

        ``max_age`` (seconds, > 0): a reading at most that old will do, as for a chat's
        ``pending`` events. Every message asked for with the same ``max_age`` is then read in one
        ``MGET`` per ``max_age`` for the whole relay (the first call waits for the next one),
        instead of one round trip per call: 5,000 waiting chats cost Redis one command a second,
        not 5,000."""
        check_id("message_id", message_id)
        if compat_hash is None:
            return QueuePosition(0, 1)
        check_id("compat_hash", compat_hash)
        work = (await self._shards.shard(compat_hash, work_queue_key(compat_hash), "queue_position")).work
        if max_age and max_age > 0:
            return await work.shared_position(message_id, compat_hash, float(max_age))
        return await work.position(message_id, compat_hash)
