"""Run the local Alpaca (market data and trading) and Polygon servers until Ctrl-C, and print the
settings that reach them.

From the repository root:  .venv/bin/python -m providers.fakes.serve --rate 10   (with PYTHONPATH=tests)
Then e.g.  env $(...printed lines...) tradebot backfill benchmark --source alpaca
"""

from __future__ import annotations

import argparse
import time

from .alpaca import FakeAlpaca
from .alpaca_trading import FakeAlpacaTrading
from .common import RateLimit
from .polygon import FakePolygon


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s each REST server admits")
    parser.add_argument("--burst", type=float, default=10.0, help="token-bucket burst")
    parser.add_argument("--page-size", type=int, default=1000, help="rows per REST page")
    parser.add_argument("--symbols", default="AAPL,MSFT,AMZN,GOOG,TSLA", help="symbols of the live tape")
    parser.add_argument("--live", type=float, default=0.5, help="seconds between live trades per symbol")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    limit = {"per_second": args.rate, "burst": args.burst}
    alpaca = FakeAlpaca(symbols, page_size=args.page_size, live_interval=args.live, limit=RateLimit(**limit))
    polygon = FakePolygon(
        symbols, page_size=args.page_size, live_interval=args.live, limit=RateLimit(retry_after=None, **limit)
    )
    trading = FakeAlpacaTrading(symbols, key=alpaca.key, secret=alpaca.secret)
    alpaca.start()
    polygon.start()
    trading.start()
    print(f"ALPACA_KEY={alpaca.key} ALPACA_SECRET={alpaca.secret} ALPACA_DATA_URL={alpaca.rest_url}", end=" ")
    print(f"ALPACA_STREAM_URL={alpaca.stream_url} ALPACA_TRADING_URL={trading.rest_url}", end=" ")
    print(f"ALPACA_TRADING_STREAM_URL={trading.stream_url}")
    print(f"POLYGON_API_KEY={polygon.key} POLYGON_REST_URL={polygon.rest_url}", end=" ")
    print(f"POLYGON_WS_URL={polygon.ws_url}")
    print(f"(REST admits {args.rate:g} requests/s, burst {args.burst:g}; Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        alpaca.stop()
        polygon.stop()
        trading.stop()


if __name__ == "__main__":
    main()
