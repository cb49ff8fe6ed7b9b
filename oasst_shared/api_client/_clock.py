"""The clock the retry loop reads and waits on: anyio's by default, a test's fake when given.

::

    class Recorder:  # waits for nothing, remembers each wait
        def __init__(self) -> None:
            self.waits: list[float] = []

        def now(self) -> float:
            return anyio.current_time()

        async def sleep(self, seconds: float) -> None:
            self.waits.append(seconds)

    OasstApiClient(url, key, clock=Recorder())
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["AnyioClock", "Clock"]


class Clock(Protocol):
    """What the client's retry loop needs of time: the current time and a wait."""

    def now(self) -> float:
        """Seconds on a monotonic clock (only differences are used)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt."""
        ...


class AnyioClock:
    """The event loop's own clock and sleep (asyncio's or trio's, through anyio)."""

    def now(self) -> float:
        """``anyio.current_time()``."""
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "AnyioClock()"
