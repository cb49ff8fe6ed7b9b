"""Group commit: the batch a flush sends, and what its round trip tells each frame's owner.

A frame's owner is either the future a ``Relay.publish`` call awaits, or a ``Publisher`` (which
counts its frames instead of holding a future for each). A batch is settled once, when its round
trip ends: every owner learns whether its frames were pushed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, Union

from oasst_shared.relay._errors import QueueFullError, RelayConnectionError, RelayError, RelayPublishError
from oasst_shared.schemas import inference

if TYPE_CHECKING:
    from oasst_shared.relay._relay import Relay

__all__ = ["DEFAULT_PUBLISHER_LIMIT", "Publisher"]

DEFAULT_PUBLISHER_LIMIT: Final = 4096
"""Frames a ``Publisher`` may have in flight before ``drain`` waits for their round trips."""

_Owner = Union["asyncio.Future[None]", "Publisher"]


class _Batch:
    """The frames of one flush, by key, each with its owner (in the same order)."""

    __slots__ = ("frames", "owners")

    def __init__(self) -> None:
        self.frames: dict[bytes, list[bytes]] = {}
        self.owners: dict[bytes, list[_Owner]] = {}

    def add(self, key: bytes, data: bytes, owner: _Owner) -> None:
        frames = self.frames.get(key)
        if frames is None:
            frames = self.frames[key] = []
            self.owners[key] = []
        frames.append(data)
        self.owners[key].append(owner)

    def settle(self, accepted: dict[bytes, int], op: str, limit: int) -> None:
        """The round trip succeeded: each key's first ``accepted[key]`` frames were pushed, the
        rest did not fit under the queue's maximum length."""
        publishers: dict[Publisher, int] = {}
        for key, owners in self.owners.items():
            took = accepted.get(key, 0)
            for i, owner in enumerate(owners):
                if isinstance(owner, Publisher):
                    publishers[owner] = publishers.get(owner, 0) + 1
                    if i >= took:
                        owner._failed(_queue_full(key, op, limit))
                elif not owner.done():
                    if i < took:
                        owner.set_result(None)
                    else:
                        owner.set_exception(_queue_full(key, op, limit))
        for pub, n in publishers.items():
            pub._settled(n)

    def fail(self, exc: RelayError) -> None:
        """The round trip failed (or never happened): every owner gets ``exc``, re-addressed to
        its frame's key."""
        publishers: dict[Publisher, int] = {}
        for key, owners in self.owners.items():
            err = _for_key(exc, key.decode(), len(owners))
            for owner in owners:
                if isinstance(owner, Publisher):
                    publishers[owner] = publishers.get(owner, 0) + 1
                    owner._failed(err)
                elif not owner.done():
                    owner.set_exception(err)
        for pub, n in publishers.items():
            pub._settled(n)

    def withdraw(self, publisher: Publisher) -> None:
        """Take the frames of ``publisher`` out of this (not yet sent) batch: a publisher whose
        frame failed pushes nothing after it, so what reaches Redis is a prefix of what it sent
        to each queue (no gap a reader could not see)."""
        withdrawn = 0
        for key in list(self.owners):
            owners = self.owners[key]
            keep = [i for i, o in enumerate(owners) if o is not publisher]
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
            publisher._settled(withdrawn)


def _queue_full(key: bytes, op: str, limit: int) -> QueueFullError:
    return QueueFullError(
        f"message queue is full ({limit} frames): frame not pushed",
        key=key.decode(),
        operation=op,
        max_size=limit,
    )


def _for_key(exc: RelayError, key: str, frames: int) -> RelayError:
    """``exc`` (about a whole round trip) as the error of one key's frames."""
    err: RelayError
    if isinstance(exc, RelayPublishError):
        err = RelayPublishError(exc.detail, key=key, operation=exc.operation, frames=frames)
    elif isinstance(exc, RelayConnectionError):
        err = RelayConnectionError(exc.detail, key=key, operation=exc.operation)
    else:
        err = RelayError(exc.detail, key=key, operation=exc.operation)
    err.__cause__ = exc.__cause__
    return err


class Publisher:
    """Publishes frames without awaiting each one's round trip: ``send`` queues a frame for the
    relay's next group commit and returns at once; ``drain`` and ``flush`` are where its
    outcome is learnt, as ``asyncio.StreamWriter``'s ``write`` and ``drain``.

    Made by ``Relay.publisher()``; one per producer (e.g. per worker connection). Frames keep
    their ``send`` order within each queue, and what reaches Redis is always a prefix of what
    was sent: after a frame fails, the frames sent after it are not pushed, and every later
    ``send``, ``drain`` and ``flush`` raises that first error (``QueueFullError``,
    ``RelayConnectionError``: not pushed; ``RelayPublishError``: maybe pushed, never resent).

    ``async with relay.publisher() as pub:`` flushes on a normal exit.
    """

    __slots__ = ("_error", "_in_flight", "_limit", "_relay", "_waiters")

    def __init__(self, relay: Relay, limit: int = DEFAULT_PUBLISHER_LIMIT) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        self._relay = relay
        self._limit = limit
        self._in_flight = 0
        self._error: RelayError | None = None
        self._waiters: list[tuple[asyncio.Future[None], int]] = []

    @property
    def in_flight(self) -> int:
        """Frames sent whose round trip has not ended yet."""
        return self._in_flight

    @property
    def error(self) -> RelayError | None:
        """The first error of this publisher's frames, if any (raised by every later call)."""
        return self._error

    def send(self, message_id: str, frame: bytes | bytearray | memoryview | inference.WorkerResponse) -> None:
        """Queue one ``WorkerResponse`` for ``message:{message_id}`` (bytes forwarded unchanged,
        or a struct encoded by the codec) in the relay's next round trip; returns at once.

        Raises the publisher's first error if a frame of it already failed (nothing queued),
        ``RelayError`` if the relay is closed, ``ValueError``/``TypeError`` for a bad id or frame.
        """
        if self._error is not None:
            raise self._error
        self._relay._enqueue(message_id, frame, self)
        self._in_flight += 1

    async def drain(self) -> None:
        """Raise the first error of this publisher's frames, if any; then wait, only while more
        than ``limit`` of its frames are in flight, for their round trips (flow control: a
        producer that calls this after each ``send`` never runs ahead of Redis unboundedly)."""
        await self._wait(self._limit)

    async def flush(self) -> None:
        """Wait until every frame sent so far has had its round trip; raise the first error of
        this publisher's frames, if any (nothing lost silently)."""
        await self._wait(0)

    async def _wait(self, threshold: int) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if self._in_flight <= threshold:
                return
            entry = (asyncio.get_running_loop().create_future(), threshold)
            self._waiters.append(entry)
            try:
                await entry[0]
            finally:
                self._waiters.remove(entry)

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            await self.flush()

    # called by the batch when its round trip ends

    def _failed(self, err: RelayError) -> None:
        if self._error is None:
            self._error = err
            self._relay._withdraw(self)

    def _settled(self, n: int) -> None:
        self._in_flight -= n
        for fut, threshold in self._waiters:
            if (self._error is not None or self._in_flight <= threshold) and not fut.done():
                fut.set_result(None)
