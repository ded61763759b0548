"""Markdown blocks for one answer: sentences from templates, headings, lists, a table, code, a quote.

`MarkdownWriter` fills templates with the prompt's topic words and the vocabulary, draws templates
from shuffled decks (each used once per pass) and never emits the same sentence twice in one answer.
Markdown is well-formed by construction: fences are closed, tables have a separator row.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from llmstream.simulator import vocabulary as vocab
from llmstream.simulator.code import code_block, identifier

__all__ = ["MarkdownWriter"]

T = TypeVar("T")

_SLOT = re.compile(r"\{(\w+)\}")
_NOUN_SLOTS = frozenset(("n", "N", "ns"))
_VERB_SLOTS = frozenset(("v", "V", "vs", "ving"))
_ADJECTIVE_SLOTS = frozenset(("a", "an_a", "An_a"))


class _Deck:
    """Draw items without replacement, reshuffling when the deck runs out."""

    def __init__(self, items: Sequence[str], rng: random.Random) -> None:
        self._items, self._rng, self._left = items, rng, list[str]()

    def draw(self) -> str:
        if not self._left:
            self._left = list(self._items)
            self._rng.shuffle(self._left)
        return self._left.pop()


class MarkdownWriter:
    """Fills templates and builds Markdown blocks for one answer."""

    def __init__(self, topics: tuple[str, ...], rng: random.Random) -> None:
        self.rng = rng
        self.topics = topics or (rng.choice(vocab.FALLBACK_TOPICS),)
        self.main = max(self.topics[:3], key=lambda t: (t.count(" ") > 0, -self.topics.index(t)))
        # Identifiers for code: the topic's own words first, generic names only to make up two.
        names = list(dict.fromkeys(identifier(t) for t in self.topics))[:3]
        self.names = names + [n for n in ("item", "value") if n not in names][: max(0, 2 - len(names))]
        self.used: set[str] = set()
        self.decks = {
            name: _Deck(items, rng)
            for name, items in (
                ("sentence", vocab.SENTENCES),
                ("thinking", vocab.THINKING),
                ("thinking_opener", vocab.THINKING_OPENERS),
                ("heading", vocab.HEADINGS),
                ("bullet", vocab.BULLET_CLAUSES),
                ("step", vocab.STEPS),
                ("opening", vocab.OPENINGS),
                ("closing", vocab.CLOSINGS),
            )
        }

    # ---- words ------------------------------------------------------------------------------------

    def fill(self, template: str) -> str:
        """``template`` with its slots filled; the same slot twice in one sentence, the same word."""
        rng, chosen = self.rng, dict[str, str]()
        nouns, verbs, adjectives = (
            _pair(rng, vocab.NOUNS),
            _pair(rng, vocab.VERBS),
            _pair(rng, vocab.ADJECTIVES),
        )

        def slot(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in chosen:
                second = key.endswith("2")  # {n2}, {a2}, {v2}...: a second, different word
                chosen[key] = self._word(key.rstrip("2"), nouns[second], verbs[second], adjectives[second])
            return chosen[key]

        text = _SLOT.sub(slot, template)
        return text[0].upper() + text[1:] if text[:1].islower() else text

    def _word(self, slot: str, noun: tuple[str, str], verb: tuple[str, str, str], adjective: str) -> str:
        rng = self.rng
        if slot in _NOUN_SLOTS:
            return noun[1] if slot == "ns" else noun[0].capitalize() if slot == "N" else noun[0]
        if slot in _VERB_SLOTS:
            return {"v": verb[0], "V": verb[0].capitalize(), "vs": verb[1], "ving": verb[2]}[slot]
        if slot in _ADJECTIVE_SLOTS:
            article = "an " if adjective[0] in "aeiou" else "a "
            return {"a": adjective, "an_a": article + adjective, "An_a": article.capitalize() + adjective}[
                slot
            ]
        if slot == "T":
            return self.main
        if slot == "t":
            return rng.choice(self.topics)
        if slot == "adv":
            return rng.choice(vocab.ADVERBS)
        if slot == "code":
            return self.inline_code()
        if slot == "link":
            return self.link()
        if slot == "num":
            return str(rng.choice((2, 3, 4, 5, 8, 10, 12, 20, 50, 100, 1000)))
        if slot == "pct":
            return f"{rng.randrange(20, 95, 5)}%"
        raise KeyError(f"unknown template slot {{{slot}}}")

    def inline_code(self) -> str:
        name = self.rng.choice(self.names)
        form = self.rng.randrange(4)
        if form == 0:
            return f"`{name}()`"
        if form == 1:
            return f"`config.{name}`"
        if form == 2:
            return f"`--{name.replace('_', '-')}`"
        return f"`{''.join(p.capitalize() for p in name.split('_'))}`"

    def link(self) -> str:
        topic = self.rng.choice(self.topics)
        slug = identifier(topic, "guide").replace("_", "-")
        host = self.rng.choice(("example.com", "example.org", "docs.example.net"))
        return f"[the {topic} guide](https://{host}/{slug})"

    # ---- blocks -----------------------------------------------------------------------------------

    def sentence(self, deck: str = "sentence") -> str:
        """A filled template of ``deck`` not yet used in this answer (if 8 draws find one): list items
        too, since a deck reshuffles once drawn through, and two lists could repeat an item."""
        for _ in range(8):
            text = self.fill(self.decks[deck].draw())
            if text not in self.used:
                break
        self.used.add(text)
        return text

    def paragraph(self, sentences: int, deck: str = "sentence") -> str:
        return " ".join(self.sentence(deck) for _ in range(sentences))

    def heading(self) -> str:
        return ("## " if self.rng.random() < 0.7 else "### ") + self.fill(self.decks["heading"].draw())

    def bullets(self) -> str:
        lines = []
        for _ in range(self.rng.randint(3, 6)):
            clause = self.sentence("bullet")
            if self.rng.random() < 0.4:
                term = self.fill(self.rng.choice(("{N}", "{T}", "{t}")))
                clause = f"**{term[0].upper() + term[1:]}**: {clause[0].lower() + clause[1:]}"
            lines.append(f"- {clause}.")
        return "\n".join(lines)

    def steps(self) -> str:
        return "\n".join(f"{i}. {self.sentence('step')}." for i in range(1, self.rng.randint(3, 6) + 1))

    def table(self) -> str:
        rng, count = self.rng, self.rng.randint(2, 5)
        form = rng.randrange(3)
        draw: Callable[[], list[str]]
        if form == 0:
            header = ["Option", "Strengths", "Drawbacks"]

            def draw() -> list[str]:
                return self.fill("{a} {n}|{a}, {a2}|harder to {v}").split("|")

        elif form == 1:
            header = ["Aspect", "What to check", "Typical value"]
            units = ("ms", "MB", "requests/s", "%", "s")

            def draw() -> list[str]:
                return [
                    self.fill("{N}"),
                    self.fill("{v} the {ns}"),
                    f"{rng.randint(1, 500)} {rng.choice(units)}",
                ]

        else:
            left, right = self.topics[:2] if len(self.topics) > 1 else (self.main, "the alternative")
            header = ["Feature", left, right]
            marks = rng.choice((("✅", "❌", "⚠️ partly"), ("Yes", "No", "Partly")))

            def draw() -> list[str]:
                return [self.fill("{N} support"), rng.choice(marks), rng.choice(marks)]

        align = rng.choice(("---", ":---"))
        lines = [_row(header), _row([align] * 3)] + [_row(row) for row in _distinct_rows(draw, count)]
        return "\n".join(lines)

    def quote(self) -> str:
        return f"> **{self.rng.choice(('Note', 'Tip', 'Heads-up'))}:** {self.sentence()}"

    def code(self, language: str) -> str:
        names = tuple(self.rng.sample(self.names, 2))
        return code_block(language, (names[0], names[1]), self.rng)


def _distinct_rows(draw: Callable[[], list[str]], count: int) -> list[list[str]]:
    """Up to ``count`` rows from ``draw`` whose first cells differ: a table that names one row twice
    reads as a bug (and repeats a sentence verbatim). Bounded: a few draws per row, at least one row."""
    rows: list[list[str]] = []
    named: set[str] = set()
    for _ in range(4 * count):
        row = draw()
        if row[0] not in named:
            named.add(row[0])
            rows.append(row)
            if len(rows) == count:
                break
    return rows


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c[:1].upper() + c[1:] for c in cells) + " |"


def _pair(rng: random.Random, words: Sequence[T]) -> tuple[T, T]:
    """Two different words (rng.sample does the same, at twice the cost: it is on the hot path)."""
    first = rng.choice(words)
    second = rng.choice(words)
    while second == first:
        second = rng.choice(words)
    return first, second
