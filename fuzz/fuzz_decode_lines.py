"""Fuzz ``decode_lines`` / ``iter_lines`` against decoding each line on its own."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec

from hypothesis import strategies as st

from fuzz._harness import run, seeds_of
from tests.support.hostile_streams import check_ndjson
from tests.support.strategies import instances

NAME = "WorkerResponse"


def test_one_input(data: bytes) -> None:
    check_ndjson(NAME, data)
    check_ndjson(NAME, data.decode("utf-8", "surrogateescape"))


def seeds() -> list[bytes]:
    streams = st.lists(instances(codec.worker_response.type), min_size=1, max_size=4)
    return seeds_of(streams, codec.worker_response.encode_lines)


if __name__ == "__main__":
    run("decode_lines", test_one_input, seeds, [codec.worker_response.type])
