"""CI's smoke of the benchmark harness (make bench --quick): every stack starts, is measured and
compared; the figures themselves are for `make bench` and docs/performance.md, never asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from cores import placement_for

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("llmstream", "naive-quart-hypercorn", "sse-starlette-uvicorn")


def test_the_bench_harness_measures_every_stack_and_prints_ratios(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench.py"), "--quick", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    results = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert results["machine"]["cores"] >= 1
    assert results["client ceiling"]["events/s"] > 0
    main_figures = {"unpaced": "events/s", "starts": "streams/s", "paced": "events/s", "idle": "KiB/stream"}
    for scenario, figure in main_figures.items():
        for stack in STACKS:
            row = results[scenario][stack]
            assert row[figure] > 0, (scenario, stack, row)
            assert row["errors"] == 0, (scenario, stack, row)
        for stack in STACKS[1:]:
            assert f"llmstream/{stack} = " in output
    assert results["idle"]["llmstream"]["answered"] == results["sizes"]["idle_streams"]
    assert results["capacity"]["streams"] in results["sizes"]["capacity_steps"] + [0]
    overload = results["overload"]
    assert overload["first token <= 1 s"] + overload["first token > 1 s"] + overload["refused"] > 0
    scaleout = results["scaleout"]
    placement = placement_for(2)
    if isinstance(placement, str):  # a machine with neither the cores nor a cgroup to share one
        assert scaleout == {"not measured": placement}
        assert f"not measured: {placement}" in output
    else:
        assert scaleout["placement"] == placement.describe()
        (run,) = scaleout["runs"]
        steps = {round(step * placement.share) for step in results["sizes"]["scaleout_steps"]} | {0}
        assert {run["workers 1 streams"], run["workers 2 streams"]} <= steps, run
        busiest = run["busiest worker %"]  # NaN when --workers 2 held no step
        assert math.isnan(busiest) or 50 <= busiest <= 100, run
        assert "--workers 2 against --workers 1" in output


def test_overload_runs_at_the_stream_count_asked_for_with_the_server_flags_given(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "loadtests" / "bench.py"), "--quick", "--only", "overload",
        "--overload-streams", "60", "--llmstream-args", "--max-lateness 0.05", "--results", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert results["overload"]["streams"] == 60
    assert results["overload"]["errors"] == 0
    command = results["llmstream command"]
    assert command[command.index("--max-lateness") + 1] == "0.05"
