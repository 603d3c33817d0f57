"""The running strategies: their parameters, and each symbol's indicators and last signal now."""

from __future__ import annotations

from fastapi import APIRouter

from tradebot.api.deps import State, Ticker, Tickers, tickers
from tradebot.api.models import ReadingsPoint, StrategyInfo, StrategyReadings
from tradebot.common import keys

router = APIRouter(tags=["strategies"])


@router.get("/strategies", response_model=list[StrategyInfo], summary="The strategies the stack runs")
async def strategies(state: State) -> list[StrategyInfo]:
    config = await keys.read_strategy_config(state.redis)
    return [StrategyInfo(name=name, **values) for name, values in config.items()]


@router.get(
    "/strategies/readings", response_model=list[StrategyReadings],
    summary="Each symbol's indicators and last signal, as the strategies see them now",
)  # fmt: skip
async def readings(state: State, symbols: Tickers = "") -> list[StrategyReadings]:
    found = await keys.read_strategy_readings(state.redis, tickers(symbols))
    return [StrategyReadings(symbol=symbol, **found[symbol]) for symbol in sorted(found)]


@router.get(
    "/strategies/readings/{symbol}/history", response_model=list[ReadingsPoint],
    summary="A symbol's recent readings, oldest first (the chart's indicator lines)",
)  # fmt: skip
async def readings_history(state: State, symbol: Ticker) -> list[ReadingsPoint]:
    return [
        ReadingsPoint(time=t, strategies=values)
        for t, values in await keys.read_readings_history(state.redis, symbol)
    ]
