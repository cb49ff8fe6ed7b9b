"""The reference inference server's chat events, and a relay stream turned into them.

``message_event_chunks`` reads one assistant message's queue through a relay subscription and
yields, per batch the relay delivered, one ``bytes`` chunk holding that batch's events: what
``~oasst_shared.server.EventStreamResponse`` sends in one ASGI ``send``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import msgspec

from oasst_shared import codec
from oasst_shared.relay import Relay, RelayDataLossError, RelayDecodeError, RelayError
from oasst_shared.schemas import inference

__all__ = [
    "DEFAULT_PENDING_INTERVAL",
    "ErrorResponseEvent",
    "MessageResponseEvent",
    "PendingResponseEvent",
    "PluginIntermediateResponseEvent",
    "SafePromptResponseEvent",
    "TokenResponseEvent",
    "message_event_chunks",
]

log = logging.getLogger("oasst_shared.server")

DEFAULT_PENDING_INTERVAL: Final = 1.0
"""Seconds between two ``pending`` events while a message waits (the reference's
``pending_event_interval``)."""


class PendingResponseEvent(msgspec.Struct, tag_field="event_type", tag="pending"):
    """The message waits in its work queue: ``queue_position`` (1: next), ``queue_size``."""

    queue_position: int
    queue_size: int


class TokenResponseEvent(msgspec.Struct, tag_field="event_type", tag="token"):
    """One generated token's text."""

    text: str


class ErrorResponseEvent(msgspec.Struct, tag_field="event_type", tag="error"):
    """The message failed; the stream ends."""

    error: str
    message: inference.MessageRead | None = None


class MessageResponseEvent(msgspec.Struct, tag_field="event_type", tag="message"):
    """The finished message; the stream ends."""

    message: inference.MessageRead


class SafePromptResponseEvent(msgspec.Struct, tag_field="event_type", tag="safe_prompt"):
    """The safety model rewrote the prompt (the reference's schema; its server stores the safe
    prompt on the prompter message rather than streaming it)."""

    safe_prompt: str
    message: inference.MessageRead


class PluginIntermediateResponseEvent(msgspec.Struct, tag_field="event_type", tag="plugin_intermediate"):
    """A plugin's intermediate step."""

    current_plugin_thought: str
    current_plugin_action_taken: str
    current_plugin_action_input: str
    current_plugin_action_response: str
    message: inference.MessageRead | None = None


_encode = msgspec.json.Encoder().encode


def _event(struct: msgspec.Struct) -> bytes:
    return b"data: " + _encode(struct) + b"\n\n"


async def message_event_chunks(
    relay: Relay,
    message_id: str,
    compat_hash: str | None,
    *,
    pending_interval: float = DEFAULT_PENDING_INTERVAL,
    timeout: float = 60.0,
    on_error: Callable[[RelayError], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """The reference's event stream of one assistant message, one chunk per relay batch.

    Each event is ``data: <json>\\n\\n`` (no ``event:`` line, as the reference's), its JSON one
    of the structs above, tagged ``event_type``. While nothing has arrived, every
    ``pending_interval`` seconds: ``pending`` with the queue position (``relay.queue_position``
    of ``message_id`` in ``work:{compat_hash}``); then ``token`` per token frame,
    ``plugin_intermediate`` per plugin frame, and a final ``message`` (from
    ``internal_finished_message``) or ``error`` (from ``internal_error``), after which it ends.
    A worker's own ``generated_text``/``error`` frame in the queue ends it too, with an ``error``
    event (the reference stops there without one).

    It never ends without its final event: after ``timeout`` seconds without a frame once the
    answer has started (while the message waits for a worker, ``pending`` events go on), or when
    the relay fails (Redis unreachable, frames lost in a restart or failover, a frame that is
    not a ``WorkerResponse``), it yields an ``error`` event saying so (``on_error`` is awaited
    with the relay's error first, e.g. to count it).

    Closing the generator early (``aclose``: the client went away) closes its subscription,
    which gives the frames it had not taken back to the head of the Redis list.
    """
    decode = codec.worker_response.decode
    token_head = b'data: {"event_type":"token","text":'
    started = False
    idle = 0.0
    try:
        async with relay.subscribe(message_id) as sub:
            while True:
                batch = await sub.next_batch(pending_interval)
                if not batch:
                    if not started:  # waiting for a worker, as long as it takes (as the reference)
                        # one MGET per interval for every waiting chat of the relay, not one each
                        pos = await relay.queue_position(message_id, compat_hash, max_age=pending_interval)
                        yield _event(PendingResponseEvent(queue_position=pos.position, queue_size=pos.size))
                        continue
                    idle += pending_interval
                    if idle >= timeout:
                        yield _event(ErrorResponseEvent(error=f"no answer from the worker for {timeout:g} s"))
                        return
                    continue
                started, idle = True, 0.0
                out: list[bytes] = []
                for i, frame in enumerate(batch):
                    try:
                        response = decode(frame)
                        if type(response) is inference.TokenResponse:
                            out.append(token_head + _encode(response.text) + b"}\n\n")
                            continue
                    except codec.FrameDecodeError as exc:
                        sub.give_back(batch[i + 1 :])
                        bad = RelayDecodeError(
                            f"frame is not a valid WorkerResponse: {exc}",
                            key=sub.key,
                            operation="stream",
                            frame=frame,
                        )
                        bad.__cause__ = exc
                        out.append(await _error_event(message_id, bad, on_error))
                        yield b"".join(out)  # the events before it, then the error
                        return
                    if isinstance(response, inference.PluginIntermediateResponse):
                        out.append(_event(_plugin_event(response)))
                        continue
                    final: msgspec.Struct
                    if isinstance(response, inference.InternalFinishedMessageResponse):
                        final = MessageResponseEvent(message=response.message)
                    elif isinstance(response, inference.InternalErrorResponse):
                        final = ErrorResponseEvent(error=response.error, message=response.message)
                    elif isinstance(response, inference.GeneratedTextResponse | inference.ErrorResponse):
                        log.warning(
                            "the queue of %s holds a worker's %s frame", message_id, response.response_type
                        )
                        final = ErrorResponseEvent(error="the stream failed; please try again")
                    else:  # safe_prompt, pong, general_error: not events of the chat's stream
                        continue
                    sub.give_back(batch[i + 1 :])
                    out.append(_event(final))
                    yield b"".join(out)
                    return
                if out:
                    yield b"".join(out)
    except RelayError as exc:
        yield await _error_event(message_id, exc, on_error)


async def _error_event(
    message_id: str, exc: RelayError, on_error: Callable[[RelayError], Awaitable[None]] | None
) -> bytes:
    """Never a silent end: the chat shows an error, not a text with a hole in it."""
    log.warning("the event stream of %s ended: %s", message_id, exc)
    if on_error is not None:
        await on_error(exc)
    reason = "part of the answer was lost" if isinstance(exc, RelayDataLossError) else "the stream failed"
    return _event(ErrorResponseEvent(error=f"{reason}; please try again"))


def _plugin_event(response: inference.PluginIntermediateResponse) -> PluginIntermediateResponseEvent:
    return PluginIntermediateResponseEvent(
        current_plugin_thought=response.current_plugin_thought,
        current_plugin_action_taken=response.current_plugin_action_taken,
        current_plugin_action_input=response.current_plugin_action_input,
        current_plugin_action_response=response.current_plugin_action_response,
    )
