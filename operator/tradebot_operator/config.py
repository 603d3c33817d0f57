"""How the operator runs: which namespaces it watches, how it reaches each stack's Redis, its lease.

From the environment (the chart sets these) or from the command line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

# Each stack's Redis through its own Service, with the stack's generated password; tests point
# every stack at one local Redis (a template without {password} does not authenticate).
DEFAULT_REDIS_URL = "redis://:{password}@{name}-redis.{namespace}.svc:6379"
# Each stack's TimescaleDB (the Backtests' results), with the password of its generated Secret.
DEFAULT_DATABASE_URL = "postgresql://tradebot:{password}@{name}-timescaledb.{namespace}.svc:5432/tradebot"
ENV_PREFIX = "TRADEBOT_OPERATOR_"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    kubeconfig: str | None = None  # None: in-cluster ServiceAccount, else the default kubeconfig
    redis_url: str = DEFAULT_REDIS_URL  # a template with {name}, {namespace} and {password}
    database_url: str = DEFAULT_DATABASE_URL  # a template with {name}, {namespace} and {password}
    health_interval: float = 10.0  # seconds between heartbeat reads of a stack
    redis_timeout: float = 2.0
    resync_interval: float = 300.0  # seconds between full reconciles of every stack (drift repair)
    retry_interval: float = 10.0  # seconds before a stack whose reconcile failed is tried again
    age_refresh: float = 60.0  # heartbeat ages alone rewrite a status at most this often
    min_write_interval: float = 1.0  # other changes without a phase change: at most once a second
    # Leader election: one Lease; only its holder reconciles. Namespace "" = the first watched one.
    lease_name: str = "tradebot-operator"
    lease_namespace: str = ""
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0
    leader_election: bool = True
    metrics_port: int | None = None  # Prometheus /metrics (OpenTelemetry's exporter); None: off
    identity: str = ""  # this copy's name in the Lease; default hostname plus a random suffix

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def stack_redis_url(self, name: str, namespace: str, password: str = "") -> str:
        """The stack's Redis; without a password (not reconciled yet) no empty one is sent."""
        url = self.redis_url.format(name=name, namespace=namespace, password=quote(password, safe=""))
        return url.replace("://:@", "://", 1)

    def stack_database_url(self, name: str, namespace: str, password: str) -> str:
        return self.database_url.format(name=name, namespace=namespace, password=quote(password, safe=""))

    @property
    def lease_home(self) -> str:
        return self.lease_namespace or (self.namespaces[0] if self.namespaces else "default")

    def replace(self, **changes: object) -> OperatorConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> OperatorConfig:
        """TRADEBOT_OPERATOR_NAMESPACES (comma list; empty = cluster-wide), _REDIS_URL, _DATABASE_URL,
        _HEALTH_INTERVAL, _RESYNC_INTERVAL, _LEASE_NAME, _LEASE_NAMESPACE, _LEASE_DURATION, _RENEW_DEADLINE,
        _RETRY_PERIOD, _METRICS_PORT, _IDENTITY (default: the pod's hostname)."""
        env = os.environ if env is None else env

        def var(name: str) -> str:
            return env.get(ENV_PREFIX + name, "").strip()

        values: dict[str, object] = {
            "namespaces": tuple(n.strip() for n in var("NAMESPACES").split(",") if n.strip()),
            "redis_url": var("REDIS_URL") or DEFAULT_REDIS_URL,
            "database_url": var("DATABASE_URL") or DEFAULT_DATABASE_URL,
            "health_interval": float(var("HEALTH_INTERVAL") or 10),
            "resync_interval": float(var("RESYNC_INTERVAL") or 300),
            "lease_name": var("LEASE_NAME") or cls.lease_name,
            "lease_namespace": var("LEASE_NAMESPACE"),
            "metrics_port": int(var("METRICS_PORT")) if var("METRICS_PORT") else None,
            "identity": var("IDENTITY"),
        }
        for name in ("LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD", "RETRY_INTERVAL", "AGE_REFRESH"):
            if var(name):
                values[name.lower()] = float(var(name))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
