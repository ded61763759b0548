"""The native API's options over a real socket (pacing, timestamps, faults), and how each of the three
APIs ends a stream that the engine closes early (shutdown, maximum duration, no room)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmstream import ServerSentEvent, SSEDecoder
from tests.integration.conftest import serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server
from tests.integration.sse_client import StreamRead, read_stream

STREAM = "/api/chat/stream?prompt=Tell+me+about+pacing"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("native") / "server.log"
    with running_server(serve_command("uvicorn", port), port, log_path=log) as running:
        yield running


def data(event: ServerSentEvent) -> Any:
    return json.loads(event.data or "")


def metric(server: RunningServer, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def read(server: RunningServer, url: str, **options: Any) -> StreamRead:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        return await read_stream(client, url, **options)


async def test_tokens_keep_an_absolute_schedule(server: RunningServer) -> None:
    # 300 ms to the first token, then one every 50 ms exactly (no jitter): due at 0.30, 0.35 ... 0.75 s.
    started = time.monotonic()
    result = await read(server, f"{STREAM}&model=slow&ttft_ms=300&tokens_per_s=20&jitter=0&max_tokens=10")
    arrivals = [
        t - started for t, e in zip(result.arrivals, result.events, strict=True) if e.event == "token"
    ]
    assert len(arrivals) == 10
    # Each token against its own due time, never against its neighbour: on the absolute schedule a token
    # a busy machine delays shortens the next gap, so gaps between arrivals bounded both ways failed in
    # CI-like load without anything being wrong. Never early (the schedule counts from when the server
    # read the request, after `started`), and never late by more than a loaded machine's pause.
    due = [0.30 + 0.05 * k for k in range(10)]
    assert all(d - 0.005 <= a < d + 0.25 for d, a in zip(due, arrivals, strict=True)), arrivals


async def test_timestamps_give_each_token_its_send_time(server: RunningServer) -> None:
    before = time.time()
    result = await read(server, f"{STREAM}&model=fast&ttft_ms=0&tokens_per_s=200&timestamps=1&max_tokens=20")
    times = [data(e)["t"] for e in result.of_type("token")]
    assert len(times) == 20
    assert times == sorted(times)
    assert before <= times[0]
    assert times[-1] <= time.time()
    assert times[-1] - times[0] >= 19 / 200 * 0.5  # paced, so sent over time
    plain = await read(server, f"{STREAM}&model=instant&max_tokens=3")
    assert all("t" not in data(e) for e in plain.of_type("token"))


async def test_a_stall_and_a_slow_first_token(server: RunningServer) -> None:
    started = time.monotonic()
    result = await read(
        server,
        f"{STREAM}&model=instant&max_tokens=6",
        headers={"X-LLMStream-Fault": "slow_first_token:300,stall:3:400"},
    )
    tokens = [t - started for t, e in zip(result.arrivals, result.events, strict=True) if e.event == "token"]
    assert tokens[0] >= 0.3
    # The stall moves token 3 (and the rest) 0.4 s later on the absolute schedule: due at 0.7 s. A gap
    # between arrivals would be wrong to test: a late token 2 (a busy machine) shortens it.
    assert tokens[3] >= 0.3 + 0.4
    assert tokens[2] - tokens[0] < 0.1
    assert tokens[5] - tokens[3] < 0.1
    assert result.events[-1].event == "finish"


async def test_a_fault_field_wins_over_the_header(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post(
            "/api/chat",
            json={"prompt": "hi", "model": "instant", "faults": "unavailable"},
            headers={"X-LLMStream-Fault": "rate_limit"},
        )
    assert response.status_code == 503


async def test_http_faults_answer_before_any_stream(server: RunningServer) -> None:
    before = metric(server, 'llmstream_faults_injected_total{kind="rate_limit"}')
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.get(f"{STREAM}&faults=rate_limit")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["retry-after-ms"] == "1000"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "type": "rate_limit",
            "message": "Rate limit reached for requests (simulated fault). Please try again in 1s.",
        }
    }
    assert metric(server, 'llmstream_faults_injected_total{kind="rate_limit"}') == before + 1


async def test_mid_stream_faults_end_streams_each_their_way(server: RunningServer) -> None:
    error = await read(server, f"{STREAM}&model=instant&faults=error_after:2")
    assert [e.event for e in error.events] == ["start", "token", "token", "error"]
    assert data(error.events[-1]) == {
        "code": "server_error",
        "message": "The model failed after 2 tokens (simulated fault error_after:2).",
    }
    truncated = await read(server, f"{STREAM}&model=instant&faults=truncate_after:2")
    assert [e.event for e in truncated.events] == ["start", "token", "token"]
    # A non-streaming answer fails as a whole, at the time the fault would strike.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post(
            "/api/chat", json={"prompt": "hi", "model": "instant", "stream": False, "faults": "reset_after:2"}
        )
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "type": "server_error",
            "message": "The model failed after 2 tokens (simulated fault reset_after:2).",
        }
    }


async def test_fault_rate_is_deterministic_per_seed(server: RunningServer) -> None:
    async def outcome(seed: int) -> int:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            body = {"prompt": "hi", "model": "instant", "stream": False, "seed": seed}
            headers = {"X-LLMStream-Fault-Rate": "0.5", "X-LLMStream-Fault-Pool": "rate_limit"}
            return (await client.post("/api/chat", json=body, headers=headers)).status_code

    first = [await outcome(seed) for seed in range(12)]
    assert set(first) == {200, 429}  # about half fail ...
    assert [await outcome(seed) for seed in range(12)] == first  # ... and always the same ones


async def test_models_openapi_and_the_api_page(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        models = (await client.get("/api/models")).json()["models"]
        document = (await client.get("/openapi.json")).json()
        page = await client.get("/docs/api")
        index = (await client.get("/")).text
    assert [m["id"] for m in models] == ["instant", "fast", "typical", "slow", "reasoning", "echo"]
    assert document["openapi"] == "3.1.0"
    assert {"/api/chat", "/v1/chat/completions", "/v1/messages"} <= set(document["paths"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<code>POST /v1/messages</code>" in page.text
    assert 'href="/docs/api"' in index


# ---- streams that the engine ends early, in each API's terms -----------------------------------------

SLOW = {"ttft_ms": 0, "tokens_per_s": 5}  # a token every 200 ms: still streaming when the engine acts
OPENING = {
    "native": ("GET", "/api/chat/stream?prompt=hi&model=slow&ttft_ms=0&tokens_per_s=5", None),
    "openai": (
        "POST",
        "/v1/chat/completions",
        {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}], "llmstream": SLOW},
    ),
    "anthropic": (
        "POST",
        "/v1/messages",
        {
            "model": "slow",
            "stream": True,
            "max_tokens": 500,
            "messages": [{"role": "user", "content": "hi"}],
            "llmstream": SLOW,
        },
    ),
}


async def read_api_stream(
    base_url: str, api: str, first_token: asyncio.Event | None = None
) -> tuple[list[ServerSentEvent], bytes]:
    method, path, body = OPENING[api]
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    raw = bytearray()
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
        client.stream(method, path, json=body) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            raw += chunk
            events += decoder.feed(chunk)
            if first_token is not None and any(e.id for e in events):
                first_token.set()
    return events + decoder.flush(), bytes(raw)


def final_retry(raw: bytes) -> int | None:
    """The `retry:` field of the stream's last event, if it has one (fields: event, id, retry, data)."""
    match = re.search(rb"\n\n(?:event: \w+\n)?(?:retry: (\d+)\n)?data: [^\n]*\n\n$", raw)
    assert match, raw[-300:]
    return None if match.group(1) is None else int(match.group(1))


