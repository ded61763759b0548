"""Paced tokens written straight to Uvicorn's transport (llmstream.direct_write), read off a real socket.

The bytes must be the ones Uvicorn's own `send` writes; a client that pushes back, a HEAD request or a
finished response must get what `send` would give them. Every other Uvicorn test in this directory
streams through the direct writes too; these look at them from inside the server.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart

from llmstream import SSEDecoder, streaming
from llmstream.direct_write import DirectWrite
from llmstream.sse_response import hub_of
from tests.integration.conftest import serving_in_process

pytestmark = pytest.mark.timeout(60)

PACED = "/api/chat/stream?prompt=hi&model=fast&seed=7&ttft_ms=0&jitter=0&tokens_per_s=20&max_tokens=8"


async def exchange(base_url: str, request: bytes, *, receive_buffer: int = 0, stall: float = 0.0) -> bytes:
    """Send ``request`` (it asks to close) on a new connection; the whole raw response. ``stall``: seconds
    to read nothing after the first bytes, with a ``receive_buffer`` as small as the kernel allows."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer or 2**16)
    try:
        writer.write(request)
        raw = await reader.read(1)
        await asyncio.sleep(stall)
        return raw + await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()


def post(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data


def chunks_of(raw: bytes) -> list[bytes]:
    """The chunks of a chunked HTTP/1.1 response, checking the framing byte for byte (RFC 9112 §7.1)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"\r\ntransfer-encoding: chunked" in head.lower(), head
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest[:80]  # the last chunk, no trailers, and nothing after it
            return chunks
        chunk, rest = rest[:size], rest[size:]
        assert len(chunk) == size, (size_line, chunk[-40:])
        assert rest.startswith(b"\r\n"), (size_line, rest[:40])
        chunks.append(chunk)
        rest = rest[2:]


def normalised(body: bytes) -> bytes:
    """Without what differs from one stream to the next: request ids, stream keys, creation times."""
    return re.sub(rb"req_[0-9a-f]+|\b[0-9a-f]{16}\b|\"created\":\d+", b"*", body)


def counting_direct_writes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[bool]:
    """Counts what each direct write answered (True: written, False: left to `send`)."""
    answers: collections.Counter[bool] = collections.Counter()
    real = streaming.direct_write_for

    class Counted:
        def __init__(self, direct: DirectWrite) -> None:
            self.direct = direct

        def write(self, body: bytes) -> bool:
            wrote = self.direct.write(body)
            answers[wrote] += 1
            return wrote

    def counted_for(send: Callable[..., Any]) -> DirectWrite | None:
        direct = real(send)
        return None if direct is None else Counted(direct)

    monkeypatch.setattr(streaming, "direct_write_for", counted_for)
    return answers


async def test_paced_tokens_leave_through_uvicorns_transport_as_its_send_would_write_them(
    in_process_server: tuple[str, Quart], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, _ = in_process_server
    answers = counting_direct_writes(monkeypatch)
    direct = chunks_of(await exchange(base_url, get(PACED)))
    assert answers[True] >= 4, answers  # the tokens after the first, 50 ms apart, each from the tick
    monkeypatch.setattr(streaming, "direct_write_for", lambda send: None)
    through_send = chunks_of(await exchange(base_url, get(PACED)))
    assert normalised(b"".join(direct)) == normalised(b"".join(through_send))
    events = SSEDecoder().feed(b"".join(direct))
    assert [e.event for e in events] == ["start"] + ["token"] * 8 + ["finish"]


async def test_tokens_written_straight_to_the_transport_are_counted_in_the_metrics(
    in_process_server: tuple[str, Quart], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token that is the only one due goes from the tick to the transport with no buffer
    # (EventStream.deliver); llmstream_events_sent and llmstream_bytes_sent must still count it.
    base_url, app = in_process_server
    metrics = hub_of(app).metrics
    answers = counting_direct_writes(monkeypatch)
    events_before, bytes_before = metrics.events_sent, metrics.bytes_sent
    chunks = chunks_of(await exchange(base_url, get(PACED)))
    assert answers[True] >= 4, answers
    for _ in range(500):  # the stream adds its counts as it closes, just after its last bytes (<= 5 s)
        if metrics.events_sent != events_before:
            break
        await asyncio.sleep(0.01)
    assert metrics.events_sent - events_before == len(SSEDecoder().feed(b"".join(chunks))) == 10
    assert metrics.bytes_sent - bytes_before == sum(map(len, chunks))


async def test_a_client_that_pushes_back_gets_every_token_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = counting_direct_writes(monkeypatch)
    # A token every ms for 2 s, ~150 KB: each is written from the tick (the writer is parked), and
    # the client reads nothing for the first 1.5 s.
    tokens = 2000
    words = " ".join(["word"] * tokens)
    body = {"prompt": words, "model": "echo", "ttft_ms": 0, "tokens_per_s": 1000, "jitter": 0}
    body |= {"max_tokens": tokens, "stream": True}
    # Small kernel buffers on both sides: the transport's own buffer passes its high-water mark.
    async with serving_in_process(send_buffer=4096) as (base_url, _):
        raw = await exchange(base_url, post("/api/chat", body), receive_buffer=4096, stall=1.5)
    events = SSEDecoder().feed(b"".join(chunks_of(raw)))
    token_events = [e for e in events if e.event == "token"]
    assert [json.loads(e.data or "")["index"] for e in token_events] == list(range(tokens))
    assert events[-1].event == "finish"
    # Some writes went straight to the transport, and while the client pushed back `send` waited for
    # the buffer to drain: the direct writer left those to it.
    assert answers[True] > 0, answers
    assert answers[False] > 0, answers


async def test_a_head_request_gets_no_body(
    in_process_server: tuple[str, Quart], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, _ = in_process_server
    answers = counting_direct_writes(monkeypatch)
    raw = await exchange(base_url, get(PACED, method="HEAD"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == b""
    assert not answers  # no direct writer for a response without a body
