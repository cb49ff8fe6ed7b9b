"""``Connector``: how the relay makes its connections (the caller's client's or URL's settings,
with redis-py's retries off and replies left undecoded), where to (one server, or the owner of a
Redis Cluster slot: ``_cluster.ShardConnector``), and whether the relay is still open."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from oasst_shared.relay._errors import RelayError
from oasst_shared.relay._server import SENTINEL_SCHEME, sentinel_pool

__all__ = ["Connector", "ConnectorState"]


class Connector:
    """How the relay makes its connections (the settings of the caller's client or URL, with
    redis-py's retries off and replies left undecoded), and whether the relay is still open."""

    def __init__(
        self,
        redis_or_url: aioredis.Redis | RedisCluster | str,
        *,
        connect_timeout: float,
        command_timeout: float,
        retry_timeout: float,
    ) -> None:
        pool: aioredis.ConnectionPool | None = None
        self.startup: list[tuple[str, int]] = []
        """A cluster client's startup nodes (empty for anything else)."""
        if isinstance(redis_or_url, RedisCluster):
            # its nodes' connection settings (ClusterNode passes these to each connection)
            manager = redis_or_url.nodes_manager
            raw = dict(manager.connection_kwargs)
            self.connection_class: type[AbstractConnection] = raw.pop("connection_class", Connection)
            accepted = _init_parameters(self.connection_class)
            settings = {k: v for k, v in raw.items() if k in accepted}
            self.startup = [(node.host, int(node.port)) for node in manager.startup_nodes.values()]
        elif isinstance(redis_or_url, str) and redis_or_url.startswith(SENTINEL_SCHEME + "://"):
            pool = sentinel_pool(
                redis_or_url, connect_timeout=connect_timeout, command_timeout=command_timeout
            )
        elif isinstance(redis_or_url, str):
            pool = aioredis.ConnectionPool.from_url(redis_or_url)
        elif isinstance(redis_or_url, aioredis.Redis):
            pool = redis_or_url.connection_pool
        else:
            raise TypeError(
                "Relay needs a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster client or a "
                f"URL, got {type(redis_or_url).__name__}"
            )
        self._pool = pool  # a Sentinel-managed pool's connections refer to it (weakly)
        if pool is not None:
            self.connection_class = pool.connection_class
            settings = dict(pool.connection_kwargs)
        kwargs = {
            k: v for k, v in settings.items() if not k.startswith(("maint_notifications", "oss_cluster"))
        }
        kwargs.update(
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
            protocol=2,
            socket_connect_timeout=connect_timeout,
        )
        _share_driver_info(kwargs, self.connection_class)
        self.kwargs = kwargs
        self.command_timeout = command_timeout
        """Longest wait for a non-blocking command's reply."""
        self.retry_timeout = retry_timeout
        """How long a command whose connection was refused or reset before sending is retried."""
        self.state = ConnectorState()
        """Shared with the connectors derived from this one (a cluster's shards)."""

    cluster: bool = False
    """Whether the connections go to Redis Cluster nodes (``_cluster.ShardConnector``)."""

    @property
    def closed(self) -> bool:
        """Set by the relay's ``aclose``: no connection is made or reused from then on."""
        return self.state.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self.state.closed = value

    def check_open(self, op: str, key: str | None) -> None:
        if self.state.closed:
            raise RelayError("the relay is closed", key=key, operation=op)

    def new_connection(self, *, blocking: bool) -> AbstractConnection:
        """A new, unconnected connection; a blocking one has no reply timeout (``BLPOP``)."""
        kwargs = dict(self.kwargs)
        kwargs["socket_timeout"] = None if blocking else self.command_timeout
        return self.connection_class(**kwargs)

    def connection_to(self, address: tuple[str, int], *, blocking: bool = False) -> AbstractConnection:
        """A new, unconnected connection with these settings to another node (a cluster's)."""
        kwargs = dict(self.kwargs)
        kwargs.update(host=address[0], port=address[1])
        kwargs["socket_timeout"] = None if blocking else self.command_timeout
        kwargs.pop("path", None)
        return self.connection_class(**kwargs)

    async def locate(self, *, op: str, key: str | None) -> None:
        """Before connecting: learn where to (a cluster's slot map)."""

    async def unreachable(self, *, op: str, key: str | None) -> None:
        """A connection failed: where to connect may have changed (a cluster's failover)."""

    def redirected(self, exc: ResponseError) -> bool:
        """Whether ``exc`` is a cluster's answer that the command was not run here (``MOVED``,
        ``ASK``, ``TRYAGAIN``, ``CLUSTERDOWN``) and may be sent again after a pause."""
        return False


def _share_driver_info(kwargs: dict[str, Any], connection_class: type) -> None:
    """Give every connection one ``DriverInfo`` (what ``CLIENT SETINFO`` sends), made once.

    A pool made from a URL has none in its settings, and redis-py 8 then builds one per
    connection, reading the installed package's metadata from disk each time (about a
    millisecond: a worker's first ``dequeue_work`` connects). redis-py < 8 has no ``DriverInfo``
    and reads its version once, at import."""
    if {"driver_info", "lib_name", "lib_version"} & kwargs.keys():
        return  # the caller's client chose
    try:
        module = importlib.import_module("redis.driver_info")
    except ImportError:
        return
    if "driver_info" in _init_parameters(connection_class):
        kwargs["driver_info"] = module.DriverInfo()


@functools.cache
def _init_parameters(cls: type) -> frozenset[str]:
    """The keyword arguments the ``__init__`` methods of ``cls`` and its bases name."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return frozenset(names - {"self", "args", "kwargs"})


class ConnectorState:
    """What the connectors of one relay share: whether it is closed."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False
