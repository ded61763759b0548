"""The streaming engine over real sockets, on every ASGI server setup (see conftest.SERVER_SETUPS)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmstream import ServerSentEvent, SSEDecoder
from llmstream.streaming import HEARTBEAT
from tests.integration.conftest import ENGINE_FLAGS, SERVER_SETUPS, serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server
from tests.integration.sse_client import read_stream

COUNTER = "/demo/counter/stream"


def metric(server: RunningServer, name: str, labels: str = "") -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def closed(server: RunningServer, reason: str) -> float:
    return metric(server, "llmstream_streams_closed_total", f'{{reason="{reason}"}}')


def wait_for(condition: str, check: object, timeout: float) -> float:
    """Poll `check()` until true; return the seconds it took. Bounded by `timeout`."""
    assert callable(check)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout} s: {condition}")


async def test_stream_headers_events_and_retry_hint(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        read = await read_stream(
            client, f"{COUNTER}?interval=0.02&limit=5", headers={"Accept-Encoding": "gzip"}
        )
    assert read.status == 200
    assert read.headers["content-type"] == "text/event-stream"
    assert read.headers["cache-control"] == "no-cache"
    assert read.headers["x-accel-buffering"] == "no"
    assert read.headers["connection"] == "keep-alive"
    assert "content-encoding" not in read.headers  # never compressed, even when the client offers gzip
    assert "content-length" not in read.headers
    assert [json.loads(e.data or "") for e in read.of_type("count")] == [{"n": n} for n in range(1, 6)]
    assert [e.id for e in read.of_type("count")] == ["1", "2", "3", "4", "5"]
    assert [e.event for e in read.events] == ["count"] * 5 + ["done"]
    assert read.retry == 3000
    assert read.raw.startswith(b": stream open\nretry: 3000\n")


async def test_events_leave_as_they_are_produced(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        read = await read_stream(client, f"{COUNTER}?interval=0.3&limit=4")
    count_arrivals = read.arrivals[:4]
    gaps = [b - a for a, b in itertools.pairwise(count_arrivals)]
    assert len(gaps) == 3
    # Paced 0.3 s apart at the source, so they must not arrive together (nothing buffers them).
    assert all(gap > 0.15 for gap in gaps), gaps


async def test_heartbeats_during_silence_make_no_events(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        read = await read_stream(client, f"{COUNTER}?interval=2.5&limit=2")
    # 2.5 s of silence between counts with a 0.5 s heartbeat: several comments, no phantom events.
    assert read.heartbeats >= 3
    assert [e.event for e in read.events] == ["count", "count", "done"]


async def test_500_concurrent_streams_complete_intact(server: RunningServer) -> None:
    limits = httpx.Limits(max_connections=600, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as client:
        reads = await asyncio.gather(
            *(read_stream(client, f"{COUNTER}?interval=0.02&limit=20") for _ in range(500))
        )
    for read in reads:
        assert read.status == 200
        assert [e.id for e in read.of_type("count")] == [str(n) for n in range(1, 21)]
        assert read.events[-1].event == "done"


def test_client_disconnect_stops_the_producer_at_once(server: RunningServer) -> None:
    before = closed(server, "client_disconnected")
    with httpx.Client(base_url=server.base_url) as poller:  # one keep-alive connection: cheap polls

        def stream_closed() -> bool:
            text = poller.get("/metrics").text
            return (
                f'llmstream_streams_closed_total{{reason="client_disconnected"}} {before + 1}' in text
                and "llmstream_open_streams 0.0" in text
            )

        poller.get("/healthz")
        events = []
        decoder = SSEDecoder()
        with (
            httpx.Client(base_url=server.base_url) as client,
            client.stream("GET", f"{COUNTER}?interval=0.05") as response,
        ):
            for chunk in response.iter_raw():
                events += decoder.feed(chunk)
                if len(events) == 3:
                    break
        # The client has hung up: the server must notice and finalise the producer at once.
        took = wait_for("the stream is closed as client_disconnected", stream_closed, timeout=5)
    assert [e.id for e in events] == ["1", "2", "3"]
    # Well under the 0.5 s heartbeat and the 2 s write timeout, the later ways a server could notice; not
    # tighter, as the polls of /metrics themselves are slow on a loaded machine.
    assert took < 0.45, f"the producer ran on for {took:.3f} s after the client left"


def test_a_client_that_stops_reading_is_dropped(server: RunningServer) -> None:
    before = closed(server, "write_timeout")
    pid = server.process.pid
    rss_before = _rss_kib(pid)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills quickly
        sock.connect(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])))
        sock.sendall(f"GET {COUNTER}?interval=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        # Read nothing: the instant counter fills the buffers, then `send` blocks. Write timeout is 2 s.
        wait_for(
            "the stream is dropped as write_timeout",
            lambda: closed(server, "write_timeout") == before + 1,
            10,
        )
        assert metric(server, "llmstream_open_streams") == 0
        # Dropped means the connection ends: what was buffered drains, then EOF (not an endless count).
        sock.settimeout(10)
        received = 0
        while chunk := sock.recv(65536):
            received += len(chunk)
            assert received < 64 * 2**20, "the stream went on after its write timeout"
    assert b"event: done" not in chunk
    # Regression: the watchdog's cancellation went on up into Uvicorn, which logged it as an error of
    # the app's, with a traceback; a write timeout is the engine's own ending.
    assert "Exception in ASGI application" not in server.log()
    assert "CancelledError" not in server.log()
    assert _rss_kib(pid) - rss_before < 30 * 1024, (
        "server memory grew by more than 30 MiB for one slow client"
    )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_error_before_the_first_event_is_an_http_error(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(f"{COUNTER}?fail_at=1")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "internal_error"
    assert response.headers["x-request-id"].startswith("req_")  # the engine's own answer names it too


async def test_error_after_start_is_a_final_error_event(server: RunningServer) -> None:
    before = closed(server, "error")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        read = await read_stream(client, f"{COUNTER}?interval=0.01&fail_at=3")
    assert [e.event for e in read.events] == ["count", "count", "error"]
    assert "stream" in json.loads(read.events[-1].data or "")["error"]["message"]
    assert read.raw.endswith(b"\n\n")  # the last event is whole, and the connection closed cleanly
    assert closed(server, "error") == before + 1


async def test_bad_input_is_a_json_400(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(COUNTER, headers={"Last-Event-ID": "not-a-number"})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]["message"]


async def test_resume_from_last_event_id(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        read = await read_stream(client, f"{COUNTER}?interval=0&limit=45", headers={"Last-Event-ID": "41"})
    assert [e.id for e in read.of_type("count")] == ["42", "43", "44", "45"]


async def test_json_routes_and_request_ids_work_beside_streams(server: RunningServer) -> None:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as client:
        streams = [
            asyncio.create_task(read_stream(client, f"{COUNTER}?interval=0.1&limit=10")) for _ in range(20)
        ]
        await asyncio.sleep(0.3)
        ready = await client.get("/readyz", headers={"X-Request-ID": "abc-123"})
        refused_id = await client.get("/readyz", headers={"X-Request-ID": "no spaces allowed"})
        missing = await client.get("/no/such/page")
        reads = await asyncio.gather(*streams)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.headers["x-request-id"] == "abc-123"  # a caller's plain id is echoed
    assert refused_id.headers["x-request-id"].startswith("req_")  # an unsafe one is replaced
    assert missing.status_code == 404
    assert missing.headers["x-request-id"].startswith("req_")
    ids = [r.headers["x-request-id"] for r in reads]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(len(r.of_type("count")) == 10 for r in reads)


def test_curl_shows_events_as_they_are_produced(server: RunningServer) -> None:
    started = time.monotonic()
    with subprocess.Popen(
        ["curl", "-sN", f"{server.base_url}{COUNTER}?interval=0.4&limit=3"], stdout=subprocess.PIPE
    ) as curl:
        assert curl.stdout is not None
        first_data_at = None
        for line in curl.stdout:
            if line.startswith(b"data:") and first_data_at is None:
                first_data_at = time.monotonic() - started
        curl.wait(timeout=10)
    total = time.monotonic() - started
    assert first_data_at is not None
    assert total - first_data_at > 0.6, "curl saw the first event only at the end of the stream"


# ---- limits: a server of its own per setup ----------------------------------------------------------


@pytest.fixture(scope="module", params=list(SERVER_SETUPS))
def limited_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    setup: str = request.param
    port = free_port()
    command = serve_command(setup, port, *ENGINE_FLAGS, "--max-streams", "2", "--max-duration", "1.5")
    with running_server(command, port, log_path=tmp_path_factory.mktemp(setup) / "server.log") as running:
        yield running


async def test_admission_cap_refuses_at_once_with_retry_after(limited_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=limited_server.base_url, timeout=10) as client:
        first_two = [asyncio.create_task(read_stream(client, f"{COUNTER}?interval=0.1")) for _ in range(2)]
        await asyncio.sleep(0.3)
        started = time.monotonic()
        refused = await client.get(f"{COUNTER}?interval=0.1")
        refused_after = time.monotonic() - started
        reads = await asyncio.gather(*first_two)
        admitted_again = await read_stream(client, f"{COUNTER}?interval=0&limit=3")
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "unavailable"
    assert refused.headers["x-request-id"].startswith("req_")
    assert refused_after < 1.0, "a refusal must be immediate, never a silent wait"
    assert all(r.status == 200 for r in reads)
    assert admitted_again.status == 200
    assert metric(limited_server, "llmstream_streams_rejected_total") >= 1


async def test_max_duration_ends_with_a_final_event(limited_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=limited_server.base_url, timeout=10) as client:
        read = await read_stream(client, f"{COUNTER}?interval=0.2")
    assert read.events[-1].event == "close"
    assert json.loads(read.events[-1].data or "") == {"reason": "max_duration"}
    assert 5 <= len(read.of_type("count")) <= 9  # about 1.5 s of counts at 0.2 s


# ---- the long haul: past Quart's 60 s RESPONSE_TIMEOUT, on all servers at once -----------------------


@pytest.mark.slow
async def test_long_streams_stay_healthy_past_a_minute(tmp_path: Path) -> None:
    with _servers_of_every_setup(tmp_path) as servers:
        async with httpx.AsyncClient(timeout=90) as client:
            reads = await asyncio.gather(
                *(read_stream(client, f"{s.base_url}{COUNTER}?interval=5&limit=13") for s in servers)
            )
    for read in reads:
        assert [e.id for e in read.of_type("count")] == [str(n) for n in range(1, 14)]
        assert read.events[-1].event == "done"
        assert read.heartbeats >= 13 * 5  # ~9 per 5 s gap at a 0.5 s heartbeat; allow for tick jitter


@contextlib.contextmanager
def _servers_of_every_setup(tmp_path: Path) -> Iterator[list[RunningServer]]:
    with contextlib.ExitStack() as stack:
        servers = []
        for setup in SERVER_SETUPS:
            port = free_port()
            command = serve_command(setup, port, *ENGINE_FLAGS)
            servers.append(stack.enter_context(running_server(command, port, log_path=tmp_path / setup)))
        yield servers


def test_decoder_sees_no_event_in_heartbeats_alone() -> None:
    # The engine's own opening and heartbeat bytes, fed alone, complete no event (WHATWG HTML §9.2.6),
    # also with a normal event after them: no phantom event before it, and it keeps its type.
    decoder = SSEDecoder()
    assert decoder.feed(b": stream open\nretry: 3000\n" + HEARTBEAT + HEARTBEAT) == []
    assert decoder.retry == 3000
    (event,) = decoder.feed(HEARTBEAT + ServerSentEvent(event="token", data="x").encode())
    assert (event.event, event.data) == ("token", "x")
    assert decoder.flush() == []
