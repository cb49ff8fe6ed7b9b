"""``make pytest`` (run by ``make test``): pytest-benchmark's tables go to a file, and pytest's
pass line ends the output instead of preceding some 190 lines of tables."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(120)


def test_benchmark_tables_go_to_a_file_and_the_pass_line_ends_the_output(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is needed for `make test`")
    tables = tmp_path / "tables"
    done = subprocess.run(
        [
            make,
            "--no-print-directory",
            "pytest",
            f"VENV={sys.prefix}",
            f"TEST_BENCH={tables}",
            "PYTEST_FLAGS=-q -p no:cacheprovider benchmarks/test_bench_codec.py -k TokenResponse-decode",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"\d+ passed, \d+ deselected in [\d.]+s", lines[-1]), lines[-5:]
    assert not [line for line in lines if "benchmark '" in line or "Name (time in" in line]
    assert f"pytest-benchmark's tables of this run go to {tables}.txt" in lines
    text = Path(f"{tables}.txt").read_text()
    assert "benchmark 'TokenResponse decode'" in text
    assert re.search(r"test_codec\[TokenResponse-decode-struct\]( \(\w+\))? +[\d,.]+ \(", text), text[:500]
