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

import _socket
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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
                if not size or size.strip(b"0123456789abcdefABCDEF"):  # int() would take 0x, _ and +
                    raise HTTPError(f"chunked body: bad chunk size {size[:20]!r}")
                self._remaining = int(size, 16)
                self._state = "data" if self._remaining else "trailers"
        return bytes(out)

    def rest(self) -> bytes:
        """Bytes received after the end of the body (the next response's, were requests pipelined)."""
        return bytes(self._buffer)


def _content_length(value: str) -> int:
    if not (value.strip().isascii() and value.strip().isdigit()):
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
        self._head_bytes = 0  # bytes of the current response's head received so far
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
            if not reused or self._head_bytes or self.idle_closed:
                raise  # the server answered something, or took too long: not a stale connection
            return self._exchange(method, path, headers, body)

    def close_if_idle(self, now: float) -> None:
        sock = self._sock
        # Only while a response is awaited: a kept-alive connection between requests waits for no
        # read, and closing it would fail the next request rather than time out a read.
        if sock is not None and not self._reusable and now - self._active > self.timeout:
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
        self._head_bytes = 0
        self._active = time.monotonic()
        lines = [f"{method} {self.target.prefix}{path} HTTP/1.1", f"Host: {self.target.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        with self.closed_on_error():
            assert self._sock is not None
            self._sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
            while True:
                status, response_headers, persistent = self._read_head()
                if not 100 <= status < 200:
                    return Response(self, status, response_headers, persistent)

    @contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """A failure inside leaves this connection closed (unusable) and surfaces as HTTPError."""
        try:
            yield
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
            self._head_bytes += len(data)
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


class BodyFraming:
    """Where one response body ends (RFC 9112 §6.3): chunked coding, Content-Length, or the close."""

    def __init__(self, headers: dict[str, str]) -> None:
        codings = headers.get("transfer-encoding")
        length_header = headers.get("content-length")
        chunked = codings is not None and codings.lower().rsplit(",", 1)[-1].strip() == "chunked"
        self._decoder = ChunkedDecoder() if chunked else None
        # A transfer coding wins over Content-Length; without a final chunked, the close ends the body.
        unframed = codings is not None or length_header is None
        self._length = None if unframed else _content_length(length_header or "")
        self.done = self._length == 0
        self.rest = b""  # bytes received past the body's end

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data``; sets ``done`` (and ``rest``) at the body's end."""
        if self._decoder is not None:
            body = self._decoder.feed(data)
            if self._decoder.done:
                self.done, self.rest = True, self._decoder.rest()
            return body
        if self._length is not None:
            body, self.rest = data[: self._length], data[self._length :]
            self._length -= len(body)
            self.done = not self._length
            return body
        return data

    def closed(self) -> None:
        """The peer closed: the end of a close-delimited body (item 8), a broken one otherwise."""
        if self._decoder is not None or self._length is not None:
            raise HTTPError("the server closed the connection before the end of the response")
        self.done = True


# Body handler: (receive time, body bytes) -> whether to go on reading (False: hang up).
BodyHandler = Callable[[float, bytes], bool]


class Response:
    """A response whose head is read; its body is read as it arrives (`consume`, `chunks`)."""

    def __init__(
        self, connection: Connection, status: int, headers: dict[str, str], persistent: bool
    ) -> None:
        self.connection = connection
        self.status = status
        self.headers = headers
        self.persistent = persistent
        self.bytes_received = 0

    def consume(self, handler: BodyHandler, *, pause: float = 0.0) -> bool:
        """Hand every network read's body bytes to ``handler`` until the body ends (True) or the
        handler says stop (False: the connection is then closed). HTTPError if the connection breaks.

        ``pause`` seconds of sleep between reads make a deliberately slow reader (with a small
        ``recv_bytes`` on its connection), so that the server sees backpressure.

        Under gevent (Locust), a plain socket is read by a callback of the event loop rather than by
        this greenlet: a greenlet waking for each read costs two switches and a watcher's start and stop
        per token, four tenths of a load-test process's time at 10,000 events/s.
        """
        conn = self.connection
        framing = BodyFraming(self.headers)
        data, conn._buffer = conn._buffer, b""
        with conn.closed_on_error():
            if data and not self._take(framing, handler, time.time(), data):
                conn.close()
                return False
            if not framing.done:
                raw = _evented_socket(conn._sock) if not pause else None
                if raw is not None:
                    going_on = self._consume_evented(raw, framing, handler)
                else:
                    going_on = self._consume_blocking(framing, handler, pause)
                if not going_on:
                    conn.close()
                    return False
        conn._buffer = framing.rest
        if self.persistent and conn._sock is not None:
            conn._reusable = True
        else:
            conn.close()
        return True

    def _take(self, framing: BodyFraming, handler: BodyHandler, now: float, data: bytes) -> bool:
        self.bytes_received += len(data)
        body = framing.feed(data)
        return handler(now, body) if body else True

    def _consume_blocking(self, framing: BodyFraming, handler: BodyHandler, pause: float) -> bool:
        conn = self.connection
        while not framing.done:
            if pause:
                time.sleep(pause)
            data, now = conn.receive()
            if not data:
                framing.closed()
                conn.close()
                return True
            if not self._take(framing, handler, now, data):
                return False
        return True

    def _consume_evented(self, raw: socket.socket, framing: BodyFraming, handler: BodyHandler) -> bool:
        import gevent.event  # type: ignore[import-untyped]  # only reached in Locust's gevent process

        conn = self.connection
        hub = gevent.get_hub()
        finished = gevent.event.Event()
        outcome: dict[str, object] = {}
        watcher = hub.loop.io(raw.fileno(), 1)

        def readable() -> None:
            try:
                data = raw.recv(conn.recv_bytes)
            except BlockingIOError:
                return
            except BaseException as exc:  # handed to the waiting greenlet, never raised in the loop
                outcome["error"] = exc
                finished.set()
                return
            now = time.time()
            conn._active = time.monotonic()
            try:
                if not data:
                    if conn.idle_closed:
                        raise HTTPError(f"no bytes for {conn.timeout:g} s: the read timed out")
                    framing.closed()
                    outcome["closed"] = True
                elif not self._take(framing, handler, now, data):
                    outcome["stopped"] = True
                elif not framing.done:
                    return
            except BaseException as exc:
                outcome["error"] = exc
            finished.set()

        watcher.start(readable)
        try:
            finished.wait()
        finally:
            watcher.stop()
            watcher.close()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        if "closed" in outcome:
            conn.close()
        return "stopped" not in outcome

    def read(self) -> bytes:
        """The whole body (for error responses)."""
        parts: list[bytes] = []

        def keep(now: float, body: bytes) -> bool:
            parts.append(body)
            return True

        self.consume(keep)
        return b"".join(parts)


def _evented_socket(sock: socket.socket | None) -> socket.socket | None:
    """The OS-level socket under a gevent plain socket (TLS ones are read the blocking way)."""
    if sock is None or not type(sock).__module__.startswith("gevent.") or isinstance(sock, ssl.SSLSocket):
        return None
    raw = getattr(sock, "_sock", None)  # gevent's _wrefsocket: an _socket.socket, not a socket.socket
    return raw if isinstance(raw, _socket.socket) else None  # type: ignore[return-value]
