"""Ready-made Starlette/FastAPI endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from oasst_shared.server._metrics import metrics_response

__all__ = ["metrics_endpoint"]


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition (every process's values added up in
    prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``). Mount it with
    ``app.add_route("/metrics", metrics_endpoint)``."""
    body, content_type = metrics_response()
    return Response(body, media_type=content_type)
