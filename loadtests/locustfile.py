"""Locust users that measure LLM token streams honestly (see loadtests/README.md).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000          # web UI on :8089
    make loadtest USERS=200 DURATION=60                                     # headless, results/<run>/

Each stream is reported to Locust's statistics under its kind (Type column) and these names:
``e2e`` (one entry per stream, end-to-end ms; the stream's failures are counted here), ``ttft`` (to the
first token event, not to the headers), ``itl`` (every inter-token gap), ``tpot``, ``tokens/s`` and
``tokens`` (the last two hold token rates and counts in the "response time" columns). ``client lag``
(Type ``client``) is each token's receive time minus the server's send time: a run whose p99 is above
``--llm-max-client-lag-ms`` measured the client, not the server, and is declared invalid.
"""

from __future__ import annotations

import functools
import gc
import inspect
import logging
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Group
from locust import LoadTestShape, User, argument_parser, constant, events, task
from locust import runners as locust_runners
from locust import stats as locust_stats
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import StatsEntry
from locust.user.task import LOCUST_STATE_STOPPING
from streamload.apis import StreamSpec
from streamload.http11 import Connection, Target
from streamload.kinds import DEFAULT_MIX, KINDS, SLOW_RECV_BYTES, Kind, parse_mix, run_stream
from streamload.record import StreamRecord, TimelineWriter
from streamload.shapes import SHAPES, load_fraction

log = logging.getLogger("llmstream.loadtest")


def _cache_default_args() -> None:
    """Work around a stall in Locust's workers: on every spawn message (each second of a ramp or
    spike) `WorkerRunner.worker` filters the master's options with ``k not in default_args_dict()``
    inside a comprehension, building Locust's whole argument parser once per option (locust 2.47,
    runners.py): ~300 ms in which the worker reads no socket, so every stream's tokens wait. The dict is
    a pure function of Locust's own parser, so one copy serves every call."""
    build = functools.cache(argument_parser.default_args_dict)
    argument_parser.default_args_dict = lambda: dict(build())


class _NoCallerLookup:
    """`Runner.stop()` logs its caller at debug level through ``inspect.stack()``, which reads the source
    of every frame: ~100 ms without reading a socket, while the streams under way finish (locust 2.47,
    runners.py). Without the stack it logs that the caller is unknown; nothing else in runners.py uses
    inspect."""

    def stack(self) -> list[Any]:
        raise LookupError("skipped: inspect.stack() stalls every stream of this process")

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


_cache_default_args()
locust_runners.inspect = _NoCallerLookup()  # type: ignore[assignment]
DEFAULT_HOST = "http://127.0.0.1:8000"
ARRIVAL_STEP_S = 0.005  # how often an open-loop generator looks at its arrival credit
PROMPTS = (
    "Explain how token streaming works.",
    "Write a short poem about latency.",
    "Summarise the history of HTTP in a few paragraphs.",
    "What is backpressure, and why does a server need it?",
)


@events.init_command_line_parser.add_listener
def _llm_arguments(parser: Any) -> None:
    group = parser.add_argument_group("llmstream", "what each stream asks for and how it is measured")
    group.add_argument(
        "--llm-mix", default=DEFAULT_MIX, help=f"weights of the kinds of stream ({', '.join(KINDS)})"
    )
    group.add_argument("--llm-model", default="fast", help="model to ask for")
    group.add_argument(
        "--llm-max-tokens", type=int, default=64,
        help="max_tokens: each stream asks for between half of it and all of it, so streams end apart",
    )  # fmt: skip
    group.add_argument("--llm-ttft-ms", type=float, default=None, help="llmstream: exact time to first token")
    group.add_argument("--llm-tokens-per-s", type=float, default=None, help="llmstream: token rate")
    group.add_argument("--llm-shape", choices=SHAPES, default="steady", help="load over the run time")
    group.add_argument(
        "--llm-arrival-rate", type=float, default=0.0,
        help="open loop: new streams per second in all (0: Locust's closed loop of users)",
    )  # fmt: skip
    group.add_argument(
        "--llm-max-in-flight", type=int, default=20_000, help="open loop: streams at once, at most"
    )
    group.add_argument(
        "--llm-results", default="", help="folder for the raw per-token timelines (none if empty)"
    )
    group.add_argument(
        "--llm-target", choices=("llmstream", "other"), default="llmstream",
        help="'other': another OpenAI/Anthropic-compatible server (no llmstream extensions, no native kinds)",
    )  # fmt: skip
    group.add_argument("--llm-header", action="append", default=[], help="extra request header 'Name: value'")
    group.add_argument("--llm-timeout", type=float, default=60.0, help="seconds a read may wait")
    group.add_argument("--llm-slow-bytes-per-s", type=float, default=2048.0, help="the slow reader's speed")
    group.add_argument(
        "--llm-max-client-lag-ms", type=float, default=10.0, help="client-lag p99 of a valid run"
    )


