"""Error mapping: what failed (an answer, a transport error, the deadline) -> the ``OasstApiError``.

Every function here builds an error from the httpx objects of the failed attempt; none
raises, sends or reads anything. Bodies appear only as short single-line excerpts.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx
import msgspec

from oasst_shared.api_client._errors import (
    OasstApiConnectionError,
    OasstApiResponseError,
    OasstApiStatusError,
    OasstApiTimeoutError,
    http_status_of,
    status_error_class,
)
from oasst_shared.api_client._models import ErrorBody
from oasst_shared.exceptions import OasstErrorCode

__all__ = [
    "NOTHING_SENT",
    "deadline_error",
    "excerpt",
    "origin",
    "response_error",
    "status_error",
    "too_large_error",
    "transport_error",
    "unreadable_error",
]

_EXCERPT_CHARS = 200
_SUMMARY_CHARS = 300

_error_decoder = msgspec.json.Decoder(ErrorBody)

NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any byte of the request left this machine."""


def excerpt(content: bytes) -> str:
    """A short, single-line excerpt of a body for error messages."""
    if not content.strip():
        return "(empty body)"
    text = " ".join(content[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    if len(text) > _EXCERPT_CHARS or len(content) > _EXCERPT_CHARS * 4:
        text = text[:_EXCERPT_CHARS] + "..."
    return repr(text)


def _summarize_validation(detail: list[Any]) -> str:
    """``loc: msg`` of each item of a FastAPI/pydantic 422 body."""
    parts: list[str] = []
    for item in detail:
        if isinstance(item, dict):
            loc = item.get("loc")
            where = ".".join(str(x) for x in loc) if isinstance(loc, list) else "?"
            parts.append(f"{where}: {item.get('msg', '?')}")
    text = "; ".join(parts) or "no details"
    return text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS] + "..."


def status_error(response: httpx.Response, content: bytes) -> OasstApiStatusError:
    """The error of a non-2xx answer whose body (``content``) was read."""
    status = response.status_code
    body_excerpt = excerpt(content)
    http_status = http_status_of(status)
    phrase = response.reason_phrase or http_status.phrase
    try:
        body: ErrorBody | None = _error_decoder.decode(content)
    except (msgspec.DecodeError, RecursionError):
        body = None
    code = OasstErrorCode.GENERIC_ERROR
    backend_code: int | None = None
    message = f"{status} {phrase}: {body_excerpt}"
    if body is not None:
        if isinstance(body.message, str) and type(body.error_code) is int:
            backend_code = body.error_code
            try:
                code = OasstErrorCode(backend_code)
                message = body.message
            except ValueError:
                message = f"{body.message} (unknown backend error_code {backend_code})"
        elif isinstance(body.detail, str):
            message = f"{status} {phrase}: {body.detail}"
        elif isinstance(body.detail, list):
            message = f"{status} {phrase}: {_summarize_validation(body.detail)}"
    return status_error_class(status)(
        message,
        code,
        http_status,
        request=response.request,
        response=response,
        body_excerpt=body_excerpt,
        backend_error_code=backend_code,
    )


def response_error(response: httpx.Response, content: bytes, problem: str) -> OasstApiResponseError:
    """A 2xx answer whose body is not what the endpoint returns; ``problem`` says how."""
    body_excerpt = excerpt(content)
    return OasstApiResponseError(
        f"{response.status_code} answer {problem}; body: {body_excerpt}",
        OasstErrorCode.GENERIC_ERROR,
        http_status_of(response.status_code),
        request=response.request,
        response=response,
        body_excerpt=body_excerpt,
    )


def too_large_error(response: httpx.Response, cap: int) -> OasstApiResponseError:
    """An answer whose body is (or announces to be) larger than ``cap`` bytes."""
    status = response.status_code
    return OasstApiResponseError(
        f"answer larger than {cap} bytes (status {status})",
        OasstErrorCode.GENERIC_ERROR,
        http_status_of(status),
        request=response.request,
        response=response,
    )


def unreadable_error(request: httpx.Request, exc: httpx.RequestError) -> OasstApiResponseError:
    """An answer httpx could not read (e.g. a body that fails its content decoding)."""
    error = OasstApiResponseError(
        f"unreadable answer: {exc}", http_status_code=HTTPStatus.BAD_GATEWAY, request=request
    )
    error.__cause__ = exc
    return error


def deadline_error(request: httpx.Request, timeout: float) -> OasstApiTimeoutError:
    """No complete answer within the call's ``timeout`` (retries and waits included)."""
    return OasstApiTimeoutError(f"no complete answer within the timeout of {timeout:g} s", request=request)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> str:
    """``scheme://host:port`` of ``url``, the port always shown (the scheme's default when the URL
    gives none) and never any user or password: what a connection error names."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)
    return f"{url.scheme}://{host}:{port}" if port is not None else f"{url.scheme}://{host}"


def transport_error(exc: httpx.TransportError, request: httpx.Request) -> OasstApiConnectionError:
    """A connection failure or a transport timeout; ``request_sent`` tells whether it left.

    The message names the server tried (``scheme://host:port``) and httpx's reason.
    """
    request_sent = not isinstance(exc, NOTHING_SENT)
    detail = str(exc) or type(exc).__name__
    server = origin(request.url)
    error: OasstApiConnectionError
    if isinstance(exc, httpx.TimeoutException):
        error = OasstApiTimeoutError(
            f"timed out talking to {server} ({type(exc).__name__}: {detail})",
            request=request,
            request_sent=request_sent,
        )
    elif not request_sent:
        error = OasstApiConnectionError(
            f"could not connect to {server} ({detail})", request=request, request_sent=False
        )
    else:
        error = OasstApiConnectionError(
            f"connection to {server} failed before the answer was complete ({type(exc).__name__}: {detail})",
            request=request,
        )
    error.__cause__ = exc
    return error
