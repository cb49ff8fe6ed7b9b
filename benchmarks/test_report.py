"""The report's arithmetic and wiring, on synthetic medians (no timing), and the versions it names."""

from __future__ import annotations

import importlib.metadata
import io
import json
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from PIL import Image

from benchmarks import measure, report
from benchmarks.report import Row, Samples, bare_table, best_medians, bounds, goals, table, verdict

MEASURED = ("msgspec", "orjson", "pydantic")


def rows() -> list[Row]:
    return [
        Row("TokenResponse", "decode", "struct", 200e-9),
        Row("TokenResponse", "decode", "orjson", 400e-9),
        Row("TokenResponse", "decode", "view", 1000e-9),
        Row("TokenResponse", "relay", "struct", 500e-9),
        Row("TokenResponse", "relay", "struct-peek", 100e-9),
        Row("TokenResponse", "peek", "struct", 150e-9),
        Row("TokenResponse", "peek", "msgspec-skip-all", 100e-9),
        Row("TokenResponse", "peek", "msgspec-request-id-only", 125e-9),
        Row("TokenResponse", "peek", "orjson", 250e-9),
    ]


def test_table_ratios() -> None:
    text, records = table(rows())
    decode = next(r for r in records if r["op"] == "decode")
    assert decode["struct_over_orjson"] == 0.5
    assert decode["view_over_struct"] == 5.0
    assert "| TokenResponse | decode | 200 ns | 0.50x | 5.0x | 400 ns |" in text


def test_goals_met_and_missed() -> None:
    extra = {"import / msgspec": (Samples([1.6, 1.7, 1.65], "interpreters"), 1.5, "le")}
    text, records = goals([rows(), rows(), rows()], extra)
    by_goal = {r["goal"]: r for r in records}
    assert by_goal["token decode / orjson.loads"]["met"] == "yes"  # 0.5 <= 0.75
    assert by_goal["token decode: view / struct"]["met"] == "yes"  # 5.0 >= 3
    assert by_goal["relay: decode+encode / peek+forward"]["ratio"] == 5.0
    assert by_goal["WorkRequest decode / orjson.loads"]["met"] == "not measured"
    assert by_goal["import / msgspec"]["met"] == "no"
    assert by_goal["import / msgspec"]["samples"] == [1.6, 1.7, 1.65]
    assert "| import / msgspec | 1.65x | 1.60-1.70x over 3 interpreters | <= 1.5x | no |" in text
    assert "| token decode / orjson.loads | 0.50x | 0.50-0.50x over 3 processes | <= 0.75x | yes |" in text
    assert "| WorkRequest decode / orjson.loads | - | - | <= 0.8x | not measured |" in text


@pytest.mark.parametrize(
    ("samples", "sense", "expected"),
    [
        ([0.70, 0.72, 0.74], "le", "yes"),
        ([0.80, 0.90, 0.76], "le", "no"),
        ([1.08, 0.73, 0.70], "le", "within noise"),  # the two back-to-back quick runs of issue 26
        ([2.78, 4.20, 3.50], "ge", "within noise"),
        ([3.10, 4.20, 3.50], "ge", "yes"),
        ([0.70, 0.71], "le", "too few samples"),
        ([0.70, 0.80], "le", "within noise"),
        ([], "le", "not measured"),
    ],
)
def test_a_verdict_needs_every_sample_on_one_side(samples: list[float], sense: str, expected: str) -> None:
    assert verdict(samples, 0.75 if sense == "le" else 3.0, sense) == expected


def _decode_pass(struct_ns: float, orjson_ns: float, view_ns: float) -> list[Row]:
    return [
        Row("TokenResponse", "decode", "struct", struct_ns * 1e-9),
        Row("TokenResponse", "decode", "orjson", orjson_ns * 1e-9),
        Row("TokenResponse", "decode", "view", view_ns * 1e-9),
    ]


def test_a_goal_is_a_ratio_per_process_and_straddling_ones_are_within_noise() -> None:
    # Each process's ratio against its own baseline: 0.75, 0.5, 1.0 (the lowest medians of the
    # three would make 200 / 400 = 0.5, numerator and denominator from different processes).
    runs = [_decode_pass(300, 400, 1200), _decode_pass(200, 400, 800), _decode_pass(500, 500, 1100)]
    text, records = goals(runs, {})
    by_goal = {r["goal"]: r for r in records}
    decode = by_goal["token decode / orjson.loads"]
    assert decode["samples"] == [0.75, 0.5, 1.0]
    assert (decode["ratio"], decode["met"], decode["samples_over"]) == (0.75, "within noise", "processes")
    assert (
        "| token decode / orjson.loads | 0.75x | 0.50-1.00x over 3 processes | <= 0.75x | within noise |"
        in text
    )
    view = by_goal["token decode: view / struct"]  # 4.0, 4.0, 2.2: one process below 3.0
    assert (view["met"], round(view["ratio"], 2)) == ("within noise", 4.0)


