"""Redis with maxmemory and noeviction (as on Kubernetes) refuses writes when full: every service
alarms before that, in its heartbeat and error count, and the alarm clears when memory is back."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis

from support.servers import redis_with_args
from support.services import eventually, running
from tradebot.common.keys import errors_key, heartbeat_key
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration
MAXMEMORY = 32 * 2**20


async def test_services_alarm_before_redis_is_full(make_settings, tmp_path):
    args = ["--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction"]
    with redis_with_args(tmp_path / "redis", args) as port:
        url = f"redis://127.0.0.1:{port}"
        settings = make_settings(redis_url=url)
        client = aioredis.Redis.from_url(url)

        async def heartbeat() -> dict:
            raw = await client.get(heartbeat_key("strategy"))
            return orjson.loads(raw) if raw else {}

        async with running(StrategyService(settings), settings=settings):
            await eventually(lambda: heartbeat(), what="a first heartbeat")
            assert "maxmemory" not in (await heartbeat()).get("message", "")
            ballast = 0  # in small pieces: a big value's own query buffer counts as used memory
            while (await client.info("memory"))["used_memory"] < 0.85 * MAXMEMORY:
                await client.set(f"ballast:{ballast}", b"x" * 2**16)
                ballast += 1

            async def alarmed() -> bool:
                return "of its maxmemory (32 MiB): at 100% it refuses writes" in (await heartbeat()).get(
                    "message", ""
                )

            await eventually(alarmed, within=30, what="the Redis memory alarm in the heartbeat")
            assert (await heartbeat())["counters"]["redis_memory_pct"] >= 80
            assert int(await client.get(errors_key("strategy"))) == 1  # one error per episode
            await client.delete(*(f"ballast:{n}" for n in range(ballast)))

            async def cleared() -> bool:
                beat = await heartbeat()
                return (
                    "maxmemory" not in beat.get("message", "") and "redis_memory_pct" not in beat["counters"]
                )

            await eventually(cleared, within=30, what="the alarm to clear")
        await client.aclose()
