"""The dashboard follows every stream of a live run (no demo history): each fill and position the
real services write reaches the browser, while ticks keep the feed busy; tick shards included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
import websockets
from playwright.async_api import expect

from browser.stack import ARTIFACTS, logged_in, pipeline_running
from support.auth import AUTH_HEADERS
from support.services import eventually
from tradebot.common import bus, keys
from tradebot.common.models import Fill, PriceTick, Side
from tradebot.dashboard.feed import StreamFeed, live_streams

WAIT_MS = 60_000
FILLS_WANTED = 5


async def stream_ids(redis, stream: str, after: bytes) -> list[str]:
    entries = await redis.xrange(stream, min=b"(" + after, max="+")
    return [entry_id.decode() for entry_id, _ in entries]


async def newest_id(redis, stream: str) -> bytes:
    entries = await redis.xrevrange(stream, count=1)
    return entries[0][0] if entries else b"0-0"


@pytest.mark.browser
async def test_a_live_run_shows_every_fill_and_position(make_settings, redis, browser):
    settings = make_settings(
        symbols="AAPL,MSFT,TSLA,NVDA", ticks_per_second=40, min_signal_strength=0, cooldown_seconds=0,
        strategy_params={"sma_crossover": {"fast": 3, "slow": 8, "input": "trades"},
                         "rsi": {"period": 5, "input": "trades"}}, api_port=0,
    )  # fmt: skip
    async with pipeline_running(settings, seed=5) as (url, _):
        page = await browser.new_page()
        await page.goto(logged_in(url))
        await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        frames: list[dict] = []
        live = url.replace("http", "ws", 1) + "/ws"
        async with websockets.connect(live, additional_headers=AUTH_HEADERS) as socket:
            frames.append(orjson.loads(await socket.recv()))  # the snapshot: from here on, live
            since = {s: await newest_id(redis, s) for s in (keys.FILLS, keys.POSITIONS)}

            async def capture() -> None:
                async for text in socket:
                    frames.append(orjson.loads(text))

            capturing = asyncio.create_task(capture())

            async def fills_written() -> bool:
                return len(await stream_ids(redis, keys.FILLS, since[keys.FILLS])) >= FILLS_WANTED

            await eventually(fills_written, within=90, what=f"{FILLS_WANTED} live fills")
            written = {s: await stream_ids(redis, s, since[s]) for s in since}

            def shown(kind: str) -> list[dict]:
                return [e for f in frames for e in f.get("events", ()) if e["kind"] == kind]

            async def all_shown() -> bool:
                return {e["id"] for e in shown("fill")} >= set(await fill_ids(redis, written[keys.FILLS]))

            await eventually(all_shown, within=10, what="every live fill on the WebSocket")
            capturing.cancel()
        assert len(shown("position")) >= len(written[keys.POSITIONS]), "a position event per fill"
        ticks = sum(len(f.get("prices", {})) for f in frames)
        print(f"captured {len(frames)} frames: {ticks} prices, {len(shown('fill'))} fills")
        await expect(page.locator("#trades li", has_text=" fill ").first).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#positions tbody tr").first).to_be_visible(timeout=WAIT_MS)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)


async def fill_ids(redis, entry_ids: list[str]) -> list[str]:
    """The fill ids (not stream ids) of the given fills-stream entries."""
    ids = []
    for entry_id in entry_ids:
        [(_, fields)] = await redis.xrange(keys.FILLS, min=entry_id, max=entry_id)
        ids.append(orjson.loads(fields[b"d"])["id"])
    return ids


async def test_the_feed_follows_quiet_streams_while_busy_ones_flow(make_settings, redis):
    """Every tick shard and every event stream, however busy the others: nothing is skipped."""
    settings = make_settings(tick_shards=3)
    publisher = bus.Publisher(redis, settings.stream_maxlen)
    feed = StreamFeed(redis, live_streams(settings.tick_shards), block_ms=100)
    await feed.start()
    now = datetime.now(UTC)
    fills, seen = [], []
    for round_ in range(20):
        for shard in range(3):
            tick = PriceTick(source="synthetic", symbol=f"S{shard}", time=now, price=100 + round_)
            await publisher.publish(keys.tick_stream(shard, 3), [(tick, None)])
        seen += await feed.read()
        if round_ % 4 == 0:  # a fill now and then, between two reads of a busy feed
            fill = Fill(id=f"f{round_}", order_id="o", time=now, symbol="S0", side=Side.BUY, quantity=1,
                        price=100, fee=1, slippage=0)  # fmt: skip
            fills.append(fill.id)
            await publisher.publish(keys.FILLS, [(fill, None)])
    seen += await feed.read()
    assert [m.id for m in seen if isinstance(m, Fill)] == fills
    assert sum(isinstance(m, PriceTick) for m in seen) == 60
