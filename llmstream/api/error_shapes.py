"""Errors in each API's own shape: an OpenAI client gets OpenAI's error body, Anthropic's Anthropic's.

Each API blueprint passes a renderer (kind, message, param, status -> Response) to `install`, which
registers blueprint-level handlers for refused requests (`InvalidRequestError`), HTTP errors (a 413
from the body cap, a 405, ...) and unexpected failures. Routing errors (404, 405) happen before a
blueprint is chosen, so the app-level handler (errors.py) falls back to the renderer registered for
the path's prefix: a 405 on /v1/messages is still Anthropic-shaped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import orjson
from quart import Blueprint, Quart, Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from llmstream.api.errors import register_error_shape
from llmstream.protocols import ErrorKind, ErrorResponse, request_error_kind
from llmstream.simulator import InvalidRequestError

__all__ = [
    "ErrorRenderer",
    "from_error_response",
    "http_error_kind",
    "install",
    "json_response",
    "render_http_error",
]

logger = logging.getLogger("llmstream.api")


class ErrorRenderer(Protocol):
    def __call__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response: ...


def json_response(body: object, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    response = Response(orjson.dumps(body), status=status, content_type="application/json")
    for name, value in headers:
        response.headers[name] = value
    return response


def from_error_response(error: ErrorResponse, status: int | None = None) -> Response:
    return json_response(error.body, status or error.status, error.headers)


_KINDS: dict[int, ErrorKind] = {
    401: "authentication",
    403: "permission",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limit",
    503: "unavailable",
}


def http_error_kind(error: HTTPException) -> tuple[ErrorKind, str]:
    """The error kind and a message that says what to do, for a werkzeug HTTP error."""
    status = error.code or 500
    method, path = request.method, request.path
    if status == 404:
        return "not_found", f"no such route: {method} {path} (the routes are listed at /docs/api)"
    if status == 405 and isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"}))
        return "invalid_request", f"{method} is not allowed on {path}; use {allowed}"
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return "request_too_large", f"the request body is larger than this server's limit of {limit} bytes"
    kind: ErrorKind = _KINDS.get(status, "server_error" if status >= 500 else "invalid_request")
    return kind, error.description or (error.name or "error")


def render_http_error(error: HTTPException, render: ErrorRenderer) -> Response:
    kind, message = http_error_kind(error)
    # werkzeug's own headers: Allow on a 405 (RFC 9110 §15.5.6), Retry-After where it sets one.
    headers = tuple((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
    return render(kind, message, status=error.code or 500, headers=headers)


def install(blueprint: Blueprint, render: ErrorRenderer, *, prefixes: tuple[str, ...] = ()) -> None:
    """Render every error raised in ``blueprint`` (and routing errors under ``prefixes``) with ``render``."""

    @blueprint.errorhandler(InvalidRequestError)
    async def _refused(error: InvalidRequestError) -> Response:
        return render(request_error_kind(error), error.message, param=error.param)

    @blueprint.errorhandler(HTTPException)
    async def _http(error: HTTPException) -> Response:
        return render_http_error(error, render)

    @blueprint.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error in %s %s", request.method, request.path, exc_info=error)
        return render("server_error", "the server failed; its log has the details")

    def _record(state: object) -> None:
        app: Quart = getattr(state, "app")  # noqa: B009  (BlueprintSetupState, typed loosely by Quart)
        for prefix in prefixes:
            register_error_shape(app, prefix, _routing_renderer(render))

    blueprint.record_once(_record)


def _routing_renderer(render: ErrorRenderer) -> Callable[[HTTPException], Response]:
    return lambda error: render_http_error(error, render)
