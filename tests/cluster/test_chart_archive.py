"""The chart's archive: SQLite on a volume by default (an emptyDir, or a kept claim), PostgreSQL's URL from
a Secret, and values that cannot work refused with a message naming them. Rendered with `helm template`."""

from __future__ import annotations

import pytest
from tests.cluster.test_chart import CHART, KUBE_VERSION, Manifest, container, find, helm, one, render


def operator_pod(manifests: list[Manifest]) -> Manifest:
    spec: Manifest = one(manifests, "Deployment", "jesus-operator")["spec"]["template"]["spec"]
    return spec


def archive_env(manifests: list[Manifest]) -> Manifest:
    [found] = [
        e for e in container(one(manifests, "Deployment", "jesus-operator"), "operator")["env"]
        if e["name"] == "JESUS_ARCHIVE_DATABASE"
    ]  # fmt: skip
    return found


def test_the_default_archive_is_sqlite_on_a_volume_of_the_pod() -> None:
    manifests = render()
    assert archive_env(manifests) == {
        "name": "JESUS_ARCHIVE_DATABASE",
        "value": "sqlite:////var/lib/jesus/archive.db",
    }
    mounts = container(one(manifests, "Deployment", "jesus-operator"), "operator")["volumeMounts"]
    assert {"name": "archive", "mountPath": "/var/lib/jesus"} in mounts
    assert {"name": "archive", "emptyDir": {}} in operator_pod(manifests)["volumes"]
    assert find(manifests, "PersistentVolumeClaim") == []


def test_persistence_makes_a_claim_that_outlives_the_release() -> None:
    manifests = render("archive.sqlite.persistence.enabled=true", "archive.sqlite.persistence.size=5Gi")
    claim = one(manifests, "PersistentVolumeClaim", "jesus-archive")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    volume = {"name": "archive", "persistentVolumeClaim": {"claimName": "jesus-archive"}}
    assert volume in operator_pod(manifests)["volumes"]
    existing = render(
        "archive.sqlite.persistence.enabled=true", "archive.sqlite.persistence.existingClaim=mine"
    )
    assert find(existing, "PersistentVolumeClaim") == []
    assert {"name": "archive", "persistentVolumeClaim": {"claimName": "mine"}} in operator_pod(existing)[
        "volumes"
    ]


def test_postgres_comes_from_a_secret_and_no_volume_is_mounted() -> None:
    manifests = render("archive.databaseSecret.name=archive-db", "archive.databaseSecret.key=dsn")
    assert archive_env(manifests)["valueFrom"] == {"secretKeyRef": {"name": "archive-db", "key": "dsn"}}
    assert all(v["name"] != "archive" for v in operator_pod(manifests)["volumes"])


def test_no_archive_sets_nothing() -> None:
    manifests = render("archive.enabled=false")
    env = container(one(manifests, "Deployment", "jesus-operator"), "operator")["env"]
    assert all(e["name"] != "JESUS_ARCHIVE_DATABASE" for e in env)
    assert all(v["name"] != "archive" for v in operator_pod(manifests)["volumes"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ("operator.replicas=2", "operator.peering.enabled=true"),
            "archive: SQLite serves one operator pod; with operator.replicas > 1 set archive.databaseSecret",
        ),
        (("archive.databaseSecret.name=Not_A_Name",), "/archive/databaseSecret/name"),
        (("archive.sqlite.persistence.size=lots",), "/archive/sqlite/persistence/size"),
        (("archive.url=postgresql://x",), "archive"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_them(values: tuple[str, ...], message: str) -> None:
    args = ["template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}"]
    for value in values:
        args += ["--set", value]
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
