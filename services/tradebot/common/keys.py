"""Every Redis key and stream the services share, with its codec: the one home of each name.

ARCHITECTURE.md fixes these names (so the original system's documented commands
keep working). A key is written by one service and read through the reader
here, so a change of format is one edit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tradebot.common.models import PriceTick

# ---------------------------------------------------------------------------- streams
TICKS = "ticks"
"""The tick stream; split by symbol into `ticks:<n>` when TICK_SHARDS > 1 (see `tick_stream`)."""
SIGNALS = "signals"
ORDERS = "orders"
FILLS = "fills"
POSITIONS = "positions"
CONTROLS = "controls"
"""Operator commands (pause, resume, close, flatten, reset) from the API to execution."""


def tick_shard(symbol: str, shards: int) -> int:
    """The shard of a symbol: crc32 of its UTF-8 name mod TICK_SHARDS (ARCHITECTURE.md)."""
    return zlib.crc32(symbol.encode()) % shards


def tick_stream(shard: int, shards: int) -> str:
    """Shard n's stream: `ticks` for an unsharded stack (the original name), else `ticks:<n>`."""
    return TICKS if shards == 1 else f"{TICKS}:{shard}"


def tick_streams(shards: int) -> list[str]:
    """Every tick stream of a stack (what storage and the dashboard read)."""
    return [tick_stream(n, shards) for n in range(shards)]


def owned_shards(replica_index: int, replica_count: int, shards: int) -> list[int]:
    """The shards replica k of R reads: n with n mod R = k (so each symbol has one reader)."""
    return [n for n in range(shards) if n % replica_count == replica_index]


def dead_letter_stream(stream: str) -> str:
    """`<stream>:dead`: entries a consumer could not decode or store, with the reason."""
    return f"{stream}:dead"


# ---------------------------------------------------------------------------- service health
def heartbeat_key(service_id: str) -> str:
    """`service:<id>:heartbeat`: JSON (timestamp, status, pid, host, counters), with a TTL."""
    return f"service:{service_id}:heartbeat"


def errors_key(service_id: str) -> str:
    """`service:<id>:errors`: the service's error counter."""
    return f"service:{service_id}:errors"


HEARTBEAT_PATTERN = heartbeat_key("*")
ERRORS_PATTERN = errors_key("*")

# ---------------------------------------------------------------------------- market data
LATEST_PRICES = "prices:latest"
"""Hash: symbol -> the latest tick's wire JSON (`d` field of its stream entry)."""


def provider_resume_key(source: str) -> str:
    """`market_data:<source>:last_trade`: the newest trade time a provider feed published."""
    return f"market_data:{source}:last_trade"


def decode_latest_ticks(values: Iterable[bytes | str | None]) -> dict[str, PriceTick]:
    """`prices:latest` values as symbol -> tick; unreadable entries are skipped (pure)."""
    ticks: dict[str, PriceTick] = {}
    for raw in values:
        if raw:
            try:
                tick = PriceTick.model_validate_json(raw)
            except ValueError:
                continue
            ticks[tick.symbol] = tick
    return ticks


async def read_latest_ticks(
    redis: Redis | Pipeline, symbols: Iterable[str] | None = None
) -> dict[str, PriceTick]:
    """The latest tick of `symbols` (default: every symbol that has one)."""
    if symbols is None:
        return decode_latest_ticks((await redis.hgetall(LATEST_PRICES)).values())
    wanted = list(symbols)
    return decode_latest_ticks(await redis.hmget(LATEST_PRICES, wanted)) if wanted else {}


