"""Read SSE streams over real sockets the way clients do: chunk by chunk, parsed with SSEDecoder."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import httpx

from llmstream import ServerSentEvent, SSEDecoder


@dataclass
class StreamRead:
    status: int
    headers: httpx.Headers
    events: list[ServerSentEvent] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # monotonic receive time of each event
    raw: bytearray = field(default_factory=bytearray)
    retry: int | None = None

    def of_type(self, event_type: str) -> list[ServerSentEvent]:
        return [e for e in self.events if e.event == event_type]

    @property
    def heartbeats(self) -> int:
        return len(re.findall(rb"^: heartbeat$", bytes(self.raw), flags=re.MULTILINE))


async def read_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    max_events: int | None = None,
) -> StreamRead:
    """GET `url` and read it until it ends (or until `max_events` events, then hang up)."""
    decoder = SSEDecoder()
    async with client.stream("GET", url, headers=headers) as response:
        result = StreamRead(response.status_code, response.headers)
        async for chunk in response.aiter_raw():
            result.raw += chunk
            now = time.monotonic()
            for event in decoder.feed(chunk):
                result.events.append(event)
                result.arrivals.append(now)
            if max_events is not None and len(result.events) >= max_events:
                break
        result.events += decoder.flush()
        result.retry = decoder.retry
    return result
