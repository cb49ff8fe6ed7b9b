"""The example inference server (``examples/inference_server``) as the measured process.

``python -m benchmarks.server_path.server asgi-app REDIS_URL`` serves ``create_app`` on uvicorn
(on the same stack as ``asgi.py``: ``OASST_BENCH_UVICORN``) with one route added,
``GET /stats`` (this process's CPU time and GC pauses, as every variant has), and prints
``PORT <n>`` once ready. ``app_load.py`` drives it through the app's own endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks.server_path.asgi import uvicorn_protocols
from benchmarks.server_path.server import GC_PAUSES


async def serve(redis_url: str, port: int = 0) -> None:
    """Run uvicorn with the example app until SIGTERM; prints ``PORT <n>`` when ready."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from examples.inference_server.app import create_app
    from examples.inference_server.settings import Settings

    app = create_app(Settings(redis_url=redis_url, api_keys=("bench-key",)))

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"cpu": time.process_time(), **GC_PAUSES.take()})

    app.add_route("/stats", stats)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        **uvicorn_protocols(),
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)  # handles SIGTERM itself; the app's lifespan freezes the heap
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.01)
    sockets: Any = server.servers[0].sockets
    print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await task
