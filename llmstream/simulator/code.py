"""Fenced code blocks for answers that ask for code, in a language that fits the prompt.

Identifiers come from the prompt's topic words, so two prompts get different code. The templates are
small but real programs: balanced brackets, consistent indentation, no stray fences.
"""

from __future__ import annotations

import random
import re

__all__ = ["code_block", "detect_language", "identifier", "wants_code"]


def _split(text: str) -> list[str]:
    return text.split()


_CODE_WORDS = frozenset(
    _split(
        """
        code function python javascript implement implementation script sql snippet program class
        typescript rust golang bash shell query regex method algorithm api
        """
    )
)

# Checked in order: the first language whose words appear in the prompt wins.
_LANGUAGE_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("sql", frozenset(_split("sql query queries postgres postgresql mysql sqlite database select"))),
    ("typescript", frozenset(_split("typescript ts tsx angular deno"))),
    ("javascript", frozenset(_split("javascript js node nodejs react vue browser npm frontend"))),
    ("rust", frozenset(_split("rust cargo tokio"))),
    ("go", frozenset(_split("golang goroutine goroutines"))),
    ("bash", frozenset(_split("bash shell terminal cli zsh cron"))),
    ("python", frozenset(_split("python py django flask pandas numpy pytest asyncio"))),
)


_RESERVED = frozenset(
    _split(
        """
        and as async await break case class const continue def default del do elif else enum except
        export extends false final finally fn for from func function global go if impl import in
        interface is let loop match mod mut new nil none not null or package pass pub raise return
        select self static struct super switch table this throw true try type use var where while
        with yield
        """
    )
)


def wants_code(words: set[str]) -> bool:
    """Whether a prompt (as its set of lowercase words) asks for code."""
    return not _CODE_WORDS.isdisjoint(words) or any(not w.isdisjoint(words) for _, w in _LANGUAGE_WORDS)


def detect_language(words: set[str], rng: random.Random) -> str:
    """The language the prompt names, else a likely default (mostly Python)."""
    for language, names in _LANGUAGE_WORDS:
        if not names.isdisjoint(words):
            return language
    if "script" in words:
        return rng.choice(("python", "bash"))
    return rng.choices(("python", "javascript", "typescript"), weights=(6, 3, 1))[0]


