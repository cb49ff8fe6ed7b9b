"""The request core of the API client: headers, retries, deadlines, typed decoding, errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from enum import Enum
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit
from uuid import UUID

import anyio
import httpx
import msgspec

from oasst_shared import __version__
from oasst_shared._decode_errors import DECODE_ERRORS, describe, type_name
from oasst_shared.api_client._errors import (
    OasstApiConnectionError,
    OasstApiError,
    OasstApiResponseError,
    OasstApiStatusError,
    OasstApiTimeoutError,
    http_status_of,
    status_error_class,
)
from oasst_shared.api_client._models import ErrorBody
from oasst_shared.api_client._retry import RetryPolicy, parse_retry_after
from oasst_shared.exceptions import OasstErrorCode
from oasst_shared.schemas import protocol

__all__ = ["BaseApiClient", "QueryValue", "encode_body", "path_segment", "user_header_value"]

logger = logging.getLogger("oasst_shared.api_client")

T = TypeVar("T")
_C = TypeVar("_C", bound="BaseApiClient")

QueryValue = str | int | float | bool | UUID | datetime | date | Enum | None
"""What a query parameter may be given as; ``None`` leaves the parameter out."""

_EXCERPT_CHARS = 200
_SUMMARY_CHARS = 300
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_error_decoder = msgspec.json.Decoder(ErrorBody)
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def path_segment(value: str | UUID | Enum) -> str:
    """A value as one URL path segment (percent-encoded, ``/`` included)."""
    if isinstance(value, Enum):
        value = value.value
    return quote(str(value), safe="")


def encode_body(body: Any) -> bytes:
    """A request body as JSON bytes, encoded by msgspec.

    A struct's optional fields that hold their default ``None`` are left out: the backend
    reads a missing field as ``None``, and its OpenAPI schema (as FastAPI writes it from
    pydantic v1 models) does not allow ``null`` for most of them. Anything else (a dict
    given to ``post``) is encoded as it is.
    """
    if isinstance(body, msgspec.Struct):
        body = _prune_struct(body)
    return msgspec.json.encode(body)


def _prune_struct(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        cls = type(value)
        out: dict[str, Any] = {}
        config = cls.__struct_config__
        if config.tag_field is not None:
            out[config.tag_field] = config.tag
        for info in msgspec.structs.fields(cls):
            item = getattr(value, info.name)
            if item is None and info.default is None:
                continue
            out[info.encode_name] = _prune_struct(item)
        return out
    if isinstance(value, list | tuple):
        return [_prune_struct(item) for item in value]
    if isinstance(value, dict):
        return {key: _prune_struct(item) for key, item in value.items()}
    return value


def _query_value(value: QueryValue) -> str | int | float | bool:
    if isinstance(value, Enum):
        return _query_value(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if value is None:  # callers leave None out
        raise TypeError("a query parameter cannot be None")
    return value


def _excerpt(content: bytes) -> str:
    """A short, single-line excerpt of a body for error messages."""
    if not content.strip():
        return "(empty body)"
    text = " ".join(content[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace").split())
    if len(text) > _EXCERPT_CHARS or len(content) > _EXCERPT_CHARS * 4:
        text = text[:_EXCERPT_CHARS] + "..."
    return repr(text)


def _content_length(headers: httpx.Headers) -> int | None:
    """The announced body size, ``None`` when not given (chunked) or not one plain number."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


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


def user_header_value(user: protocol.User | str) -> str:
    """The ``x-oasst-user`` header for a user: ``"<auth_method>:<id>"``."""
    if isinstance(user, str):
        return user
    return f"{user.auth_method}:{user.id}"


