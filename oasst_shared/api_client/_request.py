"""Request building: JSON bodies, query parameters, path segments and headers of one call.

Nothing here sends anything: ``RequestSpec`` is what a call asks for (method, path, body,
query, user), and ``RequestSpec.build`` turns it into an ``httpx.Request`` for one attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import msgspec

from oasst_shared.schemas import protocol

__all__ = [
    "QueryValue",
    "RequestSpec",
    "encode_body",
    "path_segment",
    "query",
    "user_header_value",
]

QueryValue = str | int | float | bool | UUID | datetime | date | Enum | None
"""What a query parameter may be given as; ``None`` leaves the parameter out."""


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


def query(**values: QueryValue) -> dict[str, QueryValue]:
    """The query parameters of a call, in the order given; ``None`` values are left out.

    Endpoint methods pass their typed keyword parameters through this one helper, so each
    parameter's wire name is written once (as the keyword) and unset ones never reach the wire.
    """
    return {name: value for name, value in values.items() if value is not None}


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


def user_header_value(user: protocol.User | str) -> str:
    """The ``x-oasst-user`` header for a user: ``"<auth_method>:<id>"``."""
    if isinstance(user, str):
        return user
    return f"{user.auth_method}:{user.id}"


@dataclass(frozen=True)
class RequestSpec:
    """One call's request, encoded once and built again for each attempt (with its timeout)."""

    method: str
    url: str
    content: bytes | None
    params: dict[str, str | int | float | bool] | None
    headers: dict[str, str]

    @classmethod
    def prepare(
        cls,
        method: str,
        url: str,
        *,
        api_key: str,
        body: Any = None,
        params: Mapping[str, QueryValue] | None = None,
        user: protocol.User | str | None = None,
        bearer_token: str | None = None,
    ) -> RequestSpec:
        """Encode a call's body, query and headers.

        ``user`` becomes ``x-oasst-user``; ``bearer_token`` (given only for the endpoints that
        need a root token) becomes ``Authorization``.
        """
        content = None if body is None else encode_body(body)
        headers = {"X-API-Key": api_key, "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if user is not None:
            headers["x-oasst-user"] = user_header_value(user)
        if bearer_token is not None:
            headers["Authorization"] = f"Bearer {bearer_token}"
        encoded = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        return cls(method, url, content, encoded or None, headers)

    def build(self, session: httpx.AsyncClient, timeout: float, connect_timeout: float) -> httpx.Request:
        """The ``httpx.Request`` of one attempt: its timeouts are what is left of the call's."""
        return session.build_request(
            self.method,
            self.url,
            content=self.content,
            params=self.params,
            headers=self.headers,
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        )

    def __repr__(self) -> str:  # the headers hold the API key: never shown
        return f"RequestSpec({self.method} {self.url})"
