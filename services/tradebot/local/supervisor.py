"""Runs services as child processes, as a container runtime would: prefixes their
output, restarts one that dies (with backoff), and stops all of them on request.

Each child runs in a process group of its own (so Ctrl-C reaches only `tradebot up`,
which stops the children in order) that is registered with the stack's guard (so the
children end even when `tradebot up` is killed). Output whose reader went away (`tradebot
up | head`) is dropped: the stack keeps running without its audience.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TextIO, cast

from rich.console import Console
from rich.text import Text

from tradebot.common.backoff import Backoff
from tradebot.local.guard import Guard

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_green")
STOP_GRACE_SECONDS = 15.0


@dataclass
class Child:
    service_id: str
    colour: str
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0))


class PipeSafeStream(io.TextIOBase):
    """A text stream that, once its reader has gone (a closed pipe), drops what is written."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        self._attempt(lambda: (self.stream.write(text), self.stream.flush()))
        return len(text)

    def flush(self) -> None:
        self._attempt(self.stream.flush)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def _attempt(self, action) -> None:
        if self.reader_gone:
            return
        try:
            action()
        except BrokenPipeError:
            self.reader_gone = True
            # The same file descriptor now leads nowhere, so the interpreter's last flush at exit
            # (and anything else still writing there) finds no broken pipe either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def output_console(stream: TextIO = sys.stderr) -> Console:
    """Where `tradebot up` and its services' lines go: stderr, surviving a reader that leaves."""
    return Console(file=cast(TextIO, PipeSafeStream(stream)))  # a TextIOBase: every method rich uses


class Supervisor:
    def __init__(self, service_ids: list[str], env: dict[str, str], console: Console, guard: Guard) -> None:
        self.children = [Child(sid, COLOURS[i % len(COLOURS)]) for i, sid in enumerate(service_ids)]
        self.env = env
        self.console = console
        self.guard = guard
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
            self.guard.watch_group(child.process.pid)
            await self._relay_output(child)
            code = await child.process.wait()
            self.guard.release(child.process.pid)
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
