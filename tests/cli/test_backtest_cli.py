"""`tradebot backtest` on real PostgreSQL: stored ticks and bars, a CSV, the report, the `backtests`
table, and every refusal (exit status 2 with a message naming the problem)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tradebot.market_data.synthetic import SyntheticMarket
from tradebot.storage.schema import ensure_schema
from tradebot.storage.writer import BatchWriter

pytestmark = pytest.mark.integration
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
FAST = ["--param", "fast=3", "--param", "slow=8"]


async def seed(database_url: str, minutes: int = 240) -> None:
    market = SyntheticMarket(["AAPL", "MSFT"], 5.0, seed=2)
    ticks = [t for i in range(minutes * 12) for t in market.next_ticks(2, START + timedelta(seconds=5 * i))]
    conn = await asyncpg.connect(database_url)
    try:
        writer = BatchWriter(conn, await ensure_schema(conn, ("synthetic",)))
        for offset in range(0, len(ticks), 5_000):
            await writer.write(ticks[offset : offset + 5_000])
    finally:
        await conn.close()


def window(minutes: int = 240) -> list[str]:
    return ["--start", START.isoformat(), "--end", (START + timedelta(minutes=minutes)).isoformat()]


async def test_backtest_of_stored_ticks_and_bars(invoke, database_url, tmp_path):
    await seed(database_url)
    ticks = await invoke("backtest", "--strategy", "sma_crossover", *FAST, *window(), "--json",
                         "--report", str(tmp_path / "report"))  # fmt: skip
    assert ticks.exit_code == 0, ticks.output
    summary = json.loads(ticks.stdout)
    for key in ("strategy", "params", "symbols", "start", "end", "events", "trades", "return_pct",
                "cagr_pct", "sharpe", "sortino", "max_drawdown_pct", "win_rate_pct", "profit_factor",
                "exposure_pct", "fees", "benchmark_return_pct", "seconds"):  # fmt: skip
        assert key in summary, key
    assert (
        summary["events"] == 240 * 12 * 2 and summary["symbols"] == ["AAPL", "MSFT"] and summary["trades"] > 0
    )
    assert summary["params"]["sma_crossover"]["fast"] == 3
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<svg" in page and "http" not in page.replace("http-equiv", "")  # self-contained
    assert (tmp_path / "report" / "trades.csv").read_text().count("\n") == summary["trades"] + 1
    bars = await invoke(
        "backtest", "--strategy", "sma_crossover", *FAST, *window(), "--replay", "bars", "--json"
    )
    assert bars.exit_code == 0, bars.output
    assert json.loads(bars.stdout)["events"] == 240 * 2 * 4  # four trades per stored 1-minute bar
    conn = await asyncpg.connect(database_url)
    stored = await conn.fetch("SELECT strategy, metrics, trades FROM backtests ORDER BY id")
    await conn.close()
    assert [row["strategy"] for row in stored] == ["sma_crossover", "sma_crossover"]
    assert json.loads(stored[0]["metrics"])["trades"] == summary["trades"]


async def test_backtest_of_a_csv_file(invoke, tmp_path):
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(200):
        close = 100 + 5 * ((i // 20) % 2) + (i % 20) * 0.1
        rows.append(
            f"{(START + timedelta(minutes=i)).isoformat()},{close},{close + 0.5},{close - 0.5},{close},10"
        )
    (tmp_path / "spy.csv").write_text("\n".join(rows) + "\n")
    result = await invoke(
        "backtest", "--strategy", "donchian_breakout", "--data", str(tmp_path / "spy.csv"), "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["symbols"] == ["SPY"] and summary["events"] == 800 and summary["signals"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "magic", *window()], "unknown strategy 'magic'"),
        (["--strategy", "rsi", "--param", "period=1", *window()], "strategy 'rsi' parameter period=1"),
        (["--strategy", "rsi", "--param", "speed=1", *window()], "strategy 'rsi' has no parameter 'speed'"),
        (["--strategy", "rsi", "--param", "period", *window()], "--param 'period': expected name=value"),
        (["--strategy", "rsi", "--start", "2026-01-06", "--end", "2026-01-05"], "empty range"),
        (
            ["--strategy", "rsi", "--start", "soon", "--end", "2026-01-05"],
            "--start 'soon' is not an ISO 8601 time",
        ),
        (["--strategy", "rsi", *window(), "--symbols", "ZZZZ"], "no ticks for ZZZZ in synthetic"),
        (["--strategy", "rsi", *window(), "--source", "nowhere"], "source 'nowhere' has no ticks table"),
        (["--strategy", "rsi", *window(), "--replay", "candles"], "--replay 'candles': choose one of"),
        (["--strategy", "rsi"], "--start and --end are needed"),
    ],
)
async def test_backtest_refusals(invoke, database_url, args, message):
    await seed(database_url, minutes=5)
    result = await invoke("backtest", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


async def test_malformed_csv_is_refused(invoke, tmp_path):
    (tmp_path / "bad.csv").write_text("time,open,high,low,close\n2026-01-05T14:30:00Z,1,oops,1,1\n")
    result = await invoke("backtest", "--strategy", "rsi", "--data", str(tmp_path / "bad.csv"))
    assert result.exit_code == 2 and "line 2: could not convert string to float" in " ".join(
        result.output.split()
    )


async def test_sweep_ranks_in_parallel_and_scores_the_best_out_of_sample(invoke, tmp_path):
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(600):
        close = 100 + 5 * ((i // 30) % 2) + (i % 30) * 0.1
        rows.append(
            f"{(START + timedelta(minutes=i)).isoformat()},{close},{close + 0.5},{close - 0.5},{close},10"
        )
    (tmp_path / "spy.csv").write_text("\n".join(rows) + "\n")
    cut = (START + timedelta(minutes=400)).isoformat()
    result = await invoke("backtest", "sweep", "--strategy", "donchian_breakout", "--grid", "entry=5,10,20",
                          "--grid", "exit=3,5", "--data", str(tmp_path / "spy.csv"), "--jobs", "2",
                          "--rank", "return_pct", "--train-until", cut, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    returns = [row["metrics"]["return_pct"] for row in outcome["results"]]
    assert outcome["sets"] == 6 and returns == sorted(returns, reverse=True)
    assert all(row["metrics"]["end"] == cut.replace("Z", "+00:00") for row in outcome["results"])
    tested = outcome["out_of_sample"]
    assert tested["params"] == outcome["results"][0]["params"] and tested["metrics"]["start"] == cut
    refused = await invoke("backtest", "sweep", "--strategy", "rsi", "--grid", "period=1,5", "--data",
                           str(tmp_path / "spy.csv"))  # fmt: skip
    assert refused.exit_code == 2 and "strategy 'rsi' parameter period=1" in " ".join(refused.output.split())


async def test_one_index_of_a_sweep_runs_its_set_and_stores_it_tagged(invoke, database_url, monkeypatch):
    """What one pod of a Backtest's Indexed Job runs: set JOB_COMPLETION_INDEX of the grid, stored."""
    await seed(database_url, minutes=60)
    grid = ["--grid", "fast=2,3", "--grid", "slow=8,12"]
    run = ["backtest", "sweep", "--strategy", "sma_crossover", *grid, *window(60), "--run", "ns/bt/uid-1"]
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    result = await invoke(*run)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["index"] == 2 and printed["params"] == {"fast": 3, "slow": 8}  # grid order
    assert printed["metrics"]["params"]["sma_crossover"]["fast"] == 3
    explicit = await invoke(*run, "--index", "0")
    assert explicit.exit_code == 0, explicit.output
    conn = await asyncpg.connect(database_url)
    rows = await conn.fetch("SELECT run, run_index, params, metrics FROM backtests ORDER BY run_index")
    await conn.close()
    assert [(r["run"], r["run_index"]) for r in rows] == [("ns/bt/uid-1", 0), ("ns/bt/uid-1", 2)]
    assert json.loads(rows[1]["params"]) == {"sma_crossover": printed["metrics"]["params"]["sma_crossover"]}
    assert json.loads(rows[1]["metrics"])["events"] == printed["metrics"]["events"]
    beyond = await invoke(*run, "--index", "4")
    assert beyond.exit_code == 2
    assert "the grid has 4 parameter sets (0 to 3)" in " ".join(beyond.output.split())
