"""The operator's own metrics: reconciles, their failures and durations, status writes, API calls.

OpenTelemetry instruments on the global meter; `run.py` installs a provider whose reader
is OpenTelemetry's Prometheus exporter (`tradebot.common.metrics.prometheus_reader`), so
they are scraped at /metrics like every service's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation


class OperatorMetrics:
    def __init__(self) -> None:
        meter = metrics.get_meter("tradebot.operator")
        self.meter = meter
        self.reconciles = meter.create_counter(
            "tradebot.operator.reconciles", description="stack reconciles, by result (ok, failed, invalid)"
        )
        self.reconcile_seconds = meter.create_histogram(
            "tradebot.operator.reconcile.duration", unit="s", description="time to reconcile one stack"
        )
        self.apply_errors = meter.create_counter(
            "tradebot.operator.apply.errors", description="children the API server refused, by kind"
        )
        self.repairs = meter.create_counter(
            "tradebot.operator.repairs", description="children changed by someone else and put back, by kind"
        )
        self.status_writes = meter.create_counter(
            "tradebot.operator.status.writes", description="status patches of stacks"
        )

    def observe(
        self,
        requests: Callable[[], Mapping[str, int]],
        stacks: Callable[[], int],
        leading: Callable[[], bool],
    ) -> None:
        """Gauges read when scraped: API requests by method, stacks watched, whether this copy leads."""

        def by_method(_: CallbackOptions) -> Iterable[Observation]:
            for method, count in requests().items():
                yield Observation(count, {"method": method})

        self.meter.create_observable_counter(
            "tradebot.operator.api.requests", callbacks=[by_method], description="requests to the API server"
        )
        self.meter.create_observable_gauge(
            "tradebot.operator.stacks",
            callbacks=[lambda _: [Observation(stacks())]],
            description="TradingStacks watched",
        )
        self.meter.create_observable_gauge(
            "tradebot.operator.leader",
            callbacks=[lambda _: [Observation(1 if leading() else 0)]],
            description="1 while this copy holds the leader lease",
        )
