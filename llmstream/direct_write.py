"""A paced token's bytes written straight to the connection, for the server whose send we know.

A paced token leaves in a write of its own: at 20 tokens/s per stream nothing is ready to share it.
Through the ASGI `send`, that write costs a message dict, a coroutine, the steps that run it as the
writer task would (llmstream.handoff) and the server's checks: measured at 1,500 paced streams x 20
tokens/s on one core (Uvicorn, httptools), the server used 90% of its core that way and 60% when the
token scheduler's tick writes the same bytes to the transport itself. So for Uvicorn's httptools
protocol, llmstream's default server, the tick does what Uvicorn's `RequestResponseCycle.send` does
with a body chunk of a chunked response (uvicorn/protocols/http/httptools_impl.py, Uvicorn 0.30+):

    b"%x\r\n" % len(body), body, b"\r\n"  ─►  transport.write

and only while that is all `send` would do: the response started chunked, not to a HEAD request, not
complete, the client still there and not pushing back (`flow.write_paused`: the transport's buffer is
past its high-water mark, and `send` would wait for it to drain). Otherwise, and on every other server,
the stream uses `send` as before. tests/integration/test_direct_write.py holds the bytes on the wire
equal to what `send` writes, on the Uvicorn installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["DirectWrite", "direct_write_for"]


class DirectWrite(Protocol):
    """Writes to one response's connection (an object, not a bound method of one: an open stream
    keeps it for its whole life, and a bound method would be one more object of 64 bytes)."""

    def write(self, body: bytes) -> bool:
        """Writes the body chunk ``body`` now and says True, or writes nothing: False."""
        ...


# What this module reads and writes of Uvicorn's cycle; a Uvicorn without any of them is not the one
# this module knows, and gets no direct writes.
_CYCLE_ATTRIBUTES = ("transport", "flow", "disconnected", "response_complete", "chunked_encoding", "scope")


def _httptools_cycle_class() -> type | None:
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    except ImportError:  # Uvicorn without httptools: its h11 protocol goes through h11's state machine
        return None
    return RequestResponseCycle


_CYCLE_CLASS: Any = _httptools_cycle_class()


def direct_write_for(send: Callable[..., Any]) -> DirectWrite | None:
    """A direct writer for the response ``send`` belongs to, once its start was sent; None if its
    server is not Uvicorn's httptools protocol or the response is not a chunked one with a body."""
    cycle: Any = getattr(send, "__self__", None)
    if _CYCLE_CLASS is None or type(cycle) is not _CYCLE_CLASS:
        return None
    if not all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES):
        return None
    if cycle.chunked_encoding is not True or cycle.scope.get("method") == "HEAD":
        return None  # a HEAD response has no body; a sized one is not written in chunks
    return _UvicornChunks(cycle)


class _UvicornChunks:
    __slots__ = ("cycle", "flow", "transport")

    def __init__(self, cycle: Any) -> None:
        self.cycle, self.flow, self.transport = cycle, cycle.flow, cycle.transport

    def write(self, body: bytes) -> bool:
        if not body:
            return True  # `send` writes nothing for it either (an empty chunk would end the response)
        cycle = self.cycle
        if cycle.disconnected or cycle.response_complete or self.flow.write_paused:
            return False  # `send` knows what to do: return, refuse, or wait for the buffer to drain
        self.transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True
