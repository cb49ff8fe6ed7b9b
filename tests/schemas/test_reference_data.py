"""The in-repository copies of the reference specs are intact and match the shared folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.support.specs import REFERENCE_DATA, SHARED_SPECS, specs_dir


def recorded_digests() -> dict[str, str]:
    lines = (REFERENCE_DATA / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_copies_are_the_files_recorded() -> None:
    recorded = recorded_digests()
    assert set(recorded) == {"oasst-reference-models.json", "backend-openapi.json", "inference-openapi.json"}
    assert {path.name for path in REFERENCE_DATA.glob("*.json")} == set(recorded)
    for name, expected in recorded.items():
        assert digest(REFERENCE_DATA / name) == expected, f"{name} differs from SHA256SUMS"


def test_the_tests_read_the_copies_unless_told_otherwise() -> None:
    expected = Path(os.environ["OASST_SPECS_DIR"]) if os.environ.get("OASST_SPECS_DIR") else REFERENCE_DATA
    assert specs_dir() == expected


def test_a_shared_specs_folder_beside_the_checkout_holds_the_same_files() -> None:
    """Where the project's shared specs lie beside this checkout (as in CI), the copies must be
    current; elsewhere the copies are all there is and the check is on SHA256SUMS alone."""
    others = [Path(os.environ["OASST_SPECS_DIR"])] if os.environ.get("OASST_SPECS_DIR") else []
    others += [SHARED_SPECS] if SHARED_SPECS.is_dir() else []
    stale = [
        f"{folder / name}"
        for folder in others
        for name, expected in recorded_digests().items()
        if (folder / name).is_file() and digest(folder / name) != expected
    ]
    assert not stale, f"tests/data/reference is out of date with {stale}: copy them and update SHA256SUMS"
