"""The backtest routes over a real database: a run started by POST ends stored with its report,
is listed and served; bad or oversized requests are refused naming the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from support.services import eventually
from support.trading import api_client
from tradebot.api.routes import backtests
from tradebot.demo import seed_demo

pytestmark = pytest.mark.integration


async def test_a_started_backtest_is_stored_listed_and_served(make_settings, redis):
    settings = make_settings(symbols="AAPL,MSFT", min_signal_strength=0)
    await seed_demo(settings, hours=2, step_seconds=15)
    end = datetime.now(UTC)
    body = {
        "strategy": "sma_crossover", "params": {"fast": 3, "slow": 8, "input": "trades"},
        "symbols": ["aapl", "MSFT"], "start": (end - timedelta(hours=3)).isoformat(), "end": end.isoformat(),
    }  # fmt: skip
    async with api_client(settings, redis) as api:
        answer = await api.post("/backtests", json=body)
        assert answer.status_code == 202, answer.text
        started = answer.json()
        assert started["status"] == "running" and started["symbols"] == ["AAPL", "MSFT"]

        async def finished() -> bool:
            return (await api.get(f"/backtests/{started['id']}")).json()["status"] != "running"

        await eventually(finished, within=120, what="the backtest to finish")
        report = (await api.get(f"/backtests/{started['id']}")).json()
        assert report["status"] == "done", report["error"]
        assert report["metrics"]["trades"] == len(report["trades"]) > 0
        assert report["metrics"]["strategy"] == "sma_crossover" and len(report["equity"]) > 10
        assert {"entry_time", "exit_time", "pnl", "exit_reason"} <= set(report["trades"][0])
        listed = (await api.get("/backtests")).json()
        assert [run["id"] for run in listed] == [started["id"]] and "equity" not in listed[0]

        # a symbol without data fails, with the reason stored for whoever polls it
        missing = await api.post("/backtests", json={**body, "symbols": ["ZZZZ"]})
        failed_id = missing.json()["id"]

        async def failed() -> bool:
            return (await api.get(f"/backtests/{failed_id}")).json()["status"] == "failed"

        await eventually(failed, within=120, what="the run without data to fail")
        assert "ZZZZ" in (await api.get(f"/backtests/{failed_id}")).json()["error"]


async def test_bad_backtests_are_refused_naming_the_problem(make_settings, redis, database_url, monkeypatch):
    settings = make_settings()
    await seed_demo(settings, hours=0.1, step_seconds=60)
    end = datetime.now(UTC)
    good = {
        "strategy": "sma_crossover",
        "start": (end - timedelta(hours=1)).isoformat(),
        "end": end.isoformat(),
    }
    async with api_client(settings, redis) as api:
        assert (await api.post("/backtests", json=good, headers={"Authorization": ""})).status_code == 401
        cases = {
            "unknown strategy": ({**good, "strategy": "nope"}, 422, "nope"),
            "unknown parameter": ({**good, "params": {"fastest": 2}}, 422, "fastest"),
            "empty range": ({**good, "end": good["start"]}, 422, "empty range"),
            "too long": ({**good, "start": (end - timedelta(days=40)).isoformat()}, 422, "31 days"),
            "too many symbols": ({**good, "symbols": [f"S{n}" for n in range(21)]}, 422, "symbols"),
            "unknown source": ({**good, "source": "nosuch"}, 404, "nosuch"),
        }
        for case, (body, status, words) in cases.items():
            answer = await api.post("/backtests", json=body)
            assert answer.status_code == status and words in answer.text, (case, answer.text)
        monkeypatch.setattr(backtests, "MAX_EVENTS", 10)  # the demo's ticks are more than that
        too_big = await api.post("/backtests", json=good)
        assert too_big.status_code == 422 and "more than 10 ticks" in too_big.text
        assert (await api.get("/backtests/999")).status_code == 404
        assert (await api.get("/backtests")).json() == []
