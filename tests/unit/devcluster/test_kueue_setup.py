"""Kueue in the dev control plane: its configuration, its webhooks pointed at loopback, and the
private /etc that shows it its metrics certificate (`jesus.devcluster.kueue`)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from tests.unit.devcluster.test_devcluster_local import as_etcd, record

from jesus.cli import main
from jesus.devcluster import ControlPlane, kueue
from jesus.devcluster.components import Ports

MANIFESTS = """
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-batch-v1-job}
  failurePolicy: Fail
  name: mjob.kb.io
  rules:
  - apiGroups: [batch]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [jobs]
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}
  failurePolicy: Fail
  name: mpod.kb.io
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-ray-io-v1-rayjob}
  failurePolicy: Fail
  name: mrayjob.kb.io
  rules:
  - apiGroups: [ray.io, batch]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [rayjobs]
  sideEffects: None
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate-kueue-x-k8s-io-v1beta2-workload}
  failurePolicy: Fail
  name: vworkload.kb.io
  rules:
  - apiGroups: [kueue.x-k8s.io]
    apiVersions: [v1beta2]
    operations: [CREATE, UPDATE]
    resources: [workloads]
  sideEffects: None
"""


def test_only_the_webhooks_of_kueues_kinds_and_integrations_are_kept_each_by_url_with_the_dev_ca() -> None:
    mutating, validating = kueue.webhook_configurations(MANIFESTS, "https://127.0.0.1:9443", b"CA")
    assert mutating["metadata"]["name"] == "kueue-mutating-webhook-configuration"
    # A webhook that also covers another group (ray.io) belongs to an integration that is off.
    assert [w["name"] for w in mutating["webhooks"]] == ["mjob.kb.io", "mpod.kb.io"]
    job, pod = mutating["webhooks"]
    # The pod webhook sees only pods that name a LocalQueue, outside the system namespaces: the plane's
    # other pods neither wait on Kueue (it fails closed) nor are gated.
    assert pod["objectSelector"] == {
        "matchExpressions": [{"key": "kueue.x-k8s.io/queue-name", "operator": "Exists"}]
    }
    assert pod["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "kueue-system"]
    assert "objectSelector" not in job
    client = job["clientConfig"]
    assert client == {
        "url": "https://127.0.0.1:9443/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"CA").decode(),
    }
    assert [w["name"] for w in validating["webhooks"]] == ["vworkload.kb.io"]
    assert validating["webhooks"][0]["failurePolicy"] == "Fail"


def test_the_configuration_keeps_kueue_on_loopback_without_its_own_certificates(tmp_path: Path) -> None:
    config = kueue.configuration(
        webhook_port=1, health_port=2, metrics_port=3, visibility_port=4, cert_dir=tmp_path
    )
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"port": 1, "host": "127.0.0.1", "certDir": str(tmp_path)}
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:2"
    assert config["metrics"]["bindAddress"] == "127.0.0.1:3"
    assert config["visibilityServer"] == {"bindAddress": "127.0.0.1", "bindPort": 4}
    assert config["integrations"]["frameworks"] == ["batch/job", "pod", "deployment"]
    assert config["manageJobsWithoutQueueName"] is False
    [outside] = config["managedJobsNamespaceSelector"]["matchExpressions"]
    assert (outside["operator"], outside["values"]) == ("NotIn", ["kube-system", "kueue-system"])
    assert config["leaderElection"] == {"leaderElect": False}


def test_the_conversion_webhook_is_served_by_url() -> None:
    patch = kueue.conversion_patch("https://127.0.0.1:9443", b"CA")
    assert patch["spec"]["conversion"]["webhook"]["clientConfig"]["url"] == "https://127.0.0.1:9443/convert"


def test_the_metrics_certificate_is_mounted_in_a_private_etc(tmp_path: Path) -> None:
    argv = kueue.sandboxed_argv(Path("/bin/kueue"), ["--config=c"], tmp_path)
    assert argv[:4] == ["--bind", "/", "/", "--dev-bind"]
    assert argv[argv.index("--tmpfs") : argv.index("--tmpfs") + 2] == ["--tmpfs", "/etc"]
    mount = argv.index(str(tmp_path))
    assert argv[mount - 1 : mount + 2] == ["--ro-bind", str(tmp_path), kueue.METRICS_CERT_PATH]
    assert argv[-3:] == ["--", "/bin/kueue", "--config=c"]
    # The host's /etc is bound back read-only, entry by entry, so the process sees it as it is.
    assert argv[argv.index("/etc/hosts") - 1 : argv.index("/etc/hosts") + 2] == [
        "--ro-bind-try",
        "/etc/hosts",
        "/etc/hosts",
    ]


def test_up_kueue_over_a_plane_without_it_says_to_restart(
    state: Path, component: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    record(state, as_etcd(component))
    assert main(["dev", "up", "--kueue"]) == 2
    assert "runs without Kueue: run `jesus dev down`, then `jesus dev up --kueue`" in capsys.readouterr().err
    assert component.poll() is None  # the running plane is left alone


def test_the_plane_remembers_that_it_runs_kueue(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path, kueue=True)
    plane.ports = Ports(1, 2, 3, 4, 5, 6, kueue_webhook=7)
    plane._save_state()
    loaded = ControlPlane.load(tmp_path)
    assert loaded is not None and loaded.kueue and loaded.ports == plane.ports
