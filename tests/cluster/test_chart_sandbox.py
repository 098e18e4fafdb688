"""The chart's own pods on the sandbox node: `helm install --wait` succeeds because the operator, its
OPA sidecar and the router run for real in sandboxes (OPA from the official image's layout, Jesus from
the host's Python and this checkout) and turn Ready by their probes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders.budget import team_budget
from tests.cluster.harness import get, wait_for
from tests.cluster.sandbox_kubelet import (
    PYTHON_IMAGE,
    KubeletThread,
    on_sandbox_node,
    python_image,
    running_kubelet,
    sandbox_images,
)

from jesus.devcluster import ControlPlane, ensure_tool
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.images import ContainerImage
from jesus.devcluster.nodes import sandbox_placement

REPO = Path(__file__).resolve().parents[2]
JESUS_IMAGE = "test.local/jesus:dev"


def jesus_image(directory: Path) -> ContainerImage:
    """What the real image's `jesus` entrypoint does, from this checkout."""
    image = python_image(directory)
    return ContainerImage(
        rootfs=image.rootfs,
        entrypoint=(sys.executable, "-m", "jesus.cli"),
        env=image.env,
        user="65532:65532",
        workdir="/",
        mounts=image.mounts,
    )


@pytest.fixture
def kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[KubeletThread]:
    images = sandbox_images(tmp_path / "images")
    images.add(JESUS_IMAGE, jesus_image(tmp_path / "images"))
    with running_kubelet(control_plane, images, tmp_path / "pods") as thread:
        yield thread


def test_helm_install_waits_for_the_chart_pods_running_in_sandboxes(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread, tmp_path: Path
) -> None:
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    release = f"j{uuid.uuid4().hex[:6]}"
    router_port, opa_port, diagnostic_port, metrics_port = (free_port() for _ in range(4))
    placement = sandbox_placement()
    values = {
        "image": {"repository": "test.local/jesus", "tag": "dev"},
        "operator": {
            "watchNamespaces": [namespace],
            "metricsPort": metrics_port,
            **placement,
        },
        "router": {"replicas": 1, "port": router_port, **placement},
        "opa": {"port": opa_port, "diagnosticPort": diagnostic_port},
    }
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    env = {
        **control_plane.env,
        "HELM_CACHE_HOME": str(tmp_path / "helm"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm"),
    }
    helm = [str(ensure_tool("helm")), f"--kubeconfig={control_plane.kubeconfig}", "-n", namespace]
    install = subprocess.run(
        [
            *helm,
            "install",
            release,
            str(REPO / "charts" / "jesus"),
            "-f",
            str(values_file),
            "--wait",
            "--timeout=240s",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    pods = control_plane.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    logs = "\n".join(
        f"--- {log} ---\n{log.read_text(errors='replace')[-2500:]}"
        for log in sorted(kubelet.workdir.rglob("*.log"))
    )
    try:
        assert install.returncode == 0, f"{install.stderr}\n{pods}\n{logs}"
        for component in ("operator", "router"):
            deployment = get(control_plane, namespace, "deployment", f"{release}-jesus-{component}")
            assert deployment is not None
            available = [c for c in deployment["status"]["conditions"] if c["type"] == "Available"]
            assert available[0]["status"] == "True", component
        # OPA answers on its diagnostic port (the one its readiness probe uses), with the chart's policies.
        with urllib.request.urlopen(f"http://127.0.0.1:{diagnostic_port}/health", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{opa_port}/v1/policies", timeout=5) as response:
            assert json.load(response)["result"], "OPA loaded the chart's policies"
        with urllib.request.urlopen(f"http://127.0.0.1:{router_port}/healthz", timeout=5) as response:
            assert response.status == 200
        # The Service's endpoints list the router pod, which the kubelet reported Ready.
        slices = json.loads(
            control_plane.kubectl(
                "get",
                "endpointslices",
                "-n",
                namespace,
                "-l",
                f"kubernetes.io/service-name={release}-jesus-router",
                "-o",
                "json",
            ).stdout
        )["items"]
        endpoints = [e for s in slices for e in s.get("endpoints") or []]
        assert kubelet.kubelet is not None
        assert [e["addresses"] for e in endpoints] == [[kubelet.kubelet.pod_ip]]
        assert endpoints[0]["conditions"]["ready"] is True
        # A pod on the node reaches the router by its Service's name, as a runner pod does.
        url = f"http://{release}-jesus-router.{namespace}.svc:{router_port}/healthz"
        caller = on_sandbox_node(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "caller"},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "call",
                            "image": PYTHON_IMAGE,
                            "command": [
                                "python",
                                "-c",
                                f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)",
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            }
        )
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(caller))
        called = wait_for(
            lambda: (
                (get(control_plane, namespace, "pod", "caller") or {}).get("status", {}).get("phase")
                in ("Succeeded", "Failed")
                and get(control_plane, namespace, "pod", "caller")
            ),
            timeout=90,
            what="the caller pod to finish",
        )
        assert called["status"]["phase"] == "Succeeded", next(
            kubelet.workdir.rglob("caller/call.log")
        ).read_text()
        # The operator reaches the API server as its ServiceAccount (the in-cluster address and the
        # projected token): it admits an AgentRun-free namespace's Budget by writing its status.
        operator_log = next(kubelet.workdir.rglob("*-operator-*/operator.log"))
        budget = team_budget("team", "platform", "10.00")
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(budget))
        wait_for(
            lambda: (get(control_plane, namespace, "budget", "team") or {}).get("status"),
            timeout=90,
            what="the operator in its sandbox to write the Budget's status",
            describe=lambda: operator_log.read_text(errors="replace")[-3000:],
        )
    finally:
        subprocess.run(
            [*helm, "uninstall", release, "--wait", "--timeout=60s"],
            env=env,
            capture_output=True,
            check=False,
        )
