"""The token scheduler: one timer per loop, every due client served per tick, in order of due time."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref

import pytest

from llmstream.scheduler import Ticket, TokenScheduler, scheduler_for


class Recorder:
    """A client that records when it was served and asks to come back after `every` seconds."""

    def __init__(self, scheduler: TokenScheduler, name: object = None, *, every: float | None = None) -> None:
        self.scheduler = scheduler
        self.name = name
        self.every = every
        self.served: list[tuple[int, float, float]] = []  # (tick, now given, loop time)
        self.ticket = Ticket(self)
        self.log: list[object] | None = None

    def serve(self, now: float) -> float | None:
        self.served.append((self.scheduler.ticks, now, asyncio.get_running_loop().time()))
        if self.log is not None:
            self.log.append(self.name)
        return None if self.every is None else now + self.every


def block_loop(seconds: float) -> None:
    time.sleep(seconds)  # a callback that hogs the loop, as a burst of other work would


async def test_clients_due_at_the_same_instant_are_all_served_in_one_tick() -> None:
    scheduler = TokenScheduler(budget=1.0)  # a budget no busy machine reaches in 500 serves
    loop = asyncio.get_running_loop()
    due = loop.time() + 0.02
    clients = [Recorder(scheduler) for _ in range(500)]
    for client in clients:
        scheduler.schedule(client.ticket, due)
    await asyncio.sleep(0.1)
    assert scheduler.ticks == 1
    assert all(len(c.served) == 1 and c.served[0][0] == 1 for c in clients)
    assert all(now >= due for c in clients for _, now, _ in c.served)  # never early


async def test_one_tick_serves_the_due_clients_in_order_of_due_time() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    start = loop.time()
    order: list[object] = []
    dues = [0.030, 0.010, 0.025, 0.015, 0.020, 0.012]
    for due in dues:
        client = Recorder(scheduler, due)
        client.log = order
        scheduler.schedule(client.ticket, start + due)
    loop.call_soon(block_loop, 0.06)  # all of them fall due while the loop is busy
    await asyncio.sleep(0.1)
    assert scheduler.ticks == 1
    assert order == sorted(dues)


class SlowRecorder(Recorder):
    """A client whose every serve takes `cost` seconds of the loop (a big batch of writes)."""

    def __init__(self, scheduler: TokenScheduler, name: object, cost: float) -> None:
        super().__init__(scheduler, name)
        self.cost = cost

    def serve(self, now: float) -> float | None:
        block_loop(self.cost)
        return super().serve(now)


async def test_a_tick_past_its_budget_lets_the_loop_run_before_it_serves_the_rest() -> None:
    # Regression: a core behind its schedule spent one long tick catching up, and a new stream's
    # steps (accept, read, handler) each waited for it: past capacity, first events came seconds late.
    scheduler = TokenScheduler(budget=0.005)
    loop = asyncio.get_running_loop()
    order: list[object] = []
    start = loop.time() + 0.01
    for k in range(160):  # 32 serves (a look at the clock) of 0.2 ms each overrun the budget
        client = SlowRecorder(scheduler, k, cost=0.0002)
        client.log = order
        scheduler.schedule(client.ticket, start)  # ties are served in the order scheduled

    def other_work(turns_left: int) -> None:  # what the loop does between ticks: I/O, task steps
        order.append("loop")
        if turns_left:
            loop.call_soon(other_work, turns_left - 1)

    loop.call_at(start, other_work, 500)
    await asyncio.sleep(0.3)
    served = [name for name in order if name != "loop"]
    assert served == list(range(160))  # each once, in order
    assert scheduler.ticks == 5
    runs = "".join("c" if name != "loop" else " " for name in order).split()
    assert [len(run) for run in runs] == [32] * 5  # the loop had a turn between every two parts


async def test_an_unscheduled_client_is_not_served_and_nothing_stays_registered() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    client = Recorder(scheduler)
    scheduler.schedule(client.ticket, loop.time() + 0.01)
    assert len(scheduler) == 1
    assert scheduler.armed
    scheduler.unschedule(client.ticket)
    scheduler.unschedule(client.ticket)  # twice is harmless
    assert len(scheduler) == 0
    assert not scheduler.armed  # no timer left for nobody
    await asyncio.sleep(0.03)
    assert client.served == []
    assert scheduler.ticks == 0


async def test_an_unscheduled_client_is_not_kept_alive_by_the_scheduler() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    other = Recorder(scheduler)
    scheduler.schedule(other.ticket, loop.time() + 60)  # keeps the scheduler busy
    gone = Recorder(scheduler)
    scheduler.schedule(gone.ticket, loop.time() + 30)
    scheduler.unschedule(gone.ticket)
    ref = weakref.ref(gone)
    # The stale entry may stay in the heap until it surfaces; the client must drop its ticket's hold
    # on it for it to be freed, as PacedSource.close() does. Here: compaction drops stale entries.
    for _ in range(200):
        churn = Recorder(scheduler)
        scheduler.schedule(churn.ticket, loop.time() + 30)
        scheduler.unschedule(churn.ticket)
    del gone, churn
    gc.collect()
    assert ref() is None
    assert len(scheduler) == 1
    scheduler.unschedule(other.ticket)


async def test_rescheduling_replaces_the_previous_time() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    client = Recorder(scheduler)
    scheduler.schedule(client.ticket, loop.time() + 10)
    start = loop.time()
    scheduler.schedule(client.ticket, start + 0.02)  # earlier: the timer must be re-armed
    assert len(scheduler) == 1
    await asyncio.sleep(0.08)
    assert len(client.served) == 1  # once, not once per schedule() call
    assert 0.02 <= client.served[0][2] - start < 0.06
    assert len(scheduler) == 0
    assert not scheduler.armed


async def test_late_ticks_catch_up_without_drift() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    start = loop.time()

    class Paced:
        """Token k due at start + k * 10 ms, as a paced stream: all that is due, then the next."""

        def __init__(self) -> None:
            self.k = 0
            self.sent: list[tuple[int, float]] = []

        def serve(self, now: float) -> float | None:
            while start + self.k * 0.01 <= now:
                self.sent.append((self.k, loop.time() - start))
                self.k += 1
            return start + self.k * 0.01 if self.k < 30 else None

    client = Paced()
    scheduler.schedule(Ticket(client), start)
    loop.call_later(0.045, block_loop, 0.1)  # the loop stalls from 45 to 145 ms
    await asyncio.sleep(0.45)
    assert [k for k, _ in client.sent] == list(range(30))  # in order, none lost or repeated
    for k, at in client.sent:
        assert at >= k * 0.01  # never early
    # Tokens 5..14 fell due during the stall and leave together right after it ...
    caught_up = [at for k, at in client.sent if 5 <= k <= 14]
    assert max(caught_up) - min(caught_up) < 0.005
    # ... and the schedule then goes on as planned: not shifted by the 100 ms stall.
    assert all(at < k * 0.01 + 0.03 for k, at in client.sent if k >= 20)


async def test_ticks_that_serve_are_a_quantum_apart() -> None:
    scheduler = TokenScheduler(quantum=0.005)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.01
    clients = [Recorder(scheduler) for _ in range(100)]
    for i, client in enumerate(clients):
        scheduler.schedule(client.ticket, start + i * 0.0002)  # one every 0.2 ms, over 20 ms
    await asyncio.sleep(0.08)
    assert all(len(c.served) == 1 for c in clients)
    # One timer per client would be 100 ticks; a 5 ms quantum allows at most 20 ms / 5 ms + 1.
    assert scheduler.ticks <= 5
    lateness = [c.served[0][1] - (start + i * 0.0002) for i, c in enumerate(clients)]
    assert min(lateness) >= 0


async def test_a_client_that_fails_is_dropped_and_the_tick_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()

    class Broken:
        def serve(self, now: float) -> float | None:
            raise RuntimeError("boom")

    due = loop.time() + 0.01
    before, after = Recorder(scheduler), Recorder(scheduler)
    scheduler.schedule(before.ticket, due)
    scheduler.schedule(Ticket(Broken()), due)
    scheduler.schedule(after.ticket, due)
    with caplog.at_level(logging.ERROR, logger="llmstream.stream"):
        await asyncio.sleep(0.05)
    assert len(before.served) == len(after.served) == 1
    assert "a client failed" in caplog.text
    assert len(scheduler) == 0
    assert not scheduler.armed


async def test_a_client_asking_for_now_again_waits_for_the_next_tick() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    calls: list[int] = []

    class Eager:
        def serve(self, now: float) -> float | None:
            calls.append(scheduler.ticks)
            return now if len(calls) < 3 else None

    scheduler.schedule(Ticket(Eager()), loop.time())
    await asyncio.sleep(0.05)
    assert calls == [1, 2, 3]  # one serve per tick, never a spin within one


async def test_one_scheduler_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert scheduler_for(loop) is scheduler_for(loop)
    other = asyncio.new_event_loop()
    try:
        assert scheduler_for(other) is not scheduler_for(loop)
    finally:
        other.close()


async def test_lateness_is_how_late_tokens_keep_running_and_a_single_stall_is_not_counted() -> None:
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()
    assert scheduler.lateness(loop.time()) == 0.0  # nothing served yet
    punctual = Recorder(scheduler, every=0.01)
    scheduler.schedule(punctual.ticket, loop.time() + 0.01)
    await asyncio.sleep(0.6)
    assert scheduler.lateness(loop.time()) < 0.05  # on time
    block_loop(0.2)  # one stall, as a garbage collection makes: late in one window only
    await asyncio.sleep(0.05)
    assert scheduler.lateness(loop.time()) < 0.05
    for _ in range(4):  # stalls in window after window: the core cannot keep up
        block_loop(0.2)
        await asyncio.sleep(0.06)
    assert 0.15 < scheduler.lateness(loop.time()) < 1.0
    await asyncio.sleep(0.6)  # on time again for two windows
    assert scheduler.lateness(loop.time()) < 0.05
    scheduler.unschedule(punctual.ticket)
    await asyncio.sleep(0.6)
    assert scheduler.lateness(loop.time()) == 0.0  # idle: nothing is late


async def test_unpaced_streams_do_not_count_as_late_however_busy_the_core() -> None:
    # Regression: 100 unpaced streams (1,000,000 tokens/s asked) kept the core busy, their every
    # token counted as late, and admission refused every new stream as overloaded (bench: 0 events/s).
    scheduler = TokenScheduler()
    loop = asyncio.get_running_loop()

    class Unpaced:
        def serve(self, now: float) -> float | None:
            return now + 1e-6  # the next token at once: no schedule a core could keep

    ticket = Ticket(Unpaced())
    scheduler.schedule(ticket, loop.time())
    for _ in range(4):  # the core is busy window after window
        block_loop(0.2)
        await asyncio.sleep(0.06)
    assert scheduler.ticks > 4
    assert scheduler.lateness(loop.time()) == 0.0
    scheduler.unschedule(ticket)
