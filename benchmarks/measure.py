"""Measurements that are not per-call timings: memory of a decoded message, import time,
and an interleaved ratio timer used by the CI guard and the report."""

from __future__ import annotations

import gc
import subprocess
import sys
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from benchmarks import messages
from benchmarks.cases import RequestIdOnly, SkipAll
from oasst_shared import codec


def retained_bytes(make: Callable[[], Any]) -> int:
    """Bytes still allocated after ``make()`` returns, while its result is alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = make()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del obj
    return after - before


def work_request_memory() -> dict[str, int]:
    """Memory held by one decoded 20-message WorkRequest, per representation."""
    data = codec.worker_request.encode(messages.work_request())
    result = {
        "struct": retained_bytes(lambda: codec.worker_request.decode(data)),
        "orjson": retained_bytes(lambda: orjson.loads(data)),
    }
    try:
        from pydantic import TypeAdapter

        from oasst_compat.schemas import inference as views
    except ImportError:
        return result
    adapter: TypeAdapter[Any] = TypeAdapter(views.WorkerRequest)
    adapter.validate_json(data)  # build lazy schema state outside the measurement
    result["view"] = retained_bytes(lambda: adapter.validate_json(data))
    return result


_IMPORT_SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str, runs: int = 7) -> float:
    """Best-of-``runs`` cold import time of ``module`` in a fresh interpreter."""
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_SNIPPET.format(module=module)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        best = min(best, float(out.strip()))
    return best


def import_costs(runs: int = 7) -> dict[str, float]:
    return {
        "msgspec": import_seconds("msgspec", runs),
        "oasst_shared.schemas.inference": import_seconds("oasst_shared.schemas.inference", runs),
        "oasst_shared.schemas.protocol": import_seconds("oasst_shared.schemas.protocol", runs),
    }


def interleaved(
    fns: dict[str, Callable[[], Any]], *, rounds: int = 9, number: int = 1000
) -> dict[str, float]:
    """Seconds per call of each function: the minimum over ``rounds`` interleaved rounds.

    Interleaving spreads machine noise over all contenders alike; the minimum is the
    estimate least disturbed by other load. Only ratios of the results mean anything.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(timeit.timeit(fn, number=number) / number)
    return {name: min(values) for name, values in samples.items()}


def bare_peek_times(rounds: int = 9, number: int = 20000) -> dict[str, float]:
    """Seconds per call on the token frame, each call timed as a bare ``timeit`` statement.

    pytest-benchmark calls each case through a Python function, a fixed cost that pulls every
    small ratio toward 1. Here nothing but the measured call runs in the loop, which gives the
    envelope peek its best case. Interleaved rounds, minimum per statement.
    """
    frame = codec.worker_response.encode(messages.token_response())
    names = {
        "loads": orjson.loads,
        "skip_all": msgspec.json.Decoder(SkipAll).decode,
        "request_id_only": msgspec.json.Decoder(RequestIdOnly).decode,
        "unchecked": codec.worker_response_envelope.decoder.decode,
        "peek": codec.peek_worker_response,
        "decode": codec.worker_response.decode,
        "encode": codec.worker_response.encode,
        "frame": frame,
    }
    statements = {
        "orjson.loads": "loads(frame)",
        "msgspec skip-all": "skip_all(frame)",
        "request_id only": "request_id_only(frame)",
        "unchecked peek": "unchecked(frame)",
        "peek": "peek(frame)",
        "decode+encode": "encode(decode(frame))",
    }
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(rounds):
        for name, statement in statements.items():
            samples[name].append(timeit.timeit(statement, globals=names, number=number) / number)
    return {name: min(values) for name, values in samples.items()}
