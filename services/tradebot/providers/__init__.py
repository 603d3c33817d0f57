"""Market-data providers: one package per provider, below both live market data and backfill.

`registry` is the one list of data sources that settings, the catalog, health,
the CLI, the operator and the chart read. Adding a provider is a new package
here and one registry entry.
"""
