"""Strategies turn ticks into trade signals; the service runs them on the `ticks` stream."""
