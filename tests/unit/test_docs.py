"""The docs say what the code does."""

from __future__ import annotations

from pathlib import Path

from llmstream.config import settings_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_current() -> None:
    # `llmstream settings` prints the table; README must carry it verbatim.
    assert settings_table().strip() in (REPO / "README.md").read_text()


def test_quick_start_has_exactly_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.split("#")[0].strip()
        for line in quick_start.split("```sh", 1)[1].split("```", 1)[0].splitlines()
    ]
    assert [c for c in commands if c] == ["make run", "make test"]
