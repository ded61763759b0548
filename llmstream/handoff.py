"""Start a coroutine from a plain loop callback as a given task would, and hand the rest to that task.

The engine writes a paced token from the token scheduler's tick (llmstream.streaming, `flush`): the
server's ASGI send is started right there, and to a client that keeps up it finishes at once, so no
task wakes for it. A send that has to wait (a slow client) is handed to the stream's writer task,
which finishes it. For the send, none of this may show: each of its steps runs as the writer task
would run it, with that task current (`asyncio.current_task`, which `asyncio.timeout` and cancel
scopes need) and in that task's context (send wrappers such as tracing middleware set context
variables), and a cancellation or error thrown into the writer reaches the send as it would reach an
awaited one.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # what Task.__step does around each step
from collections.abc import Callable, Coroutine, Generator
from typing import Any

__all__ = ["Finish", "TaskSteps", "in_a_callback"]


def in_a_callback() -> bool:
    """No task is running: the caller is a plain loop callback (a timer, such as the scheduler's tick)."""
    return asyncio.current_task() is None


class TaskSteps:
    """Runs coroutine steps as ``task`` would: that task current, in ``context`` (a copy of the
    task's context, taken by the task itself)."""

    __slots__ = ("context", "task")

    def __init__(self, task: asyncio.Task[Any], context: contextvars.Context) -> None:
        self.task, self.context = task, context

    def step(self, step: Callable[[Any], Any], value: Any = None) -> Any:
        """``step(value)`` (a coroutine's send or throw) as the task would run it."""
        if not in_a_callback():  # in a task already: the task itself, finishing what it took over
            return self.context.run(step, value)
        loop = asyncio.get_running_loop()
        _enter_task(loop, self.task)
        try:
            return self.context.run(step, value)
        finally:
            _leave_task(loop, self.task)

    def start(self, coroutine: Coroutine[Any, Any, None]) -> Finish | None:
        """Run ``coroutine``'s first step; None if that finished it, else the `Finish` that the task
        awaits to finish it. Raises what the first step raised."""
        try:
            waits_for = self.step(coroutine.send)
        except StopIteration:
            return None
        return Finish(coroutine, waits_for, self)


class Finish:
    """Awaits a coroutine that was started by hand and is suspended on ``waits_for``, exactly as
    awaiting it from the start would have: the awaiting task waits for what the coroutine waits for,
    and a cancellation or error thrown in reaches the coroutine (a hand-written ``yield from``)."""

    __slots__ = ("coroutine", "steps", "waits_for")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waits_for: Any, steps: TaskSteps) -> None:
        self.coroutine, self.waits_for, self.steps = coroutine, waits_for, steps

    def __await__(self) -> Generator[Any, None, None]:
        waits_for = self.waits_for
        while True:
            try:
                yield waits_for
            except BaseException as exc:  # thrown into this await: deliver it to the coroutine
                try:
                    waits_for = self.steps.step(self.coroutine.throw, exc)
                except StopIteration:
                    return
                continue
            try:
                waits_for = self.steps.step(self.coroutine.send, None)
            except StopIteration:
                return

    def close(self) -> None:
        """Nobody will finish it (its task ended first): stop the coroutine where it waits."""
        self.coroutine.close()
