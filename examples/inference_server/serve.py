"""One server process: uvicorn serving the app on a socket the supervisor bound.

``serve_process`` is the target of each process ``__main__`` starts; it puts its pid on the
``ready`` queue once uvicorn has started (the lifespan ran: Redis answered), and returns when
uvicorn has shut down (SIGTERM or SIGINT: ``DrainingServer`` drains, then uvicorn stops).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from examples.inference_server.settings import Settings
from examples.inference_server.state import State

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

log = logging.getLogger("inference_server")


def _draining_server_class() -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn, draining on SIGTERM/SIGINT before it shuts down.

        The first signal starts the drain: the worker connections take no more work, and the
        answers in progress get ``drain_timeout`` seconds to finish. Then uvicorn shuts down as
        usual: it stops listening and closes the worker websockets (1012: an answer still in
        progress ends with an ``error`` event, one not started goes back to its queue); the
        relay is closed, which ends the event streams still open with an ``error`` event. A
        second SIGINT exits at once (a second SIGTERM is ignored while draining).
        """

        def __init__(
            self, config: uvicorn.Config, drain_timeout: float, app: Any, on_started: Callable[[], None]
        ) -> None:
            super().__init__(config)
            self.app = app
            self.drain_timeout = drain_timeout
            self.on_started = on_started
            self._loop: asyncio.AbstractEventLoop | None = None
            self._draining = False

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets=sockets)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)  # (the lifespan ran: Redis answered)
            if self.started:
                self.on_started()

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self._loop is None or (self._draining and sig == signal.SIGINT) or self.should_exit:
                super().handle_exit(sig, frame)
                return
            if not self._draining:
                self._draining = True
                self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

        async def _drain(self) -> None:
            state: State = self.app.state.server
            loop = asyncio.get_running_loop()
            state.draining.set()
            deadline = loop.time() + self.drain_timeout
            log.info("draining: %d answers in progress", state.requests_in_flight())
            while state.requests_in_flight() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if state.requests_in_flight():
                log.warning("drain timeout: %d answers still in progress end now", state.requests_in_flight())
            self.should_exit = True  # uvicorn closes the worker sockets: what is left is aborted
            deadline = loop.time() + 2
            while state.workers and loop.time() < deadline:
                await asyncio.sleep(0.05)
            await state.relay.aclose()  # event streams still open end with an error event

    return DrainingServer


def serve_process(  # noqa: PLR0917  (a Process target: positional arguments)
    settings: Settings,
    sock: socket.socket,
    ready: Any,
    log_level: str,
    drain_timeout: float,
    access_log: bool,
) -> None:
    """Serve until SIGTERM/SIGINT (run in a process of its own)."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    import uvicorn

    from examples.inference_server.app import create_app

    app = create_app(settings)
    # uvicorn's own choice of event loop, HTTP parser and websocket protocol: uvloop and httptools
    # where installed (uvicorn[standard], as the reference deploys), else asyncio and h11
    config = uvicorn.Config(
        app,
        log_config=None,  # (logging is set up above)
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=3,  # (after the drain: the streams' last events)
        backlog=4096,
    )
    server = _draining_server_class()(config, drain_timeout, app, lambda: ready.put(os.getpid()))
    server.run(sockets=[sock])  # on the event loop the config names
    if not server.started:
        sys.exit(3)
