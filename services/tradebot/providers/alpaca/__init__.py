"""Alpaca market data: the live WebSocket (alpaca-py's StockDataStream) and the REST v2 history."""
