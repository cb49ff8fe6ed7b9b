"""A real HTTP/1.1 server on 127.0.0.1 whose answers are scripted, for the API client's fault tests.

Each connection carries one request (every answer says ``Connection: close``). The server
records the request, then runs the next scripted action on the socket: a well-formed answer,
or a misbehaviour (stall, drip, close mid-body). Actions wait on the server's stop event, so
stopping the server ends a stalled action at once.

``MockBackend`` has the same ``script``/``requests`` interface without a socket: the client
gets it as ``transport=backend.transport`` (an ``httpx.MockTransport``), for the tests that
are about answers and retries rather than about connections.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import anyio
import httpx


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


Action = Callable[[socket.socket, threading.Event], None]


def _head(status: int, headers: dict[str, str], reason: str | None = None) -> bytes:
    try:
        phrase = reason if reason is not None else HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Respond:
    """A complete, well-formed answer: written to a socket by ``FaultServer``, or handed to the
    client in-process by ``MockBackend`` (the same status, headers and body either way)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    content_type: str = "application/json"

    def all_headers(self) -> dict[str, str]:
        headers = {"Content-Length": str(len(self.body))}
        if self.body:
            headers["Content-Type"] = self.content_type
        headers.update(self.headers or {})
        return headers

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_head(self.status, self.all_headers()) + self.body)

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(self.status, headers=self.all_headers(), content=self.body, request=request)


def respond(
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Respond:
    """A complete answer."""
    return Respond(status, body, headers, content_type)


def respond_json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Respond:
    """A complete answer with ``obj`` as its JSON body."""
    return respond(status, json.dumps(obj).encode(), headers)


def close_mid_body(status: int = 200, declared: int = 500, sent: bytes = b'{"id": "49') -> Action:
    """Announce ``declared`` body bytes, send only ``sent``, then close the connection."""

    def action(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            _head(status, {"Content-Length": str(declared), "Content-Type": "application/json"}) + sent
        )

    return action


def stall(seconds: float) -> Action:
    """Read the request, answer nothing for ``seconds`` (or until the server stops), then close."""

    def action(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(seconds)

    return action


def drip(interval: float = 0.05) -> Action:
    """Send the head of an answer, then one body byte every ``interval`` seconds, forever.

    Each byte arrives well within any read timeout, so only an overall deadline ends the call.
    """

    def action(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_head(200, {"Content-Length": "1000000", "Content-Type": "application/json"}))
        while not stop.wait(interval):
            conn.sendall(b" ")

    return action


def respond_chunked(status: int, body: bytes, chunk_size: int = 256) -> Action:
    """A complete answer without ``Content-Length``: ``body`` in chunks of ``chunk_size``."""

    def action(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_head(status, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}))
        for start in range(0, len(body), chunk_size):
            part = body[start : start + chunk_size]
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    return action


def _wait_for_client_close(conn: socket.socket, stop: threading.Event) -> bool:
    """Whether the client closed the connection (before the server stopped)."""
    conn.settimeout(0.05)
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                return True
        except TimeoutError:
            continue
        except OSError:  # reset by the client
            return True
    return False


def announce_only(declared: int, closed_by_client: threading.Event, status: int = 200) -> Action:
    """Send the head of an answer announcing ``declared`` body bytes, then no body at all.

    Sets ``closed_by_client`` once the client closes the connection; a client that waits for
    the body waits until its own timeout (or until the server stops).
    """

    def action(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_head(status, {"Content-Length": str(declared), "Content-Type": "application/json"}))
        if _wait_for_client_close(conn, stop):
            closed_by_client.set()

    return action


def flood_chunked(total: int, closed_by_client: threading.Event, chunk_size: int = 16384) -> Action:
    """A 200 answer without ``Content-Length``, sent as fast as the client reads: ``total`` body
    bytes in chunks (no last chunk, the answer never ends), then nothing.

    Sets ``closed_by_client`` once the client closes the connection, mid-flood or after.
    """

    def action(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(_head(200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}))
        part = f"{chunk_size:x}\r\n".encode() + b" " * chunk_size + b"\r\n"
        try:
            for _ in range(total // chunk_size):
                if stop.is_set():
                    return
                conn.sendall(part)
        except TimeoutError:  # the client stopped reading but kept the connection open
            return
        except OSError:  # the client closed (or reset) the connection mid-flood
            closed_by_client.set()
            return
        if _wait_for_client_close(conn, stop):
            closed_by_client.set()

    return action


class FaultServer:
    """Serves scripted actions in order; a request with no action left gets a 599 answer."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[RecordedRequest] = []
        self._script: deque[Action] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    def script(self, *actions: Action) -> None:
        """Queue the actions for the next requests, in order."""
        with self._lock:
            self._script.extend(actions)

    def start(self) -> None:
        self._accept_thread.start()

    def stop(self) -> None:
        self._stop.set()
        with suppress(OSError):
            self._listener.close()
        self._accept_thread.join(5)
        for thread in list(self._threads):
            thread.join(5)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = self._read_request(conn)
            except (OSError, ValueError):
                return
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                action = self._script.popleft() if self._script else respond(599, b"no scripted answer left")
            with suppress(OSError):  # the client may have given up and closed the connection
                action(conn, self._stop)

    @staticmethod
    def _read_request(conn: socket.socket) -> RecordedRequest | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return RecordedRequest(method=method, path=target, headers=headers, body=body)


class MockBackend:
    """Scripted answers (``respond``/``respond_json``) served in-process by ``httpx.MockTransport``.

    Records each request as ``FaultServer`` does; a request with no answer left gets a 599.
    """

    url = "http://backend.test"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: deque[Respond] = deque()
        self.transport = httpx.MockTransport(self._handle)

    def script(self, *answers: Respond) -> None:
        """Queue the answers for the next requests, in order."""
        self._script.extend(answers)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.raw_path.decode("ascii"),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=request.content,
            )
        )
        answer = self._script.popleft() if self._script else respond(599, b"no scripted answer left")
        return answer.to_httpx(request)


class SleepRecorder:
    """The client's clock (``clock=``): real time, but each wait between retries is only
    recorded, not waited."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.sleep(0)


@contextmanager
def running_fault_server() -> Iterator[FaultServer]:
    server = FaultServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


__all__ = [
    "FaultServer",
    "RecordedRequest",
    "announce_only",
    "close_mid_body",
    "drip",
    "flood_chunked",
    "respond",
    "respond_chunked",
    "respond_json",
    "running_fault_server",
    "stall",
    "unused_port",
]
