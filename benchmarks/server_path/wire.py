"""The few bytes of HTTP/1.1 and RFC 6455 that the benchmark's server and load processes speak.

Both endpoints run on plain ``asyncio`` streams: the per-token budget the issue sets (40,000
tokens/s per core is 25 us per token for everything) is smaller than what a framework's
per-frame machinery costs in pure Python, and what is measured here is the token path through
Redis, which is the same whatever parses the websocket. Client frames are masked as RFC 6455
requires; unmasking uses the C helper that ships with ``websockets``.
"""

from __future__ import annotations

import base64
import hashlib
import os

from websockets.speedups import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class ProtocolError(Exception):
    """A peer broke the (small) protocol this benchmark speaks."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and lower-cased headers of an HTTP/1.1 request head."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise ProtocolError(f"bad request line {lines[0]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def handshake_response(headers: dict[str, str]) -> bytes:
    """The server's ``101 Switching Protocols`` for a websocket upgrade request."""
    key = headers.get("sec-websocket-key")
    if headers.get("upgrade", "").lower() != "websocket" or not key:
        raise ProtocolError("not a websocket upgrade request")
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def handshake_request(host: str, path: str) -> tuple[bytes, str]:
    """A client's upgrade request and the ``Sec-WebSocket-Accept`` it must get back."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept_key(key)


def _header(first: int, length: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, bit | length))
    if length < 1 << 16:
        return bytes((first, bit | 126)) + length.to_bytes(2, "big")
    return bytes((first, bit | 127)) + length.to_bytes(8, "big")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked frame as a websocket client sends it."""
    mask = os.urandom(4)
    return _header(0x80 | opcode, len(payload), True) + mask + apply_mask(payload, mask)


def server_frame(payload: bytes, opcode: int) -> bytes:
    """One final, unmasked frame as a websocket server sends it."""
    return _header(0x80 | opcode, len(payload), False) + payload


class FrameParser:
    """Splits a server's incoming byte stream into (opcode, payload) messages.

    Client frames must be masked; fragmented messages are reassembled; control frames may come
    between fragments.
    """

    def __init__(self, max_size: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self._max = max_size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if not b1 & 0x80:
                raise ProtocolError("unmasked client frame")
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if length > self._max:
                raise ProtocolError(f"frame of {length} bytes exceeds {self._max}")
            start = pos + head + 4
            if end - start < length:
                break
            payload = apply_mask(buf[start : start + length], buf[pos + head : start])
            pos = start + length
            opcode = b0 & 0x0F
            # Control frames are never fragmented; a data frame is whole when final and first.
            if opcode >= OP_CLOSE or (b0 & 0x80 and opcode and not self._fragments):
                out.append((opcode, payload))
            else:
                if opcode:
                    if self._fragments:
                        raise ProtocolError("new message inside a fragmented one")
                    self._fragment_op = opcode
                elif not self._fragments:
                    raise ProtocolError("continuation frame without a message")
                self._fragments.append(payload)
                if b0 & 0x80:
                    out.append((self._fragment_op, b"".join(self._fragments)))
                    self._fragments = []
        self._buf = buf[pos:]
        return out
