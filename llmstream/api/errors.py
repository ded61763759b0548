"""Every error leaves as JSON in the caller's terms: `{"error": {"type": ..., "message": ...}}`.

The LLM APIs answer in their own shapes (error_shapes.py). Their blueprints' handlers see errors raised
in their views; routing errors (404, 405) come here, and go to the renderer registered for the path's
prefix with `register_error_shape`, so that a 405 on /v1/messages is still Anthropic-shaped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from quart import Quart, Response, jsonify, request
from werkzeug.exceptions import HTTPException

logger = logging.getLogger("llmstream.api")

_SHAPES_KEY = "llmstream.error_shapes"
ShapeRenderer = Callable[[HTTPException], Response]


class BadRequest(HTTPException):
    """A request the caller can fix; `description` says how."""

    code = 400
    name = "Bad Request"


def error_response(status: int, kind: str, message: str) -> Response:
    response = jsonify({"error": {"type": kind, "message": message}})
    response.status_code = status
    return response


def register_error_shape(app: Quart, prefix: str, render: ShapeRenderer) -> None:
    """Render routing errors for `prefix` and paths under it (`/v1`: `/v1/...`) with `render`.

    The longest matching prefix wins, so `/v1/messages` can differ from the rest of `/v1`.
    """
    shapes: list[tuple[str, ShapeRenderer]] = app.extensions.setdefault(_SHAPES_KEY, [])
    shapes.append((prefix, render))
    shapes.sort(key=lambda item: len(item[0]), reverse=True)


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        shapes: list[tuple[str, ShapeRenderer]] = app.extensions.get(_SHAPES_KEY, [])
        for prefix, render in shapes:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                return render(error)
        status = error.code or 500
        kind = (error.name or "error").lower().replace(" ", "_")
        return error_response(status, kind, error.description or kind)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error", exc_info=error)
        return error_response(500, "internal_error", "the server failed; its log has the details")
