"""asyncio setting up each accepted connection in the accept's loop iteration (llmstream.eager_accept),
on real sockets."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import resource
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from llmstream import eager_accept, servers
from llmstream.app import create_app
from llmstream.eager_accept import EagerAcceptLoop
from llmstream.servers import bind_socket

WAITING = 50
CONNECTION: contextvars.ContextVar[int] = contextvars.ContextVar("connection")


class Echo(asyncio.Protocol):
    """Adds its transport to `made`; echoes what it reads (a working transport)."""

    def __init__(self, made: list[asyncio.Transport]) -> None:
        self.made = made
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def close_all(transports: list[asyncio.Transport]) -> None:
    """Close `transports`, and let the loop run their closing (it closes the sockets)."""
    for transport in transports:
        transport.close()
    await asyncio.sleep(0.01)


class IterationCounter:
    """Counts loop iterations: a callback that schedules itself again runs once in each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.count, self.running = loop, 0, True
        loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self.running:
            self.loop.call_soon(self._tick)


def counting_accepts(base: type[asyncio.SelectorEventLoop]) -> type[asyncio.SelectorEventLoop]:
    """`base`, recording the iteration in which the listening socket's connections are accepted."""

    class Counting(base):  # type: ignore[valid-type,misc]
        counter: IterationCounter
        accepted_in: list[int]

        def _accept_connection(self, *args: Any) -> None:
            self.accepted_in.append(self.counter.count)
            super()._accept_connection(*args)

    return Counting


def accept_and_made_iterations(base: type[asyncio.SelectorEventLoop], waiting: int) -> tuple[int, list[int]]:
    """With `waiting` connections queued before it serves, a server on a `base` loop: the iteration
    of its first accept, and the iterations in which each connection was made."""
    loop = counting_accepts(base)()
    listener = bind_socket("127.0.0.1", 0)
    clients = [socket.create_connection(listener.getsockname()[:2]) for _ in range(waiting)]
    made_in: list[int] = []

    class Recording(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made_in.append(loop.counter.count)
            transport.close()

    async def main() -> None:
        loop.counter, loop.accepted_in = IterationCounter(loop), []
        server = await loop.create_server(Recording, sock=listener, backlog=2048)
        for _ in range(1_000):  # bounded
            if len(made_in) == waiting:
                break
            await asyncio.sleep(0)
        loop.counter.running = False
        server.close()
        await asyncio.sleep(0.01)  # the transports' closing

    try:
        loop.run_until_complete(main())
    finally:
        for client in clients:
            client.close()
        loop.close()
    assert len(made_in) == waiting
    return loop.accepted_in[0], made_in


def test_a_connection_is_made_in_the_iteration_after_its_accept_one_sooner_than_asyncio_s() -> None:
    # asyncio sets a connection up in a task that first runs in the next iteration, and its transport
    # calls connection_made in the one after; each iteration under load takes milliseconds, waited
    # before a paced stream's first token.
    accepted, made = accept_and_made_iterations(asyncio.SelectorEventLoop, 1)
    assert made == [accepted + 2]
    accepted, made = accept_and_made_iterations(EagerAcceptLoop, 1)
    assert made == [accepted + 1]


def test_every_waiting_connection_is_made_in_the_iteration_after_the_first_accept() -> None:
    accepted, made = accept_and_made_iterations(EagerAcceptLoop, WAITING)
    assert made == [accepted + 1] * WAITING


@pytest.fixture
def loop() -> Iterator[EagerAcceptLoop]:
    loop = EagerAcceptLoop()
    yield loop
    loop.close()


def serve_until(
    loop: EagerAcceptLoop,
    protocol_factory: Callable[[], asyncio.Protocol],
    listener: socket.socket,
    done: Callable[[], bool],
    **options: Any,
) -> None:
    """Serve `listener` until `done()`, checked once an iteration (at most 1,000 of them, each at most
    10 ms), then close the server."""

    async def main() -> None:
        server = await loop.create_server(protocol_factory, sock=listener, **options)
        for _ in range(1_000):
            if done():
                break
            await asyncio.sleep(0.01)
        # Not wait_closed(): from Python 3.12 on it waits for the server's connections to close too.
        server.close()

    loop.run_until_complete(main())


def test_each_connection_is_set_up_in_a_context_of_its_own(loop: EagerAcceptLoop) -> None:
    # As asyncio's task per connection gives it: the listening socket's reader runs every accept in
    # one shared context, and a protocol that sets a context variable must not leak it to the next.
    listener = bind_socket("127.0.0.1", 0)
    clients = [socket.create_connection(listener.getsockname()[:2]) for _ in range(3)]
    seen: list[int | None] = []
    made: list[asyncio.Transport] = []

    def factory() -> asyncio.Protocol:
        seen.append(CONNECTION.get(None))
        CONNECTION.set(len(seen))
        return Echo(made)

    try:
        serve_until(loop, factory, listener, lambda: len(made) == 3)
    finally:
        for client in clients:
            client.close()
        loop.run_until_complete(close_all(made))
    assert seen == [None, None, None]


def test_an_accepted_connection_is_asyncio_s_socket_transport_and_works(loop: EagerAcceptLoop) -> None:
    # asyncio's own transport: llmstream.lean_connection reads a new connection's request at once
    # through it, and it counts itself in the server's connections (Server._attach).
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.Transport] = []
    echoed = bytearray()

    async def main() -> None:
        server = await loop.create_server(lambda: Echo(made), sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        writer.write(b"ping")
        echoed.extend(await asyncio.wait_for(reader.readexactly(4), 5))
        assert made[0].get_extra_info("peername") == writer.get_extra_info("sockname")
        assert server._active_count == 1  # type: ignore[attr-defined]  # what wait_closed() waits for
        writer.close()
        await writer.wait_closed()
        server.close()
        await close_all(made)

    loop.run_until_complete(main())
    assert echoed == b"ping"
    assert type(made[0]).__name__ == "_SelectorSocketTransport"


def test_a_connection_whose_protocol_cannot_be_made_is_closed_and_the_next_is_served(
    loop: EagerAcceptLoop, caplog: pytest.LogCaptureFixture
) -> None:
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.Transport] = []
    attempts: list[int] = []

    def factory() -> asyncio.Protocol:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no protocol for you")
        return Echo(made)

    first = socket.create_connection(listener.getsockname()[:2], timeout=5)
    second = socket.create_connection(listener.getsockname()[:2], timeout=5)
    try:
        with caplog.at_level(logging.ERROR, logger="llmstream.server"):
            serve_until(loop, factory, listener, lambda: len(made) == 1)
        assert first.recv(1) == b""  # closed at once: no one will serve it
        second.sendall(b"pong")
        # The server is closed now, but its connections stay: the echo still answers.
        loop.run_until_complete(asyncio.sleep(0.05))
        assert second.recv(4) == b"pong"
    finally:
        first.close()
        second.close()
        loop.run_until_complete(close_all(made))
    assert "could not set up an accepted connection" in caplog.text
    assert "no protocol for you" in caplog.text


