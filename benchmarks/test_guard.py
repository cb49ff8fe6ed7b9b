"""CI guard: fail only on a gross regression of the hot path that noise cannot explain.

Every check compares two timings taken interleaved in the same run (the minimum of several
rounds each), never an absolute time. The margins are wide on purpose: on a quiet machine the
struct token decode is about 0.5-0.8x ``orjson.loads``; the guard fires at 1.5x.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from benchmarks import messages
from benchmarks.measure import interleaved
from oasst_shared import codec

TOKEN = messages.token_response()
FRAME = codec.worker_response.encode(TOKEN)
WORK = codec.worker_request.encode(messages.work_request())


def _best_of(attempts: int, check: Any) -> None:
    """Run a ratio check up to ``attempts`` times: one quiet round is proof enough."""
    failures = []
    for _ in range(attempts):
        ok, detail = check()
        if ok:
            return
        failures.append(detail)
    pytest.fail("; ".join(failures))


def test_token_decode_within_1_5x_orjson_loads() -> None:
    decode = codec.worker_response.decode

    def check() -> tuple[bool, str]:
        t = interleaved({"ours": lambda: decode(FRAME), "orjson": lambda: orjson.loads(FRAME)}, number=2000)
        ratio = t["ours"] / t["orjson"]
        return ratio < 1.5, f"token decode {ratio:.2f}x orjson.loads"

    _best_of(3, check)


def test_token_encode_into_buffer_within_1_5x_orjson_dumps() -> None:
    plain = orjson.loads(FRAME)
    encode_into = codec.worker_response.encoder().encode_into
    buffer = bytearray(256)

    def check() -> tuple[bool, str]:
        t = interleaved(
            {"ours": lambda: encode_into(TOKEN, buffer), "orjson": lambda: orjson.dumps(plain)}, number=2000
        )
        ratio = t["ours"] / t["orjson"]
        return ratio < 1.5, f"token encode {ratio:.2f}x orjson.dumps"

    _best_of(3, check)


def test_work_request_decode_within_1_5x_orjson_loads() -> None:
    decode = codec.worker_request.decode

    def check() -> tuple[bool, str]:
        t = interleaved({"ours": lambda: decode(WORK), "orjson": lambda: orjson.loads(WORK)}, number=50)
        ratio = t["ours"] / t["orjson"]
        return ratio < 1.5, f"WorkRequest decode {ratio:.2f}x orjson.loads"

    _best_of(3, check)


def test_relay_peek_cheaper_than_decode_and_reencode() -> None:
    decode = codec.worker_response.decode
    encode = codec.worker_response.encode
    peek = codec.peek_worker_response

    def check() -> tuple[bool, str]:
        t = interleaved({"full": lambda: encode(decode(FRAME)), "peek": lambda: peek(FRAME)}, number=2000)
        ratio = t["full"] / t["peek"]
        return ratio > 1.2, f"relay saves only {ratio:.2f}x"

    _best_of(3, check)


def test_checked_peek_stays_close_to_msgspecs_floor() -> None:
    """The codec's size check and error wrapping around the envelope decode are one Python
    call: about 1.3-1.6x a bare decode that skips the whole frame. 2.5x means a regression."""
    import msgspec

    from benchmarks.cases import SkipAll

    skip_all = msgspec.json.Decoder(SkipAll).decode
    peek = codec.peek_worker_response

    def check() -> tuple[bool, str]:
        t = interleaved({"peek": lambda: peek(FRAME), "floor": lambda: skip_all(FRAME)}, number=2000)
        ratio = t["peek"] / t["floor"]
        return ratio < 2.5, f"peek costs {ratio:.2f}x a skip-all decode"

    _best_of(3, check)


def test_struct_decode_faster_than_pydantic_view() -> None:
    pytest.importorskip("pydantic", reason="the pydantic extra is not installed")
    try:
        from oasst_compat.schemas import inference as views
    except ImportError as exc:  # pragma: no cover - the compat layer ships with this repo
        pytest.fail(f"oasst_compat does not import: {exc}")
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(views.WorkerResponse)
    decode = codec.worker_response.decode

    def check() -> tuple[bool, str]:
        t = interleaved(
            {"ours": lambda: decode(FRAME), "view": lambda: adapter.validate_json(FRAME)}, number=2000
        )
        ratio = t["view"] / t["ours"]
        return ratio > 1.0, f"view decode only {ratio:.2f}x the struct decode"

    _best_of(3, check)


def test_bare_loop_timer_measures_every_statement() -> None:
    """The report's bare-loop timer runs each statement; skipping a frame is far cheaper than
    decoding and re-encoding it (about 4x), so even a noisy round keeps that order."""
    from benchmarks.measure import bare_peek_times

    times = bare_peek_times(rounds=3, number=500)
    assert set(times) == {
        "orjson.loads",
        "msgspec skip-all",
        "request_id only",
        "unchecked peek",
        "peek",
        "decode+encode",
    }
    assert all(t > 0 for t in times.values())
    assert times["msgspec skip-all"] < times["decode+encode"]
