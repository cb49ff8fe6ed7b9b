"""The relay's connections: one backoff policy and ``Link``, one redis-py connection (made by a
``_connector.Connector``) with the relay's retry rules.

Every relay connection is its own (never from a pool shared with the caller) and has redis-py's
own retries off, so that nothing the relay writes is ever resent behind its back. What is
retried, and how, is decided here once:

* connecting, and sending a command, fail before Redis got anything: retried with backoff until
  the caller's deadline, then ``RelayConnectionError``;
* a ``LOADING`` reply (Redis restarting) means the command did not run: retried the same way;
* a failure after the command was sent leaves its fate unknown: resent only when the caller says
  the command is idempotent, else ``RelayPublishError`` (or the caller's own error).

Commands are packed to RESP here (``pack``), in one pass: redis-py's packer costs several times
more per argument, which matters for a flush carrying thousands of frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Union

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from oasst_shared.relay._connector import Connector
from oasst_shared.relay._errors import (
    RelayConnectionError,
    RelayError,
    RelayOutOfMemoryError,
    RelayPublishError,
    RelayResponseError,
)
from oasst_shared.relay._server import ServerInfo, probe

__all__ = [
    "BACKOFF",
    "NETWORK_ERRORS",
    "Arg",
    "Attempts",
    "Backoff",
    "Link",
    "Reply",
    "bulk",
    "pack",
    "reply_int",
    "reply_list",
    "response_error",
]

NETWORK_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
"""What a lost, refused or timed-out connection raises."""

Arg = Union[bytes, str, int, float]
"""One argument of a Redis command."""

Reply = Union[bytes, int, None, list["Reply"]]
"""A RESP2 reply as redis-py's parser returns it undecoded (an error reply is raised instead)."""


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP, built in one pass."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            b = repr(a).encode()
        else:
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        append(b"$%d\r\n" % len(b))
        append(b)
        append(b"\r\n")
    return b"".join(parts)


