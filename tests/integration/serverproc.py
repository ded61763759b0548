"""Start a real llmstream server process on 127.0.0.1 and wait until it answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    port: int,
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Run `command` (which must serve on 127.0.0.1:`port`) until the block ends, then stop it.

    The server's output goes to `log_path`, so a failing test can show it.
    """
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env or os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
        )
        server = RunningServer(process, base_url, log_path)
        try:
            _wait_until_healthy(server, startup_timeout)
            yield server
        finally:
            _stop(process)


def _wait_until_healthy(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"server did not answer /healthz within {timeout} s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for `process` to end: its exit status and the `time.monotonic()` at which it was seen to end.

    Meant to run in a thread (asyncio.to_thread) while the test keeps reading streams, so that the time
    from a signal to the exit is measured without the test's own waiting in it. Polls, so the time is
    late by at most 10 ms; kills the process if it has not ended within `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = process.poll()
        if status is not None:
            return status, time.monotonic()
        time.sleep(0.01)
    process.kill()
    process.wait(timeout=5)
    raise TimeoutError(f"process {process.pid} did not exit within {timeout} s")
