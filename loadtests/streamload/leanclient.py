"""The benchmark's client: many SSE streams from one asyncio process, as cheaply as Python reads them.

Each connection is an `asyncio.Protocol` that sends a request, reads the response's head, de-chunks
the body (`BodyFraming`) and counts token events with `bytes.count`: no SSE parsing and no JSON, so
the client costs a fraction of what it measures (the bench shows its ceiling against a server that
does nothing but write). A connection asks for the next stream on the same keep-alive connection as
soon as one ends, until the run's end.

Paced streams are asked with a regular schedule (no time to first token, no jitter), so token k of a
stream is due ``k / tokens_per_s`` after its request was sent: the lateness of each token is its
receive time minus that, request and planning time included.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from .http11 import BodyFraming, HTTPError

__all__ = ["ClientPlan", "Tally", "run_client"]

# No line ending in the mark: servers end SSE lines with LF or CRLF (sse-starlette writes CRLF).
TOKEN_MARK = b"event: token"
MAX_HEAD = 65_536


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """What the client does: ``streams`` connections to 127.0.0.1:``port``, each sending ``request``
    (a whole HTTP/1.1 request) again and again. Connections open evenly over ``ramp_s``; tokens count
    from ``ramp_s + warmup_s`` for ``measure_s``; then every connection closes."""

    port: int
    request: bytes
    streams: int
    measure_s: float
    ramp_s: float = 0.0
    warmup_s: float = 1.0
    tokens_per_s: float | None = None  # paced: each token's lateness is measured
    host: str = "127.0.0.1"
    # A file the client creates once every stream has its response head: the server holds them all.
    all_answered_flag: str = ""


@dataclass(slots=True)
class Tally:
    """What the client saw in the measured window (``tokens``, ``lateness_ms``) and over the whole run
    (streams, refusals, errors, and each stream's wait for its first token or for its refusal)."""

    tokens: int = 0
    streams_done: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    first_token_ms: list[float] = field(default_factory=list)
    refusal_ms: list[float] = field(default_factory=list)
    open_now: int = 0  # connections open (the kernel accepts them before the server does)
    answered_now: int = 0  # of those, the ones whose response head has arrived and not yet ended
    most_answered: int = 0
    most_open: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0


class _Stream(asyncio.Protocol):
    """One keep-alive connection running one stream after another."""

    def __init__(self, plan: ClientPlan, tally: Tally, window: tuple[float, float], stop: float) -> None:
        self.plan, self.tally, self.window, self.stop_at = plan, tally, window, stop
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.framing: BodyFraming | None = None
        self.sent_at = 0.0
        self.index = 0  # token events received in this stream so far
        self.tail = b""  # the end of the last body piece: a mark may be split across two reads
        self.waiting = False  # a request is out and its response not yet read to the end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A transport of uvloop's is not an asyncio.Transport subclass; it has the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self.tally.open_now += 1
        self.tally.most_open = max(self.tally.most_open, self.tally.open_now)
        self._ask()

    def _ask(self) -> None:
        assert self.transport is not None
        self.head.clear()
        self.framing, self.index, self.tail = None, 0, b""
        self.sent_at = time.perf_counter()
        self.waiting = True
        self.transport.write(self.plan.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        try:
            if self.framing is None:
                data = self._read_head(data, now)
                if self.framing is None:
                    return
            body = self.framing.feed(data)
        except HTTPError as error:
            self._fail(str(error))
            return
        if body:
            self._count(body, now)
        if self.framing.done:
            self._finished(now)

    def _read_head(self, data: bytes, now: float) -> bytes:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                raise HTTPError("response head too long")
            return b""
        lines = bytes(self.head[:end]).decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[1].isdigit():
            raise HTTPError(f"bad status line {lines[0][:40]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status[1] == "503":
            # Refused at once is fair under overload; the body says why and is not read.
            self.tally.refused += 1
            self.tally.refusal_ms.append((now - self.sent_at) * 1000)
            self._close()
            return b""
        if status[1] != "200":
            raise HTTPError(f"status {status[1]}")
        self.framing = BodyFraming(headers)
        self._answered(1)
        return bytes(self.head[end + 4 :])

    def _answered(self, change: int) -> None:
        tally = self.tally
        tally.answered_now += change
        if tally.answered_now > tally.most_answered:
            tally.most_answered = tally.answered_now
            if tally.most_answered == self.plan.streams and self.plan.all_answered_flag:
                Path(self.plan.all_answered_flag).touch()

    def _count(self, body: bytes, now: float) -> None:
        text = self.tail + body
        found = text.count(TOKEN_MARK)
        self.tail = text[-(len(TOKEN_MARK) - 1) :]
        if not found:
            return
        if self.index == 0:
            self.tally.first_token_ms.append((now - self.sent_at) * 1000)
        start, end = self.window
        if start <= now < end:
            tally = self.tally
            tally.tokens += found
            rate = self.plan.tokens_per_s
            if rate:
                since = (now - self.sent_at) * 1000
                gap = 1000 / rate
                tally.lateness_ms.extend(since - k * gap for k in range(self.index, self.index + found))
        self.index += found

    def _finished(self, now: float) -> None:
        self.waiting = False
        self._answered(-1)
        self.tally.streams_done += 1
        assert self.framing is not None
        if self.framing.rest:
            self._fail("bytes after the end of a response")
        elif now < self.stop_at:
            self._ask()
        else:
            self._close()

    def _fail(self, reason: str) -> None:
        if len(self.tally.errors) < 100:
            self.tally.errors.append(reason)
        self._close()

    def _cut(self) -> None:
        if self.framing is not None and not self.framing.done:
            self._answered(-1)  # a response under way, cut
            self.framing = None

    def _close(self) -> None:
        self._cut()
        self.waiting = False
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.open_now -= 1
        self._cut()
        if self.waiting and time.perf_counter() < self.stop_at:
            self._fail(f"connection lost during a response: {exc or 'closed by the server'}")
        if not self.closed.done():
            self.closed.set_result(None)


async def run_client(plan: ClientPlan) -> Tally:
    """Run ``plan`` to its end (ramp, warm-up, measured window) and return what was seen."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    began, cpu_began = time.perf_counter(), time.process_time()
    window_start = began + plan.ramp_s + plan.warmup_s
    window = (window_start, window_start + plan.measure_s)
    streams: list[_Stream] = []
    step = plan.ramp_s / plan.streams if plan.streams else 0.0
    for number in range(plan.streams):
        due = began + number * step
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        try:
            _, stream = await loop.create_connection(
                lambda: _Stream(plan, tally, window, window[1]), plan.host, plan.port
            )
        except OSError as error:
            tally.errors.append(f"connect: {error}")
            continue
        streams.append(stream)
    if (wait := window[1] - time.perf_counter()) > 0:
        await asyncio.sleep(wait)
    for stream in streams:
        stream._close()
    if streams:  # bounded: a connection the server does not let go of is left after a few seconds
        await asyncio.wait([stream.closed for stream in streams], timeout=5)
    tally.cpu_s = time.process_time() - cpu_began
    tally.wall_s = time.perf_counter() - began
    return tally