class Run:
    """This process's share of the run: options, timelines file, start time."""

    options: Any = None
    writer: TimelineWriter | None = None
    started = time.time()

    @classmethod
    def spec(cls, rng: random.Random) -> StreamSpec:
        options = cls.options
        headers = []
        for header in options.llm_header:
            name, sep, value = header.partition(":")
            if not sep:
                raise ValueError(f"--llm-header must be 'Name: value', not {header!r}")
            headers.append((name.strip(), value.strip()))
        return StreamSpec(
            model=options.llm_model,
            prompt=rng.choice(PROMPTS),
            max_tokens=rng.randint(max(1, (options.llm_max_tokens + 1) // 2), max(1, options.llm_max_tokens)),
            seed=rng.randrange(1 << 31),
            ttft_ms=options.llm_ttft_ms,
            tokens_per_s=options.llm_tokens_per_s,
            llmstream=options.llm_target == "llmstream",
            headers=tuple(headers),
        )

    @classmethod
    def record(cls, environment: Environment, record: StreamRecord) -> None:
        report(environment, record)
        if cls.options.llm_results:
            if cls.writer is None:
                cls.writer = TimelineWriter(Path(cls.options.llm_results) / "timelines")
            cls.writer.write(record)


class StreamIntegrityError(Exception):
    """A stream failed: refused, broken, or its events did not add up."""


def report(environment: Environment, record: StreamRecord) -> None:
    """Every measurement of a finished stream into Locust's statistics (after the stream, not while
    tokens arrive, so that bookkeeping never delays reading).

    Per-stream figures go through the request event, as any Locust request does. The per-token ones
    (``itl``, ``client lag``: tens of thousands a second) go straight into their statistics entries, at
    a third of the cost: they stay out of the "Aggregated" row, which would otherwise be mostly them
    (that row adds up unlike figures here in any case).
    """
    fire = environment.events.request.fire
    kind = record.kind

    def put(name: str, value: float, length: int = 0, exception: Exception | None = None) -> None:
        fire(
            request_type=kind, name=name, response_time=value, response_length=length,
            exception=exception, context={},
        )  # fmt: skip

    failure = StreamIntegrityError(record.error) if record.outcome == "failed" else None
    put("e2e", record.e2e_ms, record.bytes_received, failure)
    if (ttft := record.ttft_ms) is not None:
        put("ttft", ttft)
    if (tpot := record.tpot_ms) is not None:
        put("tpot", tpot)
    if (rate := record.tokens_per_s) is not None:
        put("tokens/s", rate)
    put("tokens", record.reading.tokens)
    log_all(environment.stats.get("itl", kind), record.itl_ms())
    log_all(environment.stats.get("lag", "client"), record.lag_ms())


def log_all(entry: StatsEntry, values_ms: list[float]) -> None:
    """`entry.log(value, 0)` for each value, logged at one moment: a stream's tokens, when it ends.

    The first goes through Locust's own `log` (the per-second counts and the percentile cache); the rest
    only add to the same totals and response-time buckets. Per token this costs a third of `log`, which
    reads the clock, checks the cache and makes three calls each time: at 10,000 tokens/s, two entries
    per token, that was 7% of a Locust process. A unit test checks it against `log` itself.
    """
    if not values_ms:
        return
    entry.log(values_ms[0], 0)
    rest = values_ms[1:]
    if not rest:
        return
    entry.num_requests += len(rest)
    entry.num_reqs_per_sec[int(entry.last_request_timestamp or time.time())] += len(rest)
    entry.total_response_time += sum(rest)
    low, high = min(rest), max(rest)
    entry.min_response_time = low if entry.min_response_time is None else min(entry.min_response_time, low)
    entry.max_response_time = max(entry.max_response_time, high)
    # Looked up at each call, as Locust does: a locustfile may replace it (custom bucketing).
    buckets = entry.response_times
    for bucket, count in Counter(map(locust_stats.bucket_response_time, rest)).items():
        buckets[bucket] = buckets.get(bucket, 0) + count


class StreamUser(User):
    """A closed-loop user: one stream of its kind after another, on one kept-alive connection."""

    abstract = True
    kind: Kind = "native"
    host = DEFAULT_HOST
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()
        recv_bytes = SLOW_RECV_BYTES if self.kind == "slow" else 65_536
        self.connection = Connection(
            Target.parse(self.host), timeout=Run.options.llm_timeout, recv_bytes=recv_bytes
        )

    def on_stop(self) -> None:
        self.connection.close()

    @task
    def stream(self) -> None:
        record = run_stream(
            self.kind, self.connection, Run.spec(self.rng), rng=self.rng,
            slow_bytes_per_s=Run.options.llm_slow_bytes_per_s,
        )  # fmt: skip
        Run.record(self.environment, record)


class NativeUser(StreamUser):
    kind = "native"


class OpenAIUser(StreamUser):
    kind = "openai"


class AnthropicUser(StreamUser):
    kind = "anthropic"


class ResumerUser(StreamUser):
    """Hangs up after a few tokens and resumes with Last-Event-ID (native API)."""

    kind = "resumer"


class AborterUser(StreamUser):
    """Stops reading after a few tokens and closes the connection, as a user closing a tab."""

    kind = "aborter"


class SlowReaderUser(StreamUser):
    """Reads at --llm-slow-bytes-per-s, so the server meets backpressure; its lag is not measured."""

    kind = "slow"


STREAM_USERS: tuple[type[StreamUser], ...] = (
    NativeUser, OpenAIUser, AnthropicUser, ResumerUser, AborterUser, SlowReaderUser,
)  # fmt: skip


class OpenLoopUser(User):
    """Open loop: new streams arrive at a fixed rate whatever happens to earlier ones.

    Each of these users generates --llm-arrival-rate / --users arrivals per second (times the shape's
    fraction), each stream on its own connection. Latency counts from the scheduled arrival, so a
    server that queues cannot hide it behind fewer requests (coordinated omission).
    """

    host = DEFAULT_HOST
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.streams = Group()
        self.target = Target.parse(self.host)

    def on_stop(self) -> None:
        self.streams.kill(block=False)

    @task
    def arrive(self) -> None:
        options = Run.options
        mix = parse_mix(options.llm_mix)
        kinds, weights = list(mix), list(mix.values())
        rate = options.llm_arrival_rate / max(1, options.llm_generators or 1)
        run_seconds = options.llm_run_seconds
        # Arrivals accrue at rate x the shape's fraction of the moment, read every few ms, so a ramp or
        # a spike is followed closely; a random phase keeps many generators from arriving in step. Each
        # arrival's intended start is the instant its credit came due, not when this loop saw it.
        credit, last = self.rng.random(), time.time()
        # Arrivals stop when the run time is over or Locust stops this user (gracefully: the state a
        # task is meant to check); streams under way then finish before the user does.
        while self._state != LOCUST_STATE_STOPPING:
            now = time.time()
            elapsed = now - Run.started
            if run_seconds and elapsed >= run_seconds:
                break
            per_s = rate * load_fraction(options.llm_shape, elapsed, run_seconds)
            credit += per_s * (now - last)
            last = now
            while credit >= 1:
                credit -= 1
                self._arrive(self.rng.choices(kinds, weights)[0], intended=now - credit / per_s)
            gevent.sleep(ARRIVAL_STEP_S)
        self.streams.join()
        raise StopUser()

    def _arrive(self, kind: Kind, *, intended: float) -> None:
        if len(self.streams) >= Run.options.llm_max_in_flight:
            log.warning("open loop: %d streams in flight, the cap; arrival dropped", len(self.streams))
            self.environment.events.request.fire(
                request_type=kind, name="e2e", response_time=0, response_length=0, context={},
                exception=StreamIntegrityError("client at its in-flight cap (--llm-max-in-flight)"),
            )  # fmt: skip
            return
        self.streams.spawn(self._one, kind, intended)

    def _one(self, kind: Kind, intended: float) -> None:
        connection = Connection(
            self.target, timeout=Run.options.llm_timeout,
            recv_bytes=SLOW_RECV_BYTES if kind == "slow" else 65_536,
        )  # fmt: skip
        try:
            record = run_stream(
                kind, connection, Run.spec(self.rng), rng=self.rng, intended_start=intended,
                slow_bytes_per_s=Run.options.llm_slow_bytes_per_s,
            )  # fmt: skip
        finally:
            connection.close()
        Run.record(self.environment, record)


class StreamShape(LoadTestShape):
    """--users and --spawn-rate shaped over --run-time by --llm-shape (steady, ramp, spike).

    At the end of the run the shape stops the runner itself before returning None: headless Locust
    quits a shape test at once, which would cut streams under way, and a master that quits does not wait
    for its workers' last figures. `runner.stop()` lets streams finish (--stop-timeout) and collects them.
    """

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = Run.options
        elapsed = self.get_run_time()
        duration = options.run_time
        if duration and elapsed >= duration:
            self.runner.stop()
            return None
        users = max(1, int(options.num_users or 1))
        if options.llm_arrival_rate > 0:
            return users, users  # the arrival generators; the shape scales their rate
        fraction = load_fraction(options.llm_shape, elapsed, duration)
        spawn_rate = float(options.spawn_rate or users)
        if options.llm_shape == "spike":
            spawn_rate = max(spawn_rate, users)  # a spike arrives within a second
        return max(1, round(users * fraction)), spawn_rate


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    """Check the options once, and weight the user classes from --llm-mix (master or local runner)."""
    options = environment.parsed_options
    Run.options = options
    if options is None:
        return
    mix = parse_mix(options.llm_mix)
    if options.llm_target == "other" and any(mix.get(k) for k in ("native", "resumer", "aborter", "slow")):
        raise ValueError("--llm-target other takes only the openai and anthropic kinds in --llm-mix")
    # Workers get custom options (not Locust's own) from the master with each spawn message: these two
    # tell each worker's arrival generators the run time and how many generators share the rate.
    if not isinstance(environment.runner, WorkerRunner):
        options.llm_run_seconds = options.run_time
        options.llm_generators = options.num_users
    open_loop = options.llm_arrival_rate > 0
    for user_class in STREAM_USERS:
        user_class.weight = 0 if open_loop else mix.get(user_class.kind, 0)
    OpenLoopUser.weight = 1 if open_loop else 0


@events.test_start.add_listener
def _started(environment: Environment, **_: Any) -> None:
    Run.started = time.time()
    # What exists now (Locust, the modules, the parser) lives as long as the process: out of the
    # collector's sight, so a full collection during the run only walks what the run made (one took
    # 40-50 ms here, every stream of the process waiting).
    gc.collect()
    gc.freeze()
    Run.options = environment.parsed_options  # a worker gets the master's options with its spawn message


@events.test_stop.add_listener
def _stopped(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # A worker told to stop answers "client_stopped" with no last stats report, and the master
        # forgets it and may quit before the next periodic one: the streams that finished during the
        # stop would be missing from the master's figures (locust/runners.py, WorkerRunner "stop").
        # This report goes first on the same socket, so the master counts it before "client_stopped".
        runner._send_stats()
    if Run.writer is not None:
        Run.writer.close()
        Run.writer = None


@events.quitting.add_listener
def _verdict(environment: Environment, **_: Any) -> None:
    """Declare the run invalid, loudly, when the client lagged: its figures measured itself."""
    _stopped(environment)
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    entry = environment.stats.entries.get(("lag", "client"))
    limit = environment.parsed_options.llm_max_client_lag_ms
    if entry is None or entry.num_requests == 0:
        log.warning("client lag not measured: the server sent no send timestamps (t)")
        return
    p99 = entry.get_response_time_percentile(0.99)
    if p99 > limit:
        banner = "#" * 78
        log.error(
            "\n%s\nINVALID RUN: client-lag p99 %.0f ms > %.0f ms. The load generator could not keep up, so\n"
            "its latencies measure itself, not the server. Use more worker processes (--processes, or\n"
            "more workers), fewer users per process, or a lower rate.\n%s",
            banner, p99, limit, banner,
        )  # fmt: skip
        environment.process_exit_code = 3
    else:
        log.info("client-lag p99 %.0f ms <= %.0f ms: the run is valid", p99, limit)
