"""The API app over a database with a known history (in-process, real PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.known_history import write_known_history
from support.auth import AUTH_HEADERS
from tradebot.api.app import create_app
from tradebot.api.deps import ApiState
from tradebot.api.sources import SourceCatalog
from tradebot.api.store import HistoryStore
from tradebot.common.connections import connect_postgres


@pytest.fixture
async def history(database_url: str) -> str:
    await write_known_history(database_url)
    return database_url


@pytest.fixture
async def client(make_settings, redis, history) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings()
    pool = await connect_postgres(history)
    catalog = SourceCatalog(pool)
    state = ApiState(settings, catalog, HistoryStore(pool, catalog), redis)
    app = create_app(state, live=lambda: (True, {}), ready=lambda: (True, {}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH_HEADERS) as http:
        yield http
    await pool.close()
