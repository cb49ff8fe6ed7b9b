"""The documentation site (``mkdocs.yml``, ``docs/``) builds strict, and the built HTML is checked.

The site is built once per session into a temporary folder with ``mkdocs build --strict`` (what
``make docs`` runs): any warning, broken Markdown link or unresolved cross-reference fails the
build, and so this module. Then the generated HTML itself is read:

* every internal link (``href``/``src`` without a scheme) names a file of the site, and its
  ``#fragment``, if any, an ``id`` on that page: the links mkdocstrings and autorefs generate, the
  theme's and the table-of-contents anchors included;
* the search index exists and has an entry for every page;
* the API reference page of ``oasst_shared.codec`` shows every name of its ``__all__``, and every
  reference page each public name of the module it documents (as the API snapshot
  ``api/public-api.txt`` lists them), as a heading whose ``id`` is the name's dotted path;
* every public module of the snapshot is in the reference (``NOT_ON_A_PAGE`` lists the few that
  are not, with the reason).

The Python blocks of the pages run in ``tests/package/test_readme.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.specs import REPO_ROOT

pytestmark = pytest.mark.timeout(300)

DOCS = REPO_ROOT / "docs"
REFERENCE = DOCS / "reference"
SNAPSHOT = REPO_ROOT / "api" / "public-api.txt"
BUILD_TIMEOUT = 240
"""Seconds the strict build may take (about 10 s here) before the fixture gives up."""

_DIRECTIVE = re.compile(r"^:::\s*(?P<module>[\w.]+)\s*$")
_NO_MEMBERS = re.compile(r"^\s+members:\s*false\s*$")

NOT_ON_A_PAGE = {
    "oasst_shared": "the package: its only public name is __version__",
    "oasst_compat.schemas": "a namespace: its protocol and inference modules have pages",
    "oasst_compat.exceptions.error_codes": "oasst_shared.exceptions' objects, at the reference's path",
    "oasst_compat.exceptions.oasst_api_error": "oasst_shared.exceptions' objects, at the reference's path",
}
"""Public modules the API reference shows no page for, and why."""


# ------------------------------------------------------------------------------ building


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strict into a temporary folder (once per session)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed ({result.returncode}):\n{result.stderr}", pytrace=False)
    return out


# ------------------------------------------------------------------------------ reading HTML


@dataclass
class Page:
    """What the link check needs of one HTML page."""

    ids: set[str] = field(default_factory=set)
    """Every ``id`` (and ``<a name>``): what a ``#fragment`` may name."""
    links: list[str] = field(default_factory=list)
    """Every ``href`` and ``src``, as written."""
    text: list[str] = field(default_factory=list)
    """The text outside tags."""


