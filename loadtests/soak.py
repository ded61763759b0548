"""A bounded memory soak: `make soak` runs this.

Starts llmstream on 127.0.0.1 and keeps --concurrency client streams churning against it for --duration
seconds: streams that finish on each API (native, OpenAI, Anthropic), streams hung up mid-way, streams
dropped and resumed with Last-Event-ID, and slow readers that fill the server's buffers. Every
--interval seconds it prints the resident memory (VmRSS) of the server's process tree, the parent and
any --workers. After --warmup seconds memory must stay flat: the median of the last three samples may
exceed the median of the first three after warm-up by at most --max-growth-pct.

Each sample line: seconds since the churn began, the RSS of the server's process tree in MiB and how
many processes it has, the streams finished so far and per second since the last sample, the streams
open in the server (from /readyz; with --workers, in the worker that answered) and the failures so far.

Every stream is checked as in the load test (token indices consecutive, the final event, usage equal
to the tokens received); a stream that fails the check or is refused is a failure, a deliberate
hang-up is not.

Exit status: 0 when memory stayed within the limit and every stream passed; 1 when memory grew too
much, a stream failed or never finished, or the server died or replaced a worker; 2 for bad arguments
or a run that gave no verdict; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _stop, free_port  # noqa: E402
from streamload.apis import StreamSpec  # noqa: E402
from streamload.http11 import RECV_BYTES, Connection, Target  # noqa: E402
from streamload.kinds import SLOW_RECV_BYTES, Kind, parse_mix, run_stream  # noqa: E402

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
MIB = 1024 * 1024
# Two windows of this many samples: one at the start of the measured part, one at its end. A median of
# three ignores one sample taken in the middle of a burst (a collection, a moment with more streams
# open), where a single sample would not.
WINDOW = 3
# Streams that finish and hang up on every API, resumptions, and a few slow readers: the slow ones hold
# full buffers (the backpressure path) and take ~1 s each, so few of them are enough.
DEFAULT_MIX = "native=3,openai=3,anthropic=3,resumer=2,aborter=2,slow=1"
STREAM_TIMEOUT_S = 30.0  # a read that waits longer fails (the server's heartbeat comes every 15 s)
DRAIN_S = 15.0  # after the run, how long streams under way may take to finish
FAILURE_PAUSE_S = 0.2  # a worker whose stream failed waits this long: a dead server must not be spun on
MAX_REASONS = 20  # distinct failure reasons kept (the rest are counted, not listed)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of churn [600]")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before the baseline [duration/5]")
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples [5]")
    parser.add_argument("--concurrency", type=int, default=200, help="client streams at once [200]")
    parser.add_argument(
        "--max-growth-pct", type=float, default=2.0, help="allowed RSS growth after warm-up, in %% [2]"
    )
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"weights per kind [{DEFAULT_MIX}]")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per stream: half to all [32]")
    parser.add_argument("--tokens-per-s", type=float, default=200, help="token rate per stream [200]")
    parser.add_argument("--server-args", default="", help="extra `llmstream serve` flags, e.g. '--workers 2'")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 [a free one]")
    parser.add_argument("--results", type=Path, default=None, help="CSV file for the samples")
    parser.add_argument(
        "--server-log", type=Path, default=None,
        help="the server's log [a temporary file, kept only when the soak fails]",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.duration / 5
    if not (args.duration > 0 and args.interval > 0 and 0 <= args.warmup < args.duration):
        parser.error("need --duration > 0, --interval > 0 and 0 <= --warmup < --duration")
    if args.concurrency < 1 or args.max_tokens < 2 or not args.tokens_per_s > 0:
        parser.error("need --concurrency >= 1, --max-tokens >= 2 and --tokens-per-s > 0")
    measured = len([t for t in schedule(args.duration, args.interval) if t >= args.warmup])
    if measured < 2 * WINDOW:
        parser.error(
            f"{measured} samples after the warm-up; the verdict compares two windows of {WINDOW}: "
            "lengthen --duration, or shorten --warmup or --interval"
        )
    try:
        args.weights = parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.port is not None and not 0 < args.port < 65536:
        parser.error("--port must be 1-65535")
    return args


def schedule(duration: float, interval: float) -> list[float]:
    """When samples are due, in seconds from the start of the churn: every interval, up to the end."""
    count = int(duration / interval + 1e-9)
    return [round(k * interval, 6) for k in range(1, count + 1)]


# --- the server and its memory -------------------------------------------------------------------


@contextmanager
def llmstream_server(port: int, server_args: list[str], log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """llmstream on 127.0.0.1:``port``, ready to serve; stopped (SIGTERM, then SIGKILL) on the way out.

    Not run.py's `llmstream_server`: the soak needs the process itself (its pid, for the memory) and
    its own port and log file.
    """
    command = [sys.executable, "-m", "llmstream", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen([*command, *server_args], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerGone("the server did not start", EXIT_USAGE)
            time.sleep(0.1)
        yield process
    finally:
        _stop(process, signal.SIGTERM, timeout=30)  # its own graceful shutdown, within --grace


class ServerGone(Exception):
    """The server did not start (no run: exit status 2), or exited during the run (a failure: 1)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def open_streams(port: int) -> int | None:
    """The open streams /readyz reports (with --workers: the one worker that answered); None if it
    did not answer in time."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            value = json.loads(response.read()).get("open_streams")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (a --workers server's workers, and whatever
    multiprocessing starts), from each process's parent in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:  # a bound, should /proc ever hold a cycle mid-change
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return sorted(tree)


def rss_bytes(pid: int) -> int | None:
    """VmRSS of one process (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError):
        return None
    return None  # a zombie has no VmRSS


