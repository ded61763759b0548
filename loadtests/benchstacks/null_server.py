"""A server that does nothing but write: the benchmark client's ceiling.

Raw asyncio (uvloop when installed), the same token events pre-rendered, 256 of them per write and no
pacing. The client is shown not to be the bottleneck when it reads this server far faster than it reads
any stack it measures.

    python loadtests/benchstacks/null_server.py PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import cast

BATCH = 256
EVENT = b'event: token\nid: 0\ndata: {"index":0,"text":" tok"}\n\n'
FINISH = b'event: finish\ndata: {"finish_reason":"length"}\n\n'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class NullStream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A transport of uvloop's is not an asyncio.Transport subclass; it has the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.respond(head.split(" ", 2)[1], body)

    def respond(self, path: str, body: bytes) -> None:
        if path == "/healthz":
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return
        count = int(json.loads(body or b"{}").get("max_tokens", 64))
        parts = [HEAD]
        full, rest = divmod(count, BATCH)
        parts += [chunk(EVENT * BATCH)] * full
        if rest:
            parts.append(chunk(EVENT * rest))
        parts += [chunk(FINISH), b"0\r\n\r\n"]
        self.transport.writelines(parts)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(NullStream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(port: int) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # how the bench stops it
        main(int(sys.argv[1]))
