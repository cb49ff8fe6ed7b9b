"""Response reading: a streamed answer's body, read whole or up to a size cap, and its decoding.

``read_answer`` reads through httpx's public streaming API (``aiter_bytes``, decoded bytes)
and keeps the body itself in an ``Answer``; the ``httpx.Response`` it came with is left
streamed and closed (its headers, status and request stay readable; its ``.content`` is not
set: the body is ``Answer.content``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx
import msgspec

from oasst_shared._decode_errors import DECODE_ERRORS, describe, type_name
from oasst_shared.api_client._errors import OasstApiResponseError
from oasst_shared.api_client._mapping import response_error, too_large_error

__all__ = ["UNCHECKED_CHUNKS", "Answer", "decode_answer", "read_answer"]

T = TypeVar("T")

UNCHECKED_CHUNKS = 1024
"""Chunks a capped read takes past the cap while its cancellation is not delivered.

Over a socket the cancellation arrives at the next read; until then httpx hands out what
that read already buffered (at most 64 KiB, in chunks of a few bytes at least). A stream
that reaches no checkpoint at all (an in-memory transport such as ``httpx.MockTransport``
with an endless body) would never be cancelled: the read is left after this many.
"""


@dataclass(frozen=True)
class Answer:
    """A complete answer: the response (status, headers, request) and its decoded body."""

    response: httpx.Response
    content: bytes

    @property
    def status_code(self) -> int:
        """The answer's status."""
        return self.response.status_code


def _content_length(headers: httpx.Headers) -> int | None:
    """The announced body size, ``None`` when not given (chunked) or not one plain number."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_answer(response: httpx.Response, cap: int | None) -> Answer:
    """Read a streamed answer's body, at most ``cap`` bytes (``None``: no limit).

    An answer that announces (``Content-Length``) or turns out to have a larger body raises
    ``OasstApiResponseError`` at once, with the rest of the body left unread. The limit
    counts the decoded bytes (after any ``Content-Encoding``). The caller closes the response.
    """
    if cap is not None:
        declared = _content_length(response.headers)
        if declared is not None and declared > cap:
            raise too_large_error(response, cap)
    chunks: list[bytes] = []
    size = 0
    too_large = False
    skipped = 0
    try:
        # Past the cap the read is cancelled, not just left: the cancellation comes up from
        # the next socket read through httpx's and httpcore's stream generators, closing the
        # connection and ending each generator (left half-way, they would be closed by the
        # garbage collector, with a ResourceWarning under trio). Chunks already buffered
        # are dropped on the way; nothing more is received.
        # A stream that never reaches a checkpoint (an in-memory transport) cannot be
        # cancelled this way: it is left after ``UNCHECKED_CHUNKS`` more chunks, and its
        # generators to the garbage collector.
        with anyio.CancelScope() as stop_reading:
            async for chunk in response.aiter_bytes():
                if too_large:
                    skipped += 1
                    if skipped > UNCHECKED_CHUNKS:
                        break
                    continue
                size += len(chunk)
                if cap is not None and size > cap:
                    too_large = True
                    chunks.clear()
                    stop_reading.cancel()
                else:
                    chunks.append(chunk)
    except httpx.HTTPError:
        if not too_large:
            raise
        # e.g. the server reset the connection we stopped reading: the answer stays too large
    if too_large:
        assert cap is not None
        raise too_large_error(response, cap)
    return Answer(response, b"".join(chunks))


def decode_answer(answer: Answer, decoder: msgspec.json.Decoder[T]) -> T:
    """The answer's body decoded by ``decoder``; ``OasstApiResponseError`` naming what is wrong."""
    content = answer.content

    def fail(problem: str) -> OasstApiResponseError:
        return response_error(answer.response, content, problem)

    expected = type_name(decoder.type)
    if not content.strip():
        raise fail(f"has no body, expected {expected}")
    try:
        return decoder.decode(content)
    except msgspec.ValidationError as exc:
        raise fail(f"does not match {expected}: {describe(exc, content, expected)}") from None
    except RecursionError:
        raise fail("is nested too deeply to decode") from None
    except DECODE_ERRORS as exc:
        raise fail(f"is not valid JSON ({describe(exc, content, expected)})") from None
    except (ValueError, TypeError) as exc:  # a struct's own check, should msgspec not wrap it
        raise fail(f"does not match {expected}: {exc}") from None
