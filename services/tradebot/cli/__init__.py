"""The `tradebot` command."""
