"""Resume without a shared store: event ids, Last-Event-ID parsing, and re-planned tails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.simulator import (
    ResumeError,
    StreamPlan,
    StreamRequest,
    event_id,
    parse_event_id,
    plan_resumed,
    plan_stream,
    resume_plan,
)

from .simulator_strategies import pooled_plans, user

KEY = "0123456789abcdef"


@given(st.integers(0, 999_999_999))
def test_event_ids_round_trip(index: int) -> None:
    assert parse_event_id(event_id(KEY, index), KEY) == index


@pytest.mark.parametrize(
    "last_event_id",
    ["", "5", "0123456789abcdef", "0123456789abcdef:", "0123456789abcdef:-1", "0123456789abcdef:01",
     "0123456789abcdef:1.0", "0123456789ABCDEF:1", "0123456789abcde:1", "0123456789abcdef:1:2",
     "0123456789abcdef:1234567890", " 0123456789abcdef:1", "0123456789abcdef:\u0661"],
)  # fmt: skip
def test_malformed_event_ids_are_refused(last_event_id: str) -> None:
    with pytest.raises(ResumeError, match="malformed Last-Event-ID") as caught:
        parse_event_id(last_event_id, KEY)
    assert isinstance(caught.value, ValueError)
    assert caught.value.param == "Last-Event-ID"


def test_an_event_id_of_another_request_is_refused() -> None:
    with pytest.raises(ResumeError, match="Last-Event-ID belongs to a different request"):
        parse_event_id("fedcba9876543210:3", KEY)


@given(pooled_plans, st.data())
def test_a_resumed_stream_is_the_tail_of_the_full_one(plan: StreamPlan, data: st.DataObject) -> None:
    after = data.draw(st.integers(-1, len(plan.tokens) + 2))
    resumed = resume_plan(plan, after)
    tail = [t for t in plan.tokens if t.index > after]
    assert [(t.index, t.text, t.kind) for t in resumed.tokens] == [(t.index, t.text, t.kind) for t in tail]
    # Re-based: the first resumed token is due at once, the rest keep their gaps and the end its distance.
    start = tail[0].due_ms if tail else plan.end_ms
    assert [t.due_ms for t in resumed.tokens] == [round(t.due_ms - start, 3) for t in tail]
    assert resumed.end_ms == round(plan.end_ms - start, 3)
    assert (resumed.resumed_after, resumed.ending, resumed.usage, resumed.completion) == (
        after,
        plan.ending,
        plan.usage,
        plan.completion,
    )


def test_plan_resumed_re_plans_on_any_worker() -> None:
    request = StreamRequest(model="typical", messages=user("Explain backpressure"), seed=4)
    full = plan_stream(request)
    assert plan_resumed(request, None) == full
    assert plan_resumed(request, "") == full
    resumed = plan_resumed(request, event_id(full.stream_key, 9))
    assert resumed.tokens[0].index == 10
    assert resumed.tokens[0].due_ms == 0
    other = StreamRequest(model="typical", messages=user("Explain backpressure"), seed=5)
    with pytest.raises(ResumeError, match="different request"):
        plan_resumed(other, event_id(full.stream_key, 9))
