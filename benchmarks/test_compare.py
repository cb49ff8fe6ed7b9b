"""benchmarks.compare: the alternation of processes and the spread tables (no timing: the
"interpreters" here are small scripts that write a report's JSON with given ratios)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from benchmarks import compare
from benchmarks.compare import Env, Spread, comparison_table


def _goal(label: str, ratio: float | None, target: float = 0.75, sense: str = "le") -> dict[str, object]:
    return {"goal": label, "ratio": ratio, "target": target, "sense": sense, "met": "-"}


def _env(label: str, decode: list[float], stream: list[float]) -> Env:
    env = Env(label, f"/envs/{label}/bin/python")
    env.targets = {"decode": (0.75, "le"), "stream": (1.0, "ge")}
    env.runs = [
        {"goals": {"decode": d, "stream": s}, "bounds": {"floor": d / 2}}
        for d, s in zip(decode, stream, strict=True)
    ]
    return env


def test_spread_is_min_median_max() -> None:
    assert Spread.of([0.75, 0.5, 1.0, 0.25]) == Spread(0.25, 0.625, 1.0, 4)
    assert Spread.of([]) is None
    assert Spread(0.5, 0.65, 0.9, 4).shown() == "0.50 / 0.65 / 0.90"


def test_goal_table_counts_rounds_and_tells_overlap_from_apart() -> None:
    a = _env("A", decode=[0.60, 0.70, 0.66, 0.62], stream=[1.2, 1.3, 1.1, 1.24])
    b = _env("B", decode=[0.67, 0.61, 0.72, 0.57], stream=[1.5, 1.6, 1.4, 1.46])
    text = comparison_table([a, b], "goals")
    lines = text.splitlines()
    assert lines[0] == (
        "| goal | target | A min / median / max | B min / median / max | rounds won, A / B | spreads |"
    )
    # decode, lower is better: A wins rounds 1 and 3, B rounds 2 and 4; the spreads overlap.
    assert "| decode | <= 0.75x | 0.60 / 0.64 / 0.70 | 0.57 / 0.64 / 0.72 | 2 / 2 of 4 | overlap |" in lines
    # stream, higher is better: B above A in every round, and its whole spread above A's.
    assert (
        "| stream | >= 1.0x | 1.10 / 1.22 / 1.30 | 1.40 / 1.48 / 1.60 | 0 / 4 of 4 | apart: B better |"
        in lines
    )


def test_apart_on_a_lower_is_better_goal_names_the_lower_one() -> None:
    a = _env("A", decode=[0.5, 0.52, 0.51], stream=[1.0, 1.0, 1.0])
    b = _env("B", decode=[0.6, 0.62, 0.61], stream=[1.0, 1.0, 1.0])
    text = comparison_table([a, b], "goals")
    assert "| 3 / 0 of 3 | apart: A better |" in text
    assert "| stream | >= 1.0x | 1.00 / 1.00 / 1.00 | 1.00 / 1.00 / 1.00 | 0 / 0 of 3 | overlap |" in text


def test_no_verdict_from_fewer_than_three_rounds() -> None:
    a = _env("A", decode=[0.5, 0.52], stream=[1.0, 1.0])
    b = _env("B", decode=[0.6, 0.62], stream=[1.0, 1.0])
    assert "| 2 / 0 of 2 | too few rounds (< 3) |" in comparison_table([a, b], "goals")


def test_bounds_table_has_spreads_only() -> None:
    a = _env("A", decode=[0.6, 1.0], stream=[1.0, 1.0])
    b = _env("B", decode=[0.4, 0.4], stream=[1.0, 1.0])
    text = comparison_table([a, b], "bounds")
    assert text.splitlines()[0] == "| bound | A min / median / max | B min / median / max |"
    assert "| floor | 0.30 / 0.40 / 0.50 | 0.20 / 0.20 / 0.20 |" in text


def _fake_python(path: Path, order_log: Path, name: str, msgspec_version: str, ratios: list[float]) -> str:
    """An executable that answers ``-m benchmarks.report ... --json FILE`` like the report does,
    with the next ratio of ``ratios`` per call, and logs each call to ``order_log``."""
    script = f"""#!{sys.executable}
