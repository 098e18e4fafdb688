"""The operator's world on the test control plane: CRDs, the router and the operator as processes, and
the stand-in container runtime that runs runner pods for real.

Test objects come from `tests.builders`, not from copied YAML.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from jesus.devcluster import ControlPlane
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.runtime import ProcessRuntime
from jesus.kube import KubeClient

REPO = Path(__file__).resolve().parents[2]
JESUS = [sys.executable, "-m", "jesus.cli"]
ADMIN_TOKEN = "test-admin-token"


def apply(plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listing))


def get(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", "-n", namespace, kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 30, what: str, describe: Callable[[], str] = str
) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` (and `describe()`) after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{describe()}")


def install_crds(plane: ControlPlane) -> None:
    plane.kubectl("apply", "-f", str(REPO / "crds"))
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=30s"
        )


def policies_allowing(tool_args: list[str], directory: Path) -> Path:
    """A copy of policies/ whose allow-list also clears the workspace server this test starts."""
    target = directory / "policies"
    shutil.copytree(REPO / "policies", target)
    data_path = target / "data.json"
    data = json.loads(data_path.read_text())
    data["jesus"]["config"]["allowedToolServers"].append({"command": sys.executable, "args": tool_args})
    data_path.write_text(json.dumps(data))
    return target


class Process:
    """A child process with its log in a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


def router_process(
    plane: ControlPlane,
    namespace: str,
    port: int,
    log: Path,
    environment: dict[str, str] | None = None,
    name: str = "router",
) -> Process:
    """`jesus router` watching `namespace` of `plane`, on `port`, with the test admin token."""
    return Process(
        name,
        [*JESUS, "router", "--namespace", namespace, "--port", str(port)],
        {**plane.env, "JESUS_ROUTER_ADMIN_TOKEN": ADMIN_TOKEN, **(environment or {})},
        log,
    )


def http_ready(port: int) -> bool:
    """Whether something on 127.0.0.1:`port` answers GET /healthz with 200."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class RuntimeThread:
    """The stand-in container runtime, on its own event loop in a thread."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane, self.namespace = plane, namespace
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runtime: ProcessRuntime | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        kube = await KubeClient.connect(str(self.plane.kubeconfig))
        self.runtime = ProcessRuntime(kube, self.namespace)
        self._ready.set()
        await self.runtime.run(self._stop)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class OperatorWorld:
    """Router, operator and runtime for one namespace; the router reads it from the cluster."""

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        workdir: Path,
        runner_environment: dict[str, str] | None = None,
        *,
        router_environment: dict[str, str] | None = None,
        operator_environment: dict[str, str] | None = None,
        policies: Path = REPO / "policies",
        operator_args: tuple[str, ...] = (),
        runtime: bool = True,
        router_wrapper: tuple[str, ...] = (),
    ) -> None:
        """runtime: run runner pods for real (ProcessRuntime); without it they stay Running on kwok
        until a test ends them. router_wrapper: a command the router runs under (e.g. a bwrap that
        gives it the sandbox node's /etc/hosts)."""
        self.plane, self.namespace, self.workdir = plane, namespace, workdir
        # Settings for every runner pod ride on its command (`env K=V ...`), as an image's would.
        settings = [f"{key}={value}" for key, value in (runner_environment or {}).items()]
        runner_command = " ".join(
            [*(["env", *settings] if settings else []), sys.executable, "-m jesus.cli runner"]
        )
        self.router_port = free_port()
        self.metrics_port = free_port()
        env = {**plane.env, "JESUS_ROUTER_ADMIN_TOKEN": ADMIN_TOKEN, **(operator_environment or {})}
        # The router reads the namespace's ModelAdapters, RoutePolicies and Secrets from the cluster,
        # as in a real one: what a test applies later is served too.
        self.router = router_process(
            plane, namespace, self.router_port, workdir / "router.log", router_environment
        )
        self.router.command = [*router_wrapper, *self.router.command]
        self.operator = Process(
            "operator",
            [
                *JESUS,
                "operator",
                "--namespace",
                namespace,
                "--router-url",
                f"http://127.0.0.1:{self.router_port}",
                "--runner-command",
                runner_command,
                "--policies",
                str(policies),
                "--resync-seconds",
                "2",
                "--metrics-port",
                str(self.metrics_port),
                *operator_args,
            ],
            env,
            workdir / "operator.log",
        )
        self.runtime = RuntimeThread(plane, namespace)
        self.with_runtime = runtime

    def describe(self) -> str:
        runs = self.plane.kubectl(
            "get", "-n", self.namespace, "agentruns,jobs,pods", "-o", "wide", check=False
        )
        return "\n".join([runs.stdout, self.operator.tail(), self.router.tail(20)])

    @contextmanager
    def running(self) -> Iterator[OperatorWorld]:
        self.router.start()
        try:
            wait_for(self._router_ready, timeout=30, what="the router", describe=self.router.tail)
            if self.with_runtime:
                self.runtime.start()
            self.operator.start()
            yield self
        finally:
            self.operator.stop()
            if self.with_runtime:
                self.runtime.stop()
            self.router.stop()

    def _router_ready(self) -> bool:
        return http_ready(self.router_port)

    def apply(self, *objects: dict[str, Any]) -> None:
        """Apply `objects` in this world's namespace."""
        apply(self.plane, self.namespace, *objects)

    def run_status(self, name: str) -> dict[str, Any]:
        obj = get(self.plane, self.namespace, "agentrun", name)
        return (obj or {}).get("status", {})

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.run_status(name)) and s.get("phase") in phases and s,
            timeout=timeout,
            what=f"AgentRun {name} to reach {'/'.join(phases)}",
            describe=self.describe,
        )


@contextmanager
def operator_world(
    plane: ControlPlane,
    workdir: Path,
    prefix: str,
    objects: list[dict[str, Any]],
    runner_environment: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[OperatorWorld]:
    """A fresh namespace with `objects` applied, the router, operator and runtime running for it
    (runner pods get `runner_environment` on top of their own; `options` go to `OperatorWorld`)."""
    install_crds(plane)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", namespace)
    # Runner pods meet the Pod Security Standards' "restricted" profile, enforced by the API server.
    plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    try:
        apply(plane, namespace, *objects)
        world = OperatorWorld(plane, namespace, workdir, runner_environment, **options)
        with world.running():
            yield world
    finally:
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
