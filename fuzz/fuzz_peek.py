"""Fuzz the envelope peeks: only ``FrameDecodeError`` escapes, and a peek never disagrees
with a successful full decode nor fails where the full decode succeeds."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec
    from oasst_shared.codec import FrameDecodeError

from fuzz._harness import near_valid, run, seeds_of
from tests.support.hostile import Failed, attempt, check_peek
from tests.support.strategies import instances

POOL = seeds_of(instances(codec.worker_response.type), codec.worker_response.encode) + seeds_of(
    instances(codec.worker_request.type), codec.worker_request.encode
)


FULL = {"WorkerResponse": codec.worker_response, "WorkerRequest": codec.worker_request}


def test_one_input(data: bytes) -> None:
    for frame in (data, near_valid(data, POOL)):
        for name, full in FULL.items():
            check_peek(name, frame, attempt(lambda: full.decode(frame), (FrameDecodeError,)))  # noqa: B023
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")  # a str with lone surrogates: refused
        for peek in (codec.peek_worker_response, codec.peek_worker_request):
            assert isinstance(attempt(lambda: peek(text), (FrameDecodeError,)), Failed)  # noqa: B023
        return
    for peek in (codec.peek_worker_response, codec.peek_worker_request):
        from_bytes = attempt(lambda: peek(data), (FrameDecodeError,))  # noqa: B023
        from_text = attempt(lambda: peek(text), (FrameDecodeError,))  # noqa: B023
        if isinstance(from_bytes, Failed):
            assert isinstance(from_text, Failed)
        else:
            assert from_bytes == from_text


def seeds() -> list[bytes]:
    return POOL


if __name__ == "__main__":
    run("peek", test_one_input, seeds, [codec.worker_response.type, codec.worker_request.type])
