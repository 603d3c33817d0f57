"""Run services in-process (as asyncio tasks) or as real child processes, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tradebot.common.service import Service, ServiceRuntime
from tradebot.common.settings import Settings


@asynccontextmanager
async def running(*services: Service, settings: Settings) -> AsyncIterator[list[ServiceRuntime]]:
    """Run services in this event loop until the block ends, then stop them gracefully."""
    runtimes = [ServiceRuntime(service, settings) for service in services]
    tasks = [asyncio.create_task(runtime.run()) for runtime in runtimes]
    try:
        yield runtimes
    finally:
        for runtime in runtimes:
            runtime.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 30.0, interval: float = 0.1, what: str = ""
) -> None:
    """Wait until an async condition holds; fail with `what` when it never does."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(interval)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    """The synchronous twin of `eventually`: poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def service_process(name: str, env: dict[str, str], **popen) -> subprocess.Popen:
    """`tradebot service NAME` as a child process, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "tradebot", "service", name],
        env={**os.environ, **env},
        start_new_session=True,
        **popen,
    )


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    return process.wait(timeout=timeout)
