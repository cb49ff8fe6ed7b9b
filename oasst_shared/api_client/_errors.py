"""Errors raised by the API client: all are ``OasstError``\\ s, so ``except OasstError`` catches them.

::

    OasstError
    └── OasstApiError                 raised by the client; knows the request (method, path)
        ├── OasstApiStatusError       the backend answered with a non-2xx status
        │   ├── OasstApiAuthError         401, 403 (e.g. a bad API key: error code 2)
        │   ├── OasstApiNotFoundError     404
        │   ├── OasstApiValidationError   422 (the backend rejected the request's shape)
        │   ├── OasstApiRateLimitError    429
        │   └── OasstApiServerError       5xx
        ├── OasstApiResponseError     a 2xx answer whose body is not what the endpoint returns
        └── OasstApiConnectionError   no (complete) answer: refused, reset, closed mid-body
            └── OasstApiTimeoutError      no complete answer within the timeout

Each error carries the ``httpx.Request`` it is about (``http_request``) and the
``httpx.Response`` when there was one (``http_response``), as httpx's own errors do.
``message``, ``error_code`` and ``http_status_code`` keep their meaning from ``OasstError``: for a
backend error body they are the backend's. ``status_code`` is the status actually received
(``None`` when there was no answer); ``http_status_code`` is always an ``HTTPStatus``, a close
one when the received status is not a standard one, 503 for connection errors and 504 for
timeouts.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, TypedDict

import httpx

from oasst_shared.exceptions import OasstError, OasstErrorCode

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "OasstApiAuthError",
    "OasstApiConnectionError",
    "OasstApiError",
    "OasstApiNotFoundError",
    "OasstApiRateLimitError",
    "OasstApiResponseError",
    "OasstApiServerError",
    "OasstApiStatusError",
    "OasstApiTimeoutError",
    "OasstApiValidationError",
    "RequestContext",
    "http_status_of",
    "status_error_class",
]


_PUBLIC_MODULE = "oasst_shared.api_client"
"""The module the error classes are imported from: their ``__module__``, so that tracebacks and
reprs name it (and pickles refer to it) instead of this private one."""


def http_status_of(status: int) -> HTTPStatus:
    """``HTTPStatus(status)``, or the closest standard status for a non-standard number."""
    try:
        return HTTPStatus(status)
    except ValueError:
        pass
    if 200 <= status < 300:
        return HTTPStatus.OK
    if 300 <= status < 400:
        return HTTPStatus.MULTIPLE_CHOICES
    if 400 <= status < 500:
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.INTERNAL_SERVER_ERROR


class RequestContext(TypedDict, total=False):
    """What an ``OasstApiError`` may be told about its request; the client passes the httpx objects.

    ``method``, ``path``, ``status_code`` and ``body_excerpt`` stand in for what ``request``
    and ``response`` would tell (an error built by hand, e.g. in a test's fake backend).
    """

    request: httpx.Request | None
    response: httpx.Response | None
    method: str | None
    path: str | None
    status_code: int | None
    body_excerpt: str | None


SECRET_HEADERS: frozenset[str] = frozenset({"x-api-key", "authorization"})
"""Request headers an error never keeps (compared lower-case)."""


def _redacted(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` (its body too, when it was read) with every secret header's value
    replaced."""
    if not any(name.lower() in SECRET_HEADERS for name in request.headers):
        return request
    headers = [
        (name, "[redacted]" if name.lower() in SECRET_HEADERS else value)
        for name, value in request.headers.multi_items()
    ]
    try:
        content: bytes | None = request.content
    except httpx.RequestNotRead:  # a streamed body: not kept
        content = None
    return httpx.Request(request.method, request.url, headers=headers, content=content)


class OasstApiError(OasstError):
    """An error of one client request; ``method`` and ``path`` name the request.

    ``http_request`` is the ``httpx.Request`` that failed (the last attempt's) and
    ``http_response`` the answer when there was one: its status, headers and request. The
    client read the body itself, under ``max_response_bytes`` (``http_response.content`` is
    not set); its start is ``body_excerpt``. ``method``, ``path`` and ``status_code`` are read
    from them. ``request`` stays the ``"METHOD /path"`` text it always was.

    The secrets the request carried (``X-API-Key``, ``Authorization``) are replaced by
    ``[redacted]`` in ``http_request`` (and ``http_response.request``): an error can be logged,
    pickled or sent on without leaking the API key.
    """

    __module__ = _PUBLIC_MODULE

    http_request: httpx.Request | None
    http_response: httpx.Response | None
    body_excerpt: str | None

    default_http_status: ClassVar[HTTPStatus] = HTTPStatus.BAD_REQUEST
    """``http_status_code`` when none is given."""

    def __init__(
        self,
        message: str,
        error_code: OasstErrorCode = OasstErrorCode.GENERIC_ERROR,
        http_status_code: HTTPStatus | None = None,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        # The keyword attributes live in ``__dict__``, which pickling restores after
        # re-creating the exception from ``self.args`` (httpx's requests and responses pickle
        # without their streams).
        if http_status_code is None:
            http_status_code = self.default_http_status
        super().__init__(message, error_code, http_status_code)
        if request is not None:
            request = _redacted(request)
            if response is not None:
                response.request = request
        self.http_request = request
        self.http_response = response
        self.body_excerpt = body_excerpt
        self._method = method
        self._path = path
        self._status_code = status_code

    @property
    def method(self) -> str:
        """The request's HTTP method (``""`` when the error names no request)."""
        if self._method is not None:
            return self._method
        return self.http_request.method if self.http_request is not None else ""

    @property
    def path(self) -> str:
        """The request's path as sent, without the query (``""`` when unknown)."""
        if self._path is not None:
            return self._path
        if self.http_request is None:
            return ""
        return self.http_request.url.raw_path.split(b"?", 1)[0].decode("ascii")

    @property
    def status_code(self) -> int | None:
        """The status actually received; ``None`` when there was no answer."""
        if self._status_code is not None:
            return self._status_code
        return self.http_response.status_code if self.http_response is not None else None

    @property
    def request(self) -> str:
        """``"METHOD /path"`` of the failed request (the ``httpx.Request`` is ``http_request``)."""
        return f"{self.method} {self.path}".strip()

    def __str__(self) -> str:
        text = super().__str__()
        request = self.request
        return f"{request}: {text}" if request else text


class OasstApiStatusError(OasstApiError):
    """The backend answered with a non-2xx status.

    For the backend's error body (``{"message": ..., "error_code": ...}``) ``message`` and
    ``error_code`` are the backend's; an error code this library does not know becomes
    ``GENERIC_ERROR`` and its number is kept in ``backend_error_code`` and in the message.
    Any other body (a 422 validation body, HTML, nothing) gives ``GENERIC_ERROR`` and a
    message with a short excerpt of the body.
    """

    __module__ = _PUBLIC_MODULE

    backend_error_code: int | None

    def __init__(
        self,
        message: str,
        error_code: OasstErrorCode = OasstErrorCode.GENERIC_ERROR,
        http_status_code: HTTPStatus | None = None,
        *,
        backend_error_code: int | None = None,
        **context: Unpack[RequestContext],
    ) -> None:
        super().__init__(message, error_code, http_status_code, **context)
        self.backend_error_code = backend_error_code


class OasstApiAuthError(OasstApiStatusError):
    """401 or 403: the API key (or the user header / bearer token) was refused."""

    __module__ = _PUBLIC_MODULE


class OasstApiNotFoundError(OasstApiStatusError):
    """404."""

    __module__ = _PUBLIC_MODULE


class OasstApiValidationError(OasstApiStatusError):
    """422: the backend rejected the request's parameters or body."""

    __module__ = _PUBLIC_MODULE


class OasstApiRateLimitError(OasstApiStatusError):
    """429, after the retries allowed by ``max_retries`` and the timeout."""

    __module__ = _PUBLIC_MODULE


class OasstApiServerError(OasstApiStatusError):
    """A 5xx answer."""

    __module__ = _PUBLIC_MODULE


class OasstApiResponseError(OasstApiError):
    """A success status with a body that is not what the endpoint returns (or no body)."""

    __module__ = _PUBLIC_MODULE


class OasstApiConnectionError(OasstApiError):
    """No complete answer: connection refused, reset, closed before the body was complete.

    ``request_sent`` is False when the request certainly never reached the backend (the
    connection could not be made), so even a non-idempotent request is safe to send again.
    """

    __module__ = _PUBLIC_MODULE

    request_sent: bool
    default_http_status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(
        self,
        message: str,
        error_code: OasstErrorCode = OasstErrorCode.GENERIC_ERROR,
        http_status_code: HTTPStatus | None = None,
        *,
        request_sent: bool = True,
        **context: Unpack[RequestContext],
    ) -> None:
        super().__init__(message, error_code, http_status_code, **context)
        self.request_sent = request_sent


class OasstApiTimeoutError(OasstApiConnectionError):
    """No complete answer within the timeout (retries and waits included)."""

    __module__ = _PUBLIC_MODULE

    default_http_status = HTTPStatus.GATEWAY_TIMEOUT


_STATUS_CLASSES: dict[int, type[OasstApiStatusError]] = {
    401: OasstApiAuthError,
    403: OasstApiAuthError,
    404: OasstApiNotFoundError,
    422: OasstApiValidationError,
    429: OasstApiRateLimitError,
}


def status_error_class(status: int) -> type[OasstApiStatusError]:
    """The error class for a non-2xx status."""
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return OasstApiServerError
    return OasstApiStatusError
