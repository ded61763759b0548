"""A stream's connection (llmstream.sse_response) inside a real Uvicorn (the default server): when its
schedule starts, and how it ends.

A paced stream's schedule counts from when the request was received (on the default server, when its
connection read its last byte), not from when its stream started: a model's time to first token is
the time from the request, as a provider's is.

Uvicorn answers every `receive()` with `http.disconnect` once a response is complete, so the
connection's receiver ends then, while the stream may still be closing its source: that must not cut
the closing short.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time

import httpx
import pytest

from llmstream import ServerSentEvent
from llmstream.api.pacing import PacedSource
from llmstream.lean_connection import LeanHttpToolsProtocol
from llmstream.sse_response import EventStreamResponse, event_stream, hub_of
from tests.integration.conftest import serving_in_process

pytestmark = pytest.mark.timeout(60)


class RecordedSource:
    """Events 1..count, then the end; records whether it was closed (as an upstream would be)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.closed = asyncio.Event()

    def __aiter__(self) -> RecordedSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        await asyncio.sleep(0)
        return ServerSentEvent(data=str(self.left))

    async def aclose(self) -> None:
        self.closed.set()


CHAT = {
    "messages": [{"role": "user", "content": "one two three"}],
    "stream": True,
    "model": "echo",
    "tokens_per_s": 20,
    "jitter": 0,
    "max_tokens": 1,
}


async def test_a_stream_that_ends_normally_still_closes_its_source() -> None:
    # Regression: the receiver's end after the final chunk was taken for a hang-up and cancelled the
    # handler while the stream awaited its producer, so the source's aclose() never ran.
    sources: list[RecordedSource] = []
    async with serving_in_process() as (base_url, app):

        @app.get("/test/recorded")
        async def recorded() -> EventStreamResponse:
            sources.append(RecordedSource(3))
            return event_stream(sources[-1])

        async with httpx.AsyncClient(base_url=base_url) as client:
            for _ in range(10):
                response = await client.get("/test/recorded")
                assert response.status_code == 200
                assert response.text.count("data: ") == 3
        await asyncio.wait_for(asyncio.gather(*(source.closed.wait() for source in sources)), 5)
        closed = hub_of(app).metrics.closed
        assert closed["complete"] == sum(closed.values()) == 10


async def test_time_to_first_token_counts_from_when_the_request_was_received() -> None:
    async with serving_in_process() as (base_url, app):

        @app.before_request
        async def slow_middleware() -> None:  # what any slow step before the stream would do
            await asyncio.sleep(0.5)

        body = {**CHAT, "ttft_ms": 600}
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            sent = time.monotonic()
            async with client.stream("POST", "/api/chat", json=body) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line == "event: token":
                        first_token = time.monotonic() - sent
                        break
    # Due 600 ms after the request arrived, 100 ms after the stream started; counted from the start,
    # it would have come after 1.1 s (the upper bound is that, not tighter: a loaded machine adds lateness).
    assert 0.6 <= first_token < 1.05, first_token


async def test_a_body_sent_in_parts_is_read_whole_and_the_schedule_counts_from_its_end() -> None:
    # The connection takes a request's first message itself; the rest of a body sent in parts is the
    # receiver's, and the handler waits for it, as it would under Quart's own connection.
    body = json.dumps({**CHAT, "ttft_ms": 300}).encode()
    half = len(body) // 2
    head = (
        "POST /api/chat HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    async with serving_in_process() as (base_url, _):
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(head + body[:half])
            await writer.drain()
            await asyncio.sleep(0.4)  # the rest of the body comes 0.4 s later
            writer.write(body[half:])
            await writer.drain()
            completed = time.monotonic()
            raw = b""
            while b"event: token" not in raw:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk, raw
                raw += chunk
            first_token = time.monotonic() - completed
            raw += await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b'"text":"one"' in raw  # the echo model answered the whole prompt
    assert b"event: finish" in raw
    # Due 300 ms after the body was complete: counted from the request's head, it would have left
    # about 0.1 s after the body's end. Wrong is early, so the upper bound only says "not lost".
    assert 0.3 <= first_token < 1.5, first_token


async def test_a_paced_stream_s_schedule_counts_from_when_its_connection_read_the_request() -> None:
    # Not from when the app got it, one loop iteration or more later: under load each iteration may
    # wait for a tick of the token scheduler, and every token carried that wait.
    async with serving_in_process() as (base_url, app):
        body = {**CHAT, "ttft_ms": 60_000}
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as client,
            client.stream("POST", "/api/chat", json=body) as response,
        ):
            assert response.status_code == 200
            lines = response.aiter_lines()
            while await anext(lines) != "event: start":
                pass
            [stream] = hub_of(app).open
            assert isinstance(stream.source, PacedSource)
            # The connection whose response is under way (a finished one keeps its last cycle).
            connections = [o for o in gc.get_objects() if isinstance(o, LeanHttpToolsProtocol)]
            [connection] = [o for o in connections if o.cycle is not None and not o.cycle.response_complete]
            read_at = connection.cycle.message_event.body_read_at  # type: ignore[attr-defined]
            assert read_at is not None
            assert stream.source._t0 == read_at
