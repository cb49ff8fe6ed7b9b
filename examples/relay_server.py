"""The inference server's two hot handlers written on ``oasst_shared.relay``, without a web framework.

* :func:`handle_worker` is the worker websocket handler: it takes message ids from the work queue
  ``work:{compat_hash}``, sends the worker a ``WorkRequest`` for each, and relays what the worker
  sends back into ``message:{message_id}``, forwarding token frames as the same bytes.
* :func:`message_events` is the chat's event stream handler: it reads ``message:{message_id}``
  and writes the reference's Server-Sent Events (``pending`` with the queue position while
  waiting, then ``token`` ... and a final ``message`` or ``error``).

Both take plain callables (an async iterator of incoming websocket frames, an async ``send``),
so any framework can wrap them: FastAPI's ``websocket.iter_bytes()`` / ``websocket.send_bytes``,
an ``EventSourceResponse`` fed from a queue, etc. A :class:`MessageStore` stands in for the
reference's database (start, complete and abort work on a message).

Run the demo (K fake workers and K chats through a real Redis)::

    python examples/relay_server.py           # starts a redis-server (tests/support/redis_server.py)
    python examples/relay_server.py redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import msgspec

from oasst_shared import codec
from oasst_shared.model_configs import ModelConfig
from oasst_shared.relay import Publisher, Relay, RelayError
from oasst_shared.schemas import inference

Send = Callable[[bytes], Awaitable[None]]

# ----------------------------------------------------------------- the reference's SSE events


class PendingResponseEvent(msgspec.Struct, tag_field="event_type", tag="pending"):
    """Sent while the message waits in the work queue."""

    queue_position: int
    queue_size: int


class TokenResponseEvent(msgspec.Struct, tag_field="event_type", tag="token"):
    """One generated token's text."""

    text: str


class SafePromptResponseEvent(msgspec.Struct, tag_field="event_type", tag="safe_prompt"):
    """The safety model rewrote the prompt."""

    safe_prompt: str


class ErrorResponseEvent(msgspec.Struct, tag_field="event_type", tag="error"):
    """The message failed; the stream ends."""

    error: str
    message: inference.MessageRead | None = None


class MessageResponseEvent(msgspec.Struct, tag_field="event_type", tag="message"):
    """The finished message; the stream ends."""

    message: inference.MessageRead


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


async def handle_worker(
    relay: Relay,
    store: MessageStore,
    compat_hash: str,
    receive: AsyncIterator[bytes],
    send: Send,
    *,
    max_parallel_requests: int = 1,
) -> None:
    """The worker websocket handler: hand out work, relay responses (until ``receive`` ends).

    Token and plugin frames are peeked (tag and ``request_id``) and forwarded as the same bytes
    through the connection's ``Publisher`` (no round trip awaited per token);
    ``generated_text`` completes the message and publishes ``internal_finished_message``;
    ``error`` aborts it and publishes ``internal_error``, as the reference does.
    """
    in_flight: dict[str, str] = {}  # work request id -> message id
    slots = asyncio.Semaphore(max_parallel_requests)

    async def hand_out_work() -> None:
        while True:
            await slots.acquire()
            message_id = None
            while message_id is None:
                message_id = await relay.dequeue_work(compat_hash, timeout=1.0)
            request = build_work_request(store.start_work(message_id))
            in_flight[request.id] = message_id
            await send(codec.worker_request.encode(request))

    async def relay_responses(pub: Publisher) -> None:
        async for frame in receive:
            env = codec.peek_worker_response(frame)
            if env.response_type == "pong":
                continue
            message_id = in_flight.get(env.request_id or "")
            if message_id is None:
                continue  # the reference logs and drops responses to unknown requests
            if env.response_type in ("token", "plugin_intermediate", "safe_prompt"):
                pub.send(message_id, frame)  # the same bytes, no re-encode, no wait per token
                await pub.drain()  # an earlier frame's failure; waits only if Redis falls behind
                continue
            response = codec.worker_response.decode(frame)
            done: inference.WorkerResponse
            if isinstance(response, inference.GeneratedTextResponse):
                done = inference.InternalFinishedMessageResponse(
                    request_id=response.request_id, message=store.complete_work(message_id, response.text)
                )
            elif isinstance(response, (inference.ErrorResponse, inference.GeneralErrorResponse)):
                done = inference.InternalErrorResponse(
                    request_id=response.request_id, error=response.error, message=store.abort(message_id)
                )
            else:
                continue
            pub.send(message_id, done)
            await pub.flush()  # the message is complete in Redis before the slot is reused
            del in_flight[env.request_id or ""]
            slots.release()

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
    the final ``message``/``error`` event, or after ``timeout`` seconds without a frame.
    """
    decode = codec.worker_response.decode
    started = False
    idle = 0.0
    async with relay.subscribe(message_id) as sub:
        while True:
            batch = await sub.next_batch(pending_interval)
            if not batch:
                idle += pending_interval
                if idle >= timeout:
                    return
                if not started:
                    pos = await relay.queue_position(message_id, compat_hash)
                    await send_event(codec.sse_frame(PendingResponseEvent(pos.position, pos.size)))
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
                elif isinstance(response, inference.SafePromptResponse):
                    event, last = SafePromptResponseEvent(safe_prompt=response.safe_prompt), False
                elif isinstance(response, (inference.TokenResponse, inference.PluginIntermediateResponse)):
                    event, last = TokenResponseEvent(text=response.text), False
                else:
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
    """What each chat's browser received: SSE frames per chat id, and the store."""

    events: dict[str, list[bytes]]
    store: MessageStore
    seconds: float


