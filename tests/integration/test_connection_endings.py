"""How a stream's connection ends, seen from inside a real Uvicorn (the default server).

Uvicorn answers every `receive()` with `http.disconnect` once a response is complete, so the
connection's receiver ends then, while the stream may still be closing its source: that must not cut
the closing short.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from llmstream import ServerSentEvent
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
