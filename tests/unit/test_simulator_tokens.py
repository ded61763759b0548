"""Tokens: a plan's tokens as tuples of plain values, read as Token objects."""

from __future__ import annotations

import gc

import pytest

from llmstream.simulator import Token, Tokens

from .simulator_strategies import echo_plan

SAMPLE = (Token(3, "a", 10.0, "thinking"), Token(4, "b", 20.0, "text"), Token(5, "c", 35.5, "text"))


def test_tokens_read_back_as_the_tokens_they_were_made_of() -> None:
    tokens = Tokens.of(SAMPLE)
    assert list(tokens) == list(SAMPLE)
    assert tokens == SAMPLE
    assert len(tokens) == 3
    assert tokens[0] == SAMPLE[0]
    assert tokens[-1] == SAMPLE[-1]
    assert tokens.first == 3
    assert tokens.texts == ("a", "b", "c")
    assert tokens.due_ms == (10.0, 20.0, 35.5)
    assert tokens.kinds == ("thinking", "text", "text")
    with pytest.raises(IndexError):
        tokens[3]


def test_a_slice_keeps_the_indexes_of_its_tokens() -> None:
    tokens = Tokens.of(SAMPLE)
    assert tokens[1:] == SAMPLE[1:]
    assert tokens[1:].first == 4
    assert tokens[:0] == ()
    assert not tokens[5:]
    assert tokens[-2:-1] == SAMPLE[-2:-1]
    assert hash(tokens[1:]) == hash(Tokens.of(SAMPLE[1:]))
    assert list(tokens[1:].indexes) == [t.index for t in SAMPLE[1:]]
    assert tokens[5:].indexes == range(8, 8)
    with pytest.raises(ValueError, match="step 1"):
        tokens[::2]


def test_tokens_refuse_what_they_cannot_hold() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        Tokens.of((SAMPLE[0], SAMPLE[2]))
    with pytest.raises(ValueError, match="one due time and kind per text"):
        Tokens(("a", "b"), (1.0,), ("text", "text"))
    with pytest.raises(ValueError, match="start at 0"):
        Tokens(first=-1)


def test_an_open_plan_keeps_few_objects_for_the_garbage_collector_to_walk() -> None:
    # Regression: one Token object per token kept ~430 tracked objects alive per open 420-token
    # stream, and a full collection at 2,000 open streams paused the server ~110 ms (every paced
    # token late by as much, new streams waiting behind it).
    prompt = " ".join(["word"] * 420)
    gc.collect()
    before = len(gc.get_objects())
    plans = [echo_plan(prompt, max_tokens=420) for _ in range(50)]
    gc.collect()
    per_plan = (len(gc.get_objects()) - before) / len(plans)
    assert len(plans[0].tokens) == 420
    assert per_plan < 40, f"{per_plan:.0f} tracked objects per plan"