class BaseApiClient:
    """Connection handling shared by every endpoint method; see ``OasstApiClient``."""

    def __init__(
        self,
        backend_url: str,
        api_key: str,
        session: httpx.AsyncClient | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        oasst_user: protocol.User | str | None = None,
        bearer_token: str | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        parts = urlsplit(backend_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"backend_url must be an http(s) URL, got {backend_url!r}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError("timeout must be a positive number of seconds")
        if not connect_timeout > 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        if max_response_bytes is not None and (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ValueError("max_response_bytes must be a positive number of bytes, or None")
        self.backend_url = backend_url.rstrip("/")
        self.api_key = api_key
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry_policy = RetryPolicy(max_retries, retry_initial_delay, retry_max_delay)
        self.oasst_user = oasst_user
        self.bearer_token = bearer_token
        self.max_response_bytes = max_response_bytes
        self._owns_session = session is None
        if session is None:
            session = httpx.AsyncClient(headers={"User-Agent": f"oasst-shared/{__version__}"})
        self.session = session
        self._closed = False
        # The waits between retries; tests replace it to record the requested delays.
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(backend_url={self.backend_url!r}, api_key=<hidden>, "
            f"timeout={self.timeout!r}, max_retries={self.retry_policy.max_retries!r})"
        )

    # ------------------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        """Close the HTTP session if this client created it (a caller's session stays open)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session:
            logger.debug("Closing OasstApiClient session")
            await self.session.aclose()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------- requests

    async def _call(
        self,
        method: str,
        path: str,
        decoder: msgspec.json.Decoder[T],
        *,
        body: Any = None,
        params: Mapping[str, QueryValue] | None = None,
        user: protocol.User | str | None = None,
        allows_user: bool = False,
        bearer: bool = False,
    ) -> T:
        """Send a request and decode the answer's body with ``decoder``."""
        response = await self._send(
            method, path, body=body, params=params, user=user, allows_user=allows_user, bearer=bearer
        )
        return self._decode(response, decoder, method, path)

    async def _call_no_content(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, QueryValue] | None = None,
        user: protocol.User | str | None = None,
        allows_user: bool = False,
    ) -> None:
        """Send a request whose answer carries nothing of use (204, 202): any 2xx is success."""
        await self._send(method, path, body=body, params=params, user=user, allows_user=allows_user)

    def _decode(
        self, response: httpx.Response, decoder: msgspec.json.Decoder[T], method: str, path: str
    ) -> T:
        content = response.content
        status = response.status_code

        def fail(problem: str) -> OasstApiResponseError:
            return OasstApiResponseError(
                f"{status} answer {problem}; body: {_excerpt(content)}",
                OasstErrorCode.GENERIC_ERROR,
                http_status_of(status),
                method=method,
                path=path,
                status_code=status,
                body_excerpt=_excerpt(content),
            )

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

    def _headers(
        self,
        *,
        has_body: bool,
        user: protocol.User | str | None,
        allows_user: bool,
        bearer: bool,
    ) -> dict[str, str]:
        headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        if has_body:
            headers["Content-Type"] = "application/json"
        if allows_user:
            chosen = user if user is not None else self.oasst_user
            if chosen is not None:
                headers["x-oasst-user"] = user_header_value(chosen)
        if bearer:
            if not self.bearer_token:
                raise ValueError("this endpoint needs the client's bearer_token (a root token)")
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, QueryValue] | None = None,
        user: protocol.User | str | None = None,
        allows_user: bool = False,
        bearer: bool = False,
    ) -> httpx.Response:
        """Send with retries until a 2xx answer (returned, body read) or a final error (raised)."""
        if self._closed:
            raise RuntimeError("OasstApiClient is closed")
        content = None if body is None else encode_body(body)
        headers = self._headers(
            has_body=content is not None, user=user, allows_user=allows_user, bearer=bearer
        )
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        url = self.backend_url + path
        policy = self.retry_policy
        deadline = anyio.current_time() + self.timeout
        retries = 0
        while True:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise self._deadline_error(method, path)
            request = self.session.build_request(
                method,
                url,
                content=content,
                params=query or None,
                headers=headers,
                timeout=httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining)),
            )
            retry_after: float | None = None
            try:
                # The body is read inside the deadline, so ``timeout`` bounds a slow body too.
                with anyio.fail_after(remaining):
                    response = await self.session.send(request, stream=True)
                    try:
                        await self._read_body(response, method, path)
                    finally:
                        await response.aclose()  # releases the connection (closed if body unread)
            except TimeoutError:
                raise self._deadline_error(method, path) from None
            except httpx.TransportError as exc:
                sent = not isinstance(exc, _NOTHING_SENT)
                failure: OasstApiError = self._transport_error(exc, method, path, request_sent=sent)
                retryable = policy.retries_transport_error(method, request_sent=sent)
                reason = type(exc).__name__
            except httpx.RequestError as exc:  # e.g. a body that fails content decoding
                raise OasstApiResponseError(
                    f"unreadable answer: {exc}",
                    method=method,
                    path=path,
                    http_status_code=HTTPStatus.BAD_GATEWAY,
                ) from exc
            else:
                status = response.status_code
                logger.debug("%s %s -> %d (%d bytes)", method, path, status, len(response.content))
                if 200 <= status < 300:
                    return response
                failure = self._status_error(response, method, path)
                retryable = policy.retries_status(method, status)
                retry_after = parse_retry_after(response.headers)
                reason = f"status {status}"
            if not retryable or retries >= policy.max_retries:
                raise failure
            delay = retry_after if retry_after is not None else policy.backoff(retries)
            if anyio.current_time() + delay >= deadline:
                logger.debug("%s %s: next retry would pass the deadline, giving up", method, path)
                raise failure
            retries += 1
            logger.info(
                "%s %s failed (%s); retry %d of %d in %.2f s",
                method,
                path,
                reason,
                retries,
                policy.max_retries,
                delay,
            )
            await self._sleep(delay)

    async def _read_body(self, response: httpx.Response, method: str, path: str) -> None:
        """Read a streamed answer's body into ``response.content``, at most ``max_response_bytes``.

        An answer that announces (``Content-Length``) or turns out to have a larger body
        raises ``OasstApiResponseError`` at once, with the rest of the body left unread.
        The limit counts the decoded bytes (after any ``Content-Encoding``).
        """
        cap = self.max_response_bytes
        if cap is None:
            await response.aread()
            return
        declared = _content_length(response.headers)
        if declared is not None and declared > cap:
            raise self._too_large_error(response, method, path, cap)
        chunks: list[bytes] = []
        size = 0
        too_large = False
        try:
            # Past the cap the read is cancelled, not just left: the cancellation comes up from
            # the next socket read through httpx's and httpcore's stream generators, closing the
            # connection and ending each generator (left half-way, they would be closed by the
            # garbage collector, with a ResourceWarning under trio). Chunks already buffered
            # are dropped on the way; nothing more is received.
            with anyio.CancelScope() as stop_reading:
                async for chunk in response.aiter_bytes():
                    if too_large:
                        continue
                    size += len(chunk)
                    if size > cap:
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
            raise self._too_large_error(response, method, path, cap)
        # What ``Response.aread`` does: the joined body becomes ``response.content``.
        response._content = b"".join(chunks)

    @staticmethod
    def _too_large_error(response: httpx.Response, method: str, path: str, cap: int) -> OasstApiResponseError:
        status = response.status_code
        return OasstApiResponseError(
            f"answer larger than {cap} bytes (status {status})",
            OasstErrorCode.GENERIC_ERROR,
            http_status_of(status),
            method=method,
            path=path,
            status_code=status,
        )

    def _deadline_error(self, method: str, path: str) -> OasstApiTimeoutError:
        return OasstApiTimeoutError(
            f"no complete answer within the timeout of {self.timeout:g} s", method=method, path=path
        )

    @staticmethod
    def _transport_error(
        exc: httpx.TransportError, method: str, path: str, *, request_sent: bool
    ) -> OasstApiConnectionError:
        detail = str(exc) or type(exc).__name__
        error: OasstApiConnectionError
        if isinstance(exc, httpx.TimeoutException):
            error = OasstApiTimeoutError(
                f"timed out ({type(exc).__name__}: {detail})",
                method=method,
                path=path,
                request_sent=request_sent,
            )
        elif not request_sent:
            error = OasstApiConnectionError(
                f"could not connect ({detail})", method=method, path=path, request_sent=False
            )
        else:
            error = OasstApiConnectionError(
                f"connection failed before the answer was complete ({type(exc).__name__}: {detail})",
                method=method,
                path=path,
            )
        error.__cause__ = exc
        return error

    @staticmethod
    def _status_error(response: httpx.Response, method: str, path: str) -> OasstApiStatusError:
        status = response.status_code
        content = response.content
        excerpt = _excerpt(content)
        cls = status_error_class(status)
        http_status = http_status_of(status)
        phrase = response.reason_phrase or http_status.phrase
        try:
            body: ErrorBody | None = _error_decoder.decode(content)
        except (msgspec.DecodeError, RecursionError):
            body = None
        code = OasstErrorCode.GENERIC_ERROR
        backend_code: int | None = None
        message = f"{status} {phrase}: {excerpt}"
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
        return cls(
            message,
            code,
            http_status,
            method=method,
            path=path,
            status_code=status,
            body_excerpt=excerpt,
            backend_error_code=backend_code,
        )
