"""TradeBot: real-time paper trading on Redis Streams and TimescaleDB."""

__version__ = "0.1.0"
