"""Kueue in the dev control plane (`jesus dev up --kueue`, ADR 0029): its CRDs, its configuration, its
webhooks, and the command line that runs its controller manager on loopback.

Everything comes from the Kueue module the tool is built from (`tools/kueue`, pinned in its go.mod):
the CRDs from `config/components/crd/bases`, the webhooks from `config/components/webhook`. Kueue runs
out of cluster, so its webhooks are registered by URL on 127.0.0.1 with a serving certificate from the
dev PKI, and its own certificate management is off. Kueue reads its metrics serving certificate from a
fixed path (/etc/kueue/metrics/certs) when it does not manage certificates itself; bubblewrap mounts
the dev certificate there for the Kueue process alone, so nothing is written outside the state
directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from jesus.devcluster import toolchain

NAMESPACE = "kueue-system"
# The integrations the platform uses: runner Jobs, and self-hosted models' serving Deployments, whose
# pods Kueue's pod integration gates until it admits them (the deployment integration needs it).
FRAMEWORKS = ("batch/job", "pod", "deployment")
# The (API group, resource) pairs whose webhooks Kueue serves for those integrations; its own kinds'
# webhooks are kept whatever the resource. Webhooks of integrations that are off are left out.
KUEUE_GROUP = "kueue.x-k8s.io"
WEBHOOK_RESOURCES = frozenset({("batch", "jobs"), ("", "pods"), ("apps", "deployments")})
# Pods and Deployments: only those that name a LocalQueue reach the webhooks, and none in the system
# namespaces (as Kueue's own kustomization excludes them), so the plane's other pods never wait on Kueue
# (its webhooks fail closed) and are never gated.
QUEUED_ONLY = frozenset({("", "pods"), ("apps", "deployments")})
SYSTEM_NAMESPACES = ("kube-system", NAMESPACE)
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The CRDs Kueue's own kustomization gives a conversion webhook (v1beta1 <-> v1beta2).
CONVERSION_CRDS = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
METRICS_CERT_PATH = "/etc/kueue/metrics/certs"  # fixed in Kueue's main when it manages no certificates
WEBHOOK_PREFIX = "kueue-"  # as Kueue's kustomization names its objects


class KueueError(Exception):
    """Kueue cannot be set up; the message says what to do."""


def module_dir(version: str = toolchain.KUEUE_VERSION) -> Path:
    """The Kueue module's source in the Go module cache, downloaded (and checked against the wrapper's
    go.sum) when it is not there."""
    wrapper = toolchain.repo_root() / "tools" / "kueue"
    go = shutil.which("go")
    if go is None:
        raise KueueError("Go is not installed (no `go` on PATH); Kueue's CRDs are read from its Go module")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kueue@{version}"],
        cwd=wrapper,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        capture_output=True,
        text=True,
    )
    try:
        directory = Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise KueueError(
            f"the Kueue module {version} could not be found or downloaded from {wrapper}: "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        ) from exc
    if not (directory / "config" / "components" / "crd" / "bases").is_dir():
        raise KueueError(f"{directory} holds no config/components/crd/bases: not the Kueue module?")
    return directory


def crd_files(module: Path) -> list[Path]:
    """Kueue's CRDs, one file each."""
    return sorted((module / "config" / "components" / "crd" / "bases").glob("*.yaml"))


