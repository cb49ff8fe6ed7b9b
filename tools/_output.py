"""What the generators share: ruff formats their output, and one ``--check`` / write entry point.

A generator renders plain source text (imports in any order, long lines unwrapped) and hands it
to :func:`ruff_format`, which runs the ruff of the running interpreter's environment with the
project's settings, so the committed files pass ``ruff check`` and ``ruff format --check`` as
they are. :func:`run` is each generator's ``main``: it writes the stale files, or with
``--check`` only names them and the command that regenerates them (exit status 1).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["REPO_ROOT", "GenerateError", "ruff_format", "run"]

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout: where ``pyproject.toml`` (ruff's settings) is."""

# Import sorting (I) and the isort-style order of `__all__` (RUF022) are fixes; the rest is `ruff format`.
_RUFF_STEPS: tuple[tuple[str, ...], ...] = (
    ("check", "--select", "I,RUF022", "--fix-only", "--exit-zero", "--no-cache"),
    ("format", "--no-cache"),
)


class GenerateError(Exception):
    """The input has something a generator cannot mirror faithfully, or ruff failed on its output."""


def ruff_format(source: str, path: str) -> str:
    """``source`` with its imports sorted and formatted as ruff does a file at ``path``.

    ``path`` is relative to the checkout and only selects the settings (per-file rules,
    first-party packages): nothing is read or written there.
    """
    for step in _RUFF_STEPS:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *step, "--stdin-filename", path, "-"],
            input=source,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise GenerateError(f"ruff {step[0]} failed on the generated {path}: {done.stderr.strip()}")
        source = done.stdout
    return source


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def run(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    generate: Callable[[], Mapping[Path, str]],
    fix: str,
    err: TextIO | None = None,
) -> int:
    """Parse ``[--check]``, then write every stale file of ``generate()`` or only report it.

    ``fix`` is the command to give in the report (``make compat``). Returns the exit status:
    1 when ``--check`` finds a stale or missing file, else 0.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit with status 1 naming each file that differs from what would be generated",
    )
    args = parser.parse_args(argv)
    out = sys.stderr if err is None else err
    stale = 0
    for path, source in generate().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == source:
            continue
        stale += 1
        if args.check:
            what = "missing" if current is None else "stale"
            out.write(f"{what}: {_shown(path)} is not what `{prog}` generates; run `{fix}`\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
            out.write(f"regenerated: {_shown(path)}\n")
    return 1 if args.check and stale else 0
