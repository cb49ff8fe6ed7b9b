"""Fixtures for the server pieces' tests: a real redis-server (tests/support/redis_server.py),
a relay on it, and metrics in a registry of the test's own.

asyncio only, as the relay (redis-py's asyncio client does not run on trio).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import CollectorRegistry

from oasst_shared.relay import Relay
from oasst_shared.server import ServerMetrics
from tests.support.redis_server import RedisServer, running_redis


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the relay's redis-py asyncio client does not run on trio."""
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
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    """A relay on the module's (emptied) Redis, closed after the test."""
    async with Relay(redis_url) as r:
        yield r


@pytest.fixture
def registry() -> CollectorRegistry:
    """A Prometheus registry of the test's own."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ServerMetrics:
    """The server metrics, registered in the test's registry."""
    return ServerMetrics(registry)
