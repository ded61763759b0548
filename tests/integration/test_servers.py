"""`llmstream serve` on every ASGI server setup: settings, serving, graceful shutdown, workers, HTTP/2.

Each test starts real server processes (tests/integration/serverproc.py) with a clean environment (no
LLMSTREAM_* variables but the ones a test sets) and talks to them over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cores import readiness_of_each_worker

from llmstream import ServerSentEvent, SSEDecoder, cli
from llmstream.config import Settings, env_name, flag_name
from llmstream.servers import bind_socket
from llmstream.supervisor import STARTUP_SECONDS, Supervisor
from tests.integration.conftest import ALL_SETUPS, MULTIPROCESS_SETUPS, serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server, wait_for_exit

REPO = Path(__file__).resolve().parents[2]
COUNTER = "/demo/counter/stream"
GRACE = 5.0
EXIT_SLACK = 1.0  # what a process may take beyond the grace period to exit
RETRY_MS = 2000  # given as a flag, while the environment says ENV_RETRY_MS: the flag must win
ENV_RETRY_MS = 1000
ENV_MAX_STREAMS = 777  # given only in the environment: /readyz must report it
STREAMS_AT_SHUTDOWN = 100
# Time, level, [process], logger: message -- the same for every server (llmstream/logging_setup.py).
LOG_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +\[\d+\] "

pytestmark = pytest.mark.timeout(120)
SERVERS_CLOSING_IDLE_CONNECTIONS_AT_ONCE = {"uvicorn", "uvicorn-uvloop"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LLMSTREAM_")}
    return env | extra


@contextlib.contextmanager
def serving(setup: str, tmp_path: Path, *flags: str) -> Iterator[RunningServer]:
    port = free_port()
    command = serve_command(setup, port, "--grace", str(GRACE), "--retry-ms", str(RETRY_MS), *flags)
    env = clean_env(
        LLMSTREAM_RETRY_MS=str(ENV_RETRY_MS),
        LLMSTREAM_MAX_STREAMS=str(ENV_MAX_STREAMS),
        LLMSTREAM_PORT="1",  # the --port flag must win
    )
    with running_server(command, port, log_path=tmp_path / f"{setup}.log", cwd=REPO, env=env) as server:
        yield server


def wait_for_log(server: RunningServer, pattern: str, count: int, timeout: float = 5.0) -> list[str]:
    """The log's matches of `pattern` once there are `count` of them; the engine logs after sending."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[str] = re.findall(pattern, server.log(), flags=re.MULTILINE)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# ---- reading streams ------------------------------------------------------------------------------


@dataclass
class Read:
    status: int
    http_version: str
    headers: httpx.Headers
    events: list[ServerSentEvent]
    retry: int | None  # the decoder's reconnection time at the end


