"""Smoke load tests: real Locust processes against a real llmstream, through `loadtests/run.py`.

The main run is CI's load test: 300+ concurrent streams for about 20 s with a Locust master and two
worker processes; zero failures, every stream's integrity checked, a valid run. Shorter runs exercise
--processes, the shapes, the open loop and the validity verdict. Results stay in results/ci-*/ for
the notebooks' test (make notebooks).
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
KINDS = {"native", "openai", "anthropic", "resumer", "aborter", "slow"}
# Slow enough streams that one core serves 320 of them with room to spare (the validity verdict
# needs an unhurried server as much as an unhurried client): 5 tokens/s, 60 tokens.
GENTLE = ["--tokens-per-s", "5", "--max-tokens", "60"]


def load_test(run: str, *args: str, expect: int = 0, timeout: float = 240) -> dict[str, Any]:
    shutil.rmtree(RESULTS / run, ignore_errors=True)
    command = [
        sys.executable,
        str(ROOT / "loadtests" / "run.py"),
        "--results",
        str(RESULTS),
        "--run",
        run,
        *args,
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    output = done.stdout + done.stderr
    log = RESULTS / run / "locust.log"
    assert done.returncode == expect, output + (log.read_text()[-4000:] if log.exists() else "")
    summary: dict[str, Any] = json.loads((RESULTS / run / "summary.json").read_text())
    summary["output"] = output
    return summary


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def timelines(run: str) -> list[dict[str, str]]:
    return [row for path in sorted((RESULTS / run / "timelines").glob("streams-*.csv")) for row in rows(path)]


def most_at_once(streams: list[dict[str, str]]) -> int:
    """The largest number of streams open at the same moment (a sweep over starts and ends)."""
    edges = sorted([(float(s["start"]), 1) for s in streams] + [(float(s["end"]), -1) for s in streams])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_ci_smoke_300_streams_master_and_two_workers() -> None:
    summary = load_test(
        "ci-smoke", "--users", "320", "--spawn-rate", "160", "--duration", "20", "--workers", "2", *GENTLE
    )
    assert summary["failures"] == 0, summary["errors"]
    assert summary["valid"] is True, summary["client_lag_ms"]
    streams = timelines("ci-smoke")
    assert most_at_once(streams) >= 300
    assert {s["kind"] for s in streams} == KINDS
    assert summary["outcomes"]["aborted"] > 0
    # Two workers, each with its own timelines; the master wrote none.
    assert len(list((RESULTS / "ci-smoke" / "timelines").glob("streams-*.csv"))) == 2
    # Every figure is in Locust's own statistics, per kind, as the web UI, CSV and HTML report show.
    stats = rows(RESULTS / "ci-smoke" / "locust_stats.csv")
    names = {(r["Type"], r["Name"]) for r in stats}
    for kind in KINDS:
        for name in ("e2e", "ttft", "itl", "tpot", "tokens/s", "tokens"):
            assert (kind, name) in names, (kind, name)
    assert ("client", "lag") in names
    assert all(r["Failure Count"] == "0" for r in stats)
    e2e_requests = sum(int(r["Request Count"]) for r in stats if r["Name"] == "e2e")
    assert e2e_requests == summary["streams"]
    assert "ttft" in (RESULTS / "ci-smoke" / "report.html").read_text()
    run = json.loads((RESULTS / "ci-smoke" / "run.json").read_text())
    assert run["distribution"] == "master+workers"
    assert run["workers"] == 2


def test_processes_mode_ramp_drains_every_stream_and_no_worker_stalls_at_a_spawn() -> None:
    # Regressions: the server was stopped under the forked workers' last streams (run.py waited for the
    # master only), and each spawn message of a ramp stalled every worker for ~300 ms (Locust building
    # its argument parser per option), which made such runs invalid at a few hundred events/s.
    summary = load_test(
        "ci-processes", "--users", "60", "--spawn-rate", "60", "--duration", "12", "--processes", "2",
        "--shape", "ramp", *GENTLE, "--stop-timeout", "20",
    )  # fmt: skip
    assert summary["failures"] == 0, summary["errors"]
    assert len(list((RESULTS / "ci-processes" / "timelines").glob("streams-*.csv"))) == 2
    history = [
        r for r in rows(RESULTS / "ci-processes" / "locust_stats_history.csv") if r["Name"] == "Aggregated"
    ]
    users = [int(r["User Count"]) for r in history]
    assert users[0] < 30 < max(users), users  # a ramp rises from a little to all of them


def test_open_loop_streams_arrive_at_the_rate_and_count_from_their_scheduled_start() -> None:
    summary = load_test(
        "ci-open-loop", "--rate", "25", "--users", "1", "--duration", "8", "--api", "native",
        "--tokens-per-s", "50", "--max-tokens", "10",
    )  # fmt: skip
    assert summary["failures"] == 0, summary["errors"]
    streams = timelines("ci-open-loop")
    assert 0.8 * 25 * 8 <= len(streams) <= 25 * 8 + 5  # in-flight ones at the end may be cut off
    starts = sorted(float(s["intended_start"]) for s in streams)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 25, rel=0.15)  # arrivals keep the schedule
    assert all(float(s["start"]) >= float(s["intended_start"]) for s in streams)


def test_a_client_that_lags_makes_the_run_invalid_loudly() -> None:
    # No client keeps a lag under a microsecond: the verdict must say invalid and the exit status 3.
    summary = load_test(
        "ci-invalid", "--users", "10", "--duration", "4", "--api", "native", *GENTLE,
        "--max-client-lag-ms", "0.001", expect=3,
    )  # fmt: skip
    assert summary["valid"] is False
    assert "INVALID RUN" in summary["output"]


def test_workers_last_figures_reach_the_master_when_streams_finish_during_the_stop() -> None:
    # Regression (CI: 1045 e2e requests in Locust's statistics for 1047 streams in the timelines): a
    # worker told to stop sends "client_stopped" without a last stats report, and the master, which
    # then forgets that worker, quits before its next periodic report (locust/runners.py, "stop").
    # Here every stream is still under way at the stop, so every figure comes after it.
    summary = load_test(
        "ci-last-figures", "--users", "4", "--spawn-rate", "4", "--duration", "2", "--workers", "1",
        "--api", "native", "--tokens-per-s", "10", "--max-tokens", "40",
        # A few hundred lag samples: one hiccup of the machine would decide the verdict, not the subject.
        "--max-client-lag-ms", "1000",
    )  # fmt: skip
    assert summary["failures"] == 0, summary["errors"]
    stats = rows(RESULTS / "ci-last-figures" / "locust_stats.csv")
    e2e_requests = sum(int(r["Request Count"]) for r in stats if r["Name"] == "e2e")
    assert summary["streams"] == len(timelines("ci-last-figures")) >= 4
    assert e2e_requests == summary["streams"]
