"""Uvicorn's httptools protocol made lighter (llmstream.lean_connection), on real sockets of 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from llmstream.lean_connection import LeanHttpToolsProtocol, body_read_at, watch_disconnect

WATCHED: list[str] = []  # what /watch saw: "gone" when its watch fired, "stopped" when it stopped it
READ_AT: list[tuple[float | None, float]] = []  # what /read-at saw: `body_read_at`, and the loop time


async def hold_until_released(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app: answers /hold with a chunked response's head, then waits for the client to go;
    /watch the same, learning of it from `watch_disconnect`, and /watch-then-end answers in full
    while watching; /watch-after-gone starts watching once its client has gone (and
    /watch-after-gone-stopped then stops the watch at once); /read-at records when its body was
    read; anything else with its path."""
    if scope["type"] != "http":
        return
    message = await receive()
    if scope["path"] == "/read-at":
        while message.get("more_body", False):
            message = await receive()
        READ_AT.append((body_read_at(receive), asyncio.get_running_loop().time()))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/hold":
        await send({"type": "http.response.body", "body": b"held\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    if scope["path"].startswith("/watch-after-gone"):
        await send({"type": "http.response.body", "body": b"held\n", "more_body": True})
        cycle = receive.__self__  # peeked at: the connection's request cycle knows the client is gone
        for _ in range(200):
            if cycle.disconnected:
                break
            await asyncio.sleep(0.01)
        gone = asyncio.Event()
        watch = watch_disconnect(receive, gone.set)
        assert watch is not None
        if scope["path"] == "/watch-after-gone-stopped":
            watch.stop()
        await asyncio.sleep(0.05)
        WATCHED.append("gone" if gone.is_set() else "not told")
        return
    if scope["path"].startswith("/watch"):
        gone = asyncio.Event()
        watch = watch_disconnect(receive, gone.set)
        assert watch is not None
        await send({"type": "http.response.body", "body": b"held\n", "more_body": True})
        if scope["path"] == "/watch":
            await gone.wait()
            WATCHED.append("gone")
            return
        await send({"type": "http.response.body", "body": b"ended\n"})
        await asyncio.sleep(0.05)
        WATCHED.append("gone" if gone.is_set() else "stopped")
        watch.stop()
        return
    await send({"type": "http.response.body", "body": scope["path"].encode()})


class Served:
    """A server on 127.0.0.1 speaking through ``protocol_class``, and the protocols it made."""

    def __init__(self, protocol_class: type[HttpToolsProtocol]) -> None:
        self.config = uvicorn.Config(hold_until_released, http=protocol_class, log_level="warning")
        self.config.load()
        self.state = ServerState()
        self.made: list[HttpToolsProtocol] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def _protocol(self) -> HttpToolsProtocol:
        protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.state, app_state={}
        )
        self.made.append(protocol)
        return protocol  # type: ignore[no-any-return]

    async def __aenter__(self) -> Served:
        self._server = await asyncio.get_running_loop().create_server(self._protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self.state.tasks):
            task.cancel()
        await asyncio.gather(*self.state.tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with Served(LeanHttpToolsProtocol) as running:
        yield running


async def request(port: int, raw: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    return reader, writer


async def until(condition: Any, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within 2 s: {what}")


async def test_a_lost_connection_s_transport_is_freed_without_the_cycle_collector(
    served: Served, collector_off: None
) -> None:
    # Regression: on Python 3.11 a selector transport stays in a cycle with its bound read callback
    # (python/cpython#100348), so every closed connection waited for a full collection.
    reader, writer = await request(served.port, b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"held" in await reader.readuntil(b"held\n")
    transport = weakref.ref(served.made.pop().transport)  # the test keeps no protocol
    writer.close()
    await writer.wait_closed()
    await until(lambda: not served.state.connections, "the server sees the connection lost")
    await until(lambda: not served.state.tasks, "the request's task ends")
    await asyncio.sleep(0.05)  # the loop's own handles on the transport run out
    assert transport() is None, gc.get_referrers(transport())


async def test_an_open_stream_s_connection_holds_no_empty_deque(served: Served) -> None:
    reader, writer = await request(served.port, b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"held\n")
    protocol = served.made[0]
    # Each empty deque is 760 bytes (its first block of 64 slots): three per connection in Uvicorn's.
    held: dict[str, object] = {
        "pipeline": protocol.pipeline,
        "flow control's event": protocol.flow._is_writable_event._waiters,  # type: ignore[attr-defined]
        "request's event": protocol.cycle.message_event._waiters,  # type: ignore[attr-defined]
    }
    assert {name: type(value).__name__ for name, value in held.items() if isinstance(value, deque)} == {}
    writer.close()
    await writer.wait_closed()


async def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    # Parsed together, the second and third wait in Uvicorn's pipeline (here a list: appendleft, pop)
    # while the first is answered.
    paths = [b"/one", b"/two", b"/three"]
    raw = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path for path in paths)
    reader, writer = await request(served.port, raw)
    answered = []
    for _ in paths:
        await reader.readuntil(b"\r\n\r\n")
        size = int(await reader.readuntil(b"\r\n"), 16)
        answered.append(await reader.readexactly(size))
        await reader.readuntil(b"0\r\n\r\n")
    assert answered == paths
    writer.close()
    await writer.wait_closed()


async def test_a_send_waiting_for_flow_control_goes_on_once_writing_resumes(served: Served) -> None:
    # Flow control's Event, with its waiters in a list: a send waits while the transport's buffer is
    # past its limit (asyncio calls pause_writing) and goes on once it drains (resume_writing).
    reader, writer = await request(served.port, b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"held\n")
    protocol = served.made[0]
    protocol.flow.pause_writing()
    drained = asyncio.ensure_future(protocol.flow.drain())
    await asyncio.sleep(0.05)
    assert not drained.done()
    protocol.flow.resume_writing()
    await asyncio.wait_for(drained, 2)
    writer.close()
    await writer.wait_closed()


async def test_a_client_gone_mid_response_is_told_with_no_task_awaiting_receive(served: Served) -> None:
    WATCHED.clear()
    reader, writer = await request(served.port, b"GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"held\n")
    assert WATCHED == []
    writer.close()
    await writer.wait_closed()
    await until(lambda: WATCHED == ["gone"], "the watch tells the app its client is gone")


async def test_a_complete_response_is_no_client_gone(served: Served) -> None:
    WATCHED.clear()
    reader, writer = await request(served.port, b"GET /watch-then-end HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"ended\n")
    await until(lambda: WATCHED != [], "the app ends")
    assert WATCHED == ["stopped"]
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    ("path", "seen"), [("/watch-after-gone", "gone"), ("/watch-after-gone-stopped", "not told")]
)
async def test_a_watch_begun_after_the_client_went_tells_of_it_unless_stopped_first(
    served: Served, path: str, seen: str
) -> None:
    # Such a watch is called soon after it begins. Regression (the stopped case): stopped in between,
    # it still told the client gone (the stopped watch had left the Event, but was scheduled already).
    WATCHED.clear()
    reader, writer = await request(served.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    await reader.readuntil(b"held\n")
    writer.close()
    await writer.wait_closed()
    await until(lambda: WATCHED != [], "the app ends")
    assert list(WATCHED) == [seen]


def test_a_receive_that_is_not_a_lean_connection_s_is_not_watched() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert watch_disconnect(receive, lambda: None) is None


async def test_a_new_connection_s_request_is_read_when_the_connection_is_made(served: Served) -> None:
    # The request is in the socket before the transport exists (as a new connection's nearly always
    # is): it is read and parsed in `connection_made`, not one loop iteration later.
    server_end, client_end = socket.socketpair()
    with client_end:
        client_end.sendall(b"GET /made HTTP/1.1\r\nHost: x\r\n\r\n")
        server_end.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_accepted_socket(served._protocol, server_end)
        try:
            assert protocol.cycle is not None  # type: ignore[attr-defined]
            client_end.settimeout(2)
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):
                chunk = await asyncio.to_thread(client_end.recv, 65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert answer.endswith(b"/made\r\n0\r\n\r\n")
        finally:
            transport.close()


async def test_a_request_s_read_time_is_when_its_last_byte_was_read(served: Served) -> None:
    READ_AT.clear()
    head = b"POST /read-at HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n"
    reader, writer = await request(served.port, head + b"part")
    await asyncio.sleep(0.1)
    last_part_sent = asyncio.get_running_loop().time()
    writer.write(b"two!")
    await reader.readuntil(b"0\r\n\r\n")
    [(read_at, app_saw_it_at)] = READ_AT
    assert read_at is not None
    assert last_part_sent <= read_at <= app_saw_it_at
    writer.close()
    await writer.wait_closed()


def test_a_receive_that_is_not_a_lean_connection_s_has_no_read_time() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert body_read_at(receive) is None
