"""The latency model: when each token is due, as absolute offsets from the start of the stream.

Token k is due at ``ttft + sum(gaps[:k])``; the plan stores these absolute offsets, so the I/O layer
sleeps until a due time and never "sleeps a gap" (which drifts and bunches). Times are kept as whole
microseconds while summing, so the identity above holds exactly, with no float drift over long
streams; they are handed out in milliseconds.

The model:

* time to first token = (profile ttft + per-prompt-token prefill cost) x a lognormal factor (sigma
  jitter/2, mean 1), or exactly the ``ttft_ms`` override;
* gaps: lognormal with sigma = jitter around the mean gap, plus, with the profile's stall probability,
  a stall of a uniformly drawn length; the ordinary gaps are shortened by the stalls' expected share so
  that the long-run rate is still ``tokens_per_s``. ``jitter == 0`` means perfectly regular gaps and
  no stalls; an infinite rate means no gaps at all (the ``instant`` profile).

Gaps are drawn in order, so the first k gaps never depend on how many tokens follow (max_tokens cuts
a schedule, it does not reshuffle it), and changing ``tokens_per_s`` rescales a schedule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from llmstream.simulator.profiles import ModelProfile

__all__ = ["LatencyModel", "Schedule", "latency_model", "rebase", "schedule"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyModel:
    """The timing parameters in force for one request (a profile with its overrides applied)."""

    ttft_ms: float
    ttft_ms_per_prompt_token: float
    ttft_fixed: bool  # True when the caller fixed ttft_ms: no prefill cost, no jitter
    tokens_per_s: float
    jitter: float
    stall_probability: float
    stall_ms: tuple[float, float]


def latency_model(
    profile: ModelProfile,
    *,
    ttft_ms: float | None = None,
    tokens_per_s: float | None = None,
    jitter: float | None = None,
) -> LatencyModel:
    """The profile's timing with the per-request overrides applied."""
    model = LatencyModel(
        ttft_ms=profile.ttft_ms,
        ttft_ms_per_prompt_token=profile.ttft_ms_per_prompt_token,
        ttft_fixed=False,
        tokens_per_s=profile.tokens_per_s,
        jitter=profile.jitter,
        stall_probability=profile.stall_probability,
        stall_ms=profile.stall_ms,
    )
    if ttft_ms is not None:
        model = replace(model, ttft_ms=ttft_ms, ttft_ms_per_prompt_token=0.0, ttft_fixed=True)
    if tokens_per_s is not None:
        model = replace(model, tokens_per_s=tokens_per_s)
    if jitter is not None:
        model = replace(model, jitter=jitter)
    return model


@dataclass(frozen=True, slots=True)
class Schedule:
    """Time to first token and the gaps between tokens, in whole microseconds."""

    ttft_us: int
    gaps_us: tuple[int, ...]  # gaps_us[k] separates token k from token k+1

    @property
    def due_us(self) -> tuple[int, ...]:
        """Absolute due offsets: due_us[k] == ttft_us + sum(gaps_us[:k])."""
        due = [self.ttft_us]
        for gap in self.gaps_us:
            due.append(due[-1] + gap)
        return tuple(due)

    @property
    def due_ms(self) -> tuple[float, ...]:
        return tuple(us / 1000 for us in self.due_us)

    def delayed(self, stalls: Iterable[tuple[int, int]]) -> Schedule:
        """With every token from index N on delayed by MS, for each (N, MS): the absolute schedule keeps."""
        ttft, gaps = self.ttft_us, list(self.gaps_us)
        for after, ms in stalls:
            if after == 0:
                ttft += ms * 1000
            elif after <= len(gaps):
                gaps[after - 1] += ms * 1000
        return Schedule(ttft, tuple(gaps))


def schedule(tokens: int, prompt_tokens: int, model: LatencyModel, rng: random.Random) -> Schedule:
    """The schedule of a stream of ``tokens`` tokens after a prompt of ``prompt_tokens``."""
    z = rng.gauss(0.0, 1.0)
    if model.ttft_fixed:
        ttft = model.ttft_ms
    else:
        sigma = model.jitter / 2
        ttft = (model.ttft_ms + model.ttft_ms_per_prompt_token * prompt_tokens) * math.exp(
            sigma * z - sigma * sigma / 2
        )
    mean_gap = 0.0 if math.isinf(model.tokens_per_s) else 1000.0 / model.tokens_per_s
    stalls = model.jitter > 0 and model.stall_probability > 0 and mean_gap > 0
    low, high = model.stall_ms
    # Stalls add p * E[stall] to the mean gap: take it off the ordinary gaps, so that a long stream still
    # averages tokens_per_s. At high rates that share would exceed the whole gap: stalls then keep their
    # length (a stall is a stall) but become rarer, taking at most half of the mean gap. (Clamping the
    # ordinary gaps instead, as before, left e.g. `slow` at tokens_per_s=100 streaming 43 tokens/s.)
    probability = model.stall_probability
    if stalls:
        probability = min(probability, mean_gap / 2 / ((low + high) / 2))
    base_gap = mean_gap - probability * (low + high) / 2 if stalls else mean_gap
    sigma = model.jitter
    if sigma == 0 or mean_gap == 0:
        return Schedule(round(ttft * 1000), (round(base_gap * 1000),) * max(tokens - 1, 0))
    gauss, uniform, exp = rng.gauss, rng.random, math.exp  # local names: this loop runs per token
    shift = sigma * sigma / 2
    gaps: list[int] = []
    for _ in range(max(tokens - 1, 0)):
        gap = base_gap * exp(sigma * gauss(0.0, 1.0) - shift)
        if uniform() < probability:
            gap += low + (high - low) * uniform()
        gaps.append(round(gap * 1000))
    return Schedule(round(ttft * 1000), tuple(gaps))


def rebase(due_ms: Iterable[float], start_ms: float) -> tuple[float, ...]:
    """Due times shifted so that ``start_ms`` becomes 0 (never negative): used when resuming."""
    start_us = round(start_ms * 1000)
    return tuple(max(round(ms * 1000) - start_us, 0) / 1000 for ms in due_ms)
