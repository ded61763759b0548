"""Prometheus metrics of the streaming engine, one registry per app.

Per-event figures are plain integers bumped on the hot path and read only when /metrics is scraped: the
prometheus_client Counter takes a lock on every `inc()`, which the per-event path must not pay.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CLOSE_REASONS = (
    "complete",
    "client_disconnected",
    "server_shutdown",
    "write_timeout",
    "max_duration",
    "error",
    "reset",
)

# Stream durations run from milliseconds (instant profile) to many minutes (long demos).
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class StreamMetrics:
    """What the engine counts; `render()` gives the Prometheus text exposition."""

    def __init__(
        self, open_streams: Callable[[], int], token_lateness: Callable[[], float] = lambda: 0.0
    ) -> None:
        self.events_sent = 0
        self.bytes_sent = 0
        self.streams_rejected = 0
        self.closed: Tally[str] = Tally(dict.fromkeys(CLOSE_REASONS, 0))
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EngineCollector(self, open_streams, token_lateness))
        self.durations = Histogram(
            "llmstream_stream_duration_seconds",
            "Seconds from a stream's first byte to its close.",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )

    def stream_closed(self, reason: str, duration: float) -> None:
        self.closed[reason] += 1
        self.durations.observe(duration)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(
        self, metrics: StreamMetrics, open_streams: Callable[[], int], token_lateness: Callable[[], float]
    ) -> None:
        self._metrics = metrics
        self._open_streams = open_streams
        self._token_lateness = token_lateness

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        m = self._metrics
        yield GaugeMetricFamily("llmstream_open_streams", "Streams open now.", value=self._open_streams())
        yield GaugeMetricFamily(
            "llmstream_token_lateness_seconds",
            "How late paced tokens keep running (above --max-lateness, new streams are refused).",
            value=self._token_lateness(),
        )
        yield CounterMetricFamily("llmstream_events_sent", "SSE events written.", value=m.events_sent)
        yield CounterMetricFamily("llmstream_bytes_sent", "Bytes of SSE bodies written.", value=m.bytes_sent)
        yield CounterMetricFamily(
            "llmstream_streams_rejected",
            "Streams refused with 503: at the cap, overloaded or shutting down.",
            value=m.streams_rejected,
        )
        closed = CounterMetricFamily(
            "llmstream_streams_closed", "Streams closed, by reason.", labels=["reason"]
        )
        for reason, count in sorted(m.closed.items()):
            closed.add_metric([reason], count)
        yield closed
