"""Small helpers shared by the backend, the workers and the export scripts.

The schemas import ``utcnow`` from here, so this module imports only what msgspec already
loads; ``logging``, ``hashlib`` and ``functools`` are imported by the helpers that use them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

if TYPE_CHECKING:
    import logging

__all__ = [
    "DELETED_USER_DISPLAY_NAME",
    "DELETED_USER_ID_PREFIX",
    "Anonymizer",
    "ScopeTimer",
    "log_timing",
    "sha256_hash",
    "unaware_to_utc",
    "utcnow",
]

DELETED_USER_DISPLAY_NAME = "Deleted User"
DELETED_USER_ID_PREFIX = "deleted_"

P = ParamSpec("P")
"""The parameters of a function ``log_timing`` decorates (a type variable of its signature)."""
R = TypeVar("R")
"""What a function ``log_timing`` decorates returns (a type variable of its signature)."""


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def unaware_to_utc(d: datetime) -> datetime:
    """Treat a naive datetime as UTC; an aware one is returned unchanged."""
    if d.tzinfo is None:
        return d.replace(tzinfo=timezone.utc)
    return d


class ScopeTimer:
    """Measures wall time with ``time.perf_counter``: ``start()``/``stop()`` or ``with``.

    ``elapsed`` is the time in seconds between the last start and stop (``None`` while running).
    """

    start_time: float
    end_time: float | None
    elapsed: float | None

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        """(Re)start timing: ``elapsed`` is ``None`` until the next ``stop()``."""
        self.start_time = time.perf_counter()
        self.end_time = None
        self.elapsed = None

    def stop(self) -> float:
        """Stop timing; the seconds since the last start (also kept in ``elapsed``)."""
        self.end_time = time.perf_counter()
        self.elapsed = self.end_time - self.start_time
        return self.elapsed

    def __enter__(self) -> ScopeTimer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ScopeTimer(elapsed={self.elapsed!r})"


def _log_call(func: Callable[..., Any], elapsed: float, kwargs: dict[str, Any] | None, level: int) -> None:
    import logging

    logger: logging.Logger = logging.getLogger(func.__module__)
    if not logger.isEnabledFor(level):
        return
    if kwargs is None:
        logger.log(level, "Function %r executed in %f s", func.__qualname__, elapsed)
    else:
        logger.log(level, "Function %r executed in %f s; kwargs=%r", func.__qualname__, elapsed, kwargs)


@overload
def log_timing(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def log_timing(
    func: None = None, /, *, log_kwargs: bool = False, level: int = 10
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def log_timing(
    func: Callable[P, R] | None = None,
    /,
    *,
    log_kwargs: bool = False,
    level: int = 10,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Log how long each call of the decorated function (sync or async) took.

    Usable bare (``@log_timing``) or with options (``@log_timing(log_kwargs=True, level=...)``).
    Logs through the stdlib logger of the function's module, at ``level``: 10 is ``logging.DEBUG``
    (the number, so that importing this module does not import ``logging``).
    ``log_kwargs`` adds the call's keyword arguments: they may hold user data, so keep such
    loggers at DEBUG.
    """

    import functools

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            async_fn: Callable[P, Awaitable[Any]] = fn

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await async_fn(*args, **kwargs)
                finally:
                    _log_call(fn, time.perf_counter() - start, kwargs if log_kwargs else None, level)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _log_call(fn, time.perf_counter() - start, kwargs if log_kwargs else None, level)

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


def sha256_hash(key: str, seed: int) -> str:
    """Hex SHA-256 of the text ``f"{key}{seed}"`` (UTF-8)."""
    import hashlib

    return hashlib.sha256(f"{key}{seed}".encode()).hexdigest()


class Anonymizer:
    """Replaces identifiers with stable pseudonyms (by default ``sha256_hash(key, seed)``).

    The same key always gets the same value; two keys that would get the same value raise
    ``ValueError`` instead of being silently merged.
    """

    def __init__(self, seed: int, value_generator: Callable[[str, int], str] = sha256_hash) -> None:
        self._map: dict[str, str] = {}
        self._values: set[str] = set()
        self._seed = seed
        self._value_generator = value_generator

    def __getitem__(self, key: str) -> str:
        value = self._map.get(key)
        if value is None:
            value = self._value_generator(key, self._seed)
            if value in self._values:
                raise ValueError(
                    "Anonymizer: generated value collides with an earlier key's; "
                    "use another seed or value generator"
                )
            self._map[key] = value
            self._values.add(value)
        return value

    def anonymize(self, collection: str, key: str | None) -> str | None:
        """The pseudonym of ``key`` within ``collection`` (``None`` stays ``None``)."""
        if key is None:
            return None
        return self[f"{collection}:{key}"]
