"""How each component of a local control plane is started: its ports, flags and kubeconfig."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jesus.devcluster import nodes

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


@dataclass
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    # The OIDC provider's (`jesus dev up --oidc`): Hydra's public and admin ports, our login app's.
    # 0 when the plane runs without it.
    oidc_public: int = 0
    oidc_admin: int = 0
    oidc_login: int = 0
    # Kueue's (`jesus dev up --kueue`): its webhook server, health probes, metrics, visibility API.
    kueue_webhook: int = 0
    kueue_health: int = 0
    kueue_metrics: int = 0
    kueue_visibility: int = 0


def write_kubeconfig(path: Path, server: str, pki_dir: Path, client: str) -> None:
    """A kubeconfig for `client`, authenticating with its certificate from `pki_dir`."""
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


def etcd_args(p: Ports, state_dir: Path) -> list[str]:
    """etcd: one member on loopback, data in the state directory."""
    client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
    return [
        "--name=default",
        f"--data-dir={state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # A throwaway cluster: skipping fsync makes it several times faster and loses nothing we keep.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


AUDIT_POLICY = "audit-policy.yaml"
AUDIT_LOG = "audit.log"


def write_audit_policy(state_dir: Path) -> Path:
    """The audit policy shipped with this package (writes to jesus.dev objects at RequestResponse,
    Secrets and tokens at Metadata), copied into the state directory; its path."""
    path = state_dir / AUDIT_POLICY
    path.write_text(resources.files("jesus.devcluster").joinpath(AUDIT_POLICY).read_text())
    return path


def apiserver_args(
    p: Ports, d: Path, state_dir: Path, authentication_config: Path | None = None, *, audit: bool = True
) -> list[str]:
    """kube-apiserver: TLS from the PKI in `d`, RBAC, service accounts signed with its key, the audit
    log (`audit.log` in `state_dir`, one JSON event a line; none without `audit`, which only the load
    benchmark turns off to measure what the log costs), and, given one, a structured
    AuthenticationConfiguration (the dev OIDC provider's ID tokens)."""
    authentication = [f"--authentication-config={authentication_config}"] if authentication_config else []
    audit_log = (
        []
        if not audit
        else [
            f"--audit-policy-file={write_audit_policy(state_dir)}",
            f"--audit-log-path={state_dir / AUDIT_LOG}",
            "--audit-log-format=json",
            # Bounded: a long test session or benchmark rotates the log instead of filling the disk.
            "--audit-log-maxsize=100",
            "--audit-log-maxbackup=2",
        ]
    )
    return [
        *authentication,
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
        *audit_log,
    ]


def _component_args(state_dir: Path, client: str, port: int) -> list[str]:
    kubeconfig = state_dir / f"{client}.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]


def controller_manager_args(p: Ports, state_dir: Path, pki_dir: Path) -> list[str]:
    """kube-controller-manager: only the controllers the platform relies on."""
    return [
        *_component_args(state_dir, "kube-controller-manager", p.controller_manager),
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--root-ca-file={pki_dir / 'ca.crt'}",
        "--cluster-name=jesus-dev",
    ]


def scheduler_args(p: Ports, state_dir: Path) -> list[str]:
    """kube-scheduler, with its own kubeconfig."""
    return _component_args(state_dir, "kube-scheduler", p.scheduler)


def kwok_args(p: Ports, state_dir: Path) -> list[str]:
    """kwok: simulates the nodes annotated for it, with the stages shipped in this package."""
    stages = state_dir / "kwok-stages.yaml"
    stages.write_text(resources.files("jesus.devcluster").joinpath("kwok-stages.yaml").read_text())
    return [
        f"--kubeconfig={state_dir / 'kwok.kubeconfig'}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={nodes.KWOK_NODE_ANNOTATION}=fake",
        "--cidr=10.244.0.0/16",
        "--node-ip=10.96.0.1",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{p.kwok}",
    ]
