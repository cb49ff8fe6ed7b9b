"""When to send a request again, and how long to wait first.

* Any method is retried on 408, 429 and 503 (the backend did not process the request), and
  when the connection could not be made (the request never left this machine).
* Idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) are also retried on 500, 502 and 504
  and when the connection broke or timed out after the request was sent. A POST that may
  have reached the backend is never sent twice.
* The wait is ``Retry-After`` (seconds or an HTTP-date; or ``Retry-After-Ms``) when the
  answer has one, else exponential backoff with jitter. A wait that would end past the
  call's deadline is not started: the call fails at once with the last error.

``RetryPolicy`` decides; ``run_with_retries`` is the loop, waiting on an injectable ``Clock``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from oasst_shared.api_client._clock import Clock
from oasst_shared.api_client._errors import OasstApiError

__all__ = ["IDEMPOTENT_METHODS", "Failure", "RetryPolicy", "parse_retry_after", "run_with_retries"]

logger = logging.getLogger("oasst_shared.api_client")

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_RETRY_STATUSES_ANY = frozenset({408, 429, 503})
_RETRY_STATUSES_IDEMPOTENT = _RETRY_STATUSES_ANY | {500, 502, 504}


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait according to ``Retry-After-Ms`` / ``Retry-After``, or None if absent/invalid.

    ``Retry-After`` may be a number of seconds (fractions accepted) or an HTTP-date; a date in
    the past means "now" (0).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        seconds = _non_negative_float(ms)
        if seconds is not None:
            return seconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_float(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse as naive: they are UTC
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _non_negative_float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits and backoff: ``initial_delay * 2**n`` capped at ``max_delay``, with jitter."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    def retries_status(self, method: str, status: int) -> bool:
        """Whether an answer with this status may be retried for this method."""
        if method in IDEMPOTENT_METHODS:
            return status in _RETRY_STATUSES_IDEMPOTENT
        return status in _RETRY_STATUSES_ANY

    @staticmethod
    def retries_transport_error(method: str, *, request_sent: bool) -> bool:
        """Whether a connection failure may be retried (always when nothing was sent)."""
        return not request_sent or method in IDEMPOTENT_METHODS

    def backoff(self, retry_index: int) -> float:
        """The wait before retry number ``retry_index`` (0-based) when the server gave none.

        Half of the capped exponential delay is fixed, the other half random ("equal
        jitter"): retries of many clients spread out, and the wait still grows.
        """
        delay = min(self.max_delay, self.initial_delay * (2.0 ** min(retry_index, 32)))
        return delay / 2.0 + random.uniform(0.0, delay / 2.0)


@dataclass(frozen=True)
class Failure:
    """A failed attempt: the error to raise if it is the last, and whether it may be retried."""

    error: OasstApiError
    retryable: bool
    retry_after: float | None = None
    """The server's ``Retry-After``, in seconds, when it gave one."""
    reason: str = ""
    """A few words for the retry log line (``"status 503"``, ``"ConnectError"``)."""


async def run_with_retries(
    attempt: Callable[[float], Awaitable[T | Failure]],
    *,
    policy: RetryPolicy,
    clock: Clock,
    timeout: float,
    deadline_error: Callable[[], OasstApiError],
    name: str,
) -> T:
    """Call ``attempt(seconds_left)`` until it succeeds, fails for good, or the time is up.

    A ``Failure`` is retried while ``policy`` allows more retries and the wait (the server's
    ``Retry-After``, else ``policy.backoff``) ends before the deadline, ``timeout`` seconds
    after the first attempt; otherwise its error is raised. ``deadline_error()`` is raised
    when no time is left for an attempt. ``name`` (``"METHOD /path"``) is for the log only.
    """
    deadline = clock.now() + timeout
    retries = 0
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise deadline_error()
        outcome = await attempt(remaining)
        if not isinstance(outcome, Failure):
            return outcome
        if not outcome.retryable or retries >= policy.max_retries:
            raise outcome.error
        delay = outcome.retry_after if outcome.retry_after is not None else policy.backoff(retries)
        if clock.now() + delay >= deadline:
            logger.debug("%s: next retry would pass the deadline, giving up", name)
            raise outcome.error
        retries += 1
        logger.info(
            "%s failed (%s); retry %d of %d in %.2f s",
            name,
            outcome.reason,
            retries,
            policy.max_retries,
            delay,
        )
        await clock.sleep(delay)
