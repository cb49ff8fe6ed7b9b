"""A misbehaving HTTP/1.1 server on 127.0.0.1 for the API client's chaos tests.

Unlike ``fault_server`` (one scripted answer per connection), this server keeps connections
alive, and for every request it reads it picks a *fault kind* from a seeded RNG keyed on the
request's call marker and attempt number (the ``x-chaos-call`` and ``x-chaos-attempt``
headers the test adds), so the kind a given attempt gets does not depend on thread
scheduling: a run is reproducible from its seed, timing aside. The kinds:

==================  ================================================================  =========
kind                what the server does                                              processed
==================  ================================================================  =========
``ok``              the endpoint's valid answer                                       yes
``delay_short``     waits well under the client's timeout, then the valid answer      yes
``delay_long``      waits past the client's timeout (by 0.3, 1 or 5 s), then answers  yes
``drop_before``     closes the connection (FIN) without answering                     maybe
``reset``           resets the connection (RST) without answering                     maybe
``drop_mid_body``   sends a head announcing more body than it sends, then closes      yes
``garbage_http``    random bytes instead of an HTTP answer, then closes               yes
``garbage_body``    200 with random bytes as the body                                 yes
``bad_encoding``    200 with ``Content-Encoding: gzip`` over a body that is not gzip  yes
``bad_chunked``     200, chunked, with a malformed chunk size, then closes            yes
``truncated_json``  200 with the valid JSON body cut short (Content-Length matches)   yes
``huge_valid``      200 with the valid JSON object padded to ``HUGE_BYTES``           yes
``huge_garbage``    200 with ``HUGE_BYTES`` of non-JSON                               yes
``huge_500``        500 with ``HUGE_BYTES`` of HTML                                   yes
``r429``            429, usually with ``Retry-After`` (or ``Retry-After-Ms``)         no
``r503``            503, sometimes with ``Retry-After``                               no
``r500_html``       500 with a small HTML page                                        yes
==================  ================================================================  =========

A request answered 429 or 503 was not processed; any other request the server read may
have been. Every request read is recorded (``ChaosRecord``) before it is answered. Besides
the per-request kinds, the server also misbehaves per connection and over time:

* a few new connections are closed (with RST) before the request is read: never received;
* idle keep-alive connections are closed by the server after a random idle time, or kept
  until the client closes them;
* "outages": the listening socket is closed for a moment and then bound again on the same
  port, so that new connections are refused meanwhile (the request never reached it).

The server counts the connections it has open; waits watch for the peer closing, so a
connection the client closes is closed on this side at once. ``stop()`` ends everything.
"""

from __future__ import annotations

import functools
import json
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "HUGE_BYTES",
    "KINDS",
    "NOT_PROCESSED",
    "ChaosRecord",
    "ChaosServer",
    "Chooser",
    "ValidAnswer",
    "huge_padding",
    "seeded_chooser",
]

HUGE_BYTES = 20 * 1024 * 1024

# kind -> weight of the default chooser
KINDS: dict[str, int] = {
    "ok": 36,
    "delay_short": 8,
    "delay_long": 3,
    "drop_before": 4,
    "reset": 3,
    "drop_mid_body": 4,
    "garbage_http": 4,
    "garbage_body": 4,
    "bad_encoding": 2,
    "bad_chunked": 2,
    "truncated_json": 4,
    "huge_valid": 1,
    "huge_garbage": 1,
    "huge_500": 1,
    "r429": 10,
    "r503": 8,
    "r500_html": 4,
}
NOT_PROCESSED = frozenset({"r429", "r503"})

ValidAnswer = Callable[[str, str, bytes, str], tuple[int, bytes]]
"""(method, path without query, body, call marker) -> (status, body) of the valid answer."""

Chooser = Callable[[str, int], str]
"""(call marker, attempt number) -> fault kind."""

_POLL = 0.05


@functools.cache
def huge_padding() -> bytes:
    """``HUGE_BYTES`` of padding (made once, on first use)."""
    return b"x" * HUGE_BYTES


