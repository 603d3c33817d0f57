"""Operator controls as the API takes them: recorded in the audit table, sent on `controls`.

The API decides nothing about the account: it records who asked for what, and puts
the command on the stream the execution service consumes exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from tradebot.common import keys, wire
from tradebot.common.models import Control
from tradebot.common.tables import AUDIT_TABLE
from tradebot.storage.schema import AUDIT_DDL, ensure_tables

INSERT_AUDIT = f"""
INSERT INTO {AUDIT_TABLE} (time, actor, action, symbol, reason, control_id)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (control_id) DO NOTHING
"""
RECENT_AUDIT = f"""
SELECT id, time, actor, action, symbol, reason, control_id FROM {AUDIT_TABLE}
ORDER BY time DESC, id DESC LIMIT $1
"""


async def send_control(pool: asyncpg.Pool, redis: Redis, control: Control) -> None:
    """Audit first, then publish: no control reaches execution without its record."""
    values = (control.time, control.actor, control.action, control.symbol, control.reason, control.id)
    async with pool.acquire() as conn:
        try:
            await conn.execute(INSERT_AUDIT, *values)
        except asyncpg.UndefinedTableError:  # storage has not created the schema yet
            await ensure_tables(conn, AUDIT_DDL)
            await conn.execute(INSERT_AUDIT, *values)
    await redis.xadd(keys.CONTROLS, cast(Any, wire.encode(control)))


async def recent_audit(pool: asyncpg.Pool, redis: Redis, limit: int) -> list[dict[str, Any]]:
    """The newest audit rows, each with what execution did (`applied_at`, `result`) once it has."""
    async with pool.acquire() as conn:
        try:
            rows = [dict(row) for row in await conn.fetch(RECENT_AUDIT, limit)]
        except asyncpg.UndefinedTableError:
            return []
    results = await keys.read_control_results(redis, [row["control_id"] for row in rows])
    for row in rows:
        done = results.get(row["control_id"], {})
        at = done.get("time")
        row["applied_at"] = datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else None
        row["result"] = done.get("result") if isinstance(done.get("result"), str) else None
    return rows