def test_samples_spread_names_what_was_sampled() -> None:
    assert Samples([1.0, 1.25, 1.5], "repetitions").spread() == "1.00-1.50x over 3 repetitions"
    assert Samples([0.5], "processes").spread() == "0.50-0.50x over 1 process"
    assert Samples([0.5], "interpreters").spread() == "0.50-0.50x over 1 interpreter"


def test_best_medians_keeps_the_lowest_per_case() -> None:
    first = [Row("T", "decode", "struct", 600e-9), Row("T", "decode", "orjson", 400e-9)]
    second = [Row("T", "decode", "struct", 300e-9), Row("T", "decode", "orjson", 450e-9)]
    best = {(r.message, r.op, r.impl): r.median for r in best_medians([first, second])}
    assert best == {("T", "decode", "struct"): 300e-9, ("T", "decode", "orjson"): 400e-9}


def test_peek_goal_and_its_bounds() -> None:
    _, records = goals([rows(), rows(), rows()], {})
    peek = next(r for r in records if r["goal"] == "envelope peek / orjson.loads")
    assert (peek["ratio"], peek["met"]) == (0.6, "no")  # 150 / 250 > 0.35
    text, found = bounds(rows())
    by_label = {r["bound"].split(":")[0]: r for r in found}
    assert by_label["request_id-only decode / orjson.loads"]["ratio"] == 0.5
    assert by_label["decode+encode / request_id-only decode"]["ratio"] == 4.0  # 500 / 125
    assert by_label["skip-all decode / orjson.loads"]["ratio"] == 0.4
    assert by_label["msgspec / orjson.dumps on the WorkRequest's string values alone"]["ratio"] is None
    assert "| relay >= 3.5x |" in text


def test_bare_table_ratios() -> None:
    times = {
        "orjson.loads": 400e-9,
        "msgspec skip-all": 100e-9,
        "request_id only": 125e-9,
        "peek": 200e-9,
        "decode+encode": 500e-9,
    }
    text = bare_table(times)
    assert "| msgspec skip-all | 100 ns | 0.25x |" in text
    assert "| relay: decode+encode / peek | - | 2.50x (over request_id only: 4.00x) |" in text


def installed() -> dict[str, str]:
    """What the report must name, read here straight from the installed distributions."""
    found = {"Python": platform.python_version()}
    for name in ("msgspec", "orjson", "pydantic"):
        found[name] = importlib.metadata.version(name)
    return found


def test_versions_are_the_installed_ones() -> None:
    expected = installed()
    found = report.versions()
    assert found == {"python": expected["Python"], **{k: v for k, v in expected.items() if k != "Python"}}
    line = report.versions_line(found)
    assert line == ", ".join(f"{name} {version}" for name, version in expected.items())


def test_versions_line_names_a_missing_distribution() -> None:
    assert report.versions_line({"python": "3.11.7", "pydantic": None}) == "Python 3.11.7, pydantic absent"


def _fake_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's wiring with synthetic medians: no suite, no timing."""

    def fake_suite(quick: bool, out: Path, raw: IO[str]) -> list[Row]:
        raw.write("RAW PER-CASE TABLE\n")
        return rows()

    monkeypatch.setattr(report, "run_suite", fake_suite)
    monkeypatch.setattr(measure, "work_request_memory", lambda: {"struct": 300, "orjson": 500})
    imports = {
        "msgspec": 0.02,
        "oasst_shared.schemas.inference": 0.025,
        "oasst_shared.schemas.protocol": 0.05,
    }
    monkeypatch.setattr(measure, "import_seconds", lambda module, runs: imports[module])
    monkeypatch.setattr(
        measure,
        "bare_peek_times",
        lambda rounds: {
            "orjson.loads": 400e-9,
            "request_id only": 125e-9,
            "peek": 200e-9,
            "decode+encode": 500e-9,
        },
    )


