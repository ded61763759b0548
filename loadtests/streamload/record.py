"""One stream's measurements, the figures derived from them, and the raw timelines on disk.

Pure except `TimelineWriter` (plain file writes). Times are Unix seconds (`time.time()`), the clock the
server's send timestamps use, so receive minus send is the client's lag on one machine.
"""

from __future__ import annotations

import csv
import itertools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .apis import ApiName, Reading

__all__ = ["Outcome", "StreamRecord", "TimelineWriter"]

Outcome = Literal["ok", "failed", "aborted"]
STREAM_COLUMNS = [
    "stream", "kind", "api", "intended_start", "start", "first_token", "end",
    "tokens", "usage_tokens", "outcome", "error",
]  # fmt: skip
TOKEN_COLUMNS = ["stream", "position", "index", "recv", "sent"]


@dataclass(slots=True)
class StreamRecord:
    """A stream from the client's side. ``intended_start`` is when it should have started: the same as
    ``start`` in a closed loop, the scheduled arrival in an open loop (so queueing counts as latency)."""

    stream: str
    kind: str
    api: ApiName
    intended_start: float
    start: float
    reading: Reading
    end: float = 0.0
    outcome: Outcome = "ok"
    error: str = ""
    bytes_received: int = 0
    measure_lag: bool = True  # False for deliberately slow readers: their lag is the point
    extra_problems: list[str] = field(default_factory=list)

    @property
    def ttft_ms(self) -> float | None:
        recv = self.reading.recv
        return (recv[0] - self.intended_start) * 1000 if recv else None

    @property
    def e2e_ms(self) -> float:
        return (self.end - self.intended_start) * 1000

    def itl_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.reading.recv)]

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first: (last - first) / (tokens - 1)."""
        recv = self.reading.recv
        return (recv[-1] - recv[0]) * 1000 / (len(recv) - 1) if len(recv) >= 2 else None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens over the whole stream time as the user waited for it (tokens / end-to-end)."""
        seconds = self.end - self.intended_start
        return self.reading.tokens / seconds if seconds > 0 and self.reading.tokens else None

    def lag_ms(self) -> list[float]:
        """Receive minus send time of each token the server stamped (empty for foreign servers)."""
        if not self.measure_lag:
            return []
        return [
            (r - s) * 1000 for r, s in zip(self.reading.recv, self.reading.sent, strict=True) if s is not None
        ]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


class TimelineWriter:
    """Per-process CSV files of every stream and every token received, for the notebooks.

    One pair of files per Locust process (``streams-<host>-<pid>.csv``, ``tokens-<host>-<pid>.csv``), so
    workers on several machines never write to the same file. Rows are written when a stream ends,
    outside the receive path.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}"
        # Appended to, never truncated: a stream that ends after the writer was closed (the end of a
        # run, a second run from the web UI) reopens the files and must not wipe what they hold.
        self._streams_file = (folder / f"streams-{name}.csv").open("a", newline="", buffering=1 << 20)
        self._tokens_file = (folder / f"tokens-{name}.csv").open("a", newline="", buffering=1 << 20)
        self._streams = csv.writer(self._streams_file)
        if not self._streams_file.tell():
            self._streams.writerow(STREAM_COLUMNS)
        if not self._tokens_file.tell():
            self._tokens_file.write(",".join(TOKEN_COLUMNS) + "\r\n")

    def write(self, record: StreamRecord) -> None:
        reading = record.reading
        self._streams.writerow(
            [
                record.stream, record.kind, record.api, _number(record.intended_start),
                _number(record.start), _number(reading.recv[0] if reading.recv else None),
                _number(record.end), reading.tokens,
                "" if reading.usage_tokens is None else reading.usage_tokens, record.outcome, record.error,
            ]
        )  # fmt: skip
        # One string for all of a stream's tokens, not a csv row each: a stream id and numbers need no
        # quoting, and this takes half the time (at 10,000 tokens/s, 2% of a Locust process).
        stream = record.stream
        self._tokens_file.write(
            "".join(
                [
                    f"{stream},{position},{'' if index is None else index},{recv:.6f},{_number(sent)}\r\n"
                    for position, (recv, sent, index) in enumerate(
                        zip(reading.recv, reading.sent, reading.indices, strict=True)
                    )
                ]
            )
        )

    def close(self) -> None:
        self._streams_file.close()
        self._tokens_file.close()
