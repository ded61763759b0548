"""A coroutine started from a loop callback runs each step as the task that finishes it would."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from llmstream.handoff import TaskSteps, in_a_callback

_var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_a_coroutine_started_in_a_callback_and_finished_by_the_task_sees_that_task_throughout() -> None:
    gate = asyncio.Event()
    seen: list[tuple[asyncio.Task[Any] | None, str]] = []

    async def send() -> None:
        seen.append((asyncio.current_task(), _var.get()))
        await gate.wait()
        seen.append((asyncio.current_task(), _var.get()))

    async def writer() -> None:
        _var.set("writer's")
        task = asyncio.current_task()
        assert task is not None
        steps = TaskSteps(task, contextvars.copy_context())
        started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def in_the_tick() -> None:
            assert in_a_callback()
            started.set_result(steps.start(send()))

        asyncio.get_running_loop().call_soon(in_the_tick)
        unfinished = await started
        assert unfinished is not None  # it waits for the gate
        gate.set()
        await unfinished

    task = asyncio.create_task(writer())
    await asyncio.wait_for(task, 5)
    assert seen == [(task, "writer's"), (task, "writer's")]


async def test_a_coroutine_that_finishes_at_once_needs_no_task() -> None:
    done: list[bool] = []

    async def send() -> None:
        done.append(True)

    task = asyncio.current_task()
    assert task is not None
    steps = TaskSteps(task, contextvars.copy_context())
    assert steps.start(send()) is None
    assert done == [True]


async def test_cancelling_the_task_that_finishes_it_cancels_the_coroutine_where_it_waits() -> None:
    cancelled: list[bool] = []

    async def send() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def writer() -> None:
        task = asyncio.current_task()
        assert task is not None
        unfinished = TaskSteps(task, contextvars.copy_context()).start(send())
        assert unfinished is not None
        await unfinished

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == [True]
