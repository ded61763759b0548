"""Regression tests for bugs found in the pure layer (simulator, protocols) while wiring it to the APIs.

Each test is named after what broke.
"""

from __future__ import annotations

import random
import statistics

import pytest

from llmstream.simulator import PROFILES
from llmstream.simulator.timing import latency_model, schedule


@pytest.mark.parametrize(
    ("model", "rate"), [("slow", 100), ("typical", 300), ("fast", 1000), ("reasoning", 500)]
)
def test_a_high_tokens_per_s_override_was_not_the_long_run_rate(model: str, rate: float) -> None:
    # Stalls (hundreds of ms) were paid for by shortening the ordinary gaps, but only down to half of
    # them: above that, each stall added time the schedule never took back. `slow` asked for 100
    # tokens/s streamed 43. Now stalls become rarer instead, so the mean gap is 1000/rate again.
    model_timing = latency_model(PROFILES[model], tokens_per_s=rate)
    gaps = [g for seed in range(8) for g in schedule(20_001, 10, model_timing, random.Random(seed)).gaps_us]
    assert statistics.mean(gaps) / 1000 == pytest.approx(1000 / rate, rel=0.1)
    # ... and stalls still happen, with their full length: a fast stream still pauses now and then.
    assert max(gaps) / 1000 >= PROFILES[model].stall_ms[0]


@pytest.mark.parametrize("model", ["fast", "typical", "slow", "reasoning"])
def test_the_fix_leaves_each_profile_at_its_own_rate_as_it_was(model: str) -> None:
    # The fix only changes rates at which stalls would take more than half of the mean gap. At each
    # profile's own rate they take less, so its schedules (and streams users recorded) are unchanged.
    timing = latency_model(PROFILES[model])
    expected_stall_ms = timing.stall_probability * sum(timing.stall_ms) / 2
    assert expected_stall_ms < 1000 / timing.tokens_per_s / 2
