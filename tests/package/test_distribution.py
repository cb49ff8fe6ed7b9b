"""The distributions: the sdist holds only what builds and documents the package, the wheel built
from it carries the license, and the long description reads right on a package index.

The sdist is built from this checkout and the wheel from that sdist (as pip does), with uv
(``.uv/bin/uv``, which ``make install`` puts there) and the build backend of pyproject.toml.
"""

from __future__ import annotations

import email
import email.message
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(120)

SDIST_FILES = {"PKG-INFO", "pyproject.toml", "PYPI.md", "LICENSE", "CHANGELOG.md", ".gitignore"}
"""The files at the top of the sdist (hatchling always adds .gitignore: it reads it to leave out
what git ignores)."""

SDIST_FOLDERS = ("oasst_shared/", "compat/oasst_compat/")
"""The folders of the sdist: the two import packages."""


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


def _uv() -> str:
    local = REPO_ROOT / ".uv" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the distributions: run `make install`")
    return found


def _build(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        [_uv(), "build", "--python", sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    _build(["--sdist", "-o", str(out), str(REPO_ROOT)], REPO_ROOT)
    (sdist,) = out.glob("*.tar.gz")
    _build(["--wheel", "-o", str(out), str(sdist)], out)
    (wheel,) = out.glob("*.whl")
    return Built(sdist, wheel)


def _sdist_names(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as tar:
        names = [member.name for member in tar.getmembers() if member.isfile()]
    top = {name.split("/", 1)[0] for name in names}
    assert len(top) == 1, top
    return [name.split("/", 1)[1] for name in names]


def _sdist_file(sdist: Path, name: str) -> bytes:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.split("/", 1)[-1] == name)
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def test_the_sdist_holds_the_packages_and_their_documents_only(built: Built) -> None:
    names = _sdist_names(built.sdist)
    strays = [n for n in names if n not in SDIST_FILES and not n.startswith(SDIST_FOLDERS)]
    assert not strays, strays
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    assert set(SDIST_FILES) <= set(names)
    # every module of the two packages is there
    for package in ("oasst_shared", "compat/oasst_compat"):
        tracked = {
            str(path.relative_to(REPO_ROOT))
            for path in (REPO_ROOT / package).rglob("*.py")
            if "__pycache__" not in path.parts
        }
        assert tracked <= set(names), sorted(tracked - set(names))[:5]


def test_the_license_is_in_both_distributions(built: Built) -> None:
    license_text = (REPO_ROOT / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0, January 2004" in license_text
    assert b"END OF TERMS AND CONDITIONS" in license_text
    assert _sdist_file(built.sdist, "LICENSE") == license_text
    with zipfile.ZipFile(built.wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(name) == license_text
    metadata = _metadata(built.wheel)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_the_wheel_claims_only_the_pythons_a_test_runs_on(built: Built) -> None:
    assert _metadata(built.wheel)["Requires-Python"] == ">=3.11"


_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)""", re.I)


def link_targets(markdown: str) -> list[str]:
    """The targets of the Markdown and HTML links and images of a page, outside code blocks."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return [
        target
        for pattern in (_MARKDOWN_LINK, _REFERENCE_LINK, _HTML_LINK)
        for target in pattern.findall(prose)
    ]


def test_link_targets_are_found() -> None:
    page = "a [doc](docs/x.md) b ![img](<p.png>)\n[ref]: ../y\n<a href='z.html'>z</a>\n```\n[no](code)\n```"
    assert link_targets(page) == ["docs/x.md", "p.png", "../y", "z.html"]


def test_the_long_description_reads_right_on_a_package_index(built: Built) -> None:
    metadata = _metadata(built.wheel)
    assert metadata["Description-Content-Type"] == "text/markdown"
    page = metadata.get_payload()
    assert isinstance(page, str) and page.startswith("# oasst-shared")
    relative = [t for t in link_targets(page) if not re.match(r"https://", t)]
    assert not relative, f"links that lead nowhere on a package index: {relative}"
    for phrase in ("repository root", "from a clone", "make "):
        assert phrase not in page, phrase


def test_the_long_descriptions_python_examples_run() -> None:
    page = (REPO_ROOT / "PYPI.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "PYPI.md", "exec"), {"__name__": "pypi_md"})