import json, sys
from pathlib import Path
args = sys.argv[1:]
assert args[:2] == ["-m", "benchmarks.report"], args
assert "--quick" in args and "--no-stream" in args, args
log = Path({str(order_log)!r})
calls = log.read_text().splitlines() if log.exists() else []
mine = sum(1 for c in calls if c == {name!r})
log.write_text("".join(c + "\\n" for c in calls + [{name!r}]))
ratio = {ratios!r}[mine]
print("summary on stdout"); print("progress on stderr", file=sys.stderr)
doc = {{
    "machine": "test CPU",
    "versions": {{
        "python": "3.11.7", "msgspec": {msgspec_version!r}, "orjson": "3.13.0", "pydantic": "2.14.4"
    }},
    "goals": [{{"goal": "token decode / orjson.loads", "ratio": ratio, "target": 0.75, "sense": "le"}}],
    "bounds": [{{"bound": "skip-all", "ratio": ratio / 2, "goal": "peek"}}],
}}
Path(args[args.index("--json") + 1]).write_text(json.dumps(doc))
"""
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_main_alternates_processes_and_prints_the_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = tmp_path / "order.txt"
    py_a = _fake_python(tmp_path / "a", order, "A", "0.22.0", [0.70, 0.60, 0.66])
    py_b = _fake_python(tmp_path / "b", order, "B", "0.23.0", [0.66, 0.64, 0.50])
    out_json = tmp_path / "cmp.json"
    argv = [
        "--python",
        py_a,
        "--python",
        py_b,
        "--rounds",
        "3",
        "--quick",
        "--no-stream",
        "--json",
        str(out_json),
    ]
    assert compare.main(argv) == 0
    assert order.read_text().split() == ["A", "B", "A", "B", "A", "B"]
    stdout, stderr = capsys.readouterr()
    assert f"- A: {py_a} (Python 3.11.7, msgspec 0.22.0, orjson 3.13.0, pydantic 2.14.4)" in stdout
    assert f"- B: {py_b} (Python 3.11.7, msgspec 0.23.0, orjson 3.13.0, pydantic 2.14.4)" in stdout
    assert (
        "| token decode / orjson.loads | <= 0.75x | 0.60 / 0.66 / 0.70 | 0.50 / 0.64 / 0.66 "
        "| 1 / 2 of 3 | overlap |"
    ) in stdout
    assert "| skip-all | 0.30 / 0.33 / 0.35 | 0.25 / 0.32 / 0.33 |" in stdout
    assert "summary on stdout" not in stdout  # each report's own output stays in its log
    assert stderr.count("round ") == 6
    doc = json.loads(out_json.read_text())
    assert [e["versions"]["msgspec"] for e in doc["envs"]] == ["0.22.0", "0.23.0"]
    assert [r["goals"]["token decode / orjson.loads"] for r in doc["envs"][1]["runs"]] == [0.66, 0.64, 0.50]


def test_a_failing_process_stops_the_comparison_and_names_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.write_text(f"#!{sys.executable}\nimport sys\nprint('ImportError: no msgspec here')\nsys.exit(3)\n")
    bad.chmod(bad.stat().st_mode | stat.S_IXUSR)
    good = _fake_python(tmp_path / "good", tmp_path / "order.txt", "A", "0.22.0", [0.7])
    keep = tmp_path / "kept"
    with pytest.raises(SystemExit) as exc:
        compare.main(
            [
                "--python",
                good,
                "--python",
                str(bad),
                "--rounds",
                "1",
                "--quick",
                "--no-stream",
                "--keep",
                str(keep),
            ]
        )
    assert str(keep / "round1-B.log") in str(exc.value)
    _, stderr = capsys.readouterr()
    assert "failed (exit 3)" in stderr
    assert "ImportError: no msgspec here" in stderr
    assert os.path.exists(keep / "round1-A.json")


def test_needs_two_environments() -> None:
    with pytest.raises(SystemExit):
        compare.main(["--python", sys.executable])
