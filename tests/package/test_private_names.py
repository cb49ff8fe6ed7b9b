"""No private name leaks into what the API reference renders: the signatures (parameters, their
annotations and defaults, return types) and the annotations and values of attributes and fields.

The scan reads the public API snapshot ``api/public-api.txt`` (``python -m tools.api_snapshot``),
which holds exactly those, and fails on any ``_``-prefixed name in them that is not a dunder
(``_DEBUG``, ``_core.make_seed``, a type variable ``_S``). Class lines (bases, metaclass) are not
scanned: the reference does not show bases. Text inside string literals is not a name.
"""

from __future__ import annotations

import re

import pytest

from tools import api_snapshot

SNAPSHOT = api_snapshot.SNAPSHOT

ALLOWED: dict[tuple[str, str], str] = {
    ("oasst_compat.OasstModel.construct", "_fields_set"): (
        "pydantic's own parameter name of BaseModel.construct, kept for drop-in compatibility"
    ),
}
"""(public path, private name) -> why the name stays in the rendered signature."""

_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_PRIVATE = re.compile(r"\b_\w+")
_SCANNED_KINDS = re.compile(
    r"(?:async )?(?:function|method|classmethod|staticmethod|overload)\b|"
    r"(?:cached )?(?:writable )?property\b|attribute\b|field\b|type alias\b"
)


def private_names(description: str) -> list[str]:
    """The private (``_``-prefixed, not dunder) names in one snapshot line's description."""
    if not _SCANNED_KINDS.match(description):
        return []  # a class line, a module, an alias of another path
    code = _STRING.sub("''", description)
    return [
        name
        for name in _PRIVATE.findall(code)
        if name != "_" and not (name.startswith("__") and name.endswith("__"))
    ]


def _leaks() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for line in SNAPSHOT.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        path, _, description = line.partition(": ")
        found.extend((path, name, line) for name in private_names(description))
    return found


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "function (func: None = None, /, *, level: int = _DEBUG) -> Callable[_P, _R]",
            ["_DEBUG", "_P", "_R"],
        ),
        ("field int = Field(default_factory=_core.make_seed)", ["_core"]),
        ("field str = field(default_factory=core._new_id)", ["_new_id"]),
        ("method (self: _S) -> _S", ["_S", "_S"]),
        ("classmethod (cls, _fields_set: set[str] | None = None) -> Self", ["_fields_set"]),
        ("attribute = '_skip_reply'", []),
        ('attribute str = "a _b"', []),
        ("method (self, item: Any) -> None", []),
        ("method (self, other: object) -> bool", []),
        ("property int", []),
        ("attribute ClassVar[type[OasstStruct]] = __oasst_struct__", []),
        ("class(_CodecBase[T])", []),
        ("alias of oasst_shared._private.thing", []),
        ("function (x: int = lambda _: 0) -> None", []),
    ],
)
def test_the_scan_finds_private_names_in_signatures_and_values(description: str, expected: list[str]) -> None:
    assert private_names(description) == expected


def test_no_private_name_in_a_rendered_signature_or_value() -> None:
    leaks = dict.fromkeys(f"{name} in {line}" for path, name, line in _leaks() if (path, name) not in ALLOWED)
    assert not leaks, "private names in the API reference:\n" + "\n".join(leaks)


def test_every_allowed_private_name_is_still_there() -> None:
    """An allowed entry whose name is gone is removed from ``ALLOWED``."""
    present = {(path, name) for path, name, _ in _leaks()}
    assert set(ALLOWED) <= present
