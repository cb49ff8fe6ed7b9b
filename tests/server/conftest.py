"""Fixtures for the server pieces' tests: a real redis-server and a relay on it (the shared ones in
tests/support/relay_fixtures.py), and metrics in a registry of the test's own.

asyncio only, as the relay (redis-py's asyncio client does not run on trio).
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from oasst_shared.server import ServerMetrics
from tests.support.relay_fixtures import anyio_backend, redis_server, redis_url, relay

__all__ = ["anyio_backend", "metrics", "redis_server", "redis_url", "registry", "relay"]


@pytest.fixture
def registry() -> CollectorRegistry:
    """A Prometheus registry of the test's own."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ServerMetrics:
    """The server metrics, registered in the test's registry."""
    return ServerMetrics(registry)
