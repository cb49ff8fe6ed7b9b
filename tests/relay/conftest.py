"""Fixtures for the relay tests: a real redis-server and relays on it (the shared ones in
tests/support/relay_fixtures.py; asyncio only), and a Redis of a test's own for fault tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, running_redis
from tests.support.relay_fixtures import anyio_backend, redis_cluster, redis_server, redis_url, relay

__all__ = ["anyio_backend", "own_redis", "redis_cluster", "redis_server", "redis_url", "relay"]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own (never the external one), persisting to an append-only file:
    for fault tests that stop, kill, pause and restart it."""
    with running_redis(use_env=False, persist=True) as srv:
        yield srv
