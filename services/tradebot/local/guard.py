"""The stack's lifetime guard: whatever ends `tradebot up`, its services and embedded servers end too.

`tradebot up` starts this process first, in a session of its own (so neither Ctrl-C nor a
closed terminal reaches it), and tells it on a pipe about each process it starts: a
service's process group, an embedded server's pid with the signal that stops it cleanly.
When the pipe closes — `tradebot up` exited, however: Ctrl-C, an exception, SIGKILL, the
OOM killer — the guard stops whatever registered process is still alive: its stop signal
first, SIGKILL after STOP_GRACE_SECONDS. After a clean stop it finds nothing left to do.

A parent-death signal (PR_SET_PDEATHSIG) is not enough on its own: Redis and PostgreSQL
daemonize, so they are not `tradebot up`'s children and would never receive it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.1


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has ended: its ports and files are released)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass
class Watched:
    """What the guard stops when `tradebot up` is gone: pid -> (stop signal, whether a group)."""

    processes: dict[int, tuple[int, bool]] = field(default_factory=dict)

    def apply(self, line: str) -> None:
        """One instruction: `group PID` | `server PID SIGNAL` | `release PID`."""
        verb, *args = line.split()
        if verb == "group":
            self.processes[int(args[0])] = (signal.SIGTERM, True)
        elif verb == "server":
            self.processes[int(args[0])] = (int(args[1]), False)
        elif verb == "release":
            self.processes.pop(int(args[0]), None)

    def signal_all(self, pids: list[int], kill: bool = False) -> None:
        for pid in pids:
            stop, group = self.processes[pid]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group:
                    os.killpg(pid, signal.SIGKILL if kill else stop)
                else:
                    os.kill(pid, signal.SIGKILL if kill else stop)

    def stop(self, pids: list[int], grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop these processes (their signal, then SIGKILL after `grace`) and wait for them."""
        running = [pid for pid in pids if alive(pid)]
        self.signal_all(running)
        deadline = time.monotonic() + grace
        while (running := [pid for pid in running if alive(pid)]) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self.signal_all(running, kill=True)

    def stop_everything(self) -> None:
        """Services first (they are the servers' clients), then the servers."""
        self.stop([pid for pid, (_, group) in self.processes.items() if group])
        self.stop([pid for pid, (_, group) in self.processes.items() if not group])


def main() -> None:
    watched = Watched()
    for line in sys.stdin:  # until end of file: the write end closed with `tradebot up`
        if line.strip():
            watched.apply(line)
    watched.stop_everything()


class Guard:
    """`tradebot up`'s end of the pipe to its guard process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tradebot.local.guard"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True, bufsize=1,
        )  # fmt: skip

    def _tell(self, *words: object) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):  # a guard killed by hand: `tradebot up` carries on without
            self.process.stdin.write(" ".join(map(str, words)) + "\n")

    def watch_group(self, pid: int) -> None:
        """A service: its process group gets SIGTERM, then SIGKILL."""
        self._tell("group", pid)

    def watch_server(self, pid: int, stop: signal.Signals) -> None:
        """An embedded server (a daemon: not our child), stopped by `stop`."""
        self._tell("server", pid, int(stop))

    def release(self, pid: int) -> None:
        """That process has ended: forget it (its pid may be reused)."""
        self._tell("release", pid)

    def close(self, timeout: float = 2 * STOP_GRACE_SECONDS + 5) -> None:
        """Let the guard stop whatever is left, and wait until it has."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


if __name__ == "__main__":
    main()
