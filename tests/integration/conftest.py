"""Real servers on 127.0.0.1 for the integration tests, one per ASGI server setup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from quart import Quart

from llmstream.app import create_app
from llmstream.config import Settings
from llmstream.lean_connection import LeanHttpToolsProtocol
from llmstream.servers import bind_socket
from tests.integration.serverproc import RunningServer, free_port, running_server

# Every engine test runs against each of these: same app, same behaviour.
SERVER_SETUPS: dict[str, list[str]] = {
    "uvicorn": ["--server", "uvicorn"],
    "uvicorn-uvloop": ["--server", "uvicorn", "--loop", "uvloop"],
    "hypercorn-asyncio": ["--server", "hypercorn", "--loop", "asyncio"],
    "hypercorn-uvloop": ["--server", "hypercorn", "--loop", "uvloop"],
    "granian": ["--server", "granian"],
}

# Short timers so that heartbeats, write timeouts and limits show within a test's patience.
ENGINE_FLAGS = ["--heartbeat", "0.5", "--write-timeout", "2", "--max-streams", "1000"]


NOT_INSTALLED = "the extra for this setup is not installed"


def _setups(*names: str) -> list[Any]:
    """Setups as test parameters, each skipped where its extra is not installed (never in CI: the
    Makefile installs them all)."""
    missing = {
        "uvicorn-uvloop": importlib.util.find_spec("uvloop") is None,
        "hypercorn-uvloop": importlib.util.find_spec("uvloop") is None,
        "granian": importlib.util.find_spec("granian") is None,
    }
    return [
        pytest.param(name, id=name, marks=pytest.mark.skipif(missing.get(name, False), reason=NOT_INSTALLED))
        for name in names
    ]


ALL_SETUPS = _setups(*SERVER_SETUPS)
MULTIPROCESS_SETUPS = _setups(
    "uvicorn", "uvicorn-uvloop", "hypercorn-asyncio", "granian"
)  # the setups with --workers


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


@contextlib.asynccontextmanager
async def serving_in_process(*, send_buffer: int = 0) -> AsyncIterator[tuple[str, Quart]]:
    """The app on a real Uvicorn in this process, for tests that look inside it: (base URL, app).
    ``send_buffer``: the kernel's send buffer of every connection (SO_SNDBUF; 0: the system's)."""
    port = free_port()
    app = create_app(Settings(host="127.0.0.1", port=port, log_level="WARNING"))
    # The connection `llmstream serve` gives Uvicorn (llmstream.servers).
    config = uvicorn.Config(app, http=LeanHttpToolsProtocol, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    sock = bind_socket("127.0.0.1", port)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)  # accepted sockets inherit it
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.025)
        assert server.started
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
        gc.unfreeze()  # the app froze this process's objects when it started serving


@pytest.fixture
async def in_process_server() -> AsyncIterator[tuple[str, Quart]]:
    """The app on a real Uvicorn in this process (`serving_in_process`)."""
    async with serving_in_process() as served:
        yield served
