"""The struct <-> view pairing itself: every struct of the three struct modules has its view
(``tests.support.compat`` walks them) and back, and nothing else is taken for a message."""

from __future__ import annotations

import pytest

import oasst_compat
from oasst_shared.schemas.base import OasstStruct
from tests.support.compat import ABSTRACT_WITH_TYPE, CONCRETE_STRUCTS, struct_classes, view_of


def test_the_walk_covers_every_struct_module() -> None:
    names = {cls.__name__ for cls in struct_classes()}
    # one struct of each module, so an empty walk (e.g. a broken filter) fails
    assert {"ModelConfig", "TokenResponse", "TextReplyToMessage"} <= names
    assert len(CONCRETE_STRUCTS) == len(struct_classes()) - len(ABSTRACT_WITH_TYPE)


@pytest.mark.parametrize("struct_cls", struct_classes(), ids=lambda c: c.__name__)
def test_every_struct_has_its_view_and_back(struct_cls: type[OasstStruct]) -> None:
    view = view_of(struct_cls)
    assert issubclass(view, oasst_compat.OasstModel)
    assert view.__oasst_struct__ is struct_cls
    assert oasst_compat.view_class(struct_cls) is view
    assert oasst_compat.struct_class(view) is struct_cls
    assert view.__module__ == "oasst_compat" + struct_cls.__module__.removeprefix("oasst_shared")


def test_view_class_rejects_what_is_not_a_message() -> None:
    class Local(OasstStruct):
        x: int

    with pytest.raises(TypeError, match="not an oasst_shared message struct"):
        oasst_compat.view_class(Local)