def final_error(api: str, events: list[ServerSentEvent]) -> tuple[dict[str, Any], ServerSentEvent]:
    last = events[-1]
    payload = json.loads(last.data or "")
    if api == "native":
        assert last.event == "error"
        return {"code": payload["code"], "message": payload["message"]}, last
    if api == "openai":
        assert last.event == "message"  # unnamed: a data event holding "error"
        return payload["error"], last
    assert last.event == "error"
    assert payload["type"] == "error"
    return payload["error"], last


def api_server(tmp_path: Path, *flags: str) -> Any:
    port = free_port()
    return running_server(serve_command("uvicorn", port, *flags), port, log_path=tmp_path / "server.log")


@pytest.mark.slow  # a server of its own, shut down
async def test_shutdown_ends_each_api_with_its_error_event_and_a_retry(tmp_path: Path) -> None:
    with api_server(tmp_path, "--max-streams", "3", "--retry-ms", "2000") as running:
        started = {api: asyncio.Event() for api in OPENING}
        tasks = {
            api: asyncio.create_task(read_api_stream(running.base_url, api, started[api])) for api in OPENING
        }
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started.values())), 10)
        # The three streams fill the server: a fourth is refused at once, in its API's shape.
        async with httpx.AsyncClient(base_url=running.base_url, timeout=10) as client:
            refused = await client.post("/v1/messages", json=OPENING["anthropic"][2])
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "type": "error",
            "error": {"type": "api_error", "message": "too many open streams (at most 3)"},
        }
        running.process.send_signal(signal.SIGTERM)
        results = {api: await asyncio.wait_for(task, 10) for api, task in tasks.items()}
    for api, (events, raw) in results.items():
        error, _ = final_error(api, events)
        assert error["message"].startswith("The server is shutting down. Reconnect in "), (api, error)
        retry = final_retry(raw)
        assert retry is not None, api
        assert 1000 <= retry <= 3000, (api, retry)  # jittered around 2000
        assert f"Reconnect in {retry} ms" in error["message"]
    assert final_error("openai", results["openai"][0])[0]["type"] == "server_error"
    assert final_error("anthropic", results["anthropic"][0])[0]["type"] == "api_error"
    assert final_error("native", results["native"][0])[0]["code"] == "unavailable"


@pytest.mark.slow  # a server of its own, and streams that last until their maximum duration
async def test_max_duration_ends_each_api_with_its_error_event(tmp_path: Path) -> None:
    with api_server(tmp_path, "--max-duration", "0.6") as running:
        results = await asyncio.gather(*(read_api_stream(running.base_url, api) for api in OPENING))
    for api, (events, raw) in zip(OPENING, results, strict=True):
        error, _ = final_error(api, events)
        assert error["message"] == "The stream reached this server's maximum stream duration.", api
        assert final_retry(raw) is None
        assert sum(1 for e in events if e.id) >= 2, api  # tokens came first
