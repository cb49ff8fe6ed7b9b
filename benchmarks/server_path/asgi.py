"""The same endpoints on uvicorn + Starlette, to weigh the framework against the raw server.

``python -m benchmarks.server_path.server asgi-<variant> REDIS_URL`` serves the variant's
handlers (``server.VARIANTS``) through an ASGI app on uvicorn, as the reference inference server
does (FastAPI on uvicorn): the worker websocket through uvicorn's ``websockets-sansio`` protocol, the
event stream as a ``StreamingResponse`` (HTTP/1.1 chunked). By default on the stack the reference
deploys (its ``fastapi[all]`` brings ``uvicorn[standard]``: uvloop, httptools), or with
``OASST_BENCH_UVICORN=plain`` on asyncio's loop and ``h11`` (``STACKS``). A variant's stream
handler writes into a queue that the response's body iterator drains, all that is ready at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from benchmarks.server_path.server import GC_PAUSES, VARIANTS, freeze_start_up_heap

STACKS: dict[str, dict[str, str]] = {
    # what the reference deploys (fastapi[all] brings uvicorn[standard]) and uvicorn's "auto" picks
    "standard": {"loop": "uvloop", "http": "httptools", "ws": "websockets-sansio"},
    # uvicorn without its "standard" extra: the asyncio loop and the pure-Python HTTP parser
    "plain": {"loop": "asyncio", "http": "h11", "ws": "websockets-sansio"},
}
"""The uvicorn stacks a run may measure (``OASST_BENCH_UVICORN``, default ``standard``)."""


def uvicorn_stack() -> str:
    """The stack of this run: ``OASST_BENCH_UVICORN`` (``standard`` or ``plain``)."""
    name = os.environ.get("OASST_BENCH_UVICORN", "standard")
    if name not in STACKS:
        raise SystemExit(f"OASST_BENCH_UVICORN={name!r}: expected one of {', '.join(STACKS)}")
    return name


def uvicorn_protocols() -> dict[str, str]:
    """``uvicorn.Config``'s ``http`` and ``ws`` for this run's stack."""
    stack = STACKS[uvicorn_stack()]
    return {"http": stack["http"], "ws": stack["ws"]}


def run_on_stack(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` on the event loop of this run's stack (uvloop or asyncio's own)."""
    if STACKS[uvicorn_stack()]["loop"] == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


async def serve(variant_name: str, redis_url: str, port: int = 0) -> None:
    """Run uvicorn with the variant's handlers until SIGTERM; prints ``PORT <n>`` when ready."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    variant = VARIANTS[variant_name](redis_url)
    await variant.start()
    freeze_start_up_heap()

    async def work(ws: WebSocket) -> None:
        await ws.accept()
        session = variant.worker_session()
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                await session.on_frames([data if data is not None else msg["text"].encode()])
        finally:
            await session.close()

    async def stream(request: Request) -> StreamingResponse:
        message_id = request.path_params["message_id"]
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                await variant.stream(message_id, queue.put_nowait)
            finally:
                queue.put_nowait(None)

        async def body() -> AsyncIterator[bytes]:
            task = asyncio.ensure_future(produce())
            try:
                while True:
                    item = await queue.get()
                    parts = []
                    while item is not None:
                        parts.append(item)
                        if queue.empty():
                            break
                        item = queue.get_nowait()
                    if parts:
                        yield b"".join(parts)
                    if item is None:
                        return
            finally:
                task.cancel()

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    app = Starlette(
        routes=[
            WebSocketRoute("/work", work),
            Route("/chat/{message_id}/stream", stream),
            Route("/stats", stats),
        ]
    )
    try:
        await serve_app(app, port)
    finally:
        with contextlib.suppress(Exception):
            await variant.stop()


async def stats(request: Any) -> Any:
    """``GET /stats``: this process's CPU time and GC pauses (what the load process reads)."""
    from starlette.responses import JSONResponse

    return JSONResponse({"cpu": time.process_time(), **GC_PAUSES.take()})


async def serve_app(app: Any, port: int = 0) -> None:
    """Serve ``app`` on uvicorn (this run's stack) on 127.0.0.1 until SIGTERM; prints
    ``PORT <n>`` once it listens."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        **uvicorn_protocols(),
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)  # handles SIGTERM itself
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
