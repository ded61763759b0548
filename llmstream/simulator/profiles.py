"""Model profiles: how fast each simulated model answers, how long, and within which limits.

The numbers are chosen to look like hosted models seen from a client: time to first token of a few
hundred ms growing with the prompt (prefill), tens of tokens per second, a long-tailed gap between
tokens and rare multi-hundred-ms stalls. ``instant`` has no delays at all, for benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmstream.simulator.errors import UnknownModelError

__all__ = ["MODELS", "PROFILES", "ModelProfile", "get_profile"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProfile:
    """One simulated model. Times in milliseconds."""

    name: str
    description: str
    ttft_ms: float  # time to first token for an empty prompt
    ttft_ms_per_prompt_token: float  # prefill cost: the first token waits longer for longer prompts
    tokens_per_s: float  # long-run mean rate, stalls included; math.inf means no gaps at all
    jitter: float  # sigma of the lognormal gap distribution; 0 = perfectly regular gaps
    stall_probability: float  # chance that a given gap is a stall
    stall_ms: tuple[float, float]  # a stall's extra length, drawn uniformly from this range
    reasoning: bool = False  # streams a thinking phase before the answer
    echo: bool = False  # answers with the last user message, verbatim
    max_context_tokens: int = 128_000
    max_output_tokens: int = 8_192


_STALL = (250.0, 1_500.0)

PROFILES: dict[str, ModelProfile] = {
    p.name: p
    for p in (
        ModelProfile(
            name="instant",
            description="no delays at all (ttft 0, gaps 0): for benchmarks",
            ttft_ms=0.0,
            ttft_ms_per_prompt_token=0.0,
            tokens_per_s=math.inf,
            jitter=0.0,
            stall_probability=0.0,
            stall_ms=(0.0, 0.0),
        ),
        ModelProfile(
            name="fast",
            description="a small hosted model: ~150 tokens/s, ~150 ms to first token",
            ttft_ms=120.0,
            ttft_ms_per_prompt_token=0.05,
            tokens_per_s=150.0,
            jitter=0.3,
            stall_probability=0.002,
            stall_ms=(200.0, 800.0),
        ),
        ModelProfile(
            name="typical",
            description="a mid-size hosted model: ~60 tokens/s, ~400 ms to first token",
            ttft_ms=350.0,
            ttft_ms_per_prompt_token=0.15,
            tokens_per_s=60.0,
            jitter=0.4,
            stall_probability=0.004,
            stall_ms=_STALL,
        ),
        ModelProfile(
            name="slow",
            description="a large model under load: ~20 tokens/s, ~1 s to first token",
            ttft_ms=900.0,
            ttft_ms_per_prompt_token=0.4,
            tokens_per_s=20.0,
            jitter=0.5,
            stall_probability=0.01,
            stall_ms=(500.0, 3_000.0),
        ),
        ModelProfile(
            name="reasoning",
            description="thinks first (reasoning tokens), then answers: ~80 tokens/s",
            ttft_ms=500.0,
            ttft_ms_per_prompt_token=0.2,
            tokens_per_s=80.0,
            jitter=0.4,
            stall_probability=0.004,
            stall_ms=_STALL,
            reasoning=True,
            max_context_tokens=200_000,
            max_output_tokens=32_000,
        ),
        ModelProfile(
            name="echo",
            description="streams the last user message back, with typical timing",
            ttft_ms=350.0,
            ttft_ms_per_prompt_token=0.15,
            tokens_per_s=60.0,
            jitter=0.4,
            stall_probability=0.004,
            stall_ms=_STALL,
            echo=True,
        ),
    )
}

MODELS: tuple[str, ...] = tuple(PROFILES)


def get_profile(model: str) -> ModelProfile:
    """The profile named ``model``; `UnknownModelError` (a ValueError) names the choices."""
    try:
        return PROFILES[model]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"The model {model!r} does not exist; choose one of: {', '.join(MODELS)}"
        ) from None