def tree_rss(root: int) -> tuple[int, tuple[int, ...]]:
    """Total RSS of ``root``'s process tree, and the pids counted."""
    total, counted = 0, []
    for pid in process_tree(root):
        rss = rss_bytes(pid)
        if rss is not None:
            total += rss
            counted.append(pid)
    return total, tuple(counted)


# --- the churn -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What the client threads did, under one lock (bumped once per stream: cheap next to a stream)."""

    done: Counter[str] = field(default_factory=Counter)  # finished as intended, per kind
    aborted: int = 0  # deliberate hang-ups among them
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0


class Churn:
    """``concurrency`` threads, each running one stream after another until told to stop.

    Plain threads with blocking sockets: the client is `streamload` (run_stream checks every stream as
    the load test does), and each thread spends its time waiting in recv with the GIL released. Each
    stream asks for a new seed, so no two requests are alike (a cache keyed by request would grow here
    as it would in production) and for half to all of --max-tokens.
    """

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.target = Target("http", "127.0.0.1", port)
        self.kinds: list[Kind] = [kind for kind, weight in args.weights.items() if weight]
        self.weights = [args.weights[kind] for kind in self.kinds]
        self.max_tokens: int = args.max_tokens
        self.tokens_per_s: float = args.tokens_per_s
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Daemons: a thread stuck in a stream past the drain must not keep the process alive.
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"soak-{i}", daemon=True)
            for i in range(args.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def snapshot(self) -> tuple[int, int]:
        """(streams finished, failures) so far."""
        with self._lock:
            return sum(self.tally.done.values()) + self.tally.failures, self.tally.failures

    def stop(self, drain: float) -> Tally:
        """Let every thread finish its stream (for up to ``drain`` s); what they did (``in_flight``: the
        streams still under way then)."""
        self._stopping.set()
        deadline = time.monotonic() + drain
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:  # a copy: a thread still in its stream goes on counting into the original
            tally = self.tally
            return Tally(
                Counter(tally.done), tally.aborted, tally.failures, Counter(tally.reasons), tally.in_flight
            )

    def _work(self, index: int) -> None:
        rng = random.Random(index)
        # One connection per thread, in use back to back. Not a second one kept for the slow kind:
        # Connection's idle watch shuts a connection down after `timeout` s without a read even between
        # requests, and the next request on it then fails (BrokenPipeError) instead of reconnecting.
        connection = Connection(self.target, timeout=STREAM_TIMEOUT_S)
        try:
            while not self._stopping.is_set():
                kind = rng.choices(self.kinds, self.weights)[0]
                spec = StreamSpec(
                    max_tokens=rng.randint(self.max_tokens // 2, self.max_tokens),
                    seed=rng.randrange(1 << 31),
                    ttft_ms=0,
                    tokens_per_s=self.tokens_per_s,
                )
                # A slow reader takes a little per read, so that the server's buffer for it fills.
                connection.recv_bytes = SLOW_RECV_BYTES if kind == "slow" else RECV_BYTES
                with self._lock:
                    self.tally.in_flight += 1
                outcome, error = "failed", ""
                try:
                    record = run_stream(kind, connection, spec, rng=rng)
                    outcome, error = record.outcome, record.error
                except Exception as exc:  # run_stream reports failed streams; anything else is a bug
                    error = f"client error: {type(exc).__name__}: {exc}"
                    connection.close()
                with self._lock:
                    self._count(kind, outcome, error)
                if outcome == "failed":
                    self._stopping.wait(FAILURE_PAUSE_S)
        finally:
            connection.close()

    def _count(self, kind: Kind, outcome: str, error: str) -> None:
        tally = self.tally
        tally.in_flight -= 1
        if outcome == "failed":
            tally.failures += 1
            reason = f"{kind}: {error[:200]}"
            if reason in tally.reasons or len(tally.reasons) < MAX_REASONS:
                tally.reasons[reason] += 1
            else:
                tally.reasons["(other reasons)"] += 1
        else:
            tally.done[kind] += 1
            tally.aborted += outcome == "aborted"


# --- samples and the verdict ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    elapsed: float  # seconds since the churn started
    rss: int  # bytes, summed over the server's process tree
    pids: tuple[int, ...]
    streams: int  # finished so far, failed ones included
    open_streams: int | None
    failures: int
    warmup: bool


@dataclass(frozen=True, slots=True)
class Growth:
    baseline: float  # bytes: the median of the first WINDOW samples after warm-up
    end: float  # bytes: the median of the last WINDOW samples
    pct: float
    baseline_at: tuple[float, float]  # first and last elapsed second of each window
    end_at: tuple[float, float]


def memory_growth(samples: list[Sample]) -> Growth | None:
    """Growth from the start of the measured part to its end; None with fewer than two samples."""
    measured = [s for s in samples if not s.warmup]
    if len(measured) < 2:
        return None
    size = min(WINDOW, len(measured) // 2)  # windows never overlap (a cut-short run has fewer samples)
    first, last = measured[:size], measured[-size:]
    baseline = statistics.median(s.rss for s in first)
    end = statistics.median(s.rss for s in last)
    return Growth(
        baseline=baseline,
        end=end,
        pct=(end - baseline) / baseline * 100,
        baseline_at=(first[0].elapsed, first[-1].elapsed),
        end_at=(last[0].elapsed, last[-1].elapsed),
    )


# The CSV's columns, with each one's printed header and width (0: as it comes, last).
COLUMNS = {
    "elapsed_s": ("elapsed s", 9),
    "rss_mib": ("RSS MiB", 9),
    "processes": ("procs", 5),
    "streams": ("streams", 9),
    "streams_per_s": ("streams/s", 9),
    "open_streams": ("open", 6),
    "failures": ("failures", 8),
    "phase": ("phase", 0),
}


def sample_row(sample: Sample, previous: Sample | None) -> dict[str, str]:
    before = previous or Sample(0.0, 0, (), 0, None, 0, True)
    seconds = sample.elapsed - before.elapsed
    rate = (sample.streams - before.streams) / seconds if seconds > 0 else 0.0
    return {
        "elapsed_s": f"{sample.elapsed:.1f}",
        "rss_mib": f"{sample.rss / MIB:.2f}",
        "processes": str(len(sample.pids)),
        "streams": str(sample.streams),
        "streams_per_s": f"{rate:.0f}",
        "open_streams": "-" if sample.open_streams is None else str(sample.open_streams),
        "failures": str(sample.failures),
        "phase": "warm-up" if sample.warmup else "measured",
    }


def print_row(cells: list[str]) -> None:
    widths = [width for _, width in COLUMNS.values()]
    print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)), flush=True)