def bulk(b: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _fate_unknown(
    exc: BaseException,
    *,
    key: str | None,
    op: str,
    on_unknown: Callable[[BaseException], RelayError] | None,
) -> RelayError:
    """The error of a command whose reply was lost (``exc``) after it was sent: ``on_unknown``'s,
    or ``RelayPublishError`` (maybe applied, never resent)."""
    if on_unknown is not None:
        return on_unknown(exc)
    return RelayPublishError(
        f"the round trip failed after the command was sent ({exc}): it may have been applied; not resent",
        key=key,
        operation=op,
    )


_DEMOTED: Final = "The previous master is now a slave"
"""What redis-py's Sentinel-managed connection raises (as a ConnectionError) for a READONLY reply."""


_CODES: Final = {
    NoScriptError: "NOSCRIPT",
    ReadOnlyError: "READONLY",
    OutOfMemoryError: "OOM",
    NoPermissionError: "NOPERM",
}
"""Error codes redis-py strips from the messages of the exceptions it maps them to."""


def response_error(exc: ResponseError, *, key: str | None, op: str) -> RelayResponseError:
    """Redis's error reply ``exc`` as the relay's typed error, with its code put back in front
    (redis-py strips it for the codes it maps to classes); out of memory has its own class, also
    when it comes wrapped in a script's error (Redis < 7)."""
    text = str(exc)
    code = getattr(exc, "status_code", None) or next(
        (c for cls, c in _CODES.items() if isinstance(exc, cls)), None
    )
    reply = f"{code} {text}" if code and not text.startswith(code) else text
    oom = code == "OOM" or "OOM command not allowed" in text
    cls = RelayOutOfMemoryError if oom else RelayResponseError
    return cls(f"Redis answered with an error: {reply}", key=key, operation=op, reply=reply)


def reply_int(reply: Reply, *, op: str, key: str | None) -> int:
    """An integer reply, or a bulk string holding one (a counter read back); else ``RelayError``
    naming what Redis answered instead."""
    if isinstance(reply, int):
        return reply
    if isinstance(reply, bytes):
        with contextlib.suppress(ValueError):
            return int(reply)
    raise RelayError(f"Redis answered {reply!r:.80} where an integer was expected", key=key, operation=op)


def reply_list(reply: Reply, size: int, *, op: str, key: str | None) -> list[Reply]:
    """An array reply of ``size`` elements; else ``RelayError`` naming what Redis answered instead."""
    if isinstance(reply, list) and len(reply) == size:
        return reply
    raise RelayError(f"Redis answered {reply!r:.80} where {size} values were expected", key=key, operation=op)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: the first pause, doubled after each try, capped."""

    first: float = 0.01
    cap: float = 0.5

    def until(self, deadline: float) -> Attempts:
        """The pauses of one operation that must give up at ``deadline`` (``time.monotonic``)."""
        return Attempts(self, deadline)


BACKOFF: Final = Backoff()
"""The policy every relay connection and the reader's reconnects use."""


class Attempts:
    """The retries of one operation under a ``Backoff``, bounded by a deadline."""

    __slots__ = ("deadline", "delay", "policy")

    def __init__(self, policy: Backoff, deadline: float) -> None:
        self.policy = policy
        self.deadline = deadline
        self.delay = policy.first

    def fits(self) -> bool:
        """Whether one more try, after the next pause, starts before the deadline."""
        return time.monotonic() + self.delay <= self.deadline

    async def pause(self) -> None:
        """Sleep the next pause; the one after is twice as long (capped)."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.policy.cap)

    async def again(self, exc: BaseException, message: str, *, key: str | None, op: str) -> None:
        """Pause before the next try, or raise ``RelayConnectionError(message)`` from ``exc`` when
        that try would start past the deadline."""
        if not self.fits():
            raise RelayConnectionError(message, key=key, operation=op) from exc
        await self.pause()


class Link:
    """One connection the relay owns, made on demand, with the retry rules of this module.

    ``generation`` counts the connections made: a caller that sets up per-connection state
    (the reader's client id, its script) compares it to know when to do that again. Each new
    connection is probed (``_server.probe``): a Cluster node is refused there, before any write.
    """

    def __init__(self, connector: Connector, name: str, *, blocking: bool) -> None:
        self.connector = connector
        self.moved = False
        """Set when a cluster node answered that the slot moved to another master (not a
        failover): the next connection is expected on another server; the reader clears it."""
        self.name = name
        self._blocking = blocking
        self.conn: AbstractConnection | None = None
        self.server: ServerInfo | None = None
        """What the last connection found of its server (None where ``INFO`` is not allowed)."""
        self.generation = 0
        self.lock = asyncio.Lock()  # one command in flight at a time (``call``)

    async def connected(self, *, op: str, key: str | None, deadline: float) -> AbstractConnection:
        """A connected, clean connection; connects (with backoff until ``deadline``) if needed."""
        attempts = BACKOFF.until(deadline)
        while True:
            self.connector.check_open(op, key)
            conn = self.conn
            if conn is not None and conn.is_connected:
                # can_read() is redis-py >= 8; before, the same check was can_read_destructive()
                check = getattr(conn, "can_read", None) or conn.can_read_destructive
                try:
                    dirty = await check()
                except (RedisError, OSError):
                    dirty = True
                if not dirty:
                    return conn
                # the server closed it (restart) or left bytes on it: never reuse such a link
                await conn.disconnect(nowait=True)
            if conn is None:
                try:
                    await self.connector.locate(op=op, key=key)
                except RelayConnectionError as exc:  # (a cluster's slot map: no node answered)
                    await attempts.again(exc, exc.detail, key=key, op=op)
                    continue
                conn = self.conn = self.connector.new_connection(blocking=self._blocking)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
            except AuthenticationError as exc:
                raise RelayConnectionError(
                    f"Redis refused the credentials: {exc}", key=key, operation=op
                ) from exc
            except NETWORK_ERRORS as exc:
                await conn.disconnect(nowait=True)
                await attempts.again(exc, f"cannot connect to Redis ({exc})", key=key, op=op)
                await self.unreachable(op=op, key=key)
                continue
            except RedisError as exc:  # the handshake was refused (e.g. no such database)
                await conn.disconnect(nowait=True)
                raise RelayConnectionError(
                    f"Redis refused the connection: {exc}", key=key, operation=op
                ) from exc
            try:
                self.server = await probe(conn, op=op, key=key, cluster=self.connector.cluster)
            except RelayError:
                await conn.disconnect(nowait=True)
                raise
            except (*NETWORK_ERRORS, RedisError) as exc:
                await conn.disconnect(nowait=True)
                await attempts.again(exc, f"cannot connect to Redis ({exc})", key=key, op=op)
                continue
            self.generation += 1
            return conn

    async def unreachable(self, *, op: str, key: str | None) -> None:
        """The connection failed: the next one is made anew (where a cluster's map now says)."""
        if self.connector.cluster:
            conn, self.conn = self.conn, None
            if conn is not None:
                await conn.disconnect(nowait=True)
            with contextlib.suppress(RelayError):  # (no node answers: the next try says so)
                await self.connector.unreachable(op=op, key=key)

    async def call(
        self,
        args: Sequence[Arg],
        *,
        op: str,
        key: str | None,
        idempotent: bool,
        deadline: float | None = None,
        on_unknown: Callable[[BaseException], RelayError] | None = None,
    ) -> Reply:
        """One command, one round trip. Returns the raw reply (bytes, ints, lists; not decoded).

        An error reply raises ``RelayResponseError`` (``RelayOutOfMemoryError`` for ``OOM``). A
        failure to connect or to send is retried with backoff until ``deadline`` (default: the
        connector's ``retry_timeout`` from now), and so is a Sentinel master's ``READONLY`` (it
        was demoted: nothing was applied). A failure after the command was sent is retried only
        when ``idempotent``; otherwise it raises ``on_unknown(exc)`` (default:
        ``RelayPublishError``, maybe applied).
        """
        if deadline is None:
            deadline = time.monotonic() + self.connector.retry_timeout
        attempts = BACKOFF.until(deadline)
        async with self.lock:
            while True:
                conn = await self.connected(op=op, key=key, deadline=deadline)
                try:
                    await conn.send_packed_command(pack(args), check_health=False)
                except NETWORK_ERRORS as exc:
                    await conn.disconnect(nowait=True)
                    await attempts.again(exc, f"cannot send to Redis ({exc})", key=key, op=op)
                    continue
                try:
                    reply: Reply = await conn.read_response(disable_decoding=True)
                    return reply
                except BusyLoadingError as exc:
                    message = f"Redis is loading its data ({exc})"
                    await attempts.again(exc, message, key=key, op=op)
                    continue
                except ResponseError as exc:
                    if not self.connector.redirected(exc):
                        raise response_error(exc, key=key, op=op) from exc
                    # not run: the cluster's slot is elsewhere (MOVED), moving (ASK: this once
                    # to the slot's new node), or in flux (TRYAGAIN, CLUSTERDOWN: again shortly)
                    if isinstance(exc, AskError) and not isinstance(exc, MovedError):
                        ran, asked = await self._asking(exc, args, op=op, key=key, on_unknown=on_unknown)
                        if ran:
                            return asked
                    await self.redirect(exc)
                    await attempts.again(exc, f"the cluster did not take it ({exc})", key=key, op=op)
                    continue
                except (*NETWORK_ERRORS, asyncio.CancelledError) as exc:
                    # the reply is lost; the connection must not be reused (it may still carry it)
                    await conn.disconnect(nowait=True)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    if _DEMOTED in str(exc):
                        # Sentinel: the master we wrote to was demoted and answered READONLY, so
                        # nothing was applied; the next connection goes to the new master
                        await attempts.again(exc, f"no master took the command ({exc})", key=key, op=op)
                        continue
                    await self.unreachable(op=op, key=key)
                    if idempotent and attempts.fits():
                        await attempts.pause()
                        continue
                    raise _fate_unknown(exc, key=key, op=op, on_unknown=on_unknown) from exc

    async def _asking(
        self,
        exc: AskError,
        args: Sequence[Arg],
        *,
        op: str,
        key: str | None,
        on_unknown: Callable[[BaseException], RelayError] | None,
    ) -> tuple[bool, Reply]:
        """``ASKING`` and the command, on a connection of their own to the node a migrating slot's
        key went to: (True, its reply), or (False, None) when it was not run there either (not
        reached, ``TRYAGAIN``)."""
        conn = self.connector.connection_to((exc.host, exc.port), blocking=self._blocking)
        try:
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_packed_command(pack(("ASKING",)) + pack(args), check_health=False)
            except NETWORK_ERRORS:
                return False, None
            try:
                await conn.read_response(disable_decoding=True)
                reply: Reply = await conn.read_response(disable_decoding=True)
                return True, reply
            except ResponseError as again:
                if self.connector.redirected(again) and not isinstance(again, NoScriptError):
                    return False, None
                raise response_error(again, key=key, op=op) from again  # (NOSCRIPT: the caller's)
            except NETWORK_ERRORS as lost:
                raise _fate_unknown(lost, key=key, op=op, on_unknown=on_unknown) from lost
        finally:
            await conn.disconnect(nowait=True)

    async def redirect(self, exc: ResponseError) -> None:
        """A cluster node answered ``exc`` (``connector.redirected``): after ``MOVED`` the next
        connection goes to the new owner, unless this node is now a replica (a failover: the
        reader's loss check then sees another server)."""
        if not isinstance(exc, MovedError) or self.conn is None:
            return
        conn = self.conn
        try:
            await conn.send_packed_command(pack(("ROLE",)), check_health=False)
            role = await conn.read_response(disable_decoding=True)
            self.moved = isinstance(role, list) and bool(role) and role[0] == b"master"
        except (*NETWORK_ERRORS, RedisError):
            self.moved = False
        self.conn = None
        await conn.disconnect(nowait=True)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
