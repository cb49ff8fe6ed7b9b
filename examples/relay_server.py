"""The inference server's two hot handlers written on ``oasst_shared.relay``, without a web framework.

* :func:`handle_worker` is the worker websocket handler: it takes message ids from the work queue
  ``work:{compat_hash}``, sends the worker a ``WorkRequest`` for each, and relays what the worker
  sends back into ``message:{message_id}``, forwarding token frames as the same bytes. A frame
  goes only to the message this connection dispatched its request for (:class:`DispatchedWork`);
  any other is dropped and logged, so a worker can never write into another chat.
* :func:`message_events` is the chat's event stream handler: it reads ``message:{message_id}``
  and writes the reference's Server-Sent Events (``pending`` with the queue position while
  waiting, then ``token`` ... and a final ``message`` or ``error``).

Both take plain callables (an async iterator of incoming websocket frames, an async ``send``),
so any framework can wrap them: FastAPI's ``websocket.iter_bytes()`` / ``websocket.send_bytes``,
an ``EventSourceResponse`` fed from a queue, etc. A :class:`MessageStore` stands in for the
reference's database (start, complete and abort work on a message). The event structs are
``oasst_shared.server``'s (extra ``server``), whose ``message_event_chunks`` and
``WorkerConnection`` are these handlers grown up: ``examples/inference_server`` uses them.

Run the demo (K fake workers and K chats through a real Redis) with the project's venv
(``make install`` builds it), from the repository root::

    .venv/bin/python examples/relay_server.py --help
    .venv/bin/python examples/relay_server.py                  # a redis-server of its own
    .venv/bin/python examples/relay_server.py redis://127.0.0.1:6379/0   # yours (make redis)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

try:
    import msgspec

    from oasst_shared import codec
    from oasst_shared.model_configs import ModelConfig
    from oasst_shared.relay import Publisher, Relay, RelayConnectionError, RelayDataLossError, RelayError
    from oasst_shared.schemas import inference
    from oasst_shared.server import (  # the reference's chat events (the one definition of them)
        ErrorResponseEvent,
        MessageResponseEvent,
        PendingResponseEvent,
        PluginIntermediateResponseEvent,
        TokenResponseEvent,
    )
except ImportError as exc:
    if __name__ != "__main__":
        raise
    sys.exit(
        f"{Path(sys.argv[0]).name}: {exc}. Run it with the project's venv: "
        "`make install`, then `.venv/bin/python examples/relay_server.py`"
    )

log = logging.getLogger("relay_server")

Send = Callable[[bytes], Awaitable[None]]

# ---------------------------------------------------------------------- the database stand-in


@dataclass
class MessageStore:
    """In-memory assistant messages (the reference keeps them in Postgres)."""

    messages: dict[str, inference.MessageRead] = field(default_factory=dict)

    def create(self, chat_id: str) -> inference.MessageRead:
        """A new pending assistant message."""
        msg = inference.MessageRead(
            id=str(uuid.uuid4()),
            chat_id=chat_id,
            created_at=datetime.now(timezone.utc),
            role="assistant",
            state=inference.MessageState.pending,
            score=0,
        )
        self.messages[msg.id] = msg
        return msg

    def start_work(self, message_id: str) -> inference.MessageRead:
        """Mark the message in progress."""
        msg = msgspec.structs.replace(self.messages[message_id], state=inference.MessageState.in_progress)
        self.messages[message_id] = msg
        return msg

    def complete_work(self, message_id: str, content: str) -> inference.MessageRead:
        """Store the generated text."""
        msg = msgspec.structs.replace(
            self.messages[message_id], state=inference.MessageState.complete, content=content
        )
        self.messages[message_id] = msg
        return msg

    def abort(self, message_id: str) -> inference.MessageRead:
        """Mark the message aborted by the worker."""
        msg = msgspec.structs.replace(
            self.messages[message_id], state=inference.MessageState.aborted_by_worker
        )
        self.messages[message_id] = msg
        return msg


def build_work_request(message: inference.MessageRead) -> inference.WorkRequest:
    """The work request for a message (the reference builds the thread from the chat history)."""
    return inference.WorkRequest(
        thread=inference.Thread(messages=[message]),
        parameters=inference.WorkParameters(model_config=ModelConfig(model_id="demo-model")),
    )


# ------------------------------------------------------------------------- the worker handler


class DispatchedWork:
    """One worker connection's work in flight: the id of each ``WorkRequest`` it sent -> its message.

    A worker's frame names its request by ``request_id``, a value the worker chooses. The handler
    routes a frame only to the message this connection dispatched that request for, and drops
    (and logs, without the frame's text) every other one: a worker holding an API key must not be
    able to write into a chat whose message or request id it has learnt. The reference server
    keeps the same map per connection (``work_request_map`` in ``routes/workers.py``).
    """

    def __init__(self) -> None:
        self._messages: dict[str, str] = {}
        self.relayed = 0
        """Frames published to a message of this connection."""
        self.dropped = 0
        """Frames dropped: not a ``WorkerResponse``, or for a request not dispatched here."""

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, request_id: str, message_id: str) -> None:
        """This connection sent the worker request ``request_id`` for ``message_id``."""
        self._messages[request_id] = message_id

    def message_for(self, response_type: str, request_id: str | None) -> str | None:
        """The message this connection dispatched ``request_id`` for, or None: then the frame
        is counted as dropped and a warning is logged (its type and request id, never its text)."""
        message_id = self._messages.get(request_id) if request_id is not None else None
        if message_id is None:
            self.drop(
                "dropped a %s frame for request %.64r: not dispatched on this connection, or finished",
                response_type,
                request_id,
            )
        return message_id

    def finish(self, request_id: str) -> None:
        """The request ended (generated text or error): later frames naming it are dropped."""
        self._messages.pop(request_id, None)

    def drop(self, msg: str, *args: object) -> None:
        """Count a dropped frame and log why (``msg % args``) at WARNING."""
        self.dropped += 1
        log.warning(msg, *args)


async def handle_worker(
    relay: Relay,
    store: MessageStore,
    compat_hash: str,
    receive: AsyncIterator[bytes],
    send: Send,
    *,
    max_parallel_requests: int = 1,
    dispatched: DispatchedWork | None = None,
) -> None:
    """The worker websocket handler: hand out work, relay responses (until ``receive`` ends).

    Token and plugin frames are peeked (tag and ``request_id``) and forwarded as the same bytes
    through the connection's ``Publisher`` (no round trip awaited per token);
    ``generated_text`` completes the message and publishes ``internal_finished_message``;
    ``error`` aborts it and publishes ``internal_error``, as the reference does. Every frame goes
    to the message this connection dispatched its request for (``dispatched``, a fresh
    :class:`DispatchedWork` by default; pass one to read its counts); other frames, and frames
    that are not a valid ``WorkerResponse``, are dropped and logged, and the socket stays open.
    """
    work = dispatched if dispatched is not None else DispatchedWork()
    slots = asyncio.Semaphore(max_parallel_requests)

    async def hand_out_work() -> None:
        while True:
            await slots.acquire()
            message_id = None
            while message_id is None:
                message_id = await relay.dequeue_work(compat_hash, timeout=1.0)
            request = build_work_request(store.start_work(message_id))
            work.add(request.id, message_id)
            await send(codec.worker_request.encode(request))

    async def relay_responses(pub: Publisher) -> None:
        async for frame in receive:
            try:
                env = codec.peek_worker_response(frame)
            except codec.FrameDecodeError as err:
                work.drop("dropped a frame that is not a WorkerResponse (at %s)", err.path)
                continue
            if env.response_type == "pong":
                continue  # the reference stores the pong's metrics in the worker's session
            message_id = work.message_for(env.response_type, env.request_id)
            if message_id is None:
                continue
            if env.response_type in ("token", "plugin_intermediate", "safe_prompt"):
                pub.send(message_id, frame)  # the same bytes, no re-encode, no wait per token
                work.relayed += 1
                await pub.drain()  # an earlier frame's failure; waits only if Redis falls behind
                continue
            try:
                response = codec.worker_response.decode(frame)
            except codec.FrameDecodeError as err:
                work.drop("dropped a %s frame that does not decode (at %s)", env.response_type, err.path)
                continue
            done: inference.WorkerResponse
            if isinstance(response, inference.GeneratedTextResponse):
                done = inference.InternalFinishedMessageResponse(
                    request_id=response.request_id, message=store.complete_work(message_id, response.text)
                )
            elif isinstance(response, (inference.ErrorResponse, inference.GeneralErrorResponse)):
                done = inference.InternalErrorResponse(
                    request_id=response.request_id, error=response.error, message=store.abort(message_id)
                )
            else:  # internal_finished_message, internal_error: the server's, never a worker's
                work.drop("dropped a %s frame: the server sends these, not a worker", env.response_type)
                continue
            pub.send(message_id, done)
            work.relayed += 1
            await pub.flush()  # the message is complete in Redis before the slot is reused
            work.finish(env.request_id or "")
            slots.release()
        await pub.flush()  # the worker left: what it sent is in Redis

    worker_side = asyncio.create_task(relay_responses(relay.publisher()))
    work_side = asyncio.create_task(hand_out_work())
    try:
        await worker_side
    finally:
        work_side.cancel()
        await asyncio.gather(work_side, return_exceptions=True)


# -------------------------------------------------------------------- the event stream handler


async def message_events(
    relay: Relay,
    message_id: str,
    compat_hash: str | None,
    send_event: Send,
    *,
    pending_interval: float = 1.0,
    timeout: float = 60.0,
) -> None:
    """The chat's event stream for one assistant message, as the reference's ``message_events``.

    Sends each event as an SSE frame (``codec.sse_frame``). While nothing has arrived it sends a
    ``pending`` event with the queue position every ``pending_interval`` seconds; it stops after
    the final ``message``/``error`` event. It never stops without one of them: after ``timeout``
    seconds without a frame, or when the relay ends the stream with an error (frames lost in a
    Redis restart or failover: ``RelayDataLossError``; Redis unreachable), it sends an ``error``
    event saying so.
    """
    try:
        await _message_events(
            relay, message_id, compat_hash, send_event, pending_interval=pending_interval, timeout=timeout
        )
    except RelayError as exc:
        # never a silent end: the chat shows an error, not a text with a hole in it
        log.warning("the event stream of %s ended: %s", message_id, exc)
        reason = "part of the answer was lost" if isinstance(exc, RelayDataLossError) else "the stream failed"
        await send_event(codec.sse_frame(ErrorResponseEvent(error=f"{reason}; please try again")))


async def _message_events(
    relay: Relay,
    message_id: str,
    compat_hash: str | None,
    send_event: Send,
    *,
    pending_interval: float,
    timeout: float,
) -> None:
    decode = codec.worker_response.decode
    started = False
    idle = 0.0
    async with relay.subscribe(message_id) as sub:
        while True:
            batch = await sub.next_batch(pending_interval)
            if not batch:
                idle += pending_interval
                if idle >= timeout:
                    error = f"no answer from the worker for {timeout:g} s"
                    await send_event(codec.sse_frame(ErrorResponseEvent(error=error)))
                    return
                if not started:
                    # one MGET per interval for every waiting chat of the relay, not one each
                    pos = await relay.queue_position(message_id, compat_hash, max_age=pending_interval)
                    await send_event(
                        codec.sse_frame(
                            PendingResponseEvent(queue_position=pos.position, queue_size=pos.size)
                        )
                    )
                continue
            started, idle = True, 0.0
            for i, frame in enumerate(batch):
                response = decode(frame)
                event: msgspec.Struct | None
                last = True
                if isinstance(response, (inference.GeneratedTextResponse, inference.ErrorResponse)):
                    event = None  # the reference: "should not happen" here; it stops
                elif isinstance(response, inference.InternalErrorResponse):
                    event = ErrorResponseEvent(error=response.error, message=response.message)
                elif isinstance(response, inference.InternalFinishedMessageResponse):
                    event = MessageResponseEvent(message=response.message)
                elif isinstance(response, inference.TokenResponse):
                    event, last = TokenResponseEvent(text=response.text), False
                elif isinstance(response, inference.PluginIntermediateResponse):
                    event = PluginIntermediateResponseEvent(
                        current_plugin_thought=response.current_plugin_thought,
                        current_plugin_action_taken=response.current_plugin_action_taken,
                        current_plugin_action_input=response.current_plugin_action_input,
                        current_plugin_action_response=response.current_plugin_action_response,
                    )
                    last = False
                else:  # safe_prompt (the reference stores it, it does not stream it), pong, ...
                    continue
                if event is not None:
                    await send_event(codec.sse_frame(event))
                if last:
                    sub.give_back(batch[i + 1 :])
                    return


# ------------------------------------------------------------------------------------ the demo


async def fake_worker(
    to_server: asyncio.Queue[bytes | None], from_server: asyncio.Queue[bytes], tokens: int
) -> None:
    """A worker: for each work request, ``tokens`` token frames then ``generated_text``."""
    while True:
        request = codec.worker_request.decode(await from_server.get())
        if not isinstance(request, inference.WorkRequest):
            continue
        words = []
        for i in range(tokens):
            words.append(f" w{i}")
            frame = inference.TokenResponse(request_id=request.id, text=f" w{i}", token_id=i)
            await to_server.put(codec.worker_response.encode(frame))
            await asyncio.sleep(0)
        final = inference.GeneratedTextResponse(
            request_id=request.id, text="".join(words), finish_reason="length"
        )
        await to_server.put(codec.worker_response.encode(final))


async def _frames(q: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await q.get()) is not None:
        yield item


@dataclass
class DemoResult:
    """What each chat's browser received (SSE frames per chat id), the store, and what the worker
    connections did: frames relayed to their own messages, frames dropped."""

    events: dict[str, list[bytes]]
    store: MessageStore
    seconds: float
    relayed: int = 0
    dropped: int = 0


async def demo(
    worker_url: str,
    browser_url: str | None = None,
    *,
    chats: int = 8,
    tokens: int = 20,
    retry_timeout: float = 10.0,
) -> DemoResult:
    """``chats`` chats served by ``chats`` fake workers. Workers connect to a relay on
    ``worker_url`` and browsers to one on ``browser_url`` (another server process's, sharing the
    Redis; default: the same URL). ``retry_timeout``: how long an unreachable Redis is retried
    before ``RelayConnectionError``."""
    compat_hash = f"demo-{uuid.uuid4().hex[:8]}"
    store = MessageStore()
    events: dict[str, list[bytes]] = {}
    connections: list[DispatchedWork] = []
    t0 = time.perf_counter()
    async with (
        Relay(worker_url, retry_timeout=retry_timeout) as worker_relay,
        Relay(browser_url or worker_url, retry_timeout=retry_timeout) as browser_relay,
    ):
        workers = []
        for _ in range(chats):
            to_server: asyncio.Queue[bytes | None] = asyncio.Queue()
            from_server: asyncio.Queue[bytes] = asyncio.Queue()
            connections.append(DispatchedWork())
            workers.append(asyncio.create_task(fake_worker(to_server, from_server, tokens)))
            workers.append(
                asyncio.create_task(
                    handle_worker(
                        worker_relay,
                        store,
                        compat_hash,
                        _frames(to_server),
                        from_server.put,
                        dispatched=connections[-1],
                    )
                )
            )

        async def chat(chat_id: str) -> None:
            message = store.create(chat_id)
            await browser_relay.enqueue_work(compat_hash, message.id)
            out = events[chat_id] = []

            async def send_event(data: bytes) -> None:
                out.append(data)

            await message_events(browser_relay, message.id, compat_hash, send_event, pending_interval=0.2)

        try:
            await asyncio.gather(*(chat(f"chat-{i}") for i in range(chats)))
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return DemoResult(
        events,
        store,
        time.perf_counter() - t0,
        relayed=sum(c.relayed for c in connections),
        dropped=sum(c.dropped for c in connections),
    )


# ------------------------------------------------------------------------------ the command line

REPO_ROOT = Path(__file__).resolve().parents[1]


def redis_url(value: str) -> str:
    """An argparse type: a URL the relay can connect to."""
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Redis URL (redis://, rediss:// or unix://)")
    return value


def positive(value: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` describes it)."""
    parser = argparse.ArgumentParser(
        prog="relay_server.py",
        description=(
            "The inference server's two hot handlers on oasst_shared.relay (the worker websocket "
            "and the chat's event stream), run as a demo: CHATS fake workers take CHATS chats' "
            "messages from a work queue and stream TOKENS tokens each through Redis to the chats' "
            "Server-Sent Events. Prints what one chat received and what the worker connections did."
        ),
        epilog=(
            "Run it with the project's venv from the repository root: make install, then "
            ".venv/bin/python examples/relay_server.py. A Redis of your own: make redis (127.0.0.1:6379)."
        ),
    )
    parser.add_argument(
        "url",
        metavar="REDIS_URL",
        nargs="?",
        type=redis_url,
        help=(
            "the Redis to relay through (redis://, rediss:// or unix://); default: $OASST_REDIS_URL, "
            "else a redis-server of its own for the run (the one tests/support/redis_server.py finds)"
        ),
    )
    parser.add_argument("--chats", type=positive, default=8, help="chats, and fake workers (default: 8)")
    parser.add_argument("--tokens", type=positive, default=20, help="tokens per answer (default: 20)")
    args = parser.parse_args(argv)
    if args.url is None and os.environ.get("OASST_REDIS_URL"):
        try:
            args.url = redis_url(os.environ["OASST_REDIS_URL"])
        except argparse.ArgumentTypeError as err:
            parser.error(f"OASST_REDIS_URL: {err}")
    return args


def report(result: DemoResult, where: str, tokens: int) -> None:
    """What the demo did, on stdout."""
    out = sys.stdout.write
    chats = len(result.events)
    out(f"relayed through {where}\n")
    out(
        f"{chats} fake workers each took one chat's message from the work queue and answered with "
        f"{tokens} tokens; their connections relayed {result.relayed} frames, each to the message "
        f"its connection had dispatched, and dropped {result.dropped}\n"
    )
    chat_id, frames = next(iter(result.events.items()))
    parser = codec.SSEParser()
    events = [ev.data for frame in frames for ev in parser.feed(frame)]
    out(f"{chat_id}'s event stream, {len(events)} events; the first 3 and the last:\n")
    for data in events[:3] + events[-1:]:
        out(f"  {data[:120]}\n")
    n = sum(len(v) for v in result.events.values())
    out(f"{chats} chats, {n} events in {result.seconds:.2f} s\n")


def main(argv: list[str] | None = None) -> None:
    """Run the demo against the given Redis, ``$OASST_REDIS_URL``, or a redis-server of its own."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.url is not None:
        result = asyncio.run(demo(args.url, chats=args.chats, tokens=args.tokens, retry_timeout=3.0))
        report(result, args.url, args.tokens)
        return
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.support.redis_server import running_redis
    except ImportError:
        sys.exit("relay_server.py: give a Redis URL (make redis starts one), or run it from a clone")
    with running_redis(use_env=False) as srv:
        result = asyncio.run(demo(srv.url, chats=args.chats, tokens=args.tokens))
        report(result, f"a redis-server of its own at {srv.url} (stopped on exit)", args.tokens)


if __name__ == "__main__":
    try:
        main()
    except RelayConnectionError as exc:
        sys.exit(f"relay_server.py: {exc}. Is a Redis running there? make redis starts one on 127.0.0.1:6379")
    except RelayError as exc:
        sys.exit(f"relay_server.py: relay error: {exc}")
