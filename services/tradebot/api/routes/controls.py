"""Operator controls (authenticated, audited) and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from tradebot.api.auth import require_read, require_write
from tradebot.api.controls import recent_audit, send_control
from tradebot.api.deps import NOT_FOUND, State, Ticker
from tradebot.api.sources import UnknownName
from tradebot.common.models import Control, ControlAction
from tradebot.execution.portfolio import load_portfolio

router = APIRouter(tags=["controls"])
Actor = Annotated[str, Depends(require_write)]
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON"},
    401: {"description": "no valid bearer token (AUTH_TOKEN)"},
}


class ControlRequest(BaseModel):
    reason: str = Field("", max_length=500, description="why, for the audit trail")


class ControlAccepted(BaseModel):
    id: str
    action: str
    symbol: str | None
    actor: str
    time: datetime
    status: Literal["queued"] = Field("queued", description="execution applies it with its next batch")


class AuditEntry(BaseModel):
    id: int
    time: datetime
    actor: str
    action: str
    symbol: str | None
    reason: str
    control_id: str
    applied_at: datetime | None = Field(description="when execution applied it (null while queued)")
    result: str | None = Field(description="what execution did, e.g. '2 positions sell at their next trade'")


Reason = Annotated[ControlRequest | None, Body()]


async def _send(
    state: State, actor: str, action: ControlAction, body: ControlRequest | None, symbol: str | None = None
):
    control = Control(
        time=datetime.now(UTC), action=action, symbol=symbol, actor=actor, reason=body.reason if body else ""
    )
    await send_control(state.store.pool, state.redis, control)
    return ControlAccepted(
        id=control.id, action=action, symbol=symbol, actor=actor, time=control.time, status="queued"
    )


def _simple(action: ControlAction, summary: str) -> None:
    async def route(state: State, actor: Actor, body: Reason = None) -> ControlAccepted:
        return await _send(state, actor, action, body)

    router.add_api_route(
        f"/controls/{action}", route, methods=["POST"], status_code=202, response_model=ControlAccepted,
        responses=WRITE_ERRORS, summary=summary, name=f"control_{action}",
    )  # fmt: skip


_simple("pause", "Pause trading: no new positions; exits and sells still run")
_simple("resume", "Resume trading")
_simple("flatten", "Close every position at its next trade and cancel queued buys")
_simple("reset", "Reset the paper account to STARTING_CASH")


@router.post(
    "/controls/close/{symbol}", status_code=202, response_model=ControlAccepted,
    responses={**WRITE_ERRORS, **NOT_FOUND}, summary="Close one position at its next trade",
)  # fmt: skip
async def close(state: State, actor: Actor, symbol: Ticker, body: Reason = None) -> ControlAccepted:
    portfolio = await load_portfolio(state.redis, state.settings.starting_cash)
    if portfolio.quantity(symbol) <= 0:
        raise UnknownName(f"no open {symbol} position")
    return await _send(state, actor, "close", body, symbol)


@router.get(
    "/audit", response_model=list[AuditEntry], dependencies=[Depends(require_read)],
    summary="Operator actions, newest first",
)  # fmt: skip
async def audit(state: State, limit: Annotated[int, Query(ge=1, le=1_000)] = 100) -> list[AuditEntry]:
    return [AuditEntry(**row) for row in await recent_audit(state.store.pool, state.redis, limit)]
