"""The native API on every ASGI server setup (conftest.SERVER_SETUPS): a smoke test of each way it answers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.serverproc import RunningServer
from tests.integration.sse_client import read_stream

PROMPT = "Hello, streaming world! 👋 你好"
QUICK = "ttft_ms=0&tokens_per_s=2000"


async def test_a_stream_from_start_to_finish(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        read = await read_stream(client, f"/api/chat/stream?prompt={PROMPT}&model=echo&{QUICK}")
    assert read.status == 200
    assert read.headers["content-type"] == "text/event-stream"
    types = [e.event for e in read.events]
    assert types[0] == "start"
    assert types[-1] == "finish"
    tokens = read.of_type("token")
    assert types == ["start"] + ["token"] * len(tokens) + ["finish"]
    start = json.loads(read.events[0].data or "")
    payloads = [json.loads(e.data or "") for e in tokens]
    assert "".join(p["text"] for p in payloads) == PROMPT  # echo, multi-byte characters intact
    assert [p["index"] for p in payloads] == list(range(len(tokens)))
    assert [e.id for e in tokens] == [f"{start['stream_key']}:{i}" for i in range(len(tokens))]
    finish = json.loads(read.events[-1].data or "")
    assert finish["finish_reason"] == "stop"
    assert finish["usage"]["completion_tokens"] == len(tokens)


async def test_a_json_answer(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post("/api/chat", json={"prompt": PROMPT, "model": "echo", "stream": False})
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == PROMPT
    assert body["stream_id"] == response.headers["x-request-id"]


async def test_a_reset_breaks_the_connection(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_stream(
                client,
                f"/api/chat/stream?prompt={PROMPT}&model=instant",
                headers={"X-LLMStream-Fault": "reset_after:3"},
            )


async def test_a_bad_request_in_the_native_shape(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post("/api/chat", json={"prompt": "hi", "max_tokens": 0})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_request",
            "message": "max_tokens must be from 1 to 8192 for model 'typical', not 0",
            "param": "max_tokens",
        }
    }
