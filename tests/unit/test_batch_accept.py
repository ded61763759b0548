"""uvloop accepting every waiting connection at once (llmstream.batch_accept), on real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import uvicorn

from llmstream import servers
from llmstream.app import create_app
from llmstream.batch_accept import BatchAcceptLoop, BatchAcceptServer
from llmstream.servers import bind_socket

WAITING = 50


class Counted(asyncio.Protocol):
    """Adds its transport to `made`; echoes what it reads (a working transport)."""

    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self.made = made
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


@pytest.fixture
def loop() -> Iterator[BatchAcceptLoop]:
    loop = BatchAcceptLoop()
    yield loop
    loop.close()


def connect_waiting(address: tuple[str, int], count: int) -> list[socket.socket]:
    """`count` connections that the kernel completed and queued on the listening socket."""
    return [socket.create_connection(address) for _ in range(count)]


def test_uvloop_accepts_every_waiting_connection_within_a_few_loop_iterations(
    loop: BatchAcceptLoop,
) -> None:
    # Regression: uvloop (libuv >= 1.45, libuv/libuv#3696) accepts one connection per loop iteration.
    # Under load an iteration lasts milliseconds, so new streams waited seconds in the accept queue
    # (2,000 paced streams: 216 connections queued, first tokens up to 1.8 s late).
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.BaseTransport] = []
    clients = connect_waiting(listener.getsockname()[:2], WAITING)
    iterations = 0

    async def main() -> None:
        nonlocal iterations
        server = await loop.create_server(lambda: Counted(made), sock=listener, backlog=2048)
        assert isinstance(server, BatchAcceptServer)
        while len(made) < WAITING and iterations < 1_000:  # bounded: 1,000 would be a failure anyway
            iterations += 1
            await asyncio.sleep(0)  # one loop iteration: its I/O, then the ready callbacks
        server.close()
        await server.wait_closed()
        for transport in made:
            transport.close()

    try:
        loop.run_until_complete(main())
    finally:
        for client in clients:
            client.close()
    assert len(made) == WAITING
    # Accepted in one go: one iteration for the accepts, one or two to set the transports up. One
    # accept per iteration would take at least WAITING iterations.
    assert iterations <= 5, iterations


def test_an_accepted_connection_is_a_working_uvloop_transport(loop: BatchAcceptLoop) -> None:
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.BaseTransport] = []

    async def main() -> bytes:
        server = await loop.create_server(lambda: Counted(made), sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        writer.write(b"ping")
        echoed = await asyncio.wait_for(reader.readexactly(4), 5)
        writer.close()
        server.close()
        await server.wait_closed()
        return echoed

    assert loop.run_until_complete(main()) == b"ping"
    assert type(made[0]).__module__.startswith("uvloop")


def test_closing_the_server_stops_accepting_and_closes_the_listening_socket(loop: BatchAcceptLoop) -> None:
    listener = bind_socket("127.0.0.1", 0)
    address = listener.getsockname()[:2]

    async def main() -> None:
        server = await loop.create_server(asyncio.Protocol, sock=listener)
        assert server.is_serving()
        assert server.sockets == (listener,)
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        assert server.sockets == ()

    loop.run_until_complete(main())
    assert listener.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)


def test_a_server_on_a_host_and_port_is_uvloops_own(loop: BatchAcceptLoop) -> None:
    async def main() -> None:
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        assert not isinstance(server, BatchAcceptServer)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_a_socket_that_is_only_bound_is_made_to_listen(loop: BatchAcceptLoop) -> None:
    # As asyncio's and uvloop's servers do (Hypercorn's own host:port sockets come bound, not listening).
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    made: list[asyncio.BaseTransport] = []

    async def main() -> None:
        server = await loop.create_server(lambda: Counted(made), sock=bound)
        _, writer = await asyncio.open_connection(*bound.getsockname()[:2])
        for _ in range(1_000):  # bounded
            if made:
                break
            await asyncio.sleep(0.001)
        writer.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert len(made) == 1


def test_llmstream_serve_with_uvloop_runs_the_batch_accepting_loop() -> None:
    # On Hypercorn through asyncio.Runner's loop factory, on Uvicorn through its `loop` setting (an
    # import string is taken as the loop factory itself).
    hypercorn_loop = servers._loop_factory("uvloop")
    assert hypercorn_loop is not None
    uvicorn_loop = uvicorn.Config(create_app(), loop=servers._UVICORN_LOOPS["uvloop"]).get_loop_factory()
    assert uvicorn_loop is not None
    for factory in (hypercorn_loop, uvicorn_loop):
        made = factory()
        try:
            assert isinstance(made, BatchAcceptLoop)
        finally:
            made.close()
