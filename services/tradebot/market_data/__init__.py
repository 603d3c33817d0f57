"""Market data services: they turn a feed into price ticks on the `ticks` stream."""
