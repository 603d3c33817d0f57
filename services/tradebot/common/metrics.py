"""OpenTelemetry metrics of a service, read from what it already counts.

Observable instruments read the service's counters and its consumers' backlog
when the exporter collects, so the hot paths pay nothing for them; only batch
sizes are recorded as they happen (once per batch). Nothing is exported unless
OTEL_METRICS_EXPORTER is set (see tradebot.common.telemetry); with `prometheus`, every
service serves them for scraping at OTEL_EXPORTER_PROMETHEUS_HOST:PORT (/metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Histogram, Observation

from tradebot.common import telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

Backlog = Mapping[str, Mapping[str, float]]
PROMETHEUS_PORT = 9464  # OpenTelemetry's default for its Prometheus exporter
_served: dict[str, int] = {}


def prometheus_reader() -> MetricReader:
    """OpenTelemetry's Prometheus exporter, registered (once per process) with prometheus_client."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    return PrometheusMetricReader()


def serve_prometheus(host: str, port: int) -> int:
    """Serve prometheus_client's registry at http://host:port/metrics (a daemon thread, once per
    process); returns the port bound (0 picks a free one)."""
    from prometheus_client import start_http_server

    if "port" not in _served:
        server, _ = start_http_server(port, addr=host)
        _served["port"] = int(server.server_port)
    return _served["port"]


def register_service_metrics(
    service_id: str, counters: Callable[[], Mapping[str, float]], backlog: Callable[[], Backlog]
) -> Histogram:
    """Instruments for one service; returns the batch-size histogram to record into."""
    service_meter = telemetry.meter(f"tradebot.{service_id}")  # one scope per service
    service = {"service": service_id}

    def counter_observations(_: CallbackOptions) -> Iterable[Observation]:
        for name, value in counters().items():
            yield Observation(value, {**service, "counter": name})

    def backlog_observations(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for stream, figures in backlog().items():
                yield Observation(figures[field], {**service, "stream": stream})

        return observe

    service_meter.create_observable_counter(
        "tradebot.service.events",
        callbacks=[counter_observations],
        description="what the service did: ticks published/consumed, orders filled, errors, ...",
    )
    service_meter.create_observable_gauge(
        "tradebot.consumer.lag",
        callbacks=[backlog_observations("lag_ms")],
        unit="ms",
        description="how far the consumer group is behind the head of the stream",
    )
    service_meter.create_observable_gauge(
        "tradebot.consumer.pending",
        callbacks=[backlog_observations("pending")],
        description="entries delivered to the group but not yet acknowledged",
    )
    return service_meter.create_histogram(
        "tradebot.batch.size", description="stream entries handled per batch"
    )
