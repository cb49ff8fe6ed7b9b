"""The inference server's token relay over Redis (extra ``redis``): ``pip install 'oasst-shared[redis]'``.

Workers' responses travel from the server process holding the worker's websocket to the one
holding the browser's event stream through Redis lists, with the reference inference server's
keys and values (``message:{message_id}`` lists of ``WorkerResponse`` JSON documents expiring
``message_queue_expire`` seconds after a push; ``work:{compat_hash}`` queues with the
``ctr_enq:``/``ctr_deq:`` counters and ``pos:{message_id}`` positions), so reference server
processes and these can share one Redis:

    from oasst_shared.relay import Relay

    async with Relay("redis://127.0.0.1:6379/0") as relay:
        await relay.publish(message_id, frame)              # worker side: bytes or a struct
        async for response in relay.stream(message_id):     # browser side: until terminal
            ...

        pub = relay.publisher()                             # worker side, per connection:
        for frame in frames_of_one_read:                    # no round trip awaited per frame
            pub.send(message_id, frame)
        await pub.drain()                                   # earlier failures; flow control

Every publish of an event-loop iteration goes to Redis in one round trip (group commit), and
one reader per relay drains every local stream's queue in one round trip per round; the
reader's own backup list makes a lost reply lose nothing. Servers: Redis >= 6.2 or Valkey;
tested on Redis 6.2 and 7.0 and on Valkey 8.0. Runs on a Redis Cluster too (a URL naming any
node, or ``redis://host:port,host:port``): its keys then carry a shard's hash tag
(``message:{r7}<id>``: the server guide's "Redis Cluster"). asyncio only
(redis-py's asyncio client does not run on trio). This package is the only part of
``oasst_shared`` that imports redis. The design, its measurements, the key layout and the
limits are in the server guide (``docs/guides/server.md``).
"""

from __future__ import annotations

from oasst_shared._optional import require

require("redis.asyncio", extra="redis", needed_by="oasst_shared.relay (redis-py, with hiredis)")

from oasst_shared.relay._errors import (  # noqa: E402  (after the check, which names the extra)
    QueueFullError,
    RelayConnectionError,
    RelayDataLossError,
    RelayDecodeError,
    RelayError,
    RelayFrameError,
    RelayOutOfMemoryError,
    RelayPublishError,
    RelayResponseError,
    RelayStalledError,
    RelayTimeoutError,
    RelayUnsupportedServerError,
)
from oasst_shared.relay._keys import message_queue_key, work_queue_key  # noqa: E402
from oasst_shared.relay._publish import DEFAULT_PUBLISHER_LIMIT, Publisher  # noqa: E402
from oasst_shared.relay._relay import (  # noqa: E402
    DEFAULT_MESSAGE_QUEUE_EXPIRE,
    DEFAULT_MESSAGE_QUEUE_MAX_LENGTH,
    DEFAULT_STREAM_BUFFER,
    DEFAULT_WORK_QUEUE_MAX_SIZE,
    TERMINAL_RESPONSE_TYPES,
    Relay,
)
from oasst_shared.relay._subscription import Subscription  # noqa: E402
from oasst_shared.relay._work import QueuePosition  # noqa: E402

__all__ = [
    "DEFAULT_MESSAGE_QUEUE_EXPIRE",
    "DEFAULT_MESSAGE_QUEUE_MAX_LENGTH",
    "DEFAULT_PUBLISHER_LIMIT",
    "DEFAULT_STREAM_BUFFER",
    "DEFAULT_WORK_QUEUE_MAX_SIZE",
    "TERMINAL_RESPONSE_TYPES",
    "Publisher",
    "QueueFullError",
    "QueuePosition",
    "Relay",
    "RelayConnectionError",
    "RelayDataLossError",
    "RelayDecodeError",
    "RelayError",
    "RelayFrameError",
    "RelayOutOfMemoryError",
    "RelayPublishError",
    "RelayResponseError",
    "RelayStalledError",
    "RelayTimeoutError",
    "RelayUnsupportedServerError",
    "Subscription",
    "message_queue_key",
    "work_queue_key",
]
