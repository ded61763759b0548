"""The token scheduler: one timer per event loop serves every paced stream that is due.

Sleeping until each token's due time costs a timer handle, a future and a task wake-up per token per
stream (about 15 µs per event on uvloop, 22 µs on asyncio, before any I/O): 40,000 of each per second
for 2,000 streams at 20 tokens/s. Here a paced stream instead holds one entry, at its next due time, in
a heap shared by every stream of the loop, and one `loop.call_at` timer armed for the earliest entry
calls each client that is due, in order of due time, synchronously, within one callback:

    schedule(ticket, due) ─► heap of (due, seq, ticket) ─► one timer, at the earliest due time
    tick: every entry due by now ─► client.serve(now) ─► its next due time, or None (done, or parked)

Ticks are at least `QUANTUM` apart once one has served anything: thousands of streams with their own
start times fall due every few µs, and one tick then serves all that fell due during the last
millisecond rather than one timer per token. No event is served early, and none later than about one
quantum plus the loop's own latency.

A tick serves for at most `TICK_BUDGET` of loop time, then lets the loop run its I/O and ready tasks
before it goes on (in the next loop iteration, with no quantum in between). A core behind its schedule
would otherwise spend one long tick catching up, and everything else the loop does waits for it: a new
stream needs several loop iterations between its connection and its first event (accept, read, the
handler's steps), and past capacity each of them waited for a tick of up to the whole lateness
(measured: 4,000 paced streams on one core, 1,118 first events later than 1 s and none refused).
The budget is also the share of a busy loop that tokens get against everything else it does, new
streams' starts above all: 1 ms let new streams start sooner while the core was full (1,000 paced
streams opening at 250 a second: lateness p99 16-19 ms against 38-77), but under `make soak`'s churn
of 350 new streams a second tokens fell 0.3 s behind and admission refused about half the new
streams. Tokens keep 5 ms.

The scheduler also knows how late it is: a tick serves entries in order of due time, so `now - due`
of the first paced one is the lateness of the most overdue token at that moment. Only entries asked
for at least `QUANTUM` ahead count as paced: an unpaced stream (the `instant` profile, or any rate
above 1,000 tokens/s) asks for its next token at once, is always "behind" a schedule no core could
keep, and sharing the core with others is all it can expect. `lateness(now)` reports how late
tokens keep running: the smaller of the worst lateness of the latest `LATENESS_WINDOW` and of the one
before. A single stall (a garbage collection, one slow request) is late in one window only and is
ignored; a core with more streams than it can serve is late in every window. Admission
(llmstream.hub) refuses new streams while it is high, which is how an overloaded core sheds load
instead of making every stream late.

Removing an entry is O(1): the ticket forgets its entry (`seq`), which the heap drops when it reaches
the top or when stale entries outnumber live ones. When the last live entry goes, the heap is emptied
and the timer cancelled: a scheduler with nothing to serve holds nothing and wakes nobody.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
import weakref
from typing import Protocol

__all__ = ["QUANTUM", "TICK_BUDGET", "Client", "Ticket", "TokenScheduler", "scheduler_for"]

logger = logging.getLogger("llmstream.stream")

QUANTUM = 0.001  # seconds between ticks that serve something; the most a tick adds to lateness
TICK_BUDGET = 0.005  # seconds a tick serves before the loop's other work gets a turn
_CLOCK_EVERY = 32  # clients served between two looks at the clock (a look costs as much as ~1/20 serve)
LATENESS_WINDOW = 0.25  # seconds: lateness(now) needs two windows in a row to be late
_COMPACT_AT = 64  # stale entries tolerated before they may outnumber live ones


class Client(Protocol):
    def serve(self, now: float) -> float | None:
        """Deliver everything due at `now` (loop clock); return the next due time, or None to leave.

        Runs inside the tick: it must not block, and it must not raise (an exception is logged and the
        client dropped, so that one broken stream cannot stop the tick for the others).
        """
        ...


class Ticket:
    """A client's place in one scheduler: at most one entry at a time."""

    __slots__ = ("client", "paced", "seq")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seq = 0  # the sequence number of its live heap entry; 0 when it has none
        self.paced = False  # its entry was asked for at least a quantum ahead: its lateness counts

    @property
    def scheduled(self) -> bool:
        return self.seq != 0


