"""Fuzz ``codec.worker_response`` / ``worker_response_msgpack`` and the response peek."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec

from fuzz._harness import run, union_harness

test_one_input, seeds = union_harness("WorkerResponse", codec.worker_response, codec.worker_response_msgpack)

if __name__ == "__main__":
    run("worker_response", test_one_input, seeds, [codec.worker_response.type])
