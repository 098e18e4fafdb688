"""The stand-in container runtime of the local cluster: a Running Jesus pod's command runs as a local
process with the pod's environment (Secrets resolved), and its exit code and termination message come
back as the pod's status, as a kubelet reports them."""

from __future__ import annotations

import asyncio
import base64
import copy
import shutil
from typing import Any, cast

from tests.builders.cluster import FakeKube

from jesus.devcluster.runtime import ProcessRuntime
from jesus.kube import JsonObject, KubeClient
from jesus.logic.manifests import LABEL_COMPONENT

NS = "team"


class PodKube(FakeKube):
    """Records status patches and stops the runtime once `expected` pods were reported."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.reported: dict[str, JsonObject] = {}
        self.expected = expected
        self.done = asyncio.Event()

    async def patch_status(self, kind: str, namespace: str, name: str, status: JsonObject) -> JsonObject:
        self.reported[name] = copy.deepcopy(status)
        if len(self.reported) >= self.expected:
            self.done.set()
        return {}


def pod(name: str, script: str, *, env: list[dict[str, Any]] | None = None, jesus: bool = True) -> JsonObject:
    sh = shutil.which("sh")
    assert sh is not None
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {LABEL_COMPONENT: "runner"} if jesus else {}},
        "spec": {
            "containers": [
                {
                    "name": "runner",
                    "image": "jesus:dev",
                    "command": [sh, "-c"],
                    "args": [script],
                    "env": env or [],
                }
            ]
        },
        "status": {"phase": "Running"},
    }


async def run_until_reported(kube: PodKube) -> ProcessRuntime:
    runtime = ProcessRuntime(cast(KubeClient, kube), NS, poll_seconds=0.01)
    await asyncio.wait_for(runtime.run(kube.done), timeout=30)
    return runtime


def terminated(status: JsonObject) -> dict[str, Any]:
    state: dict[str, Any] = status["containerStatuses"][0]["state"]["terminated"]
    return state


async def test_a_pod_runs_with_its_environment_and_reports_its_message() -> None:
    kube = PodKube(expected=1)
    secret_value = base64.b64encode(b"from-the-secret").decode()
    kube.put(
        {"kind": "Secret", "metadata": {"name": "tokens", "namespace": NS}, "data": {"token": secret_value}}
    )
    env = [
        {"name": "PLAIN", "value": "plain"},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "token"}}},
        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "absent"}}},
    ]
    script = 'printf "%s %s [%s]" "$PLAIN" "$SECRET" "${MISSING-unset}" > "$JESUS_TERMINATION_MESSAGE_PATH"'
    kube.put(pod("runner-1", script, env=env))
    kube.put(pod("someone-else", "exit 0", jesus=False))
    runtime = await run_until_reported(kube)
    assert runtime.started == ["runner-1"]
    status = kube.reported["runner-1"]
    assert status["phase"] == "Succeeded"
    assert terminated(status)["exitCode"] == 0 and terminated(status)["reason"] == "Completed"
    assert terminated(status)["message"] == "plain from-the-secret [unset]"
    assert (status["containerStatuses"][0]["name"], status["containerStatuses"][0]["image"]) == (
        "runner",
        "jesus:dev",
    )
    assert "someone-else" not in kube.reported


async def test_a_failing_pod_is_failed_with_its_exit_code() -> None:
    kube = PodKube(expected=1)
    kube.put(pod("runner-2", "exit 3"))
    await run_until_reported(kube)
    status = kube.reported["runner-2"]
    assert status["phase"] == "Failed"
    assert (terminated(status)["exitCode"], terminated(status)["reason"]) == (3, "Error")
    assert "message" not in terminated(status)


async def test_a_command_that_cannot_start_is_exit_code_127_with_the_reason() -> None:
    kube = PodKube(expected=1)
    broken = pod("runner-3", "")
    broken["spec"]["containers"][0]["command"] = ["/nonexistent/runner"]
    kube.put(broken)
    await run_until_reported(kube)
    status = kube.reported["runner-3"]
    assert terminated(status)["exitCode"] == 127
    assert terminated(status)["message"].startswith("the container's command could not start:")
