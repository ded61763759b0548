"""What the three API blueprints share once a request is valid: answering with a plan.

A plan is answered in one of three ways: an HTTP error (a rate_limit ... fault, or no room for another
stream), a stream (paced events through the engine, ending as the plan says), or a JSON body after the
time a non-streaming request would take. Each API supplies its own framing and final events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from quart import Response, current_app

from llmstream.api import fault_metrics
from llmstream.api.error_shapes import ErrorRenderer, from_error_response, json_response
from llmstream.api.pacing import paced
from llmstream.hub import Refusal
from llmstream.protocols import ErrorKind, ErrorResponse, StreamItem
from llmstream.request_ids import request_id
from llmstream.simulator import HttpFault, StreamPlan
from llmstream.sse_response import EventStreamResponse, event_stream, hub_of
from llmstream.streaming import Closing, FinalEvent

__all__ = [
    "Dialect",
    "Events",
    "Opening",
    "answer",
    "close_error",
    "created",
    "failure_message",
    "no_room",
]


class Framing(Protocol):
    """What `answer` needs of a protocols module (native, openai, anthropic)."""

    def fault_response(self, fault: HttpFault) -> ErrorResponse: ...

    def complete_body(self, plan: StreamPlan, *, created: int, request_id: str) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """One API's way of answering: its framing, error shape and final events."""

    framing: Framing
    render_error: ErrorRenderer
    final_event: FinalEvent


# The events of a stream, given the response's `created` time and request id.
Events = Callable[[int, str], Iterable[StreamItem]]


@dataclass(frozen=True, slots=True)
class Opening:
    """A valid call, planned: what its route (or llmstream.api.stream_lane) answers.

    ``stream``: answer with events (else with one JSON body); ``timestamps``: token events carry their
    send time."""

    plan: StreamPlan
    stream: bool
    events: Events
    timestamps: bool = False


async def answer(opening: Opening, dialect: Dialect) -> Response | EventStreamResponse:
    """Answer ``opening``'s plan: an HTTP fault, a paced stream, or the JSON body once the answer is
    complete."""
    plan, stream, events = opening.plan, opening.stream, opening.events
    if plan.http_error is not None:
        fault_metrics.record(plan, streamed=stream)
        return from_error_response(dialect.framing.fault_response(plan.http_error))
    created_at, rid = created(), request_id()
    if stream:
        if (refusal := no_room()) is not None:
            why, retry_after = refusal
            return dialect.render_error("unavailable", why, headers=(("retry-after", str(retry_after)),))
        fault_metrics.record(plan, streamed=True)
        source = paced(events(created_at, rid), plan, timestamps=opening.timestamps)
        return event_stream(source, final_event=dialect.final_event)
    await wait_for_completion(plan)
    if plan.ending != "finish":
        return dialect.render_error("server_error", failure_message(plan))
    return json_response(dialect.framing.complete_body(plan, created=created_at, request_id=rid))


def created() -> int:
    return int(time.time())


def no_room() -> Refusal | None:
    """Why a new stream would be refused now (llmstream.hub); None if there is room.

    The engine refuses too (with its own JSON shape); asking first lets each API refuse in its shape.
    A refusal here is counted as the engine's would be.
    """
    hub = hub_of(current_app)
    refusal = hub.refusal()
    if refusal is not None:
        hub.metrics.streams_rejected += 1
    return refusal


async def wait_for_completion(plan: StreamPlan) -> None:
    """Take as long as the whole answer (or, with a mid-stream fault, until the fault strikes)."""
    fault_metrics.record(plan, streamed=False)
    ms = plan.complete_ms if plan.ending == "finish" else plan.end_ms
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def failure_message(plan: StreamPlan) -> str:
    """A non-streaming answer to a plan with a mid-stream fault fails as a whole, with this message."""
    kind, after = plan.faults.ending or ("error", 0)
    return f"The model failed after {after} tokens (simulated fault {kind}_after:{after})."


def close_error(closing: Closing) -> tuple[ErrorKind, str] | None:
    """The error an API reports when the engine ends a stream early; None when nothing can be sent."""
    if closing.reason == "server_shutdown":
        return (
            "unavailable",
            f"The server is shutting down. Reconnect in {closing.retry_ms} ms: any worker resumes the "
            "stream from the Last-Event-ID.",
        )
    if closing.reason == "max_duration":
        return "server_error", "The stream reached this server's maximum stream duration."
    if closing.reason == "error":
        return "server_error", f"The stream failed (stream {closing.stream_id}); see the server log."
    return None
