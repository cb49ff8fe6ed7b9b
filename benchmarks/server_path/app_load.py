"""The load process for the example server (``asgi-app``): chats, workers and browsers through the
app's own endpoints.

``python -m benchmarks.server_path.app_load --port P --redis URL --chats K --tokens N --phase ...``
prints one JSON document with a result per phase, with the same figures as ``load.py``. Per phase,
before the clock starts:

* K chats are made as the website makes them (``POST /chats``, ``/prompter_message``,
  ``/assistant_message`` for model config ``_lorem``): K messages wait in ``work:{compat_hash}``;
* K browsers open ``GET /chats/{id}/messages/{id}/events`` (they get ``pending`` events);
* K workers connect to ``/workers/work`` as the reference worker does (``X-API-Key``,
  ``X-Protocol-Version``, a ``WorkerInfo`` with ``max_parallel_requests`` 1), and each gets one
  ``WorkRequest``; its thread's prompter message names the chat it answers.

Then each worker sends its request's N tokens (pydantic 1.x ``.json()`` text frames) and a
``generated_text``, all at once (``flood``) or spread at a rate, as ``load.py`` does; each browser
checks it gets its chat's tokens (``token`` events), all, in order, then the ``message`` event
with the full text.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from benchmarks.server_path import wire
from benchmarks.server_path.load import (
    PHASE_TIMEOUT,
    EventStreamReader,
    Tally,
    _cpu_sample,
    phase_result,
    raise_fd_limit,
)

API_KEY = "bench-key"
MODEL_CONFIG = "_lorem"


class _Message(msgspec.Struct):
    content: str | None = None


class AppEvent(msgspec.Struct):
    """What a browser reads of the reference's events (other fields skipped)."""

    event_type: str
    text: str = ""
    message: _Message | None = None
    error: str = ""


_decode_event = msgspec.json.Decoder(AppEvent).decode


@dataclass
class AppChat:
    """One chat: its ids, its tokens' texts, and (once dispatched) its worker's frames."""

    index: int
    tokens: list[str]
    chat_id: str = ""
    prompter_id: str = ""
    message_id: str = ""
    frames: list[bytes] = field(default_factory=list)
    final: bytes = b""
    send_times: list[float] = field(default_factory=list)

    @property
    def full_text(self) -> str:
        return "".join(self.tokens)


def make_frames(chat: AppChat, request_id: str) -> None:
    """The worker's frames for its request, as the reference worker writes them."""
    chat.frames = [
        wire.client_frame(
            json.dumps(
                {
                    "request_id": request_id,
                    "response_type": "token",
                    "text": t,
                    "log_prob": -0.5,
                    "token_id": i,
                }
            ).encode()
        )
        for i, t in enumerate(chat.tokens)
    ]
    chat.final = wire.client_frame(
        json.dumps(
            {
                "request_id": request_id,
                "response_type": "generated_text",
                "text": chat.full_text,
                "finish_reason": "length",
                "metrics": None,
                "used_plugin": None,
            }
        ).encode()
    )
    chat.send_times = [0.0] * len(chat.tokens)


class AppBrowser(EventStreamReader):
    """One browser of the app's event stream: skips ``pending``, checks tokens and the message."""

    def __init__(self, chat: AppChat, tally: Tally) -> None:
        super().__init__(tally, f"chat {chat.index}")
        self.chat = chat

    def on_payload(self, payload: bytes, now: float) -> None:
        self.on_event(_decode_event(payload), now)

    def on_event(self, ev: AppEvent, now: float) -> None:
        chat = self.chat
        if self.finished:
            self.tally.error(f"chat {chat.index}: event after the final one")
        elif ev.event_type == "token":
            k = self.count
            self.count += 1
            if k >= len(chat.tokens) or chat.tokens[k] != ev.text:
                self.tally.error(f"chat {chat.index}: token {k} is {ev.text!r}")
                return
            self.tally.latencies.append(now - chat.send_times[k])
            self.tally.tokens_ok += 1
            if not self.tally.first_receive:
                self.tally.first_receive = now
            self.tally.last_receive = now
        elif ev.event_type == "message":
            self.finished = True
            content = ev.message.content if ev.message is not None else None
            if self.count != len(chat.tokens) or content != chat.full_text:
                self.tally.error(f"chat {chat.index}: final message after {self.count} tokens")
            self.tally.finish()
        elif ev.event_type != "pending":
            self.tally.error(f"chat {chat.index}: unexpected {ev.event_type} {ev.error}")


class AppWorker(asyncio.Protocol):
    """One worker's websocket: the handshake with the reference's headers, its ``WorkerInfo``,
    then its one ``WorkRequest`` (server frames are unmasked: parsed here)."""

    def __init__(self, accept: str, worker_info: bytes) -> None:
        self.accept = accept
        self.worker_info = worker_info
        self.buf = b""
        self.upgraded = False
        self.work: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not (buf.startswith(b"HTTP/1.1 101") and self.accept.encode() in buf[:end]):
                self.work.set_exception(wire.ProtocolError(f"bad handshake {buf[:80]!r}"))
                return
            self.upgraded = True
            self.transport.write(wire.client_frame(self.worker_info))
            buf = buf[end + 4 :]
        while len(buf) >= 2:  # unmasked server frames (text: work, ping; close)
            length, head = buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    break
                length, head = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + length:
                break
            opcode, payload = buf[0] & 0x0F, buf[head : head + length]
            buf = buf[head + length :]
            if opcode == wire.OP_TEXT and not self.work.done():
                doc = json.loads(payload)
                if doc.get("request_type") == "work":
                    self.work.set_result(doc)
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.work.done():
            self.work.set_exception(ConnectionError("closed before a work request"))


