"""The relay's test seam: a redis-py connection class whose sends and reads a test can intercept.

The relay makes its own connections with the connection class of the client it is given
(``Relay(redis.asyncio.Redis(...))``), so a test that hands it ``hooked_client(url, hooks)``
injects faults at the socket boundary (a lost reply, a failed send, a changed command) without
touching anything private of the relay::

    hooks = Hooks()
    hooks.before_read = my_async_hook     # (conn) -> None; raise to fail the read
    async with Relay(hooked_client(url, hooks)) as relay: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

SendHook = Callable[["HookedConnection", bytes], Awaitable[bytes]]
ReadHook = Callable[["HookedConnection"], Awaitable[None]]
AfterReadHook = Callable[["HookedConnection", Any], Awaitable[None]]
CheckHook = Callable[["HookedConnection"], Awaitable[None]]


class Hooks:
    """What the connections of one client do before each send and each read."""

    def __init__(self) -> None:
        self.before_send: SendHook | None = None  # may return the command changed, or raise
        self.before_read: ReadHook | None = None  # may raise (the reply is then never read)
        self.after_read: AfterReadHook | None = None  # sees the reply; may raise (it is then lost)
        # the check of an idle connection before it is used again (may hold it: redis-py < 8's
        # check yields to the event loop)
        self.before_check: CheckHook | None = None


class HookedConnection(Connection):
    """A redis-py connection calling its class's ``hooks``; ``last_sent`` is the last command."""

    hooks: Hooks
    last_sent: bytes = b""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        data = command if isinstance(command, bytes) else b"".join(_as_bytes(command))
        if self.hooks.before_send is not None:
            data = await self.hooks.before_send(self, data)
        self.last_sent = data
        await super().send_packed_command(data, check_health)

    async def can_read_destructive(self) -> bool:
        if self.hooks.before_check is not None:
            await self.hooks.before_check(self)
        return await super().can_read_destructive()

    if hasattr(Connection, "can_read"):  # redis-py >= 8: the check the relay uses there

        async def can_read(self, *args: Any, **kwargs: Any) -> bool:
            if self.hooks.before_check is not None:
                await self.hooks.before_check(self)
            return bool(await super().can_read(*args, **kwargs))

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if self.hooks.before_read is not None:
            await self.hooks.before_read(self)
        reply = await super().read_response(*args, **kwargs)
        if self.hooks.after_read is not None:
            await self.hooks.after_read(self, reply)
        return reply


def _as_bytes(command: str | Iterable[bytes]) -> Iterable[bytes]:
    return [command.encode()] if isinstance(command, str) else command


def hooked_client(url: str, hooks: Hooks) -> aioredis.Redis:
    """A client for ``url`` whose connections (and so a relay's, made from its settings) call ``hooks``."""
    cls = type("HookedConnection", (HookedConnection,), {"hooks": hooks})
    return aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(url, connection_class=cls))


def is_drain(command: bytes) -> bool:
    """Whether ``command`` is (or starts with) a reader's drain: it names the reader's backup list."""
    return command.startswith(b"*") and b"relay:inflight:" in command


def with_blpop_timeout(command: bytes, seconds: float) -> bytes:
    """``command`` with the trailing timeout of a pipelined ``BLPOP`` replaced (the reader's wait
    round ends with ``BLPOP key ... timeout``)."""
    if b"BLPOP" not in command:
        return command
    head, _, last = command.rstrip(b"\r\n").rpartition(b"\r\n$")
    _size, _, value = last.partition(b"\r\n")
    float(value)  # it is the timeout
    new = repr(float(seconds)).encode()
    return head + b"\r\n$%d\r\n%s\r\n" % (len(new), new)
