"""Pacing: scheduled events (due times in ms) in, events at their due times out.

An absolute schedule: event k is sent at t0 + due_ms[k]. Sending "when due" rather than "after the
gap" means pacing never drifts, a late event (a slow client, a busy loop) does not push every later one
back, and an event already due goes out at once, so the `instant` model never waits at all.

t0 is the loop time at which the request was received, so that a model's time to first token counts
from the request, as a provider's does: handling the request takes nothing off it. A stream that
starts after its first token was due (a server busier than the model's time to first token allows)
has its whole schedule moved to now: like a provider's queue, a wait delays the first token, and the
tokens after it keep their gaps instead of bursting out to catch up.

No stream sleeps, and no stream has a task pulling its events: a `PacedSource` is a `PushedSource`
(llmstream.sources) that the loop's shared TokenScheduler (llmstream.scheduler) serves at its next due
time, one tick for every stream that is due. Each serve hands the stream's buffer every event due by
then, and its writer wakes once for all of them. Whatever is due already (the start event, the whole
`instant` answer, a catch-up after a stall or a full buffer) is handed over at once, with no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from llmstream.protocols import Scheduled, StreamItem, TokenRun
from llmstream.scheduler import Ticket, TokenScheduler, scheduler_for
from llmstream.simulator import StreamPlan
from llmstream.sources import SEND_TIME_SLOT, PushedSource, ResetStream, Sink

__all__ = ["PacedSource", "paced"]


def paced(items: Iterable[StreamItem], plan: StreamPlan, *, timestamps: bool = False) -> PacedSource:
    """``items`` at their due times; then, if the plan ends in a reset, an abrupt end of the connection.

    ``timestamps`` adds the send time ``t`` (Unix seconds) to every token event (each `TokenRun`'s; other
    items are sent as they are), so that a load-test client can measure its own lag behind the server.
    """
    ending = None
    if plan.ending == "reset":
        ending = ResetStream(f"simulated fault reset_after:{plan.faults.reset_after}")
    first_token_ms = plan.tokens.due_ms[0] if len(plan.tokens) else plan.end_ms
    return PacedSource(items, ending=ending, timestamps=timestamps, lead=first_token_ms / 1000)


class PacedSource(PushedSource):
    """Events offered to the stream at t0 + due_ms, by the running loop's TokenScheduler."""

    def __init__(
        self,
        items: Iterable[StreamItem],
        *,
        ending: BaseException | None = None,
        timestamps: bool = False,
        lead: float = 0.0,
    ) -> None:
        """``lead``: seconds from the request to the first token, the most of a late start that the
        schedule absorbs (see the module's docstring)."""
        self._items: Iterator[StreamItem] = iter(items)
        self._lead = lead
        self._ending = ending
        self.send_times = timestamps  # token events carry a send-time slot the stream fills
        self._next: StreamItem | None = None  # taken from `items`, not yet due or not yet offered
        self._position = 0  # in a TokenRun `_next`: the next token to offer
        # The TokenRun being offered, taken apart once (`_start_run`), not at every serve.
        self._render: Callable[[int, str], bytes] = _no_run
        self._run_due_ms: tuple[float, ...] = ()
        self._run_texts: tuple[str, ...] = ()
        self._run_first = 0
        self._sink: Sink | None = None
        self._scheduler: TokenScheduler | None = None
        self._ticket = Ticket(self)
        self._t0 = 0.0
        self._closed = False

    @property
    def scheduled(self) -> bool:
        """Waiting in the scheduler for its next due time."""
        return self._ticket.scheduled

    def start(self, sink: Sink, since: float | None = None) -> None:
        """Offer what is due, counting from ``since`` (loop time: when the request was received; now if
        None), or from later, so that the first token is not due before now."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._sink, self._scheduler = sink, scheduler_for(loop)
        now = loop.time()
        self._t0 = now if since is None else min(now, max(since, now - self._lead))
        self._wait_for(self.serve(now))

    def resume(self) -> None:
        if self._scheduler is not None and not self._closed:
            self._wait_for(self.serve(asyncio.get_running_loop().time()))

    def close(self) -> None:
        self._closed = True
        self._sink = None
        self._items = iter(())  # let the plan go, even while a stale heap entry still points here
        self._next, self._render = None, _no_run
        self._run_due_ms, self._run_texts = (), ()
        if self._scheduler is not None:
            self._scheduler.unschedule(self._ticket)
        # The ticket and its source point at each other: a cycle that only a full garbage collection
        # would free, left by every stream (500 streams run to their end or cut by their client, on
        # fake transports with the collector off, left exactly this and the empty iterator above;
        # with it broken, nothing). Broken here, the source goes as soon as its stream lets it go.
        self._ticket.client = _CLOSED

    def serve(self, now: float) -> float | None:
        """Offer every event due at ``now``; the next due time, or None when done or refused.

        Called by the scheduler's tick (and at start and resume): it never raises, so a broken plan
        ends its own stream with an error and the tick goes on with the others.
        """
        sink = self._sink
        if sink is None:
            return None
        try:
            return self._offer_due(sink, now)
        finally:
            sink.flush()

    def _offer_due(self, sink: Sink, now: float) -> float | None:
        try:
            item = self._next
            while True:
                if item is None:
                    item = next(self._items, None)
                    if item is None:
                        self.close()
                        sink.end(self._ending)
                        return None
                    if item.__class__ is TokenRun:
                        self._start_run(item)
                if item.__class__ is TokenRun:
                    # The hot loop: one token event per pass, rendered from the plan's own tuples.
                    due_ms, texts, first = self._run_due_ms, self._run_texts, self._run_first
                    render = self._render
                    position, t0, end = self._position, self._t0, len(due_ms)
                    while position < end:
                        due = t0 + due_ms[position] / 1000
                        if due > now:
                            self._next, self._position = item, position
                            return due
                        data = render(first + position, texts[position])
                        position += 1
                        if position < end and (due := t0 + due_ms[position] / 1000) > now:
                            # The last token due now (at 20 tokens/s, the only one): offered and
                            # written in one call, which spares the stream's buffer when it can.
                            self._next, self._position = item, position
                            return due if sink.deliver(data) else None
                        if not sink.offer(data):
                            self._next, self._position = item, position
                            return None  # the buffer is full: wait, unscheduled, for resume()
                    self._next = item = None
                    continue
                scheduled = cast(Scheduled, item)
                due = self._t0 + scheduled.due_ms / 1000
                if due > now:
                    self._next = item
                    return due
                self._next = item = None
                if not sink.offer(scheduled.event.encode()):
                    return None  # the buffer is full: wait, unscheduled, for resume()
        except Exception as exc:
            self.close()
            sink.end(exc)
            return None

    def _start_run(self, run: TokenRun) -> None:
        template = run.template
        if self.send_times:  # token events carry a slot the stream fills with the time of the write
            template = template.with_member("t", SEND_TIME_SLOT)
        self._render, self._position = template.render, 0
        tokens = run.tokens
        self._run_due_ms, self._run_texts, self._run_first = tokens.due_ms, tokens.texts, tokens.first

    def _wait_for(self, due: float | None) -> None:
        if due is not None and self._scheduler is not None:
            self._scheduler.schedule(self._ticket, due)


class _Closed:
    """What a closed source's ticket serves: nothing (its entry is stale; the tick skips it anyway)."""

    def serve(self, now: float) -> float | None:
        return None


_CLOSED = _Closed()


def _no_run(index: int, text: str) -> bytes:
    raise AssertionError("a token rendered outside a TokenRun")  # pragma: no cover
