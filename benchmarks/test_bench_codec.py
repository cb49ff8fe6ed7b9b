"""Serialization cost per message, side by side (pytest-benchmark).

Each case is checked for correctness before it is timed. ``benchmarks/report.py`` turns a
run's JSON into ratios: ours / untyped floor, view / ours.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.cases import Case, build_cases

CASES = build_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_codec(benchmark: Any, case: Case) -> None:
    case.check()
    benchmark.group = case.group
    benchmark.extra_info.update(message=case.message, op=case.op, impl=case.impl)
    benchmark(case.fn)
