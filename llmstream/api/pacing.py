"""Pacing: scheduled events (due times in ms) in, events at their due times out.

An absolute schedule: t0 is the loop's time when the stream starts, and event k is sent at
t0 + due_ms[k]. Sleeping "until due" rather than "for the gap" means pacing never drifts, a late event
(a slow client, a busy loop) does not push every later one back, and an event already due goes out at
once, so the `instant` model never sleeps at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

from llmstream.protocols import Scheduled
from llmstream.protocols.wire import stamped
from llmstream.simulator import StreamPlan
from llmstream.sse import ServerSentEvent
from llmstream.streaming import ResetStream

__all__ = ["paced"]


async def paced(
    items: Iterable[Scheduled], plan: StreamPlan, *, timestamps: bool = False
) -> AsyncIterator[ServerSentEvent]:
    """``items`` at their due times; then, if the plan ends in a reset, an abrupt end of the connection.

    ``timestamps`` adds the send time ``t`` (Unix seconds) to every event that carries a token, so that a
    load-test client can measure its own lag behind the server.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for item in items:
        due = t0 + item.due_ms / 1000
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        if timestamps and item.token is not None:
            yield stamped(item.event, time.time())
        else:
            yield item.event
    if plan.ending == "reset":
        raise ResetStream(f"simulated fault reset_after:{plan.faults.reset_after}")
