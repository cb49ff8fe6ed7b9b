"""Fixtures shared by the tests that need a real Redis and a relay on it (``tests/relay``,
``tests/server``): a conftest imports them by name.

redis-py's asyncio client runs on asyncio only (it does not support trio), so these tests run
on asyncio only: ``anyio_backend`` is overridden here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from oasst_shared.relay import Relay
from tests.support.cluster import ClusterSet, running_cluster
from tests.support.redis_server import RedisServer, running_redis

__all__ = ["anyio_backend", "redis_cluster", "redis_server", "redis_url", "relay"]


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: redis-py's asyncio client does not run on trio."""
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One Redis per test module (OASST_REDIS_URL selects an external one)."""
    with running_redis() as srv:
        yield srv


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterSet]:
    """One Redis Cluster (3 masters, 3 replicas) for the session's tests that do not break it
    (a test that kills a node starts a cluster of its own)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The module's Redis, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    """A relay on the module's (emptied) Redis, closed after the test."""
    async with Relay(redis_url) as r:
        yield r
