"""The data sources and execution venues TradeBot can run on: the one list everything else reads.

Settings validate DATA_SOURCE and EXECUTION_VENUE against it, the service catalog
and health find a source's market-data service (and the venue's execution service)
here, the CLI offers its names, and the operator and the chart take the credential
keys each source and venue needs from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal


@dataclass(frozen=True, slots=True)
class DataSource:
    """One source of market data.

    `name` is DATA_SOURCE's value and the suffix of its tables; `service_id` the
    market-data service that feeds it; `credentials` the environment variables it
    needs (also the keys of a stack's credentials Secret). `feed` and `history` are
    the import paths of its live Feed and REST HistorySource classes (both built
    from Settings); a source without a feed names its own `service` class instead.
    """

    name: str
    service_id: str
    description: str
    credentials: tuple[str, ...] = ()
    feed: str | None = None
    history: str | None = None
    service: str = "tradebot.market_data.provider_service:ProviderStreamService"


SYNTHETIC = DataSource(
    name="synthetic",
    service_id="market_data",
    description="synthetic random-walk ticks onto the `ticks` stream",
    service="tradebot.market_data.service:SyntheticMarketDataService",
)
ALPACA = DataSource(
    name="alpaca",
    service_id="alpaca_market_data",
    description="Alpaca trades, quotes and bars (alpaca-py) onto `ticks`; gaps filled from REST",
    credentials=("ALPACA_KEY", "ALPACA_SECRET"),
    feed="tradebot.providers.alpaca.stream:AlpacaFeed",
    history="tradebot.providers.alpaca.history:AlpacaHistory",
)
POLYGON = DataSource(
    name="polygon",
    service_id="polygon_market_data",
    description="Polygon trades, quotes and minute bars (polygon-api-client) onto `ticks`",
    credentials=("POLYGON_API_KEY",),
    feed="tradebot.providers.polygon.stream:PolygonFeed",
    history="tradebot.providers.polygon.history:PolygonHistory",
)

DATA_SOURCES: dict[str, DataSource] = {source.name: source for source in (SYNTHETIC, ALPACA, POLYGON)}
DEFAULT_SOURCE = SYNTHETIC.name
if TYPE_CHECKING:
    DataSourceName = str
else:  # a Literal of the registry's names, so settings and schemas list exactly these
    DataSourceName = Literal[tuple(DATA_SOURCES)]


@dataclass(frozen=True, slots=True)
class ExecutionVenue:
    """Where the execution service sends its orders (EXECUTION_VENUE).

    `service` is the import path of the execution service class for it (service id
    `execution` either way); `credentials` the variables it needs, which a stack's
    credentials Secret supplies to the execution pods only.
    """

    name: str
    description: str
    service: str
    credentials: tuple[str, ...] = ()


SIMULATED_VENUE = ExecutionVenue(
    name="simulated",
    description="the paper broker: fills at the first trade after the signal, with modelled costs",
    service="tradebot.execution.service:ExecutionService",
)
ALPACA_VENUE = ExecutionVenue(
    name="alpaca",
    description="Alpaca paper trading (alpaca-py): Alpaca's own fills from trade_updates, reconciled by REST",
    service="tradebot.execution.broker_service:AlpacaExecutionService",
    credentials=ALPACA.credentials,
)
EXECUTION_VENUES: dict[str, ExecutionVenue] = {v.name: v for v in (SIMULATED_VENUE, ALPACA_VENUE)}
DEFAULT_VENUE = SIMULATED_VENUE.name
if TYPE_CHECKING:
    ExecutionVenueName = str
else:
    ExecutionVenueName = Literal[tuple(EXECUTION_VENUES)]


def data_source(name: str) -> DataSource:
    """The source called `name`; ValueError naming the known ones otherwise."""
    if name not in DATA_SOURCES:
        raise ValueError(f"unknown data source {name!r}; choose one of: {', '.join(DATA_SOURCES)}")
    return DATA_SOURCES[name]


def history_sources() -> list[str]:
    """The sources with a REST history (what `tradebot backfill` can read)."""
    return [name for name, source in DATA_SOURCES.items() if source.history]


def market_data_service_ids() -> dict[str, str]:
    """data source name -> its market-data service id."""
    return {name: source.service_id for name, source in DATA_SOURCES.items()}


def load(path: str) -> Any:
    """The object at 'package.module:name', imported on first use (keeps the CLI fast)."""
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)
