"""The example inference server (``examples/inference_server``) as the measured process.

``python -m benchmarks.server_path.server asgi-app REDIS_URL`` serves ``create_app`` on uvicorn
(on the same stack as ``asgi.py``: ``OASST_BENCH_UVICORN``) with one route added,
``GET /stats`` (this process's CPU time and GC pauses, as every variant has), and prints
``PORT <n>`` once ready. ``app_load.py`` drives it through the app's own endpoints.
"""

from __future__ import annotations

from benchmarks.server_path.asgi import serve_app, stats


async def serve(redis_url: str, port: int = 0) -> None:
    """Run uvicorn with the example app until SIGTERM; prints ``PORT <n>`` when ready (the app's
    lifespan freezes the start-up heap)."""
    from examples.inference_server.app import create_app
    from examples.inference_server.settings import Settings

    app = create_app(Settings(redis_url=redis_url, api_keys=("bench-key",)))
    app.add_route("/stats", stats)
    await serve_app(app, port)
