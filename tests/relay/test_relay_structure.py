"""The relay package's shape: each module one job, imports one way, none too long.

Read from the source (``ast``), so a change that makes a module import back up, or grows one
past the size a reader can hold in mind, fails here rather than in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import oasst_shared.relay

PACKAGE = "oasst_shared.relay"
ROOT = Path(oasst_shared.relay.__file__).parent
MODULES = sorted(p.stem for p in ROOT.glob("*.py"))
MAX_LINES = 460  # "about 450": what one reader holds in mind

# The two public constructors whose signature the public API fixes take the relay
# (``Publisher(relay, limit)``, ``Subscription(relay, message_id)``): they name it in an
# annotation only, imported for the type checker, and never at run time.
TYPE_ONLY = {("_publish", "__init__"), ("_subscription", "__init__")}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """The modules of this package that ``module`` imports at run time (anywhere in it, functions
    included), and for type checking only (``if TYPE_CHECKING:``)."""
    tree = ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8"))
    typing_nodes = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    runtime: set[str] = set()
    typing_only: set[str] = set()
    for node in ast.walk(tree):
        into = typing_only if id(node) in typing_nodes else runtime
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == PACKAGE:
                into.add("__init__")
            elif name.startswith(PACKAGE + ".") and name.split(".")[2] in MODULES:
                into.add(name.split(".")[2])
    return runtime, typing_only


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_modules_are_the_ones_the_design_names() -> None:
    assert set(MODULES) >= {
        "__init__",
        "_commit",
        "_drain",
        "_errors",
        "_giveback",
        "_health",
        "_inbox",
        "_keys",
        "_link",
        "_publish",
        "_reader",
        "_relay",
        "_scripts",
        "_server",
        "_subscription",
        "_work",
    }


def test_no_import_cycle_at_run_time() -> None:
    done: set[str] = set()

    def walk(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join((*path[path.index(module) :], module)))
        if module in done:
            return
        for dep in sorted(GRAPH[module][0]):
            walk(dep, (*path, module))
        done.add(module)

    for module in MODULES:
        walk(module, ())


def test_nothing_but_the_package_imports_the_public_relay_module() -> None:
    importers = {m for m, (runtime, _) in GRAPH.items() if "_relay" in runtime}
    assert importers == {"__init__"}
    # nothing imports the package itself at run time (it imports every part)
    assert not {m for m, (runtime, _) in GRAPH.items() if "__init__" in runtime}


def test_type_only_imports_are_the_two_public_constructors_annotations() -> None:
    found = {(m, dep) for m, (_, typing_only) in GRAPH.items() for dep in typing_only}
    assert found == TYPE_ONLY


@pytest.mark.parametrize("module", MODULES)
def test_no_module_is_too_long_to_read(module: str) -> None:
    lines = len((ROOT / f"{module}.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module}.py has {lines} lines"


def test_no_test_touches_a_private_attribute_of_a_relay() -> None:
    """Fault tests inject through the connection seam (``tests/relay/wire.py``), not by patching."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and "relay" in node.value.id
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offenders == []
