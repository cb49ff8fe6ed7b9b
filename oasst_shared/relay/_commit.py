"""Group commit: every frame published in one event-loop iteration, to any queues, goes to Redis
in one round trip (one ``EVALSHA`` of the PUBLISH script), and frames published while that round
trip is in flight form the next one. One round trip at a time keeps each queue's frames in order.

* ``Batch``: the frames of one round trip, by key, each with its owner, settled once when the
  round trip ends. An owner is the future a ``publish`` call awaits, or a ``Tally``.
* ``Tally``: a producer's frames counted instead of a future each (what a ``Publisher`` holds):
  how many are in flight, the first failure, and the waits for either.
* ``GroupCommit``: the pending batch and the flusher task that sends one batch at a time.

Nothing here knows the ``Relay``: it is handed a ``GroupCommit``, and the batches settle their
own owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import Callable
from typing import Final, Union

from redis.exceptions import ResponseError

from oasst_shared import codec
from oasst_shared.relay._errors import (
    QueueFullError,
    RelayError,
    RelayFrameError,
    RelayPublishError,
    readdressed,
)
from oasst_shared.relay._keys import REFERENCE_KEYS, KeyLayout, check_id
from oasst_shared.relay._link import Link, response_error
from oasst_shared.relay._scripts import PUBLISH, Script
from oasst_shared.schemas import inference

__all__ = ["PUBLISH_OP", "Batch", "Frame", "GroupCommit", "Owner", "Tally", "checked_frame"]

Frame = Union[bytes, bytearray, memoryview]
"""A frame as given to a publish: JSON bytes, forwarded unchanged."""

PUBLISH_OP: Final = "publish (EVALSHA RPUSH+EXPIRE)"

_RESPONSE_TYPES: Final = typing.get_args(inference.WorkerResponse)
_encode: Final = codec.worker_response.encode


class Tally:
    """The frames of one producer in flight, counted: a batch settles them by number, and the
    producer's first failure withdraws its frames still waiting for a round trip, so that what
    reaches Redis is a prefix of what it sent to each queue (no gap a reader could not see)."""

    __slots__ = ("error", "in_flight", "waiters", "withdraw")

    def __init__(self, withdraw: Callable[[Tally], None]) -> None:
        self.withdraw = withdraw
        """Takes the tally's frames out of every batch not yet sent (its relay's)."""
        self.in_flight = 0
        self.error: RelayError | None = None
        self.waiters: list[tuple[asyncio.Future[None], int]] = []

    def failed(self, err: RelayError) -> None:
        if self.error is None:
            self.error = err
            self.withdraw(self)

    def settled(self, n: int) -> None:
        self.in_flight -= n
        for fut, threshold in self.waiters:
            if (self.error is not None or self.in_flight <= threshold) and not fut.done():
                fut.set_result(None)

    async def wait(self, threshold: int) -> None:
        """Raise the first failure, if any; else wait while more than ``threshold`` are in flight."""
        while True:
            if self.error is not None:
                raise self.error
            if self.in_flight <= threshold:
                return
            entry = (asyncio.get_running_loop().create_future(), threshold)
            self.waiters.append(entry)
            try:
                await entry[0]
            finally:
                self.waiters.remove(entry)


Owner = Union["asyncio.Future[None]", Tally]


class Batch:
    """The frames of one flush, by key, each with its owner (in the same order)."""

    __slots__ = ("frames", "owners")

    def __init__(self) -> None:
        self.frames: dict[bytes, list[bytes]] = {}
        self.owners: dict[bytes, list[Owner]] = {}

    def add(self, key: bytes, data: bytes, owner: Owner) -> None:
        frames = self.frames.get(key)
        if frames is None:
            frames = self.frames[key] = []
            self.owners[key] = []
        frames.append(data)
        self.owners[key].append(owner)

    def settle(self, accepted: dict[bytes, int | RelayError], op: str, limit: int) -> None:
        """The round trip succeeded: each key's first ``accepted[key]`` frames were pushed, the
        rest did not fit under the queue's maximum length; a key whose push Redis refused has
        its error instead (none of its frames was pushed)."""
        tallies: dict[Tally, int] = {}
        for key, owners in self.owners.items():
            took = accepted.get(key, 0)
            for i, owner in enumerate(owners):
                err: RelayError | None = None
                if isinstance(took, RelayError):
                    err = took
                elif i >= took:
                    err = _queue_full(key, op, limit)
                if isinstance(owner, Tally):
                    tallies[owner] = tallies.get(owner, 0) + 1
                    if err is not None:
                        owner.failed(err)
                elif not owner.done():
                    if err is None:
                        owner.set_result(None)
                    else:
                        owner.set_exception(err)
        for tally, n in tallies.items():
            tally.settled(n)

    def fail(self, exc: RelayError) -> None:
        """The round trip failed (or never happened): every owner gets ``exc``, re-addressed to
        its frame's key."""
        tallies: dict[Tally, int] = {}
        for key, owners in self.owners.items():
            err = _for_key(exc, key.decode(), len(owners))
            for owner in owners:
                if isinstance(owner, Tally):
                    tallies[owner] = tallies.get(owner, 0) + 1
                    owner.failed(err)
                elif not owner.done():
                    owner.set_exception(err)
        for tally, n in tallies.items():
            tally.settled(n)

    def withdraw(self, tally: Tally) -> None:
        """Take the frames of ``tally`` out of this (not yet sent) batch."""
        withdrawn = 0
        for key in list(self.owners):
            owners = self.owners[key]
            keep = [i for i, o in enumerate(owners) if o is not tally]
            if len(keep) == len(owners):
                continue
            withdrawn += len(owners) - len(keep)
            if keep:
                frames = self.frames[key]
                self.frames[key] = [frames[i] for i in keep]
                self.owners[key] = [owners[i] for i in keep]
            else:
                del self.frames[key]
                del self.owners[key]
        if withdrawn:
            tally.settled(withdrawn)


