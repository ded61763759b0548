"""The bench's lean client (loadtests/streamload/leanclient.py) against a real server that is slow to
answer: what it counts as open, and when it says every stream is."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from streamload.leanclient import ClientPlan, run_client

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def test_idle_memory_is_read_only_once_the_server_has_answered_every_stream(tmp_path: Path) -> None:
    # Regression: the bench read the server's memory at a fixed time, when the client had its
    # connections open; the kernel accepts them before the server does, so a server slow to start
    # streams held fewer of them and looked leaner per stream the slower it was. The client now says
    # when every stream's response head has arrived (`all_answered_flag`), and memory is read then.
    streams, answer_after = 5, 0.75
    flag = tmp_path / "all-answered"
    flag_before_last_head: list[bool] = []
    answered = 0

    handlers_done: list[asyncio.Future[None]] = []

    async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        done = asyncio.get_running_loop().create_future()
        handlers_done.append(done)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(answer_after)  # every connection is open long before any answer
            answered += 1
            if answered == streams:
                flag_before_last_head.append(flag.exists())
            writer.write(HEAD)
            await writer.drain()
            with contextlib.suppress(ConnectionError):
                await reader.read()  # held open, as an idle stream is, until the client leaves
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            done.set_result(None)

    server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plan = ClientPlan(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", streams, measure_s=2.0, warmup_s=0.0,
                      all_answered_flag=str(flag))  # fmt: skip
    async with server:
        tally = await run_client(plan)
        await asyncio.wait_for(asyncio.gather(*handlers_done), 5)
    assert tally.errors == []
    assert tally.most_open == streams
    assert tally.most_answered == streams
    assert flag_before_last_head == [False]  # not said before the last stream was answered
    assert flag.exists()  # and said once it was
