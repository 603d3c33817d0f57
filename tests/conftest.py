"""Shared fixtures: a real Redis and real PostgreSQL servers per test session.

Each test gets an empty Redis (FLUSHALL) and its own fresh database, on the embedded
default's backend (TimescaleDB); a test marked `backends` (the storage, API, backfill and
sources tests) runs once on each backend: TimescaleDB and plain PostgreSQL.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from support.auth import AUTH_TOKEN
from support.servers import (
    BACKENDS,
    DEFAULT_BACKEND,
    PostgresServers,
    create_database,
    drop_database,
    redis_server,
)
from tradebot.common.connections import connect_redis
from tradebot.common.settings import Settings

# The control plane is one session fixture for every test that needs it (k8s, operator, chart).
pytest_plugins = ["k8s.fixtures"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `backends` that uses a database runs on each PostgreSQL backend."""
    if "postgres_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("postgres_backend", BACKENDS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a failure: the project installs everything its tests use."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and nothing may skip (install what it needs): {reason}"


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """Outside pytest's rotating basetemp: PostgreSQL runs as another user and needs a stable path."""
    path = Path(tempfile.mkdtemp(prefix="tradebot-test-servers-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server_url(servers_dir: Path) -> Iterator[str]:
    with redis_server(servers_dir / "redis") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_servers(servers_dir: Path) -> Iterator[PostgresServers]:
    servers = PostgresServers(servers_dir)
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def postgres_server_url(postgres_servers: PostgresServers) -> str:
    """The default backend's server, for fixtures wider than one test."""
    return postgres_servers.url(DEFAULT_BACKEND)


@pytest.fixture
def postgres_backend() -> str:
    """This test's backend: the default, or each in turn for tests marked `backends`."""
    return DEFAULT_BACKEND


@pytest.fixture
def backend_server_url(postgres_servers: PostgresServers, postgres_backend: str) -> str:
    return postgres_servers.url(postgres_backend)


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    client = connect_redis(redis_server_url)
    await client.flushall()
    await client.aclose()
    yield redis_server_url


@pytest.fixture
async def redis(redis_url: str):
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def database_url(backend_server_url: str) -> AsyncIterator[str]:
    name, url = await create_database(backend_server_url)
    yield url
    await drop_database(backend_server_url, name)


@pytest.fixture
def make_settings(redis_url: str, database_url: str) -> Callable[..., Settings]:
    """Settings pointing at this test's servers, with overrides, ignoring any .env file."""

    def make(**overrides) -> Settings:
        values = {
            "redis_url": redis_url, "database_url": database_url, "probe_port": 0,
            "auth_token": AUTH_TOKEN, **overrides,
        }  # fmt: skip
        return Settings(_env_file=None, **values)

    return make
