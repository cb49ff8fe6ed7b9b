"""Every ```python block of the docs runs as written.

The blocks of ``README.md`` and of every Markdown file under ``docs/`` (``docs/**/*.md``, but not
``docs/reference/``, whose pages hold only mkdocstrings ``:::`` directives) are extracted and
each one is executed on its own: a fresh namespace (``__name__ == "__main__"``, as a script),
the repository root as the working directory (so ``Path("examples/frames/...")`` finds the
sample documents), and warnings turned into errors (the README promises, e.g., v1-style methods
without warnings). Tracebacks point at the Markdown file's own lines.

Services: a block that reads ``OASST_BACKEND_URL`` talks to the backend; it runs against prism
serving the backend's OpenAPI document (``tests/support/backend_mock.py``), with ``OASST_BACKEND_URL`` and
``OASST_API_KEY`` set for it. A block that reads ``OASST_REDIS_URL`` runs against a real
``redis-server`` started for the module (``tests/support/redis_server.py``). Async examples run
themselves (``asyncio.run(main())`` at the end of the block, as a user's script would), so the
test adds no event loop of its own.

A block that cannot run here must say so just above it with ``<!-- not-run: reason -->``; such
blocks are only compiled, and there may be at most ``MAX_NOT_RUN`` of them. Other languages
(```sh, ...) are not run.
"""

from __future__ import annotations

import re
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.backend_mock import MockServer
from tests.support.redis_server import running_redis
from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(180)

MAX_NOT_RUN = 0
"""How many blocks may be marked ``<!-- not-run: ... -->``: none today, every block runs."""

PYTHON_INFO = frozenset({"python", "py", "python3"})
BACKEND_ENV = "OASST_BACKEND_URL"
REDIS_ENV = "OASST_REDIS_URL"
MOCK_API_KEY = "readme-test-key"

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: str
    """The file, relative to the repository root (``README.md``, ``docs/x.md``)."""
    line: int
    """1-based line of the opening fence."""
    info: str
    code: str
    not_run: str | None = None
    """The reason given by a ``<!-- not-run: reason -->`` line just above the block."""

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.info.lower() in PYTHON_INFO

    @property
    def needs_backend(self) -> bool:
        return BACKEND_ENV in self.code

    @property
    def needs_redis(self) -> bool:
        return REDIS_ENV in self.code


def code_blocks(text: str, path: str) -> list[Block]:
    """The fenced code blocks of a Markdown document, with the ``not-run`` mark of each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            body.append(lines[i])
            i += 1
        else:
            raise ValueError(f"{path}:{start + 1}: code block never closed")
        i += 1
        blocks.append(
            Block(path, start + 1, opening["info"], "\n".join(body) + "\n", _not_run_reason(lines, start))
        )
    return blocks


def _not_run_reason(lines: list[str], fence_index: int) -> str | None:
    """The reason of a ``<!-- not-run: ... -->`` line above the fence (blank lines between)."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    mark = _NOT_RUN.match(lines[j])
    return mark["reason"].strip() if mark else None


