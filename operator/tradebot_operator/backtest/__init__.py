"""The `Backtest` resource: a backtest or a parameter sweep of a stack's strategy, run as a Kubernetes Job.

A sweep is an Indexed Job with one index per parameter set (`tradebot backtest sweep
--index`, the index from JOB_COMPLETION_INDEX), run against the stack's TimescaleDB
with the stack's own environment (broker, risk limits, exits, costs); each index stores
its run in the `backtests` table tagged with the resource, and the operator reads
them back into the status: progress, and the best parameters and their metrics.
"""

from __future__ import annotations

PLURAL = "backtests"
KIND = "Backtest"
