"""Compare the benchmark ratios of two (or more) environments over alternating processes.

    python -m benchmarks.compare --python A/bin/python --python B/bin/python [--rounds 4]
        [--quick] [--no-stream] [--json FILE]

The ratios of one ``benchmarks.report`` process move by 10-15% from one process to the next
on a shared machine, more than most differences between two releases of a dependency. So a
claim that environment B is faster than A needs several processes of each, taken in turn so
that a slow period of the machine hits both alike: this runs the whole report
(``python -m benchmarks.report --json ...``) with each interpreter in turn, A, B, A, B, ...
for ``--rounds`` rounds, and prints, per goal and per bound, the min / median / max of the
ratio in each environment. With two environments it also says in how many rounds each one
did better than the other in the same round, and whether the two spreads overlap: when they
do, the runs show no difference beyond the noise.

Each environment is a Python with this repository installed (``pip install -e``) plus the
dependency versions under test; the processes run from the repository root, so they measure
the same benchmark code. Each report's own output goes to a log next to its JSON (in a
temporary directory, or under ``--keep DIR``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

VERSION_KEYS = ("python", "msgspec", "orjson", "pydantic")


@dataclass
class Env:
    """One environment: its label in the tables, its interpreter, and what each process found."""

    label: str
    python: str
    versions: dict[str, str | None] = field(default_factory=dict)
    # one entry per process, in round order: {"goals": {label: ratio}, "bounds": {...}}
    runs: list[dict[str, dict[str, float | None]]] = field(default_factory=list)
    # goal label -> (target, "le" | "ge"), as the reports state them
    targets: dict[str, tuple[float, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Spread:
    """The spread of one ratio over an environment's processes."""

    low: float
    median: float
    high: float
    count: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        if not values:
            return None
        return cls(min(values), statistics.median(values), max(values), len(values))

    def shown(self) -> str:
        return f"{self.low:.2f} / {self.median:.2f} / {self.high:.2f}"


def report_command(python: str, quick: bool, no_stream: bool, out: Path, raw: Path) -> list[str]:
    """The command of one ``benchmarks.report`` process of ``python``, its JSON to ``out``."""
    cmd = [python, "-m", "benchmarks.report", "--json", str(out), "--raw", str(raw)]
    if quick:
        cmd.append("--quick")
    if no_stream:
        cmd.append("--no-stream")
    return cmd


def ratios_of(doc: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The goal and bound ratios of one report's JSON (``benchmarks.report --json``)."""
    return {
        "goals": {g["goal"]: g["ratio"] for g in doc["goals"]},
        "bounds": {b["bound"]: b["ratio"] for b in doc["bounds"]},
    }


def run_rounds(
    envs: list[Env], rounds: int, *, quick: bool, no_stream: bool, workdir: Path, log: Any = None
) -> None:
    """Run ``rounds`` rounds; each round runs one report process per environment, in order.

    Fills each ``Env``'s ``runs`` and ``versions``. Raises ``SystemExit`` naming the log of a
    process that failed, after printing its last lines.
    """
    out = log if log is not None else sys.stderr
    for round_ in range(1, rounds + 1):
        for env in envs:
            stem = f"round{round_}-{env.label}"
            json_path, raw_path, log_path = (
                workdir / f"{stem}{ext}" for ext in (".json", ".raw.txt", ".log")
            )
            cmd = report_command(env.python, quick, no_stream, json_path, raw_path)
            out.write(f"round {round_}/{rounds}, {env.label} ({env.python}) ... ")
            out.flush()
            start = time.perf_counter()
            with log_path.open("w") as log_file:
                proc = subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, check=False)
            if proc.returncode != 0:
                out.write(f"failed (exit {proc.returncode})\n")
                out.write("\n".join(log_path.read_text().splitlines()[-30:]) + "\n")
                out.flush()
                raise SystemExit(f"{env.label}: benchmarks.report failed; its output is in {log_path}")
            out.write(f"{time.perf_counter() - start:.1f} s\n")
            out.flush()
            doc = json.loads(json_path.read_text())
            found = {k: doc.get("versions", {}).get(k) for k in VERSION_KEYS}
            if env.versions and found != env.versions:
                raise SystemExit(
                    f"{env.label}: versions changed between processes: {env.versions} -> {found}"
                )
            env.versions = found
            env.runs.append(ratios_of(doc))
            env.targets.update({g["goal"]: (g["target"], g["sense"]) for g in doc["goals"]})


def _better(a: float, b: float, sense: str) -> bool:
    return a < b if sense == "le" else a > b


