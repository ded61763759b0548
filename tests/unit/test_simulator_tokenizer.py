"""The tokenizer: exact reassembly, BPE-like pieces, realistic counts, whole UTF-8 characters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.simulator import Message, count_message_tokens, count_tokens, tokenize
from llmstream.simulator.text import compose_answer

PIECES = [
    ("hello world", ["hello", " world"]),
    ("Hello, world!", ["Hello", ",", " world", "!"]),
    (" extraordinary", [" extra", "ordinary"]),
    ("internationalization", ["inter", "national", "ization"]),
    ("I don't know", ["I", " don", "'t", " know"]),
    ("a\n\nb", ["a", "\n\n", "b"]),
    ("if x:\n    return 1\n", ["if", " x", ":\n", "   ", " return", " ", "1", "\n"]),
    ("12345", ["123", "45"]),
    ("流式传输", ["流", "式", "传", "输"]),
    ("go 🚀 now", ["go", " 🚀", " now"]),
    ("| --- | --- |", ["|", " ---", " |", " ---", " |"]),
    ("```python\n", ["```", "python", "\n"]),
]


@pytest.mark.parametrize(("text", "tokens"), PIECES, ids=[p[0] for p in PIECES])
def test_pieces(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@given(st.text())
def test_tokens_reassemble_exactly_and_are_never_empty(text: str) -> None:
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert all(tokens)
    assert count_tokens(text) == len(tokens)


@given(st.text(alphabet=st.characters(min_codepoint=0x80, codec="utf-8")))  # no lone surrogates
def test_multibyte_characters_are_never_split(text: str) -> None:
    # Tokens are str: every token must be valid text on its own, i.e. encodable as UTF-8.
    for token in tokenize(text):
        token.encode("utf-8")


def test_counts_resemble_a_real_models_on_english_answers() -> None:
    words = tokens = chars = 0
    for seed in range(40):
        text = compose_answer("Explain how HTTP caching works for a web application.", random.Random(seed))
        words += len(text.split())
        tokens += count_tokens(text)
        chars += len(text)
    # Real BPE tokenizers: ~0.75 words and ~4 characters per token on English (Markdown adds a bit).
    assert 0.6 <= words / tokens <= 0.9
    assert 3.3 <= chars / tokens <= 5.0


def test_message_overhead_is_counted() -> None:
    one = count_message_tokens([Message("user", "hello")])
    two = count_message_tokens([Message("system", "hello"), Message("user", "hello")])
    assert one == 3 + 4 + 1
    assert two - one == 4 + 1
