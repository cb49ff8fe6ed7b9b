"""Fixtures for the relay tests: a real redis-server (tests/support/redis_server.py) and relays on it.

redis-py's asyncio client runs on asyncio only (it does not support trio), so these tests run
on asyncio only: ``anyio_backend`` is overridden here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from oasst_shared.relay import Relay
from tests.support.redis_server import RedisServer, running_redis


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: redis-py's asyncio client does not run on trio."""
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One Redis per test module (OASST_REDIS_URL selects an external one)."""
    with running_redis() as srv:
        yield srv


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The module's Redis, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own (never the external one), persisting to an append-only file:
    for fault tests that stop, kill, pause and restart it."""
    with running_redis(use_env=False, persist=True) as srv:
        yield srv


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    """A relay on the module's (emptied) Redis, closed after the test."""
    async with Relay(redis_url) as r:
        yield r
