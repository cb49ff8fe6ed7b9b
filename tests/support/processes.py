"""Running a snippet in a fresh interpreter: what a consumer's process imports and sees, away
from everything the test session has already loaded."""

from __future__ import annotations

import subprocess
import sys

from tests.support.specs import REPO_ROOT

__all__ = ["run_python"]


def run_python(code: str, *, hidden: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``code`` run by this interpreter in a new process from the repository root (60 s at
    most), with the modules named in ``hidden`` made unimportable (as if not installed)."""
    hide = f"import sys\nfor name in {list(hidden)!r}:\n    sys.modules[name] = None\n" if hidden else ""
    command = [sys.executable, "-c", hide + code]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60)
