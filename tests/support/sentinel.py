"""A Redis master, one replica and three sentinels on 127.0.0.1, all ``redis-server`` processes of
the binary the tests use (the sentinels run it with ``--sentinel``), for failover tests::

    with running_sentinels() as ha:
        relay = Relay(ha.url)              # redis+sentinel://127.0.0.1:p1,...,p3/mymaster
        ha.kill_master()                   # SIGKILL: the sentinels promote the replica
        ha.wait_failover()                 # returns once they name the new master
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.redis_server import RedisServer, _free_port, redis_server_binary

__all__ = ["SentinelSet", "running_sentinels"]

SERVICE = "mymaster"


def _ask(port: int, *args: str) -> bytes:
    """One command to 127.0.0.1:``port`` over a raw socket; the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            parts.append(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()))
        s.sendall(b"".join(parts))
        time.sleep(0.01)
        return s.recv(65536)


class SentinelSet:
    """The master, the replica and the sentinels; ``url`` names them for ``Relay``."""

    def __init__(self, *, down_after_ms: int = 1000) -> None:
        self.master = RedisServer()
        assert self.master.port is not None
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self._down_after_ms = down_after_ms
        self._dir = tempfile.mkdtemp(prefix="oasst-sentinel-")
        self.sentinel_ports = [_free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        self.url = f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self._dir, f"sentinel-{i}.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(
                    f"port {port}\nbind 127.0.0.1\ndir {self._dir}\n"
                    f"logfile {os.path.join(self._dir, f'sentinel-{i}.log')}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {self._down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 5000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n"
                )
            self._sentinels.append(
                subprocess.Popen(
                    [redis_server_binary(), conf, "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self._wait(self._ready, 20, "the replica in sync and every sentinel seeing the others")

    def _ready(self) -> bool:
        assert self.replica.port is not None
        if b"master_link_status:up" not in _ask(self.replica.port, "INFO", "replication"):
            return False
        for port in self.sentinel_ports:
            try:
                info = _ask(port, "SENTINEL", "MASTER", SERVICE)
            except OSError:
                return False
            if b"num-other-sentinels\r\n:2" not in info and b"num-other-sentinels\r\n$1\r\n2" not in info:
                return False
        return True

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                reply = _ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            except OSError:
                continue
            parts = reply.split(b"\r\n")
            if len(parts) >= 5:
                return int(parts[4])
        return None

    def kill_master(self) -> None:
        """SIGKILL the master (a crash)."""
        self.master.stop(kill=True)

    def wait_failover(self, timeout: float = 30.0) -> float:
        """Wait until the sentinels name the replica as the master; the seconds it took."""
        started = time.monotonic()
        self._wait(lambda: self.master_port() == self.replica.port, timeout, "the failover")
        return time.monotonic() - started

    @staticmethod
    def _wait(ok: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ok():  # type: ignore[operator]
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        for proc in self._sentinels:
            proc.kill()
            proc.wait(timeout=10)
        self._sentinels.clear()
        self.replica.close()
        self.master.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def running_sentinels(*, down_after_ms: int = 1000) -> Iterator[SentinelSet]:
    """A master, a replica and three sentinels, started and ready; stopped on exit."""
    ha = SentinelSet(down_after_ms=down_after_ms)
    try:
        ha.start()
        yield ha
    finally:
        ha.close()
