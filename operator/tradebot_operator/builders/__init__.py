"""Pure functions from a TradingStack to every object it owns; no cluster, no I/O.

`build_children` is what the handlers apply; unit tests call it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradebot_operator.builders.access import (
    StackAccess,
    auth_secret,
    network_policies,
    roll_on_rotation,
)
from tradebot_operator.builders.backup import backup_children
from tradebot_operator.builders.common import APP_PORTS, Obj, Stack
from tradebot_operator.builders.config import config_map, db_secret
from tradebot_operator.builders.storage import headless_service, statefulset, stores
from tradebot_operator.builders.strategy import strategy_service, workload
from tradebot_operator.builders.workloads import app_service

__all__ = ["Stack", "StackAccess", "build_children"]


def build_children(stack: Stack | Mapping[str, Any], access: StackAccess) -> list[Obj]:
    """Every child, in an order that lets each start: config first, workloads last."""
    if not isinstance(stack, Stack):
        stack = Stack.from_body(stack)
    children = [
        db_secret(stack, access.db_password),
        auth_secret(stack, access),
        config_map(stack),
        *network_policies(stack, access),
        *(headless_service(stack, store) for store in stores(stack)),
        *(app_service(stack, sid) for sid in APP_PORTS),
        strategy_service(stack),
        *(statefulset(stack, store) for store in stores(stack)),
        *(workload(stack, sid) for sid in stack.service_ids),
        *backup_children(stack),
    ]
    return roll_on_rotation(stack, access, children)