def configuration(
    *, webhook_port: int, health_port: int, metrics_port: int, visibility_port: int, cert_dir: Path
) -> dict[str, Any]:
    """Kueue's Configuration file: loopback ports, no leader election, no certificate management of
    its own, the Job, pod and Deployment integrations for objects that name a queue, outside the system
    namespaces."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "visibilityServer": {"bindAddress": "127.0.0.1", "bindPort": visibility_port},
        # The visibility API server reads its certificate from a fixed /visibility; the platform
        # reads a Workload's conditions instead of listing pending workloads through it.
        "featureGates": {"VisibilityOnDemand": False},
        "webhook": {"port": webhook_port, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        # Pod-based integrations manage only these namespaces' pods (and only those naming a queue).
        "managedJobsNamespaceSelector": _outside_system_namespaces(),
        "clientConnection": {"qps": 100, "burst": 200},
        "integrations": {"frameworks": list(FRAMEWORKS)},
    }


def _outside_system_namespaces() -> dict[str, Any]:
    return {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(SYSTEM_NAMESPACES)}
        ]
    }


def _served(webhook: dict[str, Any]) -> set[tuple[str, str]] | None:
    """The (group, resource) pairs a webhook covers; None when it covers one Kueue does not serve here."""
    pairs = {
        (group, resource)
        for rule in webhook.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }
    if not pairs or not all(pair[0] == KUEUE_GROUP or pair in WEBHOOK_RESOURCES for pair in pairs):
        return None
    return pairs


def _client_config(url: str, ca_bundle: bytes) -> dict[str, Any]:
    return {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()}


def webhook_configurations(manifests: str, base_url: str, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations (`config/components/webhook/manifests.yaml`), cut to its own kinds
    and its enabled integrations, pointed at `base_url` instead of an in-cluster Service; the pod and
    Deployment webhooks see only objects that name a LocalQueue, outside the system namespaces."""
    configurations = []
    for document in YAML(typ="safe").load_all(manifests):
        if not document:
            continue
        webhooks = []
        for webhook in document.get("webhooks", []):
            pairs = _served(webhook)
            if pairs is None:
                continue
            path = webhook["clientConfig"]["service"]["path"]
            registered = {**webhook, "clientConfig": _client_config(base_url + path, ca_bundle)}
            if pairs & QUEUED_ONLY:
                registered["namespaceSelector"] = _outside_system_namespaces()
                registered["objectSelector"] = {
                    "matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]
                }
            webhooks.append(registered)
        name = WEBHOOK_PREFIX + document["metadata"]["name"]
        configurations.append(
            {
                "apiVersion": document["apiVersion"],
                "kind": document["kind"],
                "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "kueue"}},
                "webhooks": webhooks,
            }
        )
    return configurations


def conversion_patch(base_url: str, ca_bundle: bytes) -> dict[str, Any]:
    """The merge patch that gives a Kueue CRD its conversion webhook (as Kueue's kustomization does)."""
    return {
        "spec": {
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": _client_config(base_url + "/convert", ca_bundle),
                    "conversionReviewVersions": ["v1"],
                },
            }
        }
    }


def bwrap() -> Path:
    """bubblewrap, which mounts the metrics certificate where Kueue looks for it."""
    path = shutil.which("bwrap")
    if path is None:
        raise KueueError(
            "bubblewrap is not installed (no `bwrap` on PATH); Kueue reads its metrics certificate from "
            f"{METRICS_CERT_PATH}, which `jesus dev up --kueue` mounts for it: install bubblewrap "
            "(Debian: bubblewrap; `make packages` does)"
        )
    return Path(path)


def sandboxed_argv(binary: Path, args: Iterable[str], metrics_cert_dir: Path) -> list[str]:
    """bwrap's arguments (after its own path) that run `binary args` with the host's file system as it
    is, except a private /etc in which `metrics_cert_dir` appears at METRICS_CERT_PATH."""
    mounts = ["--bind", "/", "/", "--dev-bind", "/dev", "/dev", "--tmpfs", "/etc"]
    # bwrap reads each source from the host's tree, so /etc's entries can be bound back one by one.
    for entry in sorted(os.listdir("/etc")):
        mounts += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    mounts += ["--ro-bind", str(metrics_cert_dir), METRICS_CERT_PATH]
    return [*mounts, "--", str(binary), *args]


def args(config: Path, kubeconfig: Path) -> list[str]:
    """The controller manager's own flags."""
    return [f"--config={config}", f"--kubeconfig={kubeconfig}", "--zap-log-level=info"]
