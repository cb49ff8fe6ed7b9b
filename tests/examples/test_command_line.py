"""Every runnable example as a new user runs it: ``--help``, a bad argument, an unreachable Redis,
a Python without the project's dependencies. Each answers in a line or a usage text, never a
traceback, and the docs say to run the examples with the venv's Python."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_python
from tests.support.specs import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def runnable_examples() -> list[Path]:
    """The scripts of examples/ (a ``_``-prefixed module is a helper, not a script)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


RUNNABLE = runnable_examples()
RELAY_SERVER = EXAMPLES / "relay_server.py"


def run_example(path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_examples_are_found() -> None:
    assert RELAY_SERVER in RUNNABLE


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_every_example_has_help(path: Path) -> None:
    proc = run_example(path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"usage: {path.name}")
    assert "-h, --help" in proc.stdout
    assert ".venv/bin/python" in proc.stdout  # how to run it


def test_the_relay_server_help_names_its_arguments() -> None:
    usage = run_example(RELAY_SERVER, "--help").stdout
    assert re.search(r"usage: relay_server\.py \[-h\] .*\[REDIS_URL\]", usage)
    for word in ("REDIS_URL", "--chats", "--tokens", "OASST_REDIS_URL", "make redis"):
        assert word in usage


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--help-me"], "unrecognized arguments: --help-me"),
        (["http://127.0.0.1:6379/0"], "argument REDIS_URL: 'http://127.0.0.1:6379/0' is not a Redis URL"),
        (["--chats", "0"], "argument --chats: '0' is not a whole number >= 1"),
        (["--tokens", "many"], "argument --tokens: 'many' is not a whole number >= 1"),
        (["redis://a/0", "redis://b/0"], "unrecognized arguments: redis://b/0"),
    ],
)
def test_a_bad_argument_is_a_usage_error_not_a_traceback(args: list[str], error: str) -> None:
    proc = run_example(RELAY_SERVER, *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage: relay_server.py")
    assert lines[1].startswith(f"relay_server.py: error: {error}")


def test_a_bad_redis_url_in_the_environment_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OASST_REDIS_URL", "localhost:6379")
    proc = run_example(RELAY_SERVER)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "relay_server.py: error: OASST_REDIS_URL: 'localhost:6379' is not a Redis URL "
        "(redis://, rediss:// or unix://)"
    )


def test_an_unreachable_redis_is_one_line_naming_make_redis() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_example(RELAY_SERVER, f"redis://127.0.0.1:{port}/0")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("relay_server.py: cannot connect to Redis")
    assert f"127.0.0.1:{port}" in line and "make redis" in line


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_a_missing_dependency_says_to_use_the_venv(path: Path) -> None:
    """Run with a Python where msgspec is not installed (hidden here), as a plain ``python`` is."""
    code = (
        f"import runpy, sys\nsys.argv = [{str(path)!r}]\nrunpy.run_path({str(path)!r}, run_name='__main__')\n"
    )
    proc = run_python(code, hidden=("msgspec",))
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"{path.name}: ") and "msgspec" in line
    assert "make install" in line and f".venv/bin/python examples/{path.name}" in line


def test_the_docs_say_to_run_examples_with_the_venvs_python() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/python examples/relay_server.py" in readme
    guide = (REPO_ROOT / "docs" / "guides" / "server.md").read_text(encoding="utf-8")
    section = guide.split("## The two handlers: `examples/relay_server.py`", 1)[1].split("\n## ", 1)[0]
    commands = [
        line for line in section.splitlines() if "examples/relay_server.py" in line and "python" in line
    ]
    assert commands and all(line.startswith(".venv/bin/python examples/relay_server.py") for line in commands)
    assert "make redis" in section
