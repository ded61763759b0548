"""Pacing: events at absolute due times from the shared scheduler, the instant model never waiting, a
reset at the end, and a stream that leaves nothing behind in the scheduler however it ends."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import itertools
import json
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from llmstream.api.pacing import PacedSource, paced
from llmstream.hub import StreamHub
from llmstream.protocols import Scheduled, StreamItem, TokenRun, anthropic, native, openai
from llmstream.protocols.wire import stamped
from llmstream.scheduler import scheduler_for
from llmstream.simulator import Message, StreamPlan, StreamRequest, parse_faults, plan_stream
from llmstream.sources import SEND_TIME_SLOT, fill_send_times
from llmstream.sse import ServerSentEvent
from llmstream.streaming import RESET_LINGER, EventStream, ResetStream, StreamOptions

from .simulator_strategies import echo_plan


def plan(model: str = "echo", **options: object) -> StreamPlan:
    prompt = "one two three four five six " * 4
    return plan_stream(StreamRequest(model=model, messages=(Message("user", prompt),), **options))  # type: ignore[arg-type]


def events_of(plan: StreamPlan) -> Iterator[StreamItem]:
    """What the server paces: the native stream, its tokens in runs."""
    return native.stream_items(plan, created=0, request_id="r")


class Arrivals:
    """A sink that records when each event arrives; after `room` events it refuses (a full buffer)."""

    def __init__(self, room: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.arrivals: list[tuple[float, bytes]] = []
        self.room = room
        self.ended: asyncio.Future[BaseException | None] = self.loop.create_future()
        self.flushed: list[int] = []  # how many events had arrived at each flush

    def offer(self, data: bytes) -> bool:
        self.arrivals.append((self.loop.time() - self.start, data))
        return self.room is None or len(self.arrivals) < self.room

    def flush(self) -> None:
        self.flushed.append(len(self.arrivals))

    def deliver(self, data: bytes) -> bool:
        accepted = self.offer(data)
        self.flush()
        return accepted

    def end(self, error: BaseException | None = None) -> None:
        self.ended.set_result(error)

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(data.split(b"data: ", 1)[1]) for _, data in self.arrivals]


async def run_paced(source: PacedSource, room: int | None = None) -> Arrivals:
    sink = Arrivals(room)
    source.start(sink)
    assert await asyncio.wait_for(sink.ended, 5) is None
    return sink


async def test_events_due_together_are_flushed_together_and_every_offer_is_flushed() -> None:
    # The stream writes at a flush: an instant answer (everything due at once) must reach it as one
    # batch, and a paced one must be flushed as each token falls due, never left waiting.
    answer = plan(model="instant", max_tokens=12)
    instant = await run_paced(paced(events_of(answer), answer))
    assert instant.flushed[0] == len(instant.arrivals) == 14  # start, 12 tokens, finish
    regular = plan(ttft_ms=20, tokens_per_s=50, jitter=0, max_tokens=5)
    arrivals = await run_paced(paced(events_of(regular), regular))
    assert arrivals.flushed[-1] == len(arrivals.arrivals)
    assert len(set(arrivals.flushed)) >= 5  # a flush after each token that fell due on its own


async def test_events_leave_at_their_due_times() -> None:
    regular = plan(ttft_ms=100, tokens_per_s=20, jitter=0, max_tokens=8)  # due at 100, 150 ... 450 ms
    sink = await run_paced(paced(events_of(regular), regular))
    due = [0.0] + [t.due_ms / 1000 for t in regular.tokens] + [regular.end_ms / 1000]
    assert len(sink.arrivals) == len(due)
    for (at, _), expected in zip(sink.arrivals, due, strict=True):
        assert expected <= at < expected + 0.05


async def test_a_late_loop_does_not_push_the_schedule_back() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0, max_tokens=12)  # every 50 ms from 0
    loop = asyncio.get_running_loop()
    loop.call_later(0.07, time.sleep, 0.18)  # the loop is busy from 70 to 250 ms
    sink = await run_paced(paced(events_of(regular), regular))
    arrivals = [at for at, _ in sink.arrivals]
    # Tokens 2-5 (due at 100-250 ms) came due while the loop was busy: they leave together at once,
    # then the schedule goes on as planned. "Sleeping the gap" would have put the last token 0.18 s late.
    assert arrivals[6] - arrivals[3] < 0.01
    last_due = regular.tokens[-1].due_ms / 1000
    assert last_due <= arrivals[-2] < last_due + 0.03


async def test_the_schedule_counts_from_when_the_request_was_received() -> None:
    # Handling the request takes nothing off the model's time to first token: a stream that starts
    # 60 ms after its request was received sends its first token 40 ms later, not 100.
    regular = plan(ttft_ms=100, tokens_per_s=20, jitter=0, max_tokens=8)  # due at 100, 150 ... 450 ms
    sink = Arrivals()
    paced(events_of(regular), regular).start(sink, sink.start - 0.06)
    assert await asyncio.wait_for(sink.ended, 5) is None
    due = [0.0] + [t.due_ms / 1000 for t in regular.tokens] + [regular.end_ms / 1000]
    assert len(sink.arrivals) == len(due)
    for (at, _), expected in zip(sink.arrivals, due, strict=True):
        expected = max(0.0, expected - 0.06)
        assert expected <= at < expected + 0.05


async def test_a_start_later_than_the_first_token_delays_it_and_the_rest_keep_their_gaps() -> None:
    # Regression: a stream that started 220 ms after its request (requests queued behind each other
    # on a busy loop) sent every token due by then at once, and a short stream in one burst. As a
    # provider's queue does, the wait delays the first token; the tokens after it keep their gaps.
    regular = plan(ttft_ms=100, tokens_per_s=20, jitter=0, max_tokens=8)  # due at 100, 150 ... 450 ms
    sink = Arrivals()
    paced(events_of(regular), regular).start(sink, sink.start - 0.22)
    assert await asyncio.wait_for(sink.ended, 5) is None
    tokens = [at for at, data in sink.arrivals if b"event: token" in data]
    assert len(tokens) == 8
    assert tokens[0] < 0.03  # the first token at once: it is late already
    gaps = [later - earlier for earlier, later in itertools.pairwise(tokens)]
    assert all(0.04 <= gap < 0.07 for gap in gaps), gaps


async def test_a_schedule_never_counts_from_a_time_still_to_come() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0, max_tokens=4)  # due at 0, 50, 100, 150 ms
    sink = Arrivals()
    paced(events_of(regular), regular).start(sink, sink.start + 10)  # no event may wait for this
    assert await asyncio.wait_for(sink.ended, 5) is None
    assert sink.arrivals[1][0] < 0.05  # the first token is due at once
    assert sink.arrivals[-2][0] < 0.2


async def test_a_full_sink_waits_unscheduled_then_catches_up_in_order() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=50, jitter=0, max_tokens=20)  # every 20 ms from 0
    assert len(regular.tokens) == 20
    source = paced(events_of(regular), regular)
    sink = Arrivals(room=2)
    source.start(sink)  # start and token 0 are due at once: the sink is full after them
    assert len(sink.arrivals) == 2
    assert not source.scheduled  # refused: waiting for resume(), not for a timer
    await asyncio.sleep(0.11)
    assert len(sink.arrivals) == 2  # nothing offered to a full sink
    sink.room = None
    source.resume()  # tokens 1-5 are due by now (20-100 ms): all of them, at once
    assert [p["index"] for p in sink.payloads[2:]][:5] == [1, 2, 3, 4, 5]
    assert source.scheduled
    assert await asyncio.wait_for(sink.ended, 5) is None
    indices = [p["index"] for p in sink.payloads if "index" in p]
    assert indices == list(range(len(regular.tokens)))
    last_due = regular.tokens[-1].due_ms / 1000
    assert sink.arrivals[-2][0] < last_due + 0.03  # back on the original schedule


async def test_the_instant_model_never_waits() -> None:
    instant = plan_stream(StreamRequest(model="instant", messages=(Message("user", "Explain pacing"),)))
    assert len(instant.tokens) > 100  # more than one buffer's worth: resumed by the writer, not a timer
    scheduler = scheduler_for(asyncio.get_running_loop())
    ticks = scheduler.ticks
    source = paced(events_of(instant), instant)
    send = RecordingSend()
    started = time.perf_counter()
    await asyncio.wait_for(new_stream(source).run(send), 5)
    assert time.perf_counter() - started < 0.05
    assert send.body.count(b"event: token\n") == len(instant.tokens)
    assert scheduler.ticks == ticks  # never scheduled, never woken by a timer


async def test_timestamps_are_slots_in_token_events_only_with_no_clock_read_when_planned() -> None:
    quick = plan(ttft_ms=0, tokens_per_s=200, jitter=0)
    sink = await run_paced(paced(events_of(quick), quick, timestamps=True))
    offered = [data for _, data in sink.arrivals]
    assert SEND_TIME_SLOT not in offered[0]  # start
    assert SEND_TIME_SLOT not in offered[-1]  # finish
    assert all(data.count(SEND_TIME_SLOT) == 1 for data in offered[1:-1])


async def test_without_timestamps_events_are_sent_as_planned() -> None:
    quick = plan(ttft_ms=0, tokens_per_s=1000, jitter=0)
    sink = await run_paced(paced(events_of(quick), quick))
    expected = native.stream_events(quick, created=0, request_id="r")
    assert [data for _, data in sink.arrivals] == [item.event.encode() for item in expected]


@pytest.mark.parametrize("framing", [native, openai, anthropic], ids=["native", "openai", "anthropic"])
def test_a_filled_send_time_slot_is_the_encoding_of_stamped(framing: Any) -> None:
    # What PacedSource sends with timestamps: every token event with the slot, filled at the write.
    t = 1_700_000_000.123456
    runs = [
        item
        for item in framing.stream_items(echo_plan(), created=1, request_id="r")
        if isinstance(item, TokenRun)
    ]
    assert runs
    for run in runs:
        slotted = run.template.with_member("t", SEND_TIME_SLOT)
        for token in run.tokens:
            filled = fill_send_times(slotted.render(token.index, token.text), t)
            assert filled == stamped(run.template.event(token.index, token.text), t).encode()


async def test_a_reset_plan_ends_with_reset_stream_after_its_events() -> None:
    reset = plan(ttft_ms=0, tokens_per_s=1000, jitter=0, faults=parse_faults("reset_after:3"))
    sink = Arrivals()
    paced(events_of(reset), reset).start(sink)
    error = await asyncio.wait_for(sink.ended, 5)
    assert isinstance(error, ResetStream)
    assert "reset_after:3" in str(error)
    assert [data.split(b"\n", 1)[0] for _, data in sink.arrivals] == [b"event: start"] + [b"event: token"] * 3


async def test_a_failing_plan_ends_its_own_stream_with_the_error() -> None:
    def items() -> Iterator[Scheduled]:
        yield Scheduled(0.0, ServerSentEvent(data="one"))
        yield Scheduled(10.0, ServerSentEvent(data="two"))
        raise RuntimeError("the framing broke")

    source = PacedSource(items())
    sink = Arrivals()
    source.start(sink)
    error = await asyncio.wait_for(sink.ended, 5)
    assert isinstance(error, RuntimeError)
    assert [data for _, data in sink.arrivals] == [b"data: one\n\n", b"data: two\n\n"]
    assert not source.scheduled


async def test_close_stops_the_delivery_and_unschedules() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0)
    source = paced(events_of(regular), regular)
    sink = Arrivals()
    source.start(sink)
    assert source.scheduled
    source.close()
    source.close()  # twice is harmless
    assert not source.scheduled
    delivered = len(sink.arrivals)
    await asyncio.sleep(0.12)
    source.resume()  # a late resume after close does nothing either
    assert len(sink.arrivals) == delivered
    assert not sink.ended.done()


async def test_a_closed_paced_source_is_freed_without_the_cycle_collector() -> None:
    # Regression: a source and its scheduler ticket pointed at each other, so every stream, finished or
    # cut, left a cycle that only a full garbage collection freed (the only cyclic garbage of stream
    # churn), and full collections could not be made rarer without memory growing meanwhile.
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0)
    source = paced(events_of(regular), regular)
    source.start(Arrivals())
    assert source.scheduled
    gc.disable()
    try:
        source.close()
        freed = weakref.ref(source)
        del source
        assert freed() is None
    finally:
        gc.enable()


# ---- through the engine: EventStream with a PacedSource ------------------------------------------------


class RecordingSend:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.times: list[float] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.times.append(asyncio.get_running_loop().time())

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


class BlockingSend(RecordingSend):
    """A client whose socket is full: body writes after the first wait until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["more_body"] and len(self.messages) > 1:
            self.blocked.set()
            await self.release.wait()
        await super().__call__(message)


