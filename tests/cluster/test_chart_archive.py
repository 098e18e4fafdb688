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


# --- the read API (jesus api) over the archive ----------------------------------------------------

API_VALUES = ("api.enabled=true", "archive.databaseSecret.name=archive-db")


def test_the_read_api_is_off_by_default() -> None:
    assert [m for m in render() if m["metadata"]["name"].startswith("jesus-api")] == []


def test_the_read_api_reads_postgres_and_may_only_review_and_list_budgets() -> None:
    manifests = render(
        *API_VALUES, "api.tokenAudiences={jesus-api}", "api.cacheSeconds=30", "api.workers=2",
        "api.dashboard.traceUrl=https://jaeger.example/trace/{traceId}", "api.dashboard.refreshSeconds=0",
    )  # fmt: skip
    deployment = one(manifests, "Deployment", "jesus-api")
    api = container(deployment, "api")
    assert api["args"] == [
        "api", "--host=0.0.0.0", "--port=8090", "--workers=2", "--cache-seconds=30",
        "--token-audience=jesus-api",
        "--refresh-seconds=0", "--trace-url=https://jaeger.example/trace/{traceId}",
    ]  # fmt: skip
    from jesus.cli import build_parser

    parsed = build_parser("api").parse_args(api["args"])  # the command takes what the chart passes
    assert (parsed.port, parsed.cache_seconds, parsed.token_audience) == (8090, 30.0, ["jesus-api"])
    assert parsed.workers == 2
    assert (parsed.trace_url, parsed.refresh_seconds) == ("https://jaeger.example/trace/{traceId}", 0)
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"]}
    assert env == {
        "JESUS_ARCHIVE_DATABASE": {"name": "archive-db", "key": "url"},
        "JESUS_API_CURSOR_KEY": {"name": "jesus-api-cursor-key", "key": "key"},
    }
    assert one(manifests, "Secret", "jesus-api-cursor-key")["data"]["key"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "jesus-api"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    assert api["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert api["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    rules = one(manifests, "ClusterRole", "jesus-api")["rules"]
    assert rules == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": ["jesus.dev"], "resources": ["budgets"], "verbs": ["get", "list"]},
    ]
    binding = one(manifests, "ClusterRoleBinding", "jesus-api")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jesus-api", "namespace": "jesus-system"}
    ]
    service = one(manifests, "Service", "jesus-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8090, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    policy = one(manifests, "NetworkPolicy", "jesus-api")["spec"]
    assert policy["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8090}]}]
    assert find(render(*API_VALUES, "networkPolicy.enabled=false"), "NetworkPolicy", "jesus-api") == []
    mine = render(*API_VALUES, "api.cursorKey.existingSecret=my-key")
    assert find(mine, "Secret", "jesus-api-cursor-key") == []
    assert {e["name"]: e for e in container(one(mine, "Deployment", "jesus-api"), "api")["env"]}[
        "JESUS_API_CURSOR_KEY"
    ]["valueFrom"]["secretKeyRef"]["name"] == "my-key"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("api.enabled=true",), "api.enabled needs the archive in PostgreSQL"),
        (("api.enabled=true", "archive.enabled=false"), "api.enabled needs the archive in PostgreSQL"),
        ((*API_VALUES, "api.port=0"), "/api/port"),
        ((*API_VALUES, "api.cacheSeconds=-1"), "/api/cacheSeconds"),
        ((*API_VALUES, "api.workers=0"), "/api/workers"),
        ((*API_VALUES, "api.dashboard.traceUrl=javascript:alert(1)"), "/api/dashboard/traceUrl"),
        ((*API_VALUES, "api.cursorKey.existingSecret=Bad_Name"), "/api/cursorKey/existingSecret"),
        ((*API_VALUES, "api.url=x"), "api"),
    ],
)
def test_read_api_values_that_cannot_work_are_refused_naming_them(
    values: tuple[str, ...], message: str
) -> None:
    args = ["template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}"]
    for value in values:
        args += ["--set", value]
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
