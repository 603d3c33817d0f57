"""The history API: ticks, bars, prices, signals, the paper account and service health over HTTP."""
