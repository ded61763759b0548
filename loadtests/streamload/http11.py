"""A small streaming HTTP/1.1 client: each network chunk is handed over the moment it arrives.

Why not Locust's own clients: `FastHttpUser` reads a streamed body in 1 KiB blocks, so a token that
arrives alone waits for the next ones (a TTFT of 205 ms measured as 538 ms), and `HttpUser` with
``stream=True`` reports time-to-headers as the response time. Here one ``recv`` is one chunk: its
receive time is taken as soon as ``recv`` returns, before any parsing.

Why not h11 for the framing: it costs ~23 µs per chunk of a token stream, more than everything else the
client does per token, and one Locust process must hold 10,000 events/s. The subset a load test needs
(a status line, headers, a body framed by chunked coding, Content-Length or the connection's close;
RFC 9112 §4-§7) is small; `ChunkedDecoder` is proven against arbitrary splits in the tests.

The socket is the standard library's, which Locust's gevent monkey-patching makes cooperative, so
thousands of streams share one process. Nothing here imports gevent or Locust: the same client runs in
plain threads under pytest.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ChunkedDecoder", "Connection", "HTTPError", "Response", "Target"]

RECV_BYTES = 65_536
MAX_HEAD_BYTES = 65_536


class HTTPError(Exception):
    """The connection failed or the server broke the HTTP framing (the response did not end cleanly)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: scheme, host, port and a path prefix (``http://gateway/openai`` -> /openai)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the target must be an http:// or https:// URL with a host, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class ChunkedDecoder:
    """The chunked transfer coding (RFC 9112 §7.1), incrementally: bytes in, body bytes out."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._remaining = 0  # body bytes left in the current chunk
        self._state = "size"  # size -> data -> crlf -> size ... -> trailers -> done
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes that ``data`` completes (possibly none); HTTPError on a framing error."""
        buffer = self._buffer
        buffer += data
        out = bytearray()
        while buffer and not self.done:
            if self._state == "data":
                take = min(self._remaining, len(buffer))
                out += buffer[:take]
                del buffer[:take]
                self._remaining -= take
                if self._remaining:
                    break
                self._state = "crlf"
            elif self._state == "crlf":
                if len(buffer) < 2:
                    break
                if buffer[:2] != b"\r\n":
                    raise HTTPError("chunked body: a chunk's data is not followed by CRLF")
                del buffer[:2]
                self._state = "size"
            else:  # "size" or "trailers": one line at a time
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise HTTPError("chunked body: a chunk-size or trailer line is too long")
                    break
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                if self._state == "trailers":
                    self.done = not line
                    continue
                size = line.split(b";", 1)[0].strip()
                try:
                    self._remaining = int(size, 16)
                except ValueError:
                    raise HTTPError(f"chunked body: bad chunk size {size[:20]!r}") from None
                if self._remaining < 0 or size.startswith((b"-", b"+", b"0x", b"0X")):
                    raise HTTPError(f"chunked body: bad chunk size {size[:20]!r}")
                self._state = "data" if self._remaining else "trailers"
        return bytes(out)

    def rest(self) -> bytes:
        """Bytes received after the end of the body (the next response's, were requests pipelined)."""
        return bytes(self._buffer)


def _content_length(value: str) -> int:
    if not value.strip().isdigit():
        raise HTTPError(f"bad Content-Length {value[:20]!r}")
    return int(value)


class _IdleWatch:
    """Closes connections that received nothing for their ``timeout``: one thread (under Locust, one
    greenlet) for all of them, checking once a second.

    A socket timeout would do the same per read, but under gevent every read that waits then creates,
    starts and cancels a Timeout: a tenth of a load-test process's time at 10,000 events/s.
    """

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._connections.add(connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http11-idle-watch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.close_if_idle(now)


_IDLE_WATCH = _IdleWatch()


class Connection:
    """One keep-alive connection to ``target``; requests are sent one after another, never pipelined.

    A read that waits more than ``timeout`` seconds for a byte fails (the connection is closed under it).
    """

    def __init__(self, target: Target, *, timeout: float = 60.0, recv_bytes: int = RECV_BYTES) -> None:
        self.target = target
        self.timeout = timeout
        self.recv_bytes = recv_bytes
        self._sock: socket.socket | None = None
        self._buffer = b""  # bytes received past the response head
        self._reusable = False  # the last response was read to its end and allows another request
        self._active = time.monotonic()  # when a read last returned (or the request went out)
        self.idle_closed = False
        _IDLE_WATCH.add(self)

    def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> Response:
        """Send a request and read up to the response headers; the body is read through the Response.

        A kept-alive connection may have been closed by the server while idle (Uvicorn: after 5 s):
        a request that fails on a reused connection before any response byte is sent again, once, on
        a fresh one, as browsers and HTTP libraries do.
        """
        if self._sock is not None and not self._reusable:
            self.close()  # the last response was not read to its end: this connection is unusable
        reused = self._sock is not None
        try:
            return self._exchange(method, path, headers, body)
        except HTTPError:
            if not reused:
                raise
            return self._exchange(method, path, headers, body)

    def close_if_idle(self, now: float) -> None:
        sock = self._sock
        if sock is not None and now - self._active > self.timeout:
            self.idle_closed = True
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the read that waits, with b""

    def close(self) -> None:
        """Close the socket at once (also how a client hangs up mid-stream)."""
        sock, self._sock = self._sock, None
        self._buffer, self._reusable = b"", False
        if sock is not None:
            sock.close()

    def _exchange(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        if self._sock is None:
            self._connect()
        self._reusable = False
        self._active = time.monotonic()
        lines = [f"{method} {self.target.prefix}{path} HTTP/1.1", f"Host: {self.target.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        try:
            assert self._sock is not None
            self._sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
            while True:
                status, response_headers, persistent = self._read_head()
                if not 100 <= status < 200:
                    return Response(self, status, response_headers, persistent)
        except OSError as exc:
            self.close()
            raise HTTPError(f"{type(exc).__name__}: {exc}") from exc
        except HTTPError:
            self.close()
            raise

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.target.host, self.target.port), timeout=self.timeout)
            # Requests are small and written once; without this a request can sit in Nagle's buffer.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.target.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.target.host)
            sock.settimeout(None)  # reads are timed by the idle watch
        except OSError as exc:
            raise HTTPError(f"cannot connect to {self.target.host}:{self.target.port}: {exc}") from exc
        self._sock, self.idle_closed = sock, False

    def _read_head(self) -> tuple[int, dict[str, str], bool]:
        """Status, headers (names lower-cased) and whether the connection persists (RFC 9112 §9.3)."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise HTTPError("the response head is too long")
            data, _ = self.receive()
            if not data:
                raise HTTPError("the server closed the connection before the response head")
            self._buffer += data
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise HTTPError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise HTTPError(f"malformed header line: {line[:80]!r}")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        persistent = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
        return int(code), headers, persistent

    def receive(self) -> tuple[bytes, float]:
        """One read from the socket and the time it returned (b"" when the peer closed)."""
        assert self._sock is not None
        data = self._sock.recv(self.recv_bytes)
        now = time.time()
        self._active = time.monotonic()
        if not data and self.idle_closed:
            raise HTTPError(f"no bytes for {self.timeout:g} s: the read timed out")
        return data, now


class Response:
    """A response whose head is read; ``chunks()`` yields the body as it arrives (RFC 9112 §6.3)."""

    def __init__(
        self, connection: Connection, status: int, headers: dict[str, str], persistent: bool
    ) -> None:
        self.connection = connection
        self.status = status
        self.headers = headers
        self.persistent = persistent
        self.bytes_received = 0

    def chunks(self, *, pause: float = 0.0) -> Iterator[tuple[float, bytes]]:
        """(receive time, body bytes) per network read that carried body bytes, until the body ends.

        ``pause`` seconds of sleep between reads make a deliberately slow reader (with a small
        ``recv_bytes`` on its connection), so that the server sees backpressure.
        Raises HTTPError if the connection breaks before the body's end.
        """
        conn = self.connection
        chunked = self.headers.get("transfer-encoding", "").lower().rsplit(",", 1)[-1].strip() == "chunked"
        length_header = self.headers.get("content-length")
        length = None if chunked or length_header is None else _content_length(length_header)
        decoder = ChunkedDecoder() if chunked else None
        data, now = conn._buffer, time.time()
        conn._buffer = b""
        try:
            while True:
                if data:
                    self.bytes_received += len(data)
                    if decoder is not None:
                        body = decoder.feed(data)
                        if body:
                            yield now, body
                        if decoder.done:
                            conn._buffer = decoder.rest()
                            break
                    elif length is not None:
                        body, conn._buffer = data[:length], data[length:]
                        length -= len(body)
                        if body:
                            yield now, body
                        if not length:
                            break
                    else:
                        yield now, data
                elif length == 0:
                    break
                if pause:
                    time.sleep(pause)
                data, now = conn.receive()
                if not data:
                    if decoder is None and length is None:
                        conn.close()  # a body delimited by the connection's close (RFC 9112 §6.3 item 8)
                        return
                    raise HTTPError("the server closed the connection before the end of the response")
        except OSError as exc:
            conn.close()
            raise HTTPError(f"{type(exc).__name__}: {exc}") from exc
        except HTTPError:
            conn.close()
            raise
        if self.persistent:
            conn._reusable = True
        else:
            conn.close()

    def read(self) -> bytes:
        """The whole body (for error responses)."""
        return b"".join(data for _, data in self.chunks())
