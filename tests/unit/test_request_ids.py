"""X-Request-ID on every answer, chosen by Quart hooks (llmstream.request_ids), run in-process."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from llmstream.app import create_app
from llmstream.config import Settings


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to its threads."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_the_request_id_hooks_run_on_the_loop_not_in_worker_threads() -> None:
    # Regression: plain-function hooks made Quart hand every request to a worker thread twice
    # (Quart.ensure_async), a fifth of the cost of starting a stream.
    executor = CountingExecutor(max_workers=1)
    asyncio.get_running_loop().set_default_executor(executor)
    client = create_app(Settings()).test_client()
    answers = [await client.get("/healthz", headers={"X-Request-ID": f"probe-{n}"}) for n in range(3)]
    assert [a.headers["X-Request-ID"] for a in answers] == ["probe-0", "probe-1", "probe-2"]
    assert executor.submitted == 0
    executor.shutdown()


async def test_an_unsafe_or_missing_request_id_is_replaced_by_a_fresh_one() -> None:
    client = create_app(Settings()).test_client()
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "a b\tc"})
    too_long = await client.get("/healthz", headers={"X-Request-ID": "x" * 65})
    missing = await client.get("/no/such/page")
    ids = [r.headers["X-Request-ID"] for r in (unsafe, too_long, missing)]
    assert all(i.startswith("req_") and len(i) == 28 for i in ids)
    assert len(set(ids)) == 3
    assert missing.status_code == 404
