"""Micro-benchmark of llmstream.sse: events/s to build+encode and to decode a typical token event.

Run: .venv/bin/python loadtests/bench_codec.py   (about 10-15 s; not a test, asserts nothing)
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from llmstream.sse import ServerSentEvent, SSEDecoder

REPEATS = 5
ENCODE_EVENTS = 50_000
STREAM_EVENTS = 50_000


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(label: str, events: int, run: Callable[[], int]) -> None:
    """Time run() REPEATS times (GC off, as in timeit); report the best and median rate."""
    rates = []
    for _ in range(REPEATS):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            done = run()
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        assert done == events, (label, done, events)
        rates.append(events / elapsed)
    best, median = max(rates), statistics.median(rates)
    print(f"{label:<44} best {best:>12,.0f} ev/s ({1e6 / best:6.2f} µs/ev)   median {median:>12,.0f} ev/s")


def encode_tokens() -> int:
    encode = ServerSentEvent.json
    wire = b""
    for i in range(ENCODE_EVENTS):
        wire = encode({"i": i, "text": " hello"}, event="token", id=f"s1:{i}").encode()
    assert wire.endswith(b"\n\n")
    return ENCODE_EVENTS


def make_events() -> list[bytes]:
    return [
        ServerSentEvent.json({"i": i, "text": " hello"}, event="token", id=f"s1:{i}").encode()
        for i in range(STREAM_EVENTS)
    ]


def decoder_run(chunks: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        decoder = SSEDecoder()
        count = 0
        for chunk in chunks:
            count += len(decoder.feed(chunk))
        return count + len(decoder.flush())

    return run


def main() -> None:
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on {sys.platform}")
    print(f"Machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} logical CPUs")
    print(f"Best and median of {REPEATS} runs; typical token event:")
    sample = ServerSentEvent.json({"i": 123, "text": " hello"}, event="token", id="s1:123").encode()
    print(f"  {sample!r} ({len(sample)} bytes)\n")

    measure("construct + encode (ServerSentEvent.json)", ENCODE_EVENTS, encode_tokens)

    events = make_events()
    stream = b"".join(events)
    for label, chunk_size in (("decode, 4 KiB chunks", 4096), ("decode, 64 KiB chunks", 65536)):
        chunks = [stream[i : i + chunk_size] for i in range(0, len(stream), chunk_size)]
        measure(label, STREAM_EVENTS, decoder_run(chunks))
    # One network read per event, as a paced stream arrives.
    measure("decode, one chunk per event", STREAM_EVENTS, decoder_run(events))
    crlf = stream.replace(b"\n", b"\r\n")
    crlf_chunks = [crlf[i : i + 4096] for i in range(0, len(crlf), 4096)]
    measure("decode, 4 KiB chunks, CRLF line ends", STREAM_EVENTS, decoder_run(crlf_chunks))


if __name__ == "__main__":
    main()