def take_samples(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    port: int,
    churn: Churn,
    out: csv.DictWriter[str] | None,
) -> list[Sample]:
    """One sample per --interval, on an absolute schedule (a slow sample does not push the others back);
    stops early if the server exits."""
    samples: list[Sample] = []
    print_row([header for header, _ in COLUMNS.values()])
    start = time.monotonic()
    for due in schedule(args.duration, args.interval):
        time.sleep(max(0.0, start + due - time.monotonic()))
        if server.poll() is not None:
            raise ServerGone(f"the server exited with status {server.returncode} during the run", EXIT_FAILED)
        rss, pids = tree_rss(server.pid)
        streams, failures = churn.snapshot()
        sample = Sample(
            elapsed=time.monotonic() - start,
            rss=rss,
            pids=pids,
            streams=streams,
            open_streams=open_streams(port),
            failures=failures,
            warmup=due < args.warmup,
        )
        row = sample_row(sample, samples[-1] if samples else None)
        print_row(list(row.values()))
        if out is not None:
            out.writerow(row)
        samples.append(sample)
    return samples


def verdict(args: argparse.Namespace, samples: list[Sample], tally: Tally) -> int:
    """Print the figures and what failed; the exit status they call for."""
    growth = memory_growth(samples)
    if growth is None:
        print("too few samples after the warm-up: no verdict", file=sys.stderr)
        return EXIT_USAGE
    kinds = " ".join(f"{kind}={tally.done[kind]}" for kind in args.weights if args.weights[kind])
    print(f"\nstreams done: {sum(tally.done.values())} ({kinds}; {tally.aborted} hung up on purpose)")
    print(f"failures: {tally.failures}")
    for reason, count in tally.reasons.most_common():
        print(f"  FAILED x{count}: {reason}")
    (b0, b1), (e0, e1), limit = growth.baseline_at, growth.end_at, args.max_growth_pct
    print(
        f"memory: baseline {growth.baseline / MIB:.2f} MiB (median of the samples at {b0:.0f}-{b1:.0f} s), "
        f"end {growth.end / MIB:.2f} MiB (median of {e0:.0f}-{e1:.0f} s): growth {growth.pct:+.2f}% "
        f"(limit {limit:+g}%)"
    )
    problems = []
    if growth.pct > limit:
        problems.append(f"resident memory grew {growth.pct:+.2f}% after the warm-up, more than {limit:+g}%")
    if tally.failures:
        problems.append(f"{tally.failures} streams failed")
    if tally.in_flight:
        problems.append(f"{tally.in_flight} streams were still under way {DRAIN_S:g} s after the end")
    measured_pids = {s.pids for s in samples if not s.warmup}
    if len(measured_pids) > 1:
        problems.append(
            "the server's processes changed during the measured part (a worker died and was replaced?)"
        )
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print(f"PASS: memory flat within {args.max_growth_pct:g}%, no stream failed")
    return EXIT_FAILED if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    port = args.port or free_port()
    # The server logs a line per stream: to a file, not the terminal; kept when it may explain a failure.
    folder = None if args.server_log else Path(tempfile.mkdtemp(prefix="llmstream-soak-"))
    log_path: Path = args.server_log if folder is None else folder / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    code = EXIT_USAGE
    try:
        with log_path.open("wb") as log, llmstream_server(port, shlex.split(args.server_args), log) as server:
            idle, pids = tree_rss(server.pid)
            print(
                f"soak: {args.concurrency} streams churning for {args.duration:g} s on 127.0.0.1:{port} "
                f"(mix {args.mix}; warm-up {args.warmup:g} s, a sample every {args.interval:g} s, "
                f"growth limit {args.max_growth_pct:+g}%)"
            )
            print(f"server idle: {idle / MIB:.2f} MiB in {len(pids)} process(es)", flush=True)
            churn = Churn(args, port)
            churn.start()
            try:
                with _csv(args.results) as out:
                    samples = take_samples(args, server, port, churn, out)
            finally:
                # Before the server stops: streams it would close are not the soak's failures.
                tally = churn.stop(DRAIN_S)
            code = verdict(args, samples, tally)
    except ServerGone as exc:
        print(f"{'FAIL' if exc.status == EXIT_FAILED else 'no verdict'}: {exc}", file=sys.stderr)
        code = exc.status
    except KeyboardInterrupt:
        print("\ninterrupted: no verdict", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:
        if folder is not None and code == 0:
            shutil.rmtree(folder, ignore_errors=True)
        elif code != 0:
            print(f"server log: {log_path}", file=sys.stderr)
    return code


@contextmanager
def _csv(path: Path | None) -> Iterator[csv.DictWriter[str] | None]:
    """A CSV writer for the samples (each row flushed: an interrupted soak keeps what it measured)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", buffering=1) as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        yield writer


if __name__ == "__main__":
    sys.exit(main())
