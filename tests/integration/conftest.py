"""Real servers on 127.0.0.1 for the integration tests, one per ASGI server setup."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serverproc import RunningServer, free_port, running_server

# Every engine test runs against each of these: same app, same behaviour.
SERVER_SETUPS: dict[str, list[str]] = {
    "uvicorn": ["--server", "uvicorn"],
    "hypercorn-asyncio": ["--server", "hypercorn", "--loop", "asyncio"],
    "hypercorn-uvloop": ["--server", "hypercorn", "--loop", "uvloop"],
    "granian": ["--server", "granian"],
}

# Short timers so that heartbeats, write timeouts and limits show within a test's patience.
ENGINE_FLAGS = ["--heartbeat", "0.5", "--write-timeout", "2", "--max-streams", "1000"]


def serve_command(setup: str, port: int, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llmstream",
        "serve",
        *SERVER_SETUPS[setup],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]


@pytest.fixture(scope="module", params=list(SERVER_SETUPS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with the engine flags, shared by a module's tests for one setup."""
    setup: str = request.param
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp(setup) / "server.log"
    with running_server(serve_command(setup, port, *ENGINE_FLAGS), port, log_path=log_path) as running:
        yield running
