"""Fault specs: parsing (good and bad), the plan they make, how plans apply them, fault_rate draws."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.simulator import (
    DEFAULT_FAULT_POOL,
    NO_FAULTS,
    FaultPlan,
    FaultSpecError,
    HttpFault,
    Stall,
    StreamRequest,
    draw_fault,
    parse_fault_pool,
    parse_faults,
    plan_stream,
)

from .simulator_strategies import echo_plan, user

GOOD: list[tuple[str | None, FaultPlan]] = [
    (None, NO_FAULTS),
    ("", NO_FAULTS),
    ("  ", NO_FAULTS),
    ("rate_limit", FaultPlan(http_error=HttpFault("rate_limit"))),
    ("server_error", FaultPlan(http_error=HttpFault("server_error"))),
    ("unavailable", FaultPlan(http_error=HttpFault("unavailable"))),
    ("overloaded", FaultPlan(http_error=HttpFault("overloaded"))),
    ("error_after:0", FaultPlan(error_after=0)),
    ("truncate_after:12", FaultPlan(truncate_after=12)),
    ("reset_after:1000000", FaultPlan(reset_after=1_000_000)),
    ("stall:3:250", FaultPlan(stalls=(Stall(3, 250),))),
    ("stall:3:250, stall:0:10", FaultPlan(stalls=(Stall(3, 250), Stall(0, 10)))),
    ("slow_first_token:600000", FaultPlan(slow_first_token_ms=600_000)),
    (
        " rate_limit , error_after:5,stall:1:2 ,slow_first_token:3",
        FaultPlan(
            http_error=HttpFault("rate_limit"), error_after=5, stalls=(Stall(1, 2),), slow_first_token_ms=3
        ),
    ),
]


@pytest.mark.parametrize(("spec", "plan"), GOOD, ids=[repr(g[0]) for g in GOOD])
def test_good_specs(spec: str | None, plan: FaultPlan) -> None:
    assert parse_faults(spec) == plan
    assert parse_faults(plan.spec()) == plan
    assert bool(plan) == (plan != NO_FAULTS)


BAD: list[tuple[str, str, str]] = [
    # spec, the part named in the message, why
    ("explode", "'explode'", "unknown fault"),
    ("rate_limit:5", "'rate_limit:5'", "unknown fault"),
    ("Rate_Limit", "'Rate_Limit'", "unknown fault"),
    ("rate_limit,,stall:1:1", "''", "empty fault"),
    ("error_after", "'error_after'", "N must be an integer from 0 to 1000000, not ''"),
    ("error_after:-1", "'error_after:-1'", "N must be an integer"),
    ("error_after:1.5", "'error_after:1.5'", "N must be an integer"),
    ("error_after:1000001", "'error_after:1000001'", "N must be an integer from 0 to 1000000"),
    ("error_after:٣", "'error_after:٣'", "N must be an integer"),
    ("stall:5", "'stall:5'", "MS must be an integer from 0 to 600000, not ''"),
    ("stall:5:1:2", "'stall:5:1:2'", "MS must be an integer"),
    ("stall:x:1", "'stall:x:1'", "N must be an integer"),
    ("slow_first_token:600001", "'slow_first_token:600001'", "MS must be an integer from 0 to 600000"),
    ("rate_limit,server_error", "'server_error'", "only one HTTP error fault"),
    (
        "error_after:1,reset_after:2",
        "'reset_after:2'",
        "only one of error_after, truncate_after, reset_after",
    ),
    ("slow_first_token:1,slow_first_token:2", "'slow_first_token:2'", "only once"),
]


@pytest.mark.parametrize(("spec", "part", "why"), BAD, ids=[b[0] for b in BAD])
def test_bad_specs_name_the_part_and_the_accepted_forms(spec: str, part: str, why: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_faults(spec)
    message = str(caught.value)
    assert f"bad fault {part} in {spec!r}" in message
    assert why in message
    assert "accepted forms: rate_limit, server_error, unavailable, overloaded, error_after:N" in message
    assert isinstance(caught.value, ValueError)
    assert caught.value.param == "faults"


fault_plans = st.builds(
    FaultPlan,
    http_error=st.one_of(
        st.none(), st.sampled_from(("rate_limit", "server_error", "unavailable", "overloaded")).map(HttpFault)
    ),
    error_after=st.one_of(st.none(), st.integers(0, 10**6)),
    stalls=st.lists(st.builds(Stall, st.integers(0, 10**6), st.integers(0, 600_000)), max_size=3).map(tuple),
    slow_first_token_ms=st.integers(0, 600_000),
)


@given(fault_plans)
def test_specs_round_trip(plan: FaultPlan) -> None:
    assert parse_faults(plan.spec()) == plan


@pytest.mark.parametrize(
    ("kind", "native", "openai", "anthropic"),
    [
        ("rate_limit", 429, 429, 429),
        ("server_error", 500, 500, 500),
        ("unavailable", 503, 503, 503),
        ("overloaded", 503, 503, 529),
    ],
)
def test_http_fault_status_per_api(kind: Any, native: int, openai: int, anthropic: int) -> None:
    fault = HttpFault(kind)
    assert (fault.status("native"), fault.status("openai"), fault.status("anthropic")) == (
        native,
        openai,
        anthropic,
    )
    if kind == "rate_limit":
        assert fault.headers() == (("retry-after", "1"), ("retry-after-ms", "1000"))
    else:
        assert fault.headers() == ()


def test_mid_stream_faults_cut_the_stream() -> None:
    full = echo_plan("one two three four five six")
    for kind in ("error", "truncate", "reset"):
        plan = echo_plan("one two three four five six", faults=parse_faults(f"{kind}_after:2"))
        assert plan.tokens == full.tokens[:2]
        assert plan.completion == full.completion, "the completion itself is unchanged"
        assert plan.ending == kind
        assert plan.end_ms == full.tokens[2].due_ms
    at_end = echo_plan("one two", faults=parse_faults("error_after:2"))
    assert (len(at_end.tokens), at_end.ending, at_end.end_ms) == (2, "error", at_end.tokens[-1].due_ms)
    beyond = echo_plan("one two", faults=parse_faults("error_after:3"))
    assert beyond.ending == "finish"
    assert len(beyond.tokens) == 2


def test_http_faults_are_on_the_plan() -> None:
    plan = echo_plan(faults=parse_faults("overloaded"))
    assert plan.http_error == HttpFault("overloaded")


def test_fault_rate_draws_are_deterministic_and_at_the_rate() -> None:
    def plan(seed: int, rate: float) -> Any:
        return plan_stream(StreamRequest(model="instant", messages=user("hi"), seed=seed, fault_rate=rate))

    draws = [plan(seed, 0.3).faults for seed in range(400)]
    assert draws == [plan(seed, 0.3).faults for seed in range(400)]
    hit = sum(bool(f) for f in draws)
    assert 80 <= hit <= 160  # 120 expected
    kinds = {f.http_error.kind if f.http_error else f.ending[0] if f.ending else None for f in draws if f}
    assert kinds == {"rate_limit", "server_error", "error"}
    assert not any(plan(seed, 0.0).faults for seed in range(50))
    assert all(plan(seed, 1.0).faults for seed in range(50))


def test_draw_fault_picks_the_same_fault_at_any_rate_that_lets_one_through() -> None:
    for seed in range(50):
        low = draw_fault(0.5, DEFAULT_FAULT_POOL, 100, random.Random(seed))
        high = draw_fault(1.0, DEFAULT_FAULT_POOL, 100, random.Random(seed))
        assert not low or low == high
        if high.error_after is not None:
            assert 0 <= high.error_after <= 100


def test_explicit_faults_win_over_drawn_ones() -> None:
    explicit = parse_faults("server_error,truncate_after:3")
    merged = explicit.merged(parse_faults("rate_limit,error_after:1,stall:1:5"))
    assert merged == parse_faults("server_error,truncate_after:3,stall:1:5")


def test_fault_pools() -> None:
    assert parse_fault_pool(None) == DEFAULT_FAULT_POOL
    assert parse_fault_pool("") == DEFAULT_FAULT_POOL
    assert parse_fault_pool("rate_limit, reset_after ,stall:1:100") == (
        "rate_limit",
        "reset_after",
        "stall:1:100",
    )
    with pytest.raises(FaultSpecError, match="bad fault 'stall'"):
        parse_fault_pool("rate_limit,stall")
