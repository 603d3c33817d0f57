"""Local Alpaca and Polygon servers speaking their documented protocols, and settings for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakes.alpaca import FakeAlpaca
from .fakes.alpaca_trading import FakeAlpacaTrading
from .fakes.polygon import FakePolygon

SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture
def fake_alpaca(request) -> Iterator[FakeAlpaca]:
    options = getattr(request, "param", {})
    fake = FakeAlpaca(SYMBOLS, **options).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_polygon(request) -> Iterator[FakePolygon]:
    options = getattr(request, "param", {})
    fake = FakePolygon(SYMBOLS, **options).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_trading(request) -> Iterator[FakeAlpacaTrading]:
    options = getattr(request, "param", {})
    fake = FakeAlpacaTrading(SYMBOLS, **options).start()
    yield fake
    fake.stop()


def trading_settings(fake: FakeAlpacaTrading, **overrides) -> dict:
    return {"execution_venue": "alpaca", "alpaca_key": fake.key, "alpaca_secret": fake.secret,
            "alpaca_trading_url": fake.rest_url, "alpaca_trading_stream_url": fake.stream_url,
            **overrides}  # fmt: skip


def alpaca_settings(fake: FakeAlpaca, **overrides) -> dict:
    return {"data_source": "alpaca", "alpaca_key": fake.key, "alpaca_secret": fake.secret,
            "alpaca_stream_url": fake.stream_url, "alpaca_data_url": fake.rest_url,
            "alpaca_trading_url": fake.rest_url, **overrides}  # fmt: skip


def polygon_settings(fake: FakePolygon, **overrides) -> dict:
    return {"data_source": "polygon", "polygon_api_key": fake.key, "polygon_ws_url": fake.ws_url,
            "polygon_rest_url": fake.rest_url, **overrides}  # fmt: skip