async def read_events(
    client: httpx.AsyncClient, url: str, on_first_event: Callable[[], None] | None = None
) -> Read:
    """GET `url` and decode it chunk by chunk with SSEDecoder until the server ends it."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            for event in decoder.feed(chunk):
                if not events and on_first_event is not None:
                    on_first_event()
                events.append(event)
    events += decoder.flush()
    return Read(response.status_code, response.http_version, response.headers, events, decoder.retry)


def assert_told_to_come_back(read: Read) -> None:
    """The stream ended with the shutdown event: `close`, the reason, and a jittered `retry`."""
    assert read.status == 200
    assert read.events[0].event == "count"
    assert read.events[0].retry == RETRY_MS, "the --retry-ms flag did not reach the worker"
    last = read.events[-1]
    assert last.event == "close", [e.event for e in read.events]
    data = json.loads(last.data or "")
    assert data["reason"] == "server_shutdown"
    assert isinstance(data["retry_ms"], int)
    assert RETRY_MS * 0.5 <= data["retry_ms"] <= RETRY_MS * 1.5
    assert last.retry == read.retry == data["retry_ms"]


# ---- graceful shutdown ----------------------------------------------------------------------------


@dataclass
class Shutdown:
    reads: list[Read]
    readyz: list[int | str]  # /readyz after the signal: statuses, then the error that ended the probe
    status: int
    seconds: float  # from the signal to the exit


async def shutdown_with_open_streams(server: RunningServer, streams: int, sig: signal.Signals) -> Shutdown:
    """Open `streams` streams; once each has had an event, send `sig`; read to the end, wait for the exit."""
    everyone_started = asyncio.Event()
    started = 0

    def one_started() -> None:
        nonlocal started
        started += 1
        if started == streams:
            everyone_started.set()

    url = f"{server.base_url}{COUNTER}?interval=0.5"
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with (
        httpx.AsyncClient(limits=limits, timeout=GRACE + 10) as client,
        httpx.AsyncClient(base_url=server.base_url, timeout=2) as probe,
    ):
        # A keep-alive connection opened before the signal, for /readyz after it.
        assert (await probe.get("/readyz")).status_code == 200
        tasks = [asyncio.create_task(read_events(client, url, one_started)) for _ in range(streams)]
        try:
            await asyncio.wait_for(everyone_started.wait(), 30)
            sent_at = time.monotonic()
            server.process.send_signal(sig)
            exit_seen = asyncio.create_task(asyncio.to_thread(wait_for_exit, server.process, GRACE + 10))
            readyz = await probe_readyz(probe)
            reads = await asyncio.wait_for(asyncio.gather(*tasks), GRACE + 10)
            status, exited_at = await exit_seen
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return Shutdown(reads, readyz, status, exited_at - sent_at)


async def probe_readyz(probe: httpx.AsyncClient) -> list[int | str]:
    """Ask /readyz again and again until the server is gone (at most ~3 s)."""
    answers: list[int | str] = []
    for _ in range(150):
        try:
            answers.append((await probe.get("/readyz")).status_code)
        except httpx.TransportError as exc:
            answers.append(type(exc).__name__)
            break
        await asyncio.sleep(0.01)
    return answers


def assert_clean_shutdown(run: Shutdown, server: RunningServer, streams: int) -> None:
    assert len(run.reads) == streams
    for read in run.reads:
        assert_told_to_come_back(read)
    assert run.status == 0, server.log()
    assert run.seconds < GRACE + EXIT_SLACK, f"exit took {run.seconds:.2f} s"
    closed = wait_for_log(server, r"llmstream\.stream: stream \S+ closed: server_shutdown", streams)
    assert len(closed) == streams


@pytest.mark.parametrize("setup", ALL_SETUPS)
async def test_sigterm_closes_every_open_stream_and_exits_0(setup: str, tmp_path: Path) -> None:
    with serving(setup, tmp_path) as server:
        run = await shutdown_with_open_streams(server, STREAMS_AT_SHUTDOWN, signal.SIGTERM)
    assert_clean_shutdown(run, server, STREAMS_AT_SHUTDOWN)
    # The probe's connection was open before the signal. Nothing says "ready" after it, and the probe ends
    # with the server gone.
    assert 200 not in run.readyz, run.readyz
    assert isinstance(run.readyz[-1], str), run.readyz
    if setup in SERVERS_CLOSING_IDLE_CONNECTIONS_AT_ONCE:
        # Uvicorn notices the signal on its next 0.1 s tick and then closes idle kept-alive connections
        # (uvicorn/server.py `main_loop`, `shutdown`): on a busy machine the probe's first ask can come
        # after that, and a closed connection is "not ready" too. CI saw ['ReadError'].
        assert all(answer == 503 for answer in run.readyz[:-1]), run.readyz
    else:
        # The others keep idle connections open through the grace period: the first answer is "not ready".
        assert run.readyz[0] == 503, run.readyz


@pytest.mark.parametrize("setup", ALL_SETUPS)
async def test_sigint_stops_like_sigterm(setup: str, tmp_path: Path) -> None:
    with serving(setup, tmp_path) as server:
        run = await shutdown_with_open_streams(server, 5, signal.SIGINT)
    assert_clean_shutdown(run, server, 5)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("setup", MULTIPROCESS_SETUPS)
async def test_workers_serve_and_stop_together(setup: str, tmp_path: Path) -> None:
    streams = 20
    with serving(setup, tmp_path, "--workers", "2") as server:
        # Regression: the signal used to come while the second worker was still starting (the first
        # one's /readyz answered already), so only one worker could show its shutdown.
        started = set(wait_for_log(server, r"\[(\d+)\] llmstream\.stream: ready", 2, timeout=20))
        assert len(started) == 2, server.log()
        async with httpx.AsyncClient(timeout=5) as client:
            ready = (await client.get(f"{server.base_url}/readyz")).json()
        assert ready["max_streams"] == ENV_MAX_STREAMS, "LLMSTREAM_MAX_STREAMS did not reach the worker"
        run = await shutdown_with_open_streams(server, streams, signal.SIGTERM)
    assert_clean_shutdown(run, server, streams)
    # A worker may answer "ready" until the signal reaches it; after its first 503, never again.
    statuses = [answer for answer in run.readyz if isinstance(answer, int)]
    if 503 in statuses:
        assert 200 not in statuses[statuses.index(503) :], run.readyz
    # Both workers began the shutdown, each in its own process.
    workers = set(wait_for_log(server, r"\[(\d+)\] llmstream\.stream: shutdown: closing", 2))
    assert len(workers) == 2, server.log()


# Granian runs and replaces its own workers; these run ours (llmstream/supervisor.py).
OUR_SUPERVISOR_SETUPS = [param for param in MULTIPROCESS_SETUPS if param.values[0] != "granian"]


async def workers_answering(server: RunningServer, count: int) -> dict[int, Any]:
    """/readyz of each of ``count`` workers (the bench's own helper, off the event loop: it blocks)."""
    port = urlsplit(server.base_url).port
    assert port is not None
    return await asyncio.to_thread(readiness_of_each_worker, port, count, timeout=20)


@pytest.mark.parametrize("setup", OUR_SUPERVISOR_SETUPS)
async def test_a_worker_that_dies_is_replaced_and_no_connection_meanwhile_is_lost(
    setup: str, tmp_path: Path
) -> None:
    # The parent keeps the listening socket open: while a worker is gone, the others and then its
    # replacement take the new connections; none is refused or reset.
    with serving(setup, tmp_path, "--workers", "2") as server:
        before = await workers_answering(server, 2)
        assert len(before) == 2, server.log()
        await asyncio.sleep(STARTUP_SECONDS + 0.5)  # a worker dying sooner is a startup failure
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        fresh_connections = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=fresh_connections) as client:
            answers = await asyncio.gather(*(client.get(f"{server.base_url}/healthz") for _ in range(40)))
        assert [answer.status_code for answer in answers] == [200] * 40, server.log()
        after = await workers_answering(server, 2)
        assert len(after) == 2, server.log()
        assert victim not in after
        assert server.process.poll() is None
        assert re.search(rf"worker {victim} exited with -9; starting another", server.log())


