"""ASGI middleware: every response carries an `X-Request-ID`, as real LLM providers' responses do.

A plain ASGI wrapper rather than a Quart hook so that it sees streams too; it adds one header at
`http.response.start` and passes body messages through untouched (never buffering an SSE body).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Any: each server and framework spells the ASGI types its own way; the protocol is the contract.
ASGIApp = Callable[..., Awaitable[None]]

# A caller's own id is kept when it is short and plain, so it can be logged and echoed safely.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _request_id(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _ACCEPTABLE_ID.fullmatch(value):
            return bytes(value)
    return b"req_" + secrets.token_hex(12).encode()
