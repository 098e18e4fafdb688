"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok simulating the nodes (two CPU nodes and a GPU node).

Every process writes its log into the state directory. `state.json` there records the processes and
ports, so another process (`jesus dev down`) can find and stop them. Readiness waits watch every
started process: a component that exits is reported with the tail of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from jesus.devcluster import nodes, pki, toolchain

Progress = Callable[[str], None]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# The controllers the platform relies on, by their kube-controller-manager names.
CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


class ControlPlaneError(Exception):
    """The control plane could not be started or reached; the message says what to do."""


class ComponentCrashedError(ControlPlaneError):
    """A component exited; the message carries the tail of its log."""


@dataclass
class ProcessRecord:
    """One started component, as recorded in state.json."""

    name: str
    pid: int
    binary: str
    log: str


@dataclass
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM when the process that started us dies, so a killed
    # test session leaves no control plane behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pid_runs(pid: int, binary: str) -> bool:
    """Whether `pid` is alive and still runs `binary` (not a recycled pid)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return cmdline == binary


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


def _write_kubeconfig(path: Path, server: str, pki_dir: Path, client: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "jesus-dev",
                "cluster": {"server": server, "certificate-authority": str(pki_dir / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate": str(pki_dir / f"{client}.crt"),
                    "client-key": str(pki_dir / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": "jesus-dev", "context": {"cluster": "jesus-dev", "user": client}}],
        "current-context": "jesus-dev",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


class ControlPlane:
    """One local control plane rooted at `state_dir`."""

    def __init__(self, state_dir: Path, *, die_with_parent: bool = False) -> None:
        self.state_dir = state_dir
        self.die_with_parent = die_with_parent
        self.ports: Ports | None = None
        self.processes: list[ProcessRecord] = []
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self._binaries: dict[str, Path] = {}

    # -- paths -----------------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in system:masters)."""
        return self.state_dir / "admin.kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def server(self) -> str:
        assert self.ports is not None, "the control plane has not been started"
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def env(self) -> dict[str, str]:
        """The environment for a subprocess that should talk to this control plane."""
        kubectl_dir = str(self.binary("kubectl").parent)
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": kubectl_dir + os.pathsep + os.environ.get("PATH", ""),
        }

    def binary(self, name: str) -> Path:
        """The cached binary `name`, building its tool the first time."""
        if name not in self._binaries:
            self._binaries[name] = toolchain.ensure_tool(name)
        return self._binaries[name]

    # -- state -----------------------------------------------------------------------------------

    def _save_state(self) -> None:
        assert self.ports is not None
        state = {"ports": asdict(self.ports), "processes": [asdict(p) for p in self.processes]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, state_dir: Path) -> ControlPlane | None:
        """The control plane recorded in `state_dir`, or None when there is none."""
        plane = cls(state_dir)
        try:
            state = json.loads(plane.state_file.read_text())
        except (OSError, ValueError):
            return None
        plane.ports = Ports(**state["ports"])
        plane.processes = [ProcessRecord(**record) for record in state["processes"]]
        return plane

    def running(self) -> list[ProcessRecord]:
        """The recorded components that are still alive."""
        return [p for p in self.processes if _pid_runs(p.pid, p.binary)]

    def crashed(self) -> list[ProcessRecord]:
        """The recorded components that are gone."""
        return [p for p in self.processes if not _pid_runs(p.pid, p.binary)]

    # -- start -----------------------------------------------------------------------------------

    def start(self, *, apiserver_port: int | None = None, progress: Progress = lambda _: None) -> None:
        """Build what is missing, then start every component and wait until the cluster is usable.

        On any failure, whatever was started is stopped again before the error propagates.
        """
        for name in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "kubectl",
        ):
            self.binary(name)
        if apiserver_port is not None and port_in_use(apiserver_port):
            raise ControlPlaneError(
                f"port {apiserver_port} on 127.0.0.1 is in use by another process: stop it, "
                "or choose another port with --port"
            )
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.ports = Ports(
            etcd_client=free_port(),
            etcd_peer=free_port(),
            apiserver=apiserver_port or free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
            kwok=free_port(),
        )
        started = time.monotonic()
        try:
            self._start_all(progress)
        except BaseException:
            self.stop()
            raise
        progress(f"Started control plane server={self.server} seconds={time.monotonic() - started:.1f}")

    def _start_all(self, progress: Progress) -> None:
        assert self.ports is not None
        pki.generate_pki(self.pki_dir)
        for client in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            path = self.kubeconfig if client == "admin" else self.state_dir / f"{client}.kubeconfig"
            _write_kubeconfig(path, self.server, self.pki_dir, client)

        progress("Starting etcd...")
        self._spawn("etcd", self._etcd_args())
        self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{self.ports_.etcd_client}/health"))

        progress("Starting kube-apiserver...")
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"))

        progress("Starting kube-controller-manager, kube-scheduler and kwok...")
        self._spawn("kube-controller-manager", self._controller_manager_args())
        self._spawn("kube-scheduler", self._scheduler_args())
        self._spawn("kwok", self._kwok_args())
        self._create_nodes()
        progress("Waiting for the nodes and the default service account...")
        self._wait("kwok", self._nodes_ready)
        self._wait(
            "kube-controller-manager",
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
        )
        self._wait(
            "kube-scheduler",
            lambda: self._http_ok(f"https://127.0.0.1:{self.ports_.scheduler}/healthz", verify=False),
        )

    @property
    def ports_(self) -> Ports:
        assert self.ports is not None, "the control plane has not been started"
        return self.ports

    def _etcd_args(self) -> list[str]:
        p = self.ports_
        client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        return [
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # A throwaway cluster: skipping fsync makes it several times faster and loses nothing we keep.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        p, d = self.ports_, self.pki_dir
        return [
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p.apiserver}",
            f"--cert-dir={d}",
            f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
        ]

    def _component_args(self, client: str, port: int) -> list[str]:
        kubeconfig = self.state_dir / f"{client}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            *self._component_args("kube-controller-manager", self.ports_.controller_manager),
            f"--controllers={','.join(CONTROLLERS)}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
            f"--root-ca-file={self.pki_dir / 'ca.crt'}",
            "--cluster-name=jesus-dev",
        ]

    def _scheduler_args(self) -> list[str]:
        return self._component_args("kube-scheduler", self.ports_.scheduler)

    def _kwok_args(self) -> list[str]:
        stages = self.state_dir / "kwok-stages.yaml"
        stages.write_text(resources.files("jesus.devcluster").joinpath("kwok-stages.yaml").read_text())
        return [
            f"--kubeconfig={self.state_dir / 'kwok.kubeconfig'}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={nodes.KWOK_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.96.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self.ports_.kwok}",
        ]

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        binary = self.binary(name)
        log_path = self.state_dir / f"{name}.log"
        log: IO[bytes]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self._popen[name] = process
        self.processes.append(ProcessRecord(name, process.pid, str(binary), str(log_path)))
        self._save_state()

    def check_alive(self) -> None:
        """Raise ComponentCrashedError, with its log, for the first recorded component that has exited."""
        for record in self.processes:
            popen = self._popen.get(record.name)
            exited = popen.poll() is not None if popen else not _pid_runs(record.pid, record.binary)
            if exited:
                code = f" with code {popen.returncode}" if popen else ""
                raise ComponentCrashedError(
                    f"{record.name} exited{code}; last lines of {record.log}:\n{_log_tail(Path(record.log))}"
                )

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.1)
        log = self.state_dir / f"{name}.log"
        raise ControlPlaneError(
            f"{name} did not become ready within {timeout:.0f}s; last lines of {log}:\n{_log_tail(log)}"
        )

    # -- talking to the API server ----------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return context

    @staticmethod
    def _http_ok(url: str, *, verify: bool = True, context: ssl.SSLContext | None = None) -> bool:
        if context is None and not verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                status: int = response.status
                return 200 <= status < 300
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _api_ok(self, path: str) -> bool:
        return self._http_ok(self.server + path, context=self._ssl_context())

    def api_get(self, path: str) -> Any:
        """GET `path` from the API server as the admin; the decoded JSON."""
        with urllib.request.urlopen(self.server + path, timeout=10, context=self._ssl_context()) as response:
            return json.load(response)

    def _create_nodes(self) -> None:
        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [nodes.build_node(n) for n in nodes.DEFAULT_NODES],
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifests))

    def _nodes_ready(self) -> bool:
        """Every simulated node is Ready and the node lifecycle controller has lifted its not-ready taint."""
        try:
            items = self.api_get("/api/v1/nodes")["items"]
        except (urllib.error.URLError, OSError, ValueError):
            return False
        ready = {
            item["metadata"]["name"]
            for item in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
            and not any(t["key"] == "node.kubernetes.io/not-ready" for t in item["spec"].get("taints", []))
        }
        return {n.name for n in nodes.DEFAULT_NODES} <= ready

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl against this control plane as the admin."""
        result = subprocess.run(
            [str(self.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    # -- stop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every component (newest first): SIGTERM, then SIGKILL after a grace period."""
        for record in reversed(self.processes):
            popen = self._popen.get(record.name)
            if popen is not None:
                _terminate_popen(popen)
            elif _pid_runs(record.pid, record.binary):
                _terminate_pid(record.pid)
        self.processes = []
        self._popen = {}
        with contextlib.suppress(OSError):
            self.state_file.unlink()


def _terminate_popen(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _terminate_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.05)
