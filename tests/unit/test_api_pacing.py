"""Pacing: events at absolute due times, the instant model never waiting, and a reset at the end."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from llmstream.api.pacing import paced
from llmstream.protocols import native
from llmstream.simulator import Message, StreamPlan, StreamRequest, parse_faults, plan_stream
from llmstream.streaming import ResetStream


def plan(**options: object) -> StreamPlan:
    return plan_stream(
        StreamRequest(model="echo", messages=(Message("user", "one two three four five six"),), **options)  # type: ignore[arg-type]
    )


async def timed(plan: StreamPlan, *, consumer_delay: float = 0.0, **options: bool) -> list[tuple[float, str]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals = []
    async for event in paced(native.stream_events(plan, created=0, request_id="r"), plan, **options):
        arrivals.append((loop.time() - start, event.data or ""))
        if consumer_delay and len(arrivals) == 2:
            await asyncio.sleep(consumer_delay)  # a slow consumer, once
    return arrivals


async def test_events_leave_at_their_due_times() -> None:
    regular = plan(ttft_ms=100, tokens_per_s=20, jitter=0)  # tokens due at 100, 150, 200 ... ms
    arrivals = await timed(regular)
    due = [0.0] + [t.due_ms / 1000 for t in regular.tokens] + [regular.end_ms / 1000]
    assert len(arrivals) == len(due)
    for (at, _), expected in zip(arrivals, due, strict=True):
        assert expected <= at < expected + 0.05


async def test_a_late_consumer_does_not_push_the_schedule_back() -> None:
    regular = plan(ttft_ms=0, tokens_per_s=20, jitter=0)  # every 50 ms from 0
    arrivals = await timed(regular, consumer_delay=0.18)
    # Tokens 1-3 came due while the consumer slept: they leave at once, then the schedule resumes as
    # planned. "Sleeping the gap" instead would have put the last token 0.18 s late.
    last_due = regular.tokens[-1].due_ms / 1000
    assert arrivals[-2][0] < last_due + 0.03
    assert arrivals[3][0] - arrivals[2][0] < 0.01


async def test_the_instant_model_never_waits() -> None:
    instant = plan_stream(StreamRequest(model="instant", messages=(Message("user", "Explain pacing"),)))
    assert len(instant.tokens) > 50
    started = time.perf_counter()
    arrivals = await timed(instant)
    assert len(arrivals) == len(instant.tokens) + 2
    assert time.perf_counter() - started < 0.05


async def test_timestamps_are_added_to_token_events_only() -> None:
    quick = plan(ttft_ms=0, tokens_per_s=1000, jitter=0)
    before = time.time()
    arrivals = await timed(quick, timestamps=True)
    payloads = [json.loads(data) for _, data in arrivals]
    assert "t" not in payloads[0]  # start
    assert "t" not in payloads[-1]  # finish
    times = [p["t"] for p in payloads[1:-1]]
    assert times == sorted(times)
    assert before <= times[0] <= times[-1] <= time.time()


async def test_a_reset_plan_ends_with_reset_stream_after_its_events() -> None:
    reset = plan(ttft_ms=0, tokens_per_s=1000, jitter=0, faults=parse_faults("reset_after:3"))
    received: list[str | None] = []

    async def drain() -> None:
        async for event in paced(native.stream_events(reset, created=0, request_id="r"), reset):
            received.append(event.event)

    with pytest.raises(ResetStream, match="reset_after:3"):
        await drain()
    assert received == ["start", "token", "token", "token"]
