"""Prometheus metrics of the token path, and the ``/metrics`` exposition.

Names follow Prometheus' conventions (a unit suffix, ``_total`` on counters), with the ``oasst_``
prefix, as vLLM's and TGI's metrics name theirs. Labelled children are bound once, so that the
per-token path does no label lookup, and the per-token observations (tokens relayed, the gap
between tokens) are kept in a ``TokenTally`` per worker connection and added to the
Prometheus values in bulk (``flush``): a Prometheus ``observe`` costs about 2 us in multiprocess
mode, a tally's about 0.1 us.

Several server processes (uvicorn ``--workers N``): prometheus-client's multiprocess mode. Set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the processes import
``prometheus_client``; each process writes its values there and ``metrics_response`` adds
them up. The gauges are ``livesum``/``mostrecent`` gauges: call
``prometheus_client.multiprocess.mark_process_dead(os.getpid())`` when a process exits.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "FRAMES_PER_ROUND_TRIP_BUCKETS",
    "INTER_TOKEN_BUCKETS",
    "PUBLISH_FAILURE_KINDS",
    "TIME_TO_FIRST_TOKEN_BUCKETS",
    "ServerMetrics",
    "TokenTally",
    "metrics_response",
]

TIME_TO_FIRST_TOKEN_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
"""Seconds (vLLM's ``time_to_first_token_seconds`` buckets, up to 80 s of queueing)."""

INTER_TOKEN_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
"""Seconds between two tokens of one message (vLLM's ``time_per_output_token_seconds``, and finer
below 10 ms: tokens that reach the server in one read arrive microseconds apart)."""

FRAMES_PER_ROUND_TRIP_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

PUBLISH_FAILURE_KINDS: Final = (
    "QueueFullError",
    "RelayConnectionError",
    "RelayPublishError",
    "RelayResponseError",
    "RelayOutOfMemoryError",
    "RelayFrameError",
    "RelayError",
)
"""The ``kind`` label values of ``oasst_relay_publish_failures_total`` bound (at 0) up front: the
relay's error class names. Any other kind is added when it first happens."""


class ServerMetrics:
    """The token path's metrics, registered in ``registry`` (the default registry unless given).

    Make one per process (registering the same names twice in one registry raises). The metric
    names (``prefix`` is ``oasst`` unless given):

    - ``oasst_tokens_relayed_total`` (counter): token frames a worker connection published to
      their message queues;
    - ``oasst_time_to_first_token_seconds`` (histogram): from a message's enqueue to its first
      token reaching the server from the worker (queueing included, as vLLM's);
    - ``oasst_inter_token_latency_seconds`` (histogram): between two tokens of one message
      reaching the server;
    - ``oasst_relay_frames_per_round_trip`` (histogram): frames of one worker connection that one
      Redis round trip carried, estimated from its publisher's in-flight count (the frames that
      settled between two of its sends; a round trip also carries other connections' frames);
    - ``oasst_relay_publish_failures_total{kind}`` (counter): publishes that failed, by the
      relay's error class;
    - ``oasst_frames_dropped_total`` (counter): worker frames dropped, not being for a request
      their connection dispatched (or not a ``WorkerResponse``);
    - ``oasst_open_event_streams`` (gauge): event streams open;
    - ``oasst_connected_workers`` (gauge): worker websockets connected (past the handshake);
    - ``oasst_work_queue_length{compat_hash}`` (gauge): message ids waiting in
      ``work:{compat_hash}``, as last read from Redis (``set_work_queue_length``).
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, *, prefix: str = "oasst") -> None:
        reg = registry
        self.tokens_relayed = Counter(
            f"{prefix}_tokens_relayed",
            "Token frames published to their message queues by the worker connections",
            registry=reg,
        )
        self.time_to_first_token = Histogram(
            f"{prefix}_time_to_first_token_seconds",
            "Seconds from a message's enqueue to its first token reaching the server",
            buckets=TIME_TO_FIRST_TOKEN_BUCKETS,
            registry=reg,
        )
        self.inter_token_latency = Histogram(
            f"{prefix}_inter_token_latency_seconds",
            "Seconds between two tokens of one message reaching the server",
            buckets=INTER_TOKEN_BUCKETS,
            registry=reg,
        )
        self.frames_per_round_trip = Histogram(
            f"{prefix}_relay_frames_per_round_trip",
            "Frames of one worker connection carried by one Redis round trip (estimated from its "
            "publisher's frames in flight)",
            buckets=FRAMES_PER_ROUND_TRIP_BUCKETS,
            registry=reg,
        )
        self.publish_failures = Counter(
            f"{prefix}_relay_publish_failures",
            "Publishes to a message queue that failed, by the relay's error class",
            ["kind"],
            registry=reg,
        )
        for kind in PUBLISH_FAILURE_KINDS:
            self.publish_failures.labels(kind)
        self.frames_dropped = Counter(
            f"{prefix}_frames_dropped",
            "Worker frames dropped: not for a request their connection dispatched, or not a WorkerResponse",
            registry=reg,
        )
        self.open_event_streams = Gauge(
            f"{prefix}_open_event_streams",
            "Event streams open",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.connected_workers = Gauge(
            f"{prefix}_connected_workers",
            "Worker websockets connected",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.work_queue_length = Gauge(
            f"{prefix}_work_queue_length",
            "Message ids waiting in work:{compat_hash}, as last read from Redis",
            ["compat_hash"],
            multiprocess_mode="mostrecent",
            registry=reg,
        )

    def publish_failed(self, exc: BaseException) -> None:
        """Count one failed publish, by the class of ``exc`` (its name is the ``kind`` label)."""
        self.publish_failures.labels(type(exc).__name__).inc()

    def set_work_queue_length(self, compat_hash: str, length: int) -> None:
        """Record the length of ``work:{compat_hash}`` (read from Redis by the caller)."""
        self.work_queue_length.labels(compat_hash).set(length)

    def set_work_queue_lengths(self, lengths: Iterable[tuple[str, int]]) -> None:
        """``set_work_queue_length`` for each ``(compat_hash, length)``."""
        for compat_hash, length in lengths:
            self.work_queue_length.labels(compat_hash).set(length)

    def tally(self) -> TokenTally:
        """A new ``TokenTally`` adding up into these metrics (one per worker connection)."""
        return TokenTally(self)


class TokenTally:
    """Per-token observations kept locally, added to the Prometheus values by ``flush``.

    ``token(gap)`` counts one token and, unless ``gap`` is None (a message's first token), one
    inter-token gap; ``round_trip(frames)`` one estimate of frames per round trip. Each is a few
    list operations. ``flush`` adds what was counted since the last flush to the metrics, with
    one Prometheus update per non-empty bucket; a worker connection flushes when a message ends,
    when it pings the worker and when it closes.
    """

    __slots__ = (
        "_gap_bounds",
        "_gap_counts",
        "_gap_sum",
        "_metrics",
        "_rt_bounds",
        "_rt_counts",
        "_rt_sum",
        "tokens",
    )

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self.tokens = 0
        """Tokens counted since the last flush."""
        self._gap_bounds = (*INTER_TOKEN_BUCKETS, float("inf"))
        self._gap_counts = [0] * len(self._gap_bounds)
        self._gap_sum = 0.0
        self._rt_bounds = (*map(float, FRAMES_PER_ROUND_TRIP_BUCKETS), float("inf"))
        self._rt_counts = [0] * len(self._rt_bounds)
        self._rt_sum = 0.0

    def token(self, gap: float | None) -> None:
        """One token relayed; ``gap``: seconds since the message's previous token (None: first)."""
        self.tokens += 1
        if gap is not None:
            self._gap_counts[bisect.bisect_left(self._gap_bounds, gap)] += 1
            self._gap_sum += gap

    def round_trip(self, frames: int) -> None:
        """One round trip carried ``frames`` frames of this connection."""
        self._rt_counts[bisect.bisect_left(self._rt_bounds, frames)] += 1
        self._rt_sum += frames

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus metrics."""
        m = self._metrics
        if self.tokens:
            m.tokens_relayed.inc(self.tokens)
            self.tokens = 0
        if self._gap_sum or any(self._gap_counts):
            _add_to_histogram(m.inter_token_latency, self._gap_counts, self._gap_sum)
            self._gap_sum = 0.0
        if any(self._rt_counts):
            _add_to_histogram(m.frames_per_round_trip, self._rt_counts, self._rt_sum)
            self._rt_sum = 0.0


def _add_to_histogram(hist: Histogram, counts: list[int], total: float) -> None:
    """Add ``counts[i]`` observations to bucket ``i`` and ``total`` to the sum; zero ``counts``.

    Uses the histogram's value objects (``_buckets``, ``_sum``: prometheus-client's layout since
    0.4); if they are not there, falls back to one ``observe`` per observation at its bucket's
    bound (exact counts, approximate sum).
    """
    buckets = getattr(hist, "_buckets", None)
    value_sum = getattr(hist, "_sum", None)
    if buckets is None or value_sum is None or len(buckets) != len(counts):  # pragma: no cover
        bounds = getattr(hist, "_upper_bounds", None) or []
        for i, n in enumerate(counts):
            for _ in range(n):
                hist.observe(bounds[i] if i < len(bounds) and bounds[i] != float("inf") else total)
            counts[i] = 0
        return
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
            counts[i] = 0
    value_sum.inc(total)


def metrics_response(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition of this process, or of every process in multiprocess mode,
    and its content type: ``(body, content_type)``.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the values every process wrote there are added up
    (prometheus-client's ``MultiProcessCollector``; ``registry`` is then ignored); otherwise
    ``registry`` (the default registry unless given) is rendered.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST
    return generate_latest(registry if registry is not None else REGISTRY), CONTENT_TYPE_LATEST
