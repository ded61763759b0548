"""make bench: llmstream against the common ways of streaming SSE, on the same machine, in one run.

    python loadtests/bench.py                  # everything (about 30 minutes on 2 cores)
    python loadtests/bench.py --quick          # a smoke of the harness (what CI runs)
    python loadtests/bench.py --only unpaced,paced --rounds 5
    python loadtests/bench.py --only overload --overload-streams 4000 --llmstream-args '--max-lateness 0.05'

Each server runs alone, pinned to the first CPU this process may use (CPU 0 on a whole machine); the
client (`streamload.leanclient`, its own process) to the second. Every scenario runs every stack once
per round, stacks interleaved within a round, so a slow minute of the machine hits them all alike;
each figure is the median over rounds, printed with the ratio llmstream / stack. The client's ceiling
comes first: the same client against a server that only writes (`benchstacks/null_server.py`); a
stack's figure far below it measured the stack.

Scenarios (issue 7's goals in brackets):
  unpaced   100 streams of 2,000 tokens, no pacing: events/s delivered              [>= 150,000/s]
  starts    one-token streams back to back on 20 connections: streams started per second
  paced     2,000 streams x 20 tokens/s: events/s and token lateness p50/p99     [>= 39,000/s, p99 <= 10 ms]
  capacity  llmstream only: the most paced streams that still keep lateness p99 <= 10 ms
  idle      server memory per open stream waiting for its first token, 10,000 streams   [<= 12 KiB]
  overload  llmstream only, twice the paced capacity (or --overload-streams): new streams' wait for a
            first token or a refusal
  scaleout  llmstream only: paced capacity with --workers 1 and --workers 2, each worker on a core of
            its own, or on an equal share of one where the machine has too few (cores.py)   [~2x]

Not a test: it asserts nothing and exits 0 once every run finished. Results, with the machine, are
written to results/bench/<time>.json; docs/performance.md holds a run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cores import Placement, allowed_cpus, busiest_worker_share, on_own_cores, placement_for
from run import _stop, answers, free_port, pinned
from streamload.leanclient import ClientPlan, Tally, run_client

ROOT = Path(__file__).resolve().parents[1]
LOADTESTS = ROOT / "loadtests"
SCENARIOS = ("unpaced", "starts", "paced", "capacity", "idle", "overload", "scaleout")
PY = sys.executable
T = TypeVar("T")
# After the last stream's response head: its server has built the stream by then; this lets any
# allocation that follows it (a first buffer, a timer) show in the memory read.
RSS_SETTLE_S = 0.5
CLIENT_BUSY_PCT = 90  # the client's share of its core above which its own speed may set a figure


@dataclass(frozen=True, slots=True)
class Stack:
    name: str
    command: tuple[str, ...]  # {port} is replaced by the port
    request_fields: tuple[tuple[str, Any], ...] = ()


LLMSTREAM = "-m llmstream serve --host 127.0.0.1 --port {port} --max-streams 20000 --log-level warning"
NAIVE = "-m hypercorn benchstacks.naive_quart:app --bind 127.0.0.1:{port}"
STARLETTE = (
    "-m uvicorn benchstacks.sse_starlette_app:app --host 127.0.0.1 --port {port} --log-level warning "
    "--no-access-log"
)
STACKS: dict[str, Stack] = {
    "llmstream": Stack("llmstream", (PY, *LLMSTREAM.split()), (("model", "echo"), ("jitter", 0))),
    "naive-quart-hypercorn": Stack("naive-quart-hypercorn", (PY, *NAIVE.split())),
    "sse-starlette-uvicorn": Stack("sse-starlette-uvicorn", (PY, *STARLETTE.split())),
}
NULL = Stack("null", (PY, str(LOADTESTS / "benchstacks" / "null_server.py"), "{port}"))


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is; --quick shrinks them to a smoke of the harness."""

    unpaced_streams: int = 100
    unpaced_tokens: int = 2_000
    paced_streams: int = 2_000
    paced_tokens: int = 200  # at least; a paced stream lasts past the measured window (paced_plan)
    tokens_per_s: float = 20.0
    start_rate: float = 250.0  # paced streams opened per second during the ramp
    idle_streams: int = 10_000
    measure_s: float = 8.0
    warmup_s: float = 2.0
    ramp_s: float = 2.0
    capacity_steps: tuple[int, ...] = (250, 500, 750, 1_000, 1_250, 1_500, 2_000, 2_500, 3_000)
    # Per core: a worker on a share of a core scans these times the share. Finer than capacity_steps,
    # and as far as two cores could go: the scale-out's figure is a ratio of two scans.
    scaleout_steps: tuple[int, ...] = tuple(range(250, 6_001, 250))
    lateness_limit_ms: float = 10.0