def new_stream(source: PacedSource, hub: StreamHub | None = None, **options: Any) -> EventStream:
    hub = hub or StreamHub(max_streams=10, options=StreamOptions(**options))
    return EventStream(source, hub, options=StreamOptions(**options))


def indices(body: bytes) -> list[int]:
    return [json.loads(line[6:])["index"] for line in body.split(b"\n") if line.startswith(b'data: {"index"')]


async def test_a_full_buffer_does_not_delay_other_streams() -> None:
    fast = plan(ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=30)  # every 10 ms, over 0.3 s
    hub = StreamHub(max_streams=10, options=StreamOptions())
    longer = plan("fast", ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=90)  # still going when checked
    assert len(longer.tokens) == 90
    slow_source = paced(events_of(longer), longer)
    slow_send = BlockingSend()
    slow = asyncio.create_task(new_stream(slow_source, hub, buffer_events=2).run(slow_send))
    await asyncio.wait_for(slow_send.blocked.wait(), 5)
    healthy_send = RecordingSend()
    healthy_started = asyncio.get_running_loop().time()
    await asyncio.wait_for(new_stream(paced(events_of(fast), fast), hub).run(healthy_send), 5)
    # The other stream went on schedule: all its tokens, each sent within a margin of its due time.
    assert indices(healthy_send.body) == list(range(len(fast.tokens)))
    for at, message in zip(healthy_send.times, healthy_send.messages, strict=True):
        for k in indices(message.get("body", b"")):
            assert at - healthy_started < fast.tokens[k].due_ms / 1000 + 0.03
    # The blocked stream waits off the schedule, its buffer full, rather than in every tick.
    assert not slow_source.scheduled
    slow_send.release.set()
    await asyncio.wait_for(slow, 5)
    assert indices(slow_send.body) == list(range(len(longer.tokens)))  # all of them, in order


