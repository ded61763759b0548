"""The load-test client's pure parts: chunked decoding, the three APIs' readers and their integrity
check, the load shapes, the mix and the run summary. (Locust itself is never imported here: it
monkey-patches the process with gevent.)"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamload.apis import Reading, StreamSpec, request_for
from streamload.http11 import ChunkedDecoder, HTTPError, Target
from streamload.kinds import parse_mix
from streamload.record import StreamRecord, TimelineWriter
from streamload.shapes import load_fraction
from streamload.summary import percentile, summarize

from llmstream.protocols import anthropic, native, openai
from llmstream.protocols.wire import stamped
from llmstream.simulator import StreamPlan, resume_plan
from llmstream.sse import SSEDecoder

from .simulator_strategies import echo_plan, thinking_plan

FRAMINGS = {"native": native, "openai": openai, "anthropic": anthropic}


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@given(st.lists(st.binary(max_size=300), max_size=12), st.lists(st.integers(0, 2000), max_size=20))
def test_a_chunked_body_decodes_the_same_however_the_network_splits_it(
    parts: list[bytes], cuts: list[int]
) -> None:
    wire = chunked(parts)
    decoder = ChunkedDecoder()
    out = b""
    for a, b in itertools.pairwise([0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]):
        out += decoder.feed(wire[a:b])
    assert out == b"".join(parts)
    assert decoder.done


def test_chunk_extensions_and_trailers_are_read_past_and_what_follows_is_kept() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1") == b"hello"
    assert decoder.done
    assert decoder.rest() == b"HTTP/1.1"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"zz\r\n", "bad chunk size"),
        (b"-5\r\nhello\r\n", "bad chunk size"),
        (b"0x5\r\nhello\r\n", "bad chunk size"),
        (b"5\r\nhelloXY", "not followed by CRLF"),
        (b"1" * 70_000, "too long"),
    ],
)
def test_a_broken_chunked_body_is_an_error_not_data(wire: bytes, message: str) -> None:
    with pytest.raises(HTTPError, match=message):
        ChunkedDecoder().feed(wire)


def test_a_target_url_gives_host_port_and_path_prefix() -> None:
    assert Target.parse("http://127.0.0.1:8000") == Target("http", "127.0.0.1", 8000, "")
    gateway = Target.parse("https://gateway.example/openai/")
    assert gateway == Target("https", "gateway.example", 443, "/openai")
    assert gateway.host_header == "gateway.example"
    with pytest.raises(ValueError, match="http:// or https://"):
        Target.parse("ftp://example.com")


def read(api: str, plan: StreamPlan, *, stamp: bool = True) -> Reading:
    reading = Reading(api)  # type: ignore[arg-type]
    decoder = SSEDecoder()
    scheduled = FRAMINGS[api].stream_events(plan, created=1, request_id="r")
    if api == "openai":
        scheduled = openai.stream_events(plan, created=1, request_id="r", include_usage=True)
    for n, item in enumerate(scheduled):
        event = stamped(item.event, 100.0 + n) if stamp and item.token is not None else item.event
        for decoded in decoder.feed(event.encode()):
            reading.feed(decoded, 200.0 + n)
    return reading


@pytest.mark.parametrize("api", FRAMINGS)
@pytest.mark.parametrize("plan", [echo_plan(), thinking_plan()], ids=["echo", "thinking"])
def test_each_api_stream_reads_as_sound_with_every_token_counted(api: str, plan: StreamPlan) -> None:
    reading = read(api, plan)
    assert reading.problems() == []
    assert reading.tokens == len(plan.tokens) == reading.usage_tokens
    assert reading.indices == list(range(len(plan.tokens)))
    assert all(sent is not None for sent in reading.sent)
    assert reading.finished


@pytest.mark.parametrize("api", FRAMINGS)
def test_a_stream_cut_before_its_end_lacks_its_final_event(api: str) -> None:
    plan = echo_plan()
    truncated = dataclasses.replace(plan, ending="truncate")
    assert read(api, truncated).problems() == ["the stream ended without its final event"]


@pytest.mark.parametrize("api", FRAMINGS)
def test_a_mid_stream_error_event_is_a_problem(api: str) -> None:
    plan = dataclasses.replace(echo_plan(), ending="error")
    problems = read(api, plan).problems()
    assert len(problems) == 1
    assert problems[0].startswith("error event: ")


def test_a_missing_token_shows_as_non_consecutive_indices() -> None:
    reading = read("native", echo_plan())
    del reading.recv[1], reading.sent[1], reading.indices[1]
    assert reading.problems() == [
        "token indices not consecutive from 0: position 1 has index 2",
        "usage reports 4 tokens, 3 were received",
    ]


def test_an_aborted_stream_is_judged_on_what_it_received() -> None:
    reading = read("native", dataclasses.replace(echo_plan(), ending="truncate"))
    assert reading.problems(complete=False) == []


def test_a_resumed_stream_continues_the_indices() -> None:
    plan = echo_plan()
    reading = read("native", dataclasses.replace(plan, tokens=plan.tokens[:2], ending="truncate"))
    decoder = SSEDecoder()
    rest = resume_plan(plan, 1)
    for item in native.stream_events(rest, created=1, request_id="r"):
        for event in decoder.feed(item.event.encode()):
            reading.feed(event, 300.0)
    assert reading.resumed_after == 1
    assert reading.problems() == []
    assert reading.tokens == len(plan.tokens)


def test_foreign_servers_send_no_llmstream_options_and_usage_is_not_required() -> None:
    spec = StreamSpec(llmstream=False, headers=(("Authorization", "x"),))
    path, headers, body = request_for("openai", spec)
    assert path == "/v1/chat/completions"
    assert b"llmstream" not in body
    assert ("Authorization", "x") in headers
    reading = read("openai", echo_plan(), stamp=False)
    reading.usage_tokens = 99
    assert reading.problems(check_usage=False) == []
    assert "usage reports 99 tokens" in reading.problems()[0]
    with pytest.raises(ValueError, match="native API exists only on llmstream"):
        request_for("native", StreamSpec(llmstream=False))


def test_load_shapes() -> None:
    assert load_fraction("steady", 5, 60) == 1.0
    assert load_fraction("ramp", 30, 60) == 0.5
    assert load_fraction("ramp", 0, 60) > 0
    assert load_fraction("ramp", 90, 60) == 1.0
    spike = [load_fraction("spike", t, 100) for t in (10, 39, 40, 59, 60, 99)]
    assert spike == [0.25, 0.25, 1, 1, 0.25, 0.25]
    assert load_fraction("spike", 10, None) == 1.0


def test_the_mix_names_kinds_and_weights() -> None:
    assert parse_mix("native=3, openai=1,slow") == {"native": 3.0, "openai": 1.0, "slow": 1.0}
    for bad, message in [
        ("natve=1", "unknown kind 'natve'"),
        ("native=x", "must be a number"),
        ("native=-1", "finite number >= 0"),
        ("native=0", "no kind a weight above 0"),
        ("", "no kind a weight above 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_mix(bad)


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(1).shuffle(values)
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([], 0.5) is None


def record(stream: str, kind: str, start: float, recv: list[float], sent: list[float | None]) -> StreamRecord:
    reading = Reading("native", recv=recv, sent=sent, indices=list(range(len(recv))), finished=True)
    return StreamRecord(stream, kind, "native", start, start, reading, end=recv[-1] + 0.01)


def test_the_summary_adds_up_every_workers_timelines(tmp_path: Path) -> None:
    for worker, lag in ((1, 0.002), (2, 0.004)):
        writer = TimelineWriter(tmp_path / "timelines")
        recv = [10.1, 10.2, 10.3]
        writer.write(record(f"s{worker}", "native", 10.0, recv, [r - lag for r in recv]))
        writer.write(record(f"slow{worker}", "slow", 10.0, recv, [r - 5 for r in recv]))  # lag on purpose
        writer.close()
        # One pair of files per process: move this one's aside so the next writer's do not replace it.
        for path in (tmp_path / "timelines").glob("*.csv"):
            if not path.stem.endswith(("-w1", "-w2")):
                path.rename(path.with_name(f"{path.stem}-w{worker}.csv"))
    summary = summarize(tmp_path, max_client_lag_ms=10)
    assert summary["streams"] == 4
    assert summary["tokens"] == 12
    assert summary["failures"] == 0
    assert summary["ttft_ms"]["p50"] == pytest.approx(100)
    assert summary["itl_ms"]["max"] == pytest.approx(100)
    assert summary["client_lag_ms"]["max"] == pytest.approx(4)  # the slow readers' 5 s are left out
    assert summary["valid"] is True
    assert summarize(tmp_path, max_client_lag_ms=3)["valid"] is False


def test_a_folder_without_timelines_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no stream timelines"):
        summarize(tmp_path)


def test_token_rows_read_back_as_csv_with_a_missing_index_or_send_time(tmp_path: Path) -> None:
    reading = Reading("native", recv=[1.5, 1.75, 2.0], sent=[1.25, None, 1.9], indices=[0, None, 2])
    writer = TimelineWriter(tmp_path)
    writer.write(StreamRecord("s1", "native", "native", 1.0, 1.0, reading, end=2.5))
    writer.close()
    with next(tmp_path.glob("tokens-*.csv")).open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [
        ["stream", "position", "index", "recv", "sent"],
        ["s1", "0", "0", "1.500000", "1.250000"],
        ["s1", "1", "", "1.750000", ""],
        ["s1", "2", "2", "2.000000", "1.900000"],
    ]


LOG_ALL_CHECK = """
import math, random
from locust.stats import RequestStats, StatsEntry
from locustfile import log_all

