"""Read one load-test results folder (results/<run>/) into pandas: shared by the notebooks here.

A results folder holds run.json, summary.json (missing if the run broke) and timelines/: one
streams-<host>-<pid>.csv and one tokens-<host>-<pid>.csv per Locust worker process. Times there are
Unix seconds; here they become milliseconds (latencies) or seconds since the run's start (time axes).
The figures follow loadtests/streamload/summary.py, which writes summary.json: nearest-rank percentiles,
events/s over the span of receive times, client lag without the slow readers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
LAG_LIMIT_MS = 10.0  # unless summary.json says otherwise (max_client_lag_ms)
LAGGARDS = ("slow",)  # kinds that read slowly on purpose: left out of the client lag and its verdict
OUTCOMES = ("ok", "failed", "aborted")

STREAM_TIMES = ["intended_start", "start", "first_token", "end"]
STREAM_COLUMNS = {"stream": str, "kind": str, "api": str, "outcome": str, "error": str}
STREAM_COLUMNS |= dict.fromkeys(STREAM_TIMES, float)
TOKEN_COLUMNS = {"stream": str, "position": "int64", "index": "float64", "recv": "float64", "sent": "float64"}
PERCENTILE_COLORS = {50: "tab:green", 90: "tab:orange", 99: "tab:red"}


class ResultsError(Exception):
    """A results folder is missing or holds no load-test timelines."""


def runs(base: Path = RESULTS) -> list[Path]:
    """The load-test folders under base (those with timelines/streams-*.csv), oldest first."""
    if not base.is_dir():
        return []
    found = {d.resolve() for d in base.iterdir() if d.is_dir() and any(d.glob("timelines/streams-*.csv"))}
    return sorted(found, key=_started)  # resolved: the results/latest link is no run of its own


def _started(folder: Path) -> float:
    # run.json's start time; writing figures/ into a folder changes its mtime, so that is no clock.
    try:
        return pd.Timestamp(json.loads((folder / "run.json").read_text())["started"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return (folder / "timelines").stat().st_mtime


def pick(variable: str, newest: int = 1) -> Path:
    """The folder named by the environment variable, else the newest-th newest run under results/.

    A relative path is taken from the repository root, or else from the current folder (the kernel's).
    """
    if value := os.environ.get(variable):
        path = Path(value).expanduser()
        return (ROOT / path if (ROOT / path).is_dir() else path).resolve()
    found = runs()
    if len(found) < newest:
        raise ResultsError(
            f"{variable} is not set and {RESULTS} holds {len(found)} load-test run(s), {newest} needed: "
            f"run a load test (make loadtest) or set {variable} to a results folder"
        )
    return found[-newest]


def figures_folder(default: Path) -> Path:
    """LLMSTREAM_FIGURES (relative: from the repository root) or default, created if missing."""
    value = os.environ.get("LLMSTREAM_FIGURES")
    folder = ROOT / Path(value).expanduser() if value else default
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Run:
    path: Path
    meta: dict[str, Any]  # run.json ({} if missing)
    summary: dict[str, Any] | None  # summary.json, None if missing
    streams: pd.DataFrame  # one row per stream, + worker, sid, ttft_ms, e2e_ms, t_start, t_end
    tokens: pd.DataFrame  # one row per token, + worker, sid, kind, t, itl_ms, since_start_ms, lag_ms
    t0: float  # Unix time of the run's first (intended) stream start
    duration_s: float

    @property
    def name(self) -> str:
        return str(self.meta.get("run") or self.path.name)

    @property
    def lag_limit_ms(self) -> float:
        return float((self.summary or {}).get("max_client_lag_ms") or LAG_LIMIT_MS)

    @property
    def has_lag(self) -> bool:
        """Whether the server sent send timestamps, so that the client's own lag is measurable."""
        return bool(self.tokens.lag_ms.notna().any())

    def fair_tokens(self) -> pd.DataFrame:
        """The tokens of every stream but the slow readers': those the client lag is judged on."""
        return self.tokens[~self.tokens.kind.isin(LAGGARDS)]

    def describe(self) -> str:
        m = self.meta
        workers = len(set(self.streams.worker) | set(self.tokens.worker))
        orphans = (self.tokens.kind == "?").sum()
        return (
            f"{self.name}  ({self.path})\n  target {m.get('target', '?')}, shape {m.get('shape', '?')}, "
            f"users {m.get('users', '?')}, arrival rate {m.get('arrival_rate')}, mix {m.get('mix', '?')}\n"
            f"  {self.duration_s:.0f} s, {workers} worker(s), {len(self.streams)} streams, "
            f"{len(self.tokens)} tokens, summary.json {'present' if self.summary else 'MISSING'}"
            + (f"\n  {orphans} tokens belong to streams with no row in streams-*.csv" if orphans else "")
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _read_csv(path: Path, dtype: dict[str, Any]) -> pd.DataFrame:
    # Only empty cells are missing: a stream id such as "NA" stays text.
    try:
        return pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):  # a worker that died before writing it
        return pd.DataFrame({c: pd.Series(dtype=object if d is str else d) for c, d in dtype.items()})


def load(path: Path | str) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: no such results folder")
    timelines = path / "timelines"
    if not any(timelines.glob("streams-*.csv")):
        raise ResultsError(f"{path}: no timelines/streams-*.csv in it: is it a load-test results folder?")
    files = [*timelines.glob("streams-*.csv"), *timelines.glob("tokens-*.csv")]
    workers = sorted({f.stem.split("-", 1)[1] for f in files})

    streams, tokens, offset = [], [], 0
    for w in workers:
        s = _read_csv(timelines / f"streams-{w}.csv", STREAM_COLUMNS)
        t = _read_csv(timelines / f"tokens-{w}.csv", TOKEN_COLUMNS)
        # Stream ids need only be unique within a worker: number the streams across all workers (sid).
        ids = pd.Index(pd.concat([s.stream, t.stream]).unique())
        s["sid"], t["sid"] = offset + ids.get_indexer(s.stream), offset + ids.get_indexer(t.stream)
        s["worker"], t["worker"], offset = w, w, offset + len(ids)
        streams.append(s)
        tokens.append(t)
    s = pd.concat(streams, ignore_index=True)
    t = pd.concat(tokens, ignore_index=True)
    if s.empty:
        raise ResultsError(f"{path}: the timelines hold no streams")
    s["error"] = s.error.fillna("")

    t0 = float(np.nanmin(s[["intended_start", "start"]].to_numpy()))
    meta = _read_json(path / "run.json") or {}
    end = np.nanmax([s.end.max(), t.recv.max(), t0])
    duration = float(meta.get("duration_s") or end - t0)

    s["ttft_ms"] = (s.first_token - s.intended_start) * 1e3
    s["e2e_ms"] = ((s.end - s.intended_start) * 1e3).where(s.outcome == "ok")
    s["t_start"], s["t_end"] = s.start - t0, s.end - t0

    # Tokens learn their stream's kind and start; tokens of a stream with no row (killed run) are kind "?".
    by_sid = s.drop_duplicates("sid", keep="last").set_index("sid")
    t["kind"] = t.sid.map(by_sid.kind).fillna("?")
    t = t.sort_values(["sid", "position"], ignore_index=True)
    t["t"] = t.recv - t0
    t["itl_ms"] = (t.recv.diff() * 1e3).where(t.sid.eq(t.sid.shift()))
    t["since_start_ms"] = (t.recv - t.sid.map(by_sid.intended_start)) * 1e3
    t["lag_ms"] = (t.recv - t.sent) * 1e3
    return Run(path, meta, _read_json(path / "summary.json"), s, t, t0, duration)


def pct(values: pd.Series, q: float) -> float:
    """The q-th percentile (0..100) of the non-missing values by nearest rank, NaN if there are none."""
    v = values.dropna().to_numpy()
    return float(np.percentile(v, q, method="inverted_cdf")) if len(v) else float("nan")


def verdict(run: Run) -> bool | None:
    """Valid if the client lag p99 (slow readers aside) is within the limit; None if not measurable."""
    lag = run.fair_tokens().lag_ms
    return None if lag.isna().all() else bool(pct(lag, 99) <= run.lag_limit_ms)


def verdict_text(run: Run) -> str:
    valid, lag, limit = verdict(run), pct(run.fair_tokens().lag_ms, 99), run.lag_limit_ms
    if valid is None:
        return "client lag UNKNOWN: the server sent no send timestamps (`sent` is empty), nothing to measure"
    word, sign = ("VALID", "<=") if valid else ("NOT VALID", ">")
    return f"{word}: client lag p99 {lag:.2f} ms {sign} {limit:g} ms (slow readers not counted)"


def figures(run: Run) -> pd.Series:
    """The run's key figures, named as in summary.json (nested keys joined by a dot)."""
    s, t = run.streams, run.tokens
    outcomes = s.outcome.value_counts()
    span = t.recv.max() - t.recv.min() if len(t) > 1 else 0.0
    out: dict[str, Any] = {"streams": len(s)}
    for outcome in [*OUTCOMES, *sorted(set(outcomes.index) - set(OUTCOMES))]:
        out[f"outcomes.{outcome}"] = int(outcomes.get(outcome, 0))
    out["failures"] = out["outcomes.failed"]
    out["tokens"] = len(t)
    out["events_per_s"] = len(t) / span if span > 0 else None
    lag = run.fair_tokens().lag_ms
    for name, values in [
        ("ttft_ms", s.ttft_ms),
        ("itl_ms", t.itl_ms),
        ("e2e_ms", s.e2e_ms),
        ("client_lag_ms", lag),
    ]:
        for q in (50, 90, 99, 100):
            value = pct(values, q)
            out[f"{name}.{'max' if q == 100 else f'p{q}'}"] = None if np.isnan(value) else value
    out["max_client_lag_ms"] = run.lag_limit_ms
    out["valid"] = verdict(run)
    return pd.Series(out, dtype=object)


def summary_check(run: Run) -> pd.DataFrame:
    """The figures from the timelines next to summary.json's (errors aside: see the errors table)."""
    mine = figures(run)
    theirs: dict[str, Any] = {}
    for key, value in (run.summary or {}).items():
        if isinstance(value, dict):
            theirs |= {f"{key}.{k}": v for k, v in value.items()}
            if key == "outcomes":  # summary.json lists only the outcomes that occurred
                theirs |= {f"outcomes.{o}": 0 for o in OUTCOMES if o not in value}
        elif value is not None or key in mine:
            theirs[key] = value
    rows = list(mine.index) + [k for k in theirs if k not in mine and not k.startswith("errors.")]
    table = pd.DataFrame(
        {"timelines": [mine.get(r) for r in rows], "summary.json": [theirs.get(r) for r in rows]},
        index=rows,
        dtype=object,
    )
    return table if run.summary else table[["timelines"]]


def fmt(value: Any) -> Any:
    """A figure for reading: floats with two decimals, None and NaN as a dash, the rest as it is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else value


def per_second(times: pd.Series, duration_s: float) -> pd.Series:
    """How many of the times (seconds since the start) fall in each 1 s bucket, empty buckets included."""
    n = int(np.ceil(max(duration_s, times.max() if len(times) else 0))) + 1
    counts = np.bincount(times.dropna().clip(lower=0).astype(int), minlength=n)
    return pd.Series(counts, name="per second").rename_axis("second")


def open_streams(run: Run) -> pd.Series:
    """Streams open at each whole second (started, not yet ended); a stream with no end stays open."""
    ticks = np.arange(int(np.ceil(max(run.duration_s, run.streams.t_end.max()))) + 1)
    starts = np.sort(run.streams.t_start.dropna())
    ends = np.sort(run.streams.t_end.dropna())
    opened = np.searchsorted(starts, ticks, side="right") - np.searchsorted(ends, ticks, side="right")
    return pd.Series(opened, index=pd.Index(ticks, name="second"), name="open streams")


def locust_users(run: Run) -> pd.Series | None:
    """Locust's user count per second from locust_stats_history.csv, if the run wrote it."""
    try:
        h = pd.read_csv(run.path / "locust_stats_history.csv")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
    if "Name" in h:
        h = h[h.Name == "Aggregated"]
    if not {"Timestamp", "User Count"} <= set(h) or h.empty:
        return None
    return pd.Series(h["User Count"].to_numpy(), index=h.Timestamp.to_numpy() - run.t0, name="Locust users")


def ecdf(ax: Any, values: pd.Series, label: str | None = None, max_points: int = 4000, **style: Any) -> None:
    """Plot the empirical CDF of values (thinned to max_points, the top 0.1 % kept whole for the tail)."""
    v = np.sort(values.dropna().to_numpy())
    if not len(v):
        return
    n = len(v)
    keep = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(int), np.arange(int(n * 0.999), n)])
    ax.step(v[keep], (keep + 1) / n, where="post", label=label, **style)
    ax.set_ylim(0, 1.01)
    ax.set_ylabel("fraction ≤ x")
    ax.grid(alpha=0.3)


def mark_percentiles(ax: Any, values: pd.Series, qs: tuple[int, ...] = (50, 90, 99)) -> None:
    """Dashed vertical lines at the percentiles, labelled in the legend."""
    for q in qs:
        x, color = pct(values, q), PERCENTILE_COLORS.get(q, "tab:gray")
        if not np.isnan(x):
            ax.axvline(x, color=color, linestyle="--", linewidth=1, label=f"p{q} {x:.1f} ms")


def no_data(ax: Any, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
