"""What the reader knows of its Redis (reachable, answering, the same server as before), and the
errors a stream ends with when that knowledge says it cannot go on without a hole.

* **Unreachable.** From the first failed connection or round (``went_down``) until a reply
  (``answered``). A stream waiting meanwhile ends with ``RelayConnectionError`` once Redis has
  been unreachable for the relay's ``retry_timeout`` (``gave_up``), or at once when the failure
  is one that waiting does not mend (credentials refused, a Cluster node).
* **Stalled.** A round trip that has not come back for longer than it may block.
* **Another server.** Each connection's ``ServerInfo`` is compared with the last one's
  (``loss``): a changed ``run_id`` at the same address is a restart, which loses what was not
  persisted unless the old server wrote every command to its AOF (``appendfsync always``); a
  changed address is a failover, which may lose or repeat what the promoted replica had not yet
  replicated. Either way, every stream open across it ends with ``RelayDataLossError``.
"""

from __future__ import annotations

import time
from typing import Final

from redis.exceptions import AuthenticationError, RedisError

from oasst_shared.relay._errors import (
    RelayConnectionError,
    RelayError,
    RelayStalledError,
    RelayTimeoutError,
    RelayUnsupportedServerError,
)
from oasst_shared.relay._link import NETWORK_ERRORS
from oasst_shared.relay._server import ServerInfo

__all__ = ["STALL_AFTER", "Health", "permanent"]

STALL_AFTER: Final = 0.5
"""Seconds past its longest legitimate wait after which a round trip counts as stalled."""


def permanent(exc: RelayConnectionError) -> bool:
    """Whether waiting cannot mend ``exc``: credentials or the handshake refused, an unusable server."""
    if isinstance(exc, RelayUnsupportedServerError):
        return True
    cause = exc.__cause__  # a refusal (credentials, the handshake), not a network failure
    refused = isinstance(cause, RedisError) and not isinstance(cause, NETWORK_ERRORS)
    return refused or isinstance(cause, AuthenticationError)  # (redis-py's is a ConnectionError)


class Health:
    """The reader's view of its Redis. ``retry_window``: how long it may be unreachable before
    the streams waiting on it end."""

    def __init__(self, retry_window: float) -> None:
        self.retry_window = retry_window
        self.down_since: float | None = None
        """Since when (``time.monotonic``) Redis has been unreachable for the reader, or None."""
        self.last_error: BaseException | None = None
        self._round_started: float | None = None
        self._round_may_block = 0.0
        self._server: ServerInfo | None = None

    def went_down(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.last_error = exc

    def answered(self) -> None:
        self.down_since = None

    def gave_up(self, exc: RelayConnectionError) -> RelayConnectionError | None:
        """The error to end every waiting stream with, once ``exc`` (a failed connection) is
        permanent or Redis has been unreachable for the retry window; else None."""
        down = 0.0 if self.down_since is None else time.monotonic() - self.down_since
        if not permanent(exc) and down < self.retry_window:
            return None
        cls = type(exc) if isinstance(exc, RelayUnsupportedServerError) else RelayConnectionError
        return cls(
            f"Redis unreachable for {down:.1f} s: {exc.detail}", key=None, operation="stream (connect)"
        )

    def round_began(self, may_block: float) -> None:
        self._round_started = time.monotonic()
        self._round_may_block = may_block

    def round_ended(self) -> None:
        self._round_started = None

    def stalled_for(self) -> float:
        """How long the round trip in flight has outlasted its longest legitimate wait."""
        if self._round_started is None:
            return 0.0
        return max(0.0, time.monotonic() - self._round_started - self._round_may_block)

    def loss(self, server: ServerInfo | None, *, moved: bool = False) -> str | None:
        """``server`` is what a new connection found: why frames may have been lost since the
        last connection (None: nothing was lost, or nothing is known). ``moved``: the last server
        said the keys moved to another master with their data (a Redis Cluster slot migration,
        not a failover: that server is still a master), so another server is expected."""
        before, self._server = self._server, server if server is not None else self._server
        if moved or before is None or server is None or server.run_id == before.run_id:
            return None
        if server.address != before.address:
            return (
                f"Redis failed over from {before.address} to {server.address}: the promoted replica "
                "may lack frames (or hold frames already read), as replication is asynchronous"
            )
        if before.durable:
            return None  # it wrote every command to its AOF before answering: the restart kept it all
        return (
            f"Redis at {server.address} restarted (run_id {before.run_id[:8]} -> {server.run_id[:8]}) "
            "without persistence that covers it (appendonly yes, appendfsync always): frames "
            "pushed since its last save are lost"
        )

    def timeout_error(self, key: str, waited: float) -> RelayError:
        """The error of a stream that got no frame for ``waited`` seconds, saying why."""
        if self.down_since is not None:
            down = time.monotonic() - self.down_since
            return RelayConnectionError(
                f"no frame for {waited:g} s: Redis unreachable for {down:.1f} s ({self.last_error})",
                key=key,
                operation="stream",
            )
        stalled = self.stalled_for()
        if stalled > STALL_AFTER:
            return RelayStalledError(
                f"no frame for {waited:g} s: Redis has not answered the reader for {stalled:.1f} s",
                key=key,
                operation="stream",
                waited=waited,
                stalled=stalled,
            )
        return RelayTimeoutError(f"no frame for {waited:g} s", key=key, operation="stream", waited=waited)