def identifier(word: str, fallback: str = "item") -> str:
    """A snake_case identifier made from a topic word (ASCII letters only)."""
    name = "_".join(re.findall(r"[a-z]+", word.lower()))[:24].strip("_")
    if not name:
        return fallback
    # A keyword of one of the languages would make the snippet invalid: suffix it.
    return f"{name}_value" if name in _RESERVED else name


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_TEMPLATES: dict[str, tuple[str, ...]] = {
    "python": (
        "def summarize_{x}(items: list[str]) -> dict[str, int]:\n"
        '    """Count how often each {x} appears."""\n'
        "    counts: dict[str, int] = {{}}\n"
        "    for item in items:\n"
        "        counts[item] = counts.get(item, 0) + 1\n"
        "    return counts\n\n\n"
        'print(summarize_{x}(["{x}", "{y}", "{x}"]))',
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\n"
        "class {X}:\n"
        "    name: str\n"
        "    {y}: int = 0\n\n"
        "    def bump(self, amount: int = 1) -> None:\n"
        "        if amount < 0:\n"
        '            raise ValueError("amount must be non-negative")\n'
        "        self.{y} += amount",
        "import time\n\n\n"
        "def retry_{x}(action, attempts: int = 3, delay: float = 0.5):\n"
        "    for attempt in range(1, attempts + 1):\n"
        "        try:\n"
        "            return action()\n"
        "        except OSError:\n"
        "            if attempt == attempts:\n"
        "                raise\n"
        "            time.sleep(delay * attempt)",
        "def find_{x}(records, {y}):\n"
        '    """Return the first record whose {y} matches, or None."""\n'
        '    return next((r for r in records if r.get("{y}") == {y}), None)',
    ),
    "javascript": (
        "async function fetch{X}(url) {{\n"
        "  const response = await fetch(url);\n"
        "  if (!response.ok) {{\n"
        "    throw new Error(`request failed: ${{response.status}}`);\n"
        "  }}\n"
        "  return response.json();\n"
        "}}",
        "function group{X}(items, key) {{\n"
        "  return items.reduce((groups, item) => {{\n"
        "    (groups[item[key]] ||= []).push(item);\n"
        "    return groups;\n"
        "  }}, {{}});\n"
        "}}\n\n"
        'console.log(group{X}([{{ {y}: "a" }}, {{ {y}: "b" }}], "{y}"));',
        "const {x} = new Map();\n\n"
        "export function remember{Y}(id, value) {{\n"
        "  {x}.set(id, {{ value, seenAt: Date.now() }});\n"
        "  return {x}.size;\n"
        "}}",
    ),
    "typescript": (
        "interface {X} {{\n"
        "  id: string;\n"
        "  {y}: number;\n"
        "}}\n\n"
        "export function total{Y}(items: {X}[]): number {{\n"
        "  return items.reduce((sum, item) => sum + item.{y}, 0);\n"
        "}}",
        "type Result<T> = {{ ok: true; value: T }} | {{ ok: false; error: string }};\n\n"
        "export function parse{X}(raw: string): Result<number> {{\n"
        "  const value = Number(raw);\n"
        '  return Number.isFinite(value) ? {{ ok: true, value }} : {{ ok: false, error: "not a number" }};\n'
        "}}",
    ),
    "sql": (
        "SELECT {x}, COUNT(*) AS total\n"
        "FROM {y}\n"
        "WHERE created_at >= NOW() - INTERVAL '7 days'\n"
        "GROUP BY {x}\n"
        "ORDER BY total DESC\n"
        "LIMIT 10;",
        "CREATE TABLE {x} (\n"
        "    id BIGSERIAL PRIMARY KEY,\n"
        "    {y} TEXT NOT NULL,\n"
        "    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()\n"
        ");\n\n"
        "CREATE INDEX {x}_{y}_idx ON {x} ({y});",
        "WITH recent AS (\n"
        "    SELECT * FROM {x} WHERE updated_at > NOW() - INTERVAL '1 day'\n"
        ")\n"
        "SELECT {y}, AVG(duration_ms) AS avg_ms\n"
        "FROM recent\n"
        "GROUP BY {y};",
    ),
    "bash": (
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n\n"
        "for file in ./{x}/*.log; do\n"
        '  echo "$file: $(grep -c {y} "$file")"\n'
        "done",
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n\n"
        '{x}_dir="${{1:-./{x}}}"\n'
        'mkdir -p "${x}_dir"\n'
        'find "${x}_dir" -name "*.tmp" -mtime +7 -delete\n'
        'echo "cleaned ${x}_dir"',
    ),
    "go": (
        "package main\n\n"
        'import "fmt"\n\n'
        "func count{X}(items []string) map[string]int {{\n"
        "\tcounts := make(map[string]int)\n"
        "\tfor _, item := range items {{\n"
        "\t\tcounts[item]++\n"
        "\t}}\n"
        "\treturn counts\n"
        "}}\n\n"
        "func main() {{\n"
        '\tfmt.Println(count{X}([]string{{"{x}", "{y}", "{x}"}}))\n'
        "}}",
    ),
    "rust": (
        "use std::collections::HashMap;\n\n"
        "fn count_{x}(items: &[&str]) -> HashMap<String, usize> {{\n"
        "    let mut counts = HashMap::new();\n"
        "    for item in items {{\n"
        "        *counts.entry(item.to_string()).or_insert(0) += 1;\n"
        "    }}\n"
        "    counts\n"
        "}}",
        "#[derive(Debug, Clone)]\n"
        "pub struct {X} {{\n"
        "    pub {y}: u32,\n"
        "}}\n\n"
        "impl {X} {{\n"
        "    pub fn new({y}: u32) -> Self {{\n"
        "        Self {{ {y} }}\n"
        "    }}\n"
        "}}",
    ),
}


def code_block(language: str, names: tuple[str, str], rng: random.Random) -> str:
    """A fenced block in ``language`` using two identifiers (snake_case, distinct)."""
    x, y = names
    if x == y:
        y = f"{y}_count"
    body = rng.choice(_TEMPLATES[language]).format(
        x=x, y=y, X=_pascal(x), Y=_pascal(y), xc=_camel(x), yc=_camel(y)
    )
    return f"```{language}\n{body}\n```"
