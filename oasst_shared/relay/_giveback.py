"""Give-backs: frames drained from a queue but never used go back to its head (``LPUSH``), in order.

A stream that closes early gives back what it holds; frames the reader popped for a stream that
ended meanwhile go back too. While a give-back to a key is in flight, a new stream on that key
waits (``landed``): the frames given back are older than any still in the list.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError

from oasst_shared.relay._errors import RelayError
from oasst_shared.relay._link import Link

__all__ = ["GiveBacks"]


class _InFlight:
    """The give-backs in flight for one key."""

    __slots__ = ("count", "landed")

    def __init__(self) -> None:
        self.count = 0
        self.landed = asyncio.Event()  # set once none is in flight


class GiveBacks:
    """The give-backs in flight, per key, sent on ``link``."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._in_flight: dict[bytes, _InFlight] = {}

    def begin(self, key: bytes) -> None:
        """A give-back to ``key`` is coming: streams opened on it from now on wait for it."""
        entry = self._in_flight.get(key)
        if entry is None:
            entry = self._in_flight[key] = _InFlight()
        entry.count += 1

    def end(self, key: bytes) -> None:
        """A give-back begun with ``begin`` has landed (or was not needed)."""
        entry = self._in_flight[key]
        entry.count -= 1
        if entry.count == 0:
            del self._in_flight[key]
            entry.landed.set()

    async def landed(self, key: bytes) -> None:
        """Wait until no give-back to ``key`` is in flight."""
        while (entry := self._in_flight.get(key)) is not None:
            await entry.landed.wait()

    async def push(self, key: bytes, frames: list[bytes], *, begun: bool = False) -> None:
        """``LPUSH`` ``frames`` back to the head of ``key`` (reversed, so their order is kept),
        then ``end`` the give-back (``begin`` it first unless ``begun``). Nothing is pushed once
        the relay is closed; a failure is not retried (the frames were the reader's to deliver,
        and a second push could duplicate them)."""
        if not begun:
            self.begin(key)
        try:
            if self._link.connector.closed or not frames:
                return
            with contextlib.suppress(RelayError, RedisError):
                await self._link.call(
                    ["LPUSH", key, *reversed(frames)],
                    op="stream give back (LPUSH)",
                    key=key.decode(),
                    idempotent=False,
                )
        finally:
            self.end(key)
