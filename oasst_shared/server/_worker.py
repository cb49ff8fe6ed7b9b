"""``WorkerConnection``: a worker websocket's receive loop into the relay.

Token and plugin frames are peeked (tag and ``request_id``) and published as the same bytes
through the connection's ``Publisher``, to the message this connection dispatched the request
for; every other frame is decoded and handed to the caller. A frame for a request this
connection did not dispatch (or already finished) is dropped and logged at WARNING, naming its
type and request id, never its text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from oasst_shared import codec
from oasst_shared.relay import DEFAULT_PUBLISHER_LIMIT, Publisher, Relay, RelayError
from oasst_shared.schemas import inference
from oasst_shared.server._metrics import ServerMetrics, TokenTally

__all__ = ["DispatchedRequest", "OnResponse", "WebSocketReceiver", "WorkerConnection"]

log = logging.getLogger("oasst_shared.server")

STREAMED: Final = frozenset({"token", "plugin_intermediate"})
"""Frames published as the bytes the worker sent."""
UNROUTED: Final = frozenset({"pong", "general_error"})
"""Frames about the worker, not a request: handed over even when their request id is unknown."""
SERVER_ONLY: Final = frozenset({"internal_finished_message", "internal_error"})
"""Frames only a server writes: a worker's are dropped."""


@dataclass(slots=True, eq=False)
class DispatchedRequest:
    """A ``WorkRequest`` this connection sent, and the message it is for."""

    request_id: str
    """The ``WorkRequest``'s id: the worker's frames name it as ``request_id``."""
    message_id: str
    """The message whose queue (``message:{message_id}``) the request's frames go to."""
    enqueued_at: float | None = None
    """When the message was enqueued (``time.time()``), for the time to first token; None: unknown."""
    frames: int = 0
    """Token and plugin frames relayed so far (the reference's ``num_responses``)."""
    last_token_at: float | None = None
    """``time.perf_counter()`` of the last token relayed."""
    data: Any = field(default=None)
    """Free for the caller (e.g. the ``WorkRequest``)."""


class WebSocketReceiver(Protocol):
    """What the receive loop needs of a websocket: Starlette's (FastAPI's) ``WebSocket`` has it."""

    async def receive(self) -> Any:
        """The next ASGI websocket message (``websocket.receive`` / ``websocket.disconnect``)."""
        ...


OnResponse = Callable[[DispatchedRequest | None, inference.WorkerResponse], Awaitable[None]]
"""Called with every frame that is not relayed as is: its request (None for a ``pong`` or a
``general_error`` that names no request of this connection) and the decoded response."""


