"""A plan's tokens: `Token`, and `Tokens`, the sequence a plan keeps them in.

`Tokens` stores a run of consecutive tokens as three tuples of plain values (texts, due times, kinds)
and the index of the first, and makes each `Token` when it is read. One Token object per token would
cost the server's cyclic garbage collector dearly: an open stream's plan lives for the whole stream,
so thousands of open streams keep hundreds of thousands of tracked objects alive, and each full
collection walks them all (measured: 2,000 open 420-token plans made a full collection take ~110 ms,
which paced tokens then wait out). Tuples holding only strings and floats are untracked by the
collector (CPython untracks them the first time it sees them), so a plan's tokens cost it one object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, NamedTuple, overload

__all__ = ["Token", "TokenKind", "Tokens"]

TokenKind = Literal["thinking", "text"]


class Token(NamedTuple):
    """One token: its place in the stream (from 0, thinking first), text, due time and kind."""

    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nobody calls on a token
    text: str
    due_ms: float  # absolute offset from the start of the stream (re-based when resumed)
    kind: TokenKind


class Tokens(Sequence[Token]):
    """Consecutive tokens (indexes ``first``, ``first + 1`` ...), kept as tuples of plain values."""

    __slots__ = ("_due_ms", "_first", "_kinds", "_texts")

    def __init__(
        self,
        texts: Sequence[str] = (),
        due_ms: Sequence[float] = (),
        kinds: Sequence[TokenKind] = (),
        *,
        first: int = 0,
    ) -> None:
        if not len(texts) == len(due_ms) == len(kinds):
            raise ValueError(
                f"one due time and kind per text: {len(texts)} texts, {len(due_ms)} due times, "
                f"{len(kinds)} kinds"
            )
        if first < 0:
            raise ValueError(f"token indexes start at 0, not {first}")
        self._texts = tuple(texts)
        self._due_ms = tuple(due_ms)
        self._kinds = tuple(kinds)
        self._first = first

    @classmethod
    def of(cls, tokens: Iterable[Token]) -> Tokens:
        """``tokens`` (consecutive indexes) as a Tokens."""
        listed = list(tokens)
        first = listed[0].index if listed else 0
        if any(token.index != first + offset for offset, token in enumerate(listed)):
            raise ValueError("Tokens holds consecutive indexes only")
        return cls(
            [t.text for t in listed], [t.due_ms for t in listed], [t.kind for t in listed], first=first
        )

    @property
    def first(self) -> int:
        """The index of the first token (of the next one, when empty)."""
        return self._first

    @property
    def indexes(self) -> range:
        """The tokens' indexes, with no Token made (``i in tokens.indexes`` is one comparison)."""
        return range(self._first, self._first + len(self._texts))

    @property
    def texts(self) -> tuple[str, ...]:
        return self._texts

    @property
    def due_ms(self) -> tuple[float, ...]:
        return self._due_ms

    @property
    def kinds(self) -> tuple[TokenKind, ...]:
        return self._kinds

    def __len__(self) -> int:
        return len(self._texts)

    def __iter__(self) -> Iterator[Token]:
        return map(Token, self.indexes, self._texts, self._due_ms, self._kinds)

    @overload
    def __getitem__(self, position: int) -> Token: ...
    @overload
    def __getitem__(self, position: slice) -> Tokens: ...
    def __getitem__(self, position: int | slice) -> Token | Tokens:
        if isinstance(position, slice):
            start, stop, step = position.indices(len(self._texts))
            if step != 1:
                raise ValueError("Tokens holds consecutive tokens: slice it with step 1")
            stop = max(start, stop)
            return Tokens(
                self._texts[start:stop],
                self._due_ms[start:stop],
                self._kinds[start:stop],
                first=self._first + start,
            )
        if position < 0:
            position += len(self._texts)
        if not 0 <= position < len(self._texts):
            raise IndexError("token position out of range")
        return Token(
            self._first + position, self._texts[position], self._due_ms[position], self._kinds[position]
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Tokens):
            return (self._first, self._texts, self._due_ms, self._kinds) == (
                other._first,
                other._texts,
                other._due_ms,
                other._kinds,
            )
        if isinstance(other, tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._first, self._texts, self._due_ms, self._kinds))

    def __repr__(self) -> str:
        return f"Tokens({list(self)!r})"
