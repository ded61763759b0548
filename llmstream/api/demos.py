"""Demo pages: small, complete examples of streaming done right."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from quart import Blueprint, render_template, request

from llmstream.api.errors import BadRequest
from llmstream.sse import ServerSentEvent
from llmstream.sse_response import EventStreamResponse, event_stream

blueprint = Blueprint("demos", __name__, url_prefix="/demo")

MAX_COUNT = 1_000_000


@blueprint.get("/counter")
async def counter_page() -> str:
    return await render_template("counter.html")


@blueprint.get("/counter/stream")
async def counter_stream() -> EventStreamResponse:
    """Counts up, one event per `interval` seconds; resumes after `Last-Event-ID` (or `?from=`).

    `fail_at=N` makes the count fail at N, to show how a failing stream ends: before the first event it
    is an HTTP 500 with a JSON body, after it a final `error` event.
    """
    interval = _number_arg("interval", default=1.0, low=0.0, high=60.0)
    limit = int(_number_arg("limit", default=MAX_COUNT, low=1, high=MAX_COUNT))
    fail_at = int(_number_arg("fail_at", default=0, low=0, high=MAX_COUNT))
    start = _resume_point()
    return event_stream(_count(start, limit, interval, fail_at or None))


class CounterFailure(RuntimeError):
    """The failure `fail_at` asks for."""


async def _count(
    start: int, limit: int, interval: float, fail_at: int | None
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for n in range(start, limit + 1):
        if n == fail_at:
            raise CounterFailure(f"the counter failed at {n}, as asked by fail_at")
        # Absolute schedule: event k is due at t0 + k*interval, so pacing never drifts.
        delay = t0 + (n - start) * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield ServerSentEvent.json({"n": n}, event="count", id=str(n))
    yield ServerSentEvent.json({"n": limit}, event="done")


def _resume_point() -> int:
    last = request.headers.get("Last-Event-ID") or request.args.get("from")
    if last is None or last == "":
        return 1
    if not last.isascii() or not last.isdigit() or int(last) > MAX_COUNT:
        raise BadRequest(f"Last-Event-ID must be a count between 0 and {MAX_COUNT}, not {last!r}")
    return int(last) + 1


def _number_arg(name: str, *, default: float, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be between {low:g} and {high:g}, not {raw!r}")
    return value
