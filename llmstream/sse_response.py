"""Quart integration: `event_stream(source)` in a route, and the connection class that sends it.

Quart's own body loop would send an SSE response like any other (and cut it after RESPONSE_TIMEOUT);
`StreamingHTTPConnection` instead hands an `EventStreamResponse` to its `EventStream.run()`, which owns
the response from the first header to the last byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal, Protocol, cast

from quart import Quart, Request, Response, current_app, request
from quart.asgi import ASGIHTTPConnection, _handle_exception
from quart.utils import raise_task_exceptions

from llmstream.hub import StreamHub
from llmstream.lean_connection import body_read_at, watch_disconnect
from llmstream.sources import Source
from llmstream.streaming import EventStream, FinalEvent, default_final_event

_HUB_KEY = "llmstream.hub"
_LANE_KEY = "llmstream.stream_lane"

# A stream lane's answer: the stream, and its response's headers as they go on the wire.
LaneAnswer = tuple[EventStream, list[tuple[bytes, bytes]]]


class StreamLane(Protocol):
    """Answers some requests with a stream, past Quart's per-request machinery
    (llmstream.api.stream_lane)."""

    @property
    def max_body(self) -> int | None:
        """The largest body it reads: a larger one is left to Quart."""
        ...

    def takes(self, scope: Mapping[str, Any]) -> bool:
        """Whether the request may be the lane's: then its whole body is read for `answer`."""
        ...

    def answer(self, scope: Mapping[str, Any], body: bytes) -> LaneAnswer | None:
        """The stream that answers the request, or None for Quart to answer it as any other."""
        ...


# What a connection still reads of its request: more of the body, only a disconnect, or nothing more.
_Reading = Literal["body", "complete", "gone"]


class EventStreamResponse(Response):
    """A Quart response whose body is an `EventStream`; sent by `StreamingHTTPConnection`."""

    def __init__(
        self, stream: EventStream, *, http_version: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(_NotIterable(), status=200, headers=headers)
        self.stream = stream
        self.timeout = None  # Quart's RESPONSE_TIMEOUT (60 s) would silently cut the stream.
        for name, value in sse_headers(http_version):
            self.headers[name] = value


def sse_headers(http_version: str) -> list[tuple[str, str]]:
    """The headers every event stream response carries, on a request of HTTP ``http_version``."""
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),  # nginx: do not buffer this response
    ]
    if http_version == "1.1":
        # Connection-specific headers are illegal on HTTP/2 (RFC 9113 §8.2.2) and meaningless on 3.
        headers.append(("Connection", "keep-alive"))
    return headers


class _NotIterable:
    def __aiter__(self) -> _NotIterable:
        return self

    async def __anext__(self) -> bytes:
        raise RuntimeError(
            "an EventStreamResponse is sent by StreamingHTTPConnection: build the app with create_app()"
        )


# Headers that must never reach the wire on an SSE response: a length or a compression would make
# clients and proxies buffer; transfer framing belongs to the server.
_DROPPED_HEADERS = frozenset({b"content-length", b"content-encoding", b"transfer-encoding"})


