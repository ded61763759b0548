"""EventStream: the one place where an SSE response lives and dies.

A route returns `event_stream(source)` (llmstream.sse_response), where `source` is an async iterable of
`ServerSentEvent`s or a `PushedSource` (llmstream.sources). The stream is then run by
`StreamingHTTPConnection` instead of Quart's generic body loop, so that everything about its life is
decided here:

    run() ── admit? ──no──► 503 + Retry-After (JSON)             ┐
      │yes                                                        │
      ├─ producer task: source ─► encode ─► bounded chunk list    │ one close path: _finish(reason)
      │  (or a PushedSource: offer() ─► the same list, no task)   │ records the reason once, finalises
      ├─ writer (this task): chunk list ─► one ASGI send          │ the producer and the source,
      └─ watchdog (StreamHub, one per app): heartbeat,            │ counts and logs.
         write timeout, max duration                              ┘

Why this shape:
- Pull-based with a bounded buffer: a slow client blocks `send`, the buffer fills, the producer waits.
  Memory per stream is bounded and there is no unbounded queue between producer and socket.
- A source that knows when its events are due (paced model output, llmstream.api.pacing) need not be
  pulled by a task of its own, which would wake once per event: it is a `PushedSource`, fed by the
  loop's shared TokenScheduler (llmstream.scheduler), and offers its events to the buffer itself
  (llmstream.sources). The offer that fills the buffer says so; the source then waits, off the
  schedule, until the writer has taken the buffer and calls `resume()`.
- Events that are ready together leave in one write (coalescing): with an instant source, up to
  `buffer_events` events share one ASGI message.
- No per-event timer, lock or task: heartbeats, write timeouts and max durations are all checked by one
  periodic watchdog per app, which compares counters the writer bumps.
- A client disconnect reaches us as CancelledError (StreamingHTTPConnection cancels the handling task
  when the server reports `http.disconnect` before the response is complete); we record the reason
  and re-raise, never swallow it. Only the watchdog's own cancellation (a write timeout) ends here.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from werkzeug.exceptions import HTTPException

from llmstream.direct_write import DirectWrite, direct_write_for
from llmstream.handoff import Finish, TaskSteps, in_a_callback
from llmstream.sources import PushedSource, ResetStream, Source, fill_send_times
from llmstream.sse import ServerSentEvent

if TYPE_CHECKING:
    from llmstream.hub import Refusal, StreamHub

CloseReason = Literal[
    "complete", "client_disconnected", "server_shutdown", "write_timeout", "max_duration", "error", "reset"
]
Send = Callable[[Any], Awaitable[None]]
FinalEvent = Callable[["Closing"], "ServerSentEvent | None"]

logger = logging.getLogger("llmstream.stream")

# A comment line on its own, with no blank line after it: per WHATWG HTML §9.2.6 a line starting with
# ":" is ignored, and without a blank line nothing is dispatched, so no client sees a phantom event.
HEARTBEAT = b": heartbeat\n"
_stream_numbers = itertools.count(1)
DEFAULT_RETRY_MS = 3_000


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOptions:
    """Per-stream knobs; the app's defaults come from Settings."""

    heartbeat: float = 15.0
    write_timeout: float = 30.0
    max_duration: float | None = None
    retry_ms: int | None = DEFAULT_RETRY_MS
    buffer_events: int = 64

    def __post_init__(self) -> None:
        for name in ("heartbeat", "write_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ValueError(f"max_duration must be positive, not {self.max_duration}")
        if self.buffer_events < 1:
            raise ValueError(f"buffer_events must be at least 1, not {self.buffer_events}")


@dataclass(frozen=True, slots=True)
class Closing:
    """What a final-event factory is told about the end of a stream."""

    reason: CloseReason
    stream_id: str
    retry_ms: int
    error: BaseException | None = None


def default_final_event(closing: Closing) -> ServerSentEvent | None:
    """The last event for each reason; protocols (OpenAI, Anthropic, ...) supply their own."""
    if closing.reason == "server_shutdown":
        # Tell the client to come back, after a jittered delay (`retry:`), on another worker if need be.
        return ServerSentEvent.json(
            {"reason": "server_shutdown", "retry_ms": closing.retry_ms},
            event="close",
            retry=closing.retry_ms,
        )
    if closing.reason == "max_duration":
        return ServerSentEvent.json({"reason": "max_duration"}, event="close")
    if closing.reason == "error":
        return ServerSentEvent.json(
            {
                "error": {
                    "type": "stream_error",
                    "message": f"the stream failed (stream {closing.stream_id}); see the server log",
                }
            },
            event="error",
        )
    return None


# Seconds between a reset stream's last bytes and the cut (see `run`): a crashing upstream also
# dies a moment after its last write, not within it.
RESET_LINGER = 0.05


class EventStream:
    """One SSE response: run once by `StreamingHTTPConnection`, closed through `_finish` only."""

    # Slots, not a __dict__: past 30 attributes CPython 3.11 gives an instance a dict of its own instead
    # of sharing its class's keys, 1.5 KiB per open stream where slots take 0.3 (measured, tracemalloc).
    __slots__ = (
        "__weakref__",
        "_answered",
        "_chunks",
        "_direct",
        "_error",
        "_events_produced",
        "_failed",
        "_in_send",
        "_opened_at",
        "_pending_events",
        "_producer",
        "_pushed",
        "_quiet_since",
        "_refused",
        "_seen_writes",
        "_send",
        "_send_seen",
        "_send_seen_at",
        "_send_times",
        "_space",
        "_state",
        "_steps",
        "_task",
        "_timed_out",
        "_unfinished",
        "_wake",
        "_writes",
        "bytes_sent",
        "events_sent",
        "final_event",
        "hub",
        "options",
        "reason",
        "source",
        "stream_id",
    )

    def __init__(
        self,
        source: Source,
        hub: StreamHub,
        *,
        options: StreamOptions,
        final_event: FinalEvent = default_final_event,
        stream_id: str | None = None,
    ) -> None:
        self.source = source
        self._pushed = source if isinstance(source, PushedSource) else None
        self._send_times = self._pushed is not None and self._pushed.send_times
        self.hub = hub
        self.options = options
        self.final_event = final_event
        self.stream_id = stream_id or f"{os.getpid():x}-{next(_stream_numbers)}"
        self.reason: CloseReason | None = None
        self._state: Literal["new", "running", "finished"] = "new"
        self._error: BaseException | None = None
        self._events_produced = 0
        # Between producer and writer: encoded events not yet written, at most `buffer_events` of them.
        self._chunks: list[bytes] = []
        self._pending_events = 0
        self._wake: asyncio.Future[None] | None = None
        self._send: Send | None = None  # while the writer runs: what flush() may write with at once
        # A send flush() started that did not finish at once (its coroutine and what it waits for),
        # or the error one failed with: the writer takes either over.
        self._unfinished: tuple[Awaitable[None], int, int] | None = None
        self._failed: BaseException | None = None
        self._steps: TaskSteps | None = None  # how flush() runs a send's steps as the writer would
        self._direct: DirectWrite | None = None  # how flush() writes past `send`, on Uvicorn
        self._space: asyncio.Future[None] | None = None
        self._refused = False  # a PushedSource waits for resume()
        self._producer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._timed_out = False  # the watchdog cancelled the task: the client took no bytes in time
        self._answered = False  # the response's last message has gone to the server
        # Progress counters the watchdog reads: no clock reads on the per-event path.
        self._writes = 0
        self._in_send = False
        self._seen_writes = -1
        self._quiet_since = 0.0
        self._send_seen = -1
        self._send_seen_at = 0.0
        self._opened_at = 0.0
        self.events_sent = 0
        self.bytes_sent = 0

    # ---- the life of the stream -------------------------------------------------------------------

    async def run(
        self,
        send: Send,
        *,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] = (),
        received_at: float | None = None,
    ) -> None:
        """Send the whole response. Returns when the stream has ended, for whatever reason.

        ``received_at``: the loop time the request was received; a pushed source's schedule counts
        from it (llmstream.api.pacing; from now, if None)."""
        if self._state != "new":
            raise RuntimeError(f"stream {self.stream_id} was already started; an EventStream runs once")
        self._state = "running"
        loop = asyncio.get_running_loop()
        headers = list(headers)
        if (refusal := self.hub.admit(self)) is not None:
            await self._refuse(send, refusal, _kept_on_errors(headers))
            return
        task = self._task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        self._opened_at = self._quiet_since = loop.time()
        try:
            if self._pushed is not None:
                # Delivers at once whatever is already due, counting from the request's arrival.
                self._pushed.start(self, self._opened_at if received_at is None else received_at)
            else:
                self._producer = loop.create_task(
                    self._produce(), name=f"llmstream-producer-{self.stream_id}"
                )
                await asyncio.sleep(0)  # let the producer take its first step
            # A source that fails at once (before its first event) is still answered with a proper
            # HTTP error instead of a 200 stream holding an error event.
            if self.reason == "error" and self._events_produced == 0:
                await _send_error_response(send, self._error, _kept_on_errors(headers))
                self._answered = True
                return
            await send({"type": "http.response.start", "status": status, "headers": headers})
            del headers  # sent: an open stream need not hold them for its whole life
            await self._write(send, self._opening(), 0)
            self._send, self._direct = send, direct_write_for(send)
            self._steps = (
                TaskSteps(self._task, contextvars.copy_context()) if self._task is not None else None
            )
            await self._pump(send)
            if self.reason == "reset":
                # No final chunk: the server drops the connection mid-response. Not in the same
                # instant as the last bytes, though: a browser that gets the bytes and the cut in one
                # read may drop those bytes (Chromium's fetch reader does), and would then resume
                # before the last token forever, as the resumed stream ends the same way.
                await asyncio.sleep(RESET_LINGER)
                return
            final = self._final_bytes()
            await send({"type": "http.response.body", "body": final, "more_body": False})
            self._answered = True
            self.bytes_sent += len(final)
        except asyncio.CancelledError:
            self._set_reason("client_disconnected")
            # The watchdog's own cancellation (a write timeout) ends the stream here: the server then
            # drops a connection whose response never completed. Anyone else's goes on up.
            if not self._timed_out or task is None or task.uncancel() > cancelling:
                raise
        except Exception as exc:  # the server's send failed: nothing more can be written
            self._set_reason("error")
            self._error = self._error or exc
        finally:
            await self._finish()

    @property
    def answered(self) -> bool:
        """The response's last message (the final chunk, or a whole error or refusal) has been sent:
        the client going away from here on cuts nothing short."""
        return self._answered

    def request_close(self, reason: CloseReason) -> None:
        """Ask the stream to end with `reason`: flush what is ready, send the final event, close."""
        self._set_reason(reason)
        if reason != "complete":
            if self._pushed is not None:
                self._pushed.close()
            elif self._producer is not None:
                self._producer.cancel()
        self._wake_writer()

    def check(self, now: float) -> None:
        """The watchdog's look at this stream, once per tick."""
        options = self.options
        if self._writes != self._seen_writes:
            self._seen_writes = self._writes
            self._quiet_since = now
        if self._in_send:
            if self._send_seen != self._writes:
                self._send_seen, self._send_seen_at = self._writes, now
            elif (
                now - self._send_seen_at >= options.write_timeout
                and self._task is not None
                and not self._timed_out
            ):
                # The client accepts no bytes: nothing more can be sent, so drop the connection.
                self._set_reason("write_timeout")
                self._timed_out = True
                self._task.cancel()
            return
        if options.max_duration is not None and now - self._opened_at >= options.max_duration:
            self.request_close("max_duration")
        elif now - self._quiet_since >= options.heartbeat and not self._chunks and self.reason is None:
            self._chunks.append(HEARTBEAT)
            self._wake_writer()

    # ---- a PushedSource delivers here (Sink) --------------------------------------------------------

    def offer(self, data: bytes) -> bool:
        """Take one encoded event; False when the buffer is full (then wait for `resume()`)."""
        self._chunks.append(data)
        self._pending_events += 1
        self._events_produced += 1
        if len(self._chunks) >= self.options.buffer_events:
            self._refused = True
            return False
        return True

    def flush(self) -> None:
        """The source has offered all that is due now: write it, in one send.

        From here (inside the scheduler's tick) when the writer is parked, which saves waking it: a
        send to a client that keeps up finishes at once. Measured against waking the writer for every
        write, 1,000 and 1,500 paced streams x 20 tokens/s, interleaved runs: 5-10% less server CPU in
        each of five pairs. (A first attempt, sessions ago, measured a rise and was backed out.)
        """
        if not self._chunks:
            return
        # Only while the writer is parked (`_wake` set) and no send is under way (`_in_send`, which also
        # covers a send from here still to be finished): bytes must leave in order, one send at a time.
        wake, send, steps = self._wake, self._send, self._steps
        parked = wake is not None and not wake.done() and not self._in_send and self._failed is None
        accepting = not self._refused and self.reason is None
        if send is not None and steps is not None and parked and accepting and in_a_callback():
            self._write_now(send, steps)
        else:
            self._wake_writer()

    def deliver(self, data: bytes) -> bool:
        """`offer(data)` and `flush()`: the last event due now.

        A paced token is usually the only event due at its moment, and then, on Uvicorn (`_direct`),
        with nothing buffered and the writer parked, it goes to the connection from here: no buffer,
        no join, no look for the running task (a direct write runs no coroutine step). With the
        serve's other savings of the same round, a core serving 1,500 paced streams went from 85% to
        65% busy (docs/performance.md, the fifth round).
        """
        direct, wake = self._direct, self._wake
        # flush()'s conditions for writing from here (writer parked, no send under way, still
        # accepting), inlined as this runs once per paced token, and nothing buffered to go first.
        if (
            direct is not None
            and wake is not None
            and not self._chunks
            and not self._in_send
            and self.reason is None
            and not self._refused
            and self._failed is None
            and not wake.done()
        ):
            body = fill_send_times(data, time.time()) if self._send_times else data
            if direct.write(body):
                self._events_produced += 1
                self._writes += 1
                self.events_sent += 1
                self.bytes_sent += len(body)
                return True
        accepted = self.offer(data)
        self.flush()
        return accepted

    def _write_now(self, send: Send, steps: TaskSteps) -> None:
        """Write what is buffered from here, without waking the writer; a send that cannot finish at
        once (the client reads slowly) is handed to the writer, as is a send's failure."""
        chunks, events = self._chunks, self._pending_events
        self._chunks, self._pending_events = [], 0
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._send_times:
            body = fill_send_times(body, time.time())
        direct = self._direct
        if direct is not None and direct.write(body):  # llmstream.direct_write: a third of the CPU on Uvicorn
            self._writes += 1
            self.events_sent += events
            self.bytes_sent += len(body)
            return
        try:
            sending = send({"type": "http.response.body", "body": body, "more_body": True})
        except Exception as exc:  # a send that is not a coroutine function may fail on the call
            self._failed = exc
            self._wake_writer()
            return
        if not inspect.iscoroutine(sending):
            # A server whose send is some other awaitable: the writer awaits it, and every later send.
            self._send = None
            self._in_send = True
            self._unfinished = (sending, events, len(body))
            self._wake_writer()
            return
        try:
            unfinished = steps.start(sending)  # as the writer would run it (llmstream.handoff)
        except (Exception, asyncio.CancelledError) as exc:  # the writer raises it, as an awaited send would
            self._failed = exc
        else:
            if unfinished is None:
                self._writes += 1
                self.events_sent += events
                self.bytes_sent += len(body)
                return
            self._in_send = True
            self._unfinished = (unfinished, events, len(body))
        self._wake_writer()

    def end(self, error: BaseException | None = None) -> None:
        """The source has delivered its last event (`error`: how it failed, or a ResetStream)."""
        self._source_ended(error)

    # ---- producer and writer ----------------------------------------------------------------------

    async def _produce(self) -> None:
        assert not isinstance(self.source, PushedSource)
        try:
            async for event in self.source:
                self._chunks.append(event.encode())
                self._pending_events += 1
                self._events_produced += 1
                self._wake_writer()
                if len(self._chunks) >= self.options.buffer_events:
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._source_ended(exc)
        else:
            self._source_ended(None)

    def _source_ended(self, error: BaseException | None) -> None:
        if error is None:
            self._set_reason("complete")
        elif isinstance(error, ResetStream):
            self._set_reason("reset")
        else:
            self._error = self._error or error
            self._set_reason("error")
        # Not request_close(): a producer task must not cancel itself on its way out.
        self._wake_writer()

    async def _pump(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            if self._unfinished is not None:
                sending, events, size = self._unfinished
                self._unfinished = None
                await sending
                del sending  # done: not kept while the writer waits below
                self._in_send = False
                self._writes += 1
                self.events_sent += events
                self.bytes_sent += size
            elif self._chunks:
                chunks, events = self._chunks, self._pending_events
                self._chunks, self._pending_events = [], 0
                space, self._space = self._space, None
                # Done already when request_close() cancelled the producer while it waited for room.
                if space is not None and not space.done():
                    space.set_result(None)
                if self._refused and self._pushed is not None:
                    # Refills the new list at once with what is due (while this batch is written).
                    self._refused = False
                    self._pushed.resume()
                await self._write(send, chunks[0] if len(chunks) == 1 else b"".join(chunks), events)
                # Written: not kept while the writer waits below. An idle stream's last batch is its
                # start event, 166 bytes and its list held for as long as the first token takes.
                del chunks, space
            elif self.reason is not None:
                return
            else:
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None

    async def _write(self, send: Send, body: bytes, events: int) -> None:
        if self._send_times:
            body = fill_send_times(body, time.time())  # the moment of the write, for every event in it
        self._in_send = True
        await send({"type": "http.response.body", "body": body, "more_body": True})
        self._in_send = False
        self._writes += 1
        self.events_sent += events
        self.bytes_sent += len(body)

    def _wake_writer(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _set_reason(self, reason: CloseReason) -> None:
        if self.reason is None:
            self.reason = reason

    # ---- the one close path -----------------------------------------------------------------------

    async def _finish(self) -> None:
        """Finalise producer and source, then count and log the close, exactly once."""
        if self._state == "finished":
            return
        self._state = "finished"
        reason: CloseReason = self.reason or "error"
        try:
            await self._end_source()
        except asyncio.CancelledError:
            # Cancelled while the producer unwinds (a hang-up after a failed send, the server's own
            # cancellation): the source is still closed, in a task of its own, and the cancellation
            # goes on up at once.
            closing = asyncio.get_running_loop().create_task(
                self._end_source(), context=contextvars.Context()
            )
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
            raise
        finally:
            # Even when cancelled in the waits above (a hang-up while a finished stream unwinds its
            # producer): a stream left in the hub would hold its place against max_streams forever.
            self._forget(reason)

    def _forget(self, reason: CloseReason) -> None:
        self._send = self._direct = None
        if self._unfinished is not None:  # a send the writer never got to finish (it was cancelled)
            sending = self._unfinished[0]
            self._unfinished = None
            if isinstance(sending, Finish):
                sending.close()
        self.hub.release(self)
        metrics = self.hub.metrics
        metrics.events_sent += self.events_sent
        metrics.bytes_sent += self.bytes_sent
        duration = asyncio.get_running_loop().time() - self._opened_at
        metrics.stream_closed(reason, duration)
        if reason == "error" and self._error is not None:
            logger.error(
                "stream %s failed after %d events",
                self.stream_id,
                self.events_sent,
                exc_info=self._error,
                extra={"stream_id": self.stream_id},
            )
        logger.info(
            "stream %s closed: %s after %.3f s, %d events, %d bytes",
            self.stream_id,
            reason,
            duration,
            self.events_sent,
            self.bytes_sent,
            extra={"stream_id": self.stream_id, "reason": reason},
        )

    async def _refuse(self, send: Send, refusal: Refusal, kept: list[tuple[bytes, bytes]]) -> None:
        why, retry_after = refusal
        try:
            await _send_json(
                send,
                503,
                {"error": {"type": "unavailable", "message": f"{why}; retry after {retry_after} s"}},
                [(b"retry-after", str(retry_after).encode()), *kept],
            )
            self._answered = True
        finally:
            self._state = "finished"
            await self._close_source()

    async def _end_source(self) -> None:
        producer = self._producer
        if producer is not None and not producer.done():
            producer.cancel()
            # Wait for the producer to unwind (its source sees CancelledError at its await point) ...
            await asyncio.wait([producer])
        # ... and close the source in case it was parked at a `yield` or never started.
        await self._close_source()

    async def _close_source(self) -> None:
        if self._pushed is not None:
            self._pushed.close()  # nothing of it stays scheduled
        else:
            await _aclose_quietly(self.source, self.stream_id)

    def _opening(self) -> bytes:
        # Sent at once so that clients and proxies see the stream open before the first token. Like
        # HEARTBEAT it holds no blank line: `retry` takes effect when its line is read (§9.2.6), and no
        # event is dispatched.
        if self.options.retry_ms is None:
            return b": stream open\n"
        return b": stream open\nretry: %d\n" % self.options.retry_ms

    def _retry_base_ms(self) -> int:
        # 0 is a valid choice ("come back at once"); only None means "not configured".
        return DEFAULT_RETRY_MS if self.options.retry_ms is None else self.options.retry_ms

    def _final_bytes(self) -> bytes:
        assert self.reason is not None  # _pump returns only once a reason is set
        base = self._retry_base_ms()
        retry_ms = round(base * random.uniform(0.5, 1.5)) if self.reason == "server_shutdown" else base
        event = self.final_event(Closing(self.reason, self.stream_id, retry_ms, self._error))
        return b"" if event is None else event.encode()


# Sources whose closing outlived their stream's cancellation (EventStream._finish): held here until done,
# as the loop keeps only weak references to tasks.
_closing: set[asyncio.Task[None]] = set()


async def _aclose_quietly(source: object, stream_id: str) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        logger.exception("stream %s: closing its source failed", stream_id, extra={"stream_id": stream_id})


async def _send_json(
    send: Send, status: int, payload: object, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_error_response(
    send: Send, error: BaseException | None, kept: list[tuple[bytes, bytes]]
) -> None:
    if isinstance(error, HTTPException) and error.code is not None:
        status, kind, message = error.code, error.name.lower().replace(" ", "_"), error.description or ""
    else:
        status, kind, message = 500, "internal_error", "the stream failed before its first event"
    await _send_json(send, status, {"error": {"type": kind, "message": message}}, kept)


# The response's headers that an error answer in its place keeps: the request's id (llmstream.request_ids)
# names the request whatever the answer is.
_KEPT_ON_ERRORS = frozenset({b"x-request-id"})


def _kept_on_errors(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name in _KEPT_ON_ERRORS]
