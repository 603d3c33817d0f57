"""The live dashboard: prices, signals, trades, P&L, charts and service health in the browser."""
