"""Backtests: stored history replayed through the live strategy classes and paper broker."""
