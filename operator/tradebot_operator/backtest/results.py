"""A Backtest's status from its Job (running, failed indexes) and its rows in the `backtests` table.

Each pod stores its run tagged with the Backtest (`run`, `run_index`) before it exits, so
the table is the truth of what finished; the Job says what is still running and what
failed. `backtest_status` is pure; `read_results` is the one query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from tradebot.backtest.store import BACKTESTS_TABLE
from tradebot.backtest.sweep import score

# The metrics shown for the best set (the table keeps them all).
SHOWN = (
    "return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "exposure_pct",
    "trades",
    "fees",
    "benchmark_return_pct",
    "events",
)
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Result:
    index: int
    metrics: Mapping[str, Any]


async def read_results(database_url: str, run: str) -> list[Result]:
    """The stored runs of one Backtest (the newest per index: a retried pod may have stored twice)."""
    conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT)
    try:
        rows = await conn.fetch(
            f"SELECT run_index, metrics FROM {BACKTESTS_TABLE} WHERE run = $1 ORDER BY id", run
        )
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        return []  # nothing stored yet (no table, or one from before runs were tagged)
    finally:
        await conn.close()
    latest = {row["run_index"]: orjson.loads(row["metrics"]) for row in rows if row["run_index"] is not None}
    return [Result(index, metrics) for index, metrics in sorted(latest.items())]


def parse_indexes(text: str | None) -> set[int]:
    """A Job's index list, e.g. '0-2,5' -> {0, 1, 2, 5}."""
    found: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if first:
            found.update(range(int(first), int(last or first) + 1))
    return found


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def _job_condition(job: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def _ranges(indexes: Sequence[int]) -> str:
    return ",".join(str(i) for i in indexes[:20]) + (" ..." if len(indexes) > 20 else "")


def backtest_status(
    sets: Sequence[Mapping[str, Any]],
    results: Sequence[Result] | None,
    job: Mapping[str, Any] | None,
    rank: str,
    problem: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The status (conditions without transition times). `results` None: the database was unreadable;
    `problem` (reason, message): why no Job runs (the stack is missing, the spec is refused, ...)."""
    total = len(sets)
    done = {r.index: r for r in results or () if 0 <= r.index < total}
    job_status = (job or {}).get("status") or {}
    failed_job = _job_condition(job, "Failed")
    complete_job = _job_condition(job, "Complete")
    failed = sorted(parse_indexes(job_status.get("failedIndexes")) - set(done))
    if problem is not None:
        phase, reason, message = "Pending" if job is None else "Running", problem[0], problem[1]
        if problem[0] == "InvalidSpec":
            phase = "Failed"
    elif len(done) == total:
        phase, reason, message = "Succeeded", "Completed", f"{total} of {total} parameter sets done"
    elif failed_job is not None:
        missing = sorted(set(range(total)) - set(done))
        phase, reason = "Failed", str(failed_job.get("reason") or "JobFailed")
        message = f"{failed_job.get('message') or 'the Job failed'}; no result for sets {_ranges(missing)}"
    elif job is None:
        phase, reason, message = "Pending", "CreatingJob", "starting the Job"
    elif results is None:
        phase, reason, message = "Running", "DatabaseUnavailable", "cannot read the backtests table"
    elif complete_job is not None:
        missing = sorted(set(range(total)) - set(done))
        phase, reason = "Running", "ResultsMissing"
        message = f"the Job is complete but the backtests table has no result for sets {_ranges(missing)}"
    else:
        phase, reason = "Running", "Running"
        message = f"{len(done)} of {total} parameter sets done, {int(job_status.get('active') or 0)} running"
        if failed:
            message += f"; sets {_ranges(failed)} failed"
    status: dict[str, Any] = {
        "phase": phase,
        "progress": f"{len(done)}/{total}",
        "sets": total,
        "completed": len(done),
        "failed": len(failed),
        "active": int(job_status.get("active") or 0),
        "conditions": [
            _condition("Complete", phase == "Succeeded", reason, message),
            _condition("Failed", phase == "Failed", reason, message),
        ],
    }
    if job is not None:
        status["job"] = job["metadata"]["name"]
    if done:
        best = max(done.values(), key=lambda r: score(r.metrics, rank))
        status["best"] = {
            "index": best.index,
            "params": dict(sets[best.index]),
            "rank": rank,
            "metrics": {k: best.metrics[k] for k in SHOWN if best.metrics.get(k) is not None},
        }
    return status
