"""Start the operator: `python -m tradebot_operator`, `tradebot operator`, or in-process (tests).

Every copy serves /healthz, /readyz and /metrics on the health port; only the copy that
holds the Lease runs kopf. A copy that loses the Lease stops reconciling at once and
exits non-zero (its pod restarts as a standby), as controller-runtime's managers do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import threading
import uuid
from collections.abc import Sequence

import kopf
from aiohttp import web

import tradebot_operator.backtest.handlers  # noqa: F401  (registers the Backtest handlers)
from tradebot_operator import KOPF_PREFIX
from tradebot_operator.backtest.crd import backtest_crd_yaml
from tradebot_operator.config import OperatorConfig
from tradebot_operator.crd import crd_yaml, data_sources_yaml
from tradebot_operator.handlers import registry
from tradebot_operator.kube import Kube, load_configuration
from tradebot_operator.leader import LeaderElector
from tradebot_operator.runtime import Runtime

log = logging.getLogger(__name__)
Flag = asyncio.Event | threading.Event


class LeadershipLost(RuntimeError):
    """Another copy may act now: this one must stop."""


class QuietWatchers(logging.Filter):
    """kopf logs each handler's success; for the per-event watchers that is one line per event."""

    NOISE = (
        "Handler 'track_stack' succeeded.",
        "Handler 'watch_child' succeeded.",
        "Handler 'queue_stack' succeeded.",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.NOISE


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf's bookkeeping goes to annotations: the status is ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # Exclusivity comes from our Lease (kopf's peering has no leases): no peering objects to grant.
    settings.peering.standalone = True
    # No watching of Namespaces or CRDs: the RBAC grants only what the reconciliation uses.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    return settings


_meter_installed = threading.Lock()


def install_metrics() -> None:
    """A MeterProvider whose reader is OpenTelemetry's Prometheus exporter (once per process)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    from tradebot.common.metrics import prometheus_reader

    if _meter_installed.acquire(blocking=False):
        resource = Resource.create({SERVICE_NAME: "tradebot-operator"})
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[prometheus_reader()]))


async def serve_health(port: int, healthy: asyncio.Event, leading: LeaderElector | None) -> web.AppRunner:
    """/healthz (the process works: leader or standby), /readyz (same), /metrics (Prometheus text)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    async def health(_: web.Request) -> web.Response:
        state = "leader" if leading is None or leading.leading else "standby"
        return web.json_response(
            {"ok": healthy.is_set(), "role": state}, status=200 if healthy.is_set() else 503
        )

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/healthz", health), web.get("/readyz", health), web.get("/metrics", scrape)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def _mirror(source: Flag | None, target: asyncio.Event) -> None:
    """Set `target` when `source` (an asyncio or threading Event from the caller) is set."""
    if isinstance(source, threading.Event):
        while not await asyncio.to_thread(source.wait, 0.5):
            pass
    elif source is not None:
        await source.wait()
    else:
        return
    target.set()


async def operator(
    config: OperatorConfig,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
    standby_flag: Flag | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal in the main thread); LeadershipLost if the Lease goes."""
    kube = Kube(load_configuration(config.kubeconfig))
    runtime = Runtime(config, kube)
    identity = config.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    elector = (
        LeaderElector(
            kube, config.lease_home, config.lease_name, identity,
            config.lease_duration, config.renew_deadline, config.retry_period,
        )
        if config.leader_election
        else None
    )  # fmt: skip
    runtime.metrics.observe(
        lambda: dict(kube.requests),
        lambda: len(runtime.stacks),
        lambda: bool(elector is None or elector.leading),
    )
    stopping, halt, healthy = asyncio.Event(), asyncio.Event(), asyncio.Event()
    mirror = asyncio.create_task(_mirror(stop_flag, stopping))
    healthy.set()
    runner = await serve_health(config.metrics_port, healthy, elector) if config.metrics_port else None
    lost = False
    try:
        if elector is not None:
            if standby_flag is not None:
                standby_flag.set()
            if not await elector.acquire(stopping):
                return
        holder = asyncio.create_task(elector.hold(stopping)) if elector else None

        async def halt_when_done() -> None:
            nonlocal lost
            if holder is not None:
                lost = not await holder
            else:
                await stopping.wait()
            halt.set()

        watcher = asyncio.create_task(halt_when_done())
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(),
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=True,
            memo=kopf.Memo(runtime=runtime),
            stop_flag=halt,
            ready_flag=ready_flag,
            liveness_endpoint=liveness_endpoint,
        )
        watcher.cancel()
        if holder is not None:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
    finally:
        mirror.cancel()
        if elector is not None:
            await asyncio.to_thread(elector.release)
        if runner is not None:
            await runner.cleanup()
        kube.close()
    if lost:
        raise LeadershipLost(f"{identity} lost the Lease {config.lease_home}/{config.lease_name}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tradebot operator",
        description="Reconcile TradingStack resources into running TradeBot stacks. "
        "`crd` prints the TradingStack CustomResourceDefinition, `backtest-crd` the Backtest one, "
        "`data-sources` the chart's list of data sources.",
    )
    parser.add_argument(
        "command", nargs="?", choices=["run", "crd", "backtest-crd", "data-sources"], default="run"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: TRADEBOT_OPERATOR_NAMESPACES, else every namespace",
    )
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="watch the whole cluster")
    parser.add_argument("--kubeconfig", help="default: in-cluster ServiceAccount, else $KUBECONFIG")
    parser.add_argument(
        "--redis-url", help="template with {name} and {namespace} (TRADEBOT_OPERATOR_REDIS_URL)"
    )
    parser.add_argument("--health-interval", type=float, help="seconds between status refreshes (10)")
    parser.add_argument("--resync-interval", type=float, help="seconds between full reconciles (300)")
    parser.add_argument(
        "--health-port", "--liveness-port", dest="metrics_port", type=int,
        help="serve /healthz, /readyz and /metrics on this port (TRADEBOT_OPERATOR_METRICS_PORT)",
    )  # fmt: skip
    parser.add_argument("--lease-name", help="the leader Lease (TRADEBOT_OPERATOR_LEASE_NAME)")
    parser.add_argument(
        "--lease-namespace",
        help="its namespace; default the first watched one (TRADEBOT_OPERATOR_LEASE_NAMESPACE)",
    )
    parser.add_argument(
        "--no-leader-election", action="store_true", help="act without a Lease (one copy only)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    printed = {"crd": crd_yaml, "backtest-crd": backtest_crd_yaml, "data-sources": data_sources_yaml}
    if args.command in printed:
        sys.stdout.write(printed[args.command]())
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietWatchers())
    config = OperatorConfig.from_env(
        kubeconfig=args.kubeconfig,
        redis_url=args.redis_url,
        health_interval=args.health_interval,
        resync_interval=args.resync_interval,
        metrics_port=args.metrics_port,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
    )
    if args.all_namespaces:
        config = config.replace(namespaces=())
    elif args.namespace:
        config = config.replace(namespaces=tuple(args.namespace))
    if args.no_leader_election:
        config = config.replace(leader_election=False)
    install_metrics()
    try:
        asyncio.run(operator(config))
    except LeadershipLost as error:
        log.error("%s; exiting so that this copy restarts as a standby", error)
        return 1
    return 0
