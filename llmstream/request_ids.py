"""Every response carries an `X-Request-ID`, as real LLM providers' responses do.

Quart request hooks rather than an ASGI middleware: a middleware sees streams only by wrapping `send`,
and that wrapper then runs once per body message, thousands of times per second per core under load,
to act on the first message alone. Here the id is chosen before the request is handled and set on the
response object that Quart finalises, an SSE response included (llmstream.sse_response sends its
headers); the few answers the engine writes itself (a refusal, a stream that failed before its first
event) copy it from those headers. The stream lane (llmstream.api.stream_lane), which answers the
model APIs' streams without Quart's hooks, chooses the id with `chosen_id` and sets the same header.
"""

from __future__ import annotations

import re
import secrets

from quart import Quart, Response, g, request

__all__ = ["HEADER", "chosen_id", "install", "request_id"]

HEADER = "X-Request-ID"
# A caller's own id is kept when it is short and plain, so it can be logged and echoed safely.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def install(app: Quart) -> None:
    """Give every request an id (the caller's, if acceptable) and every response its header.

    Install it before any other before_request hook (Quart runs them in registration order, app hooks
    before blueprint hooks), so that an error raised by a later hook is answered with this id.
    """

    # Coroutines, not plain functions: Quart runs a plain hook in a worker thread (Quart.ensure_async),
    # two thread hand-offs per request.
    @app.before_request
    async def _choose_id() -> None:
        g.llmstream_request_id = chosen_id(request.headers.get(HEADER))

    @app.after_request
    async def _set_header(response: Response) -> Response:
        response.headers[HEADER] = request_id()
        return response


def request_id() -> str:
    """This request's id, which also names its response: chatcmpl-<id>, msg_<id>, the stream_id."""
    value = g.get("llmstream_request_id")
    if not isinstance(value, str):
        # An error raised before the hooks ran (while Quart set up the request) is still answered,
        # through after_request: that response gets an id of its own.
        value = g.llmstream_request_id = chosen_id(None)
    return value


def chosen_id(offered: str | None) -> str:
    """The id for a request that offered ``offered`` (its X-Request-ID header, or None)."""
    if offered is not None and _ACCEPTABLE_ID.fullmatch(offered):
        return offered
    return "req_" + secrets.token_hex(12)
