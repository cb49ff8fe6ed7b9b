"""``EventStreamResponse``: Server-Sent Events from an async iterator of ready-made chunks.

One ASGI ``send`` per chunk (a chunk is every event of one relay batch), comment pings while
nothing is sent, a send timeout, and on client disconnect the iterator is closed (for a relay
stream: its subscription closes and gives the frames it had not taken back to Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Mapping
from typing import Any, Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from oasst_shared.server._metrics import ServerMetrics

__all__ = ["DEFAULT_PING_INTERVAL", "DEFAULT_SEND_TIMEOUT", "EventStreamResponse"]

log = logging.getLogger("oasst_shared.server")

DEFAULT_PING_INTERVAL: Final = 15.0
"""Seconds without a send before a comment ping (sse-starlette's default, the reference's)."""

DEFAULT_SEND_TIMEOUT: Final = 30.0
"""Seconds one send may take before the client is taken for hung and the stream stops."""

PING: Final = b": ping\n\n"

_STOP_DISCONNECT: Final = "client disconnected"
_STOP_TIMEOUT: Final = "send timed out"


class EventStreamResponse(Response):
    """A ``text/event-stream`` response whose body is ``chunks``: each item (``bytes``, one or
    more complete SSE events) goes out in one ASGI ``send``.

    - ``ping_interval``: seconds without a send after which a comment (``: ping``) is sent, so
      that proxies and clients keep the connection (None: no pings). Default 15 s.
    - ``send_timeout``: seconds one send (a chunk or a ping) may take; a client that reads
      nothing for that long is taken for hung and the stream stops (None: no limit). Default 30 s.
    - On client disconnect (``http.disconnect``) or a send timeout the stream stops, and
      ``chunks`` is closed (``aclose``) if it has that method: for an async generator over a
      relay subscription, closing it gives the frames it had not taken back to Redis.
    - An exception raised by ``chunks`` propagates (the server logs it and drops the connection).
    - Headers: ``Content-Type: text/event-stream``, ``Cache-Control: no-cache``,
      ``X-Accel-Buffering: no`` (nginx: do not buffer), plus ``headers``.
    - ``metrics``: its ``oasst_open_event_streams`` gauge counts the stream while it is open.

    Use it as a route's return value in Starlette or FastAPI. ``stopped`` says why the stream
    stopped early (``"client disconnected"``, ``"send timed out"``), None if ``chunks`` ended.
    asyncio only.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        metrics: ServerMetrics | None = None,
    ) -> None:
        for name, value in (("ping_interval", ping_interval), ("send_timeout", send_timeout)):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{name} must be None or a number of seconds > 0, got {value!r}")
        self.chunks = chunks
        self.status_code = status_code
        self.background = None
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        self.metrics = metrics
        self.stopped: str | None = None
        merged = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
        self.init_headers(merged)
        # set by the watcher while a send is under way (its start, loop time) / after each send
        self._sending_since: float | None = None
        self._last_send = 0.0
        self._ping: asyncio.Future[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        gauge = self.metrics.open_event_streams if self.metrics is not None else None
        if gauge is not None:
            gauge.inc()
        chunks = self.chunks
        pump: asyncio.Task[None] | None = None
        watcher: asyncio.Task[str] | None = None
        try:
            self._sending_since = loop.time()
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            self._sending_since = None
            self._last_send = loop.time()
            pump = asyncio.ensure_future(self._pump(chunks, send, loop))
            watcher = asyncio.ensure_future(self._watch(receive, send, loop))
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():  # the watcher stopped the stream
                self.stopped = watcher.result()
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await pump
            elif pump.exception() is not None and isinstance(pump.exception(), OSError):
                self.stopped = _STOP_DISCONNECT  # the server says the client is gone (ClientDisconnected)
            else:
                pump.result()  # raises what ``chunks`` raised
        finally:
            for task in (watcher, pump):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await task
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # a generator over a subscription gives back what it had not taken
            if gauge is not None:
                gauge.dec()

    async def _pump(self, chunks: AsyncIterable[bytes], send: Send, loop: asyncio.AbstractEventLoop) -> None:
        time = loop.time
        async for chunk in chunks:
            if self._ping is not None:  # a ping is being sent: never two sends at once
                await self._ping
            self._sending_since = time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._sending_since = None
            self._last_send = time()
        if self._ping is not None:
            await self._ping
        self._sending_since = time()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._sending_since = None

    async def _watch(self, receive: Receive, send: Send, loop: asyncio.AbstractEventLoop) -> str:
        """Until the stream must stop (returns why): watch for a disconnect and a send that takes
        too long, and ping while nothing is sent."""
        ping_interval, send_timeout = self.ping_interval, self.send_timeout
        listen: asyncio.Future[Any] = asyncio.ensure_future(receive())
        try:
            while True:
                now = loop.time()
                since = self._sending_since
                wait: float | None
                if since is not None:  # a send under way: its deadline (or the next ping's)
                    if send_timeout is not None:
                        wait = since + send_timeout - now
                        if wait <= 0:
                            log.warning("event stream: a send took over %g s; stopping it", send_timeout)
                            return _STOP_TIMEOUT
                    else:
                        wait = ping_interval
                elif ping_interval is not None:
                    wait = self._last_send + ping_interval - now
                    if wait <= 0:
                        reason = await self._send_ping(send, loop)
                        if reason is not None:
                            return reason
                        continue
                else:
                    wait = send_timeout  # (poll for a send that hangs)
                done, _ = await asyncio.wait({listen}, timeout=None if wait is None else max(wait, 0.001))
                if done:
                    if listen.result()["type"] == "http.disconnect":
                        return _STOP_DISCONNECT
                    listen = asyncio.ensure_future(receive())  # (a request body: ignored)
        finally:
            listen.cancel()

    async def _send_ping(self, send: Send, loop: asyncio.AbstractEventLoop) -> str | None:
        """Send one comment ping (the pump waits for it); why the stream must stop, or None."""
        ping = self._ping = loop.create_future()
        message = {"type": "http.response.body", "body": PING, "more_body": True}
        try:
            if self.send_timeout is None:
                await send(message)
            else:
                await asyncio.wait_for(send(message), self.send_timeout)
        except TimeoutError:
            log.warning("event stream: a ping took over %g s; stopping it", self.send_timeout)
            return _STOP_TIMEOUT
        except OSError:
            return _STOP_DISCONNECT
        finally:
            self._ping = None
            ping.set_result(None)
        self._last_send = loop.time()
        return None
