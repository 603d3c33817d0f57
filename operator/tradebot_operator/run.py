"""Start the operator: `python -m tradebot_operator`, `tradebot operator`, or in-process (tests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import kopf

from tradebot_operator import KOPF_PREFIX
from tradebot_operator.config import OperatorConfig
from tradebot_operator.crd import crd_yaml
from tradebot_operator.handlers import registry
from tradebot_operator.kube import Kube, load_configuration
from tradebot_operator.runtime import Runtime


class QuietWatchers(logging.Filter):
    """kopf logs each handler's success; for the per-event watchers that is one line per event."""

    NOISE = ("Handler 'track_stack' succeeded.", "Handler 'repair_child' succeeded.")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.NOISE


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf's bookkeeping goes to annotations: the status is ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # One operator per scope (the chart runs one replica); no peering objects to grant.
    settings.peering.standalone = True
    # No watching of Namespaces or CRDs: the RBAC grants only what the reconciliation uses.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    return settings


async def operator(
    config: OperatorConfig,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal in the main thread)."""
    runtime = Runtime(config, Kube(load_configuration(config.kubeconfig)))
    await kopf.operator(
        registry=registry,
        settings=kopf_settings(),
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        standalone=True,
        memo=kopf.Memo(runtime=runtime),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tradebot operator",
        description="Reconcile TradingStack resources into running TradeBot stacks. "
        "`crd` prints the CustomResourceDefinition.",
    )
    parser.add_argument("command", nargs="?", choices=["run", "crd"], default="run")
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
    parser.add_argument("--liveness-port", type=int, help="serve kopf's /healthz on this port")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "crd":
        sys.stdout.write(crd_yaml())
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietWatchers())
    config = OperatorConfig.from_env(
        kubeconfig=args.kubeconfig, redis_url=args.redis_url, health_interval=args.health_interval
    )
    if args.all_namespaces:
        config = OperatorConfig(**{**config.__dict__, "namespaces": ()})
    elif args.namespace:
        config = OperatorConfig(**{**config.__dict__, "namespaces": tuple(args.namespace)})
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    asyncio.run(operator(config, liveness_endpoint=liveness))
    return 0