class TokenScheduler:
    """Serves its clients at their due times from one timer on the running loop."""

    def __init__(self, *, quantum: float = QUANTUM, budget: float = TICK_BUDGET) -> None:
        self.quantum = quantum
        self.budget = budget
        self.ticks = 0  # timer callbacks run (for tests and curiosity: one per batch, not per token)
        self._heap: list[tuple[float, int, Ticket]] = []
        self._numbers = itertools.count(1)
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._context = contextvars.Context()
        self._last_served = -math.inf
        # The worst lateness of the current window and of the one before it (seconds).
        self._window_end = -math.inf
        self._late_now = 0.0
        self._late_before = 0.0

    def __len__(self) -> int:
        """Clients waiting for a due time."""
        return self._live

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def lateness(self, now: float) -> float:
        """How late (seconds) tokens have kept running lately: the smaller of the worst lateness of
        the latest window and of the window before it (``now``: loop clock); 0 once nothing was served
        for a window."""
        if now >= self._window_end + LATENESS_WINDOW:
            return 0.0
        return min(self._late_now, self._late_before)

    def _record_lateness(self, now: float, late: float) -> None:
        if now >= self._window_end:
            recent = now < self._window_end + LATENESS_WINDOW
            self._late_before = self._late_now if recent else 0.0
            self._late_now = 0.0
            self._window_end = now + LATENESS_WINDOW
        if late > self._late_now:
            self._late_now = late

    def schedule(self, ticket: Ticket, due: float) -> None:
        """Serve `ticket`'s client at `due` (loop clock), replacing any time it was scheduled for."""
        self._push(ticket, due, asyncio.get_running_loop().time())
        if due < self._timer_at:
            self._arm(due)

    def unschedule(self, ticket: Ticket) -> None:
        """Forget `ticket`'s entry, if it has one; its client will not be served unless scheduled again."""
        if not ticket.seq:
            return
        ticket.seq = 0
        self._live -= 1
        if not self._live:
            # Nothing left to serve: drop the stale entries (and the clients they point to) and the timer.
            self._heap.clear()
            self._disarm()
        elif len(self._heap) > 2 * self._live + _COMPACT_AT:
            # In place: a tick in progress holds this list.
            self._heap[:] = [entry for entry in self._heap if entry[2].seq == entry[1]]
            heapq.heapify(self._heap)

    def _push(self, ticket: Ticket, due: float, now: float) -> None:
        ticket.paced = due - now >= self.quantum
        if not ticket.seq:
            self._live += 1
        seq = ticket.seq = next(self._numbers)
        heapq.heappush(self._heap, (due, seq, ticket))

    def _tick(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self.ticks += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        stop_at = now + self.budget
        heap, heappop, heappush, numbers = self._heap, heapq.heappop, heapq.heappush, self._numbers
        paced_from = now + self.quantum
        again: list[tuple[Ticket, float]] = []
        served = 0
        measured = overran = False
        while heap and heap[0][0] <= now:
            was_due, seq, ticket = heap[0]
            if ticket.seq != seq:
                heappop(heap)
                continue  # unscheduled or rescheduled since
            if served and served % _CLOCK_EVERY == 0 and loop.time() >= stop_at:
                overran = True  # the rest is served in the next iteration, after the loop's I/O
                break
            heappop(heap)
            ticket.seq = 0
            self._live -= 1
            served += 1
            if not measured and ticket.paced:  # the earliest paced entry: the most overdue
                measured = True
                self._record_lateness(now, now - was_due)
            try:
                next_due = ticket.client.serve(now)
            except Exception:
                logger.exception("token scheduler: a client failed and was dropped")
                continue
            if next_due is None:
                continue
            if next_due > now and not ticket.seq:
                # Not due in this tick: back in the heap at once (`_push`, inlined: this is once per
                # paced token).
                ticket.paced = next_due >= paced_from
                self._live += 1
                seq = ticket.seq = next(numbers)
                heappush(heap, (next_due, seq, ticket))
            else:
                again.append((ticket, next_due))
        if served:
            self._last_served = now
        # Pushed after the loop, so that a client asking for `now` again waits for the next tick
        # instead of spinning this one; and armed once, for the earliest entry.
        for ticket, due in again:
            self._push(ticket, due, now)
        while heap and heap[0][2].seq != heap[0][1]:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0], at_once=overran and heap[0][0] <= now)

    def _arm(self, due: float, *, at_once: bool = False) -> None:
        at = due if at_once else max(due, self._last_served + self.quantum)
        if at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        # In a context of its own: a timer runs in a copy of the context it was armed in, here the
        # request of the stream that armed it, which it would then keep alive until it fires.
        self._timer = asyncio.get_running_loop().call_at(at, self._tick, context=self._context)
        self._timer_at = at

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf


# One scheduler per loop, so that one tick serves every stream of the loop (every app, every API).
# Weak keys: a closed loop (a test's, a worker's) takes its scheduler with it.
_schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TokenScheduler] = (
    weakref.WeakKeyDictionary()
)


def scheduler_for(loop: asyncio.AbstractEventLoop) -> TokenScheduler:
    """The running loop's scheduler, created on first use."""
    scheduler = _schedulers.get(loop)
    if scheduler is None:
        scheduler = _schedulers[loop] = TokenScheduler()
    return scheduler
