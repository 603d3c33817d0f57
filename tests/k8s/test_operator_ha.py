"""Two operator copies on the real control plane: one Lease, one actor, and a takeover when it dies.

The copies are real processes (`python -m tradebot_operator run`) authenticated as the
chart's ServiceAccount; the leader is killed with SIGKILL, as a node failure would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from k8s.controlplane import ControlPlane, free_port
from k8s.operator_support import (
    SERVICE_ACCOUNT,
    Stacks,
    grant_operator_rbac,
    install_crds,
    wait_for,
)
from tradebot_operator.apply import get
from tradebot_operator.kube import Kube, load_configuration
from tradebot_operator.leader import LeaderElector

pytestmark = pytest.mark.k8s
LEASE = "tradebot-operator"


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    install_crds(api_client)
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane) -> Iterator[Kube]:
    kube = Kube(load_configuration(str(control_plane.admin_kubeconfig)))
    yield kube
    kube.close()


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane, api: client.ApiClient) -> Iterator[str]:
    name = f"ha-{uuid.uuid4().hex[:8]}"
    control_plane.service_account_kubeconfig(name, SERVICE_ACCOUNT, create=True)
    grant_operator_rbac(api, name)
    yield name
    client.CoreV1Api(api).delete_namespace(name)


class Copy:
    """One operator process, as the chart's Deployment runs it."""

    def __init__(
        self, cp: ControlPlane, namespace: str, redis_url: str, identity: str, log_dir: Path
    ) -> None:
        self.identity = identity
        self.port = free_port()
        kubeconfig = cp.service_account_kubeconfig(namespace, SERVICE_ACCOUNT)
        env = {
            **os.environ,
            "TRADEBOT_OPERATOR_IDENTITY": identity,
            "TRADEBOT_OPERATOR_LEASE_DURATION": "4",
            "TRADEBOT_OPERATOR_RENEW_DEADLINE": "3",
            "TRADEBOT_OPERATOR_RETRY_PERIOD": "0.5",
        }
        self.log = (log_dir / f"{identity}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot_operator", "run", "--kubeconfig", str(kubeconfig),
             "-n", namespace, "--redis-url", redis_url, "--health-interval", "1",
             "--health-port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.log.close()
        return code


def gauge(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus' text format."""
    found = re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{name} not in the scrape:\n{text[:2000]}"
    return sum(float(v) for v in found)


def holder(admin: Kube, namespace: str) -> str | None:
    lease = admin.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}")
    return (lease.get("spec") or {}).get("holderIdentity") or None


def test_two_copies_one_actor_and_a_takeover_when_the_leader_is_killed(
    control_plane: ControlPlane, api: client.ApiClient, admin: Kube, namespace: str, redis_server_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    first = Copy(control_plane, namespace, redis_server_url, "copy-a", tmp_path)
    second: Copy | None = None
    try:
        wait_for("copy-a to lead", lambda: (first.health() or {}).get("role") == "leader", timeout=60)
        second = Copy(control_plane, namespace, redis_server_url, "copy-b", tmp_path)
        wait_for("copy-b to stand by", lambda: (second.health() or {}).get("role") == "standby", timeout=60)
        assert holder(admin, namespace) == "copy-a"

        control_plane.create_volumes(2, size="10Gi")
        stacks = Stacks(api, namespace)
        stacks.create("pair", {})
        wait_for("reconciled", lambda: stacks.status("pair").get("observedGeneration") == 1, timeout=60)
        secret = get(admin, "Secret", namespace, "pair-db")
        time.sleep(3)  # two fighting copies rewrote this Secret ~40 times a second
        assert (
            get(admin, "Secret", namespace, "pair-db")["metadata"]["resourceVersion"]
            == secret["metadata"]["resourceVersion"]
        )
        assert gauge(first.metrics(), "tradebot_operator_leader") == 1.0
        assert gauge(second.metrics(), "tradebot_operator_leader") == 0.0
        assert gauge(first.metrics(), "tradebot_operator_reconciles_total") >= 1

        killed_at = time.monotonic()
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to release the Lease
        wait_for("copy-b to take over", lambda: holder(admin, namespace) == "copy-b", timeout=60)
        took_over = time.monotonic() - killed_at
        stacks.patch_spec("pair", {"symbols": ["TSLA"]})
        wait_for(
            "copy-b to reconcile",
            lambda: get(admin, "ConfigMap", namespace, "pair-config")["data"]["SYMBOLS"] == "TSLA",
            timeout=60,
        )
        print(f"takeover after SIGKILL: {took_over:.1f}s (lease duration 4s)")

        assert second.stop(signal.SIGTERM) == 0
        assert holder(admin, namespace) is None  # released on the way out: a successor need not wait
        second = None
        stacks.delete("pair")
    finally:
        for copy in (first, second):
            if copy is not None and copy.proc.poll() is None:
                copy.stop(signal.SIGKILL)


def test_the_lease_agrees_with_the_kubernetes_clients_own_election(
    control_plane: ControlPlane, admin: Kube, namespace: str, redis_server_url: str, tmp_path: Path
) -> None:
    """kubernetes.leaderelection holds the Lease: our copy waits; when it lets the Lease lapse, ours leads."""
    lease_name = f"{LEASE}-interop"
    api_client = config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))
    lock = LeaseLock(lease_name, namespace, "python-client")
    lock.api_instance = client.CoordinationV1Api(api_client)  # the lock's own default is the global config
    stop_leading = {"now": False}

    def lead() -> None:
        while not stop_leading["now"]:
            time.sleep(0.2)
        raise RuntimeError("done leading")  # the library's elector then stops renewing

    election = leaderelection.LeaderElection(
        electionconfig.Config(lock, lease_duration=4, renew_deadline=3, retry_period=1,
                              onstarted_leading=lead, onstopped_leading=lambda: None)
    )  # fmt: skip
    threading.Thread(target=election.run, daemon=True).start()
    wait_for("the library to lead", lambda: _lease_holder(admin, namespace, lease_name) == "python-client")

    ours = Kube(load_configuration(str(control_plane.service_account_kubeconfig(namespace, SERVICE_ACCOUNT))))
    elector = LeaderElector(
        ours, namespace, lease_name, "ours", duration=4, renew_deadline=3, retry_period=0.5
    )
    assert not elector.try_acquire_or_renew()  # held and renewed: we wait
    stop_leading["now"] = True
    wait_for("ours to take the lapsed Lease", elector.try_acquire_or_renew, timeout=30, interval=0.5)
    assert _lease_holder(admin, namespace, lease_name) == "ours"
    elector.leading = True
    elector.release()
    assert _lease_holder(admin, namespace, lease_name) is None
    ours.close()
    api_client.close()


def _lease_holder(admin: Kube, namespace: str, name: str) -> str | None:
    try:
        lease = admin.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    except Exception:
        return None
    return (lease.get("spec") or {}).get("holderIdentity") or None
