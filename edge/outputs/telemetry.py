"""The live server's Prometheus metrics (/metrics), in a registry of their own.

Per-result series are updated on publish; the pipeline's own counters (frames captured,
dropped, ..., reconnects) are read from its stats callable when /metrics is scraped.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.results import ERROR, OK, UNCERTAIN, FrameResult, RunStats

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
# /metrics counters read from the run's stats at scrape time: name -> (the figure, help)
STATS_COUNTERS: dict[str, tuple[Callable[[RunStats], int], str]] = {
    "edge_frames_captured": (lambda s: s.frames.captured, "Frames delivered by the source."),
    "edge_frames_processed": (lambda s: s.frames.processed, "Frames run through the pipeline."),
    "edge_frames_dropped": (lambda s: s.frames.dropped, "Frames replaced by a newer one before inference."),
    "edge_frame_errors": (lambda s: s.frames.errors, "Frames that could not be processed."),
    "edge_source_reconnects": (lambda s: s.reconnects, "Times the camera or stream was reopened."),
}


class ServerMetrics:
    """Prometheus series of one server, in their own registry."""

    def __init__(self, read_stats: Callable[[], RunStats | None], published: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invoke = Histogram("edge_invoke_seconds", "Model invoke time per frame.",
                                buckets=LATENCY_BUCKETS_S, registry=r)
        self.latency = Histogram("edge_frame_latency_seconds", "Frame capture to result ready.",
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.status = Counter("edge_results", "Results by status.", ["status"], registry=r)
        self.labels = Counter("edge_label_results", "Results shown with a label, by label (not a medical diagnosis).", ["label"], registry=r)
        self.fps = Gauge("edge_fps", "Current results per second.", registry=r)
        self.last = Gauge("edge_last_result_timestamp_seconds", "Unix time of the last result.", registry=r)
        self.clients = Gauge("edge_stream_clients", "Connected MJPEG viewers.", registry=r)
        for s in (OK, UNCERTAIN, ERROR):
            self.status.labels(s)
        r.register(_StatsCollector(read_stats, published))
        ProcessCollector(registry=r)  # memory, CPU time, open files of this process (Linux)

    def watch_mqtt(self, sink) -> None:
        """/metrics also shows the MQTT output: messages published, dropped from a full queue, queued."""
        self.registry.register(_MqttCollector(sink))

    def observe(self, result: FrameResult) -> None:
        self.status.labels(result.status).inc()
        if result.status != ERROR:
            self.invoke.observe(result.times.invoke_ms / 1000)
            self.latency.observe(result.latency_ms / 1000)
        if result.label is not None:
            self.labels.labels(result.label).inc()
        self.fps.set(result.fps)
        self.last.set(result.timestamp)


class _StatsCollector:
    """Counters owned by the pipeline, read from its stats callable at scrape time."""

    def __init__(self, read_stats: Callable[[], RunStats | None], published: Callable[[], int]) -> None:
        self._read, self._published = read_stats, published

    def describe(self) -> list:
        return []

    def collect(self):
        stats = self._read()
        for name, (figure, doc) in STATS_COUNTERS.items():
            if stats is not None:
                yield CounterMetricFamily(name, doc, value=float(figure(stats)))
            elif name == "edge_frames_processed":  # no run to ask: what this server published
                yield CounterMetricFamily(name, doc, value=float(self._published()))


class _MqttCollector:
    def __init__(self, sink) -> None:
        self._sink = sink

    def describe(self) -> list:
        return []

    def collect(self):
        s = self._sink
        yield CounterMetricFamily("edge_mqtt_published", "MQTT messages handed to the broker connection.",
                                  value=float(s.published))
        yield CounterMetricFamily("edge_mqtt_dropped", "MQTT messages dropped, oldest first, from a full queue "
                                  "while the broker was away.", value=float(s.dropped))
        yield GaugeMetricFamily("edge_mqtt_queued", "MQTT messages waiting for the broker.", value=float(s.queued))
        yield GaugeMetricFamily("edge_mqtt_connected", "1 while connected to the MQTT broker.",
                                value=1.0 if s.connected else 0.0)
