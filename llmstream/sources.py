"""What an `EventStream` (llmstream.streaming) reads from, and how a source ends a connection abruptly.

Two kinds of source:

- an async iterable of `ServerSentEvent`s, pulled by a producer task of the stream's own (demos, the
  relay: anything that awaits I/O between events);
- a `PushedSource`, which offers its events to the stream (a `Sink`) itself, with no task: the paced
  model output (llmstream.api.pacing), served at its due times by the loop's shared TokenScheduler.
  A task that wakes once per event is the cost the scheduler removes, so this kind has none.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable
from typing import Protocol

from llmstream.sse import ServerSentEvent

__all__ = ["SEND_TIME_SLOT", "PushedSource", "ResetStream", "Sink", "Source", "fill_send_times"]

# What a PushedSource may put in the bytes it offers where a JSON value goes (`"t":<slot>`); the stream
# writes the time of the write there, just before the bytes go to the server (`fill_send_times`). A
# send time taken any earlier would count the server's own queueing (a busy loop, a batch waiting for
# the writer) as the client's lag. JSON escapes every control character inside a string (RFC 8259 §7),
# so raw NULs never occur in an event's JSON text: only a slot has them.
SEND_TIME_SLOT = b"\x00send-time\x00"


def fill_send_times(body: bytes, t: float) -> bytes:
    """``body`` with every send-time slot replaced by ``t`` (Unix seconds, µs precision)."""
    return body.replace(SEND_TIME_SLOT, b"%.6f" % t)


class Sink(Protocol):
    """What a `PushedSource` delivers to (an `EventStream`)."""

    def offer(self, data: bytes) -> bool:
        """Take one event (its encoded bytes); False when that filled the buffer."""
        ...

    def flush(self) -> None:
        """Send what was offered since the last flush: the source calls it once it has offered all
        that is due, so that events due together leave in one write."""
        ...

    def deliver(self, data: bytes) -> bool:
        """`offer(data)`, then `flush()`: the last event of what is due now, in one call (a paced
        token is usually the only one due, and then it can go to the client with no buffering)."""
        ...

    def end(self, error: BaseException | None = None) -> None:
        """No more events: complete (None), failed (`error`) or abruptly cut (a `ResetStream`)."""
        ...


class PushedSource(abc.ABC):
    """A source that delivers its events itself, with no task of its own.

    The stream calls `start(sink, since)` once, when it opens (``since``: the loop time its request
    was received, from which its schedule counts); the source then calls `sink.offer(data)` for
    each event, `sink.flush()` after each batch of offers (what is due at one moment), or
    `sink.deliver(data)` for the last event of a batch (an offer and a flush in one call), and
    `sink.end(error)` once, after the last. An offer or a delivery that returns False took the event
    but leaves no room for another: the source must wait for `resume()`, which the stream calls once
    the writer has taken the buffer. `close()` ends the delivery for good (the client left, the server
    shuts down, the stream is finished) and lets go of the sink; it may be called more than once, and
    before `start`.

    ``send_times``: whether the offered bytes may hold `SEND_TIME_SLOT`s for the stream to fill.
    """

    send_times: bool = False

    @abc.abstractmethod
    def start(self, sink: Sink, since: float) -> None: ...

    @abc.abstractmethod
    def resume(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


Source = AsyncIterable[ServerSentEvent] | PushedSource


class ResetStream(Exception):
    """Raised (or passed to `Sink.end`) by a source to end the connection abruptly, as a crashed
    upstream would (fault injection).

    The events already produced are written, then the response is left incomplete: every server then
    closes the connection without the final chunk, and clients see a broken stream, not a clean end.
    """
