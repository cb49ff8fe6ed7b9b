"""Token streaming end to end on loopback, as the stack does it.

A worker streams N ``TokenResponse`` frames over a real websocket to a server that decodes
each through ``WorkerResponse`` and relays it as a Server-Sent Event over HTTP to a client
that parses the event stream and decodes each token. Everything binds 127.0.0.1 and stops by
itself. Run with the structs (our codec) and with the Pydantic views in the same process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import messages
from oasst_shared import codec
from oasst_shared.schemas import inference


@dataclass(frozen=True)
class Flavour:
    name: str
    make_token: Callable[[int], Any]
    encode: Callable[[Any], bytes]  # worker: message -> websocket frame
    decode: Callable[[bytes], Any]  # server and client: frame -> message
    sse: Callable[[Any], bytes]  # server: message -> SSE frame


def struct_flavour() -> Flavour:
    rid = messages.REQUEST_ID
    return Flavour(
        name="struct",
        make_token=lambda i: inference.TokenResponse(
            request_id=rid, text=f" t{i}", log_prob=-0.5, token_id=i
        ),
        encode=codec.worker_response.encode,
        decode=codec.worker_response.decode,
        sse=codec.sse_frame,
    )


def view_flavour() -> Flavour | None:
    try:
        from pydantic import TypeAdapter

        from oasst_compat.schemas import inference as views
    except ImportError:
        return None
    adapter: TypeAdapter[Any] = TypeAdapter(views.WorkerResponse)
    rid = messages.REQUEST_ID

    def encode(obj: Any) -> bytes:
        return obj.model_dump_json(by_alias=True).encode()

    def sse(obj: Any) -> bytes:
        return b"data: " + encode(obj) + b"\n\n"

    return Flavour(
        name="view",
        make_token=lambda i: views.TokenResponse(request_id=rid, text=f" t{i}", log_prob=-0.5, token_id=i),
        encode=encode,
        decode=adapter.validate_json,
        sse=sse,
    )


async def _run(flavour: Flavour, tokens: int) -> float:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def worker_socket(ws: Any) -> None:  # server side of the worker's websocket
        async for frame in ws:
            msg = flavour.decode(frame if isinstance(frame, bytes) else frame.encode())
            if msg.response_type != "token":
                raise AssertionError(f"unexpected {msg.response_type}")
            queue.put_nowait(flavour.sse(msg))
        queue.put_nowait(None)

    async def sse_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        while (item := await queue.get()) is not None:
            writer.write(item)
            await writer.drain()
        writer.close()

    ws_server = await serve(worker_socket, "127.0.0.1", 0, compression=None)
    http_server = await asyncio.start_server(sse_client, "127.0.0.1", 0)
    ws_port = next(iter(ws_server.sockets)).getsockname()[1]
    http_port = http_server.sockets[0].getsockname()[1]

    received = 0

    async def browser() -> None:
        nonlocal received
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(b"GET /chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        parser = codec.SSEParser()
        while chunk := await reader.read(65536):
            for event in parser.feed(chunk):
                token = flavour.decode(event.data.encode())
                if token.token_id != received:
                    raise AssertionError("token out of order")
                received += 1
        writer.close()

    start = time.perf_counter()
    client = asyncio.create_task(browser())
    async with connect(f"ws://127.0.0.1:{ws_port}", compression=None, proxy=None) as ws:
        for i in range(tokens):
            await ws.send(flavour.encode(flavour.make_token(i)), text=True)
    await asyncio.wait_for(client, timeout=120)
    elapsed = time.perf_counter() - start
    ws_server.close()
    http_server.close()
    await ws_server.wait_closed()
    await http_server.wait_closed()
    if received != tokens:
        raise AssertionError(f"client got {received} of {tokens} tokens")
    return elapsed


def tokens_per_second(tokens: int = 2000, rounds: int = 4) -> dict[str, float]:
    """Best-of-``rounds`` tokens per second for each flavour available.

    A warm-up run first (imports, first connections), then rounds that alternate which flavour
    goes first, so neither is favoured by the order.
    """
    flavours = [struct_flavour()]
    view = view_flavour()
    if view is not None:
        flavours.append(view)
    for flavour in flavours:
        asyncio.run(_run(flavour, min(tokens, 200)))
    best: dict[str, float] = {}
    for round_ in range(rounds):
        for flavour in flavours if round_ % 2 == 0 else flavours[::-1]:
            rate = tokens / asyncio.run(_run(flavour, tokens))
            best[flavour.name] = max(best.get(flavour.name, 0.0), rate)
    return best
