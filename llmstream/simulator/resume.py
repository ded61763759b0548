"""Resume without a shared store: a token event's id names the stream and the token's place in it.

Each token event carries ``id: <stream key>:<index>``. The stream key is a hash of the canonical
request (request.py), so a reconnecting client's ``Last-Event-ID`` lets ANY worker re-plan the same
stream and skip what the client already has. The tokens that follow are re-based in time: the first
one is due at once (0 ms) and the rest keep their gaps, as if the stream had only paused.
"""

from __future__ import annotations

import re
from dataclasses import replace

from llmstream.simulator.errors import ResumeError
from llmstream.simulator.plan import StreamPlan, plan_stream
from llmstream.simulator.request import StreamRequest
from llmstream.simulator.timing import rebase
from llmstream.simulator.tokens import Tokens

__all__ = ["event_id", "event_id_prefix", "parse_event_id", "plan_resumed", "resume_plan"]

_EVENT_ID = re.compile(r"([0-9a-f]{16}):(0|[1-9][0-9]{0,8})")


def event_id(stream_key: str, index: int) -> str:
    """The SSE id of token ``index`` of the stream ``stream_key``."""
    return f"{event_id_prefix(stream_key)}{index}"


def event_id_prefix(stream_key: str) -> str:
    """What every token id of the stream ``stream_key`` starts with (its index follows)."""
    return f"{stream_key}:"


def parse_event_id(last_event_id: str, expected_key: str) -> int:
    """The index of the last token the client has (resume AFTER it); `ResumeError` if unusable."""
    match = _EVENT_ID.fullmatch(last_event_id)
    if match is None:
        raise ResumeError(
            f"malformed Last-Event-ID {last_event_id[:80]!r}: expected '<16 hex digit stream key>:<index>'"
        )
    key, index = match.groups()
    if key != expected_key:
        raise ResumeError(
            f"Last-Event-ID belongs to a different request (stream {key}; this request is {expected_key})"
        )
    return int(index)


def resume_plan(plan: StreamPlan, after: int) -> StreamPlan:
    """``plan`` without the tokens up to index ``after``; the rest due from 0 ms, gaps kept."""
    tokens = plan.tokens
    tail = tokens[min(max(after + 1 - tokens.first, 0), len(tokens)) :]
    start = tail.due_ms[0] if tail else plan.end_ms
    due = rebase([*tail.due_ms, plan.end_ms], start)
    return replace(
        plan,
        tokens=Tokens(tail.texts, due[:-1], tail.kinds, first=tail.first),
        end_ms=due[-1],
        resumed_after=after,
    )


def plan_resumed(request: StreamRequest, last_event_id: str | None) -> StreamPlan:
    """The plan for ``request``, resumed after ``last_event_id`` when one is given (and not empty)."""
    plan = plan_stream(request)
    if not last_event_id:
        return plan
    return resume_plan(plan, parse_event_id(last_event_id, plan.stream_key))
