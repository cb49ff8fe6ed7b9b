"""The client core: settings, session lifecycle, and one call through the layers below.

A call is prepared (``_request``), sent by attempts inside the retry loop (``_retry``, on
the client's ``Clock``), each answer read under the size cap (``_response``), and each
failure turned into an ``OasstApiError`` (``_mapping``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from oasst_shared import __version__
from oasst_shared.api_client._clock import AnyioClock, Clock
from oasst_shared.api_client._errors import OasstApiTimeoutError
from oasst_shared.api_client._mapping import (
    deadline_error,
    status_error,
    transport_error,
    unreadable_error,
)
from oasst_shared.api_client._request import (
    QueryValue,
    RequestSpec,
    encode_body,
    path_segment,
    user_header_value,
)
from oasst_shared.api_client._response import Answer, decode_answer, read_answer
from oasst_shared.api_client._retry import Failure, RetryPolicy, parse_retry_after, run_with_retries
from oasst_shared.schemas import protocol

__all__ = ["BaseApiClient", "QueryValue", "encode_body", "path_segment", "user_header_value"]

logger = logging.getLogger("oasst_shared.api_client")

T = TypeVar("T")

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


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
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
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
        if session is not None and transport is not None:
            raise ValueError("give either session or transport: a session has its own transport")
        self.backend_url = backend_url.rstrip("/")
        self.api_key = api_key
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry_policy = RetryPolicy(max_retries, retry_initial_delay, retry_max_delay)
        self.oasst_user = oasst_user
        self.bearer_token = bearer_token
        self.max_response_bytes = max_response_bytes
        self.clock: Clock = clock if clock is not None else AnyioClock()
        self._owns_session = session is None
        if session is None:
            session = httpx.AsyncClient(
                headers={"User-Agent": f"oasst-shared/{__version__}"}, transport=transport
            )
        self.session = session
        self._closed = False

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

    async def __aenter__(self) -> Self:
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
        answer = await self._send(
            method, path, body=body, params=params, user=user, allows_user=allows_user, bearer=bearer
        )
        return decode_answer(answer, decoder)

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
    ) -> Answer:
        """Send with retries until a 2xx answer (returned, body read) or a final error (raised)."""
        if self._closed:
            raise RuntimeError("OasstApiClient is closed")
        if bearer and not self.bearer_token:
            raise ValueError("this endpoint needs the client's bearer_token (a root token)")
        spec = RequestSpec.prepare(
            method,
            self.backend_url + path,
            api_key=self.api_key,
            body=body,
            params=params,
            user=(user if user is not None else self.oasst_user) if allows_user else None,
            bearer_token=self.bearer_token if bearer else None,
        )
        sent: list[httpx.Request] = []  # the latest is the one a deadline error names

        async def attempt(remaining: float) -> Answer | Failure:
            sent.append(spec.build(self.session, remaining, self.connect_timeout))
            return await self._attempt(sent[-1], remaining)

        def out_of_time() -> OasstApiTimeoutError:
            # Only after an attempt: the first one starts with the whole (positive) timeout.
            return deadline_error(sent[-1], self.timeout)

        return await run_with_retries(
            attempt,
            policy=self.retry_policy,
            clock=self.clock,
            timeout=self.timeout,
            deadline_error=out_of_time,
            name=f"{method} {path}",
        )

    async def _attempt(self, request: httpx.Request, remaining: float) -> Answer | Failure:
        """Send one attempt and read its answer: a 2xx ``Answer``, or a ``Failure`` to judge."""
        policy = self.retry_policy
        try:
            # The body is read inside the deadline, so ``timeout`` bounds a slow body too.
            with anyio.fail_after(remaining):
                response = await self.session.send(request, stream=True)
                try:
                    answer = await read_answer(response, self.max_response_bytes)
                finally:
                    await response.aclose()  # releases the connection (closed if body unread)
        except TimeoutError:
            raise deadline_error(request, self.timeout) from None
        except httpx.TransportError as exc:
            error = transport_error(exc, request)
            return Failure(
                error,
                policy.retries_transport_error(request.method, request_sent=error.request_sent),
                reason=type(exc).__name__,
            )
        except httpx.RequestError as exc:  # e.g. a body that fails content decoding
            raise unreadable_error(request, exc) from exc
        status = answer.status_code
        logger.debug("%s %s -> %d (%d bytes)", request.method, request.url.path, status, len(answer.content))
        if 200 <= status < 300:
            return answer
        return Failure(
            status_error(response, answer.content),
            policy.retries_status(request.method, status),
            retry_after=parse_retry_after(response.headers),
            reason=f"status {status}",
        )
