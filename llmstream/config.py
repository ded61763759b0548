"""Settings: one table of names, defaults and `LLMSTREAM_*` environment variables.

Flags on the command line win over the environment, which wins over the defaults. Every setting is
documented in README's "Settings" table; `SETTINGS_DOC` below is the source of that table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

ServerName = Literal["uvicorn", "hypercorn", "granian"]
LoopName = Literal["asyncio", "uvloop"]

ENV_PREFIX = "LLMSTREAM_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and its source."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    server: ServerName = "uvicorn"
    loop: LoopName = "asyncio"
    workers: int = 1
    grace: float = 10.0
    heartbeat: float = 15.0
    write_timeout: float = 30.0
    max_duration: float | None = None
    max_streams: int = 10_000
    max_lateness: float = 0.25
    retry_ms: int = 3_000
    max_body_bytes: int = 4_194_304
    log_level: str = "info"
    relay_allowlist: str = "/api/chat/stream,/demo/counter/stream"


SETTINGS_DOC: dict[str, str] = {
    "host": "address to bind (127.0.0.1 keeps the server private to this machine)",
    "port": "port to bind",
    "server": "ASGI server: uvicorn, hypercorn (serves HTTP/2 too) or granian (extra `granian`)",
    "loop": "event loop: asyncio or uvloop (extra `uvloop`)",
    "workers": "worker processes; streams resume on any worker, so no sticky sessions are needed",
    "grace": "seconds that shutdown waits for open streams after telling them to close",
    "heartbeat": "seconds of silence after which a stream sends a comment line",
    "write_timeout": "seconds a client may accept no bytes before its stream is dropped",
    "max_duration": "seconds after which a stream ends with a final event (empty: no limit)",
    "max_streams": "open streams per worker; beyond it new streams get 503 with Retry-After",
    "max_lateness": "seconds paced tokens may run late before new streams get 503 with Retry-After "
    "(how an overloaded worker sheds load instead of making every stream late)",
    "retry_ms": "reconnection time (ms) sent as `retry:` when a stream opens",
    "max_body_bytes": "largest request body accepted (bytes); a larger one gets 413 in the API's error shape",
    "log_level": "logging level: debug, info, warning, error",
    "relay_allowlist": "upstreams /demo/relay may read, comma-separated: paths on this server or "
    "http(s) URLs, matched exactly (never an open proxy)",
}


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the defaults, then `environ` (default: os.environ), then non-None `overrides`."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        raw = environ.get(env_name(field.name))
        if raw is not None:
            values[field.name] = _parse(field, raw, source=env_name(field.name))
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    settings = Settings(**values)
    _check(settings)
    return settings


def _parse(field: dataclasses.Field[Any], raw: str, *, source: str) -> Any:
    kind = field.type
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "float | None":
            return None if raw.strip() in ("", "none") else float(raw)
    except ValueError:
        raise SettingsError(f"{source}={raw!r} is not a number") from None
    return raw.strip()


def _check(settings: Settings) -> None:
    if settings.server not in get_args(ServerName):
        servers = ", ".join(get_args(ServerName))
        raise SettingsError(f"server must be one of {servers}, not {settings.server!r}")
    if settings.loop not in get_args(LoopName):
        raise SettingsError(f"loop must be one of {', '.join(get_args(LoopName))}, not {settings.loop!r}")
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port must be between 1 and 65535, not {settings.port}")
    if settings.workers < 1:
        raise SettingsError(f"workers must be at least 1, not {settings.workers}")
    if settings.max_streams < 1:
        raise SettingsError(f"max_streams must be at least 1, not {settings.max_streams}")
    if settings.max_body_bytes < 1:
        raise SettingsError(f"max_body_bytes must be at least 1, not {settings.max_body_bytes}")
    if settings.retry_ms < 0:
        raise SettingsError(f"retry_ms must not be negative, not {settings.retry_ms}")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}")
    for name in ("grace", "heartbeat", "write_timeout", "max_lateness"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive, not {getattr(settings, name)}")
    if settings.max_duration is not None and settings.max_duration <= 0:
        raise SettingsError(f"max_duration must be positive, not {settings.max_duration}")
    for entry in relay_allowlist(settings):
        if not (entry.startswith(("http://", "https://")) or (entry.startswith("/") and entry[1:2] != "/")):
            raise SettingsError(
                f"relay_allowlist entries must be paths on this server (/...) or http(s) URLs, not {entry!r}"
            )


def relay_allowlist(settings: Settings) -> tuple[str, ...]:
    """The entries of `relay_allowlist`, without blanks."""
    return tuple(entry.strip() for entry in settings.relay_allowlist.split(",") if entry.strip())


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def settings_table() -> str:
    """README's "Settings" table in Markdown, from `Settings` and `SETTINGS_DOC`."""
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(Settings):
        default = field.default
        shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else str(default)
        flag, env = flag_name(field.name), env_name(field.name)
        rows.append(f"| `{flag}` | `{env}` | `{shown}` | {SETTINGS_DOC[field.name]} |")
    return "\n".join(rows) + "\n"
