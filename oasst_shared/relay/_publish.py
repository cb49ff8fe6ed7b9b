"""``Publisher``: frames sent into the relay's group commit without awaiting each one's round trip.

A publisher holds the relay's ``Shards`` (their group commits) and a ``Tally`` of its own frames; the batches
settle the tally, so nothing here waits on a future per frame or calls back into the relay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from oasst_shared.relay._commit import Tally
from oasst_shared.relay._errors import RelayError
from oasst_shared.schemas import inference

if TYPE_CHECKING:  # the public constructor takes the relay; at run time only its shards are used
    from oasst_shared.relay import Relay

__all__ = ["DEFAULT_PUBLISHER_LIMIT", "Publisher"]

DEFAULT_PUBLISHER_LIMIT: Final = 4096
"""Frames a ``Publisher`` may have in flight before ``drain`` waits for their round trips."""


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

    __slots__ = ("_enqueue", "_limit", "_tally")

    def __init__(self, relay: Relay, limit: int = DEFAULT_PUBLISHER_LIMIT) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        shards = relay._shards
        self._tally = Tally(shards.withdraw)
        self._enqueue = shards.enqueue
        self._limit = limit

    @property
    def in_flight(self) -> int:
        """Frames sent whose round trip has not ended yet."""
        return self._tally.in_flight

    @property
    def error(self) -> RelayError | None:
        """The first error of this publisher's frames, if any (raised by every later call)."""
        return self._tally.error

    def send(self, message_id: str, frame: bytes | bytearray | memoryview | inference.WorkerResponse) -> None:
        """Queue one ``WorkerResponse`` for ``message:{message_id}`` (bytes forwarded unchanged,
        or a struct encoded by the codec) in the relay's next round trip; returns at once.

        Raises the publisher's first error if a frame of it already failed (nothing queued),
        ``RelayError`` if the relay is closed, ``ValueError``/``TypeError`` for a bad id or frame.
        """
        tally = self._tally
        if tally.error is not None:
            raise tally.error
        self._enqueue(message_id, frame, tally)
        tally.in_flight += 1

    async def drain(self) -> None:
        """Raise the first error of this publisher's frames, if any; then wait, only while more
        than ``limit`` of its frames are in flight, for their round trips (flow control: a
        producer that calls this after each ``send`` never runs ahead of Redis unboundedly)."""
        await self._tally.wait(self._limit)

    async def flush(self) -> None:
        """Wait until every frame sent so far has had its round trip; raise the first error of
        this publisher's frames, if any (nothing lost silently)."""
        await self._tally.wait(0)

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            await self.flush()
