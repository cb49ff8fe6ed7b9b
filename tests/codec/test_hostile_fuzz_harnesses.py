"""The atheris harnesses in ``fuzz/`` still run: each one's entry point on its seeds and on a
few hostile inputs. atheris comes with the dev extra on Linux x86_64; on a platform without
its wheel this module is skipped."""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("atheris")

HARNESSES = ["worker_response", "worker_request", "peek", "decode_lines", "sse", "msgpack_frames"]

HOSTILE = [
    b"",
    b"\x00",
    b"\xff" * 8,
    b'{"response_type": "token", "text": "\xed\xa0\x80", "token_id": 1}',
    b'{"request_type": "ping", "id": "\\ud800"}',
    b"\n\n\x1f\x1e",  # the first crash fuzz_decode_lines found
    b"[" * 10_000,
    b"\x00\x00\x00\x05\x81\xa1a\x90",
]


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_entry_point(name: str) -> None:
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    for data in [*module.seeds()[:10], *HOSTILE]:
        module.test_one_input(data)
