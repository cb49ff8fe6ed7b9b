"""Request and response shapes of backend endpoints that ``oasst_shared.schemas.protocol`` lacks."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from oasst_shared.schemas import protocol
from oasst_shared.schemas.base import OasstStruct

__all__ = [
    "CreateApiClientRequest",
    "UserStatsTimeFrame",
    "ValidLabelsResponse",
]


class UserStatsTimeFrame(str, enum.Enum):
    """Time frames of leaderboards, trollboards and user stats (path parameter ``time_frame``)."""

    day = "day"
    week = "week"
    month = "month"
    total = "total"


class ValidLabelsResponse(OasstStruct, kw_only=True):
    """Answer of ``GET /api/v1/text_labels/valid_labels`` and ``.../report_labels``."""

    valid_labels: list[protocol.LabelDescription]


class CreateApiClientRequest(OasstStruct, kw_only=True, gc=False):
    """Body of ``POST /api/v1/admin/api_client`` (authorised by a root bearer token)."""

    description: str
    frontend_type: str
    trusted: bool = False
    admin_email: str | None = None


class ErrorBody(msgspec.Struct):
    """Any JSON object an error answer may carry; fields are checked by the client.

    The backend's own errors have ``message`` and ``error_code``; FastAPI's have ``detail``
    (a string, or a list of validation errors for 422).
    """

    message: Any = None
    error_code: Any = None
    detail: Any = None
