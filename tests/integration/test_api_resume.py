"""Resume without a shared store: read part of a stream from one server process, resume it on another.

Server A is Uvicorn and server B Hypercorn, two separate processes sharing nothing: B re-plans the stream
from the request and the Last-Event-ID alone. The concatenation must equal the uninterrupted stream.
The same holds between the workers of one `--workers 2` server, on every server that has workers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmstream import ServerSentEvent, SSEDecoder
from tests.integration.conftest import MULTIPROCESS_SETUPS, serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server
from tests.integration.sse_client import read_stream

# jitter=0: regular gaps and no stalls, so the stream is quick but really paced (80 tokens in 0.4 s).
QUERY = "prompt=Explain+resumable+streams&model=fast&seed=7&ttft_ms=0&tokens_per_s=200&jitter=0&max_tokens=80"
STREAM = f"/api/chat/stream?{QUERY}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer]]:
    logs = tmp_path_factory.mktemp("resume")
    port_a, port_b = free_port(), free_port()
    with (
        running_server(serve_command("uvicorn", port_a), port_a, log_path=logs / "a.log") as a,
        running_server(serve_command("hypercorn-asyncio", port_b), port_b, log_path=logs / "b.log") as b,
    ):
        yield a, b


def tokens(events: list[ServerSentEvent]) -> list[tuple[int, str]]:
    return [
        (json.loads(e.data or "")["index"], json.loads(e.data or "")["text"])
        for e in events
        if e.event == "token"
    ]


async def get(server: RunningServer, url: str, **options: Any) -> list[ServerSentEvent]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        read = await read_stream(client, url, **options)
    assert read.status == 200
    return read.events


async def post(
    server: RunningServer,
    path: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    max_tokens: int = 0,
) -> list[ServerSentEvent]:
    """POST and read the stream; with `max_tokens`, hang up once that many token events came."""
    decoder, events = SSEDecoder(), []
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=20) as client,
        client.stream("POST", path, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_raw():
            events += decoder.feed(chunk)
            if max_tokens and sum(1 for e in events if e.id) >= max_tokens:
                return events
    return events + decoder.flush()


async def collect(server: RunningServer, url: str, into: list[ServerSentEvent]) -> None:
    """GET `url`, appending events to `into` as they come (so they are kept when the stream breaks)."""
    decoder = SSEDecoder()
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=20) as client,
        client.stream("GET", url) as response,
    ):
        async for chunk in response.aiter_raw():
            into += decoder.feed(chunk)


def assert_resumed(
    first: list[ServerSentEvent], rest: list[ServerSentEvent], full: list[ServerSentEvent]
) -> None:
    had, got = tokens(first), tokens(rest)
    assert 0 < len(had) < len(tokens(full))  # the first read really stopped mid-stream
    assert json.loads(rest[0].data or "")["resumed_after"] == had[-1][0]
    assert had + got == tokens(full)  # no duplicate, no gap, identical text
    assert rest[-1].event == "finish"
    assert rest[-1].data == full[-1].data  # the same usage, for the whole completion


async def test_get_resumes_on_another_process(servers: tuple[RunningServer, RunningServer]) -> None:
    a, b = servers
    full = await get(a, STREAM)
    first = await get(a, STREAM, max_events=1 + 20)  # start and about 20 tokens, then hang up
    rest = await get(b, STREAM, headers={"Last-Event-ID": first[-1].id or ""})
    assert_resumed(first, rest, full)
    # A first EventSource connection cannot set headers: ?last_event_id= does the same.
    same = await get(b, f"{STREAM}&last_event_id={first[-1].id}")
    assert tokens(same) == tokens(rest)


async def test_post_resumes_with_the_last_event_id_header(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    body = {
        "messages": [
            {"role": "system", "content": "Be thorough."},
            {"role": "user", "content": "Why resume?"},
        ],
        "model": "typical",
        "seed": 99,
        "ttft_ms": 0,
        "tokens_per_s": 300,
        "jitter": 0,
        "max_tokens": 120,
    }
    full = await post(b, "/api/chat", body)
    first = await post(a, "/api/chat", body, max_tokens=15)
    rest = await post(
        b, "/api/chat", body, headers={"Last-Event-ID": [e for e in first if e.id][-1].id or ""}
    )
    assert_resumed([e for e in first if e.id], rest, full)


async def test_a_resume_past_a_mid_stream_fault_completes_the_stream(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    full = await get(a, STREAM)
    faulty = f"{STREAM}&faults=reset_after:12"
    first: list[ServerSentEvent] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await collect(a, faulty, first)
    assert len(tokens(first)) == 12
    # The fault has struck: the resumed stream (same request, so the same fault) runs to its end.
    rest = await get(b, faulty, headers={"Last-Event-ID": first[-1].id or ""})
    assert_resumed(first, rest, full)


async def test_the_openai_api_resumes_too(servers: tuple[RunningServer, RunningServer]) -> None:
    a, b = servers
    body = {
        "model": "fast",
        "stream": True,
        "seed": 5,
        "messages": [{"role": "user", "content": "Tell me about ids"}],
        "max_tokens": 100,
        "llmstream": {"ttft_ms": 0, "tokens_per_s": 300, "jitter": 0},
    }

    def texts(events: list[ServerSentEvent]) -> list[str]:
        # Token chunks only (the decoder gives later events the last id in force, so not `e.id`).
        chunks = [json.loads(e.data or "") for e in events if e.data != "[DONE]"]
        return [
            c["choices"][0]["delta"]["content"]
            for c in chunks
            if c["choices"] and c["choices"][0]["delta"].get("content")
        ]

    full = await post(a, "/v1/chat/completions", body)
    first = await post(a, "/v1/chat/completions", body, max_tokens=10)
    rest = await post(
        b, "/v1/chat/completions", body, headers={"Last-Event-ID": [e for e in first if e.id][-1].id or ""}
    )
    assert texts(first) + texts(rest) == texts(full)
    assert rest[-1].data == "[DONE]"


# ---- across the workers of one server -------------------------------------------------------------


async def worker_of(client: httpx.AsyncClient) -> int:
    """The process id of the worker that took `client`'s connection (`/readyz` says)."""
    worker: int = (await client.get("/readyz")).json()["worker"]
    return worker


