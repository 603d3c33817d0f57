"""How the operator runs: which namespaces it watches, how it reaches each stack's Redis.

From the environment (the chart sets these) or from the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Each stack's Redis through its own Service; tests point every stack at one local Redis.
DEFAULT_REDIS_URL = "redis://{name}-redis.{namespace}.svc:6379"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    kubeconfig: str | None = None  # None: in-cluster ServiceAccount, else the default kubeconfig
    redis_url: str = DEFAULT_REDIS_URL  # a template with {name} and {namespace}
    health_interval: float = 10.0  # seconds between heartbeat reads of a stack
    redis_timeout: float = 2.0

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def stack_redis_url(self, name: str, namespace: str) -> str:
        return self.redis_url.format(name=name, namespace=namespace)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> OperatorConfig:
        """TRADEBOT_OPERATOR_NAMESPACES (comma list; empty = cluster-wide), _REDIS_URL, _HEALTH_INTERVAL."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "namespaces": tuple(
                n.strip() for n in env.get("TRADEBOT_OPERATOR_NAMESPACES", "").split(",") if n.strip()
            ),
            "redis_url": env.get("TRADEBOT_OPERATOR_REDIS_URL") or DEFAULT_REDIS_URL,
            "health_interval": float(env.get("TRADEBOT_OPERATOR_HEALTH_INTERVAL", "10")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
