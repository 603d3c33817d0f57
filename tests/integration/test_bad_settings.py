"""A setting no retry can fix stops the service at start with a message naming it."""

from __future__ import annotations

import socket
import subprocess

import pytest

from support.auth import AUTH_TOKEN
from support.services import service_process

pytestmark = pytest.mark.integration


def stopped_output(process: subprocess.Popen) -> str:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running after 60 s, retrying a setting that cannot work:\n{out}{err}")
    assert process.returncode != 0
    return out + err


def test_a_malformed_database_url_stops_storage_naming_it(redis_url):
    process = service_process("storage", {"REDIS_URL": redis_url, "DATABASE_URL": "garbage"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    output = stopped_output(process)
    assert "DATABASE_URL" in output and "garbage" in output, output


def test_a_port_in_use_stops_the_api_naming_the_port(redis_url, database_url):
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "API_PORT": str(port),
            "AUTH_TOKEN": AUTH_TOKEN,
        }
        process = service_process("api", env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        output = stopped_output(process)
    assert str(port) in output and "in use" in output, output
