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

Design, chosen by measurement (``python -m tests.relay.measure_designs``: 64 streams x 300
tokens in one process, publishers awaiting each publish, this process's CPU per token on a
2-core machine): the reference's pattern (``RPUSH`` + ``EXPIRE`` per token, a ``BLPOP`` per
token) about 140 us; group commit and one reader with pipelines of ``RPUSH``/``LPOP key count``
about 23 us; the same with one script call per flush and per drain (what is built) about 8.5 us.
The reader's rounds were then shaped by the server path benchmark (``benchmarks/server_path``)
at low load, where a round that drained and blocked on every open stream cost more per token
than the frames it carried.

* **Group commit.** ``publish`` appends to the current batch and awaits it; one flusher task
  sends every publish of an event-loop iteration (any number of queues) in one ``EVALSHA`` of a
  script that ``RPUSH``es each queue's frames and sets its ``EXPIRE`` once. Publishes made while
  a round trip is in flight form the next batch. One round trip at a time keeps each queue's
  frames in publish order. A ``Publisher`` (``relay.publisher()``) puts frames in the same
  batches without a future or a wake-up per frame: ``send`` returns at once, ``drain`` raises
  the first failure of its frames and waits only above its ``limit`` of frames in flight,
  ``flush`` waits for all. After a failure its frames queued behind it are withdrawn, so each
  queue holds a prefix of what it sent. In the server path benchmark, a worker handler awaiting
  ``publish`` per frame cost the server 15.6 us per token at saturation; sending through a
  publisher and draining once per websocket read, 2.7 us (the transport alone: 1.9 us).
* **One reader per relay.** A single task serves every local stream, one round trip per round,
  sized by the frames rather than the open streams. While frames pile up on some keys ("hot":
  more than one frame when last drained), a round is one ``EVALSHA`` popping those keys
  (``LPOP key count``), streams opened since the last round, and a rotating slice of 64 other
  keys. Otherwise a round drains every key with one script call sent as bytes packed once per
  change of the stream set, which checks idle keys 32 per ``EXISTS`` and pops only non-empty
  ones. Only when a round finds nothing does the reader block, on all keys at once with
  ``BLPOP k1 k2 ... timeout`` (Redis >= 6.2), pipelined behind that drain; while frames flow it
  starts a round at most once per ``read_interval`` (1 ms; a round over every key, at most once
  per microsecond per open stream) instead, since a ``BLPOP`` on many keys costs Redis more
  than draining them (it registers on, then leaves, every key). A new stream wakes a blocked
  reader with ``CLIENT UNBLOCK``. No stream starves: a key that is not hot is drained by every
  full round and, in a run of hot rounds, within ``ceil(streams / 64)`` of them.
* **Own connections.** The relay opens its own redis-py connections (settings taken from the
  given client or URL) with redis-py's retries off: a refused connection or a failed send is
  retried with backoff (Redis got nothing); a write whose reply was lost is never resent
  (``RelayPublishError``). The reader reconnects after a reset or a Redis restart and resumes
  the same keys: pops are destructive, so nothing is delivered twice or out of order. Each
  drain also keeps what it popped in the reader's own backup list (``relay:inflight:{uuid}``,
  tagged with the round's id, replaced by the next round): if a drain's reply is lost on the
  way, the reader reads it back after reconnecting and delivers those frames, once.

Servers: Redis >= 6.2 or Valkey; tested on Redis 6.2 and 7.0 and on Valkey 8.0.

Limits: the one frame a wait round's ``BLPOP`` pops has no backup: if that reply is cut off by
a reset, the frame is lost (as with the reference's ``BLPOP``; a reader blocked in ``BLPOP``
when the connection drops loses nothing). A crash of Redis itself loses what its persistence
settings lose. A round that is not hot names every open stream's key (Redis parses
each name: roughly 0.1 us of its CPU per key per round, at most once per ``read_interval`` while
frames flow, plus a ``BLPOP``'s registration on every key each time the reader blocks). Not for
Redis Cluster (a flush's keys span slots). One local stream per message queue per relay. A
closing stream's give-back keeps the frames' order, and a stream opened meanwhile in the same
process waits for it; one opened in another process does not. redis-py's asyncio client runs
on asyncio only (not trio), and so does the relay. This package is the only part of
``oasst_shared`` that imports redis.
"""

from __future__ import annotations

from oasst_shared._optional import require

require("redis.asyncio", extra="redis", needed_by="oasst_shared.relay (redis-py, with hiredis)")

from oasst_shared.relay._errors import (  # noqa: E402  (after the check, which names the extra)
    QueueFullError,
    RelayConnectionError,
    RelayDecodeError,
    RelayError,
    RelayPublishError,
)
from oasst_shared.relay._publish import DEFAULT_PUBLISHER_LIMIT, Publisher  # noqa: E402
from oasst_shared.relay._relay import (  # noqa: E402
    DEFAULT_MESSAGE_QUEUE_EXPIRE,
    DEFAULT_MESSAGE_QUEUE_MAX_LENGTH,
    DEFAULT_STREAM_BUFFER,
    DEFAULT_WORK_QUEUE_MAX_SIZE,
    TERMINAL_RESPONSE_TYPES,
    QueuePosition,
    Relay,
    Subscription,
    message_queue_key,
    work_queue_key,
)

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
    "RelayDecodeError",
    "RelayError",
    "RelayPublishError",
    "Subscription",
    "message_queue_key",
    "work_queue_key",
]
