"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, current_app

from llmstream.api.errors import error_response
from llmstream.sse_response import hub_of

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
async def healthz() -> dict[str, str]:
    # Liveness: the process answers. Whether it takes new streams is /readyz.
    return {"status": "ok"}


@blueprint.get("/readyz")
async def readyz() -> Response | dict[str, object]:
    hub = hub_of(current_app)
    if hub.shutting_down:
        return error_response(503, "shutting_down", "the server is shutting down")
    # With --workers, each worker answers for itself: "worker" says which process that was, and the
    # stream counts are that worker's alone.
    return {
        "status": "ready",
        "worker": os.getpid(),
        "open_streams": len(hub.open),
        "max_streams": hub.max_streams,
    }


@blueprint.get("/metrics")
async def metrics() -> Response:
    return Response(hub_of(current_app).metrics.render(), content_type=CONTENT_TYPE_LATEST)
