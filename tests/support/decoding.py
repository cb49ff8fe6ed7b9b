"""Decoding a document as a type, and the check that a bad document is refused where it is bad:
shared by the struct suites (``tests/schemas/``)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

__all__ = ["assert_rejected", "decode"]


def decode(data: Any, tp: Any) -> Any:
    """``data`` (JSON text, or a parsed document that is encoded first) decoded as ``tp``."""
    raw = data if isinstance(data, bytes | str) else msgspec.json.encode(data)
    return msgspec.json.decode(raw, type=tp)


def assert_rejected(doc: Any, tp: Any, problem: str, path_pattern: str | None) -> None:
    """``doc`` is refused as ``tp`` both from JSON (``decode``) and as Python objects
    (``msgspec.convert``), with a ``ValidationError`` whose message holds ``problem`` and, unless
    ``path_pattern`` is None, matches that regex (the path msgspec names)."""
    for attempt in (lambda: decode(doc, tp), lambda: msgspec.convert(doc, tp)):
        with pytest.raises(msgspec.ValidationError) as info:
            attempt()
        message = str(info.value)
        assert problem in message
        if path_pattern is not None:
            assert re.search(path_pattern, message), message
