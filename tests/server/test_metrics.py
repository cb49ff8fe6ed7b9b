"""The metrics: names, the tally's bulk updates matching one ``observe`` each, several processes
adding up (prometheus-client's multiprocess mode), the ``/metrics`` endpoint, the extra."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from oasst_shared.server import ServerMetrics, metrics_endpoint
from oasst_shared.server._metrics import INTER_TOKEN_BUCKETS
from tests.support.processes import run_python
from tests.support.specs import REPO_ROOT

NAMES = {
    "oasst_tokens_relayed",
    "oasst_time_to_first_token_seconds",
    "oasst_inter_token_latency_seconds",
    "oasst_relay_frames_per_round_trip",
    "oasst_relay_publish_failures",
    "oasst_frames_dropped",
    "oasst_open_event_streams",
    "oasst_connected_workers",
    "oasst_work_queue_length",
}


def test_the_metric_names(registry: CollectorRegistry, metrics: ServerMetrics) -> None:
    metrics.set_work_queue_length("model-a", 3)
    names = {m.name for m in registry.collect()}
    assert names == NAMES
    assert registry.get_sample_value("oasst_work_queue_length", {"compat_hash": "model-a"}) == 3
    assert registry.get_sample_value("oasst_relay_publish_failures_total", {"kind": "RelayPublishError"}) == 0


def test_the_tally_adds_up_as_one_observe_each(registry: CollectorRegistry, metrics: ServerMetrics) -> None:
    rng = random.Random(7)
    gaps = [rng.choice([0.0, 0.0005, 0.001, 0.02, 3.0]) * rng.random() * 2 for _ in range(500)]
    gaps += list(INTER_TOKEN_BUCKETS)  # values on a bound count in that bound's bucket
    reference = CollectorRegistry()
    plain = Histogram("gap_seconds", "", buckets=INTER_TOKEN_BUCKETS, registry=reference)
    tally = metrics.tally()
    tally.token(None)
    for gap in gaps:
        tally.token(gap)
        plain.observe(gap)
    assert registry.get_sample_value("oasst_tokens_relayed_total") == 0  # nothing until the flush
    tally.flush()
    tally.flush()  # (a second flush adds nothing)
    assert registry.get_sample_value("oasst_tokens_relayed_total") == len(gaps) + 1
    for bound in [*INTER_TOKEN_BUCKETS, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        assert registry.get_sample_value(
            "oasst_inter_token_latency_seconds_bucket", {"le": le}
        ) == reference.get_sample_value("gap_seconds_bucket", {"le": le}), le
    assert registry.get_sample_value("oasst_inter_token_latency_seconds_sum") == pytest.approx(sum(gaps))


@pytest.mark.anyio
async def test_the_metrics_endpoint() -> None:
    metrics = ServerMetrics()  # the default registry, which the endpoint renders
    try:
        metrics.tokens_relayed.inc(7)
        app = Starlette()
        app.add_route("/metrics", metrics_endpoint)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["oasst_tokens_relayed"].samples[0].value == 7
    finally:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            if any(n.startswith("oasst_") for n in REGISTRY._collector_to_names[collector]):
                REGISTRY.unregister(collector)


WRITER = """
import os, sys
from oasst_shared.server import ServerMetrics
m = ServerMetrics()
tally = m.tally()
for gap in (None, 0.001, 0.02):
    tally.token(gap)
tally.flush()
m.connected_workers.inc()
m.open_event_streams.inc(int(sys.argv[1]))
m.set_work_queue_length("model-a", int(sys.argv[1]))
if sys.argv[1] == "2":
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(os.getpid())
"""


def test_several_processes_add_up(tmp_path: Path) -> None:
    """Three processes write into PROMETHEUS_MULTIPROC_DIR; the exposition adds them up (the
    live gauges leave out the process that was marked dead)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for arg in ("1", "2", "5"):
        done = subprocess.run(
            [sys.executable, "-c", WRITER, arg],
            check=False,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    reader = (
        "from oasst_shared.server import metrics_response\n"
        "body, content_type = metrics_response()\n"
        "print(body.decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(done.stdout)
        for s in f.samples
    }
    assert samples[("oasst_tokens_relayed_total", ())] == 9
    assert samples[("oasst_inter_token_latency_seconds_count", ())] == 6
    assert samples[("oasst_connected_workers", ())] == 2  # livesum: the live ones
    assert samples[("oasst_open_event_streams", ())] == 6
    assert samples[("oasst_work_queue_length", (("compat_hash", "model-a"),))] == 5  # the most recent


def test_without_the_extra_the_error_names_it() -> None:
    result = run_python("import oasst_shared.server", hidden=("starlette",))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: oasst_shared.server (Starlette) needs starlette, which is not installed: "
        "pip install 'oasst-shared[server]'"
    )
    result = run_python("import oasst_shared.server", hidden=("prometheus_client",))
    assert "pip install 'oasst-shared[server]'" in result.stderr.strip().splitlines()[-1]
