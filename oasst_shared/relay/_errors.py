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
    "RelayDecodeError",
    "RelayError",
    "RelayPublishError",
]


class RelayError(OasstError):
    """Base of every relay error: ``key`` is the Redis key concerned (None when several or
    none), ``operation`` the relay operation and Redis command (e.g. ``"publish (EVALSHA RPUSH)"``).

    The error code is ``GENERIC_ERROR`` (the reference defines no Redis-specific code); the
    HTTP status is what a server should answer: 503 unless a subclass says otherwise.
    """

    key: str | None
    operation: str

    def __init__(
        self,
        message: str,
        *,
        key: str | None,
        operation: str,
        error_code: OasstErrorCode = OasstErrorCode.GENERIC_ERROR,
        http_status_code: HTTPStatus = HTTPStatus.SERVICE_UNAVAILABLE,
    ) -> None:
        where = f" [key={key!r}, operation={operation}]"
        super().__init__(message + where, error_code, http_status_code)
        self.key = key
        self.operation = operation
        self.detail = message

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
    )
    err.__dict__.update(state)
    return err


class QueueFullError(RelayError):
    """The queue is at its maximum length; nothing was pushed (the reference's ``QueueFullException``).

    ``max_size`` is the limit that was hit. The reference server answers 503 for it.
    """

    max_size: int

    def __init__(self, message: str, *, key: str | None, operation: str, max_size: int) -> None:
        super().__init__(message, key=key, operation=operation)
        self.max_size = max_size


class RelayConnectionError(RelayError):
    """Redis could not be reached (connection refused, reset before the command was sent,
    server loading) within the retry deadline. The operation had no effect in Redis, except
    where the message says otherwise (a blocking pop whose connection dropped)."""


class RelayPublishError(RelayError):
    """A write's round trip failed after the command was sent: it may or may not have been
    applied. The relay never resends it; the caller decides (e.g. abort the message).

    ``frames`` is how many frames of this publish's key were in the failed round trip.
    """

    frames: int

    def __init__(self, message: str, *, key: str | None, operation: str, frames: int = 0) -> None:
        super().__init__(
            message,
            key=key,
            operation=operation,
            http_status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        self.frames = frames


class RelayDecodeError(RelayError):
    """A frame read from a message queue is not a valid ``WorkerResponse`` document.

    ``frame`` holds its bytes (nothing read is dropped silently); the ``__cause__`` is the
    codec's ``FrameDecodeError`` with the JSON path.
    """

    frame: bytes

    def __init__(self, message: str, *, key: str | None, operation: str, frame: bytes) -> None:
        super().__init__(
            message,
            key=key,
            operation=operation,
            http_status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        self.frame = frame
