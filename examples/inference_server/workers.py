"""``/workers/work``: the worker websocket, as the reference's ``routes/workers.py``.

The handshake: ``X-Protocol-Version`` must be ``inference.INFERENCE_PROTOCOL_VERSION`` (else the
worker gets ``UpgradeProtocolRequest`` and the socket is closed), ``X-API-Key`` one of the
server's keys (else ``WrongApiKeyRequest``, then close); the worker's first frame is its
``WorkerInfo``. Then three tasks run until the worker leaves or one of them fails:

- *dispatch*: takes message ids from ``work:{compat_hash}`` while fewer than
  ``max_parallel_requests`` are in flight and sends the worker a ``WorkRequest`` for each;
- *receive*: ``WorkerConnection.run``: tokens and plugin frames go to their message's queue as
  the bytes the worker sent; ``generated_text`` completes the message, ``error`` aborts it,
  ``safe_prompt`` is stored on the prompter message, ``pong`` stores the worker's metrics in its
  session, ``general_error`` is logged;
- *ping*: a ``PingRequest`` every ``worker_ping_interval`` seconds.

When the worker leaves (or a task fails: logged with its traceback, the socket closed with 1011)
each message in flight ends: one that got no token yet goes back to the work queue, as the
reference does; one that did ends with an ``internal_error`` (the chat's ``error`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from examples.inference_server.state import State, state_of
from examples.inference_server.store import COMPAT_HASHES, WorkerSession
from oasst_shared import codec
from oasst_shared.relay import RelayError
from oasst_shared.schemas import inference
from oasst_shared.server import DispatchedRequest, WorkerConnection

log = logging.getLogger("inference_server")

router = APIRouter(prefix="/workers", tags=["workers"])

ABORTED = "Aborted due to worker error."
"""The error a message in flight ends with when its worker leaves (the reference's words)."""

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


async def _refuse(websocket: WebSocket, request: inference.WorkerRequest, reason: str) -> None:
    log.warning("worker refused: %s", reason)
    with contextlib.suppress(Exception):
        await websocket.send_text(codec.worker_request.encode(request).decode())
        await websocket.close(code=POLICY_VIOLATION, reason=reason)


def _worker_id(api_key: str) -> str:
    """A stable id for the key (the reference looks the key up in its database)."""
    return "worker-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


@router.websocket("/work")
async def handle_worker(websocket: WebSocket) -> None:
    """One worker's connection (see the module's docstring)."""
    state = state_of(websocket)
    await websocket.accept()
    protocol_version = websocket.headers.get("x-protocol-version")
    api_key = websocket.headers.get("x-api-key")
    if protocol_version != inference.INFERENCE_PROTOCOL_VERSION:
        expected = inference.INFERENCE_PROTOCOL_VERSION
        reason = f"Incompatible protocol version: {protocol_version}. Expected: {expected}."
        await _refuse(websocket, inference.UpgradeProtocolRequest(), reason)
        return
    if api_key is None or not any(
        hmac.compare_digest(api_key.encode(), key.encode()) for key in state.settings.api_keys
    ):
        await _refuse(websocket, inference.WrongApiKeyRequest(), "Invalid API key")
        return
    first = await websocket.receive()
    if first["type"] == "websocket.disconnect":
        return
    try:
        raw = first.get("text")
        worker_info = inference.WorkerInfo.parse_raw(raw if raw is not None else first.get("bytes") or b"")
    except Exception as exc:
        log.warning("worker refused: its first frame is not a WorkerInfo (%s)", exc)
        with contextlib.suppress(Exception):
            await websocket.close(code=POLICY_VIOLATION, reason="the first frame must be a WorkerInfo")
        return
    await WorkerHandler(state, websocket, _worker_id(api_key), worker_info).run()


class WorkerHandler:
    """One worker connection past the handshake."""

    def __init__(
        self, state: State, websocket: WebSocket, worker_id: str, info: inference.WorkerInfo
    ) -> None:
        self.state = state
        self.websocket = websocket
        self.worker_id = worker_id
        self.config = info.config
        self.compat_hash = info.config.compat_hash
        self.session = WorkerSession(worker_id=worker_id, worker_info=info)
        self.conn = WorkerConnection(state.relay, metrics=state.metrics)
        self.slots = asyncio.Semaphore(max(info.config.max_parallel_requests, 1))
        self._send_lock = asyncio.Lock()

    async def send(self, request: inference.WorkerRequest) -> None:
        """One text frame to the worker, as the reference sends them."""
        text = codec.worker_request.encode(request).decode()
        async with self._send_lock:
            await self.websocket.send_text(text)

    async def run(self) -> None:
        state, metrics = self.state, self.state.metrics
        log.info(
            "worker %s connected: %s, %d in parallel",
            self.worker_id,
            self.compat_hash,
            self.config.max_parallel_requests,
        )
        metrics.connected_workers.inc()
        state.workers.add(self)
        tasks: list[asyncio.Future[None]] = []
        failed: BaseException | None = None
        try:
            await state.store.store_worker_session(self.session)
            await state.redis.sadd(COMPAT_HASHES, self.compat_hash)
            tasks = [
                asyncio.ensure_future(self.conn.run(self.websocket, self.on_response)),
                asyncio.ensure_future(self.dispatch()),
                asyncio.ensure_future(self.ping()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect):  # (a send after it left)
                    failed = exc
                    break
        except Exception as exc:  # (the session's store)
            failed = exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if failed is not None:  # never swallowed: logged with its traceback, the socket closed
                log.error(
                    "worker %s: its handler failed; closing the connection", self.worker_id, exc_info=failed
                )
            await self.end_requests()
            state.workers.discard(self)
            metrics.connected_workers.dec()
            with contextlib.suppress(Exception):
                await state.store.delete_worker_session(self.session.id)
            with contextlib.suppress(Exception):
                await self.websocket.close(code=INTERNAL_ERROR if failed is not None else 1000)
            log.info("worker %s disconnected", self.worker_id)

    async def dispatch(self) -> None:
        """Hand out work while a slot is free."""
        relay, store, draining = self.state.relay, self.state.store, self.state.draining
        while True:
            await self.slots.acquire()
            message_id = None
            while message_id is None and not draining.is_set():
                message_id = await relay.dequeue_work(self.compat_hash, timeout=1.0)
            if message_id is not None and draining.is_set():  # taken as the drain began: back
                await relay.enqueue_work(self.compat_hash, message_id, enforce_max_size=False)
            if draining.is_set():
                await asyncio.Future()  # no more work on this connection (cancelled when it closes)
            assert message_id is not None
            request: DispatchedRequest | None = None
            try:
                stored = await store.start_work(message_id, self.worker_id)
                if stored is None:  # gone, or not pending any more: skipped, as the reference
                    log.warning("message %s is not pending; skipped", message_id)
                    self.slots.release()
                    continue
                work = await store.build_work_request(stored)
                request = self.conn.dispatch(work.id, message_id, enqueued_at=stored.enqueued_at, data=work)
                await self.send(work)
                log.info(
                    "sent %s to worker %s (%d messages in its thread)",
                    message_id,
                    self.worker_id,
                    len(work.thread.messages),
                )
            except BaseException:
                # not sent: back to the queue, as the reference does
                if request is not None:
                    self.conn.forget(request.request_id)
                with contextlib.suppress(Exception):
                    await store.reset_work(message_id)
                    await relay.enqueue_work(self.compat_hash, message_id, enforce_max_size=False)
                raise

    async def ping(self) -> None:
        """Ping the worker every ``worker_ping_interval``; flush the metrics' tally meanwhile."""
        interval = self.state.settings.worker_ping_interval
        while True:
            await asyncio.sleep(interval)
            self.conn.flush_metrics()
            await self.send(inference.PingRequest())

    async def update_session(self, metrics: inference.WorkerMetricsInfo | None) -> None:
        """Store the worker's metrics in its session, when a frame brought some (as the reference)."""
        self.session.requests_in_flight = len(self.conn)
        if metrics is not None:
            self.session.metrics = metrics
            await self.state.store.store_worker_session(self.session)

    async def on_response(
        self, request: DispatchedRequest | None, response: inference.WorkerResponse
    ) -> None:
        """A frame that is not a token: what the reference does with each."""
        store = self.state.store
        if isinstance(response, inference.PongResponse):
            await self.update_session(response.metrics)
        elif isinstance(response, inference.GeneralErrorResponse):
            log.warning("worker %s: general error: %s", self.worker_id, response.error)
            await self.update_session(response.metrics)
        elif request is None:
            return  # (the connection routes only pong and general_error without a request)
        elif isinstance(response, inference.GeneratedTextResponse):
            message = await store.complete_work(request.message_id, response.text, response.used_plugin)
            await self.conn.finish(request, inference.InternalFinishedMessageResponse(message=message))
            self.slots.release()
            await self.update_session(response.metrics)
        elif isinstance(response, inference.ErrorResponse):
            log.warning("worker %s: error on %s: %s", self.worker_id, request.message_id, response.error)
            message = await store.abort_work(request.message_id, response.error)
            await self.conn.finish(
                request, inference.InternalErrorResponse(error=response.error, message=message)
            )
            self.slots.release()
            await self.update_session(response.metrics)
        elif isinstance(response, inference.SafePromptResponse):
            await store.store_safe_prompt(request.message_id, response)

    async def end_requests(self) -> None:
        """The worker left: what it sent is flushed, and each message in flight ends."""
        state = self.state
        try:
            await self.conn.close()
        except RelayError as exc:
            log.error("worker %s: frames it sent may not have reached Redis: %s", self.worker_id, exc)
        for request in list(self.conn.requests.values()):
            self.conn.forget(request.request_id)
            message_id = request.message_id
            try:
                if request.frames == 0:
                    log.warning(
                        "worker %s left before answering %s: back to the queue", self.worker_id, message_id
                    )
                    await state.store.reset_work(message_id)
                    await state.relay.enqueue_work(self.compat_hash, message_id, enforce_max_size=False)
                else:
                    log.warning("worker %s left in the middle of %s: aborted", self.worker_id, message_id)
                    message = await state.store.abort_work(message_id, ABORTED)
                    final: Any = inference.InternalErrorResponse(error=ABORTED, message=message)
                    await state.relay.publish(message_id, final)
            except Exception:
                log.exception("worker %s: could not end %s", self.worker_id, message_id)
