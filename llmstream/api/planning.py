"""Plans for requests: a bounded cache in front of the simulator, and resuming from a Last-Event-ID.

Planning a stream costs 2-4 ms (composing text, tokenising, scheduling): more than streaming it on the
`instant` model. A plan is a pure function of its frozen `StreamRequest`, so identical requests (load
tests, retries, every resume of a stream) share one plan from a small LRU cache.

A mid-stream fault (error_after, truncate_after, reset_after) strikes once: a client that resumes
holding every token sent before the fault gets the rest of the completion and its normal end. Without
this an EventSource (which reconnects with the same URL, so the same faults) could never get past the
fault, and "drop, resume, get the whole answer" could not be tested against a faulty stream.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from llmstream.simulator import StreamPlan, StreamRequest, parse_event_id, plan_stream, resume_plan

__all__ = ["CACHE_SIZE", "plan_for"]

CACHE_SIZE = 256
# Requests with more text than this are planned afresh: the cache holds each request (its messages)
# and plan, so bounding the entries' size bounds the cache's memory (~256 x (64 KiB + a plan)).
_CACHEABLE_CHARS = 65_536


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached_plan(request: StreamRequest) -> StreamPlan:
    return plan_stream(request)


def plan_for(request: StreamRequest, last_event_id: str | None = None) -> StreamPlan:
    """The plan for ``request``, resumed after ``last_event_id`` when one is given (and not empty).

    Raises `InvalidRequestError` (a prompt too long) or `ResumeError` (an id that does not fit).
    """
    small = sum(len(m.content) for m in request.messages) <= _CACHEABLE_CHARS
    plan = _cached_plan(request) if small else plan_stream(request)
    if not last_event_id:
        return plan
    after = parse_event_id(last_event_id, plan.stream_key)
    if plan.ending != "finish" and after >= len(plan.tokens) - 1:
        # The client has every token the fault let through: the fault has struck; stream the rest.
        plan = replace(plan, tokens=plan.completion, ending="finish", end_ms=plan.complete_ms)
    return resume_plan(plan, after)


def cache_info() -> functools._CacheInfo:
    return _cached_plan.cache_info()
