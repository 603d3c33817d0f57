"""kwok's port-forward command for the test control plane: one stream, piped to a local server.

kwok runs this with the port-forward stream as stdin/stdout; the target is read at connect
time from the file given (`host:port` or `unix:/path`), so tests choose it when they need it.
Only the standard library: kwok starts it with the test interpreter.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path


def connect(target: str) -> socket.socket:
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target.removeprefix("unix:").removeprefix("//"))
        return sock
    host, _, port = target.rpartition(":")
    return socket.create_connection((host, int(port)))


def main(target_file: str) -> None:
    sock = connect(Path(target_file).read_text().strip())

    def inbound() -> None:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=inbound, daemon=True).start()
    while chunk := sock.recv(65536):
        os.write(1, chunk)


if __name__ == "__main__":
    main(sys.argv[1])
