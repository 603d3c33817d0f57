"""`kubectl tradebot`: a stack at a glance, a backup now, every service's logs (as `kubectl cnpg` does).

kubectl runs any `kubectl-tradebot` on PATH as `kubectl tradebot …`, with the user's
kubeconfig and permissions. `status` joins what the operator wrote in the stack's status
with what the stack itself knows — heartbeats and consumer lag from its Redis, positions
and P&L from its API — reached through port-forwards to its pods, like kubectl port-forward.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tradebot.common.heartbeat import ServiceHealth, read_health
from tradebot_operator import GROUP, PLURAL, VERSION
from tradebot_operator.builders.access import AUTH_TOKEN, REDIS_PASSWORD, secret_value
from tradebot_operator.builders.backup import COMPONENT as BACKUP
from tradebot_operator.builders.common import APP_PORTS, REDIS_PORT, child_name
from tradebot_operator.kube import Kube, KubeError, load_configuration

out = Console()
err = Console(stderr=True)
app = typer.Typer(
    name="kubectl tradebot",
    help="TradeBot stacks on Kubernetes: `status`, `backup`, `logs`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
Namespace = Annotated[str | None, typer.Option("--namespace", "-n", help="Default: the context's namespace.")]
Context = Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="The kubeconfig file.")
]
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"


class Cluster:
    """The user's credentials and namespace, from their kubeconfig."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        path = kubeconfig.split(os.pathsep)[0] if kubeconfig else None
        try:
            self.kube = Kube(load_configuration(path or None, context))
            contexts, active = config.list_kube_config_contexts(config_file=path)
        except config.ConfigException as error:
            raise fail(f"no usable kubeconfig: {error}") from None
        chosen = {c["name"]: c for c in contexts}.get(context or active["name"], active)
        self.namespace = namespace or chosen.get("context", {}).get("namespace") or "default"
        self.core = client.CoreV1Api(self.kube.api)

    def stack(self, name: str) -> dict[str, Any]:
        try:
            return self.kube.request(
                "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{name}"
            )
        except KubeError as error:
            if error.status == 404:
                raise fail(
                    f"no TradingStack {name} in namespace {self.namespace} (kubectl get tstack -A)"
                ) from None
            raise fail(f"cannot read TradingStack {name}: {error.message}") from None

    def credentials(self, stack: str) -> dict[str, str]:
        """The stack's generated AUTH_TOKEN and Redis password (its `<stack>-auth` Secret)."""
        name = child_name(stack, "auth")
        try:
            secret = self.kube.request("GET", f"/api/v1/namespaces/{self.namespace}/secrets/{name}")
        except KubeError as error:
            raise fail(f"cannot read the Secret {self.namespace}/{name}: {error.message}") from None
        return {key: secret_value(secret, key) or "" for key in (AUTH_TOKEN, REDIS_PASSWORD)}

    def pods(self, stack: str, component: str | None = None) -> list[Any]:
        selector = f"{INSTANCE}={stack}" + (f",{COMPONENT}={component}" if component else "")
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return sorted(pods, key=lambda p: (p.metadata.labels.get(COMPONENT, ""), p.metadata.name))

    def running_pod(self, stack: str, component: str) -> str:
        for pod in self.pods(stack, component):
            if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
                return str(pod.metadata.name)
        raise LookupError(f"no running {component} pod of {stack}")

    @contextlib.contextmanager
    def forward(self, pod: str, port: int) -> Iterator[int]:
        """A local port forwarded to `port` of `pod` (each connection one API server stream)."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.2)
        stop = threading.Event()

        def pump(source: socket.socket, sink: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while chunk := source.recv(65536):
                    sink.sendall(chunk)
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

        def serve() -> None:
            while not stop.is_set():
                try:
                    local, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                stream = portforward(
                    self.core.connect_get_namespaced_pod_portforward, pod, self.namespace, ports=str(port)
                )
                remote = stream.socket(port)
                remote.setblocking(True)
                for a, b in ((local, remote), (remote, local)):
                    threading.Thread(target=pump, args=(a, b), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        try:
            yield listener.getsockname()[1]
        finally:
            stop.set()
            listener.close()


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]{message}[/]", highlight=False)
    return typer.Exit(1)


# --------------------------------------------------------------------------- status


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return (
        f"{seconds:.0f}s"
        if seconds < 120
        else f"{seconds / 60:.0f}m"
        if seconds < 7200
        else f"{seconds / 3600:.0f}h"
    )


def _lag(health: ServiceHealth | None) -> str:
    counters = (health.heartbeat or {}).get("counters", {}) if health else {}
    lags = {k.removesuffix("_lag_ms"): v for k, v in counters.items() if k.endswith("_lag_ms")}
    pending = {k.removesuffix("_pending"): v for k, v in counters.items() if k.endswith("_pending")}
    return ", ".join(f"{s} {lags[s]:.0f} ms/{pending.get(s, 0):.0f} pending" for s in sorted(lags)) or "-"


def live_details(
    cluster: Cluster, name: str, services: list[str]
) -> tuple[dict[str, ServiceHealth], dict[str, Any]]:
    """Heartbeats (with lag) from the stack's Redis and the account from its API, via port-forwards."""
    import asyncio

    from redis.asyncio import Redis

    credentials = cluster.credentials(name)
    with cluster.forward(cluster.running_pod(name, "redis"), REDIS_PORT) as redis_port:

        async def heartbeats() -> list[ServiceHealth]:
            password = credentials[REDIS_PASSWORD] or None
            redis = Redis(host="127.0.0.1", port=redis_port, password=password, socket_timeout=10)
            try:
                return await read_health(redis, services)
            finally:
                await redis.aclose()

        health = {h.service: h for h in asyncio.run(heartbeats())}
    with cluster.forward(cluster.running_pod(name, "api"), APP_PORTS["api"]) as api_port:
        token = {"Authorization": f"Bearer {credentials[AUTH_TOKEN]}"}
        answer = httpx.get(f"http://127.0.0.1:{api_port}/account", headers=token, timeout=10)
        account = answer.raise_for_status().json()
    return health, account


