"""Fuzz msgpack ``decode_frames`` / ``iter_frames`` against a plain length-prefix splitter."""

from __future__ import annotations

from typing import Any

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec
    from oasst_shared.codec import FrameDecodeError, MsgpackCodec

from hypothesis import strategies as st

from fuzz._harness import run, seeds_of
from tests.support.hostile import Failed, attempt, factory_only_difference
from tests.support.hostile_streams import chunked, reference_frames
from tests.support.strategies import instances

NAME = "WorkerResponse"
LIMIT = 4096
small: MsgpackCodec[Any] = MsgpackCodec(codec.worker_response.type, max_frame_size=LIMIT)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = [fdp.ConsumeIntInRange(0, 2048) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    expected, has_error = reference_frames(NAME, LIMIT, stream)
    whole = attempt(lambda: small.decode_frames(stream), (FrameDecodeError,))
    assert isinstance(whole, Failed) == has_error
    if not has_error:
        assert factory_only_difference(whole, expected)
    produced: list[Any] = []
    try:
        produced.extend(small.iter_frames(chunked(stream, cuts)))
    except FrameDecodeError:
        assert has_error
    else:
        assert not has_error
    assert factory_only_difference(produced, expected[: len(produced)])


def seeds() -> list[bytes]:
    streams = st.lists(instances(codec.worker_response.type), min_size=1, max_size=3)
    return [b"\x00" + s for s in seeds_of(streams, small.encode_frames) if len(s) < LIMIT]


if __name__ == "__main__":
    run("msgpack_frames", test_one_input, seeds, [codec.worker_response.type])
