"""Text to tokens the way a byte-pair-encoding tokenizer cuts it, without its vocabulary.

The pre-tokenizer follows the shape of OpenAI's cl100k pattern: a word carries its leading space
(" hello"), digits come in groups of up to three, punctuation runs are their own tokens, newlines and
indentation are whitespace tokens. Then, as BPE would, long or rare words are split into pieces
(" extra" + "ordinary"), and characters outside Latin scripts (CJK, emoji) come out one character
(never less: tokens are str, so a UTF-8 character is never split) per token. English prose comes out
at roughly 0.75 words and 4 characters per token, like a real model's.

Pure and deterministic: a function of the text alone. ``"".join(tokenize(t)) == t`` for every t.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Protocol

__all__ = ["count_message_tokens", "count_tokens", "tokenize"]

_PIECES = re.compile(
    r"""
    '(?:s|t|re|ve|m|ll|d)(?![^\W\d_])   # English contractions, like cl100k
    | (?:[^\w\r\n]|_)?[^\W\d_]+           # a word, with the space or punctuation before it
    | \d{1,3}                            # numbers, three digits a token
    | \ ?(?:[^\s\w]|_)+[\r\n]*           # punctuation, with its leading space and trailing newlines
    | \s*[\r\n]+                         # line breaks (and the spaces before them)
    | \s+(?!\S)                          # spaces before more whitespace: indentation
    | \s+
    | .                                  # the rest: numeric symbols that are not digits (½, ²)
    """,
    re.VERBOSE,
)

# Longer words a BPE vocabulary holds whole; other words longer than _WHOLE letters are split.
_WHOLE = 6


def _split(text: str) -> list[str]:
    return text.split()


_COMMON = frozenset(
    _split(
        """
        about above after again against always another because before between business called change
        changes client common company could create default different during each enough example
        every first following format function general getting government important include
        information instead itself language little memory people person possible problem program
        project public python question really request response result return should simple something
        sometimes stream string support system through together under using value values within
        without working world would server model models number process people things thing before
        second state third
        """
    )
)
_PREFIXES = (
    "extra", "inter", "trans", "under", "super", "micro", "multi", "counter", "over", "anti",
    "auto", "semi", "non", "pre", "dis", "mis", "sub", "con", "com", "pro", "un", "re",
)  # fmt: skip
_SUFFIXES = (
    "ization", "ations", "ation", "ments", "ment", "ness", "ings", "ing", "tions", "tion", "able",
    "ible", "ally", "ity", "ous", "ive", "ize", "ise", "ers", "est", "ful", "ly", "ed", "er", "es", "s",
)  # fmt: skip


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, in order; they concatenate to ``text`` exactly and none is empty."""
    tokens: list[str] = []
    for piece in _PIECES.findall(text):
        tokens.extend(_split_piece(piece))
    return tokens


def count_tokens(text: str) -> int:
    """How many tokens ``text`` is."""
    return sum(map(len, map(_split_piece, _PIECES.findall(text))))


class _MessageLike(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...


# Like OpenAI's chat format: each message costs a few tokens of framing (role, separators) on top of
# its content, and the reply is primed with a few more.
TOKENS_PER_MESSAGE = 4
TOKENS_REPLY_PRIMING = 3


def count_message_tokens(messages: Iterable[_MessageLike]) -> int:
    """Prompt tokens of a chat: content tokens plus the per-message and reply-priming overhead."""
    return TOKENS_REPLY_PRIMING + sum(TOKENS_PER_MESSAGE + count_tokens(m.content) for m in messages)


@lru_cache(maxsize=16_384)
def _split_piece(piece: str) -> tuple[str, ...]:
    if piece.isascii():
        if piece[-1].isalpha():
            return _split_word(piece)
        if len(piece) <= 4 or piece.isspace():
            return (piece,)
        return _chunks(piece, 4)
    # Outside ASCII: letters of Latin-like scripts behave like words; everything else (CJK, kana,
    # hangul, emoji, symbols) is a token per character, the space before it riding on the first.
    if piece[-1].isalpha() and all(ch < "\u2e80" for ch in piece):
        return _split_word(piece, longest=3)
    lead = 1 if piece[0] == " " and len(piece) > 1 else 0
    return (piece[: lead + 1], *piece[lead + 1 :]) if piece[lead:] else (piece,)


def _split_word(piece: str, longest: int = 8) -> tuple[str, ...]:
    """A word (with its optional leading space or punctuation) as BPE-like pieces."""
    lead = 0 if piece[0].isalpha() else 1
    word = piece[lead:]
    if len(word) <= _WHOLE or word.lower() in _COMMON:
        return (piece,)
    lower = word.lower()
    head = ""
    for prefix in _PREFIXES:
        if lower.startswith(prefix) and len(word) - len(prefix) >= 4:
            head, word, lower = word[: len(prefix)], word[len(prefix) :], lower[len(prefix) :]
            break
    tail = ""
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(word) - len(suffix) >= 3:
            tail, word = word[-len(suffix) :], word[: -len(suffix)]
            break
    middle = (word,) if len(word) <= longest else _chunks(word, 5)
    parts = [p for p in (head, *middle, tail) if p]
    parts[0] = piece[:lead] + parts[0]
    return tuple(parts)


def _chunks(text: str, size: int) -> tuple[str, ...]:
    return tuple(text[i : i + size] for i in range(0, len(text), size))
