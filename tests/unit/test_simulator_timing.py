"""The latency model: absolute schedule, prompt-dependent ttft, long-tailed gaps, stalls, overrides."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.simulator import PROFILES, StreamRequest, parse_faults, plan_stream, rebase
from llmstream.simulator.timing import LatencyModel, latency_model, schedule

from .simulator_strategies import user


def gaps_ms(model: LatencyModel, n: int = 20_000, seed: int = 1) -> list[float]:
    return [g / 1000 for g in schedule(n, 0, model, random.Random(seed)).gaps_us]


@given(
    st.integers(0, 300),
    st.integers(0, 50_000),
    st.sampled_from(sorted(PROFILES)),
    st.one_of(st.none(), st.floats(0, 3)),
    st.integers(),
)
def test_absolute_schedule_is_exact(
    tokens: int, prompt_tokens: int, name: str, jitter: float | None, seed: int
) -> None:
    timing = schedule(
        tokens, prompt_tokens, latency_model(PROFILES[name], jitter=jitter), random.Random(seed)
    )
    due = timing.due_us
    assert len(due) == max(tokens, 1)
    elapsed = timing.ttft_us  # ttft + sum(gaps[:k]), kept as a running sum
    for k in range(tokens):
        assert due[k] == elapsed
        elapsed += timing.gaps_us[k] if k < len(timing.gaps_us) else 0
    assert all(gap >= 0 for gap in timing.gaps_us)


def test_instant_has_no_delays_at_all() -> None:
    plan = plan_stream(StreamRequest(model="instant", messages=user("Explain in detail how DNS works")))
    assert plan.usage.ttft_ms == 0
    assert {t.due_ms for t in plan.tokens} == {0.0}
    assert plan.end_ms == 0


@pytest.mark.parametrize("name", ["fast", "typical", "slow", "reasoning", "echo"])
def test_ttft_grows_with_prompt_length(name: str) -> None:
    model = latency_model(PROFILES[name], jitter=0)
    ttfts = [schedule(1, n, model, random.Random(0)).ttft_us for n in (0, 100, 1_000, 10_000)]
    assert ttfts == sorted(ttfts)
    assert len(set(ttfts)) == 4
    # With jitter, on average too.
    jittery = latency_model(PROFILES[name])
    short = statistics.mean(schedule(1, 10, jittery, random.Random(s)).ttft_us for s in range(300))
    long = statistics.mean(schedule(1, 20_000, jittery, random.Random(s)).ttft_us for s in range(300))
    assert long > short * 1.5


@pytest.mark.parametrize("name", ["fast", "typical", "slow", "reasoning"])
def test_mean_gap_matches_tokens_per_s(name: str) -> None:
    profile = PROFILES[name]
    mean = statistics.mean(gaps_ms(latency_model(profile), 40_000))
    assert mean == pytest.approx(1000 / profile.tokens_per_s, rel=0.1)


@pytest.mark.parametrize("name", ["fast", "typical", "slow"])
def test_gaps_are_long_tailed_with_jitter_and_regular_without(name: str) -> None:
    gaps = sorted(gaps_ms(latency_model(PROFILES[name])))
    median, p99 = gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.99)]
    assert p99 > 2 * median
    regular = set(gaps_ms(latency_model(PROFILES[name], jitter=0)))
    assert len(regular) == 1


@pytest.mark.parametrize("name", ["fast", "typical", "slow"])
def test_stalls_appear_at_the_profiles_rate(name: str) -> None:
    profile = PROFILES[name]
    n = 50_000
    gaps = gaps_ms(latency_model(profile), n)
    # A stall adds at least stall_ms[0], far above any ordinary gap (lognormal, sigma <= 0.5).
    threshold = 1000 / profile.tokens_per_s * 6
    stalls = sum(g > threshold for g in gaps)
    expected = profile.stall_probability * n
    assert abs(stalls - expected) <= 4 * expected**0.5 + 3


def test_overrides_are_respected() -> None:
    base = {"model": "typical", "messages": user("Explain in detail how TLS works"), "seed": 5}
    fixed = plan_stream(StreamRequest(**base, ttft_ms=250, tokens_per_s=40, jitter=0))
    assert fixed.usage.ttft_ms == 250
    due = [t.due_ms for t in fixed.tokens]
    assert {round(b - a, 3) for a, b in itertools.pairwise(due)} == {25.0}
    assert fixed.usage.tokens_per_s == 40.0
    faster = plan_stream(StreamRequest(**base, tokens_per_s=600))
    slower = plan_stream(StreamRequest(**base, tokens_per_s=6))
    span = lambda p: p.tokens[-1].due_ms - p.tokens[0].due_ms  # noqa: E731
    assert span(slower) > 20 * span(faster)


def test_timing_options_do_not_change_the_text() -> None:
    base = {"model": "typical", "messages": user("What is a B-tree?"), "seed": 9}
    texts = {
        plan_stream(StreamRequest(**base, **options)).text
        for options in ({}, {"jitter": 0}, {"tokens_per_s": 500}, {"ttft_ms": 0})
    }
    assert len(texts) == 1


@given(
    st.integers(0, 50),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5_000)), max_size=4),
    st.integers(0, 5_000),
    st.integers(),
)
def test_fault_delays_keep_the_absolute_schedule(
    tokens: int, stalls: list[tuple[int, int]], slow_ms: int, seed: int
) -> None:
    plain = schedule(tokens, 10, latency_model(PROFILES["typical"]), random.Random(seed))
    delayed = plain.delayed([(0, slow_ms), *stalls])
    for k, (before, now) in enumerate(zip(plain.due_us, delayed.due_us, strict=True)):
        shift_ms = slow_ms + sum(ms for after, ms in stalls if k >= after)
        assert now - before == shift_ms * 1000
    assert delayed.due_us[-1] == delayed.ttft_us + sum(delayed.gaps_us)


def test_plans_apply_stall_and_slow_first_token_faults() -> None:
    base = {"model": "typical", "messages": user("Tell me about ropes and piano strings"), "seed": 2}
    plain = plan_stream(StreamRequest(**base))
    delayed = plan_stream(StreamRequest(**base, faults=parse_faults("stall:5:700,slow_first_token:300")))
    shifts = [round(b.due_ms - a.due_ms, 3) for a, b in zip(plain.tokens, delayed.tokens, strict=True)]
    assert shifts == [300.0] * 5 + [1000.0] * (len(shifts) - 5)
    assert delayed.usage.ttft_ms == pytest.approx(plain.usage.ttft_ms + 300)


def test_rebase_moves_the_start_to_zero_and_keeps_gaps() -> None:
    assert rebase([10.0, 12.5, 20.0], 10.0) == (0.0, 2.5, 10.0)
    assert rebase([1.0], 5.0) == (0.0,)
