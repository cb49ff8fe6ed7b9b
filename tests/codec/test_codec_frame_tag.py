"""The tag probe the codec names bad frames with (``oasst_shared.codec._errors.frame_tag``)."""

from __future__ import annotations

import msgspec
import pytest

from oasst_shared.codec._errors import frame_tag


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"response_type": "token", "text": 3}', "token"),
        (b'{"request_type": "work", "id": 7}', "work"),
        (b'{"type": "task_done"}', "task_done"),
        (b'{"type": "x", "response_type": "token"}', "token"),  # response_type is read first
        (b'{"response_type": 3, "type": "x"}', "x"),  # a non-string tag is passed over
        (b'{"text": "no tag"}', None),
        (b'{"response_type": "tok', None),  # malformed
        (b"[1, 2]", None),  # not an object
        (b'{"response_type": "token", "a": ' + b"[" * 100_000, None),  # nested too deeply
    ],
)
def test_reads_the_first_string_tag_or_none(frame: bytes, expected: str | None) -> None:
    assert frame_tag(frame) == expected


def test_reads_only_the_fields_asked_for() -> None:
    frame = b'{"type": "x", "response_type": "token"}'
    assert frame_tag(frame, fields=("type",)) == "x"
    assert frame_tag(frame, fields=("request_type",)) is None


def test_reads_msgpack_frames() -> None:
    frame = msgspec.msgpack.encode({"request_type": "work", "id": "r"})
    assert frame_tag(frame, msgpack=True) == "work"
    assert frame_tag(frame) is None  # not JSON


def test_refuses_fields_that_are_no_tag_field() -> None:
    with pytest.raises(ValueError, match=r"not \['request_id'\]"):
        frame_tag(b"{}", fields=("type", "request_id"))
