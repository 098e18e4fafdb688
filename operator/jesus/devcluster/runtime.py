"""A stand-in for the container runtime on kwok's simulated nodes, for Jesus's own pods.

kwok marks scheduled pods Running but runs nothing. For pods labelled `jesus.dev/component` (the
runner), this runtime runs the pod's own command with the pod's own environment (Secret references
resolved) as a local process, then reports the exit code and the termination message as the pod's
outcome, as a kubelet would. The production path Job -> pod -> runner -> router -> operator is then the
path the tests exercise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from jesus.devcluster.nodes import SANDBOX_NODE
from jesus.kube import JsonObject, KubeClient
from jesus.logic.clock import format_time, system_clock
from jesus.logic.manifests import LABEL_COMPONENT

logger = logging.getLogger(__name__)


def _now() -> str:
    return format_time(system_clock())


class ProcessRuntime:
    """Runs the Running pods of Jesus components in `namespace` as local processes."""

    def __init__(
        self, kube: KubeClient, namespace: str, *, poll_seconds: float = 0.2, max_processes: int = 4
    ) -> None:
        self.kube = kube
        # A node runs only what fits on it: bound the processes so a hundred pods do not start at once.
        self._slots = asyncio.Semaphore(max_processes)
        self.namespace = namespace
        self.poll_seconds = poll_seconds
        self.started: list[str] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="jesus-runtime-"))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll for pods to run until `stop` is set; wait for the processes started."""
        while not stop.is_set():
            pods = await self.kube.list("Pod", self.namespace)
            for pod in pods:
                name = pod["metadata"]["name"]
                labels = pod["metadata"].get("labels", {})
                # The sandbox node's pods are the sandbox kubelet's (jesus.devcluster.kubelet).
                if (
                    LABEL_COMPONENT in labels
                    and pod["spec"].get("nodeName") != SANDBOX_NODE
                    and pod["status"].get("phase") == "Running"
                    and name not in self._tasks
                ):
                    self.started.append(name)
                    self._tasks[name] = asyncio.create_task(self._execute(pod))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _env(self, pod: JsonObject, container: JsonObject, termination: Path) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
        }
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = await self.kube.get("Secret", pod["metadata"]["namespace"], ref["name"])
                data = (secret or {}).get("data", {})
                if ref["key"] in data:
                    env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
        # Volumes are not mounted here: the paths the pod would write to become local directories.
        env["JESUS_TERMINATION_MESSAGE_PATH"] = str(termination)
        env["JESUS_ARTIFACT_DIR"] = str(termination.parent / "artifacts")
        return env

    async def _execute(self, pod: JsonObject) -> None:
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        termination = directory / "termination-log"
        started = _now()
        async with self._slots:
            code = await self._spawn(pod, container, directory, termination)
        message = termination.read_text()[:4096] if termination.exists() else ""
        logger.info("Ran pod pod=%s/%s exit_code=%d", self.namespace, name, code)
        await self._report(pod, code, message, started)

    async def _spawn(self, pod: JsonObject, container: JsonObject, directory: Path, termination: Path) -> int:
        process: asyncio.subprocess.Process | None = None
        with (directory / "output.log").open("wb") as log:
            try:
                env = await self._env(pod, container, termination)
                process = await asyncio.create_subprocess_exec(
                    *container["command"],
                    *container.get("args", []),
                    env=env,
                    cwd=directory,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
                return await process.wait()
            except OSError as exc:
                termination.write_text(f"the container's command could not start: {exc}")  # noqa: ASYNC240 - a few bytes, local
                return 127
            finally:
                # Stopped (cancelled) while the process runs: a node going away kills its containers.
                if process is not None and process.returncode is None:
                    process.kill()
                    await asyncio.shield(process.wait())

    async def _report(self, pod: JsonObject, code: int, message: str, started: str) -> None:
        container = pod["spec"]["containers"][0]
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": _now(),
        }
        if message:
            terminated["message"] = message
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"terminated": terminated},
                }
            ],
        }
        await self.kube.patch_status("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], status)
