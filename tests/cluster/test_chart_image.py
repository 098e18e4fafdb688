"""The chart installed as a user installs it, with the image built from this checkout: `helm install`,
then `kubectl apply -f examples/hello.yaml`, and the run is admitted by the installed operator (asking
its OPA sidecar), its runner pod runs from the image and calls the installed router, and it ends
Succeeded with its cost on its Budget. Then `helm upgrade` with a changed value, and `helm uninstall`
leaves nothing of the release behind (CRDs aside, as Helm does).

Every pod runs on the sandbox node: the sandbox kubelet runs it in bubblewrap over the image's root
filesystem (operator, router and runner from `jesus dev image`, OPA from its official image's layout).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.cluster.harness import get, wait_for
from tests.cluster.sandbox_kubelet import KubeletThread, running_kubelet, sandbox_images
from tests.cluster.test_chart import charted_series, render

from jesus.devcluster import ControlPlane, ensure_tool
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.image import BuiltImage, build_image
from jesus.devcluster.images import image_from_oci_layout
from jesus.devcluster.nodes import SANDBOX_NODE, sandbox_placement
from jesus.policy.opa_server import ENGINE_NAME as OPA_ENGINE

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jesus"
HELLO = REPO / "examples" / "hello.yaml"
# examples/hello.yaml: 12 input tokens at 1.00 and 10 output tokens at 2.00 per million.
HELLO_COST_MICROS = 12 * 1 + 10 * 2
HELLO_TEAM = "hello"  # spec.owner.team of examples/hello.yaml's run


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    """The platform image, built once per checkout (cached under ~/.cache/jesus/image)."""
    return build_image()


@pytest.fixture
def kubelet(control_plane: ControlPlane, image: BuiltImage, tmp_path: Path) -> Iterator[KubeletThread]:
    images = sandbox_images(tmp_path / "images")
    images.add(image.ref, image_from_oci_layout(image.layout, image.ref.rsplit(":", 1)[1], image.rootfs))
    with running_kubelet(control_plane, images, tmp_path / "pods") as thread:
        yield thread


@dataclass
class Installed:
    """A release of the chart and how to call helm on it."""

    name: str
    namespace: str
    helm: list[str]
    env: dict[str, str]
    values: dict[str, Any]
    values_file: Path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.helm, *args], capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )


def _values(image: BuiltImage, namespace: str) -> dict[str, Any]:
    repository, tag = image.ref.rsplit(":", 1)
    placement = sandbox_placement()
    return {
        "image": {"repository": repository, "tag": tag},
        "operator": {"watchNamespaces": [namespace], "metricsPort": free_port(), **placement},
        # One replica: the sandbox node's pods share the host's network, one port per pod.
        "router": {"replicas": 1, "port": free_port(), **placement},
        "runner": placement,
        "opa": {"port": free_port(), "diagnosticPort": free_port()},
        # The test applies examples/hello.yaml as the admin, as a GitOps applier would: it may name the
        # example's owner; the run's team must still be the namespace's (labelled by the fixture).
        "access": {"runOwnerPolicy": {"trustedAppliers": {"users": ["jesus-admin"]}}},
    }


def _logs(kubelet: KubeletThread) -> str:
    return "\n".join(
        f"--- {log.relative_to(kubelet.workdir)} ---\n{log.read_text(errors='replace')[-2000:]}"
        for log in sorted(kubelet.workdir.rglob("*.log"))
    )


@pytest.fixture
def installed(
    control_plane: ControlPlane, namespace: str, image: BuiltImage, kubelet: KubeletThread, tmp_path: Path
) -> Iterator[Installed]:
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    control_plane.kubectl("label", "namespace", namespace, f"jesus.dev/team={HELLO_TEAM}")
    values = _values(image, namespace)
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    release = Installed(
        name=f"j{uuid.uuid4().hex[:6]}",
        namespace=namespace,
        helm=[str(ensure_tool("helm")), f"--kubeconfig={control_plane.kubeconfig}", "-n", namespace],
        env={
            **control_plane.env,
            "HELM_CACHE_HOME": str(tmp_path / "helm"),
            "HELM_CONFIG_HOME": str(tmp_path / "helm"),
        },
        values=values,
        values_file=values_file,
    )
    install = release.run(
        "install", release.name, str(CHART), "-f", str(values_file), "--wait", "--timeout=240s"
    )
    assert install.returncode == 0, f"{install.stderr}\n{_logs(kubelet)}"
    try:
        yield release
    finally:
        release.run("uninstall", release.name, "--wait", "--timeout=60s")


def _policy_decisions(metrics_port: int) -> dict[str, float]:
    """The operator's admission decisions by policy engine, from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "jesus_policy_decision_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    engine = sample.labels["engine"]
                    counts[engine] = counts.get(engine, 0.0) + sample.value
    return counts