DOCS = REPO_ROOT / "docs"
REFERENCE = DOCS / "reference"
"""The API reference pages: generated from the docstrings (``::: module``), no blocks of their own."""


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/, at any depth, but the API reference pages."""
    docs = (path for path in DOCS.rglob("*.md") if not path.is_relative_to(REFERENCE))
    return [REPO_ROOT / "README.md", *sorted(docs)]


def python_blocks() -> list[Block]:
    found: list[Block] = []
    for file in doc_files():
        relative = file.relative_to(REPO_ROOT).as_posix()
        found.extend(b for b in code_blocks(file.read_text(encoding="utf-8"), relative) if b.is_python)
    return found


def run_block(block: Block) -> dict[str, object]:
    """Execute one block as a script; exceptions (and warnings) propagate. Returns its namespace."""
    # Padding keeps line numbers: a traceback names the Markdown file and the line in it.
    source = "\n" * block.line + block.code
    code = compile(source, str(REPO_ROOT / block.path), "exec")
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(code, namespace)
    return namespace


BLOCKS = python_blocks()
RUN = [b for b in BLOCKS if b.not_run is None]
NOT_RUN = [b for b in BLOCKS if b.not_run is not None]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server (``tests/support/redis_server.py``), or the one ``OASST_REDIS_URL`` names."""
    with running_redis() as server:
        yield server.url


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_block_runs(block: Block, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.delenv("OASST_API_KEY", raising=False)
    if block.needs_redis:  # resolved before REDIS_ENV is cleared: it may name an external Redis
        url = request.getfixturevalue("redis_url")
        monkeypatch.setenv(REDIS_ENV, url)
    if block.needs_backend:
        server: MockServer = request.getfixturevalue("prism")
        monkeypatch.setenv(BACKEND_ENV, server.url)
        monkeypatch.setenv("OASST_API_KEY", MOCK_API_KEY)
    try:
        run_block(block)
    except BaseException:
        if block.needs_backend:  # shown with the failure, as captured output
            print(f"prism's log:\n{request.getfixturevalue('prism').log_tail()}")
        raise


def test_few_blocks_are_not_run_and_those_compile() -> None:
    listed = [f"{b.id} ({b.not_run})" for b in NOT_RUN]
    assert len(NOT_RUN) <= MAX_NOT_RUN, f"more not-run blocks than MAX_NOT_RUN={MAX_NOT_RUN}: {listed}"
    assert all(b.not_run for b in NOT_RUN), f"a not-run mark must give its reason: {listed}"
    for block in NOT_RUN:
        compile(block.code, block.id, "exec")


def test_every_not_run_mark_sits_above_a_python_block() -> None:
    """A mark anywhere else excuses nothing (a typo or a block moved away from its mark)."""
    for file in doc_files():
        text = file.read_text(encoding="utf-8")
        relative = file.relative_to(REPO_ROOT).as_posix()
        marks = sum(1 for line in text.splitlines() if _NOT_RUN.match(line))
        marked = [b for b in code_blocks(text, relative) if b.not_run is not None]
        assert all(b.is_python for b in marked), [b.id for b in marked if not b.is_python]
        assert marks == len(marked), f"{relative}: {marks} not-run marks, {len(marked)} on python blocks"


def test_doc_files_are_the_readme_and_every_page_under_docs_but_the_reference() -> None:
    files = doc_files()
    pages = {p.relative_to(REPO_ROOT).as_posix() for p in files}
    assert files[0] == REPO_ROOT / "README.md"
    assert {"docs/index.md", "docs/migrating.md", "docs/guides/worker.md"} <= pages
    assert not [p for p in pages if p.startswith("docs/reference/")]
    assert (REFERENCE / "codec.md").exists()  # the exclusion excludes something


def test_the_readme_blocks_are_all_found() -> None:
    """Every line opening a python fence in README.md is one extracted block."""
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    openings = [n for n, line in enumerate(lines, 1) if re.match(r"^ {0,3}```\s*python\s*$", line)]
    assert len(openings) >= 2  # the tour: a worker frame, the drop-in
    assert [b.line for b in BLOCKS if b.path == "README.md"] == openings


# ------------------------------------------------------------------- the extractor and runner


SAMPLE = """\
# Title

```python
x = 1
```

<!-- not-run: needs a GPU -->

```py
gpu()
```

````markdown
```python
inside = "a fence inside a longer fence is text"
```
````

```sh
make test
```

~~~python
y = 2
~~~
"""


def test_code_blocks_finds_each_fence_with_its_language_line_and_mark() -> None:
    blocks = code_blocks(SAMPLE, "docs/sample.md")
    assert [(b.id, b.info, b.is_python, b.not_run) for b in blocks] == [
        ("docs/sample.md:3", "python", True, None),
        ("docs/sample.md:9", "py", True, "needs a GPU"),
        ("docs/sample.md:13", "markdown", False, None),
        ("docs/sample.md:19", "sh", False, None),
        ("docs/sample.md:23", "python", True, None),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[2].code.count("```") == 2


def test_an_unclosed_block_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"docs/x\.md:2: code block never closed"):
        code_blocks("text\n```python\nx = 1\n", "docs/x.md")


def test_a_failing_block_fails_with_the_markdown_line() -> None:
    block = Block("README.md", 40, "python", "x = 1\nraise ValueError('broken example')\n")
    with pytest.raises(ValueError, match="broken example") as info:
        run_block(block)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (Path(last.filename), last.lineno) == (REPO_ROOT / "README.md", 42)


def test_a_block_that_warns_fails() -> None:
    code = "import warnings\nwarnings.warn('deprecated', DeprecationWarning)\n"
    block = Block("README.md", 1, "python", code)
    with pytest.raises(DeprecationWarning):
        run_block(block)


def test_each_block_gets_a_fresh_namespace() -> None:
    first = run_block(Block("README.md", 1, "python", "shared = 1\n"))
    assert first["shared"] == 1
    with pytest.raises(NameError, match="shared"):
        run_block(Block("README.md", 1, "python", "shared\n"))
