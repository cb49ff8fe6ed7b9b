"""The relay's errors: ``OasstError`` subclasses naming the Redis key and the operation.

This module does not import redis, so the error types can be named (``except RelayError``)
by code that never talks to Redis.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from oasst_shared.exceptions import OasstError, OasstErrorCode

__all__ = [
    "QueueFullError",
    "RelayConnectionError",
    "RelayDataLossError",
    "RelayDecodeError",
    "RelayError",
    "RelayFrameError",
    "RelayOutOfMemoryError",
    "RelayPublishError",
    "RelayResponseError",
    "RelayStalledError",
    "RelayTimeoutError",
    "RelayUnsupportedServerError",
    "readdressed",
]

_PUBLIC_MODULE = "oasst_shared.relay"
"""The module the error classes are imported from: their ``__module__``, so that tracebacks and
reprs name it (and pickles refer to it) instead of this private one."""


class RelayError(OasstError):
    """Base of every relay error: ``key`` is the Redis key concerned (None when several or
    none), ``operation`` the relay operation and Redis command (e.g. ``"publish (EVALSHA RPUSH)"``).

    ``maybe_applied`` answers, for an error about a write, whether Redis may have applied it:
    True only when the connection failed after the command was sent (the relay never resends
    it); False when Redis answered with an error or never got the command (a caller may resend).

    The error code is ``GENERIC_ERROR`` (the reference defines no Redis-specific code); the
    HTTP status is what a server should answer: 503 unless a subclass says otherwise.
    """

    __module__ = _PUBLIC_MODULE

    key: str | None
    operation: str
    maybe_applied: bool

    def __init__(
        self,
        message: str,
        *,
        key: str | None,
        operation: str,
        error_code: OasstErrorCode = OasstErrorCode.GENERIC_ERROR,
        http_status_code: HTTPStatus = HTTPStatus.SERVICE_UNAVAILABLE,
        maybe_applied: bool = False,
    ) -> None:
        where = f" [key={key!r}, operation={operation}]"
        super().__init__(message + where, error_code, http_status_code)
        self.key = key
        self.operation = operation
        self.detail = message
        self.maybe_applied = maybe_applied

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.detail, self.__dict__.copy()))


def _rebuild(cls: type[RelayError], detail: str, state: dict[str, Any]) -> RelayError:
    err = cls.__new__(cls)
    RelayError.__init__(
        err,
        detail,
        key=state.get("key"),
        operation=state.get("operation", ""),
        error_code=state.get("error_code", OasstErrorCode.GENERIC_ERROR),
        http_status_code=state.get("http_status_code", HTTPStatus.SERVICE_UNAVAILABLE),
        maybe_applied=state.get("maybe_applied", False),
    )
    err.__dict__.update(state)
    return err


def readdressed(err: RelayError, key: str | None, operation: str | None = None) -> RelayError:
    """``err``, of the same class and with the same attributes, about ``key`` instead (an error of a
    whole round trip, given to each key's owners), and of ``operation`` if given; its cause is kept."""
    state = {k: v for k, v in err.__dict__.items() if k not in ("message", "key")}
    if operation is not None:
        state["operation"] = operation
    out = _rebuild(type(err), err.detail, {**state, "key": key})
    out.__cause__ = err.__cause__
    return out


class QueueFullError(RelayError):
    """The queue is at its maximum length; nothing was pushed (the reference's ``QueueFullException``).

    ``max_size`` is the limit that was hit. The reference server answers 503 for it.
    """

    __module__ = _PUBLIC_MODULE

    max_size: int

    def __init__(self, message: str, *, key: str | None, operation: str, max_size: int) -> None:
        super().__init__(message, key=key, operation=operation)
        self.max_size = max_size


class RelayConnectionError(RelayError):
    """Redis could not be reached (connection refused, reset before the command was sent,
    server loading, credentials or TLS refused) within the retry deadline. The operation had no
    effect in Redis (``maybe_applied`` False), except where the message and ``maybe_applied``
    say otherwise (a blocking pop whose connection dropped may have popped an id)."""

    __module__ = _PUBLIC_MODULE


class RelayUnsupportedServerError(RelayConnectionError):
    """The server is one the relay cannot use as it is (e.g. a Redis Cluster node); the message
    says what to do instead. Raised at the first connection, before anything is written."""

    __module__ = _PUBLIC_MODULE


class RelayResponseError(RelayError):
    """Redis answered the command with an error (``reply``, whose first word is ``code``:
    ``WRONGTYPE``, ``READONLY``, ``CROSSSLOT``, ``NOPERM``, ...): it did not apply it
    (``maybe_applied`` False; the relay's scripts fail before their first write), so a caller may
    resend once the cause is fixed."""

    __module__ = _PUBLIC_MODULE

    reply: str
    code: str

    _status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, key: str | None, operation: str, reply: str) -> None:
        super().__init__(message, key=key, operation=operation, http_status_code=self._status)
        self.reply = reply
        self.code = reply.split(" ", 1)[0] if reply else ""


