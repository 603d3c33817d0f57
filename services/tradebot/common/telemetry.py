"""OpenTelemetry set-up: traces that follow a tick across services, and metrics.

Exporters are chosen by the standard variables `OTEL_TRACES_EXPORTER` and
`OTEL_METRICS_EXPORTER` (`otlp`, `console` or `none`); unlike the SDK's own
default, nothing is exported unless one is set. The trace context travels in
every stream entry as a W3C `traceparent`, so market data → strategy →
execution → storage is one trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.util.types import AttributeValue

EXPORTER_CHOICES = ("none", "console", "otlp")
# Metrics only: a pull reader served at OTEL_EXPORTER_PROMETHEUS_HOST:_PORT (tradebot.common.metrics).
METRIC_EXPORTER_CHOICES = (*EXPORTER_CHOICES, "prometheus")
_propagator = TraceContextTextMapPropagator()
_tracing_enabled = False


class TelemetryConfigError(ValueError):
    pass


def _exporter_choice(variable: str, choices: tuple[str, ...] = EXPORTER_CHOICES) -> str:
    value = os.environ.get(variable, "none").strip().lower() or "none"
    if value not in choices:
        raise TelemetryConfigError(f"{variable}={value!r} is invalid: choose one of {', '.join(choices)}")
    return value


def setup_telemetry(service_id: str) -> None:
    """Install tracer and meter providers per OTEL_* variables (idempotent per process)."""
    global _tracing_enabled
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    traces = _exporter_choice("OTEL_TRACES_EXPORTER")
    metric_exporter = _exporter_choice("OTEL_METRICS_EXPORTER", METRIC_EXPORTER_CHOICES)
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", f"tradebot-{service_id}")})
    if traces != "none":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(traces)))
        trace.set_tracer_provider(provider)
        _tracing_enabled = True
    if metric_exporter != "none":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = (
            _prometheus_reader()
            if metric_exporter == "prometheus"
            else PeriodicExportingMetricReader(_metric_exporter(metric_exporter))
        )
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def _span_exporter(choice: str) -> SpanExporter:
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _prometheus_reader() -> MetricReader:
    from tradebot.common.metrics import prometheus_reader, serve_prometheus

    port = os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
    if not port.isdigit() or int(port) > 65_535:
        raise TelemetryConfigError(f"OTEL_EXPORTER_PROMETHEUS_PORT={port!r} is invalid: a port number")
    reader = prometheus_reader()
    serve_prometheus(os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost"), int(port))
    return reader


def _metric_exporter(choice: str) -> MetricExporter:
    if choice == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def tracing_enabled() -> bool:
    """Hot paths skip span work entirely when no trace exporter is configured."""
    return _tracing_enabled


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


def context_from_traceparent(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


_NOT_TRACED = nullcontext(None)


def traced(
    name: str, span_name: str, parent: str | None = None, **attributes: AttributeValue
) -> AbstractContextManager[str | None]:
    """A span (child of `parent` traceparent) whose context yields the traceparent to pass on.

    A shared no-op yielding None when tracing is off, so hot paths pay almost nothing.
    """
    if not _tracing_enabled:
        return _NOT_TRACED
    return _span(name, span_name, parent, attributes)


@contextmanager
def _span(
    name: str, span_name: str, parent: str | None, attributes: dict[str, AttributeValue]
) -> Iterator[str | None]:
    with tracer(name).start_as_current_span(
        span_name, context=context_from_traceparent(parent), attributes=attributes
    ):
        yield current_traceparent()
