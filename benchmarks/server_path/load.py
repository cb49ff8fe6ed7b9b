"""The load process: K workers streaming tokens over websockets and K browsers reading SSE.

``python -m benchmarks.server_path.load --worker-port P --browser-port Q --redis URL ...``
prints one JSON document with a result per phase. A phase is one round of K fresh chats of N
tokens each, frames exactly as the reference worker sends them (``TokenResponse`` JSON from
pydantic's ``.json()``, i.e. ``json.dumps`` of the fields in declaration order, one text frame
per token, then a ``GeneratedTextResponse`` with metrics).

* ``flood``: every worker writes all its frames at once; the result is the throughput at
  saturation (tokens / time from the first send to the last token received).
* ``<rate>`` (tokens/s, all chats together): token ``i`` of chat ``c`` is sent at
  ``t0 + (i*K + c) / rate``; the result adds the latency of each token from the moment its
  worker wrote it to the moment its browser received it (one clock: same process).

Each browser checks that it gets exactly its chat's tokens in order (request id, token id and
text of each), then the final message with the full text. The server's CPU time comes from its
``/stats`` endpoint and Redis's from ``INFO cpu``, read just before the first send and just
after the last receipt, so connection set-up and tear-down are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from benchmarks.server_path import wire

_WORDS = (
    " the model answers questions about history science cooking travel and code with care while "
    "citing sources when it can and saying so when it cannot be sure of the facts ,"
).split(" ")[1:]

PHASE_TIMEOUT = 300.0


class Event(msgspec.Struct):
    """What a browser reads from each event's data (other fields are skipped)."""

    response_type: str
    request_id: str | None = None
    text: str = ""
    token_id: int | None = None


_decode_event = msgspec.json.Decoder(Event).decode


@dataclass
class Chat:
    """One chat of a phase: the frames its worker sends and what its browser must get."""

    request_id: str
    tokens: list[tuple[int, str]]
    frames: list[bytes]
    final: bytes
    full_text: str
    send_times: list[float] = field(default_factory=list)


def _reference_json(doc: dict[str, Any]) -> bytes:
    # pydantic 1.x ``.json()`` is ``json.dumps(self.dict())``: default separators, field order.
    return json.dumps(doc).encode()


def make_chats(phase: int, chats: int, tokens: int, seed: int = 16) -> list[Chat]:
    """Deterministic chats for one phase (fresh request ids per phase)."""
    rng = random.Random(seed * 1000 + phase)
    out: list[Chat] = []
    for _ in range(chats):
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        toks = [(rng.randrange(32000), " " + rng.choice(_WORDS)) for _ in range(tokens)]
        frames = [
            wire.client_frame(
                _reference_json(
                    {
                        "request_id": rid,
                        "response_type": "token",
                        "text": text,
                        "log_prob": -rng.random() * 3,
                        "token_id": token_id,
                    }
                )
            )
            for token_id, text in toks
        ]
        full = "".join(text for _, text in toks)
        final = wire.client_frame(
            _reference_json(
                {
                    "request_id": rid,
                    "response_type": "generated_text",
                    "text": full,
                    "finish_reason": "length",
                    "metrics": {
                        "created_at": "2023-04-01T12:00:00+00:00",
                        "cpu_usage": 12.5,
                        "mem_usage": 43.25,
                        "swap_usage": 0.0,
                        "gpus": [{"gpu_usage": 97.0, "mem_usage": 81.5}],
                    },
                    "used_plugin": None,
                }
            )
        )
        out.append(Chat(rid, toks, frames, final, full, [0.0] * tokens))
    return out