class StreamingHTTPConnection(ASGIHTTPConnection):
    """Quart's HTTP connection, handing an EventStreamResponse to its stream's own `run()`, and holding
    on to nothing an open stream does not need.

    Quart's own connection keeps the request (its headers, its body and the body's two asyncio
    Events) and the response object referenced from coroutine frames until the response ends, which
    for a stream is minutes: about 5 KiB of the ~24 KiB an idle stream held. Nothing reads the request
    after its handler has returned, nor the response once its status and headers are taken, so here no
    frame keeps either past that point (tests/integration/test_connection_memory.py).

    Quart runs the handler in a task of its own beside a receiver task, and waits for the first of the
    two to end (quart/asgi.py, `ASGIHTTPConnection.__call__`, Quart 0.20): three tasks, an
    `asyncio.wait` and its callbacks for every open stream. Here the handler runs in the server's own
    task for the request, and the receiver cancels it when the client goes away, which is what
    Quart's `asyncio.wait` did: the same behaviour with one task and one wait fewer. On the default
    server, once the body is read, there is no receiver task either: the connection itself tells of a
    client gone (llmstream.lean_connection, `watch_disconnect`).
    """

    _hang_up: _HangUp
    _received_at: float  # loop time: when the request reached the app, then when its body was read

    async def __call__(self, receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        if task is None:  # every ASGI server calls the app from a task
            raise RuntimeError("StreamingHTTPConnection must be called from an asyncio task")
        cancelling = task.cancelling()  # cancellations already asked for are someone else's
        self._received_at = asyncio.get_running_loop().time()
        # The first message is taken here, not by the receiver: a request's body nearly always comes
        # with its head, and the handler then finds it complete and runs to its first event in this
        # step. Waiting for the receiver's first step and then for its wake-up cost two loop
        # iterations per request, each as long as the loop's busiest.
        messages = [await receive()]
        lane: StreamLane | None = self.app.extensions.get(_LANE_KEY)
        lane_answer = body_until = None
        if lane is not None and lane.takes(self.scope):
            body_until = asyncio.get_running_loop().time() + self.app.config["BODY_TIMEOUT"]
            lane_answer = await self._lane_answer(lane, receive, messages, body_until)
        request: Request | None = None
        handling: Coroutine[Any, Any, None]
        hang_up = self._hang_up = _HangUp(task)
        if lane_answer is not None:
            reading: _Reading = "complete"
            handling = self._run_stream(*lane_answer, send)
            del lane_answer
        else:
            request = self._create_request_from_scope(send)
            if body_until is not None:
                # The lane spent some of the body's time limit reading it: Quart gets what is left.
                request.body_timeout = max(0.0, body_until - asyncio.get_running_loop().time())
            reading = "body"
            for message in messages:
                reading = self._take(request, message, receive)
            handling = self.handle_request(request, send)
        del messages
        # On the default server the connection itself tells of a client gone once the body is read
        # (llmstream.lean_connection); anywhere else a receiver task awaits `receive` for it.
        watch = watch_disconnect(receive, hang_up) if reading == "complete" else None
        receiver = None
        if watch is None:
            receiver = asyncio.ensure_future(self.handle_messages(request, receive, reading))
            receiver.add_done_callback(hang_up.receiver_ended)
        del request  # the receiver and the handler hold it as long as each needs it
        try:
            await handling
        except asyncio.CancelledError:
            # Ours (the client went away): the handler has ended as Quart's would, cancelled. Anyone
            # else's (the server's) goes on up.
            if not hang_up.cancelled or task.uncancel() > cancelling:
                raise
        else:
            if hang_up.cancelled:  # the handler ended without taking the cancellation
                task.uncancel()
        finally:
            hang_up.handling, hang_up.stream = False, None
            if receiver is not None:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
            elif watch is not None:
                watch.stop()
        if receiver is not None:
            raise_task_exceptions({receiver})

    async def handle_messages(
        self, request: Request | None, receive: Any, reading: _Reading = "body"
    ) -> None:
        while reading == "body" and request is not None:  # a lane's request has no Request: complete
            reading = self._take(request, await receive(), receive)
        del request  # the body is complete: from here on, only a disconnect matters
        if reading == "complete":
            while (await receive())["type"] != "http.disconnect":
                pass

    async def _lane_answer(
        self, lane: StreamLane, receive: Any, messages: list[dict[str, Any]], body_until: float
    ) -> LaneAnswer | None:
        """``lane``'s answer to the request, once its whole body is read; None if the lane leaves it to
        Quart, which then takes the request's ``messages`` read so far.

        Uvicorn gives a body that came with its head in the first message; Hypercorn, and Quart's test
        client, give it in one message and then an empty last one, which is already waiting. A body
        still on its way is waited for up to BODY_TIMEOUT, as Quart's handler would."""
        if _more_body(messages[0]):
            size = len(messages[0].get("body", b""))
            try:
                async with asyncio.timeout_at(body_until):
                    max_body = lane.max_body
                    while _more_body(messages[-1]) and (max_body is None or size <= max_body):
                        messages.append(await receive())
                        size += len(messages[-1].get("body", b""))
            except TimeoutError:
                return None
        last = messages[-1]
        if last["type"] != "http.request" or _more_body(last):
            return None  # gone, or too large: Quart knows what to do
        # Received in full: a paced stream's schedule counts from here, as from `_take`'s, so that
        # checking and planning the request takes nothing off its time to first token.
        self._received_at = _read_at(receive)
        return lane.answer(self.scope, b"".join(message.get("body", b"") for message in messages))

    def _take(self, request: Request, message: dict[str, Any], receive: Any) -> _Reading:
        """One ASGI message of the request (from ``receive``) into ``request``; what is left to read."""
        if message["type"] == "http.disconnect":
            return "gone"
        if message["type"] == "http.request":
            request.body.append(message.get("body", b""))
            if not message.get("more_body", False):
                request.body.set_complete()
                # Received in full: a paced stream's schedule counts from here (loop time).
                self._received_at = _read_at(receive)
                return "complete"
        return "body"

    async def handle_request(self, request: Request, send: Any) -> None:
        try:
            response = await self.app.handle_request(request)
        except Exception as error:
            response = await _handle_exception(self.app, error)
        del request  # made: the response needs nothing more of it
        if isinstance(response, EventStreamResponse):
            # Sent by its own run(), with no timeout; the stream needs only its status and headers of
            # the response object, so no frame keeps that either while the stream is open.
            running = self._run_stream(response.stream, _wire_headers(response), send, response.status_code)
            del response
            await running
            return
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = cast(float | None, response.timeout)
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send_response(send, response), timeout=timeout)

    def _run_stream(
        self, stream: EventStream, headers: list[tuple[bytes, bytes]], send: Any, status: int = 200
    ) -> Coroutine[Any, Any, None]:
        """``stream``'s run, for the caller to await: not a coroutine of its own, which an open
        stream would keep for its whole life. No frame keeps the header list: run() drops it once
        the headers are sent."""
        self._hang_up.stream = stream
        return stream.run(send, status=status, headers=headers, received_at=self._received_at)


