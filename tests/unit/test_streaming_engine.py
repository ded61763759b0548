"""EventStream's contract at the ASGI boundary; the behaviour over sockets is in tests/integration."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import re
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmstream import ServerSentEvent
from llmstream.hub import StreamHub
from llmstream.scheduler import Ticket, scheduler_for
from llmstream.streaming import Closing, EventStream, ResetStream, StreamOptions, default_final_event


class RecordingSend:
    """An ASGI `send` that keeps the messages, as a server would put them on the wire."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


async def tokens(n: int) -> AsyncIterator[ServerSentEvent]:
    for i in range(n):
        yield ServerSentEvent.json({"i": i}, event="token", id=str(i))


def new_stream(source: AsyncIterator[ServerSentEvent], **options: Any) -> EventStream:
    hub = StreamHub(max_streams=10, options=StreamOptions(**options))
    return EventStream(source, hub, options=hub.options)


async def test_a_stream_runs_whole_and_ends_with_more_body_false() -> None:
    send = RecordingSend()
    stream = new_stream(tokens(100))
    await stream.run(send)
    assert send.messages[0]["type"] == "http.response.start"
    assert send.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert send.body.count(b"event: token\n") == 100
    assert stream.reason == "complete"
    assert stream.hub.metrics.closed["complete"] == 1
    assert stream.hub.open == set()


async def test_ready_events_are_coalesced_into_few_writes() -> None:
    send = RecordingSend()
    await new_stream(tokens(1000), buffer_events=64).run(send)
    body_writes = [m for m in send.messages if m["type"] == "http.response.body" and m["body"]]
    # 1000 events ready at once leave in writes of up to 64 events, not in 1000 writes.
    assert len(body_writes) <= 1000 // 64 + 3


