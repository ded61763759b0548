"""asyncio's selector loop, setting up each accepted connection in the loop iteration that accepted it.

asyncio's server accepts every waiting connection when the listening socket is ready (bpo-27906), but
sets each one up in a task of its own (asyncio/selector_events.py `_accept_connection`, which
creates a task for `_accept_connection2`). The task first runs one loop iteration later; the transport
it makes calls the protocol's `connection_made` one iteration after that, and only then is the request
read. Under load an iteration takes milliseconds (llmstream.scheduler's tick budget is 5 ms), and every
one of them is waited before a paced stream's first token, then carried in each of its tokens.

`EagerAcceptLoop` makes the transport at once, in the accept's iteration, with no task: `connection_made`
runs in the next iteration, one iteration earlier than asyncio's. Everything else is asyncio's: the
same `Server` (the transport still attaches to it, so closing and waiting for connections are
unchanged), the same transport, the same pause in accepting when the process runs out of descriptors
(reported once per pause). TLS connections keep asyncio's path: their handshake needs the task. A
connection that cannot be set up is closed at once and logged (asyncio, as of 3.11.7, reports it only
in debug mode, and its socket closes when it is collected).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from collections.abc import Callable
from typing import Any

from llmstream.accepting import ACCEPT_RETRY_DELAY, accept_waiting, out_of_descriptors

__all__ = ["EagerAcceptLoop", "new_event_loop"]

logger = logging.getLogger("llmstream.server")


class EagerAcceptLoop(asyncio.SelectorEventLoop):
    # asyncio calls this with the listening socket's reader; the signature is the one of Python 3.11 to
    # 3.13 (asyncio/selector_events.py), and anything after `backlog` is passed through unchanged.
    def _accept_connection(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *timeouts: Any,
    ) -> None:
        if sslcontext is not None:
            super()._accept_connection(  # type: ignore[misc]
                protocol_factory, sock, sslcontext, server, backlog, *timeouts
            )
            return
        try:
            for conn, addr in accept_waiting(sock, backlog):
                # In a context of its own, as asyncio's task would give it: the listening socket's
                # reader runs every accept in one shared context.
                contextvars.copy_context().run(self._set_up, protocol_factory, conn, addr, server)
        except OSError as exc:
            if not out_of_descriptors(exc):
                raise  # the loop logs it and calls us again on the next readiness
            # As asyncio does: report it, stop listening a while, then serve again.
            self.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": exc}
            )
            self._remove_reader(sock.fileno())  # type: ignore[attr-defined]
            self.call_later(
                ACCEPT_RETRY_DELAY,
                self._start_serving,  # type: ignore[attr-defined]
                protocol_factory, sock, sslcontext, server, backlog, *timeouts,
            )  # fmt: skip

    def _set_up(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        conn: socket.socket,
        addr: Any,
        server: Any,
    ) -> None:
        """What asyncio's `_accept_connection2` does for a plain connection, without the task: no one
        awaits the transport's waiter, so none is made."""
        try:
            protocol = protocol_factory()
            self._make_socket_transport(  # type: ignore[attr-defined]
                conn, protocol, extra={"peername": addr}, server=server
            )
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException:  # as asyncio's: anything else (a CancelledError too) is this connection's
            conn.close()
            logger.exception("could not set up an accepted connection")


def new_event_loop() -> EagerAcceptLoop:
    """The loop factory: for asyncio.Runner, and for Uvicorn's `loop` setting as
    "llmstream.eager_accept:new_event_loop" (an import string is taken as the factory, Uvicorn 0.36+)."""
    return EagerAcceptLoop()
