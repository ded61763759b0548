"""Uvicorn's httptools protocol, holding less for each open connection and freeing it when it closes.

llmstream's default server is Uvicorn with httptools (llmstream.servers). An open idle stream's memory
is mostly its connection's, and three of the biggest pieces are empty `collections.deque`s: Uvicorn
gives each connection a deque for pipelined requests, and two `asyncio.Event`s (the connection's
flow control and the request's cycle), each of which keeps its waiters in a deque. An empty deque
takes 760 bytes, since CPython allocates its first block of 64 slots with it: 2.2 of the 15.1 KiB of
Python heap an idle stream held (tracemalloc, 2,000 idle streams on the real server). Here:

- the Events keep their waiters in lists (56 bytes empty): `asyncio.Event` only appends to, removes
  from and iterates over them (Lib/asyncio/locks.py, `Event.wait` and `Event.set`);
- the pipeline is a list with the two deque methods Uvicorn calls on it, `appendleft` and `pop`
  (uvicorn/protocols/http/httptools_impl.py): requests pipelined behind an open stream are rare,
  and a list's insert at the front is as fast as a deque's for the few there are.

And when a connection is lost, its transport's read callback is dropped. On Python 3.11 an asyncio
socket transport holds its own bound method `_read_ready_cb` for as long as it lives, a reference
cycle: every closed connection's transport, socket and buffers waited for a full garbage collection
(under `make soak`'s churn, 754 of them in 10 s). Python 3.12 drops the callback when the transport
closes (python/cpython#100348); this does the same from the protocol's `connection_lost`, which the
transport calls once it has stopped reading and before it closes its socket.

And a request's Event can tell of its client gone (`watch_disconnect`): once a request's body is read,
the app's receiver task waits only for that, and on this connection it need not exist.

And a new stream starts in fewer loop iterations. Between a connection and its request reaching the
app, asyncio and Uvicorn take five (accept, the transport, `connection_made`, the first read, the
app's task), and under load each can wait for a tick of the token scheduler: a paced stream's
schedule, counted from when the app got the request, carried that wait in every token. Here the
first read is done in `connection_made`, and the request's Event keeps when its last byte was read
(`body_read_at`), which is when the stream's schedule counts from.

Each change applies only where the installed Uvicorn and asyncio have what it replaces; elsewhere the
connection is Uvicorn's own. tests/unit/test_lean_connection.py holds each of them to its effect.
"""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DisconnectWatch", "LeanHttpToolsProtocol", "body_read_at", "watch_disconnect"]

# asyncio's transport for a plain TCP socket on its selector loops (not uvloop's, not TLS): the one
# whose first read `LeanHttpToolsProtocol.connection_made` does at once.
_SOCKET_TRANSPORT: type | None = getattr(selector_events, "_SelectorSocketTransport", None)


class _Pipeline(list[Any]):
    """Uvicorn's queue of requests pipelined behind the one being answered, in a list: it queues at
    the front (`appendleft`) and takes from the end (`pop`, a list's own)."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


def _waiters_in_a_list(event: object) -> None:
    """``event``'s waiters in a list instead of its empty deque, if it is an asyncio.Event that has
    one (no waiter yet: the event is new)."""
    waiters = getattr(event, "_waiters", None)
    if isinstance(event, asyncio.Event) and type(waiters) is deque and not waiters:
        event._waiters = []  # type: ignore[assignment]  # a list does all a deque does here


def _drop_read_callback(transport: object) -> None:
    """Break a lost selector transport's cycle with its bound read callback (python/cpython#100348:
    Python 3.12 does this in the transport itself). Its reader is already removed from the loop."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]


class _WatchedEvent(asyncio.Event):
    """A request cycle's message Event (Uvicorn sets it for each piece of the body, and when the
    client goes), which can also call a `watch` at once when it is set."""

    watch: DisconnectWatch | None = None
    body_read_at: float | None = None  # loop time: when the connection read the request's last byte

    def set(self) -> None:
        super().set()
        if self.watch is not None:
            self.watch()


class DisconnectWatch:
    """Calls ``on_gone`` once its ``cycle``'s client has gone with the response still incomplete:
    then, and only then, Uvicorn's `receive` would answer `http.disconnect` to a request whose body
    is read (a complete response answers it too, but the client's leaving then cuts nothing).
    `stop()` ends the watch."""

    __slots__ = ("cycle", "on_gone")

    def __init__(self, cycle: Any, on_gone: Callable[[], None]) -> None:
        self.cycle, self.on_gone = cycle, on_gone

    def __call__(self) -> None:
        event = self.cycle.message_event
        if self.cycle.disconnected and event.watch is self:  # not stopped, even since being scheduled
            event.watch = None
            self.on_gone()

    def stop(self) -> None:
        event = self.cycle.message_event
        if event.watch is self:
            event.watch = None


def watch_disconnect(receive: object, on_gone: Callable[[], None]) -> DisconnectWatch | None:
    """For a request on a lean connection whose body has been read in full: call ``on_gone`` when its
    client goes before the response is complete, with no task waiting on ``receive`` for it. Returns
    the watch (`stop()` it once the response has ended), or None if ``receive`` is not a lean
    connection's (then await it, as ASGI says). An open stream then runs in one task instead of two:
    about 1.2 KiB less per idle stream (the receiver's task and its context, its three coroutines and
    its future: six objects fewer for each full garbage collection to walk). The caller stops the
    watch itself: a `functools.partial` to stop it took 208 bytes more per open stream (tracemalloc,
    2,000 idle streams)."""
    cycle: Any = getattr(receive, "__self__", None)
    event = getattr(cycle, "message_event", None)
    if not isinstance(event, _WatchedEvent) or event.watch is not None:
        return None
    watch = event.watch = DisconnectWatch(cycle, on_gone)
    cycle.flow.resume_reading()  # what Uvicorn's receive does before it waits: to read the client's EOF
    if cycle.disconnected:  # gone already: told after this call, as a receiver's first step would
        asyncio.get_running_loop().call_soon(watch)
    return watch


def body_read_at(receive: object) -> float | None:
    """When a lean connection read the last byte of the request ``receive`` belongs to (loop time),
    or None if that is not known (not a lean connection's, or not read in full yet). The app gets
    the request at least one loop iteration later (Uvicorn starts its task for it), and under load
    an iteration can take a tick of the token scheduler: a paced stream's schedule counts from
    here, when the request was received."""
    event = getattr(getattr(receive, "__self__", None), "message_event", None)
    return event.body_read_at if isinstance(event, _WatchedEvent) else None


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's HttpToolsProtocol with lighter per-connection state (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self.pipeline) is deque and not self.pipeline:
            self.pipeline = _Pipeline()  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _waiters_in_a_list(getattr(self.flow, "_is_writable_event", None))
        read_now = getattr(transport, "_read_ready", None)
        if read_now is not None and type(transport) is _SOCKET_TRANSPORT:
            # Read now what the client has sent already (a new connection's request, nearly always)
            # instead of one loop iteration later, when the selector would report it: what the
            # transport's reader does then (`_read_ready`: a recv, nothing if none is waiting).
            read_now()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # A new request's cycle and its Event: its task is created, not yet run, so nothing waits.
        cycle = self.cycle
        if cycle is not None and type(getattr(cycle, "message_event", None)) is asyncio.Event:
            if not cycle.message_event.is_set():
                cycle.message_event = _WatchedEvent()
            _waiters_in_a_list(cycle.message_event)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and type(cycle.message_event) is _WatchedEvent:
            cycle.message_event.body_read_at = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _drop_read_callback(self.transport)