class RelayOutOfMemoryError(RelayResponseError):
    """Redis is at its ``maxmemory`` and refuses writes (``OOM``): nothing was written. A server
    answers 503: retry later, or free memory / raise ``maxmemory``."""

    __module__ = _PUBLIC_MODULE

    _status = HTTPStatus.SERVICE_UNAVAILABLE


class RelayFrameError(RelayError, ValueError):
    """A frame refused at publish or send, before anything was pushed: larger than the relay's
    ``max_frame_size`` (``size`` bytes), or not UTF-8. Nothing is stored that would poison the
    queue's reader."""

    __module__ = _PUBLIC_MODULE

    size: int

    def __init__(self, message: str, *, key: str | None, operation: str, size: int) -> None:
        super().__init__(message, key=key, operation=operation, http_status_code=HTTPStatus.BAD_REQUEST)
        self.size = size


class RelayTimeoutError(RelayError):
    """A stream got no frame for ``waited`` seconds (its ``timeout``) while Redis answered: the
    stream ended without its terminal response. A stream never ends silently on a timeout
    unless asked to (``stream(..., stop_on_timeout=True)``)."""

    __module__ = _PUBLIC_MODULE

    waited: float

    def __init__(self, message: str, *, key: str | None, operation: str, waited: float) -> None:
        super().__init__(message, key=key, operation=operation, http_status_code=HTTPStatus.GATEWAY_TIMEOUT)
        self.waited = waited


class RelayStalledError(RelayTimeoutError):
    """A stream timed out while Redis was reachable but did not answer the reader (stalled:
    a long script, ``DEBUG SLEEP``, a paused process) for ``stalled`` of the ``waited`` seconds."""

    __module__ = _PUBLIC_MODULE

    stalled: float

    def __init__(
        self, message: str, *, key: str | None, operation: str, waited: float, stalled: float
    ) -> None:
        super().__init__(message, key=key, operation=operation, waited=waited)
        self.stalled = stalled


class RelayDataLossError(RelayError):
    """Frames of this stream may have been lost (or be read again) in Redis: it restarted without
    persistence that covers the gap (its ``run_id`` changed), or a failover promoted a replica
    (replication is asynchronous). The stream ends here, so that a text with a hole is never
    shown as complete; a server turns this into the reference's error event."""

    __module__ = _PUBLIC_MODULE

    def __init__(self, message: str, *, key: str | None, operation: str) -> None:
        super().__init__(
            message, key=key, operation=operation, http_status_code=HTTPStatus.INTERNAL_SERVER_ERROR
        )


class RelayPublishError(RelayError):
    """A write's round trip failed after the command was sent: it may or may not have been
    applied (``maybe_applied`` True). The relay never resends it; the caller decides (e.g.
    abort the message).

    ``frames`` is how many frames of this publish's key were in the failed round trip.
    """

    __module__ = _PUBLIC_MODULE

    frames: int

    def __init__(self, message: str, *, key: str | None, operation: str, frames: int = 0) -> None:
        super().__init__(
            message,
            key=key,
            operation=operation,
            http_status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
            maybe_applied=True,
        )
        self.frames = frames


class RelayDecodeError(RelayError):
    """A frame read from a message queue is not a valid ``WorkerResponse`` document.

    ``frame`` holds its bytes (nothing read is dropped silently); the ``__cause__`` is the
    codec's ``FrameDecodeError`` with the JSON path.
    """

    __module__ = _PUBLIC_MODULE

    frame: bytes

    def __init__(self, message: str, *, key: str | None, operation: str, frame: bytes) -> None:
        super().__init__(
            message,
            key=key,
            operation=operation,
            http_status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        self.frame = frame
