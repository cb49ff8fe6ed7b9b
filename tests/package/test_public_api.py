"""The public API guard: the code's public API is the committed snapshot ``api/public-api.txt``
(``python -m tools.api_snapshot --check``), and the snapshot tool sees what it must see.

A failure of :func:`test_public_api_matches_the_snapshot` shows the first differing lines and
says how to refresh the snapshot on purpose (``make api``, then a ``CHANGELOG.md`` entry for
removals and signature changes).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import api_snapshot
from tools._output import REPO_ROOT, GenerateError


def _run_check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.api_snapshot", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_public_api_matches_the_snapshot() -> None:
    done = _run_check()
    assert done.returncode == 0, "\n" + done.stderr
    assert done.stderr == ""


def test_snapshot_is_the_same_under_any_hash_seed() -> None:
    """Sets and dicts iterate in another order under another seed: the output must not."""
    texts = set()
    for seed in ("0", "1", "12345"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tools import api_snapshot; sys.stdout.write(api_snapshot.generate())",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        texts.add(done.stdout)
    assert len(texts) == 1
    assert texts == {api_snapshot.SNAPSHOT.read_text(encoding="utf-8")}


def test_snapshot_covers_every_public_module_and_no_private_path() -> None:
    lines = api_snapshot.SNAPSHOT.read_text(encoding="utf-8").splitlines()
    modules = {line.partition(": ")[0] for line in lines if line.endswith(": module")}
    expected = {
        "oasst_shared",
        "oasst_shared.api_client",
        "oasst_shared.cli",
        "oasst_shared.codec",
        "oasst_shared.codec.sse",
        "oasst_shared.exceptions",
        "oasst_shared.hardware",
        "oasst_shared.model_configs",
        "oasst_shared.relay",
        "oasst_shared.schemas",
        "oasst_shared.schemas.base",
        "oasst_shared.schemas.inference",
        "oasst_shared.schemas.protocol",
        "oasst_shared.utils",
        "oasst_compat",
        "oasst_compat.model_configs",
        "oasst_compat.schemas.inference",
        "oasst_compat.schemas.protocol",
        "oasst_compat.utils",
    }
    assert expected <= modules, sorted(expected - modules)
    paths = [line.partition(": ")[0] for line in lines if not line.startswith("#")]
    private = [
        p for p in paths if any(part.startswith("_") and not part.endswith("__") for part in p.split("."))
    ]
    assert private == []
    # A few names whose kind and shape the snapshot must carry.
    assert "oasst_shared.codec.sse.sse_frame_raw: function (" in "\n".join(lines)
    assert "oasst_shared.schemas.inference.TokenResponse.text: field str" in lines
    assert "oasst_shared.cli.main: function (argv: Sequence[str] | None = None) -> int" in lines


# ------------------------------------------------------------------ the guard can fail


@pytest.fixture
def snapshot_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tool pointed at a copy of the committed snapshot, which a test may then alter."""
    copy = tmp_path / "api" / "public-api.txt"
    copy.parent.mkdir()
    copy.write_text(api_snapshot.SNAPSHOT.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(api_snapshot, "SNAPSHOT", copy)
    return copy


def test_check_shows_a_removed_name_and_a_changed_signature(snapshot_copy: Path) -> None:
    committed = snapshot_copy.read_text(encoding="utf-8")
    lines = committed.splitlines(keepends=True)
    main_line = next(i for i, line in enumerate(lines) if line.startswith("oasst_shared.cli.main: "))
    # As if the code had changed a signature and lost a name (the snapshot still has the old ones).
    lines[main_line] = (
        "oasst_shared.cli.main: function (argv: Sequence[str] | None = None, *, quiet: bool = False) -> int\n"
    )
    lines.insert(main_line + 1, "oasst_shared.cli.removed_helper: function (x: int) -> int\n")
    snapshot_copy.write_text("".join(lines), encoding="utf-8")

    err = io.StringIO()
    assert api_snapshot.main(["--check"], err=err) == 1
    report = err.getvalue().splitlines()
    assert report[0].startswith("stale: the public API differs from ")
    assert "run `make api`" in report[1] and "CHANGELOG.md" in report[1]
    assert report[2:] == [
        "-oasst_shared.cli.main: function (argv: Sequence[str] | None = None, *, quiet: bool = False) -> int",
        "-oasst_shared.cli.removed_helper: function (x: int) -> int",
        "+oasst_shared.cli.main: function (argv: Sequence[str] | None = None) -> int",
    ]
    assert snapshot_copy.read_text(encoding="utf-8") == "".join(lines), "--check must not write"

    # `make api` (no --check) refreshes the snapshot; the check passes again.
    assert api_snapshot.main([], err=io.StringIO()) == 0
    assert snapshot_copy.read_text(encoding="utf-8") == committed
    assert api_snapshot.main(["--check"], err=io.StringIO()) == 0


def test_check_names_a_missing_snapshot(snapshot_copy: Path) -> None:
    snapshot_copy.unlink()
    err = io.StringIO()
    assert api_snapshot.main(["--check"], err=err) == 1
    assert err.getvalue() == f"missing: {snapshot_copy}; run `make api`\n"
    assert not snapshot_copy.exists()


def test_diff_shows_the_first_lines_and_counts_the_rest() -> None:
    committed = "".join(f"a.name{i}: function () -> None\n" for i in range(100))
    current = "".join(f"a.name{i}: function () -> int\n" for i in range(100))
    shown = api_snapshot.snapshot_diff(committed, current, limit=10)
    assert shown[:2] == ["-a.name0: function () -> None", "-a.name1: function () -> None"]
    assert len(shown) == 11
    assert shown[-1] == "... and 190 more differing lines"
    assert api_snapshot.snapshot_diff(committed, committed) == []


def test_check_fails_in_a_subprocess_with_the_diff(tmp_path: Path) -> None:
    """The command itself (what the test and `make test` run) exits 1 with the diff on stderr."""
    changed = api_snapshot.SNAPSHOT.read_text(encoding="utf-8").replace(
        "oasst_shared.cli.main: function (argv: Sequence[str] | None = None) -> int",
        "oasst_shared.cli.main: function (argv: Sequence[str]) -> int",
    )
    script = (
        "import sys, pathlib\n"
        "from tools import api_snapshot\n"
        f"api_snapshot.SNAPSHOT = pathlib.Path({str(tmp_path / 'snapshot.txt')!r})\n"
        "sys.exit(api_snapshot.main(['--check']))\n"
    )
    (tmp_path / "snapshot.txt").write_text(changed, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "-oasst_shared.cli.main: function (argv: Sequence[str]) -> int" in done.stderr
    assert "+oasst_shared.cli.main: function (argv: Sequence[str] | None = None) -> int" in done.stderr


# ------------------------------------------------------------------ what the tool describes


def _describe(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, source in files.items():
        path = tmp_path / "demo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return api_snapshot.describe(api_snapshot.load(tmp_path, (("demo", "."),)))


DEMO = {
    "__init__.py": '''
        """A demo package."""
        from demo._impl import Base, Point, helper

        __all__ = ["Base", "Point", "helper", "CONSTANT"]

        CONSTANT: int = 3
        not_exported = 1
    ''',
    "_impl.py": '''
        import msgspec

        class _Hidden:
            def inherited(self, x: int) -> int:
                """Documented."""
                return x

        class Base(_Hidden):
            def __init__(self, a, /, b: int = 1, *args: str, c: bool, **kw: object) -> None:
                self.a = a
                self.b: int = b

            @property
            def size(self) -> int:
                return 1

            @classmethod
            def make(cls) -> "Base":
                return cls(1, c=True)

            async def run(self, *, timeout: float | None = None) -> None:
                pass

            def _private(self) -> None:
                pass

        class Point(msgspec.Struct, tag="point", kw_only=True):
            x: int
            y: int = 0
            tags: list[str] = msgspec.field(default_factory=list)

        def helper(p: Point, *, scale: float = 1.0) -> Point:
            return p
    ''',
    "tools.py": '''
        """No __all__: the names it defines, not what it imports."""
        from demo._impl import helper
        import os

        def public() -> None: ...
        def _private() -> None: ...
    ''',
    "_private_module.py": "def f() -> None: ...\n",
}


def test_describes_kinds_signatures_and_fields(tmp_path: Path) -> None:
    assert _describe(tmp_path, DEMO) == [
        "demo: module",
        "demo.Base: class(_Hidden)",
        "demo.Base.__init__: method (self, a, /, b: int = 1, *args: str, c: bool, **kw: object) -> None",
        "demo.Base.a: attribute",
        "demo.Base.b: attribute int",
        "demo.Base.inherited: method (self, x: int) -> int",  # from a private base: listed here
        "demo.Base.make: classmethod (cls) -> Base",
        "demo.Base.run: async method (self, *, timeout: float | None = None) -> None",
        "demo.Base.size: property int",
        "demo.CONSTANT: attribute int = 3",
        "demo.Point: class(msgspec.Struct, kw_only=True, tag='point')",
        "demo.Point.tags: field list[str] = msgspec.field(default_factory=list)",
        "demo.Point.x: field int",
        "demo.Point.y: field int = 0",
        "demo.helper: function (p: Point, *, scale: float = 1.0) -> Point",
        "demo.tools: module",
        "demo.tools.public: function () -> None",
    ]


def test_docstrings_do_not_change_the_snapshot(tmp_path: Path) -> None:
    before = _describe(tmp_path / "a", DEMO)
    documented = dict(DEMO)
    documented["_impl.py"] = DEMO["_impl.py"].replace('"""Documented."""', '"""Reworded, at length."""')
    documented["tools.py"] = DEMO["tools.py"].replace(
        "def public() -> None: ...", 'def public() -> None:\n            """New."""'
    )
    assert _describe(tmp_path / "b", documented) == before


def test_a_re_exported_name_is_described_once(tmp_path: Path) -> None:
    files = {
        "__init__.py": '__all__ = ["Thing"]\nfrom demo.things import Thing\n',
        "things.py": '__all__ = ["Thing"]\nclass Thing:\n    def go(self) -> None: ...\n',
    }
    assert _describe(tmp_path, files) == [
        "demo: module",
        "demo.Thing: alias of demo.things.Thing",
        "demo.things: module",
        "demo.things.Thing: class",
        "demo.things.Thing.go: method (self) -> None",
    ]


def test_an_all_naming_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GenerateError, match=r"demo.__all__ names 'gone'"):
        _describe(tmp_path, {"__init__.py": '__all__ = ["gone"]\n'})


def test_reads_the_checkout_given_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshotting another checkout (an older commit, for CHANGELOG.md) from this one reads
    that checkout's packages, not the same-named folders of the working directory."""
    here = tmp_path / "here"
    (here / "demo").mkdir(parents=True)
    (here / "demo" / "__init__.py").write_text("def current() -> None: ...\n", encoding="utf-8")
    monkeypatch.chdir(here)
    lines = _describe(tmp_path / "old", {"__init__.py": "def old() -> None: ...\n"})
    assert lines == ["demo: module", "demo.old: function () -> None"]


def test_a_module_griffe_cannot_read_is_an_error_not_a_removal(tmp_path: Path) -> None:
    with pytest.raises(GenerateError, match=r"could not read .*demo/sub\.py"):
        _describe(tmp_path, {"__init__.py": "def a() -> None: ...\n", "sub.py": "def broken(:\n"})
