"""What the routes of one server process share (``app.state.server``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from examples.inference_server.settings import Settings
from examples.inference_server.store import ChatStore
from oasst_shared.relay import Relay
from oasst_shared.server import ServerMetrics


@dataclass
class State:
    """The process's relay, Redis client, chat store, metrics and settings."""

    settings: Settings
    relay: Relay
    redis: aioredis.Redis
    store: ChatStore
    metrics: ServerMetrics
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on SIGTERM: the worker connections take no more work (``serve.DrainingServer``)."""
    workers: set[Any] = field(default_factory=set)
    """The worker connections of this process (``workers.WorkerHandler``)."""

    def requests_in_flight(self) -> int:
        """Requests the worker connections of this process have sent and not seen end."""
        return sum(len(w.conn) for w in self.workers)


def state_of(request_or_websocket: Any) -> State:
    """The ``State`` of the app serving a request or websocket."""
    state: State = request_or_websocket.app.state.server
    return state
