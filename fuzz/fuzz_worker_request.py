"""Fuzz ``codec.worker_request`` / ``worker_request_msgpack`` and the request peek."""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["oasst_shared"]):
    from oasst_shared import codec

from fuzz._harness import run, union_harness

test_one_input, seeds = union_harness("WorkerRequest", codec.worker_request, codec.worker_request_msgpack)

if __name__ == "__main__":
    run("worker_request", test_one_input, seeds, [codec.worker_request.type])