async def test_a_client_that_leaves_leaves_nothing_scheduled() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0)
    scheduler = scheduler_for(asyncio.get_running_loop())
    source = paced(events_of(regular), regular)
    stream = new_stream(source)
    running = asyncio.create_task(stream.run(RecordingSend()))
    await asyncio.sleep(0.03)
    assert source.scheduled
    assert len(scheduler) == 1
    running.cancel()  # how Quart reports a client disconnect
    await asyncio.wait([running])
    assert stream.reason == "client_disconnected"
    assert not source.scheduled
    assert len(scheduler) == 0
    assert not scheduler.armed
    assert stream.hub.open == set()
    # The source may outlive its stream (a stale heap entry points to it until it surfaces): it must
    # not keep the stream, its buffer and its connection alive.
    ref = weakref.ref(stream)
    del stream, running
    gc.collect()
    assert ref() is None


async def test_shutdown_ends_a_waiting_stream_and_unschedules_it() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0)
    source = paced(events_of(regular), regular)
    stream = new_stream(source)
    send = RecordingSend()
    running = asyncio.create_task(stream.run(send))
    await asyncio.sleep(0.03)
    assert source.scheduled
    stream.hub.begin_shutdown()
    assert not source.scheduled  # at once: no event may follow the final one
    await asyncio.wait_for(running, 5)
    assert stream.reason == "server_shutdown"
    assert b"event: close\n" in send.messages[-1]["body"]
    assert not source.scheduled


