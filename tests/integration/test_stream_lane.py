"""The stream lane (llmstream.api.stream_lane) on every ASGI server setup: a body that comes in pieces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from tests.integration.serverproc import RunningServer

BODY = json.dumps(
    {
        "model": "instant",
        "messages": [{"role": "user", "content": "Tell me about streams."}],
        "max_tokens": 8,
        "stream": True,
    }
).encode()


async def in_two_pieces() -> AsyncIterator[bytes]:
    # Sent with chunked transfer coding: the server gets the head and half the body, then the rest.
    yield BODY[: len(BODY) // 2]
    await asyncio.sleep(0.2)
    yield BODY[len(BODY) // 2 :]


async def test_a_stream_whose_body_comes_in_pieces_is_answered_in_full(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post("/v1/chat/completions", content=in_two_pieces())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    data = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert {c["id"] for c in chunks} == {"chatcmpl-" + response.headers["x-request-id"]}