async def demo(
    worker_url: str, browser_url: str | None = None, *, chats: int = 8, tokens: int = 20
) -> DemoResult:
    """``chats`` chats served by ``chats`` fake workers. Workers connect to a relay on
    ``worker_url`` and browsers to one on ``browser_url`` (another server process's, sharing the
    Redis; default: the same URL)."""
    compat_hash = f"demo-{uuid.uuid4().hex[:8]}"
    store = MessageStore()
    events: dict[str, list[bytes]] = {}
    t0 = time.perf_counter()
    async with Relay(worker_url) as worker_relay, Relay(browser_url or worker_url) as browser_relay:
        workers = []
        for _ in range(chats):
            to_server: asyncio.Queue[bytes | None] = asyncio.Queue()
            from_server: asyncio.Queue[bytes] = asyncio.Queue()
            workers.append(asyncio.create_task(fake_worker(to_server, from_server, tokens)))
            workers.append(
                asyncio.create_task(
                    handle_worker(worker_relay, store, compat_hash, _frames(to_server), from_server.put)
                )
            )

        async def chat(chat_id: str) -> None:
            message = store.create(chat_id)
            await browser_relay.enqueue_work(compat_hash, message.id)
            out = events[chat_id] = []

            async def send_event(data: bytes) -> None:
                out.append(data)

            await message_events(browser_relay, message.id, compat_hash, send_event, pending_interval=0.2)

        await asyncio.gather(*(chat(f"chat-{i}") for i in range(chats)))
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return DemoResult(events, store, time.perf_counter() - t0)


def main() -> None:
    """Run the demo against ``sys.argv[1]`` or an embedded redis-server."""

    def report(result: DemoResult) -> None:
        first = next(iter(result.events.values()))
        parser = codec.SSEParser()
        for frame in first[:3] + first[-1:]:
            for ev in parser.feed(frame):
                sys.stdout.write(ev.data[:120] + "\n")
        n = sum(len(v) for v in result.events.values())
        sys.stdout.write(f"{len(result.events)} chats, {n} events in {result.seconds:.2f} s\n")

    if len(sys.argv) > 1:
        report(asyncio.run(demo(sys.argv[1])))
        return
    sys.path.insert(0, ".")
    try:
        from tests.support.redis_server import running_redis
    except ImportError:
        raise SystemExit("give a Redis URL, or run from the repository root to start one") from None
    with running_redis() as srv:
        report(asyncio.run(demo(srv.url)))


if __name__ == "__main__":
    try:
        main()
    except RelayError as exc:
        raise SystemExit(f"relay error: {exc}") from exc
