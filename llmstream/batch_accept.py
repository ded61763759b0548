"""uvloop, accepting every waiting connection when the listening socket is ready, as asyncio does.

Since libuv 1.45 (libuv/libuv#3696, "unix: don't accept() connections in a loop"), uvloop's servers
accept one connection per loop iteration and leave the rest for the next. A loop that serves thousands
of paced streams has iterations of several milliseconds (llmstream.scheduler's tick budget is 5 ms), so
it accepted at most ~150 connections a second: measured with 2,000 paced streams opening at 250 a
second on one core, the listening socket's queue grew to 216 connections and new streams waited up to
1.8 s for their first token. asyncio accepts up to `backlog` connections each time the socket is ready
(asyncio/selector_events.py `_accept_connection`, bpo-27906) and showed none of this.

`BatchAcceptLoop` is uvloop's loop with `create_server(sock=...)` (how Uvicorn and Hypercorn serve a
socket they were given, as llmstream's always are) accepting the same way: a reader on the listening
socket accepts until the queue is empty or `backlog` connections were taken, and hands each to uvloop
with `connect_accepted_socket`, which gives it uvloop's own transport. Everything else is uvloop's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

from llmstream.accepting import ACCEPT_RETRY_DELAY, accept_waiting, out_of_descriptors

__all__ = ["BatchAcceptLoop", "BatchAcceptServer", "new_event_loop"]

logger = logging.getLogger("llmstream.server")


class BatchAcceptLoop(uvloop.Loop):
    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        ssl: Any = None,
        backlog: int = 100,
        **options: Any,
    ) -> Any:
        """A server on `sock` that accepts in batches; anything else (TLS, a host and port to bind) is
        uvloop's own server."""
        if sock is None or ssl is not None or options.get("start_serving") is False:
            return await super().create_server(
                protocol_factory, host, port, sock=sock, ssl=ssl, backlog=backlog, **options
            )
        server = BatchAcceptServer(self, sock, protocol_factory, backlog)
        server.start()
        return server


def new_event_loop() -> BatchAcceptLoop:
    """The loop factory: for asyncio.Runner, and for Uvicorn's `loop` setting as
    "llmstream.batch_accept:new_event_loop" (an import string is taken as the factory, Uvicorn 0.36+)."""
    return BatchAcceptLoop()


class BatchAcceptServer:
    """What Uvicorn and Hypercorn use of an `asyncio.Server`: `close`, `wait_closed`, `sockets`,
    `is_serving`. Closing stops accepting and closes the listening socket; connections already
    accepted are the server's (Uvicorn and Hypercorn wait for them themselves)."""

    def __init__(
        self,
        loop: BatchAcceptLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int,
    ) -> None:
        self._loop, self._sock, self._protocol_factory = loop, sock, protocol_factory
        self._backlog = max(1, backlog)
        # As asyncio's and uvloop's servers do: a socket that is only bound would refuse connections
        # and leave the reader spinning on EINVAL; on one that listens already it sets the queue length.
        sock.listen(self._backlog)
        self._serving = False
        self._retry: asyncio.TimerHandle | None = None
        self._handing_over: set[asyncio.Task[Any]] = set()  # connect_accepted_socket in progress

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock.fileno() == -1 else (self._sock,)

    def is_serving(self) -> bool:
        return self._serving

    def start(self) -> None:
        self._retry = None
        if self._sock.fileno() == -1:
            return
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept)
        self._serving = True

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._handing_over:
            await asyncio.wait(list(self._handing_over))

    def _accept(self) -> None:
        try:
            for conn, _ in accept_waiting(self._sock, self._backlog):
                self._hand_over(conn)
        except OSError as exc:
            if not out_of_descriptors(exc):
                raise  # the loop logs it and calls us again on the next readiness
            logger.error("accept() failed: %s; accepting again in %.0f s", exc, ACCEPT_RETRY_DELAY)
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False
            self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self.start)

    def _hand_over(self, conn: socket.socket) -> None:
        task = self._loop.create_task(self._connect(conn))
        self._handing_over.add(task)
        task.add_done_callback(self._handing_over.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except Exception:
            logger.exception("could not set up an accepted connection")
            conn.close()