class _Scanner(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.page.ids.add(value)
            elif name in ("href", "src"):
                self.page.links.append(value)

    def handle_data(self, data: str) -> None:
        self.page.text.append(data)


def read_page(path: Path) -> Page:
    page = Page()
    scanner = _Scanner(page)
    scanner.feed(path.read_text(encoding="utf-8"))
    scanner.close()
    return page


def broken_links(site: Path) -> list[str]:
    """Every internal link of the site's HTML that names no file, or no ``id`` on its target."""
    root = site.resolve()
    pages: dict[Path, Page] = {p.resolve(): read_page(p) for p in root.rglob("*.html")}
    broken: list[str] = []
    for path, page in sorted(pages.items()):
        where = path.relative_to(root).as_posix()
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:  # https:, mailto:, data:, //host: not the site's
                continue
            if not parts.path:
                target = path
            elif parts.path.startswith("/"):  # 404.html: served at any path, it links from the root
                target = (root / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(root):
                broken.append(f"{where}: {link} (outside the site)")
            elif not target.is_file():
                broken.append(f"{where}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                fragment = unquote(parts.fragment)
                if fragment not in pages[target].ids:
                    broken.append(f"{where}: {link} (no id {fragment!r} on the page)")
    return broken


def directives() -> dict[str, tuple[str, bool]]:
    """Module -> (its reference page, ``codec.html``; whether its members are shown), from the
    ``::: module`` lines of ``docs/reference/*.md`` (members are not shown under ``members: false``)."""
    found: dict[str, tuple[str, bool]] = {}
    for md in sorted(REFERENCE.glob("*.md")):
        lines = md.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            directive = _DIRECTIVE.match(line)
            if directive is None:
                continue
            options = []
            for option in lines[i + 1 :]:
                if option.strip() and not option.startswith((" ", "\t")):
                    break
                options.append(option)
            shown = not any(_NO_MEMBERS.match(o) for o in options)
            found[directive["module"]] = (md.with_suffix(".html").name, shown)
    return found


def rendered_modules() -> dict[str, str]:
    """Module -> reference page, for every module whose members a reference page shows."""
    return {module: page for module, (page, shown) in directives().items() if shown}


def snapshot_modules() -> dict[str, list[str]]:
    """Every public module of the committed API snapshot (``api/public-api.txt``, kept equal to
    the code by ``tests/package/test_public_api.py``) -> its public names."""
    lines = [line for line in SNAPSHOT.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    paths = [line.partition(": ")[0] for line in lines]
    modules: dict[str, list[str]] = {
        p: [] for p, line in zip(paths, lines, strict=True) if line.endswith(": module")
    }
    for path in paths:
        parent, _, name = path.rpartition(".")
        if parent in modules and path not in modules:
            modules[parent].append(name)
    return modules


# ------------------------------------------------------------------------------ the built site


def test_every_internal_link_and_anchor_resolves(site: Path) -> None:
    assert len(list(site.rglob("*.html"))) >= 20
    assert broken_links(site) == []


def test_the_search_index_covers_every_page(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    entries = index["docs"]
    assert entries, "the search index is empty"
    assert all(entry["location"] is not None and "text" in entry for entry in entries)
    indexed = {entry["location"].partition("#")[0] for entry in entries}
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")} - {"404.html"}
    assert pages - indexed == set()
    codec_text = " ".join(e["text"] for e in entries if e["location"].startswith("reference/codec.html"))
    assert "FrameDecodeError" in codec_text


def test_the_codec_page_lists_every_public_name(site: Path) -> None:
    from oasst_shared import codec

    page = read_page(site / "reference" / "codec.html")
    text = " ".join(page.text)
    missing = [n for n in codec.__all__ if f"oasst_shared.codec.{n}" not in page.ids or n not in text]
    assert len(codec.__all__) >= 20
    assert missing == []


def test_every_reference_page_lists_its_modules_public_names(site: Path) -> None:
    modules = rendered_modules()
    assert {"oasst_shared.codec", "oasst_shared.relay", "oasst_shared.api_client", "oasst_compat"} <= set(
        modules
    )
    public = snapshot_modules()
    missing: dict[str, list[str]] = {}
    for module, html in modules.items():
        ids = read_page(site / "reference" / html).ids
        absent = [n for n in public[module] if f"{module}.{n}" not in ids]
        if absent:
            missing[module] = absent
    assert missing == {}


def test_every_public_module_is_in_the_reference(site: Path) -> None:
    """Each module of the API snapshot has a ``:::`` directive, or its names are all shown on its
    parent's page (``oasst_shared.codec.sse``: the codec page), or NOT_ON_A_PAGE says why not."""
    documented = directives()
    shown = rendered_modules()
    public = snapshot_modules()
    assert len(public) >= 20
    assert "oasst_shared.codec.sse" in public
    uncovered = []
    for module, names in sorted(public.items()):
        if module in documented or module in NOT_ON_A_PAGE:
            continue
        parent = module.rpartition(".")[0]
        if parent in shown:
            ids = read_page(site / "reference" / shown[parent]).ids
            if names and all(f"{parent}.{n}" in ids for n in names):
                continue
        uncovered.append(module)
    assert uncovered == []
    assert set(NOT_ON_A_PAGE) <= set(public), "NOT_ON_A_PAGE names a module that is not public"


# ------------------------------------------------------------------------------ the checker itself


def _write(path: Path, html: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{html}</body></html>", encoding="utf-8")


def test_broken_links_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _write(
        site / "index.html",
        '<h1 id="top">x</h1>'
        '<a href="#top">self</a> <a href="#gone">bad self</a>'
        '<a href="guide/a.html#part">ok</a> <a href="guide/a.html#nope">bad anchor</a>'
        '<a href="guide/">dir index</a> <a href="missing.html">bad file</a>'
        '<a href="https://example.org/x.html#y">external</a> <a href="mailto:a@b.c">mail</a>'
        '<img src="img/logo.png"> <a href="../outside.html">escapes</a>',
    )
    _write(site / "guide" / "a.html", '<a name="part"></a><a href="../index.html#top">back</a>')
    _write(site / "404.html", '<a href="/guide/a.html#part">root</a> <a href="/guide/b.html">bad root</a>')
    _write(site / "guide" / "index.html", "")
    (site / "img").mkdir()
    (site / "img" / "logo.png").write_bytes(b"\x89PNG")
    _write(tmp_path / "outside.html", "")
    assert broken_links(site) == [
        "404.html: /guide/b.html (no such file)",
        "index.html: #gone (no id 'gone' on the page)",
        "index.html: guide/a.html#nope (no id 'nope' on the page)",
        "index.html: missing.html (no such file)",
        "index.html: ../outside.html (outside the site)",
    ]


def test_directives_are_read_with_their_members_option() -> None:
    assert directives()["oasst_shared.codec"] == ("codec.html", True)
    assert directives()["oasst_compat.utils"] == ("compat.html", False)  # the same objects
    assert "oasst_compat.utils" not in rendered_modules()


def test_snapshot_modules_have_their_direct_names() -> None:
    modules = snapshot_modules()
    assert "FrameDecodeError" in modules["oasst_shared.codec"]
    assert "sse_frame" in modules["oasst_shared.codec.sse"]
    assert "sse" not in modules["oasst_shared.codec"]  # a submodule is a module of its own
    assert not [n for names in modules.values() for n in names if "." in n]
