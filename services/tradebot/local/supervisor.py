"""Runs services as child processes, as a container runtime would: prefixes their
output, restarts one that dies (with backoff), and stops all of them on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from tradebot.common.backoff import Backoff

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_green")
STOP_GRACE_SECONDS = 15.0


@dataclass
class Child:
    service_id: str
    colour: str
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0))


class Supervisor:
    def __init__(self, service_ids: list[str], env: dict[str, str], console: Console) -> None:
        self.children = [Child(sid, COLOURS[i % len(COLOURS)]) for i, sid in enumerate(service_ids)]
        self.env = env
        self.console = console
        self.stopping = asyncio.Event()
        self.width = max(len(sid) for sid in service_ids)

    async def run(self) -> None:
        """Keep every child running until `stop()`; then terminate them gracefully."""
        watchers = [asyncio.create_task(self._keep_running(child)) for child in self.children]
        await self.stopping.wait()
        await asyncio.gather(*(self._terminate(child) for child in self.children))
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    def stop(self) -> None:
        self.stopping.set()

    async def _keep_running(self, child: Child) -> None:
        while not self.stopping.is_set():
            child.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tradebot", "service", child.service_id,
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the children in order
            )  # fmt: skip
            await self._relay_output(child)
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            child.restarts += 1
            delay = child.backoff.next_delay()
            self._say(child, f"exited with code {code}; restarting in {delay:.0f}s", "bold red")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _relay_output(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        async for raw in child.process.stdout:
            self._say(child, raw.decode(errors="replace").rstrip())

    def _say(self, child: Child, line: str, style: str = "") -> None:
        prefix = Text(f"{child.service_id:>{self.width}} │ ", style=child.colour)
        self.console.print(prefix + Text(line, style=style), soft_wrap=True, highlight=False)

    async def _terminate(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            self._say(child, "did not stop in time; killing it", "bold red")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