async def test_a_reset_plan_leaves_the_response_incomplete() -> None:
    reset = plan(ttft_ms=0, tokens_per_s=1000, jitter=0, faults=parse_faults("reset_after:3"))
    send = RecordingSend()
    stream = new_stream(paced(events_of(reset), reset))
    await asyncio.wait_for(stream.run(send), 5)
    assert stream.reason == "reset"
    assert indices(send.body) == [0, 1, 2]
    assert all(m.get("more_body", True) for m in send.messages)


async def test_a_plan_that_fails_before_its_first_event_gets_an_http_error() -> None:
    def items() -> Iterator[Scheduled]:
        raise RuntimeError("no plan")
        yield  # pragma: no cover

    send = RecordingSend()
    stream = new_stream(PacedSource(items()))
    await asyncio.wait_for(stream.run(send), 5)
    assert send.messages[0]["status"] == 500
    assert stream.reason == "error"


class WallClockSend(RecordingSend):
    """Records the wall clock after each write, and the stamps each body carries."""

    def __init__(self) -> None:
        super().__init__()
        self.walls: list[float] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        await super().__call__(message)
        self.walls.append(time.time())
        await asyncio.sleep(0.003)  # a write that takes a while: later events queue behind it


async def test_the_send_time_is_the_time_of_the_write_not_of_the_plan() -> None:
    # Regression: `t` was taken when an event entered the stream's buffer, so a busy loop or a batch
    # waiting for the writer counted as the load-test client's lag.
    quick = plan(ttft_ms=0, tokens_per_s=1000, jitter=0, max_tokens=40)
    send = WallClockSend()
    before = time.time()
    await asyncio.wait_for(new_stream(paced(events_of(quick), quick, timestamps=True)).run(send), 5)
    assert SEND_TIME_SLOT not in send.body
    previous, stamps = before, []
    for message, wall in zip(send.messages, send.walls, strict=True):
        body = message.get("body", b"")
        times = {
            json.loads(line[6:])["t"] for line in body.split(b"\n") if line.startswith(b'data: {"index"')
        }
        assert len(times) <= 1  # one write, one send time for all its events
        for t in times:
            assert previous <= t <= wall  # taken at this write: after the last one, before it returned
            stamps.append(t)
        previous = wall
    assert len(stamps) >= 2
    assert indices(send.body) == list(range(len(quick.tokens)))


