from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from oasst_shared import utils
from oasst_shared.utils import (
    DELETED_USER_DISPLAY_NAME,
    DELETED_USER_ID_PREFIX,
    Anonymizer,
    ScopeTimer,
    log_timing,
    sha256_hash,
    unaware_to_utc,
    utcnow,
)


def test_constants() -> None:
    assert DELETED_USER_DISPLAY_NAME == "Deleted User"
    assert DELETED_USER_ID_PREFIX == "deleted_"


def test_utcnow_is_aware_utc_and_current() -> None:
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_unaware_to_utc() -> None:
    naive = datetime(2023, 5, 1, 12, 30)
    aware = unaware_to_utc(naive)
    assert aware.tzinfo is timezone.utc and aware.replace(tzinfo=None) == naive
    other = datetime(2023, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert unaware_to_utc(other) is other


def test_scope_timer_start_stop_and_context_manager() -> None:
    timer = ScopeTimer()
    assert timer.elapsed is None
    time.sleep(0.01)
    elapsed = timer.stop()
    assert elapsed == timer.elapsed and elapsed >= 0.009
    with ScopeTimer() as t:
        assert t.elapsed is None
        time.sleep(0.005)
    assert t.elapsed is not None and t.elapsed >= 0.004
    t.start()
    assert t.elapsed is None


# Digests of the UTF-8 text f"{key}{seed}", computed outside Python (coreutils ``sha256sum``),
# e.g. ``printf 'user:427' | sha256sum``.
SHA256_KNOWN_ANSWERS = [
    ("", 0, "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9"),  # sha256("0")
    ("ab", 1, "ca5ba87c93d42f8a45c1e0f569bba8bac92c80f4ce6c864bd44d136572411b7e"),
    ("user:42", 7, "2aa9eabe95db8ea27b3866742013ed8250e1ba991325251a8d03fee90d1574e2"),
    ("collection:ключ", 123456789, "bd2f26fb6d554ae4b76a718ffec3d7278252d08a901f60a4aedcfebea3e0a569"),
    ("a" * 1000, -1, "18db99124c0dedd7ef122515619819538eaaefe0b2792981c17598c983a5d9d5"),
]


@pytest.mark.parametrize(("key", "seed", "expected"), SHA256_KNOWN_ANSWERS)
def test_sha256_hash_known_answers(key: str, seed: int, expected: str) -> None:
    assert sha256_hash(key, seed) == expected


def test_anonymizer_is_stable_and_scoped_by_collection() -> None:
    anon = Anonymizer(seed=42)
    a1 = anon.anonymize("users", "alice")
    assert a1 == "ec2f12402fdee225baa21a568f72d34747175933b202a9c48ca00d8c446ed03a"  # sha256("users:alice42")
    assert anon.anonymize("users", "alice") == a1
    assert anon["users:alice"] == a1
    assert anon.anonymize("messages", "alice") != a1
    assert anon.anonymize("users", None) is None


def test_anonymizer_custom_generator_and_collision() -> None:
    anon = Anonymizer(seed=1, value_generator=lambda key, seed: f"{len(key)}-{seed}")
    assert anon["abc"] == "3-1"
    assert anon["abc"] == "3-1"  # same key, no collision
    with pytest.raises(ValueError, match="collides"):
        anon["xyz"]


def test_log_timing_bare_sync(caplog: pytest.LogCaptureFixture) -> None:
    @log_timing
    def add(a: int, b: int) -> int:
        return a + b

    with caplog.at_level(logging.DEBUG, logger=__name__):
        assert add(2, 3) == 5
    assert any("add" in r.getMessage() and "executed in" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert add.__name__ == "add"


def test_log_timing_with_options_and_async(caplog: pytest.LogCaptureFixture) -> None:
    @log_timing(log_kwargs=True, level=logging.INFO)
    async def work(*, n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    with caplog.at_level(logging.INFO, logger=__name__):
        assert asyncio.run(work(n=21)) == 42
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("work" in m and "'n': 21" in m for m in messages)


def test_log_timing_logs_even_when_function_raises(caplog: pytest.LogCaptureFixture) -> None:
    @log_timing(level=logging.WARNING)
    def boom() -> None:
        raise RuntimeError("x")

    with caplog.at_level(logging.WARNING, logger=__name__), pytest.raises(RuntimeError):
        boom()
    assert any("boom" in r.getMessage() for r in caplog.records)


def test_library_configures_no_logging_handlers() -> None:
    assert not logging.getLogger("oasst_shared").handlers
    assert utils.__name__ == "oasst_shared.utils"
