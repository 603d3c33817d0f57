"""`tradebot dashboard` (the dashboard on its own) and `tradebot demo` (history for it to show)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tradebot.cli.common import console, settings_or_exit


def dashboard(
    port: Annotated[int | None, typer.Option(help="Port to serve on (default DASHBOARD_PORT, 8001).")] = None,
    api_url: Annotated[str | None, typer.Option(help="Where the API is (default API_URL).")] = None,
) -> None:
    """Run the **live dashboard** on its own, against REDIS_URL and the API at API_URL, until Ctrl-C."""
    from tradebot.common.service import run_service
    from tradebot.dashboard.service import DashboardService

    overrides = {"dashboard_port": port, "api_url": api_url}
    settings = settings_or_exit().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    console.print(f"Dashboard on http://localhost:{settings.dashboard_port} (API at {settings.api_url})")
    try:
        run_service(DashboardService, settings)
    except ValueError as error:  # no AUTH_TOKEN
        console.print(f"[bold red]Configuration error[/]\n{error}", highlight=False)
        raise typer.Exit(2) from None


def demo(
    hours: Annotated[float, typer.Option(min=0.1, max=24 * 30, help="Hours of history, ending now.")] = 6.0,
    step: Annotated[float, typer.Option(min=0.1, max=3600, help="Seconds between ticks of a symbol.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 42,
) -> None:
    """Fill the database and Redis with **realistic demo history** for the dashboard.

    Ticks from the synthetic market, signals from the configured strategies, orders, fills and
    positions from the paper broker; 1-minute bars rolled up; latest prices, the paper account
    (replacing the one there) and recent trades in Redis. Uses DATABASE_URL and REDIS_URL, or
    the servers of a `tradebot up` running in this directory; keep it running for live data.
    """
    from tradebot.common.connections import connect_redis
    from tradebot.demo import seed_demo

    settings = settings_or_exit()

    async def main():
        redis = connect_redis(settings.redis_url)
        try:
            return await seed_demo(settings, hours, step, seed, redis)
        finally:
            await redis.aclose()

    history = asyncio.run(main())
    assert history.account is not None
    console.print(
        f"Demo history: {history.ticks} ticks, {history.signals} signals, {history.fills} fills over "
        f"{hours:g} h; account equity {history.account.equity:,.2f} (as the dashboard shows it)."
    )
