"""Accepting the connections that wait on a listening socket, as asyncio does: up to `backlog` of them
each time the socket is ready, until its queue is empty (asyncio/selector_events.py
`_accept_connection`, bpo-27906). Shared by `eager_accept` (asyncio's loop) and `batch_accept`
(uvloop's); what each does with a connection, and how it pauses when out of descriptors, is its own.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["ACCEPT_RETRY_DELAY", "accept_waiting", "out_of_descriptors"]

ACCEPT_RETRY_DELAY = 1.0  # seconds: out of descriptors, accept again after this (asyncio's constant)
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def accept_waiting(sock: socket.socket, backlog: int) -> Iterator[tuple[socket.socket, Any]]:
    """Up to `backlog` connections from `sock`'s queue, each made non-blocking, with its address; it
    stops when the queue is empty (or a client gave up while waiting in it). Any other failure of
    accept() is raised: `out_of_descriptors` tells the one to pause for."""
    for _ in range(backlog):
        try:
            conn, addr = sock.accept()
            conn.setblocking(False)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        yield conn, addr


def out_of_descriptors(exc: OSError) -> bool:
    """Whether accept() failed for want of descriptors or memory. The socket then stays ready: a
    server that goes on listening would spin, so it stops listening for `ACCEPT_RETRY_DELAY`."""
    return exc.errno in _OUT_OF_RESOURCES