class Tally:
    """What all browsers of a phase got."""

    def __init__(self, chats: int) -> None:
        self.pending = chats
        self.done = asyncio.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.error_count = 0
        self.tokens_ok = 0
        self.first_receive = 0.0
        self.last_receive = 0.0

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < 10:
            self.errors.append(text)

    def finish(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.done.set()


class Dechunker:
    """Decodes an HTTP/1.1 chunked body as it arrives."""

    def __init__(self) -> None:
        self.buf = b""
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        pos = 0
        while not self.ended:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                self.ended = True
                break
            if len(buf) < eol + 2 + size + 2:
                break
            out.append(buf[eol + 2 : eol + 2 + size])
            pos = eol + 2 + size + 2
        self.buf = buf[pos:]
        return b"".join(out)


class EventStreamReader(asyncio.Protocol):
    """One browser's HTTP/1.1 event stream: the response head, chunked bodies, and each
    ``data:`` event's payload handed to ``on_payload`` (comment pings skipped); records the
    chat's first failure in ``tally`` under ``label``."""

    def __init__(self, tally: Tally, label: str) -> None:
        self.tally = tally
        self.label = label
        self.buf = b""
        self.head = False
        self.dechunk: Dechunker | None = None
        self.head_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.count = 0
        self.finished = False
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.head:
            data = self.buf + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if not data.startswith(b"HTTP/1.1 200"):
                self.fail(f"bad response {data[:60]!r}")
                return
            self.head = True
            self.head_seen.set_result(None)
            if b"transfer-encoding: chunked" in data[:end].lower():
                self.dechunk = Dechunker()
            self.buf = b""
            data = data[end + 4 :]
        if self.dechunk is not None:
            data = self.dechunk.feed(data)
        buf = self.buf + data if self.buf else data
        pos = 0
        while (end := buf.find(b"\n\n", pos)) >= 0:
            event = buf[pos:end]
            pos = end + 2
            if event.startswith(b":"):
                continue  # a comment ping
            if not event.startswith(b"data: "):
                self.fail(f"not a data event: {event[:60]!r}")
                return
            self.on_payload(event[6:], now)
        self.buf = buf[pos:]

    def on_payload(self, payload: bytes, now: float) -> None:
        raise NotImplementedError

    def fail(self, text: str) -> None:
        self.tally.error(f"{self.label}: {text}")
        if not self.head_seen.done():
            self.head_seen.set_result(None)
        if not self.finished:
            self.finished = True
            self.tally.finish()
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.fail("connection closed before the final message")


class Browser(EventStreamReader):
    """One browser of a variant's stream (the worker's frames as events): checks order and
    completeness, records latencies."""

    def __init__(self, chat: Chat, tally: Tally) -> None:
        super().__init__(tally, chat.request_id)
        self.chat = chat

    def on_payload(self, payload: bytes, now: float) -> None:
        self.on_event(_decode_event(payload), now)

    def on_event(self, ev: Event, now: float) -> None:
        chat = self.chat
        if self.finished:
            self.tally.error(f"{chat.request_id}: event after the final one")
            return
        if ev.request_id != chat.request_id:
            self.tally.error(f"{chat.request_id}: event of request {ev.request_id}")
            return
        if ev.response_type == "token":
            k = self.count
            self.count += 1
            if k >= len(chat.tokens) or chat.tokens[k] != (ev.token_id, ev.text):
                self.tally.error(f"{chat.request_id}: token {k} is {(ev.token_id, ev.text)}")
                return
            self.tally.latencies.append(now - chat.send_times[k])
            self.tally.tokens_ok += 1
            if not self.tally.first_receive:
                self.tally.first_receive = now
            self.tally.last_receive = now
        elif ev.response_type == "generated_text":
            self.finished = True
            if self.count != len(chat.tokens) or ev.text != chat.full_text:
                self.tally.error(f"{chat.request_id}: final message after {self.count} tokens")
            self.tally.finish()
        else:
            self.tally.error(f"{chat.request_id}: unexpected {ev.response_type}")


class Worker(asyncio.Protocol):
    """One worker's websocket: the handshake, then frames written by the phase's sender."""

    def __init__(self, accept: str) -> None:
        self.accept = accept
        self.buf = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            return  # a close frame or pong: nothing to do
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            ok = self.buf.startswith(b"HTTP/1.1 101") and self.accept.encode() in self.buf
            if ok:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(wire.ProtocolError(f"bad handshake {self.buf[:80]!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))


async def _http_get_json(port: int, path: str) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def _cpu_sample(
    stat_ports: list[int], redis_clients: list[Any]
) -> tuple[list[float], float, float, float, float, list[dict[str, float]], list[float]]:
    stats = [await _http_get_json(p, "/stats") for p in stat_ports]
    servers = [float(s["cpu"]) for s in stats]
    nodes = []
    for client in redis_clients:  # (a cluster's nodes: each one's own)
        info = await client.info("cpu")
        nodes.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    now = time.perf_counter()
    return servers, sum(nodes), time.process_time(), machine_busy_seconds(), now, stats, nodes


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (``/proc/stat``, all CPUs)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    values = [int(v) for v in fields[:8]]
    return (sum(values) - values[3] - values[4]) / _CLK_TCK


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run_phase(
    phase_index: int,
    phase: str,
    *,
    worker_port: int,
    browser_port: int,
    stat_ports: list[int],
    redis_clients: list[Any],
    chats: int,
    tokens: int,
) -> dict[str, Any]:
    """One phase (``flood`` or a rate in tokens/s); returns its figures."""
    loop = asyncio.get_running_loop()
    rate = None if phase == "flood" else float(phase)
    all_chats = make_chats(phase_index, chats, tokens)
    tally = Tally(chats)

    browsers: list[Browser] = []
    for chat in all_chats:
        _, b = await loop.create_connection(lambda chat=chat: Browser(chat, tally), "127.0.0.1", browser_port)
        b.transport.write(f"GET /chat/{chat.request_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        browsers.append(b)
    await asyncio.gather(*(b.head_seen for b in browsers))
    workers: list[Worker] = []
    for _ in all_chats:
        request, accept = wire.handshake_request("127.0.0.1", "/work")
        _, w = await loop.create_connection(lambda accept=accept: Worker(accept), "127.0.0.1", worker_port)
        w.transport.write(request)
        workers.append(w)
    await asyncio.gather(*(w.ready for w in workers))
    await asyncio.sleep(0.3)  # let every stream handler reach its first read
    # The phase's set-up (chats, frames, connections) is long-lived: keep the collector from
    # walking it again and again while latencies are measured (a full collection of this heap
    # pauses the process for milliseconds, which would show up as the server's latency).
    gc.collect()
    gc.freeze()

    before = await _cpu_sample(stat_ports, redis_clients)
    t0 = time.perf_counter()
    if rate is None:
        for chat, w in zip(all_chats, workers, strict=True):
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
                chat = all_chats[c]
                transport = workers[c].transport
                transport.write(chat.frames[i])
                chat.send_times[i] = now
                if i == tokens - 1:
                    transport.write(chat.final)
                n += 1
            await asyncio.sleep(0.0005)
    send_end = time.perf_counter()
    try:
        await asyncio.wait_for(tally.done.wait(), PHASE_TIMEOUT)
    except asyncio.TimeoutError:
        tally.error(f"timed out: {tally.pending} chats unfinished after {PHASE_TIMEOUT} s")
    after = await _cpu_sample(stat_ports, redis_clients)

    gc.unfreeze()
    for w in workers:
        w.transport.write(wire.client_frame(b"\x03\xe8", wire.OP_CLOSE))
        w.transport.close()
    for b in browsers:
        b.transport.close()

    result = phase_result(
        phase, rate, chats, tokens, tally=tally, t0=t0, send_end=send_end, before=before, after=after
    )
    await asyncio.sleep(0.2)  # let both sides close before the next phase
    return result


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import redis.asyncio

    clients = [redis.asyncio.Redis.from_url(url) for url in args.redis]
    stat_ports = sorted({args.worker_port, args.browser_port})
    results = []
    try:
        for index, phase in enumerate(args.phase):
            results.append(
                await run_phase(
                    index,
                    phase,
                    worker_port=args.worker_port,
                    browser_port=args.browser_port,
                    stat_ports=stat_ports,
                    redis_clients=clients,
                    chats=args.chats,
                    tokens=args.tokens,
                )
            )
    finally:
        for client in clients:
            await client.aclose()
    return results


def raise_fd_limit() -> None:
    """Many sockets per process: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def phase_result(
    phase: str,
    rate: float | None,
    chats: int,
    tokens: int,
    *,
    tally: Tally,
    t0: float,
    send_end: float,
    before: Any,
    after: Any,
) -> dict[str, Any]:
    """One phase's figures from its tally and the CPU samples (``_cpu_sample``) around it."""
    total_tokens = chats * tokens
    wall = (tally.last_receive or time.perf_counter()) - t0
    span = tally.last_receive - tally.first_receive
    lat = sorted(tally.latencies)
    server_cpu = [a - b for a, b in zip(after[0], before[0], strict=True)]
    result: dict[str, Any] = {
        "phase": phase,
        "offered_tps": rate,
        "chats": chats,
        "tokens_per_chat": tokens,
        "tokens": total_tokens,
        "tokens_delivered_in_order": tally.tokens_ok,
        "chats_complete": chats - tally.pending,
        "errors": tally.error_count,
        "error_samples": tally.errors,
        "ok": tally.error_count == 0 and tally.tokens_ok == total_tokens,
        "send_seconds": send_end - t0,
        "wall_seconds": wall,
        # Tokens per second between the first and the last receipt: the rate the browsers got
        # (not biased by the first token's latency, which matters in short phases).
        "achieved_tps": (tally.tokens_ok - 1) / span if span > 0 else float("nan"),
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_token": sum(server_cpu) / total_tokens * 1e6,
        # the servers' garbage collector during the phase: time paused, longest pause, full passes
        "server_gc_ms": [
            (a["gc_seconds"] - b["gc_seconds"]) * 1e3 for a, b in zip(after[5], before[5], strict=True)
        ],
        "server_gc_longest_ms": [a["gc_longest"] * 1e3 for a in after[5]],
        "server_gc_full": [a["gc_full"] - b["gc_full"] for a, b in zip(after[5], before[5], strict=True)],
        "redis_cpu_us_per_token": (after[1] - before[1]) / total_tokens * 1e6,
        # per Redis node (several for a cluster), in the order of --redis
        "redis_cpu_us_per_token_by_node": [
            (a - b) / total_tokens * 1e6 for a, b in zip(after[6], before[6], strict=True)
        ],
        "load_cpu_us_per_token": (after[2] - before[2]) / total_tokens * 1e6,
        # CPU the rest of the machine (other work, not this benchmark) used meanwhile, in cores.
        "others_cores": (
            (after[3] - before[3]) - sum(server_cpu) - (after[1] - before[1]) - (after[2] - before[2])
        )
        / (after[4] - before[4]),
    }
    if rate is not None:
        result.update(
            latency_ms_p50=_percentile(lat, 0.50) * 1e3,
            latency_ms_p90=_percentile(lat, 0.90) * 1e3,
            latency_ms_p99=_percentile(lat, 0.99) * 1e3,
            latency_ms_max=(lat[-1] if lat else float("nan")) * 1e3,
        )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_path.load")
    parser.add_argument("--worker-port", type=int, required=True)
    parser.add_argument("--browser-port", type=int, required=True)
    parser.add_argument(
        "--redis", action="append", required=True, help="a Redis node to read CPU of (repeat: a cluster's)"
    )
    parser.add_argument("--chats", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--phase", action="append", required=True, help="flood or a rate in tokens/s")
    args = parser.parse_args(argv)
    raise_fd_limit()
    results = asyncio.run(run(args))
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