def decode_latest_prices(raw: Mapping[bytes | str, bytes | str | None]) -> dict[str, float]:
    """`prices:latest` as symbol -> price, reading only each tick's `price` (pure)."""
    prices: dict[str, float] = {}
    for symbol, tick in raw.items():
        try:
            price = float(orjson.loads(tick or b"")["price"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if price > 0:
            prices[symbol.decode() if isinstance(symbol, bytes) else symbol] = price
    return prices


async def read_latest_prices(
    redis: Redis | Pipeline, symbols: Iterable[str] | None = None
) -> dict[str, float]:
    """The latest price of `symbols` (default: every symbol that has one)."""
    if symbols is None:
        return decode_latest_prices(await redis.hgetall(LATEST_PRICES))
    wanted = list(symbols)
    values = await redis.hmget(LATEST_PRICES, wanted) if wanted else []
    return decode_latest_prices(dict(zip(wanted, values, strict=True)))


# ---------------------------------------------------------------------------- execution
PORTFOLIO = "execution:portfolio"
"""The paper account as JSON (tradebot.execution.portfolio.Portfolio; read with `load_portfolio`)."""
PROCESSED_SIGNALS = "execution:processed_signals"
"""Sorted set: signal or control id -> time it was executed (exactly-once record)."""
BROKER_BOOK = "execution:broker"
"""With a broker venue (EXECUTION_VENUE=alpaca): the orders open at the broker and where the last
catch-up of fills ended (tradebot.execution.book.Book)."""
BROKER_SUBMITTING = "execution:submitting"
"""Hash: client_order_id -> the decided order (TrackedOrder JSON), written before it is sent and
deleted with the signal's acknowledgement: what a redelivered signal sends again."""
CONTROL_RESULTS = "execution:control_results"
"""Hash: control id -> JSON `{"time": epoch s, "result": what execution did}`, written with its effect."""


async def read_control_results(redis: Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    """What execution did with each of these controls (the ones it has applied)."""
    found: dict[str, dict[str, Any]] = {}
    for control_id, raw in zip(ids, await redis.hmget(CONTROL_RESULTS, ids) if ids else [], strict=True):
        try:
            if raw:
                found[control_id] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
    return found


# ---------------------------------------------------------------------------- strategy
STRATEGY_PROGRESS = "strategy:progress"
"""Hash: tick shard -> id of the last `ticks:<n>` entry whose signals are published (set in the
same transaction as those signals); execution checks exits only on ticks the strategy has covered."""


def strategy_lease_key(shard: int) -> str:
    """`strategy:lease:<n>`: which strategy process reads shard n now (a token with a short TTL)."""
    return f"strategy:lease:{shard}"


def strategy_checkpoint_key(shard: int) -> str:
    """`strategy:checkpoint:<n>`: shard n's strategy state and the stream position it covers."""
    return f"strategy:checkpoint:{shard}"


STRATEGY_READINGS = "strategy:readings"
"""Hash: symbol -> JSON `{"time": epoch s, "strategies": {name: {"values": {indicator: value},
"last_signal": {side, time, reason} | null}}}`, the running strategies' current indicators (written
by the strategy replica owning the symbol every few seconds; the dashboard's overlays and panel)."""
READINGS_HISTORY = 240
"""Points kept per symbol in `strategy:readings:<symbol>` (a change every 2 s: 8 minutes; a 1m bar's: 4 h)."""


def readings_history_key(symbol: str) -> str:
    """`strategy:readings:<symbol>`: list of JSON `[epoch s, {strategy: {indicator: value}}]`, the
    last READINGS_HISTORY changes of the symbol's readings, oldest first (the chart's overlay lines)."""
    return f"{STRATEGY_READINGS}:{symbol}"


async def read_readings_history(redis: Redis, symbol: str) -> list[list[Any]]:
    points = []
    for raw in await redis.lrange(readings_history_key(symbol), 0, -1):
        try:
            points.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return points


STRATEGY_CONFIG = "strategy:config"
"""JSON `{name: {"summary", "input", "params", "overlays"}}`: the strategies a stack runs."""


async def read_strategy_readings(
    redis: Redis, symbols: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Current readings of `symbols` (default: all); unreadable entries are skipped."""
    if symbols is None:
        raw: Mapping[Any, Any] = await redis.hgetall(STRATEGY_READINGS)
    else:
        wanted = list(symbols)
        raw = dict(zip(wanted, await redis.hmget(STRATEGY_READINGS, wanted), strict=True)) if wanted else {}
    found = {}
    for symbol, value in raw.items():
        try:
            found[symbol.decode() if isinstance(symbol, bytes) else symbol] = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue
    return found


async def read_strategy_config(redis: Redis) -> dict[str, dict[str, Any]]:
    raw = await redis.get(STRATEGY_CONFIG)
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