def test_out_of_descriptors_it_pauses_accepting_and_then_accepts_the_waiting_connection(
    loop: EagerAcceptLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing is lost: the connection waits in the kernel's queue while the process has no descriptor
    # to take it with, and is accepted once one is free.
    monkeypatch.setattr(eager_accept, "ACCEPT_RETRY_DELAY", 0.05)
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.Transport] = []
    errors: list[dict[str, Any]] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)

    async def main() -> None:
        loop.set_exception_handler(lambda _, context: errors.append(context))
        server = await loop.create_server(lambda: Echo(made), sock=listener, start_serving=False)
        # No descriptor left: every number up to the limit is taken, by dup()s of the listener.
        spare: list[socket.socket] = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(listener.fileno(), client.fileno()) + 64, hard))
        try:
            for _ in range(128):  # bounded: the limit is at most 64 above
                try:
                    spare.append(listener.dup())
                except OSError:
                    break
            await server.start_serving()
            for _ in range(100):  # bounded: up to 1 s
                if errors:
                    break
                await asyncio.sleep(0.01)
        finally:
            for sock in spare:
                sock.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for _ in range(100):  # bounded: up to 1 s, the retry is due after 0.05 s
            if made:
                break
            await asyncio.sleep(0.01)
        server.close()

    try:
        loop.run_until_complete(main())
        assert errors
        assert errors[0]["message"] == "socket.accept() out of system resource"
        assert len(made) == 1
        client.sendall(b"back")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert client.recv(4) == b"back"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        client.close()
        loop.run_until_complete(close_all(made))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_a_tls_connection_keeps_asyncio_s_own_handshake_path(
    loop: EagerAcceptLoop, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    listener = bind_socket("127.0.0.1", 0)
    made: list[asyncio.Transport] = []
    echoed = bytearray()

    async def main() -> None:
        server = await loop.create_server(lambda: Echo(made), sock=listener, ssl=server_context)
        reader, writer = await asyncio.open_connection(
            *listener.getsockname()[:2], ssl=client_context, server_hostname="localhost"
        )
        writer.write(b"tls!")
        echoed.extend(await asyncio.wait_for(reader.readexactly(4), 5))
        assert made[0].get_extra_info("ssl_object") is not None
        writer.close()
        server.close()
        await close_all(made)
        await writer.wait_closed()

    loop.run_until_complete(main())
    assert echoed == b"tls!"


def test_llmstream_serve_with_asyncio_runs_the_eager_accepting_loop() -> None:
    # On Hypercorn through asyncio.Runner's loop factory, on Uvicorn through its `loop` setting (an
    # import string is taken as the loop factory itself).
    hypercorn_loop = servers._loop_factory("asyncio")
    assert hypercorn_loop is not None
    uvicorn_loop = uvicorn.Config(create_app(), loop=servers._UVICORN_LOOPS["asyncio"]).get_loop_factory()
    assert uvicorn_loop is not None
    for factory in (hypercorn_loop, uvicorn_loop):
        made = factory()
        try:
            assert isinstance(made, EagerAcceptLoop)
        finally:
            made.close()
