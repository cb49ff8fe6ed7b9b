"""Work queues, as the reference server keeps them: ``work:{compat_hash}`` lists of message ids,
their ``ctr_enq:``/``ctr_deq:`` counters and each message's ``pos:{message_id}``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import NamedTuple

from oasst_shared.relay._connector import Connector
from oasst_shared.relay._errors import QueueFullError, RelayConnectionError, RelayError
from oasst_shared.relay._keys import REFERENCE_KEYS, KeyLayout, check_id
from oasst_shared.relay._link import Link, reply_int, reply_list
from oasst_shared.relay._scripts import ENQUEUE, Script

__all__ = ["QueuePosition", "WorkQueues"]


class QueuePosition(NamedTuple):
    """A pending message's place in its work queue, as the reference's event stream computes it."""

    position: int
    """How many messages are ahead of it (``max(pos - ctr_deq, 0)``)."""
    size: int
    """How many messages are queued (``max(ctr_enq - ctr_deq, position)``)."""


class WorkQueues:
    """The work-queue calls of a relay: enqueue and positions on ``control``, each dequeue's
    ``BLPOP`` on a blocking link of its own (kept for the next dequeue once it is done).

    ``expire`` is the ``pos:`` keys' expiry; ``max_size`` the most ids a queue holds (0: none).
    """

    def __init__(
        self,
        connector: Connector,
        control: Link,
        *,
        expire: int,
        max_size: int,
        keys: KeyLayout = REFERENCE_KEYS,
    ) -> None:
        self._keys = keys
        self._connector = connector
        self._control = control
        self._expire = expire
        self._max_size = max_size
        self._enqueue = Script(ENQUEUE)
        self._idle: list[Link] = []  # blocking links of finished dequeues
        self._pollers: dict[float, _PositionPoller] = {}

    async def enqueue(self, compat_hash: str, message_id: str, *, enforce_max_size: bool) -> int:
        """``RPUSH`` + ``INCR ctr_enq:`` + ``SET pos:`` in one script call; returns the counter."""
        check_id("compat_hash", compat_hash)
        check_id("message_id", message_id)
        key = self._keys.work(compat_hash)
        max_size = self._max_size if enforce_max_size else 0
        args = self._enqueue.command()
        pos = self._keys.position(message_id)
        args += [3, key, f"ctr_enq:{key}", pos, message_id, max_size, self._expire]
        op = "enqueue_work (EVALSHA RPUSH+INCR+SET)"
        reply = await self._enqueue.run(self._control, args, op=op, key=key, idempotent=False)
        ctr = reply_int(reply, op=op, key=key)
        if ctr < 0:
            raise QueueFullError(
                f"work queue is full ({max_size} messages)", key=key, operation=op, max_size=max_size
            )
        return ctr

    async def dequeue(self, compat_hash: str, timeout: float) -> str | None:
        """``BLPOP`` then ``INCR ctr_deq:``; None on timeout."""
        check_id("compat_hash", compat_hash)
        key = self._keys.work(compat_hash)
        link = self._idle.pop() if self._idle else Link(self._connector, "dequeue", blocking=True)
        op = "dequeue_work (BLPOP)"

        def lost(exc: BaseException) -> RelayError:
            return RelayConnectionError(
                f"connection lost during BLPOP ({exc}); an id it popped, if any, is lost",
                key=key,
                operation=op,
            )

        ok = False
        try:
            reply = await link.call(
                ["BLPOP", key, timeout], op=op, key=key, idempotent=False, on_unknown=lost
            )
            ok = True
        finally:
            if ok and not self._connector.closed:
                self._idle.append(link)
            else:
                await link.close()
        if reply is None:
            return None
        popped = reply_list(reply, 2, op=op, key=key)[1]
        if not isinstance(popped, bytes):
            raise RelayError(f"Redis answered {reply!r:.80} to BLPOP", key=key, operation=op)
        message_id = popped.decode(errors="replace")
        with contextlib.suppress(RelayError):
            # the counter only feeds queue positions: the popped id is returned even if it fails
            await self._control.call(
                ["INCR", f"ctr_deq:{key}"], op="dequeue_work (INCR)", key=f"ctr_deq:{key}", idempotent=False
            )
        return message_id

    async def position(self, message_id: str, compat_hash: str | None) -> QueuePosition:
        """The reference's ``(max(pos - deq, 0), max(enq - deq, position))`` from one ``MGET``."""
        check_id("message_id", message_id)
        if compat_hash is None:
            return QueuePosition(0, 1)
        key = self._keys.work(check_id("compat_hash", compat_hash))
        op = "queue_position (MGET)"
        keys = [f"ctr_deq:{key}", f"ctr_enq:{key}", self._keys.position(message_id)]
        reply = await self._control.call(["MGET", *keys], op=op, key=key, idempotent=True)
        deq, enq, pos = (
            0 if v is None else reply_int(v, op=op, key=k)
            for v, k in zip(reply_list(reply, 3, op=op, key=key), keys, strict=True)
        )
        qpos = max(pos - deq, 0)
        return QueuePosition(qpos, max(enq - deq, qpos))

    async def close(self) -> None:
        """Stop the position pollers; close the idle dequeue links."""
        for poller in self._pollers.values():
            await poller.close()
        self._pollers.clear()
        for link in self._idle:
            await link.close()
        self._idle.clear()

    async def shared_position(self, message_id: str, compat_hash: str, max_age: float) -> QueuePosition:
        """A reading at most ``max_age`` seconds old, from the poller that reads every message
        asked for at that age in one ``MGET`` per ``max_age``."""
        check_id("message_id", message_id)
        check_id("compat_hash", compat_hash)
        poller = self._pollers.get(max_age)
        if poller is None:
            poller = self._pollers[max_age] = _PositionPoller(self._control, max_age, self._keys)
        return await poller.get(message_id, compat_hash)


