"""sse-starlette on Uvicorn: `EventSourceResponse` over an async generator of dicts.

uvicorn loadtests.benchstacks.sse_starlette_app:app --host 127.0.0.1 --port 8002
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

UNPACED = 1_000_000  # the bench's "as fast as you can" rate: no sleep
WORDS = (" the", " model", " streams", " tokens", " one", " at", " a", " time", ".")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def chat(request: Request) -> EventSourceResponse:
    body = await request.json()
    count = int(body.get("max_tokens", 64))
    rate = body.get("tokens_per_s")
    ttft = float(body.get("ttft_ms") or 0) / 1000

    async def events() -> AsyncIterator[dict[str, str]]:
        await asyncio.sleep(ttft)
        for index in range(count):
            data = json.dumps({"index": index, "text": WORDS[index % len(WORDS)]})
            yield {"event": "token", "id": str(index), "data": data}
            if rate and rate < UNPACED:
                await asyncio.sleep(1 / float(rate))
        yield {"event": "finish", "data": '{"finish_reason": "length"}'}

    return EventSourceResponse(events())


app = Starlette(routes=[Route("/healthz", healthz), Route("/api/chat", chat, methods=["POST"])])
