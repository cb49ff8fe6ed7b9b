"""The FastAPI app: one ``Relay``, one Redis client for the chats, the metrics, the routes.

``create_app(settings)`` builds it; ``python -m examples.inference_server`` serves it on uvicorn.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from examples.inference_server import chats, workers
from examples.inference_server.settings import Settings
from examples.inference_server.state import State, state_of
from examples.inference_server.store import COMPAT_HASHES, ChatStore
from oasst_shared.model_configs import MODEL_CONFIGS
from oasst_shared.relay import Relay, work_queue_key
from oasst_shared.server import ServerMetrics, metrics_response

log = logging.getLogger("inference_server")

_METRICS: ServerMetrics | None = None


def process_metrics() -> ServerMetrics:
    """This process's metrics (registered once in the default registry)."""
    global _METRICS  # noqa: PLW0603  (one per process: Prometheus names register once)
    if _METRICS is None:
        _METRICS = ServerMetrics()
    return _METRICS


def create_app(settings: Settings) -> FastAPI:
    """The inference server's app for ``settings``."""
    metrics = process_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay = Relay(
            settings.redis_url,
            message_queue_expire=settings.message_queue_expire,
            work_queue_max_size=settings.work_queue_max_size,
        )
        # the chats' client: callers wait for a free connection rather than fail past 64, and a
        # command whose pooled connection the server closed (a restart, CLIENT KILL, an idle
        # timeout) runs again on a new one (a pool made here gets none of redis-py's default
        # retries; a transaction under WATCH is never resent: redis-py raises WatchError)
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=64,
            timeout=None,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), 3),
        )
        client = aioredis.Redis(connection_pool=pool)
        app.state.server = State(settings, relay, client, ChatStore(client), metrics)
        await client.ping()
        # the start-up heap out of the collector's way (see the server guide: steady latency), and
        # young collections less often: each connection keeps a few hundred objects alive (the
        # framework's middleware coroutines, tasks, buffers), which the default threshold of 700
        # allocations walks again and again (server_path benchmark, 256 chats at 20,000 tok/s:
        # 150 ms of collections per 51,200 tokens with 700, 35 ms with 10,000)
        gc.collect()
        gc.freeze()
        if settings.gc_threshold:
            gc.set_threshold(settings.gc_threshold, 10, 10)
        try:
            yield
        finally:
            await relay.aclose()
            await client.aclose()
            await pool.disconnect()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    app = FastAPI(title="oasst-shared example inference server", lifespan=lifespan)
    app.include_router(chats.router)
    app.include_router(workers.router)

    @app.get("/metrics")
    async def get_metrics(request: Request) -> Response:
        """Prometheus metrics (every process's, added up)."""
        state = state_of(request)
        seen = {h.decode() if isinstance(h, bytes) else h for h in await state.redis.smembers(COMPAT_HASHES)}
        hashes = sorted({c.compat_hash for c in MODEL_CONFIGS.values()} | seen)
        async with state.redis.pipeline(transaction=False) as pipe:
            for compat_hash in hashes:
                pipe.llen(work_queue_key(compat_hash))
            lengths = await pipe.execute()
        state.metrics.set_work_queue_lengths(zip(hashes, lengths, strict=True))
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    return app
