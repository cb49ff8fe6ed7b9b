"""Run the benchmark suite and print the side-by-side table of ratios.

    python -m benchmarks.report [--quick] [--json FILE] [--chart FILE] [--raw FILE]

Times come from pytest-benchmark (``benchmarks/test_bench_codec.py``), run with this
interpreter in several processes (passes) of the suite; the table of cases shows each case's
lowest median over them (see ``best_medians``). Also measured: memory per decoded
``WorkRequest``, cold import time of the schema modules, and tokens per second of a
websocket -> SSE token stream on loopback.

A goal's figure is a ratio taken within one process (or one repetition) against its baseline,
once per process: the table shows their median and their spread (lowest-highest). A goal is
met or missed only when every sample says so, and only with at least ``MIN_SAMPLES`` of them;
when the samples fall on both sides of the target the verdict is "within noise" (see
``verdict``). ``--quick`` (what ``make bench`` runs) takes shorter timings than the full run,
and the output says which one it was.

The terminal (stdout) gets only the summary: the kind of run, the machine, the versions of
Python, msgspec, orjson and pydantic it ran with, and the tables. A line per phase goes to
stderr while it runs; pytest-benchmark's own per-case tables of every pass go to ``--raw`` (by
default ``bench-results/raw.txt``). The JSON (``--json``) and the chart (``--chart``) carry the
same machine and version lines.

Ratios of one process still move by 10-15% from one process to the next: to compare two
environments (two msgspec releases, say), run ``python -m benchmarks.compare``, which
alternates whole processes of this report and prints the spread per goal.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DEFAULT_RAW = ROOT / "bench-results" / "raw.txt"

# The distributions whose versions decide the figures, named in every report, JSON and chart.
MEASURED_PACKAGES = ("msgspec", "orjson", "pydantic")

MIN_SAMPLES = 3
"""The fewest samples (processes, fresh interpreters, repetitions) a goal needs for a verdict."""

PASSES = {True: 3, False: 3}
"""Processes of the suite by default, quick (``True``) and full."""

QUICK_TIMING = ["--benchmark-max-time=0.05", "--benchmark-min-rounds=20"]
FULL_TIMING = ["--benchmark-max-time=0.5", "--benchmark-min-rounds=50"]

# (label, numerator (message, op, impl), denominator, goal, "le" | "ge")
GOALS: list[tuple[str, tuple[str, str, str], tuple[str, str, str], float, str]] = [
    (
        "token decode / orjson.loads",
        ("TokenResponse", "decode", "struct"),
        ("TokenResponse", "decode", "orjson"),
        0.75,
        "le",
    ),
    (
        "token encode into buffer / orjson.dumps",
        ("TokenResponse", "encode", "struct-into"),
        ("TokenResponse", "encode", "orjson"),
        0.95,
        "le",
    ),
    (
        "WorkRequest decode / orjson.loads",
        ("WorkRequest", "decode", "struct"),
        ("WorkRequest", "decode", "orjson"),
        0.8,
        "le",
    ),
    (
        "WorkRequest encode / orjson.dumps",
        ("WorkRequest", "encode", "struct"),
        ("WorkRequest", "encode", "orjson"),
        1.1,
        "le",
    ),
    (
        "token decode: view / struct",
        ("TokenResponse", "decode", "view"),
        ("TokenResponse", "decode", "struct"),
        3.0,
        "ge",
    ),
    (
        "WorkRequest decode: view / struct",
        ("WorkRequest", "decode", "view"),
        ("WorkRequest", "decode", "struct"),
        3.0,
        "ge",
    ),
    (
        "envelope peek / orjson.loads",
        ("TokenResponse", "peek", "struct"),
        ("TokenResponse", "peek", "orjson"),
        0.35,
        "le",
    ),
    (
        "relay: decode+encode / peek+forward",
        ("TokenResponse", "relay", "struct"),
        ("TokenResponse", "relay", "struct-peek"),
        3.5,
        "ge",
    ),
]

# What bounds the goals that depend on msgspec's C code, measured in the same run:
# (label, numerator, denominator, the goal it bounds)
BOUNDS: list[tuple[str, tuple[str, str, str], tuple[str, str, str], str]] = [
    (
        "request_id-only decode / orjson.loads: the least a msgspec peek that can route costs",
        ("TokenResponse", "peek", "msgspec-request-id-only"),
        ("TokenResponse", "peek", "orjson"),
        "envelope peek <= 0.35x",
    ),
    (
        "decode+encode / request_id-only decode: the most a msgspec relay can save",
        ("TokenResponse", "relay", "struct"),
        ("TokenResponse", "peek", "msgspec-request-id-only"),
        "relay >= 3.5x",
    ),
    (
        "skip-all decode / orjson.loads: msgspec reading the frame, no field kept",
        ("TokenResponse", "peek", "msgspec-skip-all"),
        ("TokenResponse", "peek", "orjson"),
        "envelope peek <= 0.35x",
    ),
    (
        "msgspec / orjson.dumps on the WorkRequest's string values alone",
        ("WorkRequest strings", "encode", "msgspec"),
        ("WorkRequest strings", "encode", "orjson"),
        "WorkRequest encode <= 1.1x",
    ),
]


@dataclass
class Row:
    message: str
    op: str
    impl: str
    median: float


def best_medians(runs: list[list[Row]]) -> list[Row]:
    """Per case, the lowest of its medians over several runs of the suite.

    This machine class shows slow periods lasting longer than one case's timing window (a
    case timed inside one looks up to 2x slower, with a huge IQR), while pytest-benchmark times
    cases one after another; the lowest per-run median is the figure least disturbed by that.
    """
    best: dict[tuple[str, str, str], Row] = {}
    for rows in runs:
        for row in rows:
            key = (row.message, row.op, row.impl)
            if key not in best or row.median < best[key].median:
                best[key] = row
    return list(best.values())


def suite_command(quick: bool, out: Path) -> list[str]:
    """The pytest command of one pass of the suite, writing pytest-benchmark's JSON to ``out``."""
    timing = QUICK_TIMING if quick else FULL_TIMING
    return [
        sys.executable,
        "-m",
        "pytest",
        str(HERE / "test_bench_codec.py"),
        "-p",
        "no:cacheprovider",
        "-q",
        "--benchmark-only",
        "--benchmark-warmup=on",
        f"--benchmark-json={out}",
        "--benchmark-columns=median,iqr,rounds",
        "--benchmark-group-by=group",
        *timing,
    ]


