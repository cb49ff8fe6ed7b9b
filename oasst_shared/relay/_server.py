"""What the relay learns of a Redis server when it connects, and the Sentinel URL form.

* ``probe``: one ``INFO`` on a new connection (and ``CONFIG GET appendfsync`` where allowed):
  the server's ``run_id``, address and role, and whether its persistence covers a restart
  (``appendonly yes`` with ``appendfsync always``: a restart then loses nothing that was
  acknowledged). A Cluster node where a single Redis was expected (or the reverse) is refused.
* ``cluster_mode``: whether a server is a Cluster node (the first connection decides the
  relay's key layout from it).
* ``sentinel_pool``: ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
  as a redis-py Sentinel-managed pool, whose connections find the current master when they
  connect (so the relay follows a failover by reconnecting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import BusyLoadingError, ResponseError

from oasst_shared.relay._errors import RelayUnsupportedServerError

__all__ = ["SENTINEL_SCHEME", "ServerInfo", "cluster_mode", "probe", "sentinel_pool"]

SENTINEL_SCHEME: Final = "redis+sentinel"


@dataclass(frozen=True)
class ServerInfo:
    """One Redis server as a connection found it."""

    run_id: str
    """Changes whenever the server process restarts (and differs between servers)."""
    address: str
    """``host:port`` (or the socket path) the connection reached: a failover changes it."""
    role: str
    """``master`` or ``slave``."""
    durable: bool
    """Its persistence covers a restart: AOF with ``appendfsync always`` (False when unknown)."""


def _info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


async def probe(
    conn: AbstractConnection, *, op: str, key: str | None, cluster: bool = False
) -> ServerInfo | None:
    """``INFO`` on ``conn`` (just connected): None where ``INFO`` is not allowed. Raises
    ``RelayUnsupportedServerError`` for a Cluster node where a single Redis was expected
    (``cluster`` False: the relay chose its key layout for a single Redis) and for a single Redis
    where a Cluster node was, ``BusyLoadingError`` while the server loads its data (the caller
    connects again), a network error as it comes."""
    await conn.send_command("INFO")
    try:
        raw = await conn.read_response(disable_decoding=True)
    except ResponseError:
        return None  # an ACL without INFO: nothing is known of the server
    fields = _info_fields(bytes(raw).decode(errors="replace"))
    if fields.get("loading") == "1":
        # restarting: what it says of its persistence is not settled yet; connect again shortly
        raise BusyLoadingError("Redis is loading its data")
    host = getattr(conn, "host", None)
    address = f"{host}:{getattr(conn, 'port', '')}" if host else str(getattr(conn, "path", ""))
    is_cluster = fields.get("cluster_enabled") == "1"
    if is_cluster != cluster:
        raise RelayUnsupportedServerError(
            f"the Redis at {address} is a Redis Cluster node, and this relay set itself up for a "
            "single Redis when it first connected: make a new Relay"
            if is_cluster
            else f"the Redis at {address} is not a Redis Cluster node, and this relay runs on a cluster",
            key=key,
            operation=op,
        )
    durable = False
    if fields.get("aof_enabled") == "1":
        await conn.send_command("CONFIG", "GET", "appendfsync")
        try:
            reply = await conn.read_response(disable_decoding=True)
        except ResponseError:
            reply = None  # CONFIG not allowed (managed services): not known to be durable
        durable = isinstance(reply, list) and len(reply) == 2 and bytes(reply[1]) == b"always"
    return ServerInfo(
        run_id=fields.get("run_id", ""), address=address, role=fields.get("role", "master"), durable=durable
    )


async def cluster_mode(conn: AbstractConnection) -> bool:
    """Whether ``conn`` (just connected) reached a Redis Cluster node (``INFO cluster``). Raises
    ``BusyLoadingError`` while the server loads its data, a network error as it comes."""
    await conn.send_command("INFO", "cluster")
    try:
        raw = await conn.read_response(disable_decoding=True)
    except BusyLoadingError:
        raise
    except ResponseError:
        return False  # an ACL without INFO: only a single Redis is supported so
    return _info_fields(bytes(raw).decode(errors="replace")).get("cluster_enabled") == "1"


def sentinel_pool(url: str, *, connect_timeout: float, command_timeout: float) -> aioredis.ConnectionPool:
    """The pool of ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``:
    its connections ask the sentinels for the master of ``service`` each time they connect. The
    credentials are the data nodes' (the sentinels are asked without)."""
    rest = url[len(SENTINEL_SCHEME) + 3 :]
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts, userinfo = netloc, ""
    username, _, password = userinfo.partition(":") if ":" in userinfo else ("", "", userinfo)
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon:
            host, port = port, "26379"
        if not host or not port.isdigit():
            raise ValueError(f"bad sentinel address {part!r} in {SENTINEL_SCHEME} URL (want host:port)")
        nodes.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(
            f"a {SENTINEL_SCHEME} URL names the service and optionally the database: "
            f"{SENTINEL_SCHEME}://host:port[,host:port...]/service_name[/db]"
        )
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": command_timeout}
    make_sentinel: Any = Sentinel  # (untyped before redis-py 8.2, typed since: one call for both)
    sentinel = make_sentinel(nodes, sentinel_kwargs=dict(timeouts), **timeouts)
    client = sentinel.master_for(
        unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )
    pool: aioredis.ConnectionPool = client.connection_pool
    return pool
