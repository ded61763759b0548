"""Every error leaves as JSON in the caller's terms: `{"error": {"type": ..., "message": ...}}`."""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

logger = logging.getLogger("llmstream.api")


class BadRequest(HTTPException):
    """A request the caller can fix; `description` says how."""

    code = 400
    name = "Bad Request"


def error_response(status: int, kind: str, message: str) -> Response:
    response = jsonify({"error": {"type": kind, "message": message}})
    response.status_code = status
    return response


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        kind = (error.name or "error").lower().replace(" ", "_")
        return error_response(status, kind, error.description or kind)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error", exc_info=error)
        return error_response(500, "internal_error", "the server failed; its log has the details")
