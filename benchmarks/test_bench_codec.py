"""Serialization cost per message, side by side (pytest-benchmark).

Each case is checked for correctness before it is timed. ``benchmarks/report.py`` turns a
run's JSON into ratios: ours / untyped floor, view / ours.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from benchmarks.cases import Case, build_cases

CASES = build_cases()


def test_000_warm_up_the_benchmark_machinery(benchmark: Any) -> None:
    """Runs first and is left out of the report: the first timed test of a session measured
    slower than the same code timed later (cold caches and timer calibration)."""
    frame = b'{"response_type": "token", "text": "x", "token_id": 1}'
    benchmark.group = "warm-up"
    benchmark.extra_info.update(message="-", op="-", impl="warmup")
    result = benchmark(lambda: orjson.loads(frame))
    assert result["token_id"] == 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_codec(benchmark: Any, case: Case) -> None:
    case.check()
    benchmark.group = case.group
    benchmark.extra_info.update(message=case.message, op=case.op, impl=case.impl)
    benchmark(case.fn)
