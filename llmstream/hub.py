"""StreamHub: an app's open streams, admission control, shutdown and the one shared watchdog.

Admission refuses a new stream (503 with Retry-After, at once) while the server shuts down, at
`max_streams`, and while the loop's paced tokens run more than `max_lateness` late: past its capacity
a core would otherwise make every stream late, and a new one wait seconds for its first event.

The watchdog is why no stream needs a timer of its own: once per tick it looks at every open stream's
progress counters and sends heartbeats, enforces write timeouts and ends streams at their max duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, NamedTuple

from llmstream.metrics import StreamMetrics
from llmstream.scheduler import scheduler_for

if TYPE_CHECKING:
    from llmstream.streaming import EventStream, StreamOptions

logger = logging.getLogger("llmstream.stream")


class Refusal(NamedTuple):
    """Why a new stream is refused, in the caller's terms, and the Retry-After seconds."""

    why: str
    retry_after: int


# Seconds (config.Settings.max_lateness). 0.05 sheds overload more fairly (docs/performance.md), but a
# load generator on the same machine can hold a busy server's tokens 0.1 s late without overloading
# it (CI's Locust smoke: 320 streams, three Locust processes beside the server on 2 cores), and a
# mock that answers 503 there would fail the test it serves.
DEFAULT_MAX_LATENESS = 0.25


class StreamHub:
    """The app's open streams: admission control, shutdown, and the shared watchdog."""

    def __init__(
        self, *, max_streams: int, options: StreamOptions, max_lateness: float = DEFAULT_MAX_LATENESS
    ) -> None:
        self.max_streams = max_streams
        self.max_lateness = max_lateness
        self.options = options
        self.open: set[EventStream] = set()
        self.shutting_down = False
        self.metrics = StreamMetrics(open_streams=lambda: len(self.open), token_lateness=self.lateness)
        self._watchdog: asyncio.Task[None] | None = None
        self._tick = _tick_for(options)

    def refusal(self) -> Refusal | None:
        """Why a new stream would be refused now; None when there is room."""
        if self.shutting_down:
            retry_ms = self.options.retry_ms if self.options.retry_ms is not None else 3_000
            return Refusal("the server is shutting down", max(1, round(retry_ms / 1000)))
        if len(self.open) >= self.max_streams:
            return Refusal(f"too many open streams (at most {self.max_streams})", 1)
        late = self.lateness()
        if late > self.max_lateness:
            return Refusal(f"overloaded: tokens are running {late * 1000:.0f} ms late", 1)
        return None

    def lateness(self) -> float:
        """How late (seconds) this loop's paced tokens keep running (llmstream.scheduler); 0 outside
        a running loop (the metrics registry reads its gauges once when the app is built)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return 0.0
        return scheduler_for(loop).lateness(loop.time())

    def admit(self, stream: EventStream) -> Refusal | None:
        """Take ``stream`` in; or, counted as a rejection, why not."""
        refusal = self.refusal()
        if refusal is not None:
            self.metrics.streams_rejected += 1
            return refusal
        self.open.add(stream)
        self._tick = min(self._tick, _tick_for(stream.options))
        if self._watchdog is None or self._watchdog.done():
            # In a context of its own: a task runs in a copy of the context it was created in, here the
            # request that opened the first stream, which the watchdog would keep alive as long as it runs.
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch(), name="llmstream-watchdog", context=contextvars.Context()
            )
        return None

    def release(self, stream: EventStream) -> None:
        self.open.discard(stream)

    def begin_shutdown(self) -> None:
        """Refuse new streams and tell every open one to send its final event and end."""
        if self.shutting_down:
            return
        self.shutting_down = True
        logger.info("shutdown: closing %d open stream(s)", len(self.open))
        for stream in list(self.open):
            stream.request_close("server_shutdown")

    async def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self.open:
            await asyncio.sleep(self._tick)
            now = loop.time()
            for stream in list(self.open):
                stream.check(now)


def _tick_for(options: StreamOptions) -> float:
    # Timers fire within one tick of their due time; a quarter of the shortest keeps that error small.
    shortest = min(options.heartbeat, options.write_timeout, options.max_duration or float("inf"))
    return min(max(shortest / 4, 0.02), 1.0)
