"""``Subscription``: the consumer's end of one message queue, over the reader's ``Inbox``.

It talks to the reader through a narrow interface (``open``, ``close``, ``resume``,
``collect_in_flight``, ``down_since``) and to the give-backs (``landed``, ``begin``, ``push``,
``end``); the reader delivers into the inbox and never touches the subscription.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from oasst_shared.relay._errors import RelayConnectionError, RelayError
from oasst_shared.relay._inbox import Inbox
from oasst_shared.relay._keys import message_queue_key
from oasst_shared.relay._reader import Reader

if TYPE_CHECKING:  # the public constructor takes the relay; at run time only its shards are used
    from oasst_shared.relay import Relay

__all__ = ["Subscription"]


class Subscription:
    """The local end of one message queue: frames the relay's reader drained for it.

    Made by ``Relay.subscribe``; used as an async context manager. One subscription per
    message queue per relay at a time. Frames are bytes exactly as stored in Redis.
    """

    _reader: Reader
    _inbox: Inbox

    def __init__(self, relay: Relay, message_id: str) -> None:
        self._shards = relay._shards
        self.message_id = message_id
        """The message whose queue this reads."""
        self.key = message_queue_key(message_id)
        """The Redis key read: ``message:{message_id}`` (on a Redis Cluster, with its shard's hash
        tag in front of the id once entered)."""
        self._entered = False
        self._closed = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Subscription:
        if self._entered:
            raise RelayError("a subscription is entered once", key=self.key, operation="subscribe")
        shard = await self._shards.shard(self.message_id, self.key, "stream")
        self._entered = True
        self._reader = shard.reader
        self.key = shard.keys.message(self.message_id)
        self._inbox = Inbox(self.key)
        # frames an earlier subscription to this queue gave back are older than any still in
        # the list: wait until they are back at its head before reading it again
        await self._reader.givebacks.landed(self._inbox.bkey)
        self._reader.open(self._inbox)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def next_batch(self, timeout: float | None = None) -> list[bytes]:
        """Every frame received and not yet taken, in queue order; waits up to ``timeout``
        seconds for one (None: no limit). Returns an empty list on timeout.

        Raises ``RelayError`` once the relay is closed, and ``RelayConnectionError`` when the
        wait timed out while Redis was unreachable.
        """
        if not self._entered:
            raise RelayError("subscription is not entered (async with)", key=self.key, operation="next_batch")
        inbox = self._inbox
        if not inbox.frames and inbox.error is None:
            if self._closed:
                raise RelayError("subscription is closed", key=self.key, operation="next_batch")
            loop = asyncio.get_running_loop()
            w = inbox.waiter = loop.create_future()
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
                inbox.waiter = None
        if inbox.frames:
            out = inbox.take()
            if inbox.paused:
                self._reader.resume(inbox)
            return out
        if inbox.error is not None:
            raise inbox.error
        if self._reader.health.down_since is not None:
            raise RelayConnectionError(
                "no frame within the timeout and Redis is unreachable", key=self.key, operation="BLPOP"
            )
        return []

    def timeout_error(self, waited: float) -> RelayError:
        """The error of a stream that got no frame for ``waited`` seconds, saying why."""
        return self._reader.health.timeout_error(self.key, waited)

    def _on_timer(self) -> None:
        self._timer = None
        w = self._inbox.waiter
        if w is None or w.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
        else:
            w.set_result(None)

    def give_back(self, frames: list[bytes]) -> None:
        """Put frames taken but not used back at the head of the local buffer (in order)."""
        self._inbox.frames.extendleft(reversed(frames))

    async def aclose(self) -> None:
        """Stop reading the queue. Frames received but not taken go back to the head of the
        Redis list, in order, so another reader (or a later subscription) gets them."""
        if self._closed:
            return
        self._closed = True
        if not self._entered:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reader, inbox = self._reader, self._inbox
        givebacks = reader.givebacks
        # a new subscription to this queue waits until what this one gives back has landed
        givebacks.begin(inbox.bkey)
        handed_over = False
        try:
            reader.close(inbox)  # rounds from now on leave this queue out
            # A round already in flight may have popped newer frames of this queue: they come
            # here too, so that all the frames taken from the list go back at once, in order
            # (two separate pushes to the head would put the newer frames first).
            if inbox.frames:  # (with none, what the round pops goes back by itself, in order)
                await reader.collect_in_flight(inbox)
            leftover = inbox.take()
            if leftover:
                handed_over = True
                await givebacks.push(inbox.bkey, leftover, begun=True)
        finally:
            if not handed_over:
                givebacks.end(inbox.bkey)