def checked_frame(key: str, frame: Frame | inference.WorkerResponse, max_frame_size: int) -> bytes:
    """``frame`` as the bytes to push to ``key``: a struct encoded, bytes checked to be UTF-8
    (never stored to poison a reader); ``RelayFrameError`` when larger than ``max_frame_size``."""
    if isinstance(frame, bytes):
        data = frame
        if not data.isascii():  # ASCII is UTF-8; the rest is checked
            _check_utf8(data, key)
    elif isinstance(frame, (bytearray, memoryview)):
        data = bytes(frame)
        if not data.isascii():
            _check_utf8(data, key)
    elif isinstance(frame, _RESPONSE_TYPES):
        data = _encode(frame)
    else:
        raise TypeError(f"frame must be bytes or a WorkerResponse struct, got {type(frame).__name__}")
    if len(data) > max_frame_size:
        raise RelayFrameError(
            f"frame of {len(data)} bytes exceeds max_frame_size ({max_frame_size}): not pushed",
            key=key,
            operation="publish",
            size=len(data),
        )
    return data


def _check_utf8(data: bytes, key: str) -> None:
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        raise RelayFrameError(
            f"frame is not UTF-8 ({exc.reason} at byte {exc.start}): not pushed",
            key=key,
            operation="publish",
            size=len(data),
        ) from None


def _queue_full(key: bytes, op: str, limit: int) -> QueueFullError:
    return QueueFullError(
        f"message queue is full ({limit} frames): frame not pushed",
        key=key.decode(),
        operation=op,
        max_size=limit,
    )


def _for_key(exc: RelayError, key: str, frames: int) -> RelayError:
    """``exc`` (about a whole round trip) as the error of one key's frames."""
    err = readdressed(exc, key)
    if isinstance(err, RelayPublishError):
        err.frames = frames
    return err


