"""Naive Quart on Hypercorn: an async generator, `json.dumps` and one `asyncio.sleep` per token.

hypercorn loadtests.benchstacks.naive_quart:app --bind 127.0.0.1:8001
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from quart import Quart, Response, request

app = Quart(__name__)
UNPACED = 1_000_000  # the bench's "as fast as you can" rate: no sleep
WORDS = (" the", " model", " streams", " tokens", " one", " at", " a", " time", ".")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/chat")
async def chat() -> Response:
    body = await request.get_json()
    count = int(body.get("max_tokens", 64))
    rate = body.get("tokens_per_s")
    ttft = float(body.get("ttft_ms") or 0) / 1000

    async def events() -> AsyncIterator[str]:
        await asyncio.sleep(ttft)
        for index in range(count):
            data = json.dumps({"index": index, "text": WORDS[index % len(WORDS)]})
            yield f"event: token\nid: {index}\ndata: {data}\n\n"
            if rate and rate < UNPACED:
                await asyncio.sleep(1 / float(rate))
        yield 'event: finish\ndata: {"finish_reason": "length"}\n\n'

    response = Response(events(), mimetype="text/event-stream")
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut streams after 60 s
    return response
