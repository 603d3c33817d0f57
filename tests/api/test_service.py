"""`tradebot service api` on a real port: it serves, and schemathesis finds no server error in it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from api.known_history import write_known_history
from support.auth import AUTH_HEADERS
from support.services import eventually, running
from tradebot.api.service import ApiService

pytestmark = pytest.mark.integration


@pytest.fixture
async def api_url(make_settings, database_url):
    await write_known_history(database_url)
    settings = make_settings(api_port=0)
    api = ApiService(settings)
    async with running(api, settings=settings) as [runtime]:

        async def ready() -> bool:
            return runtime.ctx.ready

        await eventually(ready, what="the API to listen")
        yield f"http://127.0.0.1:{api.port}"


@pytest.mark.backends  # the fuzzing below runs on the default backend only: it takes a minute and a half
async def test_the_service_serves_the_api_and_its_probes(api_url):
    async with httpx.AsyncClient(base_url=api_url, headers=AUTH_HEADERS) as http:
        assert (await http.get("/readyz")).json()["ok"] is True
        assert (await http.get("/sources/synthetic/symbols")).json()["symbols"] == ["AAPL", "MSFT"]
        assert (await http.get("/docs")).status_code == 200


async def test_schemathesis_finds_nothing_with_every_check(api_url, tmp_path):
    """Property-based requests generated from the API's own OpenAPI document, with every check:
    no server error, and the document and the server agree both ways (a request it allows is
    answered, one it forbids is refused)."""
    # A backtest's range is checked across fields (end after start, at most 31 days), which no
    # schema can say: its 422 for such a body is an accepted answer, with the reason named.
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-name = "POST /backtests"\n'
        "[operations.checks.positive_data_acceptance]\n"
        'expected-statuses = ["2XX", "3XX", "401", "403", "404", "409", "422", "429", "5XX"]\n'
    )
    # Two runs side by side, half the wall time of one: the coverage phase alone (its generator
    # is not thread-safe), and fuzzing + stateful with concurrent workers.
    outcomes = await asyncio.gather(
        schemathesis(api_url, tmp_path, "coverage"), schemathesis(api_url, tmp_path, "fuzzing,stateful", 4)
    )
    for returncode, text in outcomes:
        print(text)
        assert returncode == 0, text


async def schemathesis(api_url: str, directory: Path, phases: str, workers: int = 1) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api_url}/openapi.json",
        "--checks", "all", "--phases", phases, "--workers", str(workers),
        "--max-examples", "40", "--seed", "1", "--generation-deterministic", "--no-color",
        "--request-timeout", "10", "--report-dir", str(directory / phases),
        "--header", f"Authorization: {AUTH_HEADERS['Authorization']}",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=directory
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