def comparison_table(envs: list[Env], kind: str) -> str:
    """Markdown: per ratio of ``kind`` ("goals" or "bounds"), min / median / max per environment.

    For goals with two environments: in how many rounds each did better than the other (the
    two processes of a round compared), and whether the spreads overlap ("overlap": no
    difference beyond the noise; a verdict needs ``MIN_PROCESSES_FOR_A_VERDICT`` rounds).
    """
    names: list[str] = []
    targets: dict[str, tuple[float, str]] = {}
    for env in envs:
        targets.update(env.targets)
        for run in env.runs:
            names += [n for n in run[kind] if n not in names]
    pair = len(envs) == 2 and kind == "goals"
    head = ["goal" if kind == "goals" else "bound"]
    if kind == "goals":
        head.append("target")
    head += [f"{env.label} min / median / max" for env in envs]
    if pair:
        a, b = envs
        head += [f"rounds won, {a.label} / {b.label}", "spreads"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        per_env = [[v for run in env.runs if (v := run[kind].get(name)) is not None] for env in envs]
        spreads = [Spread.of(values) for values in per_env]
        cells = [name]
        target = targets.get(name)
        if kind == "goals":
            cells.append(f"{'<=' if target[1] == 'le' else '>='} {target[0]}x" if target else "-")
        cells += [s.shown() if s else "-" for s in spreads]
        if pair:
            sa, sb = spreads
            sense = target[1] if target else "le"
            pairs = [
                (ra[kind].get(name), rb[kind].get(name))
                for ra, rb in zip(envs[0].runs, envs[1].runs, strict=False)
            ]
            pairs_known = [(x, y) for x, y in pairs if x is not None and y is not None]
            a_wins = sum(_better(x, y, sense) for x, y in pairs_known)
            b_wins = sum(_better(y, x, sense) for x, y in pairs_known)
            cells.append(f"{a_wins} / {b_wins} of {len(pairs_known)}")
            cells.append(_overlap(sa, sb, envs[0].label, envs[1].label, sense))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Fewer processes per environment than this and the spreads say nothing about the noise.
MIN_PROCESSES_FOR_A_VERDICT = 3


def _overlap(sa: Spread | None, sb: Spread | None, la: str, lb: str, sense: str) -> str:
    """``overlap`` (no difference beyond the noise), ``apart: X better``, or too few processes."""
    if sa is None or sb is None:
        return "-"
    if min(sa.count, sb.count) < MIN_PROCESSES_FOR_A_VERDICT:
        return f"too few rounds (< {MIN_PROCESSES_FOR_A_VERDICT})"
    if sa.high < sb.low:
        lower = la
    elif sb.high < sa.low:
        lower = lb
    else:
        return "overlap"
    better = lower if sense == "le" else (lb if lower == la else la)
    return f"apart: {better} better"


def summary(envs: list[Env], rounds: int, quick: bool) -> str:
    """The whole markdown printed at the end: environments, then the goal and bound tables."""
    order = ", ".join(env.label for env in envs)
    lines = [
        f"{rounds} rounds of `benchmarks.report{' --quick' if quick else ''}`, one process per "
        f"environment per round, in the order {order}, {order}, ...; each cell: min / median / max "
        "of the ratio over that environment's processes.",
        "",
    ]
    for env in envs:
        shown = ", ".join(
            f"{'Python' if k == 'python' else k} {v or 'absent'}" for k, v in env.versions.items()
        )
        lines.append(f"- {env.label}: {env.python} ({shown})")
    lines += ["", comparison_table(envs, "goals"), "", comparison_table(envs, "bounds")]
    return "\n".join(lines)


def _labels(pythons: list[str], given: list[str] | None) -> list[str]:
    if given:
        if len(given) != len(pythons):
            raise SystemExit("give one --label per --python")
        return given
    return [chr(ord("A") + i) for i in range(len(pythons))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        action="append",
        required=True,
        help="an environment's interpreter (give it twice or more), with this repo installed",
    )
    parser.add_argument("--label", action="append", help="a name per --python (default A, B, ...)")
    parser.add_argument("--rounds", type=int, default=4, help="processes per environment (default 4)")
    parser.add_argument("--quick", action="store_true", help="run each report in its quick mode")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming run in each report")
    parser.add_argument("--json", type=Path, help="write every process's ratios and the versions here")
    parser.add_argument("--keep", type=Path, help="keep each process's JSON, raw tables and log here")
    args = parser.parse_args(argv)
    if len(args.python) < 2:
        parser.error("give --python at least twice")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.path.insert(0, str(ROOT))

    envs = [
        Env(label, python)
        for label, python in zip(_labels(args.python, args.label), args.python, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run_rounds(envs, args.rounds, quick=args.quick, no_stream=args.no_stream, workdir=workdir)
    print()
    print(summary(envs, args.rounds, args.quick))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rounds": args.rounds,
                    "quick": args.quick,
                    "envs": [
                        {"label": e.label, "python": e.python, "versions": e.versions, "runs": e.runs}
                        for e in envs
                    ],
                },
                indent=2,
            )
        )
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
