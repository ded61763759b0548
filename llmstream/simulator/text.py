"""Answer composition: a plausible Markdown answer to a prompt, as a pure function of (prompt, rng).

Answers are built from blocks (paragraphs, headings, bullet and numbered lists, a table, a fenced code
block, a quote) whose sentences come from templates filled with the prompt's own topic words and a
few hundred vocabulary words. Every template is used at most once per pass through its deck and
every sentence at most once per answer, so a long answer does not repeat itself, and a different
prompt or seed gives a different answer. Markdown is well-formed by construction: fences are closed,
tables have a separator row.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from llmstream.simulator import vocabulary as vocab
from llmstream.simulator.code import detect_language, wants_code
from llmstream.simulator.markdown import MarkdownWriter
from llmstream.simulator.tokenizer import count_tokens

__all__ = ["NATURAL_TOKENS", "PromptInfo", "analyse_prompt", "compose_answer", "compose_thinking"]

# Bounds of an answer's natural length in tokens (max_tokens and stop sequences may cut it shorter).
NATURAL_TOKENS = (30, 600)
_THINKING_TOKENS = (40, 400)

_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_BRIEF = frozenset(
    vocab.words("brief briefly short shortly concise quick quickly tldr summary summarize sentence")
)
_LONG = frozenset(
    vocab.words("detail detailed details depth comprehensive thorough guide tutorial essay step")
)
_INSTRUCTIONS = frozenset(
    vocab.words(
        """
        implement create build write make generate design compare list find fix debug improve optimize
        understand learn convert summarize code function script program snippet can could would
        """
    )
)


@dataclass(frozen=True, slots=True)
class PromptInfo:
    """What the composer takes from the prompt."""

    words: frozenset[str]  # every word, lowercase
    topics: tuple[str, ...]  # topic phrases in order of appearance (may be empty)
    greeting: bool  # "hi", "hello there" ...
    has_cjk: bool


def analyse_prompt(text: str) -> PromptInfo:
    head = text[:4_000]  # topics come from the start; a huge prompt costs no more than a long one
    words = _WORD.findall(head)
    lower = [w.lower() for w in words]
    topics: list[str] = []
    run: list[str] = []
    for position, (word, low) in enumerate(zip([*words, ""], [*lower, ""], strict=True)):
        content = low and low not in vocab.STOPWORDS and low not in _INSTRUCTIONS and len(low) >= 3
        if content and len(run) < 3:
            # Keep the prompt's casing where it carries meaning: SQL, JavaScript, iOS, and capitalised
            # words past the first (names: France, Python), not a sentence's first word.
            keep = any(c.isupper() for c in word[1:]) or (position > 0 and word[0].isupper())
            run.append(word if keep else low)
            continue
        if run and (phrase := " ".join(run)) not in topics:
            topics.append(phrase)
        run = [low] if content else []
    greeting = bool(lower) and len(lower) <= 6 and lower[0] in vocab.GREETINGS
    has_cjk = any("\u2e80" <= ch <= "\ufaff" or "\uac00" <= ch <= "\ud7af" for ch in head)
    return PromptInfo(frozenset(lower), tuple(topics[:8]), greeting, has_cjk)


def compose_answer(prompt: str, rng: random.Random) -> str:
    """A Markdown answer to ``prompt`` of NATURAL_TOKENS length, drawn from ``rng``."""
    info = analyse_prompt(prompt)
    writer = MarkdownWriter(info.topics, rng)
    low, high = NATURAL_TOKENS
    code_language = detect_language(set(info.words), rng) if wants_code(set(info.words)) else None
    target = _target_length(info, prompt, rng, code_language is not None)

    blocks: list[str] = []
    if info.greeting:
        blocks.append(_greeting(writer))
    else:
        blocks.append(writer.fill(writer.decks["opening"].draw()) + " " + writer.paragraph(rng.randint(1, 2)))
        if code_language is not None:
            blocks += [writer.code(code_language), writer.paragraph(rng.randint(2, 3))]
        _add_blocks(writer, blocks, target)
        if rng.random() < 0.7:
            blocks.append(writer.fill(writer.decks["closing"].draw()))
    _decorate(writer, blocks, info)

    # Enforce the bounds: drop blocks before the closing one past the top, add prose below the bottom.
    text = "\n\n".join(blocks)
    tokens = count_tokens(text)
    while tokens > high and len(blocks) > 1:
        blocks.pop(-2 if len(blocks) > 2 else -1)
        text = "\n\n".join(blocks)
        tokens = count_tokens(text)
    while tokens < low:
        text += "\n\n" + writer.paragraph(2)
        tokens = count_tokens(text)
    return text


def compose_thinking(prompt: str, rng: random.Random) -> str:
    """Plain-prose reasoning about ``prompt`` (a reasoning model's thinking phase)."""
    writer = MarkdownWriter(analyse_prompt(prompt).topics, rng)
    low, high = _THINKING_TOKENS
    target = min(high, max(low, round(rng.lognormvariate(math.log(150), 0.5))))
    paragraphs = [writer.sentence("thinking_opener")]
    tokens = count_tokens(paragraphs[0])
    while tokens < target:
        decks = [("thinking" if rng.random() < 0.7 else "sentence") for _ in range(rng.randint(2, 4))]
        paragraph = " ".join(writer.sentence(deck) for deck in decks)
        tokens += count_tokens(paragraph) + 1
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _target_length(info: PromptInfo, prompt: str, rng: random.Random, code: bool) -> int:
    low, high = NATURAL_TOKENS
    if info.greeting:
        return low
    factor = 1.0 + min(len(prompt), 2_000) / 4_000  # longer questions get longer answers
    if not _BRIEF.isdisjoint(info.words):
        factor *= 0.35
    elif not _LONG.isdisjoint(info.words):
        factor *= 1.7
    if code:
        factor *= 1.2
    return min(high - 40, max(low, round(rng.lognormvariate(math.log(170), 0.55) * factor)))


def _add_blocks(writer: MarkdownWriter, blocks: list[str], target: int) -> None:
    """Add prose, list, table and quote blocks until the answer reaches ``target`` tokens."""
    rng = writer.rng
    kinds = ["paragraph", "section", "bullets", "steps", "table", "quote"]
    weights = [4.0, 2.5, 2.0, 1.5, 1.0, 0.5]
    once = {"table", "quote"}  # at most one each: more reads as filler
    tokens = sum(count_tokens(b) + 1 for b in blocks)
    while tokens < target:
        kind = rng.choices(kinds, weights)[0]
        if kind in once:
            weights[kinds.index(kind)] = 0.0
        if kind == "paragraph":
            block = writer.paragraph(rng.randint(2, 4))
        elif kind == "section":
            block = writer.heading() + "\n\n" + writer.paragraph(rng.randint(2, 3))
        elif kind == "bullets":
            block = writer.bullets()
        elif kind == "steps":
            block = writer.steps()
        elif kind == "table":
            block = writer.table()
        else:
            block = writer.quote()
        tokens += count_tokens(block) + 1
        blocks.append(block)


def _greeting(writer: MarkdownWriter) -> str:
    hello = writer.rng.choice(("Hello!", "Hi there!", "Hey!", "Hello, nice to meet you!"))
    offer = writer.rng.choice(
        (
            "How can I help you today? I can explain a concept, review code, or help you plan a project.",
            "What would you like to work on? Questions, drafts and code reviews are all fair game.",
            "What can I do for you today? Ask me anything, from quick facts to step-by-step guides.",
        )
    )
    return f"{hello} {offer} {writer.sentence()}"


def _decorate(writer: MarkdownWriter, blocks: list[str], info: PromptInfo) -> None:
    """Put an emoji, and in some answers a phrase in a CJK script, into prose blocks."""
    rng = writer.rng
    prose = [i for i, b in enumerate(blocks) if b[:1].isalpha()]
    if not prose:
        return
    if rng.random() < 0.25:
        i = rng.choice(prose)
        blocks[i] += " " + rng.choice(vocab.EMOJI)
    if rng.random() < (0.8 if info.has_cjk else 0.12):
        i = rng.choice(prose)
        blocks[i] += " " + rng.choice(vocab.CJK_ASIDES)