class GroupCommit:
    """The pending batch and the flusher: one task that sends one batch at a time on ``link``.

    ``expire`` is each queue's expiry after a push (seconds), ``max_length`` the most frames a
    queue holds (0: no limit), ``max_frame_size`` the largest frame accepted (bytes): what the
    relay's readers decode, so a frame they would refuse is refused here, before it is stored.
    """

    def __init__(
        self,
        link: Link,
        *,
        expire: int,
        max_length: int,
        max_frame_size: int,
        keys: KeyLayout = REFERENCE_KEYS,
    ) -> None:
        self._link = link
        self._keys = keys
        self._max_frame_size = max_frame_size
        self._script = Script(PUBLISH)
        self._expire = expire
        self._max_length = max_length
        self._pending: Batch | None = None
        self._wake: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = False
        self._idle: asyncio.Event | None = None  # set whenever nothing is pending or in flight
        self.accepting = True
        """False once the relay is closing: ``enqueue`` refuses from then on."""

    def enqueue(self, message_id: str, frame: Frame | inference.WorkerResponse, owner: Owner) -> None:
        """Add one frame to the batch of the next round trip."""
        if not isinstance(message_id, str) or not message_id:
            check_id("message_id", message_id)
        key = self._keys.message(message_id)
        try:
            bkey = key.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"message_id cannot be encoded as UTF-8 ({exc.reason}): {message_id!r}"
            ) from None
        self.add(bkey, self.prepare(key, frame), owner)

    def prepare(self, key: str, frame: Frame | inference.WorkerResponse) -> bytes:
        """``frame`` as the bytes to push to ``key`` (``checked_frame``), while accepting."""
        data = checked_frame(key, frame, self._max_frame_size)
        if not self.accepting:
            raise RelayError("the relay is closed", key=key, operation="publish")
        return data

    def add(self, bkey: bytes, data: bytes, owner: Owner) -> None:
        """Add a prepared frame of queue ``bkey`` to the batch of the next round trip."""
        batch = self._pending
        if batch is None:
            batch = self._pending = Batch()
            self._wake_flusher()
        batch.add(bkey, data, owner)

    def withdraw(self, tally: Tally) -> None:
        """A frame of ``tally`` failed: its frames waiting for the next round trip stay out."""
        batch = self._pending
        if batch is not None:
            batch.withdraw(tally)

    async def wait_idle(self) -> None:
        """Return once nothing is pending and no round trip is in flight."""
        while self._flusher is not None and (self._pending is not None or self._flushing):
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()

    async def close(self, err: RelayError) -> None:
        """Stop the flusher; frames published since it last ran fail with ``err``."""
        self.accepting = False
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):  # its outcome went to the batch's owners
                await self._flusher
        unsent, self._pending = self._pending, None
        if unsent is not None:
            # (taken first: a publisher failing here withdraws from the pending batch, not this one)
            unsent.fail(err)

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
            return
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._pending
            if batch is None:
                if self._idle is not None:
                    self._idle.set()
                self._wake = loop.create_future()
                await self._wake
                continue
            self._pending = None
            if not batch.frames:  # every frame in it was withdrawn
                continue
            self._flushing = True
            try:
                await self.send(batch)
            except asyncio.CancelledError:
                batch.fail(
                    RelayPublishError(
                        "the flush was cancelled during its round trip: it may have been applied",
                        key=None,
                        operation="publish",
                    )
                )
                raise
            except Exception as exc:  # never leave a publisher waiting on a dead flusher
                err = RelayPublishError(
                    f"unexpected failure in the flush: {exc!r}", key=None, operation="publish"
                )
                err.__cause__ = exc
                batch.fail(err)
            finally:
                self._flushing = False

    async def send(self, batch: Batch) -> None:
        """One round trip for ``batch``; settles (or fails) every owner of its frames."""
        keys = list(batch.frames)
        args = self._script.command()
        args += [len(keys), *keys, self._expire, self._max_length]
        for k in keys:
            frames = batch.frames[k]
            args.append(len(frames))
            args.extend(frames)
        one_key = keys[0].decode() if len(keys) == 1 else None
        try:
            reply = await self._script.run(self._link, args, op=PUBLISH_OP, key=one_key, idempotent=False)
        except RelayError as exc:
            batch.fail(exc)
            return
        except Exception as exc:  # a script error: nothing can be trusted about this batch
            batch.fail(
                RelayPublishError(
                    f"Redis answered the publish with an error: {exc}", key=one_key, operation=PUBLISH_OP
                ),
            )
            return
        if (
            not isinstance(reply, list)
            or len(reply) != len(keys)
            or not all(isinstance(n, (int, bytes)) for n in reply)
        ):
            batch.fail(
                RelayPublishError(
                    f"Redis answered the publish with {reply!r:.80}, not a count per queue: it may "
                    "have been applied; not resent",
                    key=one_key,
                    operation=PUBLISH_OP,
                )
            )
            return
        accepted: dict[bytes, int | RelayError] = {}
        for k, n in zip(keys, reply, strict=True):
            if isinstance(n, int):
                accepted[k] = n
            else:  # Redis refused this queue's push: its text, as the error reply it was
                text = bytes(n).decode(errors="replace") if isinstance(n, bytes) else str(n)
                accepted[k] = response_error(ResponseError(text), key=k.decode(), op=PUBLISH_OP)
        batch.settle(accepted, PUBLISH_OP, self._max_length)
