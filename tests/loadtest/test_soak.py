"""The memory soak (`loadtests/soak.py`, `make soak`): short real runs against a real server, and its
verdict's arithmetic on made-up samples.

A run of a few seconds is no soak: the server's heap is still settling (about +1% between the 5th and
the 12th second here), so the run that must pass allows 10%; the verdict's failure path is proven by a
limit no live process can meet, and the windows by `memory_growth` on chosen figures.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
from soak import Sample, memory_growth

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "loadtests" / "soak.py"
KINDS = ("native", "openai", "anthropic", "resumer", "aborter", "slow")
# A sample line: elapsed, RSS MiB, processes, streams, streams/s, open, failures, phase.
SAMPLE = re.compile(
    r"^\s*(\d+\.\d)\s+(\d+\.\d\d)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)\s+(\d+)\s+(warm-up|measured)$"
)


def soak(*args: str, expect: int, timeout: float = 60) -> str:
    command = [sys.executable, str(SOAK), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == expect, output
    return output


def samples_in(output: str) -> list[re.Match[str]]:
    return [match for line in output.splitlines() if (match := SAMPLE.match(line))]


def test_a_short_soak_prints_memory_over_time_and_passes_with_every_kind_churned(tmp_path: Path) -> None:
    results = tmp_path / "soak.csv"
    output = soak(
        "--duration", "12", "--warmup", "4", "--interval", "1", "--concurrency", "20",
        "--max-growth-pct", "10", "--results", str(results), expect=0,
    )  # fmt: skip
    samples = samples_in(output)
    assert len(samples) == 12, output
    assert [m[8] for m in samples] == ["warm-up"] * 3 + ["measured"] * 9
    assert all(float(m[2]) > 20 for m in samples), output  # a Python server holds tens of MiB
    streams = [int(m[4]) for m in samples]
    assert streams == sorted(streams), output
    assert streams[-1] > 100, output
    assert all(m[7] == "0" for m in samples), output
    done = re.search(r"^streams done: \d+ \((.*); (\d+) hung up on purpose\)$", output, re.MULTILINE)
    assert done, output
    per_kind = dict(pair.split("=") for pair in done[1].split())
    assert set(per_kind) == set(KINDS)
    assert all(int(count) > 0 for count in per_kind.values()), per_kind
    assert int(done[2]) > 0  # the aborters did hang up mid-stream
    assert "\nfailures: 0\n" in output
    assert "PASS:" in output
    assert "FAIL" not in output
    with results.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["rss_mib"] for row in rows] == [m[2] for m in samples]


def test_growth_beyond_the_limit_fails_the_soak_and_says_so(tmp_path: Path) -> None:
    # Growth is (end - baseline) / baseline: above -100% for any process that holds memory at the end,
    # so this limit fails for the memory alone, while the streams are all sound.
    output = soak(
        "--duration", "6", "--warmup", "0", "--interval", "1", "--concurrency", "10",
        "--max-growth-pct", "-100", "--server-log", str(tmp_path / "server.log"), expect=1,
    )  # fmt: skip
    assert len(samples_in(output)) == 6
    assert "\nfailures: 0\n" in output
    fails = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, output
    assert re.fullmatch(
        r"FAIL: resident memory grew [+-]\d+\.\d\d% after the warm-up, more than -100%", fails[0]
    )
    assert f"server log: {tmp_path / 'server.log'}" in output  # kept, as after any failed soak
    assert (tmp_path / "server.log").stat().st_size > 0


def test_too_few_samples_after_the_warmup_is_a_usage_error() -> None:
    output = soak("--duration", "10", "--warmup", "6", "--interval", "1", expect=2)
    assert "5 samples after the warm-up" in output


def sample(elapsed: float, rss_mib: float, *, warmup: bool = False) -> Sample:
    return Sample(elapsed, int(rss_mib * 1024 * 1024), (1,), 0, None, 0, warmup)


def test_growth_compares_the_medians_of_the_first_and_last_three_samples_after_warmup() -> None:
    figures = [100, 120, 50, 50, 200, 50, 60, 61, 300, 61]  # warm-up, then one outlier in each window
    samples = [sample(i, mib, warmup=i < 2) for i, mib in enumerate(figures)]
    growth = memory_growth(samples)
    assert growth is not None
    assert growth.baseline == 50 * 1024 * 1024  # median of 50, 50, 200: the warm-up's 120 left out
    assert growth.end == 61 * 1024 * 1024  # median of 61, 300, 61
    assert growth.pct == pytest.approx(22.0)
    assert (growth.baseline_at, growth.end_at) == ((2, 4), (7, 9))


def test_a_cut_short_run_compares_smaller_windows_that_never_overlap() -> None:
    samples = [sample(0, 10, warmup=True), sample(1, 100), sample(2, 101), sample(3, 99)]
    growth = memory_growth(samples)
    assert growth is not None
    assert (growth.baseline_at, growth.end_at) == ((1, 1), (3, 3))
    assert growth.pct == pytest.approx(-1.0)
    assert memory_growth(samples[:2]) is None
