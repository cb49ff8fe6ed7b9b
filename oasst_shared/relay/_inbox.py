"""``Inbox``: one stream's frames between the reader, which feeds them, and the consumer
(``Subscription``), which takes them."""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Inbox"]


class Inbox:
    """One stream's frames, drained by the reader and not yet taken by its consumer."""

    __slots__ = ("bkey", "error", "frames", "key", "paused", "waiter")

    def __init__(self, key: str) -> None:
        self.key = key
        self.bkey = key.encode()
        self.frames: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None  # the consumer waiting for frames
        self.error: BaseException | None = None  # the stream ended with this
        self.paused = False  # left out of the rounds until the consumer catches up

    def feed(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)
        self.wake()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.wake()

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take(self) -> list[bytes]:
        out = list(self.frames)
        self.frames.clear()
        return out