class _PositionPoller:
    """The positions of every message asked for recently, read in one ``MGET`` per ``max_age``
    (the counters of each work queue once, and each message's ``pos:``): what the reference's
    event stream reads with three round trips per waiting chat per second. A message not asked
    for in two rounds leaves the poll; the task stops when none is left."""

    def __init__(self, control: Link, max_age: float, keys: KeyLayout) -> None:
        self._keys = keys
        self._control = control
        self._max_age = max_age
        self._asked: dict[tuple[str, str], float] = {}  # (message id, compat hash) -> last asked
        self._readings: dict[tuple[str, str], QueuePosition] = {}
        self._read_at = -float("inf")  # when the readings' MGET was sent
        self._next: asyncio.Future[None] | None = None  # the next reading's outcome
        self._task: asyncio.Task[None] | None = None

    async def get(self, message_id: str, compat_hash: str) -> QueuePosition:
        key = (message_id, compat_hash)
        loop = asyncio.get_running_loop()
        asked = time.monotonic()
        while True:
            self._asked[key] = time.monotonic()
            reading = self._readings.get(key)
            fresh = self._read_at >= asked or time.monotonic() - self._read_at <= self._max_age
            if reading is not None and fresh:
                return reading  # (else the next reading: at most max_age old, or made since asked)
            if self._next is None or self._next.done():
                self._next = loop.create_future()
            waiter = self._next
            if self._task is None or self._task.done():
                self._task = loop.create_task(self._run())
            await asyncio.shield(waiter)  # (raises the reading's error)

    async def _run(self) -> None:
        read_started = -float("inf")
        while True:
            # a message leaves the poll once nobody asked for it over two rounds, and never while
            # someone waits for it (asked since the last read began: that read does not have it)
            cutoff = min(time.monotonic() - 2 * self._max_age, read_started)
            for key in [k for k, at in self._asked.items() if at < cutoff]:
                del self._asked[key]
                self._readings.pop(key, None)
            waiter, self._next = self._next, None
            if not self._asked:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)  # (nobody left; a late caller starts the poll again)
                return
            read_started = time.monotonic()
            try:
                self._readings = await self._read(list(self._asked))
                self._read_at = read_started
            except RelayError as exc:
                self._readings = {}
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # (retrieved: a caller may have gone)
            else:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            await asyncio.sleep(self._max_age)

    async def _read(self, asked: list[tuple[str, str]]) -> dict[tuple[str, str], QueuePosition]:
        work, at = self._keys.work, self._keys.position
        queues = list(dict.fromkeys(work(h) for _, h in asked))
        keys = [k for q in queues for k in (f"ctr_deq:{q}", f"ctr_enq:{q}")]
        keys += [at(m) for m, _ in asked]
        op = "queue_position (MGET)"
        reply = reply_list(
            await self._control.call(["MGET", *keys], op=op, key=None, idempotent=True),
            len(keys),
            op=op,
            key=None,
        )
        values = [0 if v is None else reply_int(v, op=op, key=k) for v, k in zip(reply, keys, strict=True)]
        counters = {q: (values[2 * i], values[2 * i + 1]) for i, q in enumerate(queues)}
        out = {}
        for (message_id, compat_hash), pos in zip(asked, values[2 * len(queues) :], strict=True):
            deq, enq = counters[work(compat_hash)]
            position = max(pos - deq, 0)
            out[(message_id, compat_hash)] = QueuePosition(position, max(enq - deq, position))
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._next is not None and not self._next.done():
            self._next.set_exception(RelayError("the relay is closed", key=None, operation="queue_position"))
            self._next.exception()