rng = random.Random(7)
scales = [0.0, 0.3, 7.5, 99.6, 150.0, 4321.0]  # each of Locust's rounding bands
for values in ([], [0.4], [rng.choice(scales) * rng.random() for _ in range(500)]):
    one_by_one, all_at_once = (StatsEntry(RequestStats(), "itl", "native", True) for _ in range(2))
    for value in values:
        one_by_one.log(value, 0)
    log_all(all_at_once, values)
    a, b = one_by_one.serialize(), all_at_once.serialize()
    for entry in (a, b):  # made and logged a moment apart; sums added in another order
        entry.pop("start_time"), entry.pop("last_request_timestamp"), entry.pop("num_reqs_per_sec")
    assert math.isclose(a.pop("total_response_time"), b.pop("total_response_time"), abs_tol=1e-9)
    assert a == b, (a, b)
    assert sum(one_by_one.num_reqs_per_sec.values()) == sum(all_at_once.num_reqs_per_sec.values())
print("same")
"""


def test_logging_a_streams_values_at_once_adds_up_as_logging_each() -> None:
    # Run apart: importing Locust monkey-patches this process with gevent.
    done = subprocess.run(
        [sys.executable, "-c", LOG_ALL_CHECK],
        cwd=Path(__file__).resolve().parents[2] / "loadtests",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "same"