def run_suite(quick: bool, out: Path, raw: IO[str]) -> list[Row]:
    """Run one pass of the pytest-benchmark suite in a subprocess, return the medians (seconds).

    pytest's output (its per-case tables) is appended to ``raw``, not shown on the terminal.
    """
    cmd = suite_command(quick, out)
    raw.write(f"$ {' '.join(cmd)}\n")
    raw.flush()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=raw, stderr=subprocess.STDOUT, check=False)
    raw.write("\n")
    raw.flush()
    if proc.returncode != 0:
        raise SuiteFailed(f"benchmark suite failed (exit {proc.returncode})")
    data = json.loads(out.read_text())
    return [
        Row(b["extra_info"]["message"], b["extra_info"]["op"], b["extra_info"]["impl"], b["stats"]["median"])
        for b in data["benchmarks"]
        if b["extra_info"].get("impl") != "warmup"
    ]


class SuiteFailed(RuntimeError):
    """A pass of the pytest-benchmark suite exited non-zero (its output is in the raw file)."""


@contextlib.contextmanager
def phase(label: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Write ``label ...`` to stderr, run the block, then finish the line with its wall time."""
    out = stream if stream is not None else sys.stderr
    out.write(f"{label} ... ")
    out.flush()
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        out.write(f"failed after {time.perf_counter() - start:.1f} s\n")
        out.flush()
        raise
    out.write(f"{time.perf_counter() - start:.1f} s\n")
    out.flush()


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.2f} ms"


def table(rows: list[Row]) -> tuple[str, list[dict[str, Any]]]:
    by_group: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        by_group.setdefault((r.message, r.op), {})[r.impl] = r.median
    lines = [
        "| message | op | struct | struct / orjson | view / struct | orjson | other |",
        "|---|---|---|---|---|---|---|",
    ]
    records: list[dict[str, Any]] = []
    for (message, op), impls in by_group.items():
        ours = impls.get("struct")
        floor = impls.get("orjson")
        view = impls.get("view")
        vs_floor = ours / floor if ours and floor else None
        vs_view = view / ours if ours and view else None
        others = ", ".join(
            f"{k} {_fmt_time(v)}" for k, v in impls.items() if k not in ("struct", "orjson", "view")
        )
        lines.append(
            f"| {message} | {op} | {_fmt_time(ours) if ours else '-'} | "
            f"{f'{vs_floor:.2f}x' if vs_floor else '-'} | {f'{vs_view:.1f}x' if vs_view else '-'} | "
            f"{_fmt_time(floor) if floor else '-'} | {others} |"
        )
        records.append(
            {
                "message": message,
                "op": op,
                "medians_s": impls,
                "struct_over_orjson": vs_floor,
                "view_over_struct": vs_view,
            }
        )
    return "\n".join(lines), records


def _ratios(rows: list[Row]) -> Callable[[tuple[str, str, str], tuple[str, str, str]], float | None]:
    """``ratio(numerator, denominator)`` of two cases' medians, ``None`` when one is missing."""
    medians = {(r.message, r.op, r.impl): r.median for r in rows}

    def ratio(num: tuple[str, str, str], den: tuple[str, str, str]) -> float | None:
        a, b = medians.get(num), medians.get(den)
        return a / b if a and b else None

    return ratio


@dataclass
class Samples:
    """The samples of one goal's ratio: one per process of the suite, fresh interpreter or
    repetition (``over`` names which, plural)."""

    values: list[float]
    over: str

    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        """``0.70-1.08x over 3 processes`` (one value: ``1 process``)."""
        n = len(self.values)
        unit = self.over if n != 1 else self.over[:-2] if self.over.endswith("sses") else self.over[:-1]
        return f"{min(self.values):.2f}-{max(self.values):.2f}x over {n} {unit}"


def verdict(samples: list[float], target: float, sense: str) -> str:
    """``yes`` / ``no`` when every sample is on the same side of ``target`` (``le``: at most it,
    ``ge``: at least it) and there are at least ``MIN_SAMPLES``; ``within noise`` when they fall
    on both sides; ``too few samples`` below ``MIN_SAMPLES``; ``not measured`` without any."""
    if not samples:
        return "not measured"
    met = {value <= target if sense == "le" else value >= target for value in samples}
    if len(met) > 1:
        return "within noise"
    if len(samples) < MIN_SAMPLES:
        return "too few samples"
    return "yes" if met.pop() else "no"


def goal_samples(runs: list[list[Row]]) -> dict[str, Samples]:
    """Each goal of ``GOALS`` as its ratio in each process of the suite (a process where a case
    is missing gives no sample)."""
    found: dict[str, Samples] = {}
    per_run = [_ratios(rows) for rows in runs]
    for label, num, den, _, _ in GOALS:
        values = [value for ratio in per_run if (value := ratio(num, den)) is not None]
        found[label] = Samples(values, "processes")
    return found


def goals(
    runs: list[list[Row]], extra: dict[str, tuple[Samples, float, str]]
) -> tuple[str, list[dict[str, Any]]]:
    """The goals table: per goal its median ratio, the spread of its samples, the target and the
    verdict (``verdict``). ``runs`` are the suite's processes; ``extra`` the goals measured
    outside the suite, with their samples, target and sense."""
    lines = ["| goal | median | spread | target | met |", "|---|---|---|---|---|"]
    records: list[dict[str, Any]] = []
    items: list[tuple[str, Samples, float, str]] = []
    per_process = goal_samples(runs)
    for label, _, _, target, sense in GOALS:
        items.append((label, per_process[label], target, sense))
    for label, (samples, target, sense) in extra.items():
        items.append((label, samples, target, sense))
    for label, samples, target, sense in items:
        met = verdict(samples.values, target, sense)
        value = samples.median() if samples.values else None
        sign = "<=" if sense == "le" else ">="
        shown = f"{value:.2f}x" if value is not None else "-"
        spread = samples.spread() if samples.values else "-"
        lines.append(f"| {label} | {shown} | {spread} | {sign} {target}x | {met} |")
        records.append(
            {
                "goal": label,
                "ratio": value,
                "samples": samples.values,
                "samples_over": samples.over,
                "target": target,
                "sense": sense,
                "met": met,
            }
        )
    return "\n".join(lines), records


def bounds(rows: list[Row]) -> tuple[str, list[dict[str, Any]]]:
    """The ratios that show how far msgspec itself allows the goals in ``BOUNDS`` to go."""
    ratio = _ratios(rows)
    lines = ["| bound | measured | for the goal |", "|---|---|---|"]
    records: list[dict[str, Any]] = []
    for label, num, den, goal in BOUNDS:
        value = ratio(num, den)
        lines.append(f"| {label} | {f'{value:.2f}x' if value is not None else '-'} | {goal} |")
        records.append({"bound": label, "ratio": value, "goal": goal})
    return "\n".join(lines), records


def bare_table(times: dict[str, float]) -> str:
    """The bare-loop peek timings (``measure.bare_peek_times``) as ratios to ``orjson.loads``,
    and the relay's saving over the checked peek and over the request_id-only floor."""
    base = times["orjson.loads"]
    lines = ["| bare timeit loop, token frame | time | / orjson.loads |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt_time(t)} | {t / base:.2f}x |" for name, t in times.items()]
    full = times["decode+encode"]
    lines.append(
        f"| relay: decode+encode / peek | - | {full / times['peek']:.2f}x "
        f"(over request_id only: {full / times['request_id only']:.2f}x) |"
    )
    return "\n".join(lines)


def versions() -> dict[str, str | None]:
    """The Python version and the installed versions of ``MEASURED_PACKAGES`` (``None``: absent).

    Read from the installed distributions' metadata (``importlib.metadata``), what the
    interpreter running the report actually imports.
    """
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in MEASURED_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def versions_line(found: dict[str, str | None]) -> str:
    """``Python 3.11.7, msgspec 0.23.0, orjson 3.13.0, pydantic 2.14.4`` (``absent`` if missing)."""
    return ", ".join(
        f"{'Python' if name == 'python' else name} {version or 'absent'}" for name, version in found.items()
    )


def machine() -> str:
    """CPU model, core count and operating system of this machine."""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def chart_caption(found: dict[str, str | None], where: str, quick: bool) -> str:
    """The lines under the chart's title: what the figures were measured with, and where."""
    return f"{versions_line(found)}\n{where}; {'quick' if quick else 'full'} run"


def chart_figure(records: list[dict[str, Any]], caption: str) -> Any:
    """Horizontal bars: time relative to orjson (1.0) for struct and view, per case.

    ``caption`` (``chart_caption``: versions and machine) is shown under the title.
    Returns the matplotlib figure; the caller closes it.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ours, views = [], [], []
    for rec in records:
        floor = rec["medians_s"].get("orjson")
        if not floor or "struct" not in rec["medians_s"]:
            continue
        labels.append(f"{rec['message']} {rec['op']}")
        ours.append(rec["medians_s"]["struct"] / floor)
        views.append(rec["medians_s"].get("view", 0.0) / floor)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.8))
    ys = range(len(labels))
    ax.barh([y + 0.2 for y in ys], ours, height=0.4, label="oasst_shared (msgspec structs)", color="#2b7bba")
    ax.barh([y - 0.2 for y in ys], views, height=0.4, label="Pydantic v2 views", color="#e08a2c")
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--", label="orjson, untyped (1.0)")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if min(ours) / 1.5 <= t <= max(views + ours) * 1.5]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("time relative to orjson on the same document (lower is faster, log scale)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, fontsize=8, frameon=False)
    ax.set_title("oasst-shared serialization cost, ratios from one run", pad=30)
    ax.annotate(
        caption,
        xy=(0.5, 1.0),
        xycoords="axes fraction",
        xytext=(0, 6),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7.5,
        color="#444444",
    )
    fig.tight_layout()
    return fig


def chart(records: list[dict[str, Any]], path: Path, caption: str) -> None:
    """Render ``chart_figure`` to a PNG at ``path``; ``caption`` is also stored in its metadata."""
    import matplotlib.pyplot as plt

    fig = chart_figure(records, caption)
    try:
        metadata = {"Title": "oasst-shared benchmark ratios", "Description": caption}
        fig.savefig(path, dpi=110, metadata=metadata)
    finally:
        plt.close(fig)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


IMPORTED = ("msgspec", "oasst_shared.schemas.inference", "oasst_shared.schemas.protocol")
"""The modules whose cold import time is measured (the first is the baseline)."""


def import_samples(rounds: int) -> dict[str, list[float]]:
    """Cold import seconds of each module of ``IMPORTED``, one fresh interpreter per module and
    round, the modules taken in turn in each round (so a slow period hits them alike)."""
    from benchmarks import measure

    found: dict[str, list[float]] = {module: [] for module in IMPORTED}
    for _ in range(rounds):
        for module in IMPORTED:
            found[module].append(measure.import_seconds(module, runs=1))
    return found


def memory_samples(repeats: int) -> list[dict[str, int]]:
    """``measure.work_request_memory()`` ``repeats`` times (bytes counted: the same each time
    unless something allocates lazily)."""
    from benchmarks import measure

    return [measure.work_request_memory() for _ in range(repeats)]


def stream_samples(tokens: int, repeats: int) -> list[dict[str, float]]:
    """Tokens per second of each flavour, ``repeats`` times (each the best of two rounds, one
    per order of the flavours)."""
    from benchmarks import streaming

    return [streaming.tokens_per_second(tokens, rounds=2) for _ in range(repeats)]


GOALS_NOTE = (
    "median, spread: of the goal's ratio taken within each process against its baseline in that "
    "process; the table of cases divides lowest medians, which may come from different processes."
)
"""Printed under the goals table: why its figures differ from the ratios of the table of cases."""


def run_header(quick: bool, passes: int) -> str:
    """The first line of the summary: which kind of run this was, and what a verdict means."""
    if quick:
        kind = (
            f"QUICK RUN (make bench): short timings, {passes} processes of the suite. "
            "For the figures the docs quote, run the full report: python -m benchmarks.report"
        )
    else:
        kind = f"FULL RUN: long timings, {passes} processes of the suite."
    return (
        f"{kind}\nA goal is met (yes) or missed (no) only when all its samples, at least {MIN_SAMPLES}, "
        'agree; "within noise" when they fall on both sides of the target.'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--chart", type=Path, help="render a bar chart of the ratios (PNG) to this file")
    parser.add_argument(
        "--raw",
        type=Path,
        default=DEFAULT_RAW,
        help="where pytest-benchmark's per-case tables of every pass go (default bench-results/raw.txt)",
    )
    parser.add_argument("--no-stream", action="store_true", help="skip the websocket -> SSE streaming run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help=f"processes of the suite; each case keeps its lowest median, each goal a ratio per process "
        f"(default {PASSES[True]} quick, {PASSES[False]} full)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from benchmarks import measure

    found = versions()
    where = machine()
    mode = "quick" if args.quick else "full"
    repeats = args.repeat or PASSES[args.quick]
    raw_path: Path = args.raw
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"benchmark report, {mode} run: {versions_line(found)} "
        f"(pytest-benchmark's tables go to {_shown(raw_path)})",
        file=sys.stderr,
        flush=True,
    )
    runs: list[list[Row]] = []
    with raw_path.open("w") as raw, tempfile.TemporaryDirectory() as tmp:
        raw.write(f"# benchmarks.report, {mode} run\n# {where}\n# {versions_line(found)}\n\n")
        try:
            for i in range(repeats):
                with phase(f"pass {i + 1}/{repeats}: codec cases (pytest-benchmark)"):
                    runs.append(run_suite(args.quick, Path(tmp) / f"bench-{i}.json", raw))
        except SuiteFailed as exc:
            raw.flush()
            tail = raw_path.read_text().splitlines()[-40:]
            print("\n".join(tail), file=sys.stderr)
            raise SystemExit(f"{exc}; its whole output is in {_shown(raw_path)}") from None
    rows = best_medians(runs)

    with phase("memory of a decoded WorkRequest"):
        memories = memory_samples(MIN_SAMPLES)
    with phase("cold import times"):
        imports = import_samples(5 if args.quick else 9)
    streams: list[dict[str, float]] = []
    if not args.no_stream:
        with phase("token stream websocket -> SSE"):
            streams = stream_samples(1000 if args.quick else 5000, MIN_SAMPLES)
    with phase("bare timeit loop"):
        bare = measure.bare_peek_times(rounds=5 if args.quick else 9)

    memory = memories[0]
    base = IMPORTED[0]
    extra: dict[str, tuple[Samples, float, str]] = {
        "import oasst_shared.schemas.inference / import msgspec": (
            Samples(
                [a / b for a, b in zip(imports[IMPORTED[1]], imports[base], strict=True)], "interpreters"
            ),
            1.5,
            "le",
        ),
        "decoded WorkRequest memory / orjson dicts": (
            Samples([m["struct"] / m["orjson"] for m in memories], "repetitions"),
            0.7,
            "le",
        ),
    }
    stream = {name: max(s[name] for s in streams) for name in streams[0]} if streams else {}
    if "view" in stream:
        extra["token stream: struct tokens/s / view tokens/s"] = (
            Samples([s["struct"] / s["view"] for s in streams], "repetitions"),
            1.0,
            "ge",
        )

    text, records = table(rows)
    goal_text, goal_records = goals(runs, extra)
    bound_text, bound_records = bounds(rows)
    print()
    print(run_header(args.quick, repeats))
    print(f"Machine: {where}")
    print(f"Versions: {versions_line(found)}")
    print(
        f"Run: {mode}, {repeats} processes of the suite; a case's time is its lowest median over them, "
        f"a goal's figure the median of its per-process ratios; pytest-benchmark's per-case tables: "
        f"{_shown(raw_path)}"
    )
    print()
    print(text)
    print()
    print(goal_text)
    print(GOALS_NOTE)
    print()
    print(bound_text)
    print()
    print(bare_table(bare))
    print()
    mem_line = ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in memory.items())
    print(f"Memory of one decoded 20-message WorkRequest: {mem_line}")
    imp_line = ", ".join(f"{k} {min(v) * 1e3:.1f} ms" for k, v in imports.items())
    print(f"Cold import (best of runs): {imp_line}")
    if stream:
        print(
            f"Token stream websocket -> SSE (tokens/s, best of {2 * len(streams)}): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in stream.items())
        )
    sys.stdout.flush()
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": where,
                    "versions": found,
                    "quick": args.quick,
                    "passes": repeats,
                    "cases": records,
                    "goals": goal_records,
                    "bounds": bound_records,
                    "bare_loop_seconds": bare,
                    "memory_bytes": memory,
                    "import_seconds": {k: min(v) for k, v in imports.items()},
                    "stream_tokens_per_second": stream,
                },
                indent=2,
            )
        )
        print(f"results written to {_shown(args.json)}", file=sys.stderr)
    if args.chart:
        chart(records, args.chart, chart_caption(found, where, args.quick))
        print(f"chart written to {_shown(args.chart)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
