"""The kinds of stream a load-test user runs: a whole stream on each API, and three clients that
misbehave as real ones do (one that drops and resumes, one that gives up early, one that reads slowly).

No Locust here: `run_stream` takes a connection and returns a `StreamRecord`, so tests can drive it
from plain threads against a real server.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from llmstream.sse import SSEDecoder

from .apis import ApiName, Reading, StreamSpec, request_for
from .http11 import Connection, HTTPError
from .record import StreamRecord

__all__ = ["DEFAULT_MIX", "KINDS", "Kind", "StreamFailed", "api_of", "parse_mix", "run_stream"]

Kind = Literal["native", "openai", "anthropic", "resumer", "aborter", "slow"]
KINDS: tuple[Kind, ...] = ("native", "openai", "anthropic", "resumer", "aborter", "slow")
_API: dict[Kind, ApiName] = {
    "native": "native", "openai": "openai", "anthropic": "anthropic",
    "resumer": "native", "aborter": "native", "slow": "native",
}  # fmt: skip
DEFAULT_MIX = "native=3,openai=3,anthropic=3,resumer=1,aborter=1,slow=1"
SLOW_RECV_BYTES = 256  # a slow reader takes this much per read, then pauses
ERROR_BODY_BYTES = 300


class StreamFailed(Exception):
    """The server refused the stream (an HTTP error status) or answered something that is not SSE."""


def api_of(kind: Kind) -> ApiName:
    return _API[kind]


def parse_mix(text: str) -> dict[Kind, float]:
    """``"native=3,openai=1"`` as weights per kind (kinds not named get none); ValueError if malformed."""
    weights: dict[Kind, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"unknown kind {name!r} in the mix {text!r}: kinds are {', '.join(KINDS)}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name} must be a number, not {value!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"the weight of {name} must be a finite number >= 0, not {value!r}")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError(f"the mix {text!r} gives no kind a weight above 0")
    return weights


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a misbehaving client departs from a plain read."""

    stop_after: int | None = None  # hang up once this many tokens arrived (aborter, resumer)
    pause: float = 0.0  # seconds between reads (slow reader)


def run_stream(
    kind: Kind,
    connection: Connection,
    spec: StreamSpec,
    *,
    rng: random.Random,
    intended_start: float | None = None,
    slow_bytes_per_s: float = 2048.0,
) -> StreamRecord:
    """Run one stream of ``kind`` on ``connection`` and return what was measured; never raises for a
    failed stream (the record's outcome says failed, its error why)."""
    api = api_of(kind)
    start = time.time()
    record = StreamRecord(
        stream=uuid.uuid4().hex[:16],
        kind=kind,
        api=api,
        intended_start=start if intended_start is None else intended_start,
        start=start,
        reading=Reading(api),
        measure_lag=kind != "slow",
    )
    path, headers, body = request_for(api, spec)
    early = max(1, rng.randint(1, max(1, spec.max_tokens // 2)))
    try:
        if kind == "aborter":
            if _read(connection, path, headers, body, record, Behaviour(stop_after=early)):
                record.outcome = "aborted"
        elif kind == "resumer":
            if _read(connection, path, headers, body, record, Behaviour(stop_after=early)):
                _resume(connection, path, headers, body, record)
        elif kind == "slow":
            _read(
                connection, path, headers, body, record, Behaviour(pause=SLOW_RECV_BYTES / slow_bytes_per_s)
            )
        else:
            _read(connection, path, headers, body, record, Behaviour())
    except (HTTPError, StreamFailed) as exc:
        record.outcome, record.error = "failed", str(exc)
    except Exception as exc:  # events of a shape no API sends: the server is broken, not the client
        record.outcome, record.error = "failed", f"unreadable stream: {type(exc).__name__}: {exc}"
        connection.close()
    record.end = time.time()
    if record.outcome != "failed":
        problems = record.extra_problems + record.reading.problems(
            complete=record.outcome != "aborted", check_usage=spec.llmstream, check_indices=spec.llmstream
        )
        if problems:
            record.outcome, record.error = "failed", "; ".join(problems)
    return record


def _resume(
    connection: Connection, path: str, headers: list[tuple[str, str]], body: bytes, record: StreamRecord
) -> None:
    """Reconnect with Last-Event-ID after a hang-up; the server must continue after the last token."""
    reading = record.reading
    last_index = next((i for i in reversed(reading.indices) if i is not None), None)
    if reading.last_event_id is None:
        record.extra_problems.append("no event id to resume from")
        return
    _read(connection, path, [*headers, ("Last-Event-ID", reading.last_event_id)], body, record, Behaviour())
    if reading.resumed_after != last_index:
        record.extra_problems.append(
            f"resumed after index {reading.resumed_after}, but the last token received was {last_index}"
        )


def _read(
    connection: Connection,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    record: StreamRecord,
    behaviour: Behaviour,
) -> bool:
    """One request read into ``record``; True if the client hung up early on purpose."""
    response = connection.request("POST", path, headers, body)
    if response.status != 200:
        text = response.read()[:ERROR_BODY_BYTES].decode("utf-8", "replace")
        raise StreamFailed(f"HTTP {response.status}: {text}")
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        connection.close()
        raise StreamFailed(f"expected text/event-stream, got {content_type!r}")
    reading = record.reading
    decoder = SSEDecoder()
    stop_after = behaviour.stop_after
    last = time.time()

    def on_body(now: float, data: bytes) -> bool:
        nonlocal last
        last = now
        for event in decoder.feed(data):
            reading.feed(event, now)
        # Hang up mid-stream, as a user closing the tab does.
        return stop_after is None or reading.tokens < stop_after or reading.finished

    try:
        if not response.consume(on_body, pause=behaviour.pause):
            return True
        for event in decoder.flush():
            reading.feed(event, last)
    finally:
        record.bytes_received += response.bytes_received
    return False