class WorkerConnection:
    """The relay side of one worker websocket: which requests it dispatched, and its publisher.

    - ``dispatch(request_id, message_id)`` before sending the worker a ``WorkRequest``;
    - ``await run(websocket, on_response)`` reads frames until the worker disconnects: ``token``
      and ``plugin_intermediate`` frames are published unchanged (``Publisher.send``, one
      ``drain`` per frame, which waits only if Redis falls behind); the others are decoded and
      passed to ``on_response``, which ends a request with ``await finish(request, final)``;
    - ``await close()`` flushes what was published and the metrics' tally.

    A publish failure (``RelayError``) is counted in ``oasst_relay_publish_failures_total`` and
    raised from ``run``: the publisher refuses every later frame, so the connection must end.
    """

    def __init__(
        self,
        relay: Relay,
        *,
        metrics: ServerMetrics | None = None,
        publisher_limit: int = DEFAULT_PUBLISHER_LIMIT,
    ) -> None:
        self.relay = relay
        self.publisher: Publisher = relay.publisher(limit=publisher_limit)
        self.metrics = metrics
        self.requests: dict[str, DispatchedRequest] = {}
        """The requests in flight, by request id."""
        self.relayed = 0
        """Frames published to a message of this connection."""
        self.dropped = 0
        """Frames dropped: not a ``WorkerResponse``, or for a request not dispatched here."""
        self._tally: TokenTally | None = metrics.tally() if metrics is not None else None
        self._after_send = 0  # the publisher's frames in flight just after our last send
        self._failure_counted = False

    def __len__(self) -> int:
        return len(self.requests)

    def dispatch(
        self, request_id: str, message_id: str, *, enqueued_at: float | None = None, data: Any = None
    ) -> DispatchedRequest:
        """Record that this connection sends the worker request ``request_id`` for ``message_id``."""
        request = DispatchedRequest(request_id, message_id, enqueued_at, data=data)
        self.requests[request_id] = request
        return request

    def forget(self, request_id: str) -> DispatchedRequest | None:
        """Stop routing ``request_id``'s frames (later ones are dropped); returns its record."""
        return self.requests.pop(request_id, None)

    def drop(self, msg: str, *args: object) -> None:
        """Count a dropped frame and log why (``msg % args``) at WARNING."""
        self.dropped += 1
        if self.metrics is not None:
            self.metrics.frames_dropped.inc()
        log.warning(msg, *args)

    async def finish(self, request: DispatchedRequest, final: inference.WorkerResponse) -> None:
        """Publish ``final`` (``internal_finished_message`` or ``internal_error``) to the request's
        message, wait until everything this connection published is in Redis, and forget the
        request. Flushes the metrics' tally."""
        self.forget(request.request_id)
        try:
            before = self.publisher.in_flight
            try:
                self.publisher.send(request.message_id, final)
            except RelayError as exc:
                self._count_failure(exc)
                raise
            self._sent(before)
            self.relayed += 1
            await self._flush()
        finally:
            if self._tally is not None:
                self._tally.flush()

    def flush_metrics(self) -> None:
        """Add the per-token observations counted so far to the Prometheus metrics."""
        if self._tally is not None:
            self._tally.flush()

    async def close(self) -> None:
        """Wait until what was published is in Redis (raises a publish failure); flush the tally."""
        try:
            await self._flush()
        finally:
            self.flush_metrics()

    async def _flush(self) -> None:
        try:
            await self.publisher.flush()
        except RelayError as exc:
            self._count_failure(exc)
            raise
        if self._tally is not None and self._after_send:
            self._tally.round_trip(self._after_send)
        self._after_send = 0

    def _sent(self, before: int) -> None:
        """A frame was sent with ``before`` frames in flight: the frames whose round trip ended
        since the previous send make one estimate of frames per round trip."""
        if self._tally is not None:
            settled = self._after_send - before
            if settled > 0:
                self._tally.round_trip(settled)
            self._after_send = before + 1

    def _count_failure(self, exc: RelayError) -> None:
        if self.metrics is not None and not self._failure_counted:
            self._failure_counted = True
            self.metrics.publish_failed(exc)

    async def run(self, websocket: WebSocketReceiver, on_response: OnResponse) -> None:
        """Read the worker's frames until it disconnects; relay or hand over each one."""
        receive = websocket.receive
        peek = codec.peek_worker_response
        requests = self.requests
        pub = self.publisher
        tally = self._tally
        clock = time.perf_counter
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            frame: bytes = text.encode() if text is not None else message.get("bytes") or b""
            try:
                env = peek(frame)
            except codec.FrameDecodeError as err:
                self.drop("dropped a frame that is not a WorkerResponse (at %s)", err.path)
                continue
            tag = env.response_type
            request = requests.get(env.request_id) if env.request_id is not None else None
            if tag in STREAMED:
                if request is None:
                    self._drop_unrouted(tag, env.request_id)
                    continue
                before = pub.in_flight
                try:
                    pub.send(request.message_id, frame)  # the same bytes: no re-encode, no wait
                except RelayError as exc:
                    self._count_failure(exc)
                    raise
                self.relayed += 1
                request.frames += 1
                if tally is not None:
                    self._sent(before)
                    if tag == "token":
                        now = clock()
                        last = request.last_token_at
                        if last is None:
                            self._first_token(request)
                            tally.token(None)
                        else:
                            tally.token(now - last)
                        request.last_token_at = now
                try:
                    await pub.drain()  # an earlier frame's failure; waits only if Redis falls behind
                except RelayError as exc:
                    self._count_failure(exc)
                    raise
                continue
            if tag in SERVER_ONLY or (request is None and tag not in UNROUTED):
                self._drop_unrouted(tag, env.request_id)
                continue
            try:
                response = codec.worker_response.decode(frame)
            except codec.FrameDecodeError as err:
                self.drop("dropped a %s frame that does not decode (at %s)", tag, err.path)
                continue
            await on_response(request, response)

    def _drop_unrouted(self, tag: str, request_id: str | None) -> None:
        if tag in SERVER_ONLY:
            self.drop("dropped a %s frame: the server sends these, not a worker", tag)
        else:
            self.drop(
                "dropped a %s frame for request %.64r: not dispatched on this connection, or finished",
                tag,
                request_id,
            )

    def _first_token(self, request: DispatchedRequest) -> None:
        if self.metrics is not None and request.enqueued_at is not None:
            self.metrics.time_to_first_token.observe(max(time.time() - request.enqueued_at, 0.0))