class StreamingQuart(Quart):
    """Quart, whose `asgi_app` hands back its HTTP connection's coroutine instead of awaiting it.

    Quart's `asgi_app` awaits the connection: a coroutine frame that an open stream keeps for as long
    as it is open (about 240 bytes, and one more object for every full garbage collection to walk). Here it
    returns the connection's coroutine, for `__call__` to await: the same code in the same order, and
    `asgi_app` stays the place for ASGI middleware. `__call__` stays a coroutine function: servers
    tell an ASGI 3 app from an ASGI 2 one by that (Uvicorn's and Hypercorn's interface detection)."""

    asgi_http_class = StreamingHTTPConnection

    def asgi_app(  # type: ignore[override]  # returns the coroutine Quart's own would await
        self, scope: Any, receive: Any, send: Any
    ) -> Awaitable[None]:
        if scope["type"] == "http":
            return self.asgi_http_class(self, scope)(receive, send)
        return super().asgi_app(scope, receive, send)


def _read_at(receive: Any) -> float:
    """When the request ``receive`` belongs to was read in full (loop time): when its connection read
    its last byte if the connection tells (llmstream.lean_connection), else now."""
    read_at = body_read_at(receive)
    return asyncio.get_running_loop().time() if read_at is None else read_at


def _more_body(message: dict[str, Any]) -> bool:
    return message["type"] == "http.request" and bool(message.get("more_body", False))


class _HangUp:
    """Called when the client is gone, by the connection's watch or, through `receiver_ended`, by the
    receiver ending (its receive may also have failed): cancels the handling `task`, unless the handling
    has ended already (the task is the server's, and goes on) or its event `stream` has answered in
    full. Uvicorn answers every receive with `http.disconnect` once a response is complete
    (uvicorn/protocols/http/httptools_impl.py, `RequestResponseCycle.receive`), and the stream may
    still be closing its source then: that is no hang-up to cut short.

    The watch calls the object itself, not a bound method of it: one object fewer per open stream."""

    __slots__ = ("cancelled", "handling", "stream", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.handling = True
        self.cancelled = False
        self.stream: EventStream | None = None

    def receiver_ended(self, receiver: asyncio.Future[None]) -> None:
        if not receiver.cancelled():
            self()

    def __call__(self) -> None:
        if not self.handling:
            return
        if self.stream is not None and self.stream.answered:
            return
        self.cancelled = True
        self.task.cancel()


def _wire_headers(response: EventStreamResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in encode_headers(response.headers.items())
        if name not in _DROPPED_HEADERS
    ]


def encode_headers(items: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI response start sends them: lower-case names, Latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]


def install(app: StreamingQuart, hub: StreamHub) -> None:
    """Wire the engine into `app` (whose class brings the connection class): the hub and its shutdown."""
    app.extensions[_HUB_KEY] = hub

    @app.before_serving
    async def _ready() -> None:
        # Everything built so far (modules, the app, its routes and templates) lives as long as the
        # process: freezing it takes it out of every later full collection, which would otherwise
        # walk it each time, with every paced token waiting (CPython's gc.freeze docs).
        gc.collect()
        gc.freeze()
        # One line per worker process, once it serves: with --workers, the log shows each one come up.
        logging.getLogger("llmstream.stream").info("ready: up to %d open streams", hub.max_streams)

    @app.after_serving
    async def _stop_watchdog() -> None:
        hub.begin_shutdown()
        await hub.stop_watchdog()


def set_stream_lane(app: Quart, lane: StreamLane | None) -> None:
    """Let ``lane`` answer the requests it takes, before Quart would (None: Quart answers them all)."""
    if lane is None:
        app.extensions.pop(_LANE_KEY, None)
    else:
        app.extensions[_LANE_KEY] = lane


def hub_of(app: Quart) -> StreamHub:
    hub: StreamHub = app.extensions[_HUB_KEY]
    return hub


def event_stream(
    source: Source,
    *,
    final_event: FinalEvent = default_final_event,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> EventStreamResponse:
    """The response for `source` (an async iterable of events, or a PushedSource such as
    llmstream.api.pacing's), with the app's stream options overridden by `options`."""
    hub = hub_of(current_app)
    stream_options = replace(hub.options, **options) if options else hub.options
    stream = EventStream(source, hub, options=stream_options, final_event=final_event)
    return EventStreamResponse(stream, http_version=request.http_version, headers=headers)