def _worker_request(host: str) -> tuple[bytes, str]:
    request, accept = wire.handshake_request(host, "/workers/work")
    headers = f"X-API-Key: {API_KEY}\r\nX-Protocol-Version: 1\r\n\r\n".encode()
    return request[:-2] + headers, accept


def _worker_info() -> bytes:
    from oasst_shared.hardware import collect_hardware_info
    from oasst_shared.model_configs import MODEL_CONFIGS
    from oasst_shared.schemas import inference

    config = inference.WorkerConfig(model_config=MODEL_CONFIGS[MODEL_CONFIG], max_parallel_requests=1)
    return inference.WorkerInfo(config=config, hardware_info=collect_hardware_info()).json().encode()


async def _make_chats(port: int, phase: int, chats: int, tokens: int) -> list[AppChat]:
    import httpx

    out = [AppChat(c, [f" p{phase}c{c}t{i}" for i in range(tokens)]) for c in range(chats)]
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:

        async def one(chat: AppChat) -> None:
            chat.chat_id = (await client.post("/chats", json={})).json()["id"]
            r = await client.post(
                f"/chats/{chat.chat_id}/prompter_message", json={"content": f"chat {chat.index}"}
            )
            chat.prompter_id = r.json()["id"]
            body = {"parent_id": chat.prompter_id, "model_config_name": MODEL_CONFIG}
            r = await client.post(f"/chats/{chat.chat_id}/assistant_message", json=body)
            chat.message_id = r.json()["id"]

        await asyncio.gather(*(one(c) for c in out))
    return out


async def run_phase(
    phase_index: int, phase: str, *, port: int, redis_client: Any, chats: int, tokens: int
) -> Any:
    loop = asyncio.get_running_loop()
    rate = None if phase == "flood" else float(phase)
    all_chats = await _make_chats(port, phase_index, chats, tokens)
    by_chat_id = {c.chat_id: c for c in all_chats}
    tally = Tally(chats)
    browsers: list[AppBrowser] = []
    for chat in all_chats:
        _, b = await loop.create_connection(lambda chat=chat: AppBrowser(chat, tally), "127.0.0.1", port)
        path = f"/chats/{chat.chat_id}/messages/{chat.message_id}/events"
        b.transport.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        browsers.append(b)
    await asyncio.gather(*(b.head_seen for b in browsers))
    info = _worker_info()
    workers: list[AppWorker] = []
    for _ in all_chats:
        request, accept = _worker_request("127.0.0.1")
        _, w = await loop.create_connection(lambda accept=accept: AppWorker(accept, info), "127.0.0.1", port)
        w.transport.write(request)
        workers.append(w)
    works = await asyncio.wait_for(asyncio.gather(*(w.work for w in workers)), 60)
    order: list[tuple[AppChat, AppWorker]] = []
    for w, work in zip(workers, works, strict=True):
        chat = by_chat_id[work["thread"]["messages"][-1]["chat_id"]]
        make_frames(chat, work["id"])
        order.append((chat, w))
    order.sort(key=lambda cw: cw[0].index)
    await asyncio.sleep(0.3)
    gc.collect()
    gc.freeze()

    before = await _cpu_sample([port], [redis_client])
    t0 = time.perf_counter()
    if rate is None:
        for chat, w in order:
            w.transport.write(b"".join(chat.frames) + chat.final)
            chat.send_times[:] = [t0] * tokens
    else:
        total = chats * tokens
        n = 0
        while n < total:
            now = time.perf_counter()
            due = min(total, int((now - t0) * rate) + 1)
            while n < due:
                i, c = divmod(n, chats)
                chat, w = order[c]
                w.transport.write(chat.frames[i])
                chat.send_times[i] = now
                if i == tokens - 1:
                    w.transport.write(chat.final)
                n += 1
            await asyncio.sleep(0.0005)
    send_end = time.perf_counter()
    try:
        await asyncio.wait_for(tally.done.wait(), PHASE_TIMEOUT)
    except asyncio.TimeoutError:
        tally.error(f"timed out: {tally.pending} chats unfinished after {PHASE_TIMEOUT} s")
    after = await _cpu_sample([port], [redis_client])
    gc.unfreeze()
    for _, w in order:
        w.transport.write(wire.client_frame(b"\x03\xe8", wire.OP_CLOSE))
        w.transport.close()
    for b in browsers:
        b.transport.close()

    result = phase_result(
        phase, rate, chats, tokens, tally=tally, t0=t0, send_end=send_end, before=before, after=after
    )
    await asyncio.sleep(0.3)  # let both sides close before the next phase
    return result


async def run(args: argparse.Namespace) -> list[Any]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(args.redis)
    try:
        return [
            await run_phase(
                i, phase, port=args.port, redis_client=client, chats=args.chats, tokens=args.tokens
            )
            for i, phase in enumerate(args.phase)
        ]
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_path.app_load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--chats", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--phase", action="append", required=True, help="flood or a rate in tokens/s")
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    results = asyncio.run(run(args))
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
