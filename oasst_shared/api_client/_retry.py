"""When to send a request again, and how long to wait first.

* Any method is retried on 408, 429 and 503 (the backend did not process the request), and
  when the connection could not be made (the request never left this machine).
* Idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) are also retried on 500, 502 and 504
  and when the connection broke or timed out after the request was sent. A POST that may
  have reached the backend is never sent twice.
* The wait is ``Retry-After`` (seconds or an HTTP-date; or ``Retry-After-Ms``) when the
  answer has one, else exponential backoff with jitter. A wait that would end past the
  call's deadline is not started: the call fails at once with the last error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["IDEMPOTENT_METHODS", "RetryPolicy", "parse_retry_after"]

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
