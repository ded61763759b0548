"""Hypothesis strategies and small builders shared by the simulator and protocol tests."""

from __future__ import annotations

import dataclasses
import itertools
from functools import cache
from typing import Any

from hypothesis import strategies as st

from llmstream.simulator import (
    MODELS,
    PROFILES,
    Message,
    StreamPlan,
    StreamRequest,
    Tokens,
    parse_faults,
    plan_stream,
)

PROMPTS = (
    "How do I implement server-sent events in Python?",
    "Explain the difference between TCP and UDP in detail.",
    "Write a SQL query that finds the top customers by revenue.",
    "hi",
    "What is the capital of France?",
    "Give me a brief summary of Kubernetes autoscaling.",
    "Compare PostgreSQL and MongoDB for event storage",
    "日本語で説明してください: ストリーミングとは何ですか?",
    "Write a javascript function to debounce input events",
    "",
)

seeds = st.integers(min_value=-(2**63), max_value=2**64 - 1)
prompts = st.one_of(st.sampled_from(PROMPTS), st.text(max_size=120))
models = st.sampled_from(MODELS)


@st.composite
def requests(draw: st.DrawFn, **fixed: Any) -> StreamRequest:
    """A valid request: any model, prompt and seed, sometimes with max_tokens or a system message."""
    messages = [Message("user", draw(prompts))]
    if draw(st.booleans()):
        messages.insert(0, Message("system", draw(st.sampled_from(("Be concise.", "You are helpful.")))))
    fields: dict[str, Any] = {
        "model": draw(models),
        "messages": tuple(messages),
        "seed": draw(seeds),
        "max_tokens": draw(st.one_of(st.none(), st.integers(1, 700))),
    }
    fields.update(fixed)
    return StreamRequest(**fields)


def user(text: str) -> tuple[Message, ...]:
    return (Message("user", text),)


def echo_plan(text: str = "Hello, world!", **options: Any) -> StreamPlan:
    """A plan with known tokens and a regular schedule: the echo model, ttft 100 ms, 10 tokens/s."""
    fields: dict[str, Any] = {"ttft_ms": 100, "tokens_per_s": 10, "jitter": 0}
    fields.update(options)
    return plan_stream(StreamRequest(model="echo", messages=user(text), **fields))


def thinking_plan() -> StreamPlan:
    """The echo plan with its first two tokens turned into thinking, as the reasoning model streams."""
    plan = echo_plan()
    tokens = Tokens.of(t._replace(kind="thinking") if t.index < 2 else t for t in plan.completion)
    usage = dataclasses.replace(plan.usage, reasoning_tokens=2)
    return dataclasses.replace(
        plan, profile=PROFILES["reasoning"], completion=tokens, tokens=tokens, usage=usage
    )


@cache
def plan_pool() -> tuple[StreamPlan, ...]:
    """Varied plans, built once per test session: protocol and resume properties vary what they do
    with a plan, and planning (~5 ms) would otherwise dominate their run time."""
    plans = []
    for i, (model, prompt) in enumerate(itertools.product(MODELS, PROMPTS[:6])):
        options: dict[str, Any] = {}
        if i % 4 == 1:
            options["max_tokens"] = 5 + i
        if i % 5 == 2:
            options["stop"] = (".",)
        if i % 7 == 3:
            options["faults"] = parse_faults(("error_after:7", "truncate_after:3", "reset_after:0")[i % 3])
        plans.append(plan_stream(StreamRequest(model=model, messages=user(prompt), seed=i, **options)))
    plans.append(echo_plan(""))  # an empty completion
    plans.append(echo_plan(faults=parse_faults("error_after:4")))  # error instead of the finish event
    return tuple(plans)


pooled_plans = st.integers(0, len(MODELS) * 6 + 1).map(lambda i: plan_pool()[i])