async def test_a_stream_cancelled_while_it_finishes_is_still_released_counted_and_closed() -> None:
    # Regression: a hang-up that cancelled the stream while _finish waited for its producer to unwind
    # skipped the release (the stream stayed in the hub, holding its place against max_streams) and
    # the source's aclose() (an upstream connection would have been left to the garbage collector).
    unwinding = asyncio.Event()
    closed = asyncio.Event()

    class SlowToUnwind:
        """A source whose cleanup takes a moment (closing an upstream connection, say)."""

        def __init__(self) -> None:
            self.sent = False

        def __aiter__(self) -> SlowToUnwind:
            return self

        async def __anext__(self) -> ServerSentEvent:
            if not self.sent:
                self.sent = True
                return ServerSentEvent(data="x")
            try:
                await asyncio.sleep(3600)
            finally:
                unwinding.set()
                await asyncio.sleep(0.05)
            raise StopAsyncIteration

        async def aclose(self) -> None:
            assert unwinding.is_set()  # closed once the producer has unwound, not under it
            closed.set()

    stream = new_stream(SlowToUnwind(), max_duration=0.05)  # ends it while the producer waits
    hub = stream.hub
    running = asyncio.ensure_future(stream.run(RecordingSend()))
    await asyncio.wait_for(unwinding.wait(), 5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert hub.open == set()
    assert sum(hub.metrics.closed.values()) == 1
    await asyncio.wait_for(closed.wait(), 5)


async def test_a_stream_cannot_be_started_twice() -> None:
    stream = new_stream(tokens(1))
    await stream.run(RecordingSend())
    with pytest.raises(RuntimeError, match="already started"):
        await stream.run(RecordingSend())


async def test_source_closed_when_refused_at_the_cap() -> None:
    closed = []

    async def source() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(data="x")
        finally:
            closed.append(True)

    hub = StreamHub(max_streams=1, options=StreamOptions())
    hub.shutting_down = True  # refuses every new stream
    send = RecordingSend()
    generator = source()
    await anext(generator)  # started, so its finally has something to do
    await EventStream(generator, hub, options=hub.options).run(send)
    assert send.messages[0]["status"] == 503
    assert closed == [True]


def test_shutdown_final_event_tells_the_client_to_come_back() -> None:
    event = default_final_event(Closing("server_shutdown", "s-1", 2345))
    assert event is not None
    assert event.event == "close"
    assert event.retry == 2345
    assert json.loads(event.data or "") == {"reason": "server_shutdown", "retry_ms": 2345}


@pytest.mark.parametrize("reason", ["complete", "client_disconnected", "write_timeout"])
def test_no_final_event_where_none_can_or_need_be_sent(reason: Any) -> None:
    assert default_final_event(Closing(reason, "s-1", 1000)) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heartbeat": 0}, "heartbeat must be positive"),
        ({"write_timeout": -1}, "write_timeout must be positive"),
        ({"max_duration": 0}, "max_duration must be positive"),
        ({"buffer_events": 0}, "buffer_events must be at least 1"),
    ],
)
def test_stream_options_refuse_bad_values(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamOptions(**options)


class BlockingSend(RecordingSend):
    """A client whose socket is full: body writes wait until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["more_body"] and self.messages:
            self.blocked.set()
            await self.release.wait()
        await super().__call__(message)


async def endless_tokens() -> AsyncIterator[ServerSentEvent]:
    i = 0
    while True:
        yield ServerSentEvent.json({"i": i}, event="token")
        i += 1


async def test_final_event_sent_when_shutdown_finds_the_producer_waiting_for_space() -> None:
    # Regression: the producer, parked on a full buffer, was cancelled by shutdown; the writer then
    # resolved the cancelled "space" future, failed with InvalidStateError and never sent the final event.
    send = BlockingSend()
    stream = new_stream(endless_tokens(), buffer_events=2)
    running = asyncio.create_task(stream.run(send))
    await asyncio.wait_for(send.blocked.wait(), 5)
    await asyncio.sleep(0.01)  # the producer fills the buffer and waits for room
    stream.hub.begin_shutdown()
    send.release.set()
    await asyncio.wait_for(running, 5)
    assert stream.reason == "server_shutdown"
    assert send.messages[-1]["more_body"] is False
    assert b"event: close\n" in send.messages[-1]["body"]


async def test_retry_ms_zero_is_kept_in_the_shutdown_event() -> None:
    # Regression: `retry_ms or 3000` turned a configured 0 ("come back at once") into about 3000.
    send = BlockingSend()
    stream = new_stream(endless_tokens(), retry_ms=0)
    running = asyncio.create_task(stream.run(send))
    await asyncio.wait_for(send.blocked.wait(), 5)
    stream.hub.begin_shutdown()
    send.release.set()
    await asyncio.wait_for(running, 5)
    assert send.body.startswith(b": stream open\nretry: 0\n")
    assert b"retry: 0\n" in send.messages[-1]["body"]


async def test_reset_leaves_the_response_incomplete_after_the_events_produced() -> None:
    async def source() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data="one")
        yield ServerSentEvent(data="two")
        raise ResetStream

    send = RecordingSend()
    stream = new_stream(source())
    await stream.run(send)
    assert send.body.endswith(b"data: one\n\ndata: two\n\n")
    assert all(m.get("more_body", True) for m in send.messages)  # never completed: the server drops it
    assert stream.reason == "reset"
    assert stream.hub.metrics.closed["reset"] == 1


async def test_the_engines_own_refusal_keeps_the_request_id_of_the_response_it_replaces() -> None:
    hub = StreamHub(max_streams=1, options=StreamOptions())
    hub.shutting_down = True
    send = RecordingSend()
    headers = [(b"x-request-id", b"req_abc"), (b"x-accel-buffering", b"no")]
    await EventStream(tokens(1), hub, options=hub.options).run(send, headers=headers)
    start = send.messages[0]
    assert start["status"] == 503
    assert (b"x-request-id", b"req_abc") in start["headers"]
    assert (b"x-accel-buffering", b"no") not in start["headers"]  # an SSE header on a JSON answer


async def test_a_source_failing_before_its_first_event_is_answered_with_the_request_id() -> None:
    async def broken() -> AsyncIterator[ServerSentEvent]:
        raise RuntimeError("no plan")
        yield ServerSentEvent(data="never")

    send = RecordingSend()
    await new_stream(broken()).run(send, headers=[(b"x-request-id", b"req_def")])
    start = send.messages[0]
    assert start["status"] == 500
    assert (b"x-request-id", b"req_def") in start["headers"]


def hog_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a burst of other work on the same core does to the loop


async def test_new_streams_are_refused_at_once_while_paced_tokens_run_late() -> None:
    # Overload is shed, not queued: while the loop's paced tokens run later than max_lateness, a new
    # stream gets 503 with Retry-After at once; once tokens are on time again, it is admitted.
    loop = asyncio.get_running_loop()
    scheduler = scheduler_for(loop)
    hub = StreamHub(max_streams=10, options=StreamOptions(), max_lateness=0.1)

    class Punctual:
        def serve(self, now: float) -> float | None:
            return now + 0.01

    ticket = Ticket(Punctual())
    scheduler.schedule(ticket, loop.time() + 0.01)
    try:
        for _ in range(3):  # the core stays busy: ticks run ~290 ms late, window after window
            hog_the_loop(0.3)
            await asyncio.sleep(0.02)
        refused = RecordingSend()
        await EventStream(tokens(3), hub, options=hub.options).run(refused)
        start = refused.messages[0]
        assert start["status"] == 503
        assert (b"retry-after", b"1") in start["headers"]
        assert "overloaded" in json.loads(refused.messages[1]["body"])["error"]["message"]
        assert hub.metrics.streams_rejected == 1
        lateness = re.search(rb"^llmstream_token_lateness_seconds ([0-9.e-]+)$", hub.metrics.render(), re.M)
        assert lateness is not None
        assert float(lateness[1]) > 0.1
        await asyncio.sleep(0.7)  # on time again for more than two lateness windows
        admitted = RecordingSend()
        await EventStream(tokens(3), hub, options=hub.options).run(admitted)
        assert admitted.messages[0]["status"] == 200
    finally:
        scheduler.unschedule(ticket)


class _Marker:
    """Stands for a request: what a context variable of the code that opened a stream points to."""


_current: contextvars.ContextVar[_Marker] = contextvars.ContextVar("current")


async def test_the_watchdog_does_not_keep_the_context_of_the_stream_that_started_it() -> None:
    # Regression: the watchdog task was created in the first stream's request context (a task copies
    # the context it is created in), so it kept that request alive for as long as the server ran.
    stream = new_stream(tokens(1))
    marker = _Marker()
    gone = weakref.ref(marker)

    def admit_in_a_request(request: _Marker) -> None:
        _current.set(request)
        assert stream.hub.admit(stream) is None

    contextvars.Context().run(admit_in_a_request, marker)
    del marker
    gc.collect()
    assert stream.hub._watchdog is not None
    assert not stream.hub._watchdog.done()
    assert gone() is None
    stream.hub.release(stream)
    await stream.hub.stop_watchdog()


async def test_the_token_timer_does_not_keep_the_context_of_the_stream_that_armed_it() -> None:
    # Same trap: a timer runs in (and holds) a copy of the context it was armed in.
    scheduler = scheduler_for(asyncio.get_running_loop())
    marker = _Marker()
    gone = weakref.ref(marker)

    class Idle:
        def serve(self, now: float) -> float | None:
            return None

    ticket = Ticket(Idle())

    def arm_in_a_request(request: _Marker) -> None:
        _current.set(request)
        scheduler.schedule(ticket, asyncio.get_running_loop().time() + 60)

    contextvars.Context().run(arm_in_a_request, marker)
    del marker
    gc.collect()
    assert scheduler.armed
    assert gone() is None
    scheduler.unschedule(ticket)
