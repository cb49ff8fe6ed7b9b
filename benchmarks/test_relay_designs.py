"""The relay design measurements (``python -m benchmarks.relay_designs``) still run, once, small:
each design delivers every token of every stream (``measure`` checks the count), so the
alternative built from the relay's parts keeps working as those parts change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks import relay_designs
from tests.support.redis_server import RedisServer, running_redis


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with running_redis() as srv:
        yield srv


@pytest.mark.parametrize("design", ["per-message", "relay-pipelined", "relay"])
def test_every_design_delivers_every_token(server: RedisServer, design: str) -> None:
    server.flushall()
    result = relay_designs.measure(design, server.url, 8, 40)
    assert result["cpu_us_per_token"] > 0 and result["tokens_per_s"] > 0
