"""With OTEL_METRICS_EXPORTER=prometheus every service serves its metrics (OpenTelemetry's exporter)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from k8s.controlplane import free_port
from support.services import wait_for

pytestmark = pytest.mark.integration


def scrape(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.HTTPError:
        return None
    text = response.text
    return text if "tradebot_service_events" in text else None


def test_a_service_process_serves_its_metrics(redis_server_url: str, tmp_path) -> None:
    port = free_port()
    env = {
        **os.environ, "REDIS_URL": redis_server_url, "PROBE_PORT": "0", "TICKS_PER_SECOND": "200",
        "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
    }  # fmt: skip
    command = [sys.executable, "-m", "tradebot", "service", "market_data"]
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        text = wait_for("/metrics with the service's events", lambda: scrape(port), timeout=60)
        assert 'counter="ticks_published"' in text and 'service="market_data"' in text
        assert 'service_name="tradebot-market_data"' in text  # target_info: which process this is
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""


def test_a_bad_exporter_port_stops_the_service_with_its_name(redis_server_url: str, tmp_path) -> None:
    env = {**os.environ, "REDIS_URL": redis_server_url, "OTEL_METRICS_EXPORTER": "prometheus",
           "OTEL_EXPORTER_PROMETHEUS_PORT": "lots"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "tradebot", "service", "strategy"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "OTEL_EXPORTER_PROMETHEUS_PORT='lots' is invalid" in result.stderr
