"""What the blocking facade (``OasstApiClientSync``) adds around the async client.

The facade owns one event loop, run by an anyio blocking portal in a daemon thread, and one
``OasstApiClient`` living in that loop. Each blocking method hands the async method to the
portal and waits for its result, so retries, timeouts, limits, decoding and errors are the
async client's own: the facade has no request logic of its own.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

if TYPE_CHECKING:
    from oasst_shared.api_client._client import OasstApiClient

T = TypeVar("T")


def _shutdown(stack: contextlib.ExitStack, portal: BlockingPortal, client: OasstApiClient) -> None:
    """Close the async client in its loop, then stop the loop and join its thread.

    Runs once: from ``close()``, when the facade is garbage collected, or at interpreter exit.
    """
    with contextlib.suppress(Exception):  # whatever closing raised, the loop must stop
        portal.call(client.close)
    with contextlib.suppress(RuntimeError):  # e.g. collected on the loop's own thread
        stack.close()


class SyncClientBase:
    """Owns the loop thread and the async client; see ``OasstApiClientSync``."""

    def __init__(self, make_client: Callable[[], OasstApiClient]) -> None:
        stack = contextlib.ExitStack()
        portal = stack.enter_context(start_blocking_portal("asyncio", name="oasst-api-client"))
        try:
            # Built on the loop's thread, where every later use of it happens.
            client = portal.call(make_client)
        except BaseException:
            stack.close()
            raise
        self._portal = portal
        self._client = client
        # Calling a finalizer is atomic and runs its function once, whoever calls it first.
        self._finalizer = weakref.finalize(self, _shutdown, stack, portal, client)

    @property
    def client(self) -> OasstApiClient:
        """The async client behind this facade (its settings: ``backend_url``, ``timeout``...).

        Its coroutines belong to the facade's loop thread; from other code use the blocking
        methods.
        """
        return self._client

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self._finalizer.alive:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return self._portal.call(call)

    def close(self) -> None:
        """Close the HTTP session and stop the loop thread. Safe to call more than once;
        call it (or use ``with``) after the last request has returned."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._client).replace(type(self._client).__name__, type(self).__name__, 1)
