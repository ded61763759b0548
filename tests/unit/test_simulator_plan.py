"""Planning: determinism (also across processes), token invariants, max_tokens, stop sequences,
stream keys and request validation."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmstream.simulator import (
    MODELS,
    NO_FAULTS,
    InvalidRequestError,
    Message,
    StreamPlan,
    StreamRequest,
    UnknownModelError,
    get_profile,
    parse_faults,
    plan_stream,
    stream_key,
)

from .simulator_strategies import PROMPTS, echo_plan, requests, user


# Each example plans a whole stream twice (~10 ms with a reasoning model): 300 keep this under 5 s.
@settings(max_examples=300)
@given(requests())
def test_plans_are_deterministic_and_consistent(request: StreamRequest) -> None:
    plan = plan_stream(request)
    assert plan == plan_stream(request)
    tokens = plan.completion
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert all(t.text for t in tokens)
    kinds = [t.kind for t in tokens]
    assert kinds == sorted(kinds, key=("thinking", "text").index), "thinking comes first"
    assert "".join(t.text for t in tokens) == plan.thinking + plan.text
    due = [t.due_ms for t in tokens]
    assert due == sorted(due)
    assert all(d >= 0 for d in due)
    assert plan.end_ms >= (due[-1] if due else 0)
    assert plan.tokens == tokens
    assert plan.ending == "finish"
    usage = plan.usage
    assert usage.completion_tokens == len(tokens)
    assert usage.reasoning_tokens == kinds.count("thinking")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.ttft_ms == (due[0] if due else usage.ttft_ms)
    if request.max_tokens is not None:
        assert len(tokens) <= request.max_tokens
    assert plan.finish_reason in ("stop", "length")
    assert plan.stop_sequence is None
    if plan.profile.reasoning:
        assert plan.thinking
    assert len(plan.stream_key) == 16
    assert int(plan.stream_key, 16) >= 0


_DIGEST_SCRIPT = """
import hashlib
from llmstream.simulator import Message, StreamRequest, plan_stream
digest = hashlib.sha256()
for model in ("typical", "reasoning", "fast"):
    for seed in (0, 1, 2**40):
        plan = plan_stream(StreamRequest(model=model, messages=(Message("user", "Explain SSE"),), seed=seed,
                                         fault_rate=0.5))
        digest.update(repr((plan.stream_key, plan.completion, plan.usage, plan.faults.spec())).encode())
