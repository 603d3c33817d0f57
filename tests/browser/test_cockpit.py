"""The dashboard as a cockpit, in Chromium, on a live run (no demo history): fills as markers and the
strategy's own lines on the chart; controls that act through the pipeline and are audited; closed
trades and the equity curve that agree with the fills in PostgreSQL; the backtests page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from browser.stack import ARTIFACTS, logged_in
from support.auth import AUTH_HEADERS, AUTH_TOKEN
from support.services import eventually
from tradebot.common import keys, wire
from tradebot.common.models import Fill, Order
from tradebot.execution.portfolio import Portfolio

pytestmark = pytest.mark.browser
WAIT_MS = 60_000
POSITIVE = re.compile(r"^[1-9][0-9]*$")
ROUND_TRIPS_SQL = """
SELECT s.symbol, (s.price - b.price) * s.quantity - s.fee - b.fee AS pnl
FROM fills s JOIN LATERAL (
    SELECT * FROM fills b WHERE b.symbol = s.symbol AND b.side = 'buy' AND b.time <= s.time
    ORDER BY b.time DESC LIMIT 1) b ON true
WHERE s.side = 'sell' ORDER BY s.time DESC, s.id DESC
"""


async def signed_in(browser, url: str) -> Page:
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # flatten and reset ask first
    await page.goto(logged_in(url))
    await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    await page.locator("#token").fill(AUTH_TOKEN)
    await page.locator("#token-form button").click()
    return page


async def stream(redis, name: str) -> list:
    return [wire.decode(fields) for _, fields in await redis.xrange(name)]


async def test_markers_lines_controls_and_performance_on_a_live_run(live_stack, browser, redis, database_url):
    page = await signed_in(browser, live_stack.url)

    async def traded() -> bool:
        fills = cast(list[Fill], await stream(redis, keys.FILLS))
        return any(f.side == "sell" for f in fills) and len(fills) >= 3

    await eventually(traded, within=90, what="the live run to buy and sell")
    fills = cast(list[Fill], await stream(redis, keys.FILLS))
    symbol = fills[0].symbol
    await page.locator(f'#prices tr[data-symbol="{symbol}"]').click()
    chart = page.locator("#chart")
    await expect(chart).to_have_attribute("data-markers", POSITIVE, timeout=WAIT_MS)
    await expect(chart).to_have_attribute("data-overlay-points", POSITIVE, timeout=WAIT_MS)
    await expect(page.locator('#chart-legend [data-overlay="sma_crossover.slow"]')).to_be_visible()
    before = sum(f.symbol == symbol for f in fills)

    async def every_fill_marked() -> bool:  # the stored ones and the live ones since
        return int(await chart.get_attribute("data-markers") or 0) >= before

    await eventually(every_fill_marked, what=f"a marker for each of the {before} {symbol} fills")
    await expect(page.locator('#strategies [data-strategy="sma_crossover"] tbody tr')).to_have_count(
        4, timeout=WAIT_MS
    )
    await expect(page.locator('#streams tr[data-stream="ticks"]')).to_be_visible(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#chart-panel").screenshot(path=str(ARTIFACTS / "cockpit-chart.png"))

    # Pause while positions are open: entries stop (new buys are refused), their sells still fill.
    paused_at = await _pause_holding_positions(page, redis)

    async def sold_and_refused_while_paused() -> bool:
        since = cast(list[Order], (await stream(redis, keys.ORDERS))[paused_at:])
        sold = any(o.side == "sell" and o.status == "filled" for o in since)
        refused = any(o.side == "buy" and "paused" in o.reason for o in since)
        return sold and refused

    await eventually(sold_and_refused_while_paused, within=90, what="a sell to fill and a buy to be refused")
    since = cast(list[Order], (await stream(redis, keys.ORDERS))[paused_at:])
    assert not [o for o in since if o.side == "buy" and o.status == "filled"], "a buy filled while paused"

    # Flatten: nothing left open.
    await page.locator('[data-control="flatten"]').click()
    await expect(page.locator("#control-message")).to_contain_text("flatten queued", timeout=WAIT_MS)

    async def flat() -> bool:
        raw = await redis.get(keys.PORTFOLIO)
        return (
            not Portfolio.model_validate_json(raw).open_positions()
            and not Portfolio.model_validate_json(raw).pending
        )

    await eventually(flat, within=60, what="every position to be sold")
    await expect(page.locator("#positions tbody tr")).to_have_count(0, timeout=WAIT_MS)

    # Paused and flat, nothing trades: the closed trades and the equity curve must agree with PostgreSQL.
    flat_at = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=live_stack.url, headers=AUTH_HEADERS) as http:

        async def stored_and_snapshotted() -> bool:
            stored = await _fetch(database_url, "SELECT count(*) AS n FROM fills")
            points = (await http.get("/api/equity")).json()
            newest = points[-1] if points else None
            return (
                stored[0]["n"] == len(await stream(redis, keys.FILLS))
                and newest is not None
                and datetime.fromisoformat(newest["time"]) > flat_at + timedelta(seconds=1)
            )

        await eventually(
            stored_and_snapshotted, within=60, what="storage to catch up and snapshot the flat account"
        )
        equity = (await http.get("/api/equity")).json()
    expected = await _fetch(database_url, ROUND_TRIPS_SQL)
    await page.reload()
    rows = page.locator("#closed-trades tbody tr")
    await expect(rows).to_have_count(len(expected), timeout=WAIT_MS)
    shown = await page.locator("#closed-trades tbody tr td.pnl").all_text_contents()
    assert sorted(map(_money, shown)) == [
        pytest.approx(pnl, abs=0.006) for pnl in sorted(r["pnl"] for r in expected)
    ]
    total = sum(row["pnl"] for row in expected)
    assert equity[-1]["equity"] == pytest.approx(live_stack.settings.starting_cash + total, abs=0.01)
    await expect(page.locator("#equity-chart")).to_have_attribute("data-points", POSITIVE, timeout=WAIT_MS)
    await expect(page.locator("#by-symbol tbody tr").first).to_be_visible(timeout=WAIT_MS)
    await page.locator("#performance-panel").screenshot(path=str(ARTIFACTS / "cockpit-performance.png"))

    # Reset: the starting cash again; the audit shows every action, who and when.
    await page.locator("#token").fill(AUTH_TOKEN)
    await page.locator("#token-form button").click()
    await page.locator('[data-control="reset"]').click()
    cash = page.locator("#account dd").nth(1)
    await expect(cash).to_have_text(f"${live_stack.settings.starting_cash:,.2f}", timeout=WAIT_MS)
    audit = page.locator("#audit li")
    await expect(audit.first).to_have_attribute("data-action", "reset", timeout=WAIT_MS)
    actions = [await item.get_attribute("data-action") for item in await audit.all()]
    assert actions[:3] == ["reset", "flatten", "pause"]
    assert actions[3:] == ["resume", "pause"] * (len(actions[3:]) // 2)  # pauses retried until holding
    await expect(audit.first).to_contain_text("token@127.0.0.1")
    await page.screenshot(path=str(ARTIFACTS / "cockpit.png"), full_page=True)


@pytest.mark.parametrize("live_stack", [{"auth": "read-open"}], indirect=True)
async def test_controls_without_the_token_are_refused_and_say_so(live_stack, browser, redis):
    """A reader without the token (reads opened by AUTH=read-open) sees the page, not the controls."""
    page = await browser.new_page()
    await page.goto(live_stack.url)
    await page.locator('[data-control="pause"]').click()
    await expect(page.locator("#control-message")).to_contain_text("sign in", timeout=WAIT_MS)
    await page.wait_for_timeout(1000)
    raw = await redis.get(keys.PORTFOLIO)
    assert raw is None or not Portfolio.model_validate_json(raw).paused
    assert await redis.xlen(keys.CONTROLS) == 0


async def test_the_backtests_page_lists_shows_and_compares_runs(stack, browser):
    end = datetime.now(UTC)
    ids = []
    async with httpx.AsyncClient(base_url=stack.url, headers=AUTH_HEADERS, timeout=30) as http:
        for fast in (3, 5):
            body = {
                "strategy": "sma_crossover", "params": {"fast": fast, "slow": 12, "input": "trades"},
                "symbols": ["AAPL", "MSFT"], "start": (end - timedelta(hours=3)).isoformat(),
                "end": end.isoformat(),
            }  # fmt: skip
            answer = await http.post("/api/backtests", json=body)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])

        async def done() -> bool:
            runs = (await http.get("/api/backtests")).json()
            failed = [run for run in runs if run["status"] == "failed"]
            assert not failed, f"a backtest failed: {failed}"
            return all(run["status"] == "done" for run in runs) and len(runs) == 2

        await eventually(done, within=120, what="both backtests to finish")
    page = await browser.new_page()
    await page.goto(logged_in(stack.url))
    await page.goto(f"{stack.url}/backtests")
    rows = page.locator("#runs tbody tr")
    await expect(rows).to_have_count(2, timeout=WAIT_MS)
    await page.locator(f'#runs tr[data-run="{ids[0]}"] td').nth(2).click()
    await expect(page.locator("#report-panel")).to_have_attribute("data-runs", str(ids[0]), timeout=WAIT_MS)
    await expect(page.locator('#report-metrics tr[data-metric="sharpe"] td')).to_have_count(2)
    await expect(page.locator("#report-trades tbody tr").first).to_be_visible()
    for run_id in ids:
        await page.locator(f'#runs tr[data-run="{run_id}"] input[type=checkbox]').click()
    await page.locator("#compare").click()
    await expect(page.locator("#report-panel")).to_have_attribute("data-runs", f"{ids[0]},{ids[1]}")
    await expect(page.locator('#report-metrics tr[data-metric="return_pct"] td')).to_have_count(3)
    assert "fast" in (await page.locator("#report-metrics tbody tr").first.text_content() or "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "backtests.png"), full_page=True)


async def _pause_holding_positions(page: Page, redis) -> int:
    """Pause at a moment the account holds positions (they come and go within seconds); returns
    how many orders there were then."""
    for _ in range(5):

        async def holding() -> bool:
            raw = await redis.get(keys.PORTFOLIO)
            return raw is not None and len(Portfolio.model_validate_json(raw).open_positions()) >= 2

        await eventually(holding, within=60, what="two open positions")
        await page.locator('[data-control="pause"]').click()
        await expect(page.locator("#trading-state")).to_have_attribute("data-paused", "true", timeout=WAIT_MS)
        orders = len(await stream(redis, keys.ORDERS))
        if Portfolio.model_validate_json(await redis.get(keys.PORTFOLIO)).open_positions():
            return orders
        await page.locator('[data-control="resume"]').click()  # sold before the pause: again
        await expect(page.locator("#trading-state")).to_have_attribute(
            "data-paused", "false", timeout=WAIT_MS
        )
    raise AssertionError("never paused while holding a position")


async def _fetch(database_url: str, sql: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def _money(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))