@functools.cache
def _huge_html() -> bytes:
    return b"<html><body>" + b"<p>server on fire</p>" * (HUGE_BYTES // 21) + b"</body></html>"


def seeded_chooser(seed: int, weights: dict[str, int] | None = None) -> Chooser:
    """The default chooser: a kind drawn from ``weights`` by an RNG seeded on (seed, call, attempt)."""
    table = weights or KINDS
    kinds, kind_weights = list(table), list(table.values())

    def choose(call: str, attempt: int) -> str:
        return random.Random(f"{seed}/{call}/{attempt}").choices(kinds, kind_weights)[0]

    return choose


@dataclass
class ChaosRecord:
    """One request the server read completely, and what it did with it."""

    call: str  # the x-chaos-call header ("" if absent)
    attempt: int  # the x-chaos-attempt header (0 if absent)
    method: str
    path: str
    body: bytes
    kind: str
    retry_after: float | None = None  # the wait a 429/503 asked for, in seconds
    connection: int = 0

    @property
    def processed(self) -> bool:
        """Whether the backend may have acted on the request (anything but 429/503)."""
        return self.kind not in NOT_PROCESSED


@dataclass
class _Conn:
    sock: socket.socket
    number: int
    buffer: bytes = b""
    idle_limit: float | None = None  # None: keep the connection until the peer closes it
    peer_gone: bool = False  # the peer closed the connection during a wait


@dataclass
class _Stats:
    accepted: int = 0
    slammed: int = 0
    outages: int = 0
    rebind_failures: int = 0
    closed_by_peer: int = 0
    closed_by_server: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


class ChaosServer:
    """See the module docstring. ``client_timeout`` sizes the ``delay_*`` waits."""

    def __init__(
        self,
        valid_answer: ValidAnswer,
        chooser: Chooser,
        *,
        seed: int = 0,
        client_timeout: float = 1.0,
        slam_probability: float = 0.03,
        outages: bool = True,
        port: int = 0,
    ) -> None:
        self._valid_answer = valid_answer
        self._chooser = chooser
        self._seed = seed
        self._client_timeout = client_timeout
        self._slam_probability = slam_probability
        self._outages = outages
        self._listener: socket.socket | None = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.records: list[ChaosRecord] = []
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._accept_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._accept_thread.join(5)
        with self._lock:
            socks = list(self._open.values())
        for sock in socks:  # wakes a thread blocked in sendall
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(5)
        self._close_listener()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def records_of(self, call: str) -> list[ChaosRecord]:
        with self._lock:
            return [r for r in self.records if r.call == call]

    # ----------------------------------------------------------------------- accepting

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.close()

    def _accept_loop(self) -> None:
        rng = random.Random(f"{self._seed}/server")
        next_outage = time.monotonic() + rng.uniform(0.2, 0.6)
        while not self._stop.is_set():
            if self._outages and time.monotonic() >= next_outage:
                self._outage(rng.uniform(0.05, 0.25))
                next_outage = time.monotonic() + rng.uniform(0.8, 2.0)
            listener = self._listener
            if listener is None:
                return
            ready, _, _ = select.select([listener], [], [], _POLL)
            if not ready:
                continue
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            with self._lock:
                self.stats.accepted += 1
                number = self.stats.accepted
            conn_rng = random.Random(f"{self._seed}/conn/{number}")
            if conn_rng.random() < self._slam_probability:
                with self._lock:
                    self.stats.slammed += 1
                _reset(sock)
                continue
            idle_limit = conn_rng.choice([None, None, 0.2, 0.6])
            conn = _Conn(sock, number, idle_limit=idle_limit)
            with self._lock:
                self._open[number] = sock
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _outage(self, seconds: float) -> None:
        """Close the listener (new connections are refused), wait, then listen again."""
        self._close_listener()
        with self._lock:
            self.stats.outages += 1
        if self._stop.wait(seconds):
            return
        for _ in range(20):
            try:
                listener = socket.create_server(("127.0.0.1", self.port))
            except OSError:
                with self._lock:
                    self.stats.rebind_failures += 1
                if self._stop.wait(_POLL):
                    return
                continue
            with self._lock:
                self._listener = listener
            return

    # ----------------------------------------------------------------------- serving

    def _serve(self, conn: _Conn) -> None:
        closed_by_peer = False
        try:
            conn.sock.settimeout(10)
            while not self._stop.is_set():
                request = self._read_request(conn)
                if request is None:
                    closed_by_peer = True
                    break
                if not request:  # idle limit or stop
                    break
                keep = self._answer(conn, *request)
                if not keep:
                    break
        except OSError:
            closed_by_peer = True
        finally:
            with self._lock:
                self._open.pop(conn.number, None)
                if closed_by_peer or conn.peer_gone:
                    self.stats.closed_by_peer += 1
                else:
                    self.stats.closed_by_server += 1
            with suppress(OSError):
                conn.sock.close()

    def _recv(self, conn: _Conn, idle_limit: float | None) -> bytes | None:
        """Some bytes; b"" on the idle limit or stop; None when the peer closed."""
        until = None if idle_limit is None else time.monotonic() + idle_limit
        while not self._stop.is_set():
            if until is not None and time.monotonic() >= until:
                return b""
            ready, _, _ = select.select([conn.sock], [], [], _POLL)
            if ready:
                data = conn.sock.recv(65536)
                return data if data else None
        return b""

    def _read_request(self, conn: _Conn) -> tuple[str, str, dict[str, str], bytes] | tuple[()] | None:
        """(method, target, headers, body); None when the peer closed; () on idle limit/stop."""
        while b"\r\n\r\n" not in conn.buffer:
            data = self._recv(conn, conn.idle_limit if not conn.buffer else 5.0)
            if data is None:
                return None
            if not data:
                return ()
            conn.buffer += data
        head, _, rest = conn.buffer.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = self._recv(conn, 5.0)
            if data is None:
                return None
            if not data:
                return ()
            rest += data
        conn.buffer = rest[length:]
        return method, target, headers, rest[:length]

    def _wait(self, conn: _Conn, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the peer closes the connection (or on stop)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if self._stop.is_set():
                return False
            ready, _, _ = select.select([conn.sock], [], [], min(_POLL, left))
            if ready:
                try:
                    data = conn.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    conn.peer_gone = True
                    return False
                conn.buffer += data  # unexpected pipelined bytes: keep them
        return True

    def _answer(self, conn: _Conn, method: str, target: str, headers: dict[str, str], body: bytes) -> bool:
        """Answer one request; whether to keep the connection open."""
        call = headers.get("x-chaos-call", "")
        try:
            attempt = int(headers.get("x-chaos-attempt", "0"))
        except ValueError:
            attempt = 0
        kind = self._chooser(call, attempt)
        rng = random.Random(f"{self._seed}/{call}/{attempt}/detail")
        record = ChaosRecord(call, attempt, method, target, body, kind, connection=conn.number)
        status, valid = self._valid_answer(method, target.partition("?")[0], body, call)
        keep_alive = rng.random() < 0.75
        sock = conn.sock

        def send(status: int, payload: bytes | list[bytes], extra: dict[str, str] | None = None) -> bool:
            parts = payload if isinstance(payload, list) else [payload]
            length = sum(len(p) for p in parts)
            fields = {"Content-Length": str(length)}
            if length:
                fields["Content-Type"] = "application/json"
            fields.update(extra or {})
            fields["Connection"] = "keep-alive" if keep_alive else "close"
            sock.sendall(_head(status, fields))
            for part in parts:
                sock.sendall(part)
            return keep_alive

        if kind == "r429":
            choice = rng.choice(["0", "0.05", "0.1", "30", "ms", None])
            extra: dict[str, str] = {}
            if choice == "ms":
                extra["Retry-After-Ms"] = "40"
                record.retry_after = 0.04
            elif choice is not None:
                extra["Retry-After"] = choice
                record.retry_after = float(choice)
            payload = json.dumps({"message": "Too many requests", "error_code": 429}).encode()
            self._record(record)
            return send(429, payload, extra)
        if kind == "r503":
            choice = rng.choice(["0", "0.05", "30", None, None])
            extra = {}
            if choice is not None:
                extra["Retry-After"] = choice
                record.retry_after = float(choice)
            self._record(record)
            return send(503, rng.choice([b"", b"<html>Service Unavailable</html>"]), extra)

        self._record(record)
        if kind in ("ok", "delay_short", "delay_long"):
            if kind == "delay_short":
                seconds = rng.uniform(0.02, 0.3) * self._client_timeout
            elif kind == "delay_long":
                seconds = self._client_timeout + rng.choice([0.3, 1.0, 5.0])
            else:
                seconds = 0.0
            if seconds and not self._wait(conn, seconds):
                return False
            return send(status, valid)
        if kind == "drop_before":
            return False
        if kind == "reset":
            _reset(sock)
            return False
        if kind == "drop_mid_body":
            sent = valid[: max(1, len(valid) // 2)] if valid else b'{"id": "'
            sock.sendall(
                _head(200, {"Content-Length": str(len(sent) + 100), "Content-Type": "application/json"})
            )
            sock.sendall(sent)
            return False
        if kind == "garbage_http":
            sock.sendall(b"\x00\xff" + rng.randbytes(rng.randint(10, 3000)))
            return False
        if kind == "garbage_body":
            return send(200, b"\x00\xff<" + rng.randbytes(rng.randint(10, 3000)))
        if kind == "bad_encoding":
            return send(200, valid or b"{}", {"Content-Encoding": "gzip"})
        if kind == "bad_chunked":
            head = _head(200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
            sock.sendall(head + b'5\r\n{"id"\r\nzz-not-hex\r\n')
            return False
        if kind == "truncated_json":
            whole = valid or b'{"id": "497f6eca-6276-4993-bfeb-53cbbbba6f08", "type": "task_done"}'
            return send(200, whole[: rng.randint(1, len(whole) - 1)])
        if kind == "huge_valid":
            if valid.startswith(b"{") and len(valid) > 2:
                return send(200, [b'{"padding": "', huge_padding(), b'", ', valid[1:]])
            return send(200, [b'"', huge_padding(), b'"'])
        if kind == "huge_garbage":
            return send(200, [b"<", huge_padding()])
        if kind == "huge_500":
            return send(500, _huge_html(), {"Content-Type": "text/html"})
        if kind == "r500_html":
            return send(
                500,
                b"<html><body><h1>Internal Server Error</h1></body></html>",
                {"Content-Type": "text/html"},
            )
        raise AssertionError(f"unknown chaos kind {kind!r}")

    def _record(self, record: ChaosRecord) -> None:
        with self._lock:
            self.records.append(record)
            self.stats.kinds[record.kind] = self.stats.kinds.get(record.kind, 0) + 1


def _head(status: int, headers: dict[str, str]) -> bytes:
    phrase = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0) instead of FIN."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()