# ---- serving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", ALL_SETUPS)
async def test_serves_health_readiness_and_a_stream(setup: str, tmp_path: Path) -> None:
    with serving(setup, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            ready = (await client.get("/readyz")).json()
            read = await read_events(client, f"{server.base_url}{COUNTER}?interval=0.05&limit=5")
        closed = wait_for_log(server, LOG_LINE + r"llmstream\.stream: stream \S+ closed: complete", 1)

    assert ready["status"] == "ready"
    assert ready["max_streams"] == ENV_MAX_STREAMS
    assert read.status == 200
    assert read.http_version == "HTTP/1.1"
    assert read.headers["content-type"] == "text/event-stream"
    assert read.headers["cache-control"] == "no-cache"
    assert read.headers["x-accel-buffering"] == "no"
    assert read.headers["connection"] == "keep-alive"
    assert [e.event for e in read.events] == ["count"] * 5 + ["done"]
    assert [json.loads(e.data or "")["n"] for e in read.events] == [1, 2, 3, 4, 5, 5]
    assert read.retry == RETRY_MS
    # One log format for every server: time, level, process, logger, message; the engine's at `info`.
    assert len(closed) == 1, server.log()


@pytest.mark.parametrize("setup", ALL_SETUPS)
async def test_a_client_that_hangs_up_ends_its_stream_quietly(setup: str, tmp_path: Path) -> None:
    # The handler runs in the server's own task for the request (llmstream.sse_response), which a
    # hang-up cancels: that cancellation must end the stream, not leak to the server as an error.
    with serving(setup, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            decoder, events = SSEDecoder(), []
            async with client.stream("GET", f"{COUNTER}?interval=0.05") as response:
                async for chunk in response.aiter_raw():
                    events += decoder.feed(chunk)
                    if len(events) >= 2:
                        break  # leaving the block closes the connection mid-stream
            closed = wait_for_log(server, r"llmstream\.stream: stream \S+ closed: client_disconnected", 1)
            after = await read_events(client, f"{server.base_url}{COUNTER}?interval=0.01&limit=2")
            health = await client.get("/healthz")
    assert len(closed) == 1, server.log()
    assert [e.event for e in after.events] == ["count", "count", "done"]
    assert health.status_code == 200
    assert "Traceback" not in server.log()
    assert "Exception in ASGI application" not in server.log()


async def test_hypercorn_serves_http2_with_prior_knowledge(tmp_path: Path) -> None:
    with serving("hypercorn-asyncio", tmp_path) as server:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            read = await read_events(client, f"{server.base_url}{COUNTER}?interval=0.05&limit=5")
    assert read.http_version == "HTTP/2"
    assert read.status == 200
    assert read.headers["content-type"] == "text/event-stream"
    # Connection-specific headers are illegal on HTTP/2 (RFC 9113 §8.2.2).
    for name in ("connection", "keep-alive", "transfer-encoding"):
        assert name not in read.headers
    assert [e.event for e in read.events] == ["count"] * 5 + ["done"]


# ---- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "70000"], {}, "port must be between 1 and 65535, not 70000"),
        (["--port", "eighty"], {}, "argument --port: invalid int value: 'eighty'"),
        (["--server", "nginx"], {}, "argument --server: invalid choice: 'nginx'"),
        (["--workers", "0"], {}, "workers must be at least 1, not 0"),
        (["--grace", "-1"], {}, "grace must be positive, not -1.0"),
        (["--max-duration", "soon"], {}, "argument --max-duration: invalid number or 'none' value: 'soon'"),
        (["--log-level", "loud"], {}, "argument --log-level: invalid choice: 'loud'"),
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
        ([], {"LLMSTREAM_HEARTBEAT": "often"}, "LLMSTREAM_HEARTBEAT='often' is not a number"),
        ([], {"LLMSTREAM_SERVER": "nginx"}, "server must be one of uvicorn, hypercorn, granian, not 'nginx'"),
        ([], {"LLMSTREAM_LOG_LEVEL": "loud"}, "log_level must be one of"),
    ],
)
def test_cli_rejects_bad_settings_with_one_line_and_status_2(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmstream", "serve", *args],
        cwd=REPO,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no usage block, no traceback


def test_cli_port_taken_is_one_line_and_status_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "llmstream", "serve", "--port", port],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"llmstream: error: cannot listen on 127.0.0.1:{port}: Address already in use\n" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "module", "advice"),
    [
        (["--server", "granian"], "granian", "pip install 'llmstream[granian]'"),
        (["--loop", "uvloop"], "uvloop", "pip install 'llmstream[uvloop]'"),
    ],
)
def test_cli_missing_extra_says_how_to_install_it(
    args: list[str],
    module: str,
    advice: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == module else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert cli.main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert advice in err
    assert err.count("\n") == 1


def test_flags_win_over_environment_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LLMSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LLMSTREAM_PORT", "9000")
    monkeypatch.setenv("LLMSTREAM_HEARTBEAT", "2.5")
    monkeypatch.setenv("LLMSTREAM_MAX_DURATION", "60")
    args = cli.build_parser().parse_args(["serve", "--port", "9100", "--max-duration", "none"])
    settings = cli.settings_from_args(args)
    assert settings.port == 9100  # flag over environment
    assert settings.heartbeat == 2.5  # environment over default
    assert settings.max_duration is None  # `none` over the environment's limit
    assert settings.grace == Settings().grace  # default


def test_every_setting_has_a_flag_and_a_table_row(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert cli.main(["settings"]) == 0
    table = capsys.readouterr().out
    for setting in fields(Settings):
        assert flag_name(setting.name) in help_text
        assert f"| `{flag_name(setting.name)}` | `{env_name(setting.name)}` |" in table


def _fail_at_startup(settings: Settings, sock: socket.socket) -> None:
    raise SystemExit(3)


def test_supervisor_gives_up_when_a_worker_fails_at_startup() -> None:
    started = time.monotonic()
    status = Supervisor(_fail_at_startup, Settings(workers=2, grace=1), bind_socket("127.0.0.1", 0)).run()
    assert status == 1
    assert time.monotonic() - started < STARTUP_SECONDS  # not restarted again and again
