"""Access to the reference specs in ``../shared/specs`` (or ``$OASST_SPECS_DIR``).

The specs are never copied into the repository. Tests that need them use the ``ref_models``
/ ``backend_openapi`` fixtures, which skip with a reason only when the folder is absent.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def specs_dir() -> Path:
    env = os.environ.get("OASST_SPECS_DIR")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "specs"


SPECS_MISSING_REASON = (
    f"reference specs folder not found at {specs_dir()} "
    "(set OASST_SPECS_DIR to the folder holding oasst-reference-models.json)"
)


def specs_available() -> bool:
    return (specs_dir() / "oasst-reference-models.json").is_file()


@cache
def load_spec(name: str) -> Any:
    with open(specs_dir() / name, encoding="utf-8") as f:
        return json.load(f)