def _service_rows(entries: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(heartbeat id, label, pods, entry) of each service, then of each replica of a replicated one."""
    for sid, entry in entries.items():
        yield sid, sid, f"{entry.get('readyReplicas', 0)}/{entry.get('replicas', 0)}", entry
        for hid, sub in (entry.get("instances") or {}).items():
            yield hid, f"  {hid}", "shards " + ",".join(map(str, sub.get("shards", []))), sub


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="The TradingStack.")],
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Services, health, heartbeats, consumer lag, positions and P&L of one stack."""
    cluster = Cluster(kubeconfig, context, namespace)
    stack = cluster.stack(name)
    st = stack.get("status") or {}
    entries = st.get("services") or {}
    # A replicated service (strategy) beats once per replica: read each replica's heartbeat.
    services = [*entries, *(hid for entry in entries.values() for hid in entry.get("instances") or {})]
    problem = None
    try:
        health, account = live_details(cluster, name, services)
    except (LookupError, OSError, ApiException, KubeError, httpx.HTTPError) as error:
        health, account, problem = {}, {}, f"{type(error).__name__}: {error}"
    if output == "json":
        data = {
            "status": st,
            "heartbeats": {k: v.as_dict() for k, v in health.items()},
            "account": account,
            "liveError": problem,
        }
        out.print_json(json.dumps(data, default=str))
        return
    spec = stack.get("spec") or {}
    out.print(
        f"[bold]{cluster.namespace}/{name}[/]  phase [bold]{st.get('phase', 'unknown')}[/]  "
        f"ready {st.get('readyServices', '-')}  source {spec.get('dataSource', 'synthetic')}  "
        f"generation {stack['metadata'].get('generation')} (observed {st.get('observedGeneration', '-')})"
    )
    conditions = Table("condition", "status", "reason", "message", title="Conditions", title_justify="left")
    for c in st.get("conditions") or []:
        conditions.add_row(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
    out.print(conditions)
    table = Table(
        "service",
        "pods",
        "state",
        "heartbeat",
        "errors",
        "lag / pending",
        title="Services",
        title_justify="left",
    )
    for sid, label, pods, row in _service_rows(entries):
        live = health.get(sid)
        table.add_row(
            label,
            pods,
            live.state.value if live else row.get("state", "unknown"),
            _age(live.heartbeat_age if live else row.get("heartbeatAge")),
            str(live.error_count if live else row.get("errorCount", "-")),
            _lag(live),
        )
    out.print(table)
    backup = st.get("backup")
    if backup:
        out.print(
            f"Backups: {backup.get('schedule', '')}, last {backup.get('lastJob', 'none')} "
            f"{backup.get('lastResult', '')} (last success {backup.get('lastSuccessfulTime', 'never')})"
        )
    if problem:
        out.print(f"[yellow]live details unavailable: {problem}[/]")
        return
    out.print(
        f"Account: equity {account['equity']:,.2f}  cash {account['cash']:,.2f}  "
        f"P&L {account['total_pnl']:+,.2f} (realized {account['realized_pnl']:+,.2f}, "
        f"unrealized {account['unrealized_pnl']:+,.2f}, "
        f"today {account['day_pnl']:+,.2f})"
    )
    positions = Table(
        "symbol", "quantity", "average", "market", "unrealized P&L", title="Positions", title_justify="left"
    )
    for p in account.get("positions", []):
        positions.add_row(
            p["symbol"], f"{p['quantity']:g}", f"{p['average_price']:.2f}", f"{p['market_price']:.2f}",
            f"{p['unrealized_pnl']:+.2f}",
        )  # fmt: skip
    out.print(positions)


# --------------------------------------------------------------------------- backup


@app.command()
def backup(
    name: Annotated[str, typer.Argument(help="The TradingStack.")],
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the backup to finish.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600,
) -> None:
    """Back a stack's database up now: a Job from its backup CronJob (spec.backup)."""
    cluster = Cluster(kubeconfig, context, namespace)
    cluster.stack(name)
    jobs = f"/apis/batch/v1/namespaces/{cluster.namespace}/jobs"
    try:
        cron = cluster.kube.request(
            "GET", f"/apis/batch/v1/namespaces/{cluster.namespace}/cronjobs/{child_name(name, BACKUP)}"
        )
    except KubeError as error:
        if error.status == 404:
            raise fail(
                f"{name} has no backups: set spec.backup (e.g. `backup: {{}}` for daily ones)"
            ) from None
        raise fail(f"cannot read the backup CronJob: {error.message}") from None
    template, meta = cron["spec"]["jobTemplate"], cron["metadata"]
    job = {  # what `kubectl create job --from=cronjob/…` makes
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{meta['name']}-manual-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}",
            "labels": template["metadata"].get("labels", {}),
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "spec": template["spec"],
    }
    created = cluster.kube.request("POST", jobs, body=job)["metadata"]["name"]
    out.print(f"job/{created} created")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = cluster.kube.request("GET", f"{jobs}/{created}").get("status") or {}
        conditions = {c["type"]: c for c in state.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in conditions:
            out.print(f"backup {created} succeeded")
            return
        if "Failed" in conditions:
            raise fail(f"backup {created} failed: {conditions['Failed'].get('message', '')}")
        time.sleep(1)
    raise fail(f"backup {created} still running after {timeout:.0f}s")


# --------------------------------------------------------------------------- logs


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="The TradingStack.")],
    service: Annotated[
        list[str] | None, typer.Argument(help="Only these components, e.g. strategy api.")
    ] = None,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", help="Lines per pod from the end.")] = None,
    since: Annotated[int | None, typer.Option("--since", help="Only the last N seconds.")] = None,
) -> None:
    """Every pod's log of a stack, each line prefixed with its pod."""
    cluster = Cluster(kubeconfig, context, namespace)
    cluster.stack(name)
    wanted = [s.replace("_", "-") for s in service or []]
    pods = [p for p in cluster.pods(name) if not wanted or p.metadata.labels.get(COMPONENT) in wanted]
    if not pods:
        raise fail(f"no pods of {name}" + (f" for {', '.join(wanted)}" if wanted else ""))
    lock = threading.Lock()

    def stream(pod: Any) -> None:
        container = pod.spec.containers[0].name
        try:
            response: Any = cluster.core.read_namespaced_pod_log(
                pod.metadata.name, cluster.namespace, container=container, follow=follow, tail_lines=tail,
                since_seconds=since, _preload_content=False,
            )  # fmt: skip
            for raw in response.stream():
                for line in raw.decode(errors="replace").splitlines():
                    with lock:
                        out.print(Text.assemble((pod.metadata.name, "cyan"), " ", line), soft_wrap=True)
        except ApiException as error:
            with lock:
                err.print(f"[yellow]{pod.metadata.name}: {error.reason}[/]")

    threads = [threading.Thread(target=stream, args=(p,), daemon=True) for p in pods]
    for t in threads:
        t.start()
    with contextlib.suppress(KeyboardInterrupt):
        for t in threads:
            t.join()


def main() -> None:
    app()