def _scraped_series(*ports: int) -> set[str]:
    """Every series name the processes on `ports` export on /metrics (histograms' and counters' parts
    included), families that have no samples yet among them."""
    names: set[str] = set()
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            names |= {family.name, *(f"{family.name}{s}" for s in ("_total", "_bucket", "_count", "_sum"))}
            names |= {sample.name for sample in family.samples}
    return names


def _release_objects(control_plane: ControlPlane, release: Installed) -> list[str]:
    """Every object helm labels as the release's, namespaced and cluster-wide, as kind/name."""
    selector = f"app.kubernetes.io/instance={release.name}"
    kinds = (
        "deployments,services,serviceaccounts,secrets,configmaps,networkpolicies,poddisruptionbudgets,"
        "roles,rolebindings,pods,replicasets"
    )
    namespaced = control_plane.kubectl("get", kinds, "-n", release.namespace, "-l", selector, "-o", "name")
    cluster = control_plane.kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name")
    return [line for line in (namespaced.stdout + cluster.stdout).splitlines() if line]


def test_helm_install_with_the_image_runs_hello_to_success_then_upgrades_and_uninstalls_cleanly(
    control_plane: ControlPlane, installed: Installed, kubelet: KubeletThread
) -> None:
    namespace = installed.namespace
    control_plane.kubectl("apply", "-n", namespace, "-f", str(HELLO))

    def finished() -> dict[str, Any] | None:
        run = get(control_plane, namespace, "agentrun", "hello") or {}
        return run if run.get("status", {}).get("phase") in ("Succeeded", "Failed", "Denied") else None

    run = wait_for(finished, timeout=240, what="the hello run to finish", describe=lambda: _logs(kubelet))
    assert run["status"]["phase"] == "Succeeded", f"{run['status']}\n{_logs(kubelet)}"
    assert run["status"]["costMicros"] == HELLO_COST_MICROS
    # The runner ran from the image on the sandbox node and its model call went through the router.
    [runner_pod] = json.loads(
        control_plane.kubectl(
            "get", "pods", "-n", namespace, "-l", "jesus.dev/run=hello", "-o", "json"
        ).stdout
    )["items"]
    assert runner_pod["spec"]["nodeName"] == SANDBOX_NODE
    assert (
        runner_pod["spec"]["containers"][0]["image"]
        == installed.values["image"]["repository"] + ":" + (installed.values["image"]["tag"])
    )
    assert [call["adapter"] for call in run["status"]["calls"]] == ["hello-scripted"]
    budget = wait_for(
        lambda: (
            (b := get(control_plane, namespace, "budget", "hello-budget") or {})
            .get("status", {})
            .get("spentMicros")
            == HELLO_COST_MICROS
            and b
        ),
        timeout=60,
        what="the run's cost on its Budget",
        describe=lambda: json.dumps(
            (get(control_plane, namespace, "budget", "hello-budget") or {}).get("status")
        ),
    )
    assert budget["status"]["reservedMicros"] == 0
    # Admitted by the OPA sidecar, not the embedded engine.
    decisions = _policy_decisions(installed.values["operator"]["metricsPort"])
    assert decisions.get(OPA_ENGINE, 0) >= 1
    assert set(decisions) == {OPA_ENGINE}

    # Every series the chart's rules and dashboards read is exported by the installed operator and router.
    charted = charted_series(render())
    scraped = _scraped_series(installed.values["operator"]["metricsPort"], installed.values["router"]["port"])
    assert charted, "the chart reads series"
    assert charted <= scraped, f"charted but not exported by the installed pods: {sorted(charted - scraped)}"

    # helm upgrade with a changed value: the operator is replaced (Recreate) and serves again.
    installed.values["operator"]["resyncSeconds"] = 7
    installed.values_file.write_text(json.dumps(installed.values))
    upgrade = installed.run(
        "upgrade", installed.name, str(CHART), "-f", str(installed.values_file), "--wait", "--timeout=240s"
    )
    assert upgrade.returncode == 0, f"{upgrade.stderr}\n{_logs(kubelet)}"
    deployment = get(control_plane, namespace, "deployment", f"{installed.name}-jesus-operator")
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--resync-seconds=7" in args
    assert deployment["status"].get("updatedReplicas") == 1
    assert [c["status"] for c in deployment["status"]["conditions"] if c["type"] == "Available"] == ["True"]

    # helm uninstall: nothing of the release is left, its pods included (the CRDs stay, as Helm does).
    uninstall = installed.run("uninstall", installed.name, "--wait", "--timeout=120s")
    assert uninstall.returncode == 0, uninstall.stderr
    left = wait_for(
        lambda: not _release_objects(control_plane, installed) or None,
        timeout=120,
        what="the release's objects to go",
        describe=lambda: "\n".join(_release_objects(control_plane, installed)),
    )
    assert left is True
    assert control_plane.kubectl("get", "crd", "agentruns.jesus.dev", check=False).returncode == 0