QUICK = Sizes(
    unpaced_streams=20, unpaced_tokens=500, paced_streams=100, paced_tokens=40, idle_streams=300,
    measure_s=2.0, warmup_s=0.5, ramp_s=0.5, capacity_steps=(100, 200), scaleout_steps=(200, 400),
)  # fmt: skip


# llmstream's `echo` model repeats the prompt: with a prompt longer than max_tokens every stream is
# exactly max_tokens long, as the comparison stacks' are (a composed answer ends on its own, often
# after a few dozen tokens, and short streams would measure request handling rather than streaming).
UNPACED = 1_000_000  # tokens/s: llmstream's largest rate, a microsecond apart; the others do not sleep
WORDS = ("tokens", "stream", "one", "at", "a", "time")


def prompt_of(tokens: int) -> str:
    """A prompt a little longer than ``tokens``: each request's prompt is read and counted, so a longer
    one would measure that rather than the streaming."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(tokens + 20))


def request_bytes(stack: Stack, fields: dict[str, Any], prompt: str | None = None) -> bytes:
    prompt = prompt_of(int(fields["max_tokens"])) if prompt is None else prompt
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True, "ttft_ms": 0}
    body.update(dict(stack.request_fields), **fields)
    payload = json.dumps(body).encode()
    head = (
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def cpus() -> tuple[str | None, str | None]:
    """(server CPU, client CPU): the first two this process may use, one each; none on one CPU."""
    allowed = allowed_cpus()
    return (str(allowed[0]), str(allowed[1])) if len(allowed) >= 2 and _has("taskset") else (None, None)


def _has(program: str) -> bool:
    return any((Path(folder) / program).exists() for folder in os.environ.get("PATH", "").split(":"))


@contextmanager
def serving(stack: Stack, log: Path) -> Iterator[tuple[int, int]]:
    """``stack`` on a free port of 127.0.0.1, pinned; yields (port, pid); stopped on the way out."""
    port = free_port()
    command = pinned([part.replace("{port}", str(port)) for part in stack.command], cpus()[0])
    env = {**os.environ, "PYTHONPATH": str(LOADTESTS)}
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        if not answers(f"http://127.0.0.1:{port}/healthz", process):
            raise SystemExit(f"{stack.name} did not start; see {log}")
        yield port, process.pid
    finally:
        _stop(process, timeout=15)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (a supervisor's workers), KiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        pending += [int(child) for child in children]
    return total


def settled_rss_kib(pid: int) -> int:
    time.sleep(RSS_SETTLE_S)
    return rss_kib(pid)


def run_client_process(
    plan: ClientPlan, *, once_answered: Callable[[], T] | None = None, cpu: str | None = None
) -> tuple[Tally, T | None]:
    """The client in its own process on its own core (``cpu``, or the bench's client CPU); with
    ``once_answered``, what it returns when called once the server has answered every stream (None if
    it has not by the window's end).

    Not at a fixed time: a connection counts as open once the kernel has accepted it, and a server
    slow to start streams then held far fewer of them than the client had open, which made its
    memory per stream look smaller the slower it was (a 10,000-stream ramp: read at 8 s, 12.8 KiB a
    stream; every stream answered at 12.5 s, 16.7 KiB)."""
    budget = plan.ramp_s + plan.warmup_s + plan.measure_s + 60
    # The tally comes back in a file: once, a tally read from the client's stdout pipe had a line
    # break in the middle of its JSON (a 2-core run of `make bench`, not reproduced).
    with tempfile.TemporaryDirectory(prefix="llmstream-bench-") as folder:
        out, answered = Path(folder) / "tally.json", Path(folder) / "all-answered"
        if once_answered is not None:
            plan = replace(plan, all_answered_flag=str(answered))
        plan_json = json.dumps({**asdict(plan), "request": plan.request.decode("latin-1")})
        command = pinned([PY, str(Path(__file__)), "client", plan_json, str(out)], cpu or cpus()[1])
        began = time.monotonic()
        process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(LOADTESTS)})
        seen = None
        if once_answered is not None:
            window_end = began + plan.ramp_s + plan.warmup_s + plan.measure_s
            while not answered.exists() and time.monotonic() < window_end and process.poll() is None:
                time.sleep(0.1)
            if answered.exists():
                seen = once_answered()
        if process.wait(timeout=budget):
            raise SystemExit(f"the bench client failed (exit {process.returncode})")
        return Tally(**json.loads(out.read_text())), seen


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- scenarios: each returns {figure name: value} for one stack, one round ----


def unpaced(stack: Stack, sizes: Sizes, log: Path) -> dict[str, float]:
    with serving(stack, log) as (port, _):
        fields = {"max_tokens": sizes.unpaced_tokens, "tokens_per_s": UNPACED}
        plan = ClientPlan(
            port, request_bytes(stack, fields), sizes.unpaced_streams,
            measure_s=sizes.measure_s, ramp_s=min(sizes.ramp_s, 0.5), warmup_s=sizes.warmup_s,
        )  # fmt: skip
        tally, _ = run_client_process(plan)
    return {"events/s": tally.tokens / plan.measure_s, "client cpu %": 100 * tally.cpu_s / tally.wall_s,
            "errors": len(tally.errors)}  # fmt: skip


def starts(stack: Stack, sizes: Sizes, log: Path) -> dict[str, float]:
    """One-token streams back to back on 20 connections: what starting a stream costs (request
    handling, planning, the first and last writes), which paced runs keep out of their window."""
    with serving(stack, log) as (port, _):
        fields = {"max_tokens": 1, "tokens_per_s": UNPACED}
        plan = ClientPlan(
            port, request_bytes(stack, fields), 20, measure_s=sizes.measure_s / 2,
            ramp_s=0.2, warmup_s=sizes.warmup_s,
        )  # fmt: skip
        tally, _ = run_client_process(plan)
    # One token per stream: the tokens of the window are its streams.
    return {"streams/s": tally.tokens / plan.measure_s, "errors": len(tally.errors)}


def paced_plan(port: int, stack: Stack, sizes: Sizes, streams: int, cores: float = 1.0) -> ClientPlan:
    """``streams`` paced streams, opened at ``start_rate`` per second per core the server has
    (``cores``), each lasting past the measured window: the window sees the steady state of that many
    streams, not their starts (a start costs about as much as 40 token events; the `starts` scenario
    measures it)."""
    ramp = max(sizes.ramp_s, streams / (sizes.start_rate * cores))
    outlast = math.ceil((ramp + sizes.warmup_s + sizes.measure_s + 2) * sizes.tokens_per_s)
    fields = {"max_tokens": max(sizes.paced_tokens, outlast), "tokens_per_s": sizes.tokens_per_s}
    return ClientPlan(
        port, request_bytes(stack, fields), streams, measure_s=sizes.measure_s,
        ramp_s=ramp, warmup_s=sizes.warmup_s, tokens_per_s=sizes.tokens_per_s,
    )  # fmt: skip


def paced_figures(
    stack: Stack,
    sizes: Sizes,
    streams: int,
    log: Path,
    *,
    workers: int = 1,
    placement: Placement | None = None,
) -> tuple[dict[str, float], Tally]:
    with serving(stack, log) as (port, _), on_own_cores(port, workers, placement):
        # Twice the cores, twice the streams arriving twice as fast: the starts' cost per core stays.
        cores = workers * placement.share if placement else 1.0
        plan = paced_plan(port, stack, sizes, streams, cores)
        split = (lambda: busiest_worker_share(port, workers)) if workers > 1 else None
        tally, busiest = run_client_process(
            plan, once_answered=split, cpu=str(placement.client_cpu) if placement else None
        )
    figures = {
        "events/s": tally.tokens / plan.measure_s,
        "asked/s": streams * sizes.tokens_per_s,
        "lateness p50 ms": percentile(tally.lateness_ms, 0.5),
        "lateness p99 ms": percentile(tally.lateness_ms, 0.99),
        "first token p99 ms": percentile(tally.first_token_ms, 0.99),
        "refused": tally.refused,
        "errors": len(tally.errors),
        "client cpu %": 100 * tally.cpu_s / tally.wall_s,
    }
    if workers > 1:  # the busiest worker's part of the streams, once they were all open
        figures["busiest worker %"] = float("nan") if busiest is None else 100 * busiest
    return figures, tally


def paced(stack: Stack, sizes: Sizes, log: Path) -> dict[str, float]:
    return paced_figures(stack, sizes, sizes.paced_streams, log)[0]


def holds(figures: dict[str, float], sizes: Sizes) -> bool:
    return (
        figures["lateness p99 ms"] <= sizes.lateness_limit_ms
        and figures["events/s"] >= 0.97 * figures["asked/s"]
        and not figures["errors"]
        and not figures["refused"]
    )


def capacity(
    stack: Stack,
    sizes: Sizes,
    log: Path,
    *,
    steps: tuple[int, ...] = (),
    retries: int = 0,
    workers: int = 1,
    placement: Placement | None = None,
) -> dict[str, float]:
    """The largest of ``steps`` (``capacity_steps`` by default) at which paced streams still hold their
    schedule, a step over the limit run up to ``retries`` times more; with the client's share of its
    core there (near 100%, the client measured itself) and the busiest worker's part of the streams."""
    best: dict[str, float] = {"streams": 0}
    for streams in steps or sizes.capacity_steps:
        for attempt in range(1 + retries):
            figures, _ = paced_figures(stack, sizes, streams, log, workers=workers, placement=placement)
            split = f", busiest worker {figures['busiest worker %']:.0f}%" if workers > 1 else ""
            print(f"    {streams:>6} streams: {figures['events/s']:>9,.0f} events/s, lateness p99 "
                  f"{figures['lateness p99 ms']:.1f} ms, client cpu {figures['client cpu %']:.0f}%{split}"
                  f"{' (again)' if attempt else ''}", flush=True)  # fmt: skip
            if holds(figures, sizes):
                break
        else:
            break
        kept = ("client cpu %", "busiest worker %")  # the second with several workers only
        best = {"streams": streams, **{key: figures[key] for key in kept if key in figures}}
    return {**best, "events/s": best["streams"] * sizes.tokens_per_s}


def idle(stack: Stack, sizes: Sizes, log: Path) -> dict[str, float]:
    """Memory per open stream waiting for its first token (the longest time to first token allowed)."""
    with serving(stack, log) as (port, pid):
        warm = ClientPlan(port, request_bytes(stack, {"max_tokens": 8}), 20, measure_s=0.5, warmup_s=0.2)
        run_client_process(warm)  # imports, caches and first allocations out of the baseline
        before = rss_kib(pid)
        fields = {"max_tokens": 8, "ttft_ms": 600_000}
        ramp = max(sizes.ramp_s, sizes.idle_streams / 2_000)
        # A short request: what a stream costs to hold open, not the bytes of a long prompt.
        request = request_bytes(stack, fields, prompt="Take your time.")
        # Held long enough for a server slower than the ramp to answer them all: memory is read then.
        plan = ClientPlan(port, request, sizes.idle_streams, measure_s=8.0, ramp_s=ramp, warmup_s=2.0)
        tally, during = run_client_process(plan, once_answered=lambda: settled_rss_kib(pid))
    per_stream = float("nan") if during is None else (during - before) / sizes.idle_streams
    return {"KiB/stream": per_stream, "answered": tally.most_answered,
            "errors": len(tally.errors) + (during is None)}  # fmt: skip


def overload(stack: Stack, sizes: Sizes, log: Path, *, streams: int) -> dict[str, float]:
    """Twice the paced capacity: does every new stream get its first token within 1 s, or an
    immediate refusal? Counted over every request of the run, the ramp's included."""
    _, tally = paced_figures(stack, sizes, streams, log)
    waits = tally.first_token_ms
    return {
        "streams": streams,
        "first token <= 1 s": sum(w <= 1000 for w in waits),
        "first token > 1 s": sum(w > 1000 for w in waits),
        "first token max ms": max(waits, default=float("nan")),
        "refused": tally.refused,
        "refusal max ms": max(tally.refusal_ms, default=0.0),
        "errors": len(tally.errors),
    }


def scaleout(sizes: Sizes, log: Path, placement: Placement) -> dict[str, float]:
    """Issue 7's goal 5: does a second worker, given a core of its own, double the paced capacity?
    One capacity scan with ``--workers 1``, one with ``--workers 2``, each worker placed by ``placement``."""
    figures: dict[str, float] = {}
    for workers in (1, 2):
        print(f"  --workers {workers}, {placement.describe()}", flush=True)
        base = STACKS["llmstream"]
        stack = replace(base, command=(*base.command, "--workers", str(workers)))
        steps = tuple(round(step * placement.share) for step in sizes.scaleout_steps)
        found = capacity(stack, sizes, log, steps=steps, retries=1, workers=workers, placement=placement)
        figures[f"workers {workers} streams"] = found["streams"]
        # NaN where the scan held no step, as a round without a ratio
        figures[f"workers {workers} client cpu %"] = found.get("client cpu %", float("nan"))
        if workers > 1:
            figures["busiest worker %"] = found.get("busiest worker %", float("nan"))
    one = figures["workers 1 streams"]
    figures["ratio"] = figures["workers 2 streams"] / one if one else float("nan")
    return figures


# ---- the run ----


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    return {
        "cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}", "pinned": cpus() != (None, None),
    }  # fmt: skip


def show(value: float) -> str:
    if value != value:  # NaN: nothing was measured
        return "-"
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 1000 else f"{value:,.1f}"


def report(scenario: str, rows: dict[str, list[dict[str, float]]], main_figure: str) -> dict[str, Any]:
    """Print one scenario's table (medians over rounds, the range, the ratio to llmstream)."""
    print(f"\n== {scenario}")
    medians = {name: statistics.median(r[main_figure] for r in runs) for name, runs in rows.items() if runs}
    ours = medians.get("llmstream")
    out: dict[str, Any] = {}
    for name, runs in rows.items():
        if not runs:
            continue
        values = [r[main_figure] for r in runs]
        extra = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != main_figure}
        ratio = "" if ours is None or name == "llmstream" or not medians[name] else (
            f"llmstream/{name} = {ours / medians[name]:.2f}x"
        )  # fmt: skip
        details = ", ".join(f"{key} {show(value)}" for key, value in extra.items())
        spread = f"(range {show(min(values))}-{show(max(values))})"
        print(f"  {name:<24} {main_figure} {show(medians[name]):>10} {spread}  {ratio}\n  {'':<24} {details}")
        out[name] = {main_figure: medians[name], "range": [min(values), max(values)], **extra, "runs": runs}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke of the harness")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 3; --quick 1)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--stacks", default=",".join(STACKS), help="stacks, comma-separated")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument(
        "--overload-streams",
        type=int,
        default=None,
        help="overload at this many streams (default: 2x capacity)",
    )
    parser.add_argument(
        "--llmstream-args", default="", help="more flags for llmstream's server, e.g. '--max-lateness 0.05'"
    )
    args = parser.parse_args(argv)
    if args.llmstream_args:
        base = STACKS["llmstream"]
        STACKS["llmstream"] = replace(base, command=(*base.command, *shlex.split(args.llmstream_args)))
    scenarios = [s for s in args.only.split(",") if s]
    stacks = [s for s in args.stacks.split(",") if s]
    if unknown := [s for s in scenarios if s not in SCENARIOS] + [s for s in stacks if s not in STACKS]:
        parser.error(
            f"unknown: {', '.join(unknown)} (scenarios: {', '.join(SCENARIOS)}; stacks: {', '.join(STACKS)})"
        )
    if "llmstream" not in stacks:
        parser.error("--stacks must include llmstream: every figure is a ratio to it")
    sizes = QUICK if args.quick else Sizes()
    rounds = args.rounds or (1 if args.quick else 3)
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    log = args.results / f"{stamp}.log"
    results: dict[str, Any] = {
        "machine": machine(), "sizes": asdict(sizes), "rounds": rounds,
        "llmstream command": list(STACKS["llmstream"].command),
    }  # fmt: skip
    print(f"machine: {results['machine']}\nserver logs: {log}", flush=True)

    ceiling = unpaced(NULL, sizes, log)
    results["client ceiling"] = ceiling
    print(f"\nclient ceiling (a server that only writes): {ceiling['events/s']:,.0f} events/s, "
          f"client cpu {ceiling['client cpu %']:.0f}%", flush=True)  # fmt: skip

    tables = {
        "unpaced": (unpaced, "events/s"), "starts": (starts, "streams/s"), "paced": (paced, "events/s"),
        "idle": (idle, "KiB/stream"),
    }  # fmt: skip
    for scenario in [s for s in scenarios if s in tables]:
        run, figure = tables[scenario]
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in stacks}
        for number in range(rounds):
            for name in stacks:
                print(f"  {scenario} round {number + 1}/{rounds}: {name}", flush=True)
                rows[name].append(run(STACKS[name], sizes, log))
        results[scenario] = report(scenario, rows, figure)
        if scenario == "unpaced":
            share = 100 * results[scenario]["llmstream"]["events/s"] / ceiling["events/s"]
            print(f"  llmstream used {share:.0f}% of the client's ceiling", flush=True)
    llmstream = STACKS["llmstream"]
    most = sizes.paced_streams
    if "capacity" in scenarios:
        print("\n== capacity (llmstream): paced streams x 20 tokens/s, lateness p99 <= 10 ms", flush=True)
        found = capacity(llmstream, sizes, log)
        most = int(found["streams"]) or most
        results["capacity"] = found
        print(
            f"  llmstream holds {found['streams']:,.0f} streams ({found['events/s']:,.0f} events/s)",
            flush=True,
        )
    if "overload" in scenarios:
        figures = overload(llmstream, sizes, log, streams=args.overload_streams or 2 * most)
        results["overload"] = figures
        print(
            "\n== overload (llmstream): " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()), flush=True
        )
    if "scaleout" in scenarios:
        results["scaleout"] = run_scaleout(sizes, log, rounds)
    out = args.results / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out}")
    return 0


