"""An independent implementation as oracle: eventsource-parser (npm), in one long-lived node process.

Normalisation of the oracle's reports (see tests/oracle/parse.mjs for the wire format):

* eventsource-parser leaves ``event`` undefined when no type was given; a browser says "message",
  and so does SSEDecoder.
* its ``event.id`` is the id field of the event's own block (undefined when absent); the spec's
  ``lastEventId`` is the last event ID string, which persists across blocks. It is rebuilt from
  ``onId``, which fires when any block with an id ends, before that block's ``onEvent``.
* ``onRetry`` reports a JS number (a double): retry values above 2**53 are compared as doubles.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.sse import ServerSentEvent
from tests.unit.test_sse_properties import events, expected_decoding, run, split, sse_like

ORACLE_DIR = Path(__file__).resolve().parents[1] / "oracle"
REPLY_TIMEOUT = 15.0  # seconds; a wedged node fails the test instead of hanging the suite

Row = tuple[str | None, str | None, str | None, int | float | None]  # event, data, id, retry
Decoded = tuple[list[Row], str, int | float | None]


class Oracle:
    """Client for parse.mjs: one request line out, one reply line back."""

    def __init__(self, node: str) -> None:
        self.process = subprocess.Popen(
            [node, "parse.mjs"],
            cwd=ORACLE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.replies: queue.Queue[bytes] = queue.Queue()
        self.stderr: list[bytes] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        # Reader threads, so that every read can time out.
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.replies.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr.append), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._ids = itertools.count()

    @staticmethod
    def _pump(stream: IO[bytes], sink: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                sink(line)

    def parse(self, chunks: Sequence[bytes]) -> Decoded:
        request_id = next(self._ids)
        request = {"id": request_id, "chunks": [base64.b64encode(c).decode() for c in chunks]}
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            line = self.replies.get(timeout=REPLY_TIMEOUT)
        except (OSError, queue.Empty):
            pytest.fail(f"no reply from the node oracle (exit code {self.process.poll()}): {self.errors()}")
        reply = json.loads(line)
        assert reply["id"] == request_id, reply
        assert "error" not in reply, reply["error"]
        return normalise(reply["records"])

    def errors(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")[-2000:]

    def close(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def js_number(retry: int | float | None) -> int | float | None:
    """A retry value as a JS number (a double) would hold it."""
    return float(retry) if retry is not None and retry > 2**53 else retry


def normalise(records: list[list[Any]]) -> Decoded:
    """The oracle's callbacks as SSEDecoder would report them (see the module docstring)."""
    out: list[Row] = []
    last_id: str = ""
    retry: int | float | None = None
    for record in records:
        if record[0] == "id":
            last_id = record[1]
        elif record[0] == "retry":
            retry = record[1]
        else:
            _, event_type, data, block_id = record
            assert block_id is None or block_id == last_id  # onId came first
            out.append((event_type or "message", data, last_id, js_number(retry)))
    return out, last_id, js_number(retry)


def ours(decoded: tuple[list[ServerSentEvent], str, int | None]) -> Decoded:
    """SSEDecoder's output (or what it must be) in the same shape."""
    events, last_id, retry = decoded
    return [(e.event, e.data, e.id, js_number(e.retry)) for e in events], last_id, js_number(retry)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    node = shutil.which("node")
    installed = (ORACLE_DIR / "node_modules" / "eventsource-parser" / "package.json").is_file()
    if node is None or not installed:
        missing = "node is not on PATH" if node is None else f"{ORACLE_DIR}/node_modules is missing"
        message = (
            f"SSE oracle unavailable: {missing}. "
            "Install it with `npm ci --prefix tests/oracle` (`make test` does)."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    client = Oracle(node)
    yield client
    client.close()


SPEC_STREAMS = [
    b"data: YHOO\ndata: +2\ndata: 10\n\n",
    b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
    b"data\n\ndata\ndata\n\ndata:",
    b"data:test\n\ndata: test\n\n",
    b"\xef\xbb\xbfevent: add\ndata: 73857293\r\n\r\nretry: 1500\revent: remove\rdata: 2153\r\r",
    b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\nid: \ndata: c\n\nretry: 12x\ndata: \xff\xe2\x82\n\n",
]


@pytest.mark.parametrize(
    "stream", SPEC_STREAMS, ids=["multiline", "comment-id", "bare-data", "space", "bom-cr", "mixed"]
)
def test_oracle_agrees_on_spec_examples(oracle: Oracle, stream: bytes) -> None:
    assert oracle.parse([stream]) == ours(run([stream]))
    assert oracle.parse([stream[i : i + 1] for i in range(len(stream))]) == ours(run([stream]))


@given(st.lists(events(max_retry=2**53), max_size=6), st.lists(st.integers(min_value=0), max_size=8))
def test_oracle_reads_what_the_encoder_meant(
    oracle: Oracle, sent: list[ServerSentEvent], cuts: list[int]
) -> None:
    chunks = split(b"".join(e.encode() for e in sent), cuts)
    expected = expected_decoding(sent)
    assert oracle.parse(chunks) == ours(expected)
    assert run(chunks) == expected


@given(sse_like, st.lists(st.integers(min_value=0), max_size=8))
def test_oracle_agrees_with_decoder_on_arbitrary_bytes(
    oracle: Oracle, stream: bytes, cuts: list[int]
) -> None:
    chunks = split(stream, cuts)
    assert oracle.parse(chunks) == ours(run(chunks))
