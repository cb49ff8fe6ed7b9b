"""The per-frame hot path: prebuilt typed codecs, relay envelopes and stream framing.

What workers and the inference server call for every frame:

    from oasst_shared import codec

    frame = codec.worker_response.encode(TokenResponse(...))      # worker -> websocket
    msg = codec.worker_response.decode(frame)                     # server: typed, one pass
    env = codec.peek_worker_response(frame)                       # relay: tag + request_id only
    queue.push(env.request_id, frame)                             # ...forward the same bytes

Design (each choice measured in ``benchmarks/``):

* One ``msgspec`` decoder per message type, built once at import and reused: decoding a
  union picks the member by its tag in the same pass.
* ``encode`` uses msgspec's module-level encoder, which builds its state per call and is safe
  to call from any thread. ``encode_into`` writes into a caller-owned ``bytearray`` through a
  per-thread ``msgspec`` encoder: msgspec's ``Encoder`` keeps an output buffer between calls,
  so one instance must not encode on two threads at once. ``FrameWriter`` owns one encoder and
  one buffer and hands out each frame in that buffer with no per-frame allocation; it is for
  one thread (or one connection) at a time. Decoders keep no state between calls and are safe
  to share.
* Relays that route frames without reading them use an envelope: a view struct holding only
  the tag and ``request_id``; the original bytes are forwarded unchanged. msgspec has no early
  exit, so the envelope still checks the whole frame (a relay never forwards broken JSON);
  it saves building the other fields, not reading them. ``benchmarks/`` times a struct
  holding ``request_id`` alone as the floor under any such peek.
* Framings: NDJSON (``encode_lines`` / ``decode_lines``), Server-Sent Events (``sse_frame``
  for a message, ``sse_frame_raw`` to forward a frame's JSON unchanged, ``SSEParser``) and a
  MessagePack variant of every codec (``MsgpackCodec``) with 4-byte length-prefixed stream
  framing.
* Any frame that cannot be decoded raises ``FrameDecodeError`` (a ``ValueError`` and a
  ``msgspec.DecodeError``) naming the message type, the JSON path and the frame's tag when
  readable, so a server can log and drop one frame and keep the connection. Frames larger
  than ``max_frame_size`` (default ``DEFAULT_MAX_FRAME_SIZE``, 16 MiB) are rejected before
  decoding.

Where each part lives (the names are all importable from here, as they always were):

* ``_errors``: ``FrameDecodeError``, the frame-size limit and the wrapping of a msgspec
  failure (described by ``oasst_shared._decode_errors``) into it, with the frame's tag.
* ``_json``: ``JsonCodec`` and the base it shares with ``_msgpack``'s ``MsgpackCodec``.
* ``_envelopes``: the relay envelope structs, derived from the worker unions.
* ``_framing``: NDJSON lines, 4-byte length prefixes and ``FrameWriter``.
* ``sse``: Server-Sent Events, the writer functions and the ``text/event-stream`` parser.
* here: the prebuilt codec instances below.
"""

from __future__ import annotations

from oasst_shared.codec._envelopes import (
    WorkerRequestEnvelope,
    WorkerRequestEnvelopes,
    WorkerResponseEnvelope,
    WorkerResponseEnvelopes,
)
from oasst_shared.codec._errors import DEFAULT_MAX_FRAME_SIZE, FrameDecodeError
from oasst_shared.codec._framing import FrameWriter
from oasst_shared.codec._json import JsonCodec
from oasst_shared.codec._msgpack import MsgpackCodec
from oasst_shared.codec.sse import SSEEvent, SSEParser, sse_frame, sse_frame_raw
from oasst_shared.schemas import inference, protocol

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecodeError",
    "FrameWriter",
    "JsonCodec",
    "MsgpackCodec",
    "SSEEvent",
    "SSEParser",
    "WorkerRequestEnvelope",
    "WorkerRequestEnvelopes",
    "WorkerResponseEnvelope",
    "WorkerResponseEnvelopes",
    "any_interaction",
    "any_interaction_msgpack",
    "any_task",
    "any_task_msgpack",
    "peek_worker_request",
    "peek_worker_response",
    "sse_frame",
    "sse_frame_raw",
    "worker_request",
    "worker_request_envelope",
    "worker_request_msgpack",
    "worker_response",
    "worker_response_envelope",
    "worker_response_msgpack",
]

# Tracebacks and logs name the error by its public path, as when the package was one module
# (``oasst_shared.codec.FrameDecodeError``), not by the private module defining it. Only the
# exception: msgspec resolves a struct's annotations in the module its ``__module__`` names.
FrameDecodeError.__module__ = __name__

worker_request: JsonCodec[inference.WorkerRequest] = JsonCodec(inference.WorkerRequest)
"""What the server sends a worker (``WorkerRequest``, tagged on ``request_type``), as JSON."""
worker_response: JsonCodec[inference.WorkerResponse] = JsonCodec(inference.WorkerResponse)
"""What a worker sends the server (``WorkerResponse``, tagged on ``response_type``), as JSON."""
any_task: JsonCodec[protocol.AnyTask] = JsonCodec(protocol.AnyTask)
"""Any backend task (``protocol.AnyTask``, tagged on ``type``), as JSON."""
any_interaction: JsonCodec[protocol.AnyInteraction] = JsonCodec(protocol.AnyInteraction)
"""Any backend interaction (``protocol.AnyInteraction``, tagged on ``type``), as JSON."""

worker_request_msgpack: MsgpackCodec[inference.WorkerRequest] = MsgpackCodec(inference.WorkerRequest)
"""``worker_request`` as MessagePack."""
worker_response_msgpack: MsgpackCodec[inference.WorkerResponse] = MsgpackCodec(inference.WorkerResponse)
"""``worker_response`` as MessagePack."""
any_task_msgpack: MsgpackCodec[protocol.AnyTask] = MsgpackCodec(protocol.AnyTask)
"""``any_task`` as MessagePack."""
any_interaction_msgpack: MsgpackCodec[protocol.AnyInteraction] = MsgpackCodec(protocol.AnyInteraction)
"""``any_interaction`` as MessagePack."""

worker_response_envelope: JsonCodec[WorkerResponseEnvelope] = JsonCodec(
    WorkerResponseEnvelopes, name="inference.WorkerResponse envelope"
)
"""Worker frames read as envelopes (tag and ``request_id``); ``peek_worker_response`` is its ``decode``."""
worker_request_envelope: JsonCodec[WorkerRequestEnvelope] = JsonCodec(
    WorkerRequestEnvelopes, name="inference.WorkerRequest envelope"
)
"""Server frames read as envelopes (tag and ``id``); ``peek_worker_request`` is its ``decode``."""

peek_worker_response = worker_response_envelope.decode
"""Tag and ``request_id`` of a worker frame, without decoding the rest (for relays).

Rejects what a full decode would reject at the envelope level (unknown or missing tag, a
non-string ``request_id``, malformed JSON); the rest of the frame is only checked to be JSON.
"""

peek_worker_request = worker_request_envelope.decode
"""Tag and ``id`` of a server frame, without decoding the rest (for relays)."""
