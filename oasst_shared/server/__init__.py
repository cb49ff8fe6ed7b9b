"""ASGI pieces for an inference server on the relay (extra ``server``):
``pip install 'oasst-shared[server]'`` (Starlette, prometheus-client, and the ``redis`` extra).

Usable from any Starlette or FastAPI app:

- ``EventStreamResponse``: Server-Sent Events from an async iterator of chunks, one ASGI
  ``send`` per chunk, comment pings, a send timeout, the headers proxies need; on client
  disconnect it closes the iterator, so a relay subscription gives back what it had not taken.
- ``message_event_chunks``: one assistant message's queue as the reference's chat events
  (``pending``, ``token``, ``plugin_intermediate``, then ``message`` or ``error``), one chunk per
  relay batch: the body of an ``EventStreamResponse``.
- ``WorkerConnection``: a worker websocket's receive loop into the relay's ``Publisher``,
  routing each frame only to the message its connection dispatched the request for.
- ``ServerMetrics``, ``metrics_endpoint``: Prometheus metrics of the token path
  (``oasst_tokens_relayed_total``, ``oasst_time_to_first_token_seconds``, ...), added up over
  processes in prometheus-client's multiprocess mode.

    from fastapi import FastAPI
    from oasst_shared.server import EventStreamResponse, message_event_chunks

    @app.get("/chats/{chat_id}/messages/{message_id}/events")
    async def events(chat_id: str, message_id: str) -> EventStreamResponse:
        return EventStreamResponse(message_event_chunks(relay, message_id, compat_hash))

asyncio only (the relay is). The library never configures logging; it logs to the
``oasst_shared.server`` logger. ``examples/inference_server`` is a whole server built on these.
"""

from __future__ import annotations

from oasst_shared._optional import require

require("starlette", extra="server", needed_by="oasst_shared.server (Starlette)")
require("prometheus_client", extra="server", needed_by="oasst_shared.server (prometheus-client)")
require("redis.asyncio", extra="server", needed_by="oasst_shared.server (the relay: redis-py)")

from oasst_shared.server._events import (  # noqa: E402  (after the checks, which name the extra)
    DEFAULT_PENDING_INTERVAL,
    ErrorResponseEvent,
    MessageResponseEvent,
    PendingResponseEvent,
    PluginIntermediateResponseEvent,
    SafePromptResponseEvent,
    TokenResponseEvent,
    message_event_chunks,
)
from oasst_shared.server._metrics import ServerMetrics, TokenTally, metrics_response  # noqa: E402
from oasst_shared.server._response import (  # noqa: E402
    DEFAULT_PING_INTERVAL,
    DEFAULT_SEND_TIMEOUT,
    EventStreamResponse,
)
from oasst_shared.server._routes import metrics_endpoint  # noqa: E402
from oasst_shared.server._worker import DispatchedRequest, WorkerConnection  # noqa: E402

__all__ = [
    "DEFAULT_PENDING_INTERVAL",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_SEND_TIMEOUT",
    "DispatchedRequest",
    "ErrorResponseEvent",
    "EventStreamResponse",
    "MessageResponseEvent",
    "PendingResponseEvent",
    "PluginIntermediateResponseEvent",
    "SafePromptResponseEvent",
    "ServerMetrics",
    "TokenResponseEvent",
    "TokenTally",
    "WorkerConnection",
    "message_event_chunks",
    "metrics_endpoint",
    "metrics_response",
]