print(digest.hexdigest())
"""


def test_plans_are_identical_across_processes_with_different_hash_seeds() -> None:
    digests = set()
    for hash_seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    local: dict[str, Any] = {}
    exec(_DIGEST_SCRIPT.replace("print(digest.hexdigest())", "result = digest.hexdigest()"), local)
    digests.add(local["result"])
    assert len(digests) == 1


@cache
def natural(prompt: str, seed: int, model: str) -> StreamPlan:
    return plan_stream(StreamRequest(model=model, messages=user(prompt), seed=seed))


plan_inputs = st.tuples(st.sampled_from(PROMPTS[:8]), st.integers(0, 3), st.sampled_from(MODELS))


# Each example plans a whole stream (~5 ms); the natural plans are cached, so 300 varied cuts suffice.
@settings(max_examples=300)
@given(plan_inputs, st.data())
def test_max_tokens_cuts_the_natural_stream(inputs: tuple[str, int, str], data: st.DataObject) -> None:
    full = natural(*inputs)
    limit = data.draw(st.integers(1, len(full.completion) + 5))
    prompt, seed, model = inputs
    plan = plan_stream(StreamRequest(model=model, messages=user(prompt), seed=seed, max_tokens=limit))
    assert plan.completion == full.completion[:limit]
    assert plan.finish_reason == ("length" if limit < len(full.completion) else "stop")
    assert plan.stop_sequence is None


# Each example plans a whole stream (~5 ms); the natural plans are cached, so 300 varied cuts suffice.
@settings(max_examples=300)
@given(plan_inputs, st.data())
def test_stop_sequences_cut_the_text_exactly(inputs: tuple[str, int, str], data: st.DataObject) -> None:
    full = natural(*inputs)
    text = full.text
    if not text:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    stop = text[start : start + data.draw(st.integers(1, 12))]
    others = data.draw(st.lists(st.text(min_size=1, max_size=5), max_size=2))
    prompt, seed, model = inputs
    plan = plan_stream(StreamRequest(model=model, messages=user(prompt), seed=seed, stop=(stop, *others)))
    cut = min(i for s in (stop, *others) if (i := text.find(s)) >= 0)
    assert plan.text == text[:cut]
    assert plan.thinking == full.thinking
    assert plan.finish_reason == "stop"
    assert plan.stop_sequence is not None
    assert text.find(plan.stop_sequence) == cut
    # Kept tokens keep their index and due time; only the one where the sequence begins is shortened.
    for kept, original in zip(plan.completion, full.completion, strict=False):
        assert (kept.index, kept.due_ms, kept.kind) == (original.index, original.due_ms, original.kind)
        assert original.text.startswith(kept.text)


def test_a_stop_sequence_spanning_tokens_cuts_the_token_where_it_begins() -> None:
    assert [t.text for t in echo_plan().completion] == ["Hello", ",", " world", "!"]
    plan = echo_plan(stop=("o, w",))
    assert [t.text for t in plan.completion] == ["Hell"]
    assert (plan.finish_reason, plan.stop_sequence) == ("stop", "o, w")
    at_start = echo_plan(stop=("Hello",))
    assert (at_start.completion, at_start.finish_reason, at_start.stop_sequence) == ((), "stop", "Hello")
    earliest = echo_plan(stop=("!", "l"))
    assert (earliest.text, earliest.stop_sequence) == ("He", "l")


def test_max_tokens_wins_when_it_comes_before_the_stop_sequence_completes() -> None:
    # " world" is token 2: with two tokens allowed the model never produces the stop sequence.
    cut = echo_plan(stop=("world",), max_tokens=2)
    assert ([t.text for t in cut.completion], cut.finish_reason, cut.stop_sequence) == (
        ["Hello", ","],
        "length",
        None,
    )
    stopped = echo_plan(stop=("world",), max_tokens=3)
    assert ([t.text for t in stopped.completion], stopped.finish_reason) == (["Hello", ",", " "], "stop")


def test_stream_keys_change_with_every_option_and_nothing_else() -> None:
    base: dict[str, Any] = {"model": "typical", "messages": user("hello"), "seed": 1}
    key = stream_key(StreamRequest(**base))
    assert key == stream_key(StreamRequest(**base, ttft_ms=None, faults=NO_FAULTS))
    assert stream_key(StreamRequest(**base, ttft_ms=100)) == stream_key(StreamRequest(**base, ttft_ms=100.0))
    variants = [
        {"model": "fast"},
        {"messages": user("hello!")},
        {"messages": (Message("system", "hello"),)},
        {"seed": 2},
        {"max_tokens": 10},
        {"stop": ("x",)},
        {"ttft_ms": 1},
        {"tokens_per_s": 5},
        {"jitter": 0},
        {"faults": parse_faults("stall:1:1")},
        {"fault_rate": 0.5},
        {"fault_pool": ("rate_limit",)},
    ]
    keys = {stream_key(StreamRequest(**{**base, **variant})) for variant in variants}
    assert key not in keys
    assert len(keys) == len(variants)


BAD_REQUESTS: list[tuple[dict[str, Any], str, str]] = [
    ({"model": "gpt-17"}, "model", "does not exist; choose one of: instant, fast"),
    ({"messages": ()}, "messages", "at least one message"),
    ({"messages": ("hi",)}, "messages", "must be a Message"),
    ({"seed": 1.5}, "seed", "64-bit integer"),
    ({"seed": True}, "seed", "64-bit integer"),
    ({"seed": 2**64}, "seed", "64-bit integer"),
    ({"max_tokens": 0}, "max_tokens", "from 1 to 8192"),
    ({"max_tokens": 8193}, "max_tokens", "from 1 to 8192"),
    ({"stop": ("",)}, "stop", "non-empty string"),
    ({"stop": tuple("abcdefghijklmnopq")}, "stop", "at most 16 sequences"),
    ({"ttft_ms": -1}, "ttft_ms", "at least 0"),
    ({"ttft_ms": float("nan")}, "ttft_ms", "at least 0"),
    ({"tokens_per_s": 0}, "tokens_per_s", "greater than 0"),
    ({"tokens_per_s": float("inf")}, "tokens_per_s", "greater than 0"),
    ({"jitter": 3.5}, "jitter", "at most 3"),
    ({"fault_rate": 1.5}, "fault_rate", "at most 1"),
    ({"fault_pool": ("explode",)}, "faults", "bad fault 'explode'"),
    ({"faults": "rate_limit"}, "faults", "must be a FaultPlan"),
]


@pytest.mark.parametrize(
    ("change", "param", "message"), BAD_REQUESTS, ids=[str(b[0])[:40] for b in BAD_REQUESTS]
)
def test_invalid_requests_are_refused_naming_the_field(
    change: dict[str, Any], param: str, message: str
) -> None:
    fields: dict[str, Any] = {"model": "typical", "messages": user("hi"), **change}
    with pytest.raises(InvalidRequestError, match=message) as caught:
        StreamRequest(**fields)
    assert caught.value.param == param
    assert isinstance(caught.value, ValueError)


def test_unknown_models_raise_unknown_model_error() -> None:
    with pytest.raises(UnknownModelError, match="'nope' does not exist"):
        get_profile("nope")


def test_a_prompt_longer_than_the_context_is_refused() -> None:
    limit = get_profile("echo").max_context_tokens
    with pytest.raises(InvalidRequestError, match=f"accepts at most {limit}") as caught:
        plan_stream(StreamRequest(model="echo", messages=user("word " * limit)))
    assert caught.value.param == "messages"


def test_sequences_become_tuples() -> None:
    request = StreamRequest(model="fast", messages=[Message("user", "x")], stop=["a"])  # type: ignore[arg-type]
    assert request.messages == (Message("user", "x"),)
    assert request.stop == ("a",)
    assert StreamRequest(model="fast", messages=user("x"), stop="ab").stop == ("ab",)  # type: ignore[arg-type]
    hash(request)


def test_profiles_and_limits() -> None:
    assert MODELS == ("instant", "fast", "typical", "slow", "reasoning", "echo")
    for model in MODELS:
        profile = get_profile(model)
        assert profile.max_output_tokens >= 4096
        assert profile.max_context_tokens >= 100_000
        assert profile.description


def test_public_api() -> None:
    import llmstream.simulator

    names = llmstream.simulator.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for name in names:
        assert getattr(llmstream.simulator, name) is not None
