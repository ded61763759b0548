"""A results folder's timelines as the figures of the run, and the verdict on its validity.

Reads every worker's ``timelines/streams-*.csv`` and ``tokens-*.csv`` (standard library only, so the
load-test driver needs no pandas). The verdict uses the exact client lag of every token, not Locust's
rounded histogram.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

__all__ = ["percentile", "summarize"]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank (None if there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _figures(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def _rows(folder: Path, pattern: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((folder / "timelines").glob(pattern)):
        with path.open(newline="") as file:
            rows.extend(csv.DictReader(file))
    return rows


def summarize(folder: Path, *, max_client_lag_ms: float = 10.0) -> dict[str, Any]:
    """The run's figures: streams by outcome, tokens, events/s, latencies (ms), client lag, validity."""
    streams = _rows(folder, "streams-*.csv")
    if not streams:
        raise FileNotFoundError(f"no stream timelines in {folder / 'timelines'}: did the load test run?")
    tokens = _rows(folder, "tokens-*.csv")
    kind_of = {row["stream"]: row["kind"] for row in streams}
    outcomes = Counter(row["outcome"] for row in streams)
    errors = Counter(row["error"] for row in streams if row["outcome"] == "failed")

    ttft, e2e = [], []
    for row in streams:
        start = float(row["intended_start"])
        if row["first_token"]:
            ttft.append((float(row["first_token"]) - start) * 1000)
        if row["outcome"] == "ok":
            e2e.append((float(row["end"]) - start) * 1000)

    by_stream: dict[str, list[tuple[int, float]]] = defaultdict(list)
    lag: list[float] = []
    for row in tokens:
        recv = float(row["recv"])
        by_stream[row["stream"]].append((int(row["position"]), recv))
        if row["sent"] and kind_of.get(row["stream"]) != "slow":
            lag.append((recv - float(row["sent"])) * 1000)
    itl = [
        (b - a) * 1000
        for arrivals in by_stream.values()
        for (_, a), (_, b) in itertools.pairwise(sorted(arrivals))
    ]
    receive_times = [recv for arrivals in by_stream.values() for _, recv in arrivals]
    span = max(receive_times) - min(receive_times) if len(receive_times) > 1 else 0.0

    lag_figures = _figures(lag) if lag else None
    p99 = lag_figures["p99"] if lag_figures else None
    return {
        "streams": len(streams),
        "outcomes": dict(outcomes),
        "failures": outcomes.get("failed", 0),
        "errors": dict(errors.most_common(10)),
        "tokens": len(tokens),
        "events_per_s": len(tokens) / span if span > 0 else None,
        "ttft_ms": _figures(ttft),
        "itl_ms": _figures(itl),
        "e2e_ms": _figures(e2e),
        "client_lag_ms": lag_figures,
        "max_client_lag_ms": max_client_lag_ms,
        "valid": None if p99 is None else p99 <= max_client_lag_ms,
    }