async def clients_on_two_workers(
    base_url: str, within: float = 20.0
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Two clients whose kept-alive connections were accepted by different workers (the kernel picks
    the worker per connection; `/readyz` says which one answered).

    Asked for until a deadline, not a fixed number of times: the server answers once its first worker
    does, and 40 quick connections made while the second is still importing could all go to the first."""
    clients: dict[int, httpx.AsyncClient] = {}
    deadline = time.monotonic() + within
    attempts = 0
    while len(clients) < 2 and time.monotonic() < deadline and attempts < 400:  # bounded in both
        attempts += 1
        client = httpx.AsyncClient(base_url=base_url, timeout=20, limits=httpx.Limits(max_connections=1))
        worker = await worker_of(client)
        if worker in clients:
            await client.aclose()
            await asyncio.sleep(0.05)
        else:
            clients[worker] = client
    if len(clients) == 2:
        first, second = clients.values()
        return first, second
    for client in clients.values():
        await client.aclose()
    raise AssertionError(f"{attempts} connections in {within:.0f} s all went to worker(s) {list(clients)}")


@pytest.mark.parametrize("setup", MULTIPROCESS_SETUPS)
async def test_a_stream_read_on_one_worker_resumes_on_the_other(
    setup: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    log = tmp_path_factory.mktemp("workers") / f"{setup}.log"
    with running_server(serve_command(setup, port, "--workers", "2"), port, log_path=log) as server:
        one, other = await clients_on_two_workers(server.base_url)
        try:
            first_worker, other_worker = await worker_of(one), await worker_of(other)
            full = (await read_stream(one, STREAM)).events
            assert await worker_of(one) == first_worker  # `first` is read on the same connection too
            first = (await read_stream(one, STREAM, max_events=1 + 20)).events  # then hang up
            rest = (await read_stream(other, STREAM, headers={"Last-Event-ID": first[-1].id or ""})).events
            assert await worker_of(other) == other_worker  # the resume was read on the same connection
        finally:
            await one.aclose()
            await other.aclose()
        assert first_worker != other_worker
        assert_resumed(first, rest, full)
