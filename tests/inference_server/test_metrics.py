"""``/metrics`` against what the test sent: the names of ``oasst_shared/server/_metrics.py``
(``ServerMetrics``), read back in the Prometheus text format after real traffic."""

from __future__ import annotations

from tests.inference_server.conftest import MakeWorker
from tests.inference_server.harness import COMPAT_HASH, AppProcess, ChatApi, Metrics, wait_until
from tests.inference_server.worker import Worker

TOKENS = "oasst_tokens_relayed_total"
TTFT = "oasst_time_to_first_token_seconds"
GAP = "oasst_inter_token_latency_seconds"
ROUND_TRIP = "oasst_relay_frames_per_round_trip"
PUBLISH_FAILURES = "oasst_relay_publish_failures_total"
DROPPED = "oasst_frames_dropped_total"
OPEN_STREAMS = "oasst_open_event_streams"
WORKERS = "oasst_connected_workers"
QUEUE = "oasst_work_queue_length"


def test_the_metrics_are_exposed_with_their_types(app: AppProcess, api: ChatApi) -> None:
    """As the app exposed them before any traffic (``first_metrics``: scraped, with ``api.metrics()``'s
    checks, as soon as it was ready, before any test used it), and as it exposes them now."""
    fresh = app.first_metrics
    assert fresh is not None
    expected = {
        TOKENS: "counter",  # (the text format types a counter under its _total name)
        TTFT: "histogram",
        GAP: "histogram",
        ROUND_TRIP: "histogram",
        PUBLISH_FAILURES: "counter",
        DROPPED: "counter",
        OPEN_STREAMS: "gauge",
        WORKERS: "gauge",
        QUEUE: "gauge",
    }
    for metrics in (fresh, api.metrics()):
        types = {name: metrics.types.get(name) for name in metrics.types}
        missing = {name: kind for name, kind in expected.items() if types.get(name) != kind}
        assert not missing, f"missing or mistyped: {missing}; exposed: {sorted(types)}"
    assert fresh.value(TOKENS) == 0 and fresh.value(WORKERS) == 0 and fresh.value(OPEN_STREAMS) == 0
    assert fresh.value(PUBLISH_FAILURES) == 0 and fresh.value(DROPPED) == 0


def test_metrics_match_the_traffic(app: AppProcess, api: ChatApi, make_worker: MakeWorker) -> None:
    """Counters and histograms as what this test added to them (the app is shared: they count
    earlier tests' traffic too); gauges as they are (the app is idle when a test starts)."""
    tokens_each = 7
    chats = 2
    before = api.metrics()

    def added(metrics: Metrics, name: str, **labels: str) -> float:
        return metrics.value(name, **labels) - before.value(name, **labels)

    exchanges = [api.exchange(f"metered{i}") for i in range(chats)]
    wait_until(lambda: api.metrics().value(QUEUE, compat_hash=COMPAT_HASH) == chats, what="queue length 2")

    refused = make_worker(app.url, api_key="wrong")
    refused.wait_closed()
    assert api.metrics().value(WORKERS) == 0  # a refused worker is never counted

    open_streams: list[float] = []

    def when_all_pending() -> Worker:
        open_streams.append(api.metrics().value(OPEN_STREAMS))
        return make_worker(app.url, tokens=tokens_each, max_parallel_requests=chats)

    results, worker = api.read_when_all_pending(exchanges, when_all_pending)
    assert open_streams == [chats]
    assert all(r.final is not None and r.final.kind == "message" for r in results), [
        r.kinds() for r in results
    ]

    sent = sum(len(h.tokens) for h in worker.wait_for_requests(chats))
    assert sent == chats * tokens_each

    def counted() -> Metrics | None:
        metrics = api.metrics()
        return metrics if added(metrics, TOKENS) == sent else None

    m = wait_until(counted, what=f"{TOKENS} == {sent} more")
    assert m.value(WORKERS) == 1
    assert added(m, f"{TTFT}_count") == chats  # one first token per message
    assert added(m, f"{GAP}_count") == chats * (tokens_each - 1)  # one gap per later token
    assert added(m, f"{GAP}_bucket", le="+Inf") == chats * (tokens_each - 1)
    assert added(m, f"{TTFT}_sum") > 0
    assert added(m, f"{ROUND_TRIP}_count") >= 1
    assert added(m, PUBLISH_FAILURES) == 0 and added(m, DROPPED) == 0
    wait_until(lambda: api.metrics().value(OPEN_STREAMS) == 0, what="the streams to be counted closed")
    wait_until(lambda: api.metrics().value(QUEUE, compat_hash=COMPAT_HASH) == 0, what="an empty queue")

    # one more message: the counter adds up
    ex = api.exchange("one more")
    assert api.wait_finished(ex.chat_id, ex.message_id)["state"] == "complete"
    total = sent + tokens_each
    wait_until(lambda: added(api.metrics(), TOKENS) == total, what=f"{TOKENS} == {total} more")

    worker.close()
    wait_until(lambda: api.metrics().value(WORKERS) == 0, what="the worker to be counted gone")
