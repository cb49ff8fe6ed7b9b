"""Fuzz ``SSEParser.feed`` with fuzzer-chosen chunking against a whole-stream reference."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec
    from oasst_shared.codec import FrameDecodeError, SSEParser

from fuzz._harness import run, seeds_of
from tests.support.hostile_streams import SSE_PIECES, chunked, feed_all, reference_sse
from tests.support.strategies import instances


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = [fdp.ConsumeIntInRange(0, 512) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    chunks = chunked(body, cuts)
    assert feed_all(SSEParser(errors="replace"), chunks) == reference_sse(body.decode("utf-8", "replace"))
    try:
        events = feed_all(SSEParser(), chunks)
    except FrameDecodeError:
        try:
            body.decode()
        except UnicodeDecodeError:
            return
        raise
    assert events == reference_sse(body.decode("utf-8", "ignore"))


def seeds() -> list[bytes]:
    frames = seeds_of(instances(codec.worker_response.type), codec.sse_frame, count=20)
    return [b"\x00" + frame for frame in frames] + [b"\x00" + "".join(SSE_PIECES).encode()]


if __name__ == "__main__":
    run("sse", test_one_input, seeds)