class YieldingSend(RecordingSend):
    """A server whose every body write takes a turn of the loop (a task of its own writes)."""

    async def __call__(self, message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        await super().__call__(message)


async def test_a_send_that_waits_is_finished_by_the_writer_with_nothing_lost_or_reordered() -> None:
    regular = plan("fast", ttft_ms=0, tokens_per_s=200, jitter=0, max_tokens=40)
    assert len(regular.tokens) == 40
    send = YieldingSend()
    stream = new_stream(paced(events_of(regular), regular))
    await asyncio.wait_for(stream.run(send), 5)
    assert indices(send.body) == list(range(40))
    assert stream.reason == "complete"
    assert stream.events_sent == 42  # start, 40 tokens, finish
    assert send.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


class FailingSend(RecordingSend):
    """A connection that breaks at the `fail_at`-th body write."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.body_writes = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.body_writes += 1
            if self.body_writes == self.fail_at:
                raise OSError("connection reset by peer")
        await super().__call__(message)


async def test_a_failing_send_ends_the_stream_as_an_error_and_unschedules_it() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=30)
    source = paced(events_of(regular), regular)
    send = FailingSend(fail_at=5)
    stream = new_stream(source)
    await asyncio.wait_for(stream.run(send), 5)
    assert stream.reason == "error"
    assert send.body_writes == 5  # nothing written after the failure, no final event
    assert not source.scheduled
    assert stream.hub.open == set()


class LateBlockingSend(RecordingSend):
    """A client whose socket fills up mid-stream: from the 6th message on, writes wait for `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()
        self.cancelled = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if len(self.messages) >= 5 and not self.release.is_set():
            self.blocked.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        await super().__call__(message)


async def test_a_client_leaving_while_its_send_waits_in_the_writer_cancels_that_send() -> None:
    longer = plan("fast", ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=90)
    source = paced(events_of(longer), longer)
    send = LateBlockingSend()
    stream = new_stream(source)
    running = asyncio.create_task(stream.run(send))
    await asyncio.wait_for(send.blocked.wait(), 5)
    await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert send.cancelled  # the waiting send saw the cancellation, as an awaited one would
    assert stream.reason == "client_disconnected"
    assert not source.scheduled


async def test_a_send_that_waited_in_the_writer_completes_and_the_stream_goes_on() -> None:
    longer = plan("fast", ttft_ms=0, tokens_per_s=200, jitter=0, max_tokens=60)
    send = LateBlockingSend()
    stream = new_stream(paced(events_of(longer), longer))
    running = asyncio.create_task(stream.run(send))
    await asyncio.wait_for(send.blocked.wait(), 5)
    await asyncio.sleep(0.05)
    send.release.set()
    await asyncio.wait_for(running, 5)
    assert indices(send.body) == list(range(60))
    assert stream.reason == "complete"


class TaskRecordingSend(RecordingSend):
    """Records, for each body write, the current task and how many token events the scheduler's tick
    wrote in it (0 for a write the writer task made)."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[tuple[asyncio.Task[Any] | None, int]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            from_tick = any(frame.function == "_tick" for frame in inspect.stack(context=0))
            tokens = message["body"].count(b"event: token\n") if from_tick else 0
            self.writers.append((asyncio.current_task(), tokens))
        await super().__call__(message)


async def test_paced_tokens_to_a_client_that_keeps_up_are_written_from_the_tick_as_the_writer() -> None:
    # The writer task is not woken for them: the send starts, and finishes, inside the tick. Yet the
    # send sees the stream's task as the current one, as it would had the writer made it (wrappers
    # that use asyncio.timeout or cancel scopes need a current task).
    # The first token well after the start: a process held off its core for longer than the time to
    # first token (a busy CI machine) had every token due at the start, which the writer then wrote,
    # before it ever waited (seen with two busy loops on the test's core: 0 of 10 from the tick).
    regular = plan(ttft_ms=250, tokens_per_s=100, jitter=0, max_tokens=10)
    send = TaskRecordingSend()
    stream = new_stream(paced(events_of(regular), regular))
    running = asyncio.create_task(stream.run(send))
    await asyncio.wait_for(running, 5)
    assert indices(send.body) == list(range(10))
    # Counted in tokens, not writes: on a busy machine tokens fall due together and share a write.
    assert sum(tokens for _, tokens in send.writers) >= 9, send.writers  # maybe one due with the start
    assert {task for task, _ in send.writers} == {running}
    assert stream.events_sent == len(regular.tokens) + 2  # start and finish included


async def test_a_send_that_fails_on_the_call_itself_ends_the_stream_as_an_error() -> None:
    # A server's send need not be a coroutine function: one that raises when called, from the tick,
    # ends the stream like any failed write instead of breaking the scheduler.
    regular = plan(ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=30)
    source = paced(events_of(regular), regular)
    recorded = RecordingSend()

    def send(message: dict[str, Any]) -> Any:
        if message["type"] == "http.response.body" and len(recorded.messages) >= 4:
            raise OSError("connection reset by peer")
        return recorded(message)

    stream = new_stream(source)
    await asyncio.wait_for(stream.run(send), 5)
    assert stream.reason == "error"
    assert len(recorded.messages) == 4
    assert not source.scheduled


_trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="none")


async def test_a_send_from_the_tick_sees_the_context_the_stream_runs_in() -> None:
    # A send wrapper that reads a context variable (tracing middleware does) reads the stream's own.
    regular = plan(ttft_ms=0, tokens_per_s=200, jitter=0, max_tokens=10)
    seen: list[str] = []
    recorded = RecordingSend()

    async def send(message: dict[str, Any]) -> None:
        seen.append(_trace.get())
        await recorded(message)

    async def run_traced() -> None:
        _trace.set("request-7")
        await new_stream(paced(events_of(regular), regular)).run(send)

    await asyncio.wait_for(asyncio.create_task(run_traced()), 5)
    assert indices(recorded.body) == list(range(10))
    assert set(seen) == {"request-7"}


async def test_a_send_cancelled_at_its_first_step_ends_only_its_own_stream() -> None:
    # Regression (review): a CancelledError from a send started in the tick escaped into the
    # scheduler's tick and stopped it, stalling every stream served after it.
    regular = plan(ttft_ms=0, tokens_per_s=100, jitter=0, max_tokens=30)
    recorded = RecordingSend()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and len(recorded.messages) >= 4:
            raise asyncio.CancelledError
        await recorded(message)

    other_send = RecordingSend()
    other = new_stream(paced(events_of(regular), regular))
    running_other = asyncio.create_task(other.run(other_send))
    cancelled = new_stream(paced(events_of(regular), regular))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(cancelled.run(send), 5)
    assert cancelled.reason == "client_disconnected"
    await asyncio.wait_for(running_other, 5)
    assert indices(other_send.body) == list(range(len(regular.tokens)))


async def test_a_reset_cuts_the_connection_a_moment_after_its_last_bytes() -> None:
    # Regression (e2e, Chromium): the cut in the same instant as the last bytes let the browser drop
    # them; it resumed before the last token, and the resumed stream ended the same way, forever.
    reset = plan(ttft_ms=0, tokens_per_s=1000, jitter=0, faults=parse_faults("reset_after:3"))
    send = RecordingSend()
    stream = new_stream(paced(events_of(reset), reset))
    await asyncio.wait_for(stream.run(send), 5)
    assert stream.reason == "reset"
    cut_at = asyncio.get_running_loop().time()
    assert cut_at - send.times[-1] >= RESET_LINGER * 0.9
