"""The reader: one task per relay that drains every local stream's queue, one round trip per round.

Its cost follows the frames, not the open streams. Each stream is registered for the reader's
doorbell (``_doorbell``): a publish pushes the stream's key onto the reader's doorbell list, so an
idle reader blocks on that one key, whatever the number of streams. Each round is one round trip:

* a **hot round**, while there is work: one ``EVALSHA`` of DRAIN popping the hot keys (they gave
  more than one frame when last drained: frames pile up between rounds), the streams opened
  since the last round, and the keys the doorbell named, and scanning the next ``COLD_SLICE``
  keys of a ring of every key (popped only if non-empty); then the doorbell's ``LPOP``.
* a **scan round**, every ``max(SCAN_EVERY, streams * SCAN_PACE)`` seconds: DRAIN scanning
  every key (packed once per stream set) for frames that rang no doorbell (a reference server's,
  or a bell lost with a connection). The only cost that grows with the streams (0.6 us of Redis
  CPU per key), paced to stay near 0.6% of a Redis core.
* a **wait round**, when there is no work: ``BLPOP`` on the doorbell alone; a new stream wakes
  it (``CLIENT UNBLOCK``, or a 50 ms poll without ``CLIENT``).

While frames flow, a round starts at most once per ``read_interval`` (its frames share it). No
key starves: one that is not hot is popped when its doorbell rings, by every scan round, and
within ``ceil(streams / COLD_SLICE)`` hot rounds (the ring). Each key is popped by this one
reader only: its frames arrive once, in order.

**Backup.** Each drain keeps what it popped in the reader's own list (``_drain``): a lost reply is
read back after reconnecting and delivered, once. **Delivery.** Frames go to the stream's
``Inbox``. A stream whose consumer falls ``stream_buffer`` frames behind is left out of the
rounds (paused) until it catches up: its frames wait in Redis, not in this process. Frames
popped for a stream that has ended meanwhile are given back to the head of their queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Coroutine
from typing import Any, Final

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from oasst_shared.relay._doorbell import Doorbell
from oasst_shared.relay._drain import DrainWire, ScanView
from oasst_shared.relay._errors import RelayConnectionError, RelayDataLossError, RelayError, readdressed
from oasst_shared.relay._giveback import GiveBacks
from oasst_shared.relay._health import Health
from oasst_shared.relay._inbox import Inbox
from oasst_shared.relay._link import BACKOFF, NETWORK_ERRORS, Link, bulk, response_error

__all__ = ["COLD_SLICE", "SCAN_EVERY", "SCAN_PACE", "Reader"]

COLD_SLICE: Final = 64
"""Keys that are not hot scanned per hot round."""
SCAN_EVERY: Final = 1.0
"""Seconds between scans of every key, at least (they find frames that rang no doorbell)."""
SCAN_PACE: Final = 100e-6
"""...and this many per open stream (0.6 us of Redis per key: scans stay near 0.6% of a core)."""
READ_OP: Final = "stream (EVALSHA LPOP)"


class Reader:
    """The one reader of a relay (or shard). ``link``: its blocking connection; ``control``: for
    ``CLIENT UNBLOCK`` and the backup's deletion; ``wire``: its drains (``DrainWire``: a seam)."""

    def __init__(
        self,
        link: Link,
        control: Link,
        givebacks: GiveBacks,
        *,
        read_interval: float,
        stream_buffer: int,
        backup_expire: int,
        retry_window: float,
        block_timeout: float = 1.0,
        wire: DrainWire | None = None,
    ) -> None:
        self._link = link
        self._control = control
        self.givebacks = givebacks
        self.read_interval = read_interval
        self.stream_buffer = stream_buffer
        self._block_timeout = block_timeout  # a new stream wakes the BLPOP sooner (CLIENT UNBLOCK)
        self._wait_timeout = block_timeout  # the one in use (or 0.05 to poll without CLIENT)
        self._inboxes: dict[bytes, Inbox] = {}
        self._closing: dict[bytes, Inbox] = {}  # closed, still taking an in-flight round's frames
        self._active: dict[bytes, None] = {}  # the keys the rounds read (not paused)
        self._bulks: dict[bytes, bytes] = {}  # each stream's key as a RESP bulk string
        self._ring: dict[bytes, None] = {}  # every key, in the order hot rounds scan them
        self._hot: dict[bytes, None] = {}  # keys the next hot round pops
        self._fresh: list[bytes] = []  # keys opened since the last round
        self._view: ScanView | None = None
        self._version = 0  # of the stream set
        self._changed: asyncio.Event | None = None
        self._in_round = False  # a round trip is in flight
        self._round_waiters: list[asyncio.Future[None]] = []  # woken when that round has ended
        self._blocked: int | None = None  # the stream set version the BLPOP was sent with
        self._client_id: bytes | None = None
        self._unblocking = False
        self._stopping = False
        self.health = Health(retry_window)
        """What the reader knows of Redis (reachable, answering, the same server)."""
        self._wire = wire if wire is not None else DrainWire(backup_expire)
        self._bell = Doorbell(self._wire.reader_id, backup_expire)
        self._next_scan = 0.0  # when the next round scans every key
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ the stream set

    def open(self, inbox: Inbox) -> None:
        """Start reading ``inbox``'s queue (one inbox per queue at a time)."""
        if self._stopping:
            raise RelayError("the relay is closed", key=inbox.key, operation="stream")
        key = inbox.bkey
        if key in self._inboxes:
            raise RelayError(
                "this relay already streams the queue (one local reader per message)",
                key=inbox.key,
                operation="stream",
            )
        self._inboxes[key] = inbox
        self._bulks[key] = bulk(key)
        self._include(key)
        self._bell.register(key)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def close(self, inbox: Inbox) -> None:
        """Stop reading ``inbox``'s queue."""
        key = inbox.bkey
        if self._inboxes.get(key) is inbox:
            del self._inboxes[key]
            del self._bulks[key]
            self._exclude(key)
            self._bell.unregister(key)

    def pause(self, inbox: Inbox) -> None:
        """Leave ``inbox``'s queue out of the rounds (its consumer is behind)."""
        inbox.paused = True
        if self._inboxes.get(inbox.bkey) is inbox and inbox.bkey in self._active:
            self._exclude(inbox.bkey)

    def resume(self, inbox: Inbox) -> None:
        """Read ``inbox``'s queue again (its consumer has taken what it had)."""
        inbox.paused = False
        if self._inboxes.get(inbox.bkey) is inbox and inbox.bkey not in self._active:
            self._include(inbox.bkey)

    def _include(self, key: bytes) -> None:
        self._active[key] = None
        self._ring[key] = None
        self._fresh.append(key)
        self._stream_set_changed()

    def _exclude(self, key: bytes) -> None:
        self._active.pop(key, None)
        self._ring.pop(key, None)
        self._hot.pop(key, None)
        self._stream_set_changed()

    def _stream_set_changed(self) -> None:
        self._version += 1
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.set()
        if self._blocked is not None and not self._unblocking and self._client_id is not None:
            self._unblocking = True
            self._background(self._unblock())

    async def _unblock(self) -> None:
        """Wake the reader's BLPOP (CLIENT UNBLOCK) so it blocks again on the new key set."""
        try:
            while not self._link.connector.closed and self._blocked not in (None, self._version):
                if self._client_id is None:
                    return
                try:
                    n = await self._control.call(
                        ["CLIENT", "UNBLOCK", self._client_id], op="CLIENT UNBLOCK", key=None, idempotent=True
                    )
                except (RelayError, RedisError):
                    return  # the BLPOP's timeout bounds the delay instead
                if n:
                    return
                # the BLPOP has not reached Redis yet (or just returned): look again shortly
                await asyncio.sleep(0.001)
        finally:
            self._unblocking = False

    async def collect_in_flight(self, inbox: Inbox) -> None:
        """While the round in flight (if any) ends, deliver this queue's frames from it to
        ``inbox``, which has just been closed. Bounded by the control link's command timeout: a
        round that does not end by then (Redis paused) is not waited for."""
        if not self._in_round:
            return
        self._closing[inbox.bkey] = inbox
        fut = asyncio.get_running_loop().create_future()
        self._round_waiters.append(fut)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(fut, self._control.connector.command_timeout)
        finally:
            if self._closing.get(inbox.bkey) is inbox:
                del self._closing[inbox.bkey]

    # ------------------------------------------------------------------ stopping

    async def stop(self) -> None:
        """Stop between round trips (a pop whose reply is cut off would be lost): wake the BLPOP,
        let the round deliver what it has, cancel the task only if it does not stop in 2 s. Then
        give back what the streams hold and wait for the give-backs."""
        self._stopping = True
        task = self._task
        if task is not None:
            if self._changed is not None:
                self._changed.set()
            if self._blocked is not None and self._client_id is not None:
                with contextlib.suppress(RelayError, RedisError):
                    await self._control.call(
                        ["CLIENT", "UNBLOCK", self._client_id], op="CLIENT UNBLOCK", key=None, idempotent=True
                    )
            _, pending = await asyncio.wait({task}, timeout=2.0)
            if pending:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        for inbox in list(self._inboxes.values()):
            leftover = inbox.take()
            if leftover:
                await self.givebacks.push(inbox.bkey, leftover)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if task is not None and not self._wire.unacked:  # the last drain's backup: delivered
            key, deadline = self._wire.backup_key, time.monotonic() + 0.5
            with contextlib.suppress(RelayError, RedisError):
                await self._control.call(
                    ["DEL", key], op="close (DEL)", key=key.decode(), idempotent=True, deadline=deadline
                )

    def fail_all(self, err_for: type[RelayError], message: str) -> None:
        """End every stream with ``err_for(message)`` naming its key."""
        for inbox in list(self._inboxes.values()):
            inbox.fail(err_for(message, key=inbox.key, operation="stream"))
        self._inboxes.clear()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the rounds

    async def _read_loop(self) -> None:
        link = self._link
        loop = asyncio.get_running_loop()
        generation = -1
        started = -float("inf")
        bell = self._bell
        while not self._stopping:
            if not self._active:
                assert self._changed is not None
                self._changed.clear()
                await self._changed.wait()
                continue
            scan_due = loop.time() >= self._next_scan
            waiting = not (scan_due or self._hot or self._fresh or bell.rung)
            if not waiting:
                delay = started + self.read_interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # the stream set may have changed (or emptied) meanwhile
            t0 = time.monotonic()
            try:
                conn = await link.connected(op="stream (BLPOP)", key=None, deadline=t0 + BACKOFF.cap)
            except RelayConnectionError as exc:
                # Redis unreachable (or refusing us): streams that time out meanwhile say so, and
                # every stream ends once that lasts the retry window (at once if waiting cannot help)
                self.health.went_down(exc)
                given_up = self.health.gave_up(exc)
                if given_up is not None:
                    for inbox in list(self._inboxes.values()):
                        self._end_stream(inbox, readdressed(given_up, inbox.key))
                await asyncio.sleep(max(0.0, t0 + BACKOFF.cap - time.monotonic()))
                continue
            except RelayError:
                return  # closed
            if waiting and (self._fresh or self._hot or bell.rung):
                continue  # a stream came as the connection was checked (no UNBLOCK yet): a round
            if link.generation != generation:
                generation = link.generation
                lost = self.health.loss(link.server, moved=link.moved)
                link.moved = False
                if lost is not None:
                    for inbox in list(self._inboxes.values()):
                        self._end_stream(inbox, RelayDataLossError(lost, key=inbox.key, operation="stream"))
                self._client_id = await self._wire.client_id(conn)
                self._wait_timeout = self._block_timeout if self._client_id is not None else 0.05
                await self._wire.load(conn)
                bell.refresh_now()  # the server may have lost the registrations, and rung no bell
                self._next_scan, waiting = 0.0, False
            self._in_round = True
            self.health.round_began(self._wait_timeout if waiting else 0.0)
            try:
                started = loop.time()
                if self._wire.unacked:
                    for key, frames in await self._wire.recover(conn):
                        self._deliver(key, frames)
                if waiting:
                    await self._wait_round(conn)
                elif loop.time() >= self._next_scan:
                    self._next_scan = started + max(SCAN_EVERY, len(self._active) * SCAN_PACE)
                    await self._scan_round(conn)
                else:
                    await self._hot_round(conn)
            except asyncio.CancelledError:
                raise
            except NoScriptError:
                await self._wire.load(conn)
            except ResponseError as exc:
                if link.connector.redirected(exc):  # a cluster slot moved: the round did not run
                    await link.redirect(exc)  # (the next goes to the slot's owner, as the map says)
                    await self._round_lost()
                    continue
                # Redis refused the round itself (e.g. the script is not allowed: NOPERM, or out
                # of memory). A key that is not a list does not get here: the drain reports it
                # alone. End every stream with the error.
                self._hot.clear()
                for inbox in list(self._inboxes.values()):
                    self._end_stream(inbox, response_error(exc, key=inbox.key, op=READ_OP))
            except (*NETWORK_ERRORS, RedisError) as exc:
                # Redis went away (restart, reset): reconnect with backoff and resume the same
                # keys; a pop is destructive, so nothing already delivered is read twice.
                self.health.went_down(exc)
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
                await self._round_lost()
            finally:
                self._in_round = False
                self.health.round_ended()
                waiters, self._round_waiters = self._round_waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)

    async def _round_lost(self) -> None:
        """A round failed before its reply: pause, then the next round scans every key."""
        await asyncio.sleep(BACKOFF.first)
        self._hot.clear()
        self._next_scan = 0.0

    async def _hot_round(self, conn: AbstractConnection) -> None:
        """Pop the hot keys, the fresh ones and the ones the doorbell named; scan a slice of the
        ring (keys that rang no bell: pushed by a reference server, say)."""
        active, hot = self._active, self._hot
        keys = list(hot)
        fresh, self._fresh = self._fresh, []
        for k in fresh:
            if k in active and k not in hot:
                hot[k] = None  # drained unconditionally this round (dropped if it yields nothing)
                keys.append(k)
        keep = len(keys)
        rung, self._bell.rung = self._bell.rung, {}
        keys += [k for k in rung if k in active and k not in hot]  # (a paused or closed one: not)
        nhot = len(keys)
        ring = self._ring
        for k in list(itertools.islice(ring, COLD_SLICE)):
            del ring[k]
            ring[k] = None  # to the end of the ring: scanned again after every other key
            if k not in hot and k not in rung:
                keys.append(k)
        await self._round(conn, self._wire.command(keys, self._body(keys), nhot), keys, keep)

    async def _scan_round(self, conn: AbstractConnection) -> None:
        """Drain every key (one round trip), packed once per change of the stream set."""
        view = self._view
        if view is None or view.version != self._version:
            keys = list(self._active)
            view = self._view = self._wire.scan_view(keys, self._body(keys), self._version)
        self._fresh.clear()  # every open stream's key is in the round
        self._bell.rung.clear()  # and every key a bell named
        await self._round(conn, view.scan, view.keys, 0)

    async def _round(self, conn: AbstractConnection, drain: bytes, keys: list[bytes], keep: int) -> None:
        """One round trip: registrations due, the drain, then the doorbell's ``LPOP``, pipelined."""
        head = self._bell.command(self._active)
        await self._wire.send(conn, drain, self._bell.pop_command(), head=head)
        err: ResponseError | None = None  # every reply is read before one is raised
        for part in ("head", "drain", "bell") if head else ("drain", "bell"):
            try:
                if part == "drain":
                    self._take(await self._read_reply(conn), keys, keep)
                else:
                    reply = await conn.read_response(disable_decoding=True)
                    self._bell.popped(reply if part == "bell" else None)
            except ResponseError as exc:
                self.health.answered()
                err = err or exc
        if err is not None:
            raise err

    async def _wait_round(self, conn: AbstractConnection) -> None:
        """Block on the doorbell alone (``BLPOP``): the same cost with 20 open streams or 20,000."""
        self._blocked = self._version
        try:
            await conn.send_packed_command(self._bell.wait_command(self._wait_timeout), check_health=False)
            reply = await conn.read_response(disable_decoding=True)
            self.health.answered()
            self._bell.popped(reply)
        finally:
            self._blocked = None

    def _body(self, keys: list[bytes]) -> bytes:
        """``keys`` as RESP bulk strings, packed once per stream when it opens."""
        return b"".join([self._bulks[k] for k in keys])

    async def _read_reply(self, conn: AbstractConnection) -> list[Any] | None:
        reply = await self._wire.read(conn)
        self.health.answered()
        return reply

    def _take(self, reply: list[Any] | None, keys: list[bytes], keep: int) -> bool:
        """Deliver a drain's reply; True if it had frames. The next hot set is the keys that gave
        more than one frame, or any frame if drained as hot (the first ``keep`` of ``keys``)."""
        hot: dict[bytes, None] = {}
        self._hot = hot
        if not reply:
            return False
        deliver, active = self._deliver, self._active
        for i in range(0, len(reply), 2):
            idx = int(reply[i]) - 1
            frames = reply[i + 1]
            if idx < 0:  # this key is not a list: end its stream, the others go on
                message = frames.decode(errors="replace") if isinstance(frames, bytes) else str(frames)
                inbox = self._inboxes.get(keys[-idx - 2]) or self._closing.get(keys[-idx - 2])
                if inbox is not None:
                    self._end_stream(inbox, response_error(ResponseError(message), key=inbox.key, op=READ_OP))
                continue
            key = keys[idx]
            if (idx < keep or len(frames) > 1) and key in active:
                hot[key] = None
            deliver(key, frames)
        return True

    def _end_stream(self, inbox: Inbox, err: RelayError) -> None:
        """Stop reading ``inbox``'s queue and end its stream with ``err``."""
        self.close(inbox)
        inbox.fail(err)

    def _deliver(self, key: bytes, frames: list[bytes]) -> None:
        inbox = self._inboxes.get(key) or self._closing.get(key)
        if inbox is None:
            # its stream ended while the pop was in flight: put the frames back, in order
            self.givebacks.begin(key)
            self._background(self.givebacks.push(key, frames, begun=True))
            return
        inbox.feed(frames)
        if not inbox.paused and len(inbox.frames) >= self.stream_buffer:
            # the consumer is behind: further frames wait in Redis (bounded by the queue's
            # maximum length), not in this process
            self.pause(inbox)
