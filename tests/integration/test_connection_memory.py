"""What an open stream keeps alive, read inside a real Uvicorn server running in this process."""

from __future__ import annotations

import asyncio
import gc
import json
import types
from typing import Any

import httpx
import pytest
from quart import Quart, Request

from llmstream.sse_response import EventStreamResponse, hub_of

pytestmark = pytest.mark.timeout(60)


def live_requests() -> list[Request]:
    """The Request objects alive in this process."""
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Request)]


async def test_an_open_stream_does_not_keep_its_request(in_process_server: tuple[str, Quart]) -> None:
    # Regression: Quart's connection kept each request (headers, body, the body's two asyncio Events)
    # and response object referenced until the response ended: ~5 KiB held by every open stream for
    # its whole life.
    base_url, app = in_process_server
    body = {"messages": [{"role": "user", "content": "Take your time."}], "stream": True, "ttft_ms": 60_000}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("POST", "/api/chat", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        while await anext(lines) != "event: start":  # after the opening comment
            pass
        start = json.loads((await anext(lines)).removeprefix("data: "))
        assert len(hub_of(app).open) == 1, start
        # No coroutine of the connection holds it. (Quart's body read leaves one more, short-lived
        # holder: the cancelled 60 s timer of its `wait_for(body, BODY_TIMEOUT)` keeps the request's
        # context until asyncio purges cancelled timers, which it does once they are many.)
        holders = [ref for r in live_requests() for ref in gc.get_referrers(r)]
        assert not [h for h in holders if isinstance(h, types.CoroutineType | types.FrameType)]
        # Nor the response object: the stream took its status and headers.
        assert not [o for o in gc.get_objects() if isinstance(o, EventStreamResponse)]


async def test_an_open_stream_runs_in_one_task_on_the_default_server(
    in_process_server: tuple[str, Quart],
) -> None:
    # No receiver task beside the request's own (llmstream.lean_connection, `watch_disconnect`): 1.4 KiB
    # and six objects for the collector less per open stream. The client going still ends the stream.
    base_url, app = in_process_server
    body = {"messages": [{"role": "user", "content": "Take your time."}], "stream": True, "ttft_ms": 60_000}
    before = asyncio.all_tasks()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        async with client.stream("POST", "/api/chat", json=body) as response:
            lines = response.aiter_lines()
            while await anext(lines) != "event: start":
                pass
            added = sorted(task.get_coro().__qualname__ for task in asyncio.all_tasks() - before)  # type: ignore[union-attr]
            # Beside the hub's one watchdog for all streams, started with the first one:
            assert added == ["RequestResponseCycle.run_asgi", "StreamHub._watch"]
            stream = next(iter(hub_of(app).open))
        for _ in range(200):
            if not hub_of(app).open:
                break
            await asyncio.sleep(0.01)
    assert not hub_of(app).open
    assert stream.reason == "client_disconnected"


def awaited_frames(task: asyncio.Task[Any]) -> list[types.FrameType]:
    """The frames of ``task``'s coroutine and of each coroutine it awaits, outermost first."""
    frames = []
    awaited: Any = task.get_coro()
    while isinstance(awaited, types.CoroutineType):
        if awaited.cr_frame is not None:
            frames.append(awaited.cr_frame)
        awaited = awaited.cr_await
    return frames


async def test_an_idle_stream_keeps_none_of_the_bytes_it_has_written(
    in_process_server: tuple[str, Quart],
) -> None:
    # Regression: the writer kept its last batch (an idle stream's start event, and its list) in a
    # local while it waited for the next: 250 bytes for as long as the first token took.
    base_url, app = in_process_server
    body = {"messages": [{"role": "user", "content": "Take your time."}], "stream": True, "ttft_ms": 60_000}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("POST", "/api/chat", json=body) as response,
    ):
        lines = response.aiter_lines()
        while await anext(lines) != "event: start":
            pass
        await anext(lines)  # the start event's data: written
        stream = next(iter(hub_of(app).open))
        assert stream._task is not None
        # llmstream's own frames (Uvicorn's proxy-headers middleware keeps its last header's name and
        # value, which the request's scope holds anyway)
        frames = [f for f in awaited_frames(stream._task) if "/llmstream/" in f.f_code.co_filename]
        assert "_pump" in [frame.f_code.co_name for frame in frames]  # the writer, waiting
        held = [
            (frame.f_code.co_name, name)
            for frame in frames
            for name, value in frame.f_locals.items()
            if isinstance(value, bytes | bytearray)
            or (isinstance(value, list) and value and isinstance(value[0], bytes))
        ]
        assert held == []
