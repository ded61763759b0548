"""A counter of injected faults by kind, exposed on /metrics as `llmstream_faults_injected_total{kind}`.

Kept here rather than in metrics.py (the engine's): a plain per-app tally, read by a Prometheus
collector registered on the hub's registry only when /metrics is scraped, like the engine's counters.
Tests read it to count how many attempts an SDK made against a rate-limit fault.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from quart import Quart, current_app

from llmstream.simulator import StreamPlan

__all__ = ["FAULT_KINDS", "FaultTally", "install", "record", "tally_of"]

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "unavailable",
    "overloaded",
    "error_after",
    "truncate_after",
    "reset_after",
    "stall",
    "slow_first_token",
)
_KEY = "llmstream.fault_tally"


class FaultTally(Collector):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(FAULT_KINDS, 0))

    def record(self, plan: StreamPlan, *, streamed: bool) -> None:
        """Count the faults that strike in this response (a resumed stream may be past some)."""
        faults = plan.faults
        if faults.http_error is not None:
            self.counts[faults.http_error.kind] += 1
            return
        if plan.ending != "finish":
            self.counts[f"{plan.ending}_after"] += 1
        if not streamed:
            return
        # A range, not a set built from the tokens: that made a Token per token of every stream (an
        # eighth of the server's CPU in the unpaced bench, 2,000-token streams).
        indexes = plan.tokens.indexes
        self.counts["stall"] += sum(s.after_tokens in indexes for s in faults.stalls)
        if faults.slow_first_token_ms and 0 in indexes:
            self.counts["slow_first_token"] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "llmstream_faults_injected", "Faults injected into responses, by kind.", labels=["kind"]
        )
        for kind, count in sorted(self.counts.items()):
            family.add_metric([kind], count)
        yield family


def install(app: Quart, registry: CollectorRegistry) -> None:
    tally = FaultTally()
    registry.register(tally)
    app.extensions[_KEY] = tally


def tally_of(app: Quart) -> FaultTally:
    tally: FaultTally = app.extensions[_KEY]
    return tally


def record(plan: StreamPlan, *, streamed: bool) -> None:
    """Count ``plan``'s faults in the current app's tally."""
    tally_of(current_app).record(plan, streamed=streamed)
