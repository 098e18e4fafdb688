"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok simulating the nodes (two CPU nodes and a GPU node); with `oidc=True` also an
OIDC provider (ORY Hydra and our login app, `oidc.py`) whose ID tokens the API server accepts; with
`kueue=True` also Kueue's controller manager, its CRDs and webhooks (`kueue.py`).

Every process writes its log into the state directory. `state.json` there records the processes and
ports, so another process (`jesus dev down`) can find and stop them. Readiness waits watch every
started process: a component that exits is reported with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import httpx

from jesus.devcluster import components, kueue, nodes, oidc, pki, processes, toolchain
from jesus.devcluster.components import Ports
from jesus.devcluster.oidc import DEV_USERS, DevUser
from jesus.devcluster.processes import ProcessRecord

Progress = Callable[[str], None]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

STARTUP_TIMEOUT_SECONDS = 60.0


class ControlPlaneError(Exception):
    """The control plane could not be started or reached; the message says what to do."""


class ComponentCrashedError(ControlPlaneError):
    """A component exited; the message carries the tail of its log."""


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


class ControlPlane:
    """One local control plane rooted at `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        die_with_parent: bool = False,
        oidc: bool = False,
        oidc_users: tuple[DevUser, ...] = DEV_USERS,
        kueue: bool = False,
        audit: bool = True,
    ) -> None:
        self.state_dir = state_dir
        self.audit = audit  # the API server's audit log (off only to measure what it costs)
        self.die_with_parent = die_with_parent
        self.oidc = oidc
        self.kueue = kueue
        self.oidc_users = oidc_users  # the OIDC provider's people (`oidc.DEV_USERS` unless a test says)
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
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event a line (policy: `audit-policy.yaml`)."""
        return self.state_dir / components.AUDIT_LOG

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def oidc_settings(self) -> oidc.OidcSettings:
        """Where the OIDC provider serves; ControlPlaneError when this plane runs without one."""
        settings = oidc.OidcSettings.load(self.state_dir) if self.oidc else None
        if settings is None:
            raise ControlPlaneError(
                f"the control plane in {self.state_dir} runs without OIDC: "
                "`jesus dev down`, then `jesus dev up --oidc`"
            )
        return settings

    def login(self, user: str, *, client_id: str = oidc.CLIENT_ID) -> str:
        """An ID token for the dev user `user`, from Hydra through our login app (the dev password)."""
        settings = self.oidc_settings
        users = oidc.read_users(Path(settings.users_file))
        if user not in users:
            raise ControlPlaneError(
                f"no dev user {user!r} in {settings.users_file}; the users are: {', '.join(sorted(users))}"
            )
        try:
            return oidc.obtain_id_token(settings, user, str(users[user]["password"]), client_id=client_id)
        except (oidc.OidcError, OSError, httpx.HTTPError) as exc:
            raise ControlPlaneError(f"logging {user} in through {settings.issuer} failed: {exc}") from exc

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
        state = {
            "ports": asdict(self.ports),
            "oidc": self.oidc,
            "kueue": self.kueue,
            "processes": [asdict(p) for p in self.processes],
        }
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
        plane.oidc = bool(state.get("oidc", False))
        plane.kueue = bool(state.get("kueue", False))
        plane.processes = [ProcessRecord(**record) for record in state["processes"]]
        return plane

    def running(self) -> list[ProcessRecord]:
        """The recorded components that are still alive."""
        return [p for p in self.processes if processes.pid_runs(p.pid, p.binary)]

    def crashed(self) -> list[ProcessRecord]:
        """The recorded components that are gone."""
        return [p for p in self.processes if not processes.pid_runs(p.pid, p.binary)]

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
            *(("hydra",) if self.oidc else ()),
            *(("kueue",) if self.kueue else ()),
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
            **(
                {"oidc_public": free_port(), "oidc_admin": free_port(), "oidc_login": free_port()}
                if self.oidc
                else {}
            ),
            **(
                {
                    "kueue_webhook": free_port(),
                    "kueue_health": free_port(),
                    "kueue_metrics": free_port(),
                    "kueue_visibility": free_port(),
                }
                if self.kueue
                else {}
            ),
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
        for client in ("admin", "kube-controller-manager", "kube-scheduler", "kwok", "kueue"):
            path = self.kubeconfig if client == "admin" else self.state_dir / f"{client}.kubeconfig"
            components.write_kubeconfig(path, self.server, self.pki_dir, client)

        progress("Starting etcd...")
        self._spawn("etcd", components.etcd_args(self.ports_, self.state_dir))
        self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{self.ports_.etcd_client}/health"))

        authentication_config = self._start_oidc(progress) if self.oidc else None

        progress("Starting kube-apiserver...")
        self._spawn(
            "kube-apiserver",
            components.apiserver_args(
                self.ports_, self.pki_dir, self.state_dir, authentication_config, audit=self.audit
            ),
        )
        self._wait("kube-apiserver", lambda: self._api_ok("/readyz"))

        progress("Starting kube-controller-manager, kube-scheduler and kwok...")
        self._spawn(
            "kube-controller-manager",
            components.controller_manager_args(self.ports_, self.state_dir, self.pki_dir),
        )
        self._spawn("kube-scheduler", components.scheduler_args(self.ports_, self.state_dir))
        self._spawn("kwok", components.kwok_args(self.ports_, self.state_dir))
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
        if self.kueue:
            self._start_kueue(progress)

    def _start_kueue(self, progress: Progress) -> None:
        """Kueue's CRDs from its module, its controller manager on loopback, then its webhooks by URL."""
        p, directory = self.ports_, self.state_dir / "kueue"
        certs = directory / "certs"
        certs.mkdir(parents=True)
        # (kueue.crt is its client certificate.)
        pki.issue_serving_cert(self.pki_dir, "kueue-serving", "kueue-webhook")
        # controller-runtime's webhook server and Kueue's metrics server read tls.crt and tls.key.
        shutil.copy(self.pki_dir / "kueue-serving.crt", certs / "tls.crt")
        shutil.copy(self.pki_dir / "kueue-serving.key", certs / "tls.key")
        module = kueue.module_dir()
        progress(f"Installing Kueue's CRDs from {module}...")
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            *(f"--filename={path}" for path in kueue.crd_files(module)),
        )
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.kubectl("create", "namespace", kueue.NAMESPACE)
        config = directory / "config.yaml"
        config.write_text(
            json.dumps(
                kueue.configuration(
                    webhook_port=p.kueue_webhook,
                    health_port=p.kueue_health,
                    metrics_port=p.kueue_metrics,
                    visibility_port=p.kueue_visibility,
                    cert_dir=certs,
                ),
                indent=2,
            )
            + "\n"
        )  # JSON is YAML
        progress("Starting Kueue's controller manager...")
        own = kueue.args(config, self.state_dir / "kueue.kubeconfig")
        self._spawn(
            "kueue",
            kueue.sandboxed_argv(self.binary("kueue"), own, certs),
            binary=kueue.bwrap(),
        )
        self._wait("kueue", lambda: self._http_ok(f"http://127.0.0.1:{p.kueue_health}/readyz"))
        base_url, ca_bundle = f"https://127.0.0.1:{p.kueue_webhook}", (self.pki_dir / "ca.crt").read_bytes()
        manifests = (module / "config" / "components" / "webhook" / "manifests.yaml").read_text()
        webhooks = kueue.webhook_configurations(manifests, base_url, ca_bundle)
        listing = {"apiVersion": "v1", "kind": "List", "items": webhooks}
        self.kubectl("apply", "-f", "-", input=json.dumps(listing))
        patch = json.dumps(kueue.conversion_patch(base_url, ca_bundle))
        for plural in kueue.CONVERSION_CRDS:
            self.kubectl("patch", "crd", f"{plural}.kueue.x-k8s.io", "--type=merge", f"--patch={patch}")

    def start_oidc_provider(self, progress: Progress = lambda _: None) -> oidc.OidcSettings:
        """Only an OIDC provider, with a CA of its own and no cluster: another issuer, e.g. the one a
        test shows the API server refusing. `stop()` stops it."""
        self.binary("hydra")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.oidc = True
        self.ports = Ports(0, 0, 0, 0, 0, 0, free_port(), free_port(), free_port())
        try:
            pki.generate_pki(self.pki_dir)
            self._start_oidc(progress)
        except BaseException:
            self.stop()
            raise
        return self.oidc_settings

    def _start_oidc(self, progress: Progress) -> Path:
        """Hydra and the login app, the kubectl client registered; the API server's authentication
        configuration for Hydra's ID tokens, written (its path)."""
        p, directory = self.ports_, self.state_dir / "oidc"
        directory.mkdir()
        for stem in ("hydra", "oidc-login"):
            pki.issue_serving_cert(self.pki_dir, stem, stem)
        ca_file = str(self.pki_dir / "ca.crt")
        login_url, admin_url = f"https://127.0.0.1:{p.oidc_login}", f"https://127.0.0.1:{p.oidc_admin}"
        users_file = directory / "users.json"
        oidc.write_users(users_file, self.oidc_users)
        config = directory / "hydra.yaml"
        hydra_config = oidc.hydra_config(
            public_port=p.oidc_public,
            admin_port=p.oidc_admin,
            login_url=login_url,
            cert=self.pki_dir / "hydra.crt",
            key=self.pki_dir / "hydra.key",
            system_secret=secrets.token_urlsafe(32),
        )
        config.touch(mode=0o600)
        config.write_text(json.dumps(hydra_config, indent=2) + "\n")  # JSON is YAML

        progress("Starting the OIDC provider (Hydra) and its login app...")
        self._spawn("hydra", oidc.hydra_args(config))
        login_args = {
            "users": users_file,
            "admin": admin_url,
            "ca": ca_file,
            "cert": self.pki_dir / "oidc-login.crt",
            "key": self.pki_dir / "oidc-login.key",
            "port": p.oidc_login,
        }
        self._spawn(
            "oidc-login",
            ["-m", "jesus.devcluster.oidc_login", *(f"--{k}={v}" for k, v in login_args.items())],
            binary=Path(sys.executable),
        )
        tls = ssl.create_default_context(cafile=ca_file)
        self._wait("hydra", lambda: self._http_ok(f"{admin_url}/health/ready", context=tls))
        self._wait("oidc-login", lambda: self._http_ok(f"{login_url}/healthz", context=tls))
        settings = oidc.OidcSettings(
            issuer=oidc.discovered_issuer(f"https://127.0.0.1:{p.oidc_public}", ca_file),
            admin=admin_url,
            login=login_url,
            ca_file=ca_file,
            users_file=str(users_file),
        )
        oidc.register_client(settings, oidc.kubectl_client())
        settings.save(self.state_dir)
        path = directory / "authentication-config.yaml"
        path.write_text(json.dumps(oidc.authentication_config(settings), indent=2) + "\n")
        return path

    @property
    def ports_(self) -> Ports:
        assert self.ports is not None, "the control plane has not been started"
        return self.ports

    def _spawn(self, name: str, args: Sequence[str], *, binary: Path | None = None) -> None:
        binary = binary or self.binary(name)
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
                preexec_fn=processes.die_with_parent if self.die_with_parent else None,
            )
        self._popen[name] = process
        self.processes.append(ProcessRecord(name, process.pid, str(binary), str(log_path)))
        self._save_state()

    def check_alive(self) -> None:
        """Raise ComponentCrashedError, with its log, for the first recorded component that has exited."""
        for record in self.processes:
            popen = self._popen.get(record.name)
            exited = popen.poll() is not None if popen else not processes.pid_runs(record.pid, record.binary)
            if exited:
                code = f" with code {popen.returncode}" if popen else ""
                tail = processes.log_tail(Path(record.log))
                raise ComponentCrashedError(
                    f"{record.name} exited{code}; last lines of {record.log}:\n{tail}"
                )

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.1)
        log = self.state_dir / f"{name}.log"
        tail = processes.log_tail(log)
        raise ControlPlaneError(
            f"{name} did not become ready within {timeout:.0f}s; last lines of {log}:\n{tail}"
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
            # The plane's own components' addresses, built here: never a URL anyone else gives.
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # nosec B310
                status: int = response.status
                return 200 <= status < 300
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _api_ok(self, path: str) -> bool:
        return self._http_ok(self.server + path, context=self._ssl_context())

    def api_get(self, path: str) -> Any:
        """GET `path` from the API server as the admin; the decoded JSON."""
        # The plane's own https API server, not a URL anyone else gives.
        url, context = self.server + path, self._ssl_context()
        with urllib.request.urlopen(url, timeout=10, context=context) as response:  # nosec B310
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
                processes.terminate_popen(popen)
            elif processes.pid_runs(record.pid, record.binary):
                processes.terminate_pid(record.pid)
        self.processes = []
        self._popen = {}
        with contextlib.suppress(OSError):
            self.state_file.unlink()
