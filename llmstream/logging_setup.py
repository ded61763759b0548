"""One logging configuration for every server and every process.

Each ASGI server ships its own logging setup with its own format (Uvicorn's `log_config`, Hypercorn's
`errorlog` handler, Granian's `LOGGING_CONFIG`). We hand each of them the same `dictConfig` instead, so
that the lines of Uvicorn, Hypercorn, Granian and the engine (`llmstream.stream`: "stream <id> closed:
<reason> ...") look alike and go to one place: stderr, with time, level, process, logger and message.
"""

from __future__ import annotations

import logging.config
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"

# Server loggers that come with handlers of their own; in our config they only propagate to the root.
_SERVER_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "hypercorn.error",
    "hypercorn.access",
    "_granian",  # Granian's Rust side logs here (granian/log.py)
    "granian.access",
)


def logging_config(level: str) -> dict[str, Any]:
    """The `dictConfig` dictionary for `level` (one of config.LOG_LEVELS); a fresh one per call."""
    numeric = level.upper()
    return {
        "version": 1,
        # Loggers created before we configure (by imports) must keep working.
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": FORMAT}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": numeric},
        "loggers": {
            "llmstream": {"level": numeric},
            **{name: {"handlers": [], "level": numeric, "propagate": True} for name in _SERVER_LOGGERS},
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