def test_summary_json_and_chart_name_the_installed_versions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _fake_measurements(monkeypatch)
    raw, out_json, out_png = tmp_path / "raw" / "raw.txt", tmp_path / "r.json", tmp_path / "r.png"
    argv = ["--quick", "--no-stream", "--raw", str(raw), "--json", str(out_json), "--chart", str(out_png)]
    assert report.main(argv) == 0
    stdout, stderr = capsys.readouterr()
    expected = installed()
    versions_text = ", ".join(f"{name} {version}" for name, version in expected.items())

    # The terminal: the summary says it was the quick run and names machine and versions, the
    # raw tables stay in the file.
    assert stdout.lstrip().startswith("QUICK RUN (make bench): short timings, 3 processes of the suite.")
    assert "full report: python -m benchmarks.report" in stdout
    assert f"Versions: {versions_text}\n" in stdout
    assert f"Machine: {report.machine()}\n" in stdout
    assert "| token decode / orjson.loads | 0.50x | 0.50-0.50x over 3 processes | <= 0.75x | yes |" in stdout
    assert (
        "| import oasst_shared.schemas.inference / import msgspec | 1.25x | 1.25-1.25x over 5 interpreters "
        "| <= 1.5x | yes |"
    ) in stdout
    assert "| decoded WorkRequest memory / orjson dicts | 0.60x | 0.60-0.60x over 3 repetitions |" in stdout
    assert f"| yes |\n{report.GOALS_NOTE}\n" in stdout  # right under the goals table
    assert "Cold import (best of runs): msgspec 20.0 ms, oasst_shared.schemas.inference 25.0 ms" in stdout
    assert "RAW PER-CASE TABLE" not in stdout + stderr
    assert raw.read_text().endswith("RAW PER-CASE TABLE\n" * 3)  # three quick passes
    assert versions_text in raw.read_text()
    # A line per phase on stderr, with its time; none of them on stdout.
    for label in ("pass 1/3: codec cases", "pass 3/3: codec cases", "cold import times", "bare timeit loop"):
        assert re.search(rf"^{re.escape(label)}.* \.\.\. \d+\.\d s$", stderr, re.M), (label, stderr)
        assert f"{label} ..." not in stdout

    doc = json.loads(out_json.read_text())
    assert (doc["quick"], doc["passes"]) == (True, 3)
    assert {g["goal"]: g["met"] for g in doc["goals"]}["token decode / orjson.loads"] == "yes"
    assert doc["versions"] == {"python": expected["Python"], **{k: expected[k] for k in MEASURED}}
    assert doc["machine"] == report.machine()

    caption = Image.open(out_png).text["Description"]  # type: ignore[attr-defined]
    assert versions_text in caption
    assert report.machine() in caption


def test_chart_shows_the_caption() -> None:
    import matplotlib.pyplot as plt

    _, records = table(rows())
    caption = report.chart_caption(report.versions(), report.machine(), quick=True)
    fig = report.chart_figure(records, caption)
    try:
        shown = [t.get_text() for ax in fig.axes for t in ax.texts]
    finally:
        plt.close(fig)
    assert caption in shown
    assert all(f"{name} {version}" in caption for name, version in installed().items())


def _fake_suite_command(script: str) -> Callable[[bool, Path], list[str]]:
    return lambda quick, out: [sys.executable, "-c", script, str(out)]


def test_run_suite_sends_pytest_output_to_the_raw_file(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = {"extra_info": {"message": "T", "op": "decode", "impl": "struct"}, "stats": {"median": 2e-7}}
    warmup = {"extra_info": {"message": "-", "op": "-", "impl": "warmup"}, "stats": {"median": 1e-7}}
    script = (
        "import json, sys; print('PER-CASE TABLE'); print('to stderr', file=sys.stderr); "
        f"open(sys.argv[1], 'w').write(json.dumps({{'benchmarks': {[warmup, bench]!r}}}))"
    )
    monkeypatch.setattr(report, "suite_command", _fake_suite_command(script))
    raw = tmp_path / "raw.txt"
    with raw.open("w") as fh:
        found = report.run_suite(True, tmp_path / "b.json", fh)
    assert found == [Row("T", "decode", "struct", 2e-7)]
    stdout, stderr = capfd.readouterr()
    assert "PER-CASE TABLE" not in stdout + stderr
    assert "PER-CASE TABLE\nto stderr\n" in raw.read_text()


def test_a_failing_pass_names_the_raw_file(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = "import sys; print('E   AssertionError: case broke'); sys.exit(1)"
    monkeypatch.setattr(report, "suite_command", _fake_suite_command(script))
    raw = tmp_path / "raw.txt"
    with pytest.raises(SystemExit) as exc:
        report.main(["--quick", "--no-stream", "--raw", str(raw)])
    assert str(raw) in str(exc.value)
    assert "benchmark suite failed (exit 1)" in str(exc.value)
    _, stderr = capfd.readouterr()
    assert "pass 1/3: codec cases (pytest-benchmark) ... failed after" in stderr
    assert "E   AssertionError: case broke" in stderr  # the tail of the raw output is shown


def test_phase_reports_time_and_failure() -> None:
    out = io.StringIO()
    with report.phase("step one", out):
        pass
    assert re.fullmatch(r"step one \.\.\. \d+\.\d s\n", out.getvalue())
    out = io.StringIO()
    with pytest.raises(ValueError), report.phase("step two", out):
        raise ValueError("boom")
    assert re.fullmatch(r"step two \.\.\. failed after \d+\.\d s\n", out.getvalue())


def test_a_full_run_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _fake_measurements(monkeypatch)
    assert report.main(["--no-stream", "--raw", str(tmp_path / "raw.txt"), "--repeat", "2"]) == 0
    stdout, _ = capsys.readouterr()
    assert stdout.lstrip().startswith("FULL RUN: long timings, 2 processes of the suite.")
    assert "QUICK" not in stdout
    # two processes are too few for a verdict, however well they agree
    assert (
        "| token decode / orjson.loads | 0.50x | 0.50-0.50x over 2 processes | <= 0.75x | too few samples |"
        in stdout
    )
