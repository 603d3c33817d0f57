"""`tradebot demo`: history made by the real strategies and paper broker, readable through the API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from tradebot.api.account import read_account
from tradebot.api.app import create_app
from tradebot.api.deps import ApiState
from tradebot.api.sources import SourceCatalog
from tradebot.api.store import HistoryStore
from tradebot.common import keys
from tradebot.common.connections import connect_postgres
from tradebot.common.models import PriceTick
from tradebot.demo import seed_demo
from tradebot.execution.portfolio import Portfolio
from tradebot.market_data.synthetic import reference_price

pytestmark = pytest.mark.integration


async def test_the_demo_fills_the_database_and_redis(make_settings, redis):
    settings = make_settings(
        symbols="AAPL,MSFT,TSLA",
        min_signal_strength=0,
        cooldown_seconds=0,
        strategy_params={"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"}},
    )  # eager: the cautious defaults may not trade in an hour
    live = PriceTick(source="synthetic", symbol="MSFT", time=datetime.now(UTC), price=400.0)
    await redis.hset(keys.LATEST_PRICES, "MSFT", live.model_dump_json())
    history = await seed_demo(settings, hours=1, step_seconds=10, redis=redis)
    assert history.ticks == 3 * 360 and history.signals > 0 and history.fills > 0
    assert await redis.hlen(keys.LATEST_PRICES) == 3
    last = {s: orjson.loads(await redis.hget(keys.LATEST_PRICES, s))["price"] for s in ("AAPL", "MSFT")}
    assert last["MSFT"] == pytest.approx(400.0, abs=0.01), "history runs into the live price"
    assert last["AAPL"] == pytest.approx(reference_price("AAPL"), abs=0.01), "or where the live market starts"
    assert await redis.get(keys.PORTFOLIO) is not None
    assert await redis.xlen(keys.FILLS) > 0
    assert await redis.xlen(keys.SIGNALS) == 0, (
        "signals stay off the stream: execution would trade them again"
    )

    pool = await connect_postgres(settings.database_url)
    catalog = SourceCatalog(pool)
    app = create_app(
        ApiState(settings, catalog, HistoryStore(pool, catalog), redis),
        lambda: (True, {}),
        lambda: (True, {}),
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            [stats] = (await http.get("/sources")).json()
            assert stats["symbols"] == 3 and stats["approximate_ticks"] == history.ticks
            bars = (await http.get("/sources/synthetic/symbols/AAPL/bars", params={"interval": "5m"})).json()
            assert 12 <= len(bars["bars"]) <= 13
            assert len((await http.get("/fills", params={"limit": 1000})).json()) == history.fills
            account = (await http.get("/account")).json()
            assert account["orders_filled"] == history.fills
    finally:
        await pool.close()


async def test_the_demo_account_replaces_the_old_one_and_its_summary_is_the_dashboards(make_settings, redis):
    """`tradebot demo` prints the account the dashboard then shows: the demo's, not a leftover one."""
    settings = make_settings(symbols="AAPL,MSFT,TSLA")
    await redis.set(keys.PORTFOLIO, Portfolio.opening(40_000).model_dump_json())  # an older run's account
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url, "SYMBOLS": "AAPL,MSFT,TSLA",
        "STRATEGY_PARAMS": '{"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"}}',
        "MIN_SIGNAL_STRENGTH": "0", "COOLDOWN_SECONDS": "0",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "tradebot", "demo", "--hours", "1", "--step", "10"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # rich wraps long lines
    printed = float(re.search(r"equity ([\d,]+\.\d\d)", said).group(1).replace(",", ""))
    shown = await read_account(redis, settings.starting_cash)  # what the dashboard and /account show
    assert printed == pytest.approx(shown.equity, abs=0.01)
    assert shown.orders_filled > 0 and shown.equity != pytest.approx(40_000, abs=1)
