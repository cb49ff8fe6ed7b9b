"""The relay's implementation (see the package docstring for the design)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import typing
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from typing import Any, Final, Literal, NamedTuple, Union, overload

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from oasst_shared import codec
from oasst_shared.codec import FrameDecodeError
from oasst_shared.relay import _scripts
from oasst_shared.relay._errors import (
    QueueFullError,
    RelayConnectionError,
    RelayDecodeError,
    RelayError,
    RelayPublishError,
)
from oasst_shared.relay._publish import DEFAULT_PUBLISHER_LIMIT, Publisher, _Batch
from oasst_shared.schemas import inference

__all__ = [
    "DEFAULT_MESSAGE_QUEUE_EXPIRE",
    "DEFAULT_MESSAGE_QUEUE_MAX_LENGTH",
    "DEFAULT_STREAM_BUFFER",
    "DEFAULT_WORK_QUEUE_MAX_SIZE",
    "TERMINAL_RESPONSE_TYPES",
    "QueuePosition",
    "Relay",
    "Subscription",
    "message_queue_key",
    "work_queue_key",
]

DEFAULT_MESSAGE_QUEUE_EXPIRE: Final = 60
"""Seconds a message queue lives after its last push (the reference's ``message_queue_expire``);
also the expiry of the ``pos:{message_id}`` keys, as in the reference."""

DEFAULT_WORK_QUEUE_MAX_SIZE: Final[int | None] = None
"""The reference's ``work_queue_max_size``: no limit unless configured."""

DEFAULT_MESSAGE_QUEUE_MAX_LENGTH: Final[int | None] = 65536
"""Most frames a message queue may hold before a publish to it raises ``QueueFullError``
(the reference has no limit; this bounds a queue whose reader went away)."""

TERMINAL_RESPONSE_TYPES: Final = frozenset(
    {"generated_text", "internal_finished_message", "error", "internal_error"}
)
"""Response types after which the reference's event stream stops reading a message queue."""

_DRAIN_PER_KEY: Final = 4096
DEFAULT_STREAM_BUFFER: Final = 4096
"""Frames a stream holds in the process before the reader stops draining its queue (``Relay``'s
``stream_buffer``)."""
_COLD_SLICE: Final = 64
"""Keys that are not hot scanned per hot round: any key is scanned within ceil(streams / 64)
consecutive hot rounds."""
_SCAN_PACE: Final = 1e-6
"""Seconds between scan rounds per open stream, at least: a scan costs Redis about 0.1 us per
key (it parses every name), so scanning 10,000 streams is paced to one round per 10 ms."""
_BACKOFF_FIRST: Final = 0.01
_BACKOFF_MAX: Final = 0.5
_NETWORK_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
_Frame = Union[bytes, bytearray, memoryview]
_RESPONSE_TYPES: Final = typing.get_args(inference.WorkerResponse)


def message_queue_key(message_id: str) -> str:
    """The reference's per-message queue key: ``message:{message_id}``."""
    return f"message:{message_id}"


def work_queue_key(compat_hash: str) -> str:
    """The reference's work queue key: ``work:{compat_hash}``."""
    return f"work:{compat_hash}"


async def _back_off(
    delay: float, deadline: float, exc: BaseException, message: str, *, key: str | None, op: str
) -> float:
    """Sleep ``delay`` before the next try and return the next delay (doubled, capped); raise
    ``RelayConnectionError(message)`` instead when that try would start past ``deadline``."""
    if time.monotonic() + delay > deadline:
        raise RelayConnectionError(message, key=key, operation=op) from exc
    await asyncio.sleep(delay)
    return min(delay * 2, _BACKOFF_MAX)


class QueuePosition(NamedTuple):
    """A pending message's place in its work queue, as the reference's event stream computes it."""

    position: int
    """How many messages are ahead of it (``max(pos - ctr_deq, 0)``)."""
    size: int
    """How many messages are queued (``max(ctr_enq - ctr_deq, position)``)."""


def _pack(args: Sequence[Any]) -> bytes:
    """One command in RESP, built in one pass (redis-py's packer costs several times more per
    argument, which matters for a flush carrying thousands of frames)."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            b = repr(a).encode()
        else:
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        append(b"$%d\r\n" % len(b))
        append(b)
        append(b"\r\n")
    return b"".join(parts)


def _bulk(b: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


# ------------------------------------------------------------------------------------ links


class _Link:
    """One redis-py connection the relay owns, with the relay's retry rules.

    Connecting is retried with backoff (nothing was sent); a command whose bytes may have
    reached Redis is resent only when the caller says it is idempotent.
    """

    def __init__(self, relay: Relay, name: str, *, blocking: bool) -> None:
        self._relay = relay
        self.name = name
        self._blocking = blocking
        self.conn: Any = None
        self.generation = 0  # bumped on every new connection
        self.lock = asyncio.Lock()

    async def connected(self, *, op: str, key: str | None, deadline: float) -> Any:
        """A connected, clean connection; connects (with backoff until ``deadline``) if needed."""
        delay = _BACKOFF_FIRST
        while True:
            self._relay._check_open(op, key)
            conn = self.conn
            if conn is not None and conn.is_connected:
                # can_read() is redis-py >= 8; before, the same check was can_read_destructive()
                check = getattr(conn, "can_read", None) or conn.can_read_destructive
                try:
                    dirty = await check()
                except (RedisError, OSError):
                    dirty = True
                if not dirty:
                    return conn
                # the server closed it (restart) or left bytes on it: never reuse such a link
                await conn.disconnect(nowait=True)
            if conn is None:
                conn = self.conn = self._relay._new_connection(blocking=self._blocking)
            try:
                await conn.connect()
            except AuthenticationError as exc:
                raise RelayConnectionError(
                    f"Redis refused the credentials: {exc}", key=key, operation=op
                ) from exc
            except _NETWORK_ERRORS as exc:
                await conn.disconnect(nowait=True)
                delay = await _back_off(
                    delay, deadline, exc, f"cannot connect to Redis ({exc})", key=key, op=op
                )
                continue
            except RedisError as exc:  # the handshake was refused (e.g. no such database)
                await conn.disconnect(nowait=True)
                raise RelayConnectionError(
                    f"Redis refused the connection: {exc}", key=key, operation=op
                ) from exc
            self.generation += 1
            return conn

    async def call(
        self,
        args: Sequence[Any],
        *,
        op: str,
        key: str | None,
        idempotent: bool,
        deadline: float | None = None,
        on_unknown: Callable[[BaseException], RelayError] | None = None,
    ) -> Any:
        """One command, one round trip. Returns the raw reply (bytes, not decoded).

        A failure to connect or to send is retried with backoff until ``deadline`` (Redis did
        not get the command). A failure after the command was sent is retried only when
        ``idempotent``; otherwise it raises ``on_unknown(exc)`` (default: ``RelayPublishError``).
        A ``LOADING`` reply (Redis restarting) means the command did not run: it is retried.
        """
        if deadline is None:
            deadline = time.monotonic() + self._relay._retry_timeout
        delay = _BACKOFF_FIRST
        async with self.lock:
            while True:
                conn = await self.connected(op=op, key=key, deadline=deadline)
                try:
                    await conn.send_packed_command(_pack(args), check_health=False)
                except _NETWORK_ERRORS as exc:
                    await conn.disconnect(nowait=True)
                    delay = await _back_off(
                        delay, deadline, exc, f"cannot send to Redis ({exc})", key=key, op=op
                    )
                    continue
                try:
                    return await conn.read_response(disable_decoding=True)
                except BusyLoadingError as exc:
                    message = f"Redis is loading its data ({exc})"
                    delay = await _back_off(delay, deadline, exc, message, key=key, op=op)
                    continue
                except ResponseError:
                    raise
                except (*_NETWORK_ERRORS, asyncio.CancelledError) as exc:
                    # the reply is lost; the connection must not be reused (it may still carry it)
                    await conn.disconnect(nowait=True)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    if idempotent and time.monotonic() + delay <= deadline:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, _BACKOFF_MAX)
                        continue
                    if on_unknown is not None:
                        raise on_unknown(exc) from exc
                    raise RelayPublishError(
                        f"the round trip failed after the command was sent ({exc}): it may have been "
                        "applied; not resent",
                        key=key,
                        operation=op,
                    ) from exc

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)


# ------------------------------------------------------------------------------ subscriptions


class Subscription:
    """The local end of one message queue: frames the relay's reader drained for it.

    Made by ``Relay.subscribe``; used as an async context manager. One subscription per
    message queue per relay at a time. Frames are bytes exactly as stored in Redis.
    """

    def __init__(self, relay: Relay, message_id: str) -> None:
        self._relay = relay
        self.message_id = message_id
        """The message whose queue this reads."""
        self.key = message_queue_key(message_id)
        """The Redis key read: ``message:{message_id}``."""
        self._bkey = self.key.encode()
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False  # the reader leaves this queue alone until the consumer catches up

    async def __aenter__(self) -> Subscription:
        # frames an earlier subscription to this queue gave back are older than any still in
        # the list: wait until they are back at its head before reading it again
        await self._relay._returned(self._bkey)
        self._relay._register(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _feed(self, frames: list[bytes]) -> None:
        self._frames.extend(frames)
        if not self._paused and len(self._frames) >= self._relay.stream_buffer:
            # the consumer is behind: further frames wait in Redis (bounded by the queue's
            # maximum length), not in this process
            self._paused = True
            self._relay._pause(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next_batch(self, timeout: float | None = None) -> list[bytes]:
        """Every frame received and not yet taken, in queue order; waits up to ``timeout``
        seconds for one (None: no limit). Returns an empty list on timeout.

        Raises ``RelayError`` once the relay is closed, and ``RelayConnectionError`` when the
        wait timed out while Redis was unreachable.
        """
        if not self._frames and self._error is None:
            if self._closed:
                raise RelayError("subscription is closed", key=self.key, operation="next_batch")
            loop = asyncio.get_running_loop()
            w = self._waiter = loop.create_future()
            if timeout is None:
                self._deadline = float("inf")
            else:
                # one timer per subscription, re-armed only when it fires early: a timer per wait
                # (call_later + cancel) costs more than the rest of a token's trip through here
                deadline = self._deadline = loop.time() + timeout
                timer = self._timer
                if timer is not None and timer.when() > deadline:
                    timer.cancel()
                    timer = None
                if timer is None:
                    self._timer = loop.call_at(deadline, self._on_timer)
            try:
                await w
            finally:
                self._waiter = None
        if self._frames:
            out = list(self._frames)
            self._frames.clear()
            if self._paused:
                self._paused = False
                self._relay._resume(self)
            return out
        if self._error is not None:
            raise self._error
        if self._relay._reader_down_since is not None:
            raise RelayConnectionError(
                "no frame within the timeout and Redis is unreachable", key=self.key, operation="BLPOP"
            )
        return []

    def _on_timer(self) -> None:
        self._timer = None
        w = self._waiter
        if w is None or w.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
        else:
            w.set_result(None)

    def give_back(self, frames: list[bytes]) -> None:
        """Put frames taken but not used back at the head of the local buffer (in order)."""
        self._frames.extendleft(reversed(frames))

    async def aclose(self) -> None:
        """Stop reading the queue. Frames received but not taken go back to the head of the
        Redis list, in order, so another reader (or a later subscription) gets them."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        relay = self._relay
        key = self._bkey
        # a new subscription to this queue waits until what this one gives back has landed
        relay._returning_begin(key)
        handed_over = False
        try:
            relay._unregister(self)  # rounds from now on leave this queue out
            # A round already in flight may have popped newer frames of this queue: they come
            # here too, so that all the frames taken from the list go back at once, in order
            # (two separate pushes to the head would put the newer frames first).
            await relay._collect_in_flight(self)
            leftover = list(self._frames)
            self._frames.clear()
            if leftover:
                handed_over = True
                await relay._push_back(key, leftover, begun=True)
        finally:
            if not handed_over:
                relay._returning_end(key)


# ------------------------------------------------------------------------------------ relay


class _GiveBacks:
    """The give-backs (``LPUSH`` to the head of a queue) in flight for one key."""

    __slots__ = ("in_flight", "landed")

    def __init__(self) -> None:
        self.in_flight = 0
        self.landed = asyncio.Event()  # set once none is in flight


class Relay:
    """The inference server's token relay over Redis, with the reference server's keys.

    ``redis_or_url`` is a ``redis.asyncio.Redis`` client (its connection settings are used;
    the relay opens its own connections, so the client's retry policy never resends a
    relay write) or a URL (``redis://``, ``rediss://``, ``unix://``).

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

    Use it as ``async with Relay(...) as relay:`` or call ``aclose``. It belongs to the
    event loop that first uses it. asyncio only: redis-py's asyncio client does not run on trio.
    """

    def __init__(
        self,
        redis_or_url: aioredis.Redis | str,
        *,
        message_queue_expire: int = DEFAULT_MESSAGE_QUEUE_EXPIRE,
        work_queue_max_size: int | None = DEFAULT_WORK_QUEUE_MAX_SIZE,
        message_queue_max_length: int | None = DEFAULT_MESSAGE_QUEUE_MAX_LENGTH,
        retry_timeout: float = 10.0,
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        read_interval: float = 0.001,
        stream_buffer: int = DEFAULT_STREAM_BUFFER,
    ) -> None:
        if isinstance(redis_or_url, str):
            pool: Any = aioredis.ConnectionPool.from_url(redis_or_url)
        elif isinstance(redis_or_url, aioredis.Redis):
            pool = redis_or_url.connection_pool
        else:
            raise TypeError(
                f"Relay needs a redis.asyncio.Redis client or a URL, got {type(redis_or_url).__name__}"
            )
        if not isinstance(message_queue_expire, int) or message_queue_expire <= 0:
            raise ValueError(f"message_queue_expire must be a positive int, got {message_queue_expire!r}")
        for name, value in (
            ("work_queue_max_size", work_queue_max_size),
            ("message_queue_max_length", message_queue_max_length),
        ):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
        self.message_queue_expire = message_queue_expire
        """Seconds a message queue (and a ``pos:`` key) lives after its last write."""
        self.work_queue_max_size = work_queue_max_size
        """Most message ids a work queue holds (None or 0: no limit), as the reference."""
        self.message_queue_max_length = message_queue_max_length
        """Most frames a message queue holds (None or 0: no limit)."""
        if not isinstance(read_interval, (int, float)) or not 0 <= read_interval <= 1:
            raise ValueError(f"read_interval must be a number of seconds in [0, 1], got {read_interval!r}")
        self.read_interval = float(read_interval)
        if not isinstance(stream_buffer, int) or isinstance(stream_buffer, bool) or stream_buffer < 1:
            raise ValueError(f"stream_buffer must be an int >= 1, got {stream_buffer!r}")
        self.stream_buffer = stream_buffer
        """Frames a stream holds in this process, drained and not yet taken, before the reader
        stops draining its queue until the consumer has taken them."""
        """While frames flow, the reader starts a round trip at most once per this many seconds."""
        self._retry_timeout = retry_timeout
        self._connection_class = pool.connection_class
        kwargs = {
            k: v
            for k, v in pool.connection_kwargs.items()
            if not k.startswith(("maint_notifications", "oss_cluster"))
        }
        kwargs.update(
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
            protocol=2,
            socket_connect_timeout=connect_timeout,
        )
        self._conn_kwargs = kwargs
        self._command_timeout = command_timeout
        self._pub = _Link(self, "publish", blocking=False)
        self._ctl = _Link(self, "control", blocking=False)
        self._reader = _Link(self, "reader", blocking=True)
        self._idle_dequeue: list[_Link] = []
        self._pending: _Batch | None = None
        self._flush_wake: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader_task: asyncio.Task[None] | None = None
        self._subs: dict[bytes, Subscription] = {}
        self._active: dict[bytes, None] = {}  # the keys the reader's rounds read (not paused)
        self._bulks: dict[bytes, bytes] = {}  # each stream's key as a RESP bulk string
        self._ring: dict[bytes, None] = {}  # every key, in the order hot rounds scan them
        self._hot: dict[bytes, None] = {}  # keys the next hot round pops
        self._fresh: list[bytes] = []  # keys opened since the last round
        # (subs version, BLPOP timeout, keys, the scan round's and the wait round's commands)
        self._view: tuple[int, float, list[bytes], bytes, bytes] | None = None
        self._subs_version = 0
        self._subs_changed: asyncio.Event | None = None
        self._in_round = False  # the reader has a round trip in flight
        self._round_waiters: list[asyncio.Future[None]] = []  # woken when that round has ended
        self._closing: dict[bytes, Subscription] = {}  # closed, still taking an in-flight round's frames
        self._returning: dict[bytes, _GiveBacks] = {}  # keys with give-backs in flight
        self._reader_blocked: int | None = None  # subs version the reader's BLPOP was sent with
        self._reader_client_id: bytes | None = None
        self._reader_down_since: float | None = None
        self._unblocking = False
        self._closed = False
        self._stopping = False
        # how long the reader's BLPOP blocks: a new stream wakes it sooner (CLIENT UNBLOCK); without
        # CLIENT (ACL), it polls every 50 ms instead
        self._block_timeout = 1.0
        self._wait_timeout = 1.0  # the BLPOP timeout in use (the one above, or 0.05 to poll)
        self._publish_sha = _scripts.sha1(_scripts.PUBLISH)
        self._drain_sha = _scripts.sha1(_scripts.DRAIN)
        self._drain_head = _bulk(b"EVALSHA") + _bulk(self._drain_sha.encode())
        # the reader's backup list (what its last drain popped, see _scripts.DRAIN), its own key
        self._backup_key = f"relay:inflight:{uuid.uuid4().hex}".encode()
        self._round_id = 0
        self._unacked_round: int | None = None  # a drain sent whose reply has not been read
        self._enqueue_sha = _scripts.sha1(_scripts.ENQUEUE)
        self._encode = codec.worker_response.encode
        self._decode = codec.worker_response.decode
        self._peek = codec.peek_worker_response

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task the relay holds a reference to until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_open(self, op: str, key: str | None) -> None:
        if self._closed:
            raise RelayError("the relay is closed", key=key, operation=op)

    def _new_connection(self, *, blocking: bool) -> Any:
        kwargs = dict(self._conn_kwargs)
        kwargs["socket_timeout"] = None if blocking else self._command_timeout
        return self._connection_class(**kwargs)

    async def aclose(self) -> None:
        """Send what was already published, put frames drained for streams but not yet taken
        back at the head of their lists, end every stream (``RelayError``), close the connections."""
        if self._closed:
            return
        while self._flusher is not None and (self._pending is not None or self._flushing):
            await asyncio.sleep(0.001)
        self._stopping = True
        reader = self._reader_task
        if reader is not None:
            # stop the reader between round trips (a pop whose reply is cut off would be lost):
            # wake its BLPOP, let it deliver what it has, cancel it only if it does not stop
            if self._subs_changed is not None:
                self._subs_changed.set()
            client_id = self._reader_client_id
            if self._reader_blocked is not None and client_id is not None:
                with contextlib.suppress(RelayError, RedisError):
                    await self._ctl.call(
                        ["CLIENT", "UNBLOCK", client_id], op="CLIENT UNBLOCK", key=None, idempotent=True
                    )
            _, pending = await asyncio.wait({reader}, timeout=2.0)
            if pending:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
        for sub in list(self._subs.values()):
            leftover = list(sub._frames)
            sub._frames.clear()
            if leftover:
                await self._push_back(sub._bkey, leftover)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reader_task is not None and self._unacked_round is None:
            # the backup of the reader's last drain, delivered: not needed any more
            with contextlib.suppress(RelayError, RedisError):
                await self._ctl.call(
                    ["DEL", self._backup_key],
                    op="close (DEL)",
                    key=self._backup_key.decode(),
                    idempotent=True,
                    deadline=time.monotonic() + 0.5,
                )
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        unsent, self._pending = self._pending, None
        if unsent is not None:  # published during close: never sent
            # (taken first: a publisher failing here withdraws from the pending batch, not this one)
            unsent.fail(RelayError("the relay was closed", key=None, operation="publish"))
        for sub in list(self._subs.values()):
            sub._fail(RelayError("the relay was closed", key=sub.key, operation="stream"))
        self._subs.clear()
        for link in (self._pub, self._ctl, self._reader, *self._idle_dequeue):
            await link.close()
        self._idle_dequeue.clear()

    # ------------------------------------------------------------------ publish (group commit)

    async def publish(self, message_id: str, frame: _Frame | inference.WorkerResponse) -> None:
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
        self._enqueue(message_id, frame, fut)
        await fut

    def publisher(self, *, limit: int = DEFAULT_PUBLISHER_LIMIT) -> Publisher:
        """A ``Publisher``: ``send`` frames without awaiting each one's round trip, learn their
        outcome in ``drain`` (which waits only while more than ``limit`` frames are in flight)
        or ``flush``. For a producer that gets frames faster than one round trip each, e.g. a
        worker connection's handler: one wake-up per read instead of one per frame."""
        return Publisher(self, limit)

    def _enqueue(self, message_id: str, frame: _Frame | inference.WorkerResponse, owner: Any) -> None:
        """Add one frame to the batch of the next round trip, owned by a future or a publisher."""
        if not isinstance(message_id, str) or not message_id:
            _check_id("message_id", message_id)
        if isinstance(frame, bytes):
            data = frame
        elif isinstance(frame, (bytearray, memoryview)):
            data = bytes(frame)
        elif isinstance(frame, _RESPONSE_TYPES):
            data = self._encode(frame)
        else:
            raise TypeError(f"frame must be bytes or a WorkerResponse struct, got {type(frame).__name__}")
        if self._closed or self._stopping:
            raise RelayError("the relay is closed", key=message_queue_key(message_id), operation="publish")
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch()
            self._wake_flusher()
        batch.add(message_queue_key(message_id).encode(), data, owner)

    def _withdraw(self, publisher: Publisher) -> None:
        """A frame of ``publisher`` failed: its frames waiting for the next round trip stay out."""
        batch = self._pending
        if batch is not None:
            batch.withdraw(publisher)

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
            return
        wake = self._flush_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._pending
            if batch is None:
                self._flush_wake = loop.create_future()
                await self._flush_wake
                continue
            self._pending = None
            if not batch.frames:  # every frame in it was withdrawn
                continue
            self._flushing = True
            try:
                await self._send_batch(batch)
            except asyncio.CancelledError:
                err = RelayPublishError(
                    "the flush was cancelled during its round trip: it may have been applied",
                    key=None,
                    operation="publish",
                )
                batch.fail(err)
                raise
            except Exception as exc:  # never leave a publisher waiting on a dead flusher
                err = RelayPublishError(
                    f"unexpected failure in the flush: {exc!r}", key=None, operation="publish"
                )
                err.__cause__ = exc
                batch.fail(err)
            finally:
                self._flushing = False

    async def _send_batch(self, batch: _Batch) -> None:
        keys = list(batch.frames)
        args: list[Any] = [
            "EVALSHA",
            self._publish_sha,
            len(keys),
            *keys,
            self.message_queue_expire,
            self.message_queue_max_length or 0,
        ]
        for k in keys:
            frames = batch.frames[k]
            args.append(len(frames))
            args.extend(frames)
        op = "publish (EVALSHA RPUSH+EXPIRE)"
        one_key = keys[0].decode() if len(keys) == 1 else None
        try:
            reply = await self._script(
                self._pub, args, _scripts.PUBLISH, op=op, key=one_key, idempotent=False
            )
        except RelayError as exc:
            batch.fail(exc)
            return
        except Exception as exc:  # a script error: nothing can be trusted about this batch
            batch.fail(
                RelayPublishError(
                    f"Redis answered the publish with an error: {exc}", key=one_key, operation=op
                ),
            )
            return
        accepted = dict(zip(keys, reply, strict=True)) if len(reply) == len(keys) else {}
        batch.settle(accepted, op, self.message_queue_max_length or 0)

    async def _script(
        self,
        link: _Link,
        args: list[Any],
        source: str,
        *,
        op: str,
        key: str | None,
        idempotent: bool,
        deadline: float | None = None,
        on_unknown: Callable[[BaseException], RelayError] | None = None,
    ) -> Any:
        """EVALSHA, loading the script on NOSCRIPT (a NOSCRIPT reply means nothing ran)."""
        try:
            return await link.call(
                args, op=op, key=key, idempotent=idempotent, deadline=deadline, on_unknown=on_unknown
            )
        except NoScriptError:
            await link.call(["SCRIPT", "LOAD", source], op="SCRIPT LOAD", key=key, idempotent=True)
            return await link.call(
                args, op=op, key=key, idempotent=idempotent, deadline=deadline, on_unknown=on_unknown
            )

    # ------------------------------------------------------------------ streams (one reader)

    def subscribe(self, message_id: str) -> Subscription:
        """A ``Subscription`` to ``message:{message_id}`` (use ``async with``): lower level
        than ``stream``, for a handler that does something while it waits (e.g. the
        reference's pending events with the queue position)."""
        _check_id("message_id", message_id)
        return Subscription(self, message_id)

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: Literal[False] = ...
    ) -> AsyncGenerator[inference.WorkerResponse, None]: ...

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: Literal[True]
    ) -> AsyncGenerator[bytes, None]: ...

    @overload
    def stream(
        self, message_id: str, *, timeout: float = ..., raw: bool
    ) -> AsyncGenerator[inference.WorkerResponse | bytes, None]: ...

    async def stream(
        self, message_id: str, *, timeout: float = 60.0, raw: bool = False
    ) -> AsyncGenerator[Any, None]:
        """The responses pushed to ``message:{message_id}``, in order, until a terminal one.

        Yields ``WorkerResponse`` structs (decoded once, by the codec) or, with ``raw=True``, the
        frames' bytes exactly as stored (peeked for the terminal check only). Stops after
        yielding a terminal response (``TERMINAL_RESPONSE_TYPES``: as the reference's event
        stream) or when no frame arrived for ``timeout`` seconds. Frames drained from Redis but
        not yielded (after a terminal one, or when the consumer stops early) go back to the
        head of the list. A frame that is not a valid ``WorkerResponse`` raises
        ``RelayDecodeError`` holding its bytes.
        """
        sub = self.subscribe(message_id)
        async with sub:
            while True:
                batch = await sub.next_batch(timeout)
                if not batch:
                    return
                for i, frame in enumerate(batch):
                    try:
                        if raw:
                            tag = self._peek(frame).response_type
                            item: Any = frame
                        else:
                            item = self._decode(frame)
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

    def _register(self, sub: Subscription) -> None:
        if self._stopping:
            raise RelayError("the relay is closed", key=sub.key, operation="stream")
        if sub._bkey in self._subs:
            raise RelayError(
                "this relay already streams the queue (one local reader per message)",
                key=sub.key,
                operation="stream",
            )
        key = sub._bkey
        self._subs[key] = sub
        self._active[key] = None
        self._bulks[key] = _bulk(key)
        self._ring[key] = None
        self._fresh.append(key)
        self._subs_changed_now()
        if self._reader_task is None:
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    def _unregister(self, sub: Subscription) -> None:
        key = sub._bkey
        if self._subs.get(key) is sub:
            del self._subs[key]
            del self._bulks[key]
            self._active.pop(key, None)
            self._ring.pop(key, None)
            self._hot.pop(key, None)
            self._subs_changed_now()

    def _pause(self, sub: Subscription) -> None:
        """Leave ``sub``'s queue out of the reader's rounds (its consumer is behind)."""
        key = sub._bkey
        if self._subs.get(key) is sub and key in self._active:
            del self._active[key]
            self._ring.pop(key, None)
            self._hot.pop(key, None)
            self._subs_changed_now()

    def _resume(self, sub: Subscription) -> None:
        """Read ``sub``'s queue again (its consumer has taken what it had)."""
        key = sub._bkey
        if self._subs.get(key) is sub and key not in self._active:
            self._active[key] = None
            self._ring[key] = None
            self._fresh.append(key)
            self._subs_changed_now()

    def _subs_changed_now(self) -> None:
        self._subs_version += 1
        if self._subs_changed is None:
            self._subs_changed = asyncio.Event()
        self._subs_changed.set()
        if self._reader_blocked is not None and not self._unblocking and self._reader_client_id is not None:
            self._unblocking = True
            self._background(self._unblock_reader())

    async def _unblock_reader(self) -> None:
        """Wake the reader's BLPOP (CLIENT UNBLOCK) so it blocks again on the new key set."""
        try:
            while (
                not self._closed
                and self._reader_blocked is not None
                and self._reader_blocked != self._subs_version
            ):
                client_id = self._reader_client_id
                if client_id is None:
                    return
                try:
                    n = await self._ctl.call(
                        ["CLIENT", "UNBLOCK", client_id], op="CLIENT UNBLOCK", key=None, idempotent=True
                    )
                except (RelayError, RedisError):
                    return  # the reader's BLPOP timeout bounds the delay instead
                if n:
                    return
                # the BLPOP has not reached Redis yet (or just returned): look again shortly
                await asyncio.sleep(0.001)
        finally:
            self._unblocking = False

    # The reader. Each round is one round trip on the reader's connection, of one of three kinds:
    # - a hot round, while some keys are hot (they gave more than one frame when last drained:
    #   frames pile up between rounds): one EVALSHA of DRAIN popping the hot keys, the streams
    #   opened since the last round, and the next _COLD_SLICE keys of a ring of every key
    #   (scanned, popped only if non-empty). Its size follows the hot keys, not the open streams.
    # - a scan round, when no key is hot but the last round found frames: DRAIN scanning every key
    #   (the command packed once per change of the stream set).
    # - a wait round, when the last round found nothing: the same scan pipelined with a BLPOP on
    #   every key, which returns at once if a frame arrived since, else waits for one.
    # While frames flow, a round starts at most once per read_interval (a scan round, at most
    # once per _SCAN_PACE per open stream too): the round trips (and the scans of idle keys) are
    # shared by the frames of that interval, and the reader blocks only when a round finds
    # nothing. A BLPOP on many keys costs Redis far more than a scan of them (it registers the
    # client on every key, then unregisters it), so at a steady low load the reader scans once
    # per interval and never blocks.
    # No key starves: a key that is not hot is scanned by every scan and wait round and, during
    # a run of hot rounds, within ceil(streams / _COLD_SLICE) of them (the ring moves every key it
    # scans to its end). Each key is popped by this one reader only: its frames arrive once, in order.

    async def _read_loop(self) -> None:
        link = self._reader
        loop = asyncio.get_running_loop()
        generation = -1
        found = True  # the last round found frames: the next one does not block
        started = -float("inf")
        while not self._stopping:
            if not self._active:
                ev = self._subs_changed
                assert ev is not None
                ev.clear()
                await ev.wait()
                continue
            if found:
                interval = self.read_interval
                if not self._hot:  # the next round scans every key: at most ~10% of a Redis core
                    interval = max(interval, len(self._active) * _SCAN_PACE)
                delay = started + interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # the stream set may have changed (or emptied) meanwhile
            t0 = time.monotonic()
            try:
                conn = await link.connected(op="stream (BLPOP)", key=None, deadline=t0 + _BACKOFF_MAX)
            except RelayConnectionError:
                # Redis unreachable (or refusing us): streams that time out meanwhile say so
                if self._reader_down_since is None:
                    self._reader_down_since = t0
                await asyncio.sleep(max(0.0, t0 + _BACKOFF_MAX - time.monotonic()))
                continue
            except RelayError:
                return  # closed
            if link.generation != generation:
                generation = link.generation
                self._reader_client_id = await self._reader_id(link)
                client_id = self._reader_client_id
                self._wait_timeout = self._block_timeout if client_id is not None else 0.05
                await self._load_drain(conn)
            self._in_round = True
            try:
                started = loop.time()
                if self._unacked_round is not None:
                    await self._recover(conn)
                if not found:
                    found = await self._wait_round(conn)
                elif self._hot:
                    found = await self._hot_round(conn)
                else:
                    found = await self._scan_round(conn)
            except asyncio.CancelledError:
                raise
            except NoScriptError:
                await self._load_drain(conn)
            except ResponseError as exc:
                # Redis refused the round itself (e.g. the script is not allowed: NOPERM, or out
                # of memory). A key that is not a list does not get here: the drain reports it
                # alone. End every stream with the error.
                self._hot.clear()
                for sub in list(self._subs.values()):
                    self._end_stream(sub, f"Redis answered the read with an error: {exc}")
            except (*_NETWORK_ERRORS, RedisError):
                # Redis went away (restart, reset): reconnect with backoff and resume the same
                # keys; a pop is destructive, so nothing already delivered is read twice.
                if self._reader_down_since is None:
                    self._reader_down_since = time.monotonic()
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
                await asyncio.sleep(_BACKOFF_FIRST)
                self._hot.clear()
                found = True  # the next round scans every key
            finally:
                self._round_over()

    def _round_over(self) -> None:
        self._in_round = False
        waiters, self._round_waiters = self._round_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _collect_in_flight(self, sub: Subscription) -> None:
        """While the reader's round in flight (if any) ends, deliver this queue's frames from it
        to ``sub``, which has just left the reader's key set. Bounded by ``command_timeout``: a
        round that does not end by then (Redis paused) is not waited for."""
        if not self._in_round:
            return
        self._closing[sub._bkey] = sub
        fut = asyncio.get_running_loop().create_future()
        self._round_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, self._command_timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if self._closing.get(sub._bkey) is sub:
                del self._closing[sub._bkey]

    async def _returned(self, key: bytes) -> None:
        """Wait until no give-back to ``key`` is in flight."""
        while (entry := self._returning.get(key)) is not None:
            await entry.landed.wait()

    async def _hot_round(self, conn: Any) -> bool:
        """Drain the hot keys, the fresh ones and a slice of the ring; True if any frame."""
        subs = self._active
        hot = self._hot
        keys = list(hot)
        fresh, self._fresh = self._fresh, []
        for k in fresh:
            if k in subs and k not in hot:
                hot[k] = None  # drained unconditionally this round (dropped if it yields nothing)
                keys.append(k)
        nhot = len(keys)
        ring = self._ring
        for k in list(itertools.islice(ring, _COLD_SLICE)):
            del ring[k]
            ring[k] = None  # to the end of the ring: scanned again after every other key
            if k not in hot:
                keys.append(k)
        await self._send_drain(conn, self._drain_cmd(keys, nhot))
        reply = await self._read_drain(conn, keys)
        self._reader_down_since = None
        return self._take(reply, keys, nhot)

    def _current_view(self) -> tuple[int, float, list[bytes], bytes, bytes]:
        """The packed scan of every key (``_drain_cmd``), and the BLPOP on every key that a wait
        round pipelines behind it."""
        block_timeout = self._wait_timeout
        view = self._view
        if view is None or view[0] != self._subs_version or view[1] != block_timeout:
            keys = list(self._active)
            bulks = self._bulks
            body = b"".join([bulks[k] for k in keys])
            scan = self._drain_cmd(keys, 0, body)
            blpop = b"*%d\r\n$5\r\nBLPOP\r\n" % (len(keys) + 2)
            wait = b"".join((blpop, body, _bulk(repr(float(block_timeout)).encode())))
            view = self._view = (self._subs_version, block_timeout, keys, scan, wait)
        self._fresh.clear()  # every open stream's key is in the round
        return view

    async def _scan_round(self, conn: Any) -> bool:
        """Drain every key (one round trip); True if any frame."""
        _, _, keys, scan, _ = self._current_view()
        await self._send_drain(conn, scan)
        reply = await self._read_drain(conn, keys)
        self._reader_down_since = None
        return self._take(reply, keys, 0)

    async def _wait_round(self, conn: Any) -> bool:
        """Drain every key, then block on every key (BLPOP), pipelined; True if any frame."""
        version, _, keys, scan, wait = self._current_view()
        self._reader_blocked = version
        err: ResponseError | None = None
        found = False
        try:
            await self._send_drain(conn, scan, wait)
            try:
                reply = await self._read_drain(conn, keys)
            except ResponseError as exc:
                err = exc
            else:
                found = self._take(reply, keys, 0)
            self._reader_down_since = None
            try:
                popped = await conn.read_response(disable_decoding=True)
            except ResponseError as exc:
                if "WRONGTYPE" in str(exc):
                    found = True  # a key is not a list: the next round (a drain) isolates it
                else:
                    err = err or exc
            else:
                if popped:
                    found = True
                    self._deliver(popped[0], [popped[1]])
        finally:
            self._reader_blocked = None
        if err is not None:
            raise err
        return found

    def _drain_cmd(self, keys: list[bytes], nhot: int, body: bytes | None = None) -> bytes:
        """The DRAIN call for ``keys`` (the first ``nhot`` popped, the rest scanned), packed up
        to its last two arguments (the round id and the backup's expiry: ``_send_drain``)."""
        if body is None:
            bulks = self._bulks
            body = b"".join([bulks[k] for k in keys])
        n = len(keys)
        return b"".join(
            (
                b"*%d\r\n" % (n + 8),
                self._drain_head,
                _bulk(b"%d" % (n + 1)),
                _bulk(self._backup_key),
                body,
                _bulk(b"%d" % _DRAIN_PER_KEY),
                _bulk(b"%d" % nhot),
            )
        )

    async def _send_drain(self, conn: Any, cmd: bytes, tail: bytes = b"") -> None:
        """Send a drain (``_drain_cmd``) with the next round id, then ``tail`` (pipelined)."""
        self._round_id += 1
        self._unacked_round = self._round_id
        last = _bulk(b"%d" % self._round_id) + _bulk(b"%d" % self.message_queue_expire)
        await conn.send_packed_command(b"".join((cmd, last, tail)), check_health=False)

    async def _recover(self, conn: Any) -> None:
        """The reply to the last drain was lost (the connection failed after sending it): if
        that drain ran, the frames it popped are in the backup; deliver them, in order."""
        await conn.send_packed_command(_pack(("LRANGE", self._backup_key, 0, -1)), check_health=False)
        saved = await conn.read_response(disable_decoding=True)
        round_id, self._unacked_round = self._unacked_round, None
        if not saved or int(saved[0]) != round_id:
            return  # it did not run (the backup is an earlier round's, already delivered)
        i = 1
        while i + 1 < len(saved):
            count = int(saved[i + 1])
            self._deliver(bytes(saved[i]), list(saved[i + 2 : i + 2 + count]))
            i += 2 + count

    async def _read_drain(self, conn: Any, keys: list[bytes]) -> Any:
        """The reply to ``_drain_cmd(keys, ...)``: [index1, frames1, index2, frames2, ...] for
        the keys that had frames (1-based indexes into ``keys``)."""
        reply = await conn.read_response(disable_decoding=True)
        self._unacked_round = None
        return reply

    def _take(self, reply: Any, keys: list[bytes], nhot: int) -> bool:
        """Deliver a DRAIN reply; True if it had frames. The next hot set is the keys that gave
        more than one frame, or any frame if drained as hot (the first ``nhot`` of ``keys``)."""
        hot: dict[bytes, None] = {}
        self._hot = hot
        if not reply:
            return False
        deliver = self._deliver
        subs = self._active
        for i in range(0, len(reply), 2):
            idx = int(reply[i]) - 1
            frames = reply[i + 1]
            if idx < 0:  # this key is not a list: end its stream, the others go on
                self._bad_key(keys[-idx - 2], frames)
                continue
            key = keys[idx]
            if (idx < nhot or len(frames) > 1) and key in subs:
                hot[key] = None
            deliver(key, frames)
        return True

    def _bad_key(self, key: bytes, error: Any) -> None:
        """Redis refused to pop ``key`` (e.g. WRONGTYPE: it holds no list): end its stream."""
        message = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        sub = self._subs.get(key) or self._closing.get(key)
        if sub is not None:
            self._end_stream(sub, f"Redis answered the read of this queue with an error: {message}")

    def _end_stream(self, sub: Subscription, message: str) -> None:
        """Stop reading ``sub``'s queue and end its stream with a ``RelayError``."""
        self._unregister(sub)
        sub._fail(RelayError(message, key=sub.key, operation="stream (EVALSHA LPOP)"))

    async def _load_drain(self, conn: Any) -> None:
        """Load DRAIN on a new reader connection, so its first round does not get NOSCRIPT
        (a wait round would then block before loading it)."""
        try:
            await conn.send_packed_command(_pack(("SCRIPT", "LOAD", _scripts.DRAIN)), check_health=False)
            await conn.read_response(disable_decoding=True)
        except ResponseError:
            pass  # SCRIPT not allowed: the round gets NOSCRIPT and says so
        except (*_NETWORK_ERRORS, RedisError):
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _reader_id(self, link: _Link) -> bytes | None:
        conn = link.conn
        try:
            await conn.send_packed_command(_pack(("CLIENT", "ID")), check_health=False)
            reply = await conn.read_response(disable_decoding=True)
        except ResponseError:
            return None  # CLIENT not allowed: the reader polls with short BLPOP timeouts instead
        except (*_NETWORK_ERRORS, RedisError):
            return None
        return str(reply).encode()

    def _deliver(self, key: bytes, frames: list[bytes]) -> None:
        sub = self._subs.get(key) or self._closing.get(key)
        if sub is not None:
            sub._feed(frames)
        else:
            # its stream ended while the pop was in flight: put the frames back, in order
            self._returning_begin(key)
            self._background(self._push_back(key, frames, begun=True))

    def _returning_begin(self, key: bytes) -> None:
        entry = self._returning.get(key)
        if entry is None:
            entry = self._returning[key] = _GiveBacks()
        entry.in_flight += 1

    def _returning_end(self, key: bytes) -> None:
        entry = self._returning[key]
        entry.in_flight -= 1
        if entry.in_flight == 0:
            del self._returning[key]
            entry.landed.set()

    async def _push_back(self, key: bytes, frames: list[bytes], *, begun: bool = False) -> None:
        """LPUSH frames back to the head of their list (reversed, so the order is kept). A new
        subscription to the key waits until it has landed (``_returned``)."""
        if not begun:
            self._returning_begin(key)
        try:
            if self._closed or not frames:
                return
            with contextlib.suppress(RelayError, RedisError):
                await self._ctl.call(
                    ["LPUSH", key, *reversed(frames)],
                    op="stream give back (LPUSH)",
                    key=key.decode(),
                    idempotent=False,
                )
        finally:
            self._returning_end(key)

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
        _check_id("compat_hash", compat_hash)
        _check_id("message_id", message_id)
        key = work_queue_key(compat_hash)
        max_size = (self.work_queue_max_size or 0) if enforce_max_size else 0
        args = [
            "EVALSHA",
            self._enqueue_sha,
            3,
            key,
            f"ctr_enq:{key}",
            f"pos:{message_id}",
            message_id,
            max_size,
            self.message_queue_expire,
        ]
        op = "enqueue_work (EVALSHA RPUSH+INCR+SET)"
        ctr = int(await self._script(self._ctl, args, _scripts.ENQUEUE, op=op, key=key, idempotent=False))
        if ctr < 0:
            raise QueueFullError(
                f"work queue is full ({max_size} messages)", key=key, operation=op, max_size=max_size
            )
        return ctr

    async def dequeue_work(self, compat_hash: str, timeout: float) -> str | None:
        """Pop the next message id from ``work:{compat_hash}`` (``BLPOP``, waiting up to
        ``timeout`` seconds; 0 waits forever, as Redis), then ``INCR ctr_deq:work:{compat_hash}``
        as the reference does. Returns None on timeout.

        A connection lost while the ``BLPOP`` was pending raises ``RelayConnectionError``:
        if Redis had popped an id for it, that id is lost (as with the reference's BLPOP).
        """
        _check_id("compat_hash", compat_hash)
        key = work_queue_key(compat_hash)
        link = self._idle_dequeue.pop() if self._idle_dequeue else _Link(self, "dequeue", blocking=True)
        ok = False
        try:

            def lost(exc: BaseException) -> RelayError:
                return RelayConnectionError(
                    f"connection lost during BLPOP ({exc}); an id it popped, if any, is lost",
                    key=key,
                    operation="dequeue_work (BLPOP)",
                )

            reply = await link.call(
                ["BLPOP", key, timeout],
                op="dequeue_work (BLPOP)",
                key=key,
                idempotent=False,
                on_unknown=lost,
            )
            ok = True
        finally:
            if ok and not self._closed:
                self._idle_dequeue.append(link)
            else:
                await link.close()
        if reply is None:
            return None
        message_id = bytes(reply[1]).decode()
        with contextlib.suppress(RelayError):
            # the counter only feeds queue positions: the popped id is returned even if it fails
            await self._ctl.call(
                ["INCR", f"ctr_deq:{key}"], op="dequeue_work (INCR)", key=f"ctr_deq:{key}", idempotent=False
            )
        return message_id

    async def queue_position(self, message_id: str, compat_hash: str | None) -> QueuePosition:
        """Where ``message_id`` stands in ``work:{compat_hash}``, as the reference's event stream
        computes it from ``ctr_deq:``, ``ctr_enq:`` and ``pos:{message_id}`` (one ``MGET``):
        ``position = max(pos - deq, 0)``, ``size = max(enq - deq, position)``. Without a
        compat hash: ``(0, 1)``, as the reference."""
        _check_id("message_id", message_id)
        if compat_hash is None:
            return QueuePosition(0, 1)
        key = work_queue_key(_check_id("compat_hash", compat_hash))
        deq, enq, pos = await self._ctl.call(
            ["MGET", f"ctr_deq:{key}", f"ctr_enq:{key}", f"pos:{message_id}"],
            op="queue_position (MGET)",
            key=key,
            idempotent=True,
        )
        qdeq = int(deq) if deq is not None else 0
        qenq = int(enq) if enq is not None else 0
        mpos = int(pos) if pos is not None else 0
        qpos = max(mpos - qdeq, 0)
        return QueuePosition(qpos, max(qenq - qdeq, qpos))
