"""The sandbox kubelet on the test control plane: which images it has, and running it in a thread.

A test says which image reference means which root filesystem (`jesus.devcluster.images`), starts
`running_kubelet(plane, images)`, and puts its pods on the sandbox node with `on_sandbox_node(pod)` (or
the chart's `nodeSelector`/`tolerations` values from `nodes.sandbox_placement()`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jesus.devcluster import ControlPlane
from jesus.devcluster.images import ContainerImage, ImageResolver, host_image, opa_image
from jesus.devcluster.kubelet import KubeletSettings, SandboxKubelet
from jesus.devcluster.nodes import sandbox_placement
from jesus.devcluster.toolchain import ensure_tool
from jesus.kube import KubeClient

REPO = Path(__file__).resolve().parents[2]
PYTHON_IMAGE = "test.local/python:3"
OPA_IMAGE_PREFIX = "openpolicyagent/opa:"


def python_image(directory: Path) -> ContainerImage:
    """The host's /usr, its Python and this checkout, with `python` as the entrypoint: Jesus's own code
    in a sandbox before its image is built."""
    return host_image(
        directory,
        entrypoint=(sys.executable,),
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": f"{REPO}/operator:{REPO}/adapters:{REPO}",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        host_paths=(Path(sys.base_prefix), Path(sys.prefix), REPO),
    )


def sandbox_images(directory: Path, opa_tag: str = "1.22.2-static") -> ImageResolver:
    """`PYTHON_IMAGE` and OPA's image under its chart tag."""
    return ImageResolver(
        {
            PYTHON_IMAGE: python_image(directory),
            OPA_IMAGE_PREFIX + opa_tag: opa_image(ensure_tool("opa"), directory),
        }
    )


def on_sandbox_node(pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` with the nodeSelector and toleration that put it on the sandbox node."""
    spec = pod["spec"]
    placement = sandbox_placement()
    spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **placement["nodeSelector"]}
    spec["tolerations"] = [*spec.get("tolerations", []), *placement["tolerations"]]
    return pod


class KubeletThread:
    """The sandbox kubelet on its own event loop in a thread."""

    def __init__(self, plane: ControlPlane, images: ImageResolver, workdir: Path) -> None:
        self.plane, self.images, self.workdir = plane, images, workdir
        self.kubelet: SandboxKubelet | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        kube = await KubeClient.connect(str(self.plane.kubeconfig))
        assert self.plane.ports is not None
        self.kubelet = SandboxKubelet(
            kube,
            self.images,
            api_server=("127.0.0.1", self.plane.ports.apiserver),
            settings=KubeletSettings(),
            workdir=self.workdir,
        )
        self._ready.set()
        await self.kubelet.run(self._stop)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the sandbox kubelet did not start within 30s")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def pod_directory(self, namespace: str, name: str) -> Path:
        """Where the kubelet keeps a pod's volumes, logs and termination messages."""
        return self.workdir / namespace / name

    def inside(self, namespace: str, name: str) -> str:
        """What the kubelet itself holds of a pod (for a failed test's report): each container's
        state, its bwrap process and the sandboxed pid, and whether the pod's task is still alive."""
        workers = list(self.kubelet.workers.values()) if self.kubelet else []
        worker = next((w for w in workers if (w.namespace, w.name) == (namespace, name)), None)
        if worker is None:
            return f"kubelet: no worker for {namespace}/{name}"
        lines = [f"kubelet: {namespace}/{name} started={worker.started} failure={worker.failure}"]
        for container in [*worker.init_containers, *worker.containers]:
            record, process = container.record, container.process
            lines.append(
                f"  {record.name}: state={record.state} reason={record.reason!r} ready={record.ready} "
                f"bwrap={process.pid if process else None} "
                f"returncode={process.returncode if process else None} child_pid={container.child_pid}"
            )
        return "\n".join(lines)


@contextmanager
def running_kubelet(plane: ControlPlane, images: ImageResolver, workdir: Path) -> Iterator[KubeletThread]:
    """The sandbox kubelet serving the sandbox node of `plane` for the duration."""
    thread = KubeletThread(plane, images, workdir)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
