"""Fuzz ``codec.worker_response`` / ``worker_response_msgpack`` and the response peek."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec

from fuzz._harness import near_valid, run, seeds_of
from tests.strategies import instances
from tests.test_hostile_input import check_union_json, check_union_msgpack

NAME = "WorkerResponse"
JSON = codec.worker_response
MSGPACK = codec.worker_response_msgpack
POOL_JSON = seeds_of(instances(JSON.type), JSON.encode, count=60)
POOL_MSGPACK = seeds_of(instances(JSON.type), MSGPACK.encode, count=60)


def test_one_input(data: bytes) -> None:
    check_union_json(NAME, data)
    check_union_json(NAME, data.decode("utf-8", "surrogateescape"))  # str input, maybe surrogates
    check_union_msgpack(NAME, data)
    check_union_json(NAME, near_valid(data, POOL_JSON))
    check_union_msgpack(NAME, near_valid(data, POOL_MSGPACK))


def seeds() -> list[bytes]:
    return POOL_JSON + POOL_MSGPACK


if __name__ == "__main__":
    run("worker_response", test_one_input, seeds, [JSON.type])
