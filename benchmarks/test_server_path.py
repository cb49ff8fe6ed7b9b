"""The server-path benchmark end to end, in its quick mode, once: correctness only, no timings.

Starts a real Redis, the measured server process of each variant (and two relay servers
sharing the Redis) and the load process; every browser must get exactly its chat's tokens in
order, then the final message, and the report must have a row per variant and every goal.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.server_path import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_results() -> dict[str, object]:
    return run.run_benchmark(quick=True)


def test_every_variant_delivers_every_token_in_order(quick_results: dict[str, object]) -> None:
    settings = run.Settings.of(quick=True)
    variants = quick_results["variants"]
    assert isinstance(variants, dict)
    assert set(variants) == {name for name, _ in run.VARIANTS + run.ASGI_VARIANTS}
    for name, v in variants.items():
        assert "unavailable" not in v, v
        phases = v["phases"]
        expected = settings.short_phases if name.startswith("asgi-") else settings.phases
        assert set(phases) == set(expected), name
        for phase, p in phases.items():
            assert p["errors"] == 0, (name, phase, p["error_samples"])
            assert p["tokens_delivered_in_order"] == settings.chats * settings.tokens, (name, phase)
            assert p["chats_complete"] == settings.chats, (name, phase)
            assert p["ok"], (name, phase)
            assert p["server_cpu_us_per_token"] > 0, (name, phase)
            if p["offered_tps"] is not None:
                assert not math.isnan(p["latency_ms_p99"]), (name, phase)


def test_relay_across_two_servers_loses_and_reorders_nothing(quick_results: dict[str, object]) -> None:
    settings = run.Settings.of(quick=True)
    two = quick_results["two_servers"]
    assert isinstance(two, dict)
    assert "unavailable" not in two, two
    assert set(two["phases"]) == set(settings.short_phases)
    for phase, p in two["phases"].items():
        assert p["errors"] == 0, (phase, p["error_samples"])
        assert p["tokens_delivered_in_order"] == settings.chats * settings.tokens, phase
        assert len(p["server_cpu_seconds"]) == 2, phase  # both processes were read
        assert all(cpu > 0 for cpu in p["server_cpu_seconds"]), phase  # and both did work


def test_report_has_a_row_per_variant_and_the_goals(quick_results: dict[str, object]) -> None:
    text = run.markdown(quick_results)
    settings = run.Settings.of(quick=True)
    for name, label in run.VARIANTS + run.ASGI_VARIANTS:
        phases = settings.short_phases if name.startswith("asgi-") else settings.phases
        rates = [p for p in phases if p != "flood"]
        rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
        # one row at saturation, then one per offered load, in the settings' order
        assert len(rows) == 1 + len(rates), label
        assert "not run" not in rows[0], rows[0]
        for row, rate in zip(rows[1:], rates, strict=True):
            assert row.startswith(f"| {label} | {float(rate):,.0f} | "), row
    goals = quick_results["goals"]
    assert isinstance(goals, list)
    assert len(goals) == 9  # four of the relay, two of the example server, three on the cluster
    for g in goals:
        assert f"| {g['goal']} | {g['measured']} |" in text
    assert "Relay across two server processes (workers on one, browsers on the other" in text
    assert "Relay on a Redis Cluster (3 masters" in text


def test_the_relay_on_a_cluster_delivers_every_token_and_reads_every_node(
    quick_results: dict[str, object],
) -> None:
    settings = run.Settings.of(quick=True)
    cluster = quick_results["cluster"]
    assert isinstance(cluster, dict)
    assert "unavailable" not in cluster, cluster
    assert set(cluster["phases"]) == set(settings.short_phases)
    for phase, p in cluster["phases"].items():
        assert p["errors"] == 0, (phase, p["error_samples"])
        assert p["tokens_delivered_in_order"] == settings.chats * settings.tokens, phase
        nodes = p["redis_cpu_us_per_token_by_node"]
        assert len(nodes) == 3 and all(x > 0 for x in nodes), (phase, nodes)  # every master worked
        assert sum(nodes) == pytest.approx(p["redis_cpu_us_per_token"]), phase
