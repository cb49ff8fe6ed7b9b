"""Access to the reference specs: the copies in ``tests/data/reference`` (or ``$OASST_SPECS_DIR``).

``tests/data/reference/README.md`` says where the copies come from. Tests read them through
``load_spec`` or the ``ref_models`` / ``backend_openapi`` fixtures; a folder named by
``OASST_SPECS_DIR`` that lacks a file is an error, never a skip.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DATA = REPO_ROOT / "tests" / "data" / "reference"
"""The in-repository copies of the reference specs."""
SHARED_SPECS = REPO_ROOT.parent / "shared" / "specs"
"""Where the project's shared specs folder lies beside a checkout, when it does."""


def specs_dir() -> Path:
    env = os.environ.get("OASST_SPECS_DIR")
    return Path(env) if env else REFERENCE_DATA


@cache
def load_spec(name: str) -> Any:
    path = specs_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"reference spec {name} not found in {path.parent} (see OASST_SPECS_DIR)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
