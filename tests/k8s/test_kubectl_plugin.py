"""`kubectl tradebot status | backup | logs` through kubectl itself, on the real control plane.

kwok runs no containers, so the stack's api and Redis pods are stood in for by the real
thing on this machine: a `tradebot service api` process and the test Redis, reached by
kubectl's own port-forward path (API server -> kwok -> here). Logs come from kwok's log file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from kubernetes import client, config

from k8s.controlplane import ControlPlane, free_port
from k8s.operator_support import (
    SERVICE_ACCOUNT,
    OperatorThread,
    Stacks,
    grant_operator_rbac,
    install_crds,
    operator_config,
    wait_for,
)
from support.auth import AUTH_HEADERS, AUTH_TOKEN
from support.servers import redis_with_args
from tradebot.common.keys import heartbeat_key

pytestmark = pytest.mark.k8s
# Heartbeat ids: the strategy StatefulSet's one replica beats as strategy-0.
SERVICES = ("market_data", "strategy-0", "execution", "storage", "api", "dashboard")


@pytest.fixture(scope="module")
def setup(
    control_plane: ControlPlane,
    redis_server_url: str,
    postgres_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Stacks]]:
    api = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    install_crds(api)
    namespace = f"plug-{uuid.uuid4().hex[:8]}"
    control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT, create=True)
    grant_operator_rbac(api, namespace)
    kubeconfig = control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)
    running = OperatorThread(operator_config(kubeconfig, namespace, redis_server_url)).start()
    try:
        yield namespace, Stacks(api, namespace)
    finally:
        running.stop()
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()


@pytest.fixture(scope="module")
def api_server(
    redis_server_url: str, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """A real `tradebot service api` with demo history: what the stack's api pod would answer."""
    workdir = tmp_path_factory.mktemp("api")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": postgres_server_url, "REDIS_URL": redis_server_url,
           "API_PORT": str(port), "PROBE_PORT": "0", "LOG_FORMAT": "json",
           "AUTH_TOKEN": AUTH_TOKEN}  # fmt: skip
    demo = subprocess.run(
        [sys.executable, "-m", "tradebot", "demo", "--hours", "0.3", "--step", "30"],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    log = (workdir / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tradebot", "service", "api"], env=env, cwd=workdir,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for("the API", lambda: _answers(port), timeout=60)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _answers(port: int) -> bool:
    try:
        return (
            httpx.get(f"http://127.0.0.1:{port}/health", headers=AUTH_HEADERS, timeout=2).status_code == 200
        )
    except httpx.HTTPError:
        return False


def kubectl_tradebot(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl tradebot …`: kubectl finds the plugin on PATH, as it would on a laptop."""
    env = cp.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [cp.kubectl, "tradebot", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_status_shows_health_heartbeats_lag_positions_and_pnl(
    control_plane: ControlPlane, setup: tuple[str, Stacks], api_server: int, redis_server_url: str, tmp_path
) -> None:
    namespace, stacks = setup
    control_plane.create_volumes(2, size="10Gi")
    # The stack's credentials, brought beforehand: the API above runs with this token, and the
    # stack's Redis (forwarded below) wants this password, as the operator renders it.
    password = "redis-password-of-look"
    values = {"AUTH_TOKEN": AUTH_TOKEN, "REDIS_PASSWORD": password}
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    with config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig)) as admin:
        secret = {"metadata": {"name": "look-auth"}, "data": data}
        client.CoreV1Api(admin).create_namespaced_secret(namespace, secret)
    stacks.create("look", {})
    counters = {"ticks_lag_ms": 42, "ticks_pending": 3}
    with redis_with_args(tmp_path / "redis", ["--requirepass", password]) as stack_redis_port:
        # Heartbeats where the operator reads them (the test's Redis) and in the stack's own Redis.
        readers = [
            redis_lib.Redis.from_url(redis_server_url),
            redis_lib.Redis(port=stack_redis_port, password=password),
        ]
        for r in readers:
            for sid in SERVICES:
                beat = {
                    "service": sid,
                    "status": "running",
                    "timestamp": time.time(),
                    "pid": 1,
                    "counters": counters,
                }
                r.set(heartbeat_key(sid), json.dumps(beat), ex=900)
            r.close()
        wait_for("look Ready", lambda: stacks.phase("look") == "Ready", timeout=90)
        control_plane.forward(8000, f"127.0.0.1:{api_server}")
        control_plane.forward(6379, f"127.0.0.1:{stack_redis_port}")
        _check_status(control_plane, namespace, api_server)


def _check_status(control_plane: ControlPlane, namespace: str, api_server: int) -> None:
    res = kubectl_tradebot(control_plane, "status", "look", "-n", namespace)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f"{namespace}/look" in text and "phase Ready" in text and "ready 6/6" in text
    assert "AllServicesHealthy" in text
    assert "ticks 42 ms/3 pending" in text  # consumer lag from the heartbeats in the stack's Redis
    assert "strategy-0" in text and "shards 0,1,2,3,4,5,6,7" in text  # each strategy replica's own row
    account = httpx.get(f"http://127.0.0.1:{api_server}/account", headers=AUTH_HEADERS, timeout=5).json()
    assert f"equity {account['equity']:,.2f}" in text  # P&L from the stack's API
    for position in account["positions"]:
        assert position["symbol"] in text

    as_json = json.loads(
        kubectl_tradebot(control_plane, "status", "look", "-n", namespace, "-o", "json").stdout
    )
    assert as_json["status"]["phase"] == "Ready" and as_json["account"]["equity"] == account["equity"]


def test_status_of_a_missing_stack_says_so(control_plane: ControlPlane, setup: tuple[str, Stacks]) -> None:
    namespace, _ = setup
    res = kubectl_tradebot(control_plane, "status", "nosuch", "-n", namespace)
    assert res.returncode == 1 and f"no TradingStack nosuch in namespace {namespace}" in res.stderr


def test_logs_of_every_pod_or_one_service(control_plane: ControlPlane, setup: tuple[str, Stacks]) -> None:
    namespace, stacks = setup
    control_plane.create_volumes(2, size="10Gi")
    stacks.create("talk", {})
    wait_for("pods", lambda: len(_pods(control_plane, namespace, "talk")) == 8, timeout=90)
    control_plane.write_pod_log('{"event": "service starting", "service": "strategy"}')
    res = kubectl_tradebot(control_plane, "logs", "talk", "strategy", "-n", namespace)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "service starting" in ln]
    assert lines and all(ln.startswith("talk-strategy-") for ln in lines)
    everything = kubectl_tradebot(control_plane, "logs", "talk", "-n", namespace).stdout
    # A Deployment's pods are <name>-<hash>-<suffix>, a StatefulSet's <name>-<ordinal>.
    workload = re.compile(r"-(?:[0-9]+|[a-z0-9]{5,10}-[a-z0-9]{5})$")
    assert {workload.sub("", ln.split()[0]) for ln in everything.splitlines() if ln.strip()} >= {
        "talk-strategy", "talk-api", "talk-execution",
    }  # fmt: skip


def _pods(cp: ControlPlane, namespace: str, stack: str) -> list[dict]:
    status, body = cp.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/instance={stack}"
    )
    return [p for p in body["items"] if p["status"].get("phase") == "Running"] if status == 200 else []


def test_backup_now_runs_the_cronjobs_job_and_the_status_follows(
    control_plane: ControlPlane, setup: tuple[str, Stacks]
) -> None:
    namespace, stacks = setup
    control_plane.create_volumes(3, size="10Gi")
    stacks.create("safe", {"backup": {"schedule": "0 4 * * *", "retention": 5}})
    path = f"/apis/batch/v1/namespaces/{namespace}/cronjobs/safe-backup"
    wait_for("the CronJob", lambda: control_plane.request("GET", path)[0] == 200, timeout=60)
    res = kubectl_tradebot(control_plane, "backup", "safe", "-n", namespace, "--timeout", "60")
    assert res.returncode == 0, res.stderr
    assert "job/safe-backup-manual-" in res.stdout and "succeeded" in res.stdout  # kwok completes Job pods
    backup = wait_for(
        "status.backup",
        lambda: (b := stacks.status("safe").get("backup")) and b.get("lastResult") == "Succeeded" and b,
    )
    assert backup["schedule"] == "0 4 * * *" and backup["lastJob"].startswith("safe-backup-manual-")

    none = kubectl_tradebot(control_plane, "backup", "look", "-n", namespace)
    assert none.returncode == 1 and "has no backups: set spec.backup" in none.stderr