def run_scaleout(sizes: Sizes, log: Path, rounds: int) -> dict[str, Any]:
    """The scale-out scenario over ``rounds`` rounds (its figure the median ratio), or why it could not
    be measured on this machine."""
    print("\n== scaleout (llmstream): paced capacity, --workers 2 against --workers 1", flush=True)
    placement = placement_for(2)
    if isinstance(placement, str):
        print(f"  not measured: {placement}", flush=True)
        return {"not measured": placement}
    runs = []
    for number in range(rounds):
        print(f"  scaleout round {number + 1}/{rounds}", flush=True)
        runs.append(scaleout(sizes, log, placement))
    # A round in which one worker held no step has no ratio (NaN, which a median would misplace).
    ratios = [run["ratio"] for run in runs if not math.isnan(run["ratio"])]
    ratio = statistics.median(ratios) if ratios else float("nan")
    one = statistics.median(run["workers 1 streams"] for run in runs)
    two = statistics.median(run["workers 2 streams"] for run in runs)
    each = ", ".join(f"{run['ratio']:.2f}" for run in runs)
    summary = f"ratio {ratio:.2f}x, the median of {len(ratios)}" if ratios else "no round has a ratio"
    print(f"  --workers 1: {one:,.0f} streams, --workers 2: {two:,.0f} streams (medians); {summary} "
          f"(rounds: {each}; a side that held no step gives none)", flush=True)  # fmt: skip
    if any(run["workers 2 client cpu %"] >= CLIENT_BUSY_PCT for run in runs):
        print(f"  the client used {CLIENT_BUSY_PCT}% or more of its core: the figure may be the client's",
              flush=True)  # fmt: skip
    return {"placement": placement.describe(), "ratio": ratio, "workers 1 streams": one,
            "workers 2 streams": two, "runs": runs}  # fmt: skip


def client_main(plan_json: str, out: str) -> int:
    """The client subcommand: run a plan, write its tally as JSON to ``out`` (uvloop when installed)."""
    fields = json.loads(plan_json)
    plan = ClientPlan(**{**fields, "request": fields["request"].encode("latin-1")})
    try:
        import uvloop

        tally = uvloop.run(run_client(plan))
    except ImportError:
        tally = asyncio.run(run_client(plan))
    Path(out).write_text(json.dumps(asdict(tally)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "client":
        sys.exit(client_main(sys.argv[2], sys.argv[3]))
    sys.exit(main())
