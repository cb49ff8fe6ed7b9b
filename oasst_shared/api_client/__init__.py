"""The async client of the Open-Assistant backend API (httpx + anyio: asyncio or trio).

    from oasst_shared.api_client import OasstApiClient
    from oasst_shared.schemas import protocol

    async with OasstApiClient("http://localhost:8080", api_key) as client:
        task = await client.fetch_random_task(user=user)
        if isinstance(task, protocol.InitialPromptTask):
            ...

For code without an event loop, ``OasstApiClientSync`` has the same methods, blocking:

    with OasstApiClientSync("http://localhost:8080", api_key) as client:
        task = client.fetch_random_task(user=user)

Errors are ``OasstError`` subclasses (see ``_errors`` for the tree): the backend's own error
answers keep their ``message`` and ``error_code``; anything unreadable becomes
``GENERIC_ERROR`` with the status and a short excerpt of the body; connection failures and
timeouts are ``OasstApiConnectionError`` / ``OasstApiTimeoutError`` naming the request.
Every error carries the ``httpx.Request`` (``http_request``) and, when there was an answer,
the ``httpx.Response`` (``http_response``).

Tests can run the client without a socket: ``OasstApiClient(url, key,
transport=httpx.MockTransport(handler))``; ``clock=`` replaces the waits between retries.

The layers, one module each: ``_request`` (bodies, queries, headers), ``_response`` (the
capped streamed read, decoding), ``_retry`` (the policy and the loop, on a ``Clock``),
``_mapping`` (failures to errors), ``_errors`` (the error classes), ``_base`` (settings and
one call through them), ``_client`` (one method per endpoint), ``_sync`` (generated facade).

Logging goes to the ``oasst_shared.api_client`` logger: retries at INFO (method, path, cause,
wait), answers at DEBUG (status and size). Neither the API key nor any body is logged.
"""

from typing import TYPE_CHECKING, Any

from oasst_shared.api_client._client import OasstApiClient, UserRef
from oasst_shared.api_client._clock import AnyioClock, Clock
from oasst_shared.api_client._errors import (
    OasstApiAuthError,
    OasstApiConnectionError,
    OasstApiError,
    OasstApiNotFoundError,
    OasstApiRateLimitError,
    OasstApiResponseError,
    OasstApiServerError,
    OasstApiStatusError,
    OasstApiTimeoutError,
    OasstApiValidationError,
)
from oasst_shared.api_client._models import CreateApiClientRequest, UserStatsTimeFrame, ValidLabelsResponse
from oasst_shared.api_client._request import encode_body
from oasst_shared.api_client._retry import IDEMPOTENT_METHODS, RetryPolicy, parse_retry_after
from oasst_shared.exceptions import OasstError, OasstErrorCode

if TYPE_CHECKING:
    from oasst_shared.api_client._sync import OasstApiClientSync

__all__ = [
    "IDEMPOTENT_METHODS",
    "AnyioClock",
    "Clock",
    "CreateApiClientRequest",
    "OasstApiAuthError",
    "OasstApiClient",
    "OasstApiClientSync",
    "OasstApiConnectionError",
    "OasstApiError",
    "OasstApiNotFoundError",
    "OasstApiRateLimitError",
    "OasstApiResponseError",
    "OasstApiServerError",
    "OasstApiStatusError",
    "OasstApiTimeoutError",
    "OasstApiValidationError",
    "OasstError",
    "OasstErrorCode",
    "RetryPolicy",
    "UserRef",
    "UserStatsTimeFrame",
    "ValidLabelsResponse",
    "encode_body",
    "parse_retry_after",
]


def __getattr__(name: str) -> Any:
    # The blocking facade imports anyio's thread portal (about 10 ms), which async users never
    # need: it is loaded on first use.
    if name == "OasstApiClientSync":
        from oasst_shared.api_client._sync import OasstApiClientSync

        return OasstApiClientSync
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
