"""The command line: `llmstream serve [flags]` and `llmstream settings`.

Every field of `Settings` has a flag, generated from the dataclass so that none is forgotten. A flag left
out stays None, so that `load_settings` takes the `LLMSTREAM_*` variable or the default instead: flags
win over the environment, which wins over the defaults. Bad values end the command with one line on
stderr and exit status 2, the status argparse uses for usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, get_args

from llmstream.config import (
    LOG_LEVELS,
    SETTINGS_DOC,
    LoopName,
    ServerName,
    Settings,
    SettingsError,
    env_name,
    flag_name,
    load_settings,
    settings_table,
)

USAGE_ERROR = 2
NO_LIMIT = "none"  # `--max-duration none`: no limit, even when LLMSTREAM_MAX_DURATION sets one

_CHOICES: dict[str, tuple[str, ...]] = {
    "server": get_args(ServerName),
    "loop": get_args(LoopName),
    "log_level": LOG_LEVELS,
}
# The extras that provide an optional server or loop, and what to install for each.
_EXTRAS = {
    ("server", "granian"): ("granian", "granian"),
    ("loop", "uvloop"): ("uvloop", "uvloop"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message says what is wrong, --help says the rest.
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _optional_float(raw: str) -> float | str:
    if raw.strip().lower() in (NO_LIMIT, ""):
        return NO_LIMIT
    return float(raw)


_optional_float.__name__ = "number or 'none'"  # argparse names the type in its error message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmstream", description="A simulated LLM token-streaming server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the app",
        description="Serve the app. Each flag overrides its LLMSTREAM_* environment variable.",
    )
    for field in dataclasses.fields(Settings):
        serve.add_argument(flag_name(field.name), dest=field.name, default=None, **_argument(field))
    commands.add_parser("settings", help="print the table of settings (Markdown)")
    return parser


def _argument(field: dataclasses.Field[Any]) -> dict[str, Any]:
    default = field.default
    shown = NO_LIMIT if default is None else default
    spec: dict[str, Any] = {"help": f"{_doc(field.name)} [{env_name(field.name)}; default: {shown}]"}
    if field.name in _CHOICES:
        spec["choices"] = _CHOICES[field.name]
    elif field.type == "float | None":
        spec["type"], spec["metavar"] = _optional_float, "SECONDS|none"
    elif field.type in ("int", "float"):
        spec["type"] = int if field.type == "int" else float
        spec["metavar"] = "N" if field.type == "int" else "SECONDS"
    return spec


def _doc(name: str) -> str:
    return SETTINGS_DOC[name].replace("%", "%%")  # argparse formats help with %


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from the flags given, then the environment, then the defaults."""
    environ = dict(os.environ)
    overrides: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(args, field.name)
        if value == NO_LIMIT:
            # load_settings skips None overrides, so "no limit" goes in through the environment it reads.
            environ[env_name(field.name)] = ""
            value = None
        overrides[field.name] = value
    return load_settings(environ, **overrides)


def _missing_extra(settings: Settings) -> str | None:
    for (name, value), (module, extra) in _EXTRAS.items():
        if getattr(settings, name) == value and importlib.util.find_spec(module) is None:
            return f"{name} {value} needs {module}; install the extra: pip install 'llmstream[{extra}]'"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":
        sys.stdout.write(settings_table())
        return 0
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return _fail(str(exc))
    problem = _missing_extra(settings)
    if problem is not None:
        return _fail(problem)

    from llmstream.logging_setup import configure_logging
    from llmstream.servers import ServerStartError, serve

    configure_logging(settings.log_level)
    try:
        return serve(settings)
    except ServerStartError as exc:
        return _fail(str(exc), status=1)


def _fail(message: str, *, status: int = USAGE_ERROR) -> int:
    sys.stderr.write(f"llmstream: error: {message}\n")
    return status
