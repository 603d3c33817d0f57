"""The API's own health and every service's health, with error-count resets."""

from __future__ import annotations

import contextlib
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from tradebot.api.auth import require_write
from tradebot.api.deps import NOT_FOUND, State
from tradebot.api.models import ApiHealth, ServiceStatus, StreamHealth
from tradebot.api.sources import UnknownName
from tradebot.api.status import service_statuses
from tradebot.api.streams import streams_health
from tradebot.common.connections import TRANSIENT_ERRORS
from tradebot.common.heartbeat import discover_service_ids, reset_errors

router = APIRouter(tags=["system"])
SERVICE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@router.get("/health", response_model=ApiHealth, summary="Whether the API reaches PostgreSQL and Redis")
async def health(state: State) -> ApiHealth:
    database = redis = False
    with contextlib.suppress(*TRANSIENT_ERRORS):
        await state.catalog.refresh()
        database = True
    with contextlib.suppress(*TRANSIENT_ERRORS):
        redis = bool(await state.redis.ping())
    status = "ok" if database and redis else "degraded"
    catalog = state.catalog
    return ApiHealth(
        status=status, database=database, redis=redis, timescale=catalog.timescale, backend=catalog.backend
    )


@router.get("/services", response_model=list[ServiceStatus], summary="Every service found by its heartbeat")
async def services(state: State) -> list[ServiceStatus]:
    return await service_statuses(state.redis, state.settings.data_source)


@router.get(
    "/streams",
    response_model=list[StreamHealth],
    summary="Each stream's length, dead letters and groups' lag",
)
async def streams(state: State) -> list[StreamHealth]:
    return await streams_health(state.redis, state.settings.tick_shards)


@router.delete(
    "/services/{service_id}/errors",
    status_code=204,
    response_class=Response,
    responses=NOT_FOUND,
    dependencies=[Depends(require_write)],
    summary="Reset a service's error count",
)
async def reset_service_errors(
    state: State, service_id: Annotated[str, Path(max_length=64, description="e.g. market_data")]
) -> Response:
    if not SERVICE_ID.match(service_id) or service_id not in await discover_service_ids(state.redis):
        raise UnknownName(f"unknown service {service_id!r}")
    await reset_errors(state.redis, service_id)
    return Response(status_code=204)
