"""The Helm chart: its copies of the CRDs and policies agree with the sources, it lints and renders, its
OPA sidecar loads the policies the way the kubelet mounts them, it installs into the real API server,
and its RBAC lets the operator do its work while the runner and router can do nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML
from tests.builders.adapters import scripted_adapter, vllm_adapter
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy
from tests.cluster.harness import JESUS, Process, http_ready
from tests.cluster.harness import wait_for as wait_until
from tests.cluster.operator_process import (
    apply_objects,
    condition,
    get_object,
    running_operator,
    wait_for,
)

from jesus.controllers.metrics import OperatorMetrics
from jesus.devcluster import ControlPlane, ensure_tool
from jesus.devcluster.controlplane import free_port
from jesus.logic.placement import parse_placement
from jesus.logic.queueing import DEFAULT_LANES, QueueSettings, parse_lanes
from jesus.policy.decision import DECISION_PATH
from jesus.router.metrics import RouterMetrics

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jesus"
KUBE_VERSION = "1.34.0"
MONITORING_APIS = ("monitoring.coreos.com/v1/PrometheusRule", "monitoring.coreos.com/v1/ServiceMonitor")

Manifest = dict[str, Any]


def helm(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the built helm binary."""
    result = subprocess.run(
        [str(ensure_tool("helm")), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def render(
    *sets: str, namespace: str = "jesus-system", release: str = "jesus", json_sets: tuple[str, ...] = ()
) -> list[Manifest]:
    """`helm template` with `--set` (and `--set-json`) values, as parsed manifests."""
    args = ["template", release, str(CHART), "-n", namespace, f"--kube-version={KUBE_VERSION}"]
    args += [f"--api-versions={api}" for api in MONITORING_APIS]
    for value in sets:
        args += ["--set", value]
    for value in json_sets:
        args += ["--set-json", value]
    return [doc for doc in YAML(typ="safe", pure=True).load_all(helm(*args).stdout) if doc]


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = find(manifests, kind, name)
    return found


def container(deployment: Manifest, name: str) -> Manifest:
    [found] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def source_policies() -> dict[str, str]:
    """The policy files the chart must carry: everything under policies/ but the Rego tests."""
    root = REPO / "policies"
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith("_test.rego")
    }


# --- the chart's sources ------------------------------------------------------------------------
# Helm reads only files inside the chart, so the chart links to crds/ and policies/ (helm follows the
# links and packages their contents); these tests catch a CRD or a policy the chart would miss.


def test_the_chart_links_every_generated_crd() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ holds the generated CRDs"
    for name in generated:
        link = CHART / "crds" / name
        assert link.is_symlink(), f"{link} should link to crds/{name}: ln -s ../../../crds/{name} {link}"
        assert link.resolve() == (REPO / "crds" / name).resolve()
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - set(generated)
    assert extra == {"kopf-peering.yaml"}


def test_the_chart_links_the_policies() -> None:
    link = CHART / "files" / "policies"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "policies").resolve()


# --- lint and render ---------------------------------------------------------------------------


def test_the_chart_lints_strictly() -> None:
    result = helm("lint", "--strict", str(CHART), f"--kube-version={KUBE_VERSION}")
    assert "0 chart(s) failed" in result.stdout


def test_the_chart_renders_operator_router_rbac_and_monitoring() -> None:
    manifests = render()
    kinds = {m["kind"] for m in manifests}
    assert kinds >= {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "PrometheusRule",
        "ServiceMonitor",
    }
    operator = one(manifests, "Deployment", "jesus-operator")
    assert operator["spec"]["strategy"]["type"] == "Recreate"
    args = container(operator, "operator")["args"]
    assert args[0] == "operator"
    assert "--opa-url=http://127.0.0.1:8181" in args
    assert "--router-url=http://jesus-router.jesus-system.svc:8080" in args
    opa = container(operator, "opa")
    assert opa["args"][:2] == ["run", "--server"]
    # The decision API listens on localhost only; the kubelet probes the diagnostic port.
    assert "--addr=127.0.0.1:8181" in opa["args"]
    router = one(manifests, "Deployment", "jesus-router")
    assert container(router, "router")["args"][0] == "router"
    service = one(manifests, "Service", "jesus-router")
    assert service["spec"]["selector"].items() <= router["spec"]["template"]["metadata"]["labels"].items()
    for deployment in (operator, router):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]


def test_the_policy_configmaps_hold_every_policy_and_the_site_data() -> None:
    manifests = render()
    policies = one(manifests, "ConfigMap", "jesus-policies")["data"]
    expected = {
        path.replace("/", "."): text for path, text in source_policies().items() if path.endswith(".rego")
    }
    assert {key: text.strip() for key, text in policies.items()} == {
        k: v.strip() for k, v in expected.items()
    }
    data = one(manifests, "ConfigMap", "jesus-policy-data")["data"]["data.json"]
    assert json.loads(data) == json.loads((REPO / "policies" / "data.json").read_text())
    overridden = one(render("opa.data.jesus.config.version=7"), "ConfigMap", "jesus-policy-data")
    assert json.loads(overridden["data"]["data.json"]) == {"jesus": {"config": {"version": 7}}}


def test_runner_placement_reaches_the_operator_as_one_json_flag_it_parses() -> None:
    def placement_args(*json_sets: str) -> list[str]:
        operator = container(one(render(json_sets=json_sets), "Deployment", "jesus-operator"), "operator")
        return [a for a in operator["args"] if a.startswith("--runner-placement=")]

    assert placement_args() == []
    [flag] = placement_args(
        'runner.nodeSelector={"pool":"agents"}',
        'runner.tolerations=[{"key":"agents","operator":"Exists","effect":"NoSchedule"}]',
    )
    placement = parse_placement(flag.split("=", 1)[1], source="the chart's --runner-placement")
    assert placement.node_selector == {"pool": "agents"}
    assert placement.tolerations == ({"key": "agents", "operator": "Exists", "effect": "NoSchedule"},)


def test_serving_placement_reaches_the_operator_as_its_own_json_flag() -> None:
    def placement_args(*json_sets: str) -> list[str]:
        operator = container(one(render(json_sets=json_sets), "Deployment", "jesus-operator"), "operator")
        return [a for a in operator["args"] if a.startswith(("--serving-placement=", "--runner-placement="))]

    assert placement_args() == []
    [flag] = placement_args('serving.nodeSelector={"pool":"inference"}')
    assert flag.startswith("--serving-placement=")
    placement = parse_placement(flag.split("=", 1)[1], source="the chart's --serving-placement")
    assert placement.node_selector == {"pool": "inference"}
    assert placement.tolerations == ()


def test_kueue_is_off_by_default_and_on_passes_its_lanes_and_queue_rule_the_operator_parses() -> None:
    def operator_args(*sets: str) -> tuple[list[str], list[Manifest]]:
        manifests = render(*sets)
        operator = container(one(manifests, "Deployment", "jesus-operator"), "operator")
        return [a for a in operator["args"] if a.startswith("--kueue")], manifests

    args, manifests = operator_args()
    assert args == [] and find(manifests, "WorkloadPriorityClass") == []
    rules = one(manifests, "ClusterRole", "jesus-system-jesus-operator")["rules"]
    assert not [r for r in rules if "kueue.x-k8s.io" in r["apiGroups"]]

    args, manifests = operator_args("kueue.enabled=true", "kueue.queueName=agents-{team}")
    assert args[:2] == ["--kueue", "--kueue-queue-name=agents-{team}"]
    lanes = parse_lanes(args[2].split("=", 1)[1])
    assert lanes == DEFAULT_LANES
    classes = {m["metadata"]["name"]: m["value"] for m in find(manifests, "WorkloadPriorityClass")}
    assert classes == {lane.name: lane.value for lane in DEFAULT_LANES}
    rules = one(manifests, "ClusterRole", "jesus-system-jesus-operator")["rules"]
    assert {
        "apiGroups": ["kueue.x-k8s.io"],
        "resources": ["workloads"],
        "verbs": ["get", "list", "watch"],
    } in rules
    _, manifests = operator_args("kueue.enabled=true", "kueue.createPriorityClasses=false")
    assert find(manifests, "WorkloadPriorityClass") == []
    assert len(args) == 3  # no serving lane given: the operator takes the highest
    args, _ = operator_args("kueue.enabled=true", "kueue.servingLane=batch")
    assert args[3] == "--kueue-serving-lane=batch"
    assert QueueSettings(lanes=DEFAULT_LANES, serving_lane=args[3].split("=", 1)[1]).serving_lane == "batch"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("kueue.lanes[0].minPriority=5000", "/kueue/lanes/0/minPriority"),
        ("kueue.lanes[0].name=Interactive", "/kueue/lanes/0/name"),
        ("kueue.queue=x", "additional properties 'queue' not allowed"),
        ("kueue.servingLane=Bad_Lane", "/kueue/servingLane"),
    ],
)
def test_bad_kueue_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set", value, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_the_runner_gets_no_token_and_the_router_only_its_read_binding() -> None:
    manifests = render()
    accounts = {m["metadata"]["name"]: m for m in find(manifests, "ServiceAccount")}
    assert set(accounts) == {"jesus-operator", "jesus-router", "jesus-runner"}
    assert accounts["jesus-runner"]["automountServiceAccountToken"] is False
    assert "automountServiceAccountToken" not in accounts["jesus-router"]  # it watches the cluster
    bindings = find(manifests, "ClusterRoleBinding") + find(manifests, "RoleBinding")
    roles = {s["name"]: set() for b in bindings for s in b["subjects"]}
    for binding in bindings:
        for subject in binding["subjects"]:
            roles[subject["name"]].add(binding["roleRef"]["name"])
    assert set(roles) == {"jesus-operator", "jesus-router"}
    assert roles["jesus-router"] == {"jesus-system-jesus-router", "jesus-system-jesus-router-token-review"}
    rules = one(manifests, "ClusterRole", "jesus-system-jesus-router")["rules"]
    assert {verb for rule in rules for verb in rule["verbs"]} == {"get", "list", "watch"}
    # Besides reading, the router only asks who a token on its admin API belongs to.
    assert one(manifests, "ClusterRole", "jesus-system-jesus-router-token-review")["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]


def test_the_router_reads_the_cluster_with_two_replicas_and_a_disruption_budget() -> None:
    manifests = render()
    router = one(manifests, "Deployment", "jesus-router")
    assert router["spec"]["replicas"] == 2
    args = container(router, "router")["args"]
    assert not [a for a in args if a.startswith("--specs")], "the router reads the cluster, not a copy"
    budget = one(manifests, "PodDisruptionBudget", "jesus-router")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= (
        router["spec"]["template"]["metadata"]["labels"].items()
    )
    assert not find(render("router.replicas=1"), "PodDisruptionBudget")
    assert not [m for m in manifests if m["metadata"]["name"].endswith("router-specs")]


def test_watching_namespaces_binds_the_operator_and_router_roles_there_only() -> None:
    manifests = render("operator.watchNamespaces={team-a,team-b}")
    role_bindings = find(manifests, "RoleBinding")
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["name"]) for b in role_bindings) == [
        ("team-a", "jesus-system-jesus-operator"),
        ("team-a", "jesus-system-jesus-router"),
        ("team-b", "jesus-system-jesus-operator"),
        ("team-b", "jesus-system-jesus-router"),
    ]
    cluster_bindings = {b["roleRef"]["name"] for b in find(manifests, "ClusterRoleBinding")}
    assert cluster_bindings == {
        "jesus-system-jesus-operator-framework",
        "jesus-system-jesus-router-token-review",  # TokenReviews are cluster-scoped
    }
    for component in ("operator", "router"):
        args = container(one(manifests, "Deployment", f"jesus-{component}"), component)["args"]
        assert [a for a in args if a.startswith("--namespace=")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ], component


def test_peering_replicas_get_a_peering_object_and_a_rolling_update() -> None:
    # Replicas share one archive: PostgreSQL (test_chart_archive.py), not a pod's SQLite file.
    manifests = render(
        "operator.replicas=2", "operator.peering.enabled=true", "archive.databaseSecret.name=db"
    )
    operator = one(manifests, "Deployment", "jesus-operator")
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=jesus" in container(operator, "operator")["args"]
    assert one(manifests, "ClusterKopfPeering", "jesus")
    framework = one(manifests, "ClusterRole", "jesus-system-jesus-operator-framework")
    [peering] = [r for r in framework["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert "create" not in peering["verbs"], "the chart creates the peering object; Kopf only patches it"


def test_shards_make_every_replica_active_on_leases_in_the_release_namespace_only() -> None:
    manifests = render(
        "operator.replicas=3", "operator.shards=8", "archive.databaseSecret.name=db", namespace="ops"
    )
    operator = one(manifests, "Deployment", "jesus-operator")
    assert operator["spec"]["replicas"] == 3
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"  # a leaving pod hands its shards over
    main = container(operator, "operator")
    # The kubelet expands $(POD_NAME) and $(POD_NAMESPACE) from the container's env.
    assert {"--shards=8", "--identity=$(POD_NAME)", "--lease-namespace=$(POD_NAMESPACE)"} <= set(main["args"])
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in main["env"]}
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("metadata.name", "metadata.namespace")
    assert not [a for a in main["args"] if a.startswith("--peering")]
    assert not find(manifests, "ClusterKopfPeering") and not find(manifests, "KopfPeering")
    role = one(manifests, "Role", "jesus-operator-shards")
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "delete"],
        }
    ]
    binding = one(manifests, "RoleBinding", "jesus-operator-shards")
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jesus-operator", "namespace": "ops"}]
    # Leases nowhere else: no cluster role, no role in a watched namespace.
    for kind in ("ClusterRole", "Role"):
        for rbac in find(manifests, kind):
            if rbac is not role:
                assert all(
                    "coordination.k8s.io" not in r.get("apiGroups", []) for r in rbac.get("rules") or []
                )


def test_without_shards_the_operator_runs_alone_and_holds_no_leases() -> None:
    manifests = render()
    operator = one(manifests, "Deployment", "jesus-operator")
    assert operator["spec"]["strategy"]["type"] == "Recreate"
    assert not [
        a for a in container(operator, "operator")["args"] if a.startswith(("--shards", "--identity"))
    ]
    assert not find(manifests, "Role", "jesus-operator-shards")
    assert not find(manifests, "RoleBinding", "jesus-operator-shards")


def test_shards_and_peering_exclude_each_other() -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}",
        "--set", "operator.shards=2", "--set", "operator.peering.enabled=true", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "operator.shards and operator.peering.enabled exclude each other" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("operator.replicas=2", "operator.replicas > 1 needs operator.shards (all replicas active, each on"),
        ("operator.replicas=two", "/operator/replicas"),
        ("operator.shards=0", "/operator/shards"),
        ("operator.shards=1025", "/operator/shards"),
        ("operator.shards=four", "/operator/shards"),
        ("operator.shards=2.5", "/operator/shards"),
        ("router.port=0", "/router/port"),
        ("monitoring.alerts.fallbackRateWarning=3", "/monitoring/alerts/fallbackRateWarning"),
        ("operator.watchNamespaces={Team_A}", "/operator/watchNamespaces/0"),
        ("router.redis.url=localhost:6379", "/router/redis/url"),
    ],
)
def test_bad_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set", value, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # an unknown key, a wrong type, a missing request, a quantity that is none
        ("router.autoscaling.enable=true", "additional properties 'enable' not allowed"),
        ("router.autoscaling.maxReplicas=many", "/router/autoscaling/maxReplicas"),
        ("router.resources.requests.cpu=lots", "/router/resources/requests/cpu"),
        ("opa.resources.requests=null", "/opa/resources"),
        ("runner.resources.requests.gpu=1", "/runner/resources/requests"),
        ("runner.resources.limits.memory=1 GB", "/runner/resources/limits/memory"),
        ("networkPolicy.enabled=yes", "/networkPolicy/enabled"),
        ("networkPolicy.egress=1", "additional properties 'egress' not allowed"),
        ("networkPolicy.clusterDomain=Cluster_Local", "/networkPolicy/clusterDomain"),
        (
            "router.autoscaling.enabled=true,router.autoscaling.minReplicas=7",
            "router.autoscaling.minReplicas (7) is more than router.autoscaling.maxReplicas (6)",
        ),
    ],
)
def test_bad_operations_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set", value, check=False
    )
    assert result.returncode != 0, value
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('networkPolicy.runnerExtraEgress=[{"to": [], "from": []}]', "additional properties 'from'"),
        ('networkPolicy.runnerExtraEgress=[{"ports": [{"port": 443, "protocol": "HTTP"}]}]', "protocol"),
        ("networkPolicy.dns.to=[]", "/networkPolicy/dns/to"),
        ('networkPolicy.metricsFrom={"namespaceSelector": {}}', "/networkPolicy/metricsFrom"),
    ],
)
def test_bad_network_policy_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set-json", value, check=False
    )
    assert result.returncode != 0, value
    assert message in result.stderr, result.stderr


def test_every_container_requests_cpu_and_memory_and_the_runner_gets_its_resources() -> None:
    manifests = render()
    for deployment in find(manifests, "Deployment"):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert set(c["resources"]["requests"]) >= {"cpu", "memory"}, c["name"]
    settings = _operator_settings(
        render("runner.resources.requests.cpu=250m", "runner.resources.limits.memory=2Gi")
    )
    assert (settings.runner.cpu_request, settings.runner.memory_request) == ("250m", "256Mi")
    assert (settings.runner.cpu_limit, settings.runner.memory_limit) == ("1", "2Gi")


def _operator_settings(manifests: list[Manifest]) -> Any:
    """What `jesus operator` makes of the rendered arguments (the CLI's own parser)."""
    from jesus.cli import build_parser
    from jesus.cli.operator import _runner_egress
    from jesus.controllers.context import OperatorSettings
    from jesus.logic.manifests import RunnerSettings

    args = build_parser("operator").parse_args(
        container(one(manifests, "Deployment", "jesus-operator"), "operator")["args"]
    )
    runner = RunnerSettings(
        cpu_request=args.runner_cpu_request,
        memory_request=args.runner_memory_request,
        cpu_limit=args.runner_cpu_limit,
        memory_limit=args.runner_memory_limit,
    )
    return OperatorSettings(runner=runner, runner_egress=_runner_egress(args))


def _runner_pod_labels() -> dict[str, str]:
    """The labels the operator gives a runner pod."""
    from tests.builders.agentrun import build_run

    from jesus.logic.manifests import RunnerSettings, build_runner_job

    run = build_run(name="r", namespace="team-a", uid="u-1")
    owner = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "u-1"}}
    job = build_runner_job(run, owner, 1, RunnerSettings(), traceparent="00-0-0-01", sealed_token="sealed")
    labels: dict[str, str] = job["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(peer: Manifest, namespace: str, labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy peer selects a pod with `labels` in `namespace` (matchLabels and
    In-expressions only, which is all the chart writes)."""
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is not None:
        namespace_labels = {"kubernetes.io/metadata.name": namespace}
        if not namespace_selector.get("matchLabels", {}).items() <= namespace_labels.items():
            return False
        for expression in namespace_selector.get("matchExpressions", []):
            assert expression["operator"] == "In"
            if namespace_labels.get(expression["key"]) not in expression["values"]:
                return False
    elif namespace != "jesus-system":
        return False
    return bool(peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items())


def test_runner_pods_reach_dns_and_the_router_and_the_router_takes_runners_operator_and_prometheus() -> None:
    manifests = render()
    egress = _operator_settings(manifests).runner_egress
    assert egress is not None and egress.cluster_domain == "cluster.local"
    dns, to_router = egress.rules
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert _selects(dns["to"][0], "kube-system", {"k8s-app": "kube-dns"})
    router = one(manifests, "Deployment", "jesus-router")
    router_labels = router["spec"]["template"]["metadata"]["labels"]
    assert _selects(to_router["to"][0], "jesus-system", router_labels)
    assert not _selects(to_router["to"][0], "other", router_labels)
    assert to_router["ports"] == [{"port": 8080, "protocol": "TCP"}]
    policy = one(manifests, "NetworkPolicy", "jesus-router")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= router_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    runners, prometheus = policy["spec"]["ingress"]
    operator_labels = one(manifests, "Deployment", "jesus-operator")["spec"]["template"]["metadata"]["labels"]
    assert _selects(runners["from"][0], "team-a", _runner_pod_labels())
    assert not _selects(runners["from"][0], "team-a", {"app": "curious"})
    assert _selects(runners["from"][1], "jesus-system", operator_labels)  # the admin API
    assert _selects(prometheus["from"][0], "monitoring", {"app.kubernetes.io/name": "prometheus"})
    for rule in (runners, prometheus):
        assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    operator_policy = one(manifests, "NetworkPolicy", "jesus-operator")
    assert operator_policy["spec"]["ingress"] == [
        {"from": prometheus["from"], "ports": [{"protocol": "TCP", "port": 9090}]}
    ]


def test_network_policies_follow_watched_namespaces_extra_egress_and_can_be_turned_off() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    manifests = render(
        "operator.watchNamespaces={team-a}",
        "networkPolicy.clusterDomain=corp.internal",
        json_sets=(f"networkPolicy.runnerExtraEgress=[{json.dumps(extra)}]", "networkPolicy.metricsFrom=[]"),
    )
    egress = _operator_settings(manifests).runner_egress
    assert egress.rules[2:] == (extra,)
    assert egress.cluster_domain == "corp.internal"
    policy = one(manifests, "NetworkPolicy", "jesus-router")
    [runners] = policy["spec"]["ingress"]  # no metrics peers: no rule for them
    assert _selects(runners["from"][0], "team-a", _runner_pod_labels())
    assert not _selects(runners["from"][0], "team-b", _runner_pod_labels())
    assert one(manifests, "NetworkPolicy", "jesus-operator")["spec"]["ingress"] == []
    off = render("networkPolicy.enabled=false")
    assert not find(off, "NetworkPolicy")
    assert _operator_settings(off).runner_egress is None


def test_the_router_autoscaler_is_optional_and_takes_over_replicas() -> None:
    manifests = render()
    assert not find(manifests, "HorizontalPodAutoscaler")
    assert one(manifests, "Deployment", "jesus-router")["spec"]["replicas"] == 2
    scaled = render(
        "router.autoscaling.enabled=true",
        "router.autoscaling.minReplicas=3",
        "router.autoscaling.maxReplicas=9",
        "router.autoscaling.targetCPUUtilizationPercentage=60",
    )
    assert "replicas" not in one(scaled, "Deployment", "jesus-router")["spec"]
    autoscaler = one(scaled, "HorizontalPodAutoscaler", "jesus-router")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "jesus-router",
    }
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (3, 9)
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
    assert one(scaled, "PodDisruptionBudget", "jesus-router")
    assert one(scaled, "Service", "jesus-router")["spec"]["sessionAffinity"] == "ClientIP"
    # Down to one pod at times: no disruption budget (it would block every drain), affinity still.
    single = render("router.autoscaling.enabled=true", "router.autoscaling.minReplicas=1")
    assert not find(single, "PodDisruptionBudget")
    assert one(single, "Service", "jesus-router")["spec"]["sessionAffinity"] == "ClientIP"


def test_monitoring_needs_the_prometheus_operator_apis() -> None:
    plain = helm("template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}").stdout
    assert "kind: PrometheusRule" not in plain
    assert "kind: ServiceMonitor" not in plain


def _exported(*metrics: type[Any]) -> set[str]:
    """Every sample name the given metrics classes export (counters' _total, histograms' parts)."""
    registry = CollectorRegistry()
    for metrics_class in metrics:
        metrics_class(registry)
    return {sample.name for metric in registry.collect() for sample in metric.samples} | {
        f"{metric.name}{suffix}"
        for metric in registry.collect()
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }


def charted_series(manifests: list[Manifest]) -> set[str]:
    """Every exported series name the chart's alert and recording rules and dashboard panels read
    (the series recording rules make, level:metric:operations, are Prometheus's own)."""
    rules = one(manifests, "PrometheusRule", "jesus-alerts")
    expressions = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    recorded = {r["record"] for g in rules["spec"]["groups"] for r in g["rules"] if "record" in r}
    dashboards = one(manifests, "ConfigMap", "jesus-dashboards")
    panels = [p for text in dashboards["data"].values() for p in json.loads(text)["panels"]]
    expressions += [t["expr"] for p in panels for t in p.get("targets", [])]
    for name in sorted(recorded, key=len, reverse=True):
        expressions = [expr.replace(name, " ") for expr in expressions]
    return {word for expr in expressions for word in _words(expr) if word.startswith("jesus_")}


def test_every_charted_series_is_exported_by_the_router_or_the_operator() -> None:
    exported = _exported(RouterMetrics, OperatorMetrics)
    manifests = render()
    rules = one(manifests, "PrometheusRule", "jesus-alerts")
    alerts = {r["alert"] for g in rules["spec"]["groups"] for r in g["rules"] if "alert" in r}
    recorded = {r["record"] for g in rules["spec"]["groups"] for r in g["rules"] if "record" in r}
    assert alerts >= {
        "JesusBudget75PercentUsed",
        "JesusBudget90PercentUsed",
        "JesusBudgetExhausted",
        "JesusHighFallbackRate",
        "JesusRunFailureRateHigh",
        "JesusAdmissionLatencyBudgetBurnFast",
    }
    dashboards = one(manifests, "ConfigMap", "jesus-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert recorded, "the chart records the expensive queries"
    used = charted_series(manifests)
    assert {w for w in used if w.startswith("jesus_router_")}, "the router's metrics are charted"
    assert used - {w for w in used if w.startswith("jesus_router_")}, "the operator's metrics are charted"
    assert used <= exported, f"not exported by the router or the operator: {sorted(used - exported)}"


def test_the_operator_serves_metrics_that_a_pod_monitor_scrapes() -> None:
    manifests = render()
    operator = container(one(manifests, "Deployment", "jesus-operator"), "operator")
    assert "--metrics-port=9090" in operator["args"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in operator["ports"]
    monitor = one(manifests, "PodMonitor", "jesus-operator")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True  # the Budget's namespace
    labels = one(manifests, "Deployment", "jesus-operator")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("release", ["jesus", "platform-prod"])
def test_the_monitors_name_the_jobs_the_alerts_read_whatever_the_release(release: str) -> None:
    manifests = render(release=release)
    prefix = "jesus" if release == "jesus" else f"{release}-jesus"
    endpoints = {
        "router": one(manifests, "ServiceMonitor", f"{prefix}-router")["spec"]["endpoints"][0],
        "operator": one(manifests, "PodMonitor", f"{prefix}-operator")["spec"]["podMetricsEndpoints"][0],
    }
    rules = json.dumps(one(manifests, "PrometheusRule", f"{prefix}-alerts")["spec"])
    for component, endpoint in endpoints.items():
        assert {"targetLabel": "job", "replacement": f"jesus-{component}"} in endpoint["relabelings"]
        assert f'job=\\"jesus-{component}\\"' in rules


def _words(expr: str) -> list[str]:
    return "".join(c if c.isalnum() or c == "_" else " " for c in expr).split()


# --- the OPA sidecar loads the policies as the kubelet mounts them ------------------------------


def _mount_configmap(configmap: Manifest, target: Path) -> None:
    """Lay out a ConfigMap the way the kubelet does: files in a hidden timestamped folder, a `..data`
    link to it, and one link per key."""
    stamped = target / "..2026_11_22_10_00_00.000000001"
    stamped.mkdir(parents=True)
    for key, text in configmap["data"].items():
        (stamped / key).write_text(text)
    (target / "..data").symlink_to(stamped.name)
    for key in configmap["data"]:
        (target / key).symlink_to(f"..data/{key}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http_json(url: str, body: Any | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read() or b"null")


def test_the_opa_sidecar_serves_decisions_from_the_mounted_configmaps(tmp_path: Path) -> None:
    manifests = render()
    opa = container(one(manifests, "Deployment", "jesus-operator"), "opa")
    mounts = {m["mountPath"]: m["name"] for m in opa["volumeMounts"]}
    volumes = {
        v["name"]: v["configMap"]["name"]
        for v in one(manifests, "Deployment", "jesus-operator")["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    paths: dict[str, str] = {}
    for mount_path, volume in mounts.items():
        local = tmp_path / volume
        _mount_configmap(one(manifests, "ConfigMap", volumes[volume]), local)
        paths[mount_path] = str(local)
    api_port, diag_port = _free_port(), _free_port()
    args = []
    for arg in opa["args"]:
        if arg.startswith("--addr="):
            arg = f"--addr=127.0.0.1:{api_port}"
        elif arg.startswith("--diagnostic-addr="):
            arg = f"--diagnostic-addr=127.0.0.1:{diag_port}"
        args.append(paths.get(arg, arg))
    log = (tmp_path / "opa.log").open("wb")
    process = subprocess.Popen([str(ensure_tool("opa")), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _http_json(f"http://127.0.0.1:{diag_port}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"OPA did not become healthy:\n{(tmp_path / 'opa.log').read_text()}")
                time.sleep(0.2)
        answer = _http_json(f"http://127.0.0.1:{api_port}/v1/data/{DECISION_PATH}", {"input": {}})
        assert "result" in answer, answer
        config = _http_json(f"http://127.0.0.1:{api_port}/v1/data/jesus/config")
        assert (
            config["result"] == json.loads((REPO / "policies" / "data.json").read_text())["jesus"]["config"]
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


# --- installed into the real API server ---------------------------------------------------------


@dataclass
class Release:
    """An installed release: its name, namespace and helm's environment."""

    name: str
    namespace: str
    env: dict[str, str]

    def operator_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-jesus-operator"

    def account(self, name: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{name}"


@pytest.fixture
def release(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Release]:
    name = f"j{uuid.uuid4().hex[:6]}"
    env = {
        **control_plane.env,
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    installed = Release(name, namespace, env)
    # Every pod of the chart meets the Pod Security Standards' "restricted" profile, which the API
    # server enforces here: a pod that does not is refused, and --wait fails.
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    helm(
        "install",
        name,
        str(CHART),
        "-n",
        namespace,
        f"--kubeconfig={control_plane.kubeconfig}",
        "--wait",
        "--timeout=300s",
        env=env,
    )
    try:
        yield installed
    finally:
        helm(
            "uninstall",
            name,
            "-n",
            namespace,
            f"--kubeconfig={control_plane.kubeconfig}",
            env=env,
            check=False,
        )


def test_helm_install_creates_the_crds_deployments_and_rbac(
    control_plane: ControlPlane, release: Release
) -> None:
    crds = {
        c["metadata"]["name"]
        for c in json.loads(control_plane.kubectl("get", "crds", "-o", "json").stdout)["items"]
    }
    expected = {p.name.removesuffix(".yaml") for p in (REPO / "crds").glob("*.yaml")}
    assert expected | {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= crds
    for component in ("operator", "router"):
        deployment = get_object(
            control_plane, release.namespace, "deployment", f"{release.name}-jesus-{component}"
        )
        assert deployment is not None, component
        available = condition(deployment, "Available")
        assert available is not None
        assert available["status"] == "True", component
    role = f"{release.namespace}-{release.name}-jesus-operator"
    assert control_plane.kubectl("get", "clusterrole", role, check=False).returncode == 0
    assert control_plane.kubectl("get", "clusterrolebinding", role, check=False).returncode == 0
    secret = get_object(
        control_plane, release.namespace, "secret", f"{release.name}-jesus-router-signing-key"
    )
    assert len(secret["data"]["key"]) > 40
    # The run-owner policy and its binding pass the API server's type checks against the CRD.
    policy = get_object(
        control_plane,
        release.namespace,
        "validatingadmissionpolicy",
        f"{release.namespace}-{release.name}-jesus-run-owner",
    )
    assert policy is not None
    assert not (policy.get("status") or {}).get("typeChecking", {}).get("expressionWarnings")
    assert get_object(control_plane, release.namespace, "configmap", f"{release.name}-jesus-policies")["data"]
    for component in ("operator", "router"):
        policy = get_object(
            control_plane, release.namespace, "networkpolicy", f"{release.name}-jesus-{component}"
        )
        assert policy is not None, component
    # The optional autoscaler passes the API server's validation too.
    scaled = render("router.autoscaling.enabled=true", namespace=release.namespace, release=release.name)
    autoscaler = one(scaled, "HorizontalPodAutoscaler", f"{release.name}-jesus-router")
    control_plane.kubectl(
        "apply", "--dry-run=server", "-n", release.namespace, "-f", "-", input=json.dumps(autoscaler)
    )


def can_i(plane: ControlPlane, who: str, verb: str, resource: str, namespace: str) -> bool:
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = plane.kubectl(
        "auth", "can-i", verb, resource, *extra, f"--as={who}", "-n", namespace, check=False
    )
    return result.stdout.strip() == "yes"


OPERATOR_NEEDS = [
    ("watch", "agentruns.jesus.dev"),
    ("patch", "agentruns.jesus.dev"),
    ("update", "agentruns.jesus.dev/status"),
    ("update", "budgets.jesus.dev/status"),
    ("update", "modeladapters.jesus.dev/status"),
    ("update", "routepolicies.jesus.dev/status"),
    ("list", "budgets.jesus.dev"),
    ("watch", "lessons.jesus.dev"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("create", "services"),
    ("patch", "services"),
    ("delete", "services"),
    ("get", "secrets"),
    ("create", "secrets"),
    ("create", "serviceaccounts"),
    ("list", "pods"),
    ("create", "events"),
    ("get", "networkpolicies.networking.k8s.io"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("patch", "networkpolicies.networking.k8s.io"),
]
OPERATOR_MUST_NOT = [
    ("list", "secrets"),
    ("delete", "secrets"),
    ("update", "agentruns.jesus.dev"),
    ("create", "agentruns.jesus.dev"),
    ("delete", "namespaces"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "pods"),
    ("patch", "nodes"),
    ("delete", "networkpolicies.networking.k8s.io"),
    ("list", "networkpolicies.networking.k8s.io"),
    ("patch", "lessons.jesus.dev"),
]
NOBODY_ELSE = [
    ("get", "secrets"),
    ("list", "pods"),
    ("create", "jobs.batch"),
    ("get", "agentruns.jesus.dev"),
    ("list", "modeladapters.jesus.dev"),
    ("create", "networkpolicies.networking.k8s.io"),
]


def test_the_operator_may_do_its_work_and_no_more_in_any_namespace(
    control_plane: ControlPlane, release: Release
) -> None:
    who = release.operator_account()
    for where in (release.namespace, "default"):
        missing = [
            f"{verb} {res}" for verb, res in OPERATOR_NEEDS if not can_i(control_plane, who, verb, res, where)
        ]
        assert missing == [], f"the operator lacks in {where}: {missing}"
        extra = [
            f"{verb} {res}" for verb, res in OPERATOR_MUST_NOT if can_i(control_plane, who, verb, res, where)
        ]
        assert extra == [], f"the operator may in {where}: {extra}"


ROUTER_NEEDS = [
    ("get", "modeladapters.jesus.dev"),
    ("list", "modeladapters.jesus.dev"),
    ("watch", "modeladapters.jesus.dev"),
    ("list", "routepolicies.jesus.dev"),
    ("watch", "routepolicies.jesus.dev"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "tokenreviews.authentication.k8s.io"),
]
ROUTER_MUST_NOT = [
    ("create", "secrets"),
    ("patch", "modeladapters.jesus.dev"),
    ("update", "modeladapters.jesus.dev/status"),
    ("get", "agentruns.jesus.dev"),
    ("list", "budgets.jesus.dev"),
    ("list", "pods"),
    ("create", "jobs.batch"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
    ("create", "serviceaccounts/token"),
]


def test_the_runner_may_do_nothing_and_the_router_only_read_its_objects(
    control_plane: ControlPlane, release: Release
) -> None:
    runner = release.account("jesus-runner")
    allowed = [f"{v} {r}" for v, r in NOBODY_ELSE if can_i(control_plane, runner, v, r, release.namespace)]
    assert allowed == [], f"the runner may: {allowed}"
    router = release.account(f"{release.name}-jesus-router")
    missing = [f"{v} {r}" for v, r in ROUTER_NEEDS if not can_i(control_plane, router, v, r, "default")]
    assert missing == [], f"the router lacks: {missing}"
    extra = [f"{v} {r}" for v, r in ROUTER_MUST_NOT if can_i(control_plane, router, v, r, "default")]
    assert extra == [], f"the router may: {extra}"


def _token_kubeconfig(plane: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    token = plane.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": plane.server, "certificate-authority": str(plane.pki_dir / "ca.crt")},
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": account}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def test_the_operator_reconciles_with_nothing_but_the_charts_rbac(
    control_plane: ControlPlane, release: Release, tmp_path: Path
) -> None:
    """Run the operator as the chart's ServiceAccount: it serves a model and resolves a route."""
    kubeconfig = _token_kubeconfig(
        control_plane, release.namespace, f"{release.name}-jesus-operator", tmp_path / "sa.kubeconfig"
    )
    adapter = set_field(vllm_adapter("served"), "spec.serving.gpu.count", 1)
    # vLLM's image runs as root, so its serving pods need the "baseline" profile, not "restricted".
    control_plane.kubectl(
        "label", "namespace", release.namespace, "--overwrite", "pod-security.kubernetes.io/enforce=baseline"
    )
    with running_operator(
        control_plane, release.namespace, tmp_path / "operator.log", kubeconfig=kubeconfig
    ) as operator:
        apply_objects(control_plane, release.namespace, adapter, route_policy("via-served", ("served",)))
        policy = wait_for(
            lambda: (
                (obj := get_object(control_plane, release.namespace, "routepolicy", "via-served"))
                and (obj.get("status") or {}).get("resolvedChain") == ["served"]
                and obj
            ),
            what="the route through the served model to be ready, as the operator ServiceAccount",
            operator=operator,
        )
        assert condition(policy, "Ready")["reason"] == "ChainReady"
        assert "Forbidden" not in operator.log(400), operator.log(400)


def test_the_router_serves_with_nothing_but_the_charts_rbac(
    control_plane: ControlPlane, release: Release, tmp_path: Path
) -> None:
    """Run the router as the chart's ServiceAccount with the chart's admin flags: it lists and watches
    what it needs, reviews the operator's token for its audience (and refuses its own), and a run
    registered against a RoutePolicy applied afterwards gets its chain."""
    kubeconfig = _token_kubeconfig(
        control_plane, release.namespace, f"{release.name}-jesus-router", tmp_path / "router.kubeconfig"
    )
    manifests = render(namespace=release.namespace, release=release.name)
    args = container(one(manifests, "Deployment", f"{release.name}-jesus-router"), "router")["args"]
    admin_flags = [a for a in args if a.startswith(("--operator-account=", "--admin-audience="))]
    audience = next(a for a in admin_flags if a.startswith("--admin-audience=")).split("=", 1)[1]
    port = free_port()
    router = Process(
        "router",
        [
            *JESUS,
            "router",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            release.namespace,
            "--port",
            str(port),
            *admin_flags,
        ],
        {**control_plane.env, "JESUS_ROUTER_SIGNING_KEY": "test-signing-key"},
        tmp_path / "router.log",
    )

    def token(account: str) -> str:
        return control_plane.kubectl(
            "create", "token", account, "-n", release.namespace, f"--audience={audience}", "--duration=10m"
        ).stdout.strip()

    operator_token, router_token = (
        token(f"{release.name}-jesus-operator"),
        token(f"{release.name}-jesus-router"),
    )
    router.start()
    try:
        wait_until(lambda: http_ready(port), what="the router as its ServiceAccount", describe=router.tail)
        apply_objects(
            control_plane,
            release.namespace,
            scripted_adapter("rbac-proof"),
            route_policy("rbac", ("rbac-proof",)),
        )

        def post(bearer: str) -> httpx.Response:
            return httpx.post(
                f"http://127.0.0.1:{port}/admin/v1/runs",
                json={"run": "rbac-run", "namespace": release.namespace, "routePolicy": "rbac"},
                headers={"authorization": f"Bearer {bearer}"},
                timeout=10,
            )

        def registered() -> Any:
            answer = post(operator_token)
            return answer.status_code == 201 and answer.json()

        grant = wait_until(registered, what="a registration through the watched route", describe=router.tail)
        assert grant["chain"] == [f"{release.namespace}/rbac-proof"]
        refused = post(router_token)
        assert refused.status_code == 403, refused.text
        assert f"{release.name}-jesus-router" in refused.json()["error"]["message"]
        assert "Forbidden" not in router.log.read_text()
    finally:
        router.stop()


def test_the_operator_proves_itself_to_the_router_with_a_projected_token_and_holds_no_secret() -> None:
    manifests = render()
    router = one(manifests, "Deployment", "jesus-router")
    router_args = container(router, "router")["args"]
    assert "--operator-account=jesus-system:jesus-operator" in router_args
    assert "--admin-audience=jesus-system-jesus-router" in router_args
    operator = one(manifests, "Deployment", "jesus-operator")
    spec = operator["spec"]["template"]["spec"]
    [projected] = [v for v in spec["volumes"] if v["name"] == "router-token"]
    [source] = projected["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "audience": "jesus-system-jesus-router",
        "expirationSeconds": 3600,
        "path": "token",
    }
    main = container(operator, "operator")
    mount = next(m for m in main["volumeMounts"] if m["name"] == "router-token")
    assert f"--router-admin-token-file={mount['mountPath']}/token" in main["args"]
    # No secret is shared: the operator reads none, and only the router mounts the signing key.
    for c in spec["containers"]:
        assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})], c["name"]
    assert not [v for v in spec["volumes"] if "secret" in v]
    [signing] = [e for e in container(router, "router")["env"] if e["name"] == "JESUS_ROUTER_SIGNING_KEY"]
    assert signing["valueFrom"]["secretKeyRef"] == {"name": "jesus-router-signing-key", "key": "key"}
    assert "JESUS_ROUTER_ADMIN_TOKEN" not in json.dumps(manifests)
    custom = render("router.admin.audience=corp-router", "router.signingKey.existingSecret=vault-key")
    assert (
        "--admin-audience=corp-router"
        in container(one(custom, "Deployment", "jesus-router"), "router")["args"]
    )
    assert not find(custom, "Secret", "jesus-router-signing-key")


def test_people_get_aggregated_roles_and_a_binding_per_team_from_values() -> None:
    manifests = render(
        json_sets=(
            'access.teams=[{"name": "a", "namespace": "team-a", "groups": ["team-a"],'
            ' "viewerGroups": ["audit"]},'
            ' {"name": "b", "namespace": "team-b", "groups": ["team-b", "b-leads"]}]',
            'access.approverGroups=["platform"]',
        )
    )
    for role, label in (("viewer", "viewer"), ("submitter", "submitter"), ("approver", "approver")):
        aggregated = one(manifests, "ClusterRole", f"jesus-{role}")
        assert aggregated["aggregationRule"]["clusterRoleSelectors"] == [
            {"matchLabels": {f"jesus.dev/aggregate-to-{label}": "true"}}
        ]
        # Kubernetes' own roles are left alone unless asked (access.roles.aggregateViewerToView).
        assert not [k for k in aggregated["metadata"]["labels"] if k.startswith("rbac.authorization.k8s.io/")]

    def rules_of(role: str) -> set[tuple[str, str]]:
        label = f"jesus.dev/aggregate-to-{role}"
        return {
            (resource, verb)
            for r in find(manifests, "ClusterRole")
            if r["metadata"]["labels"].get(label) == "true"
            for rule in r["rules"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    read = {
        (k, v)
        for k in ("agentruns", "budgets", "routepolicies", "modeladapters", "lessons")
        for v in ("get", "list", "watch")
    }
    assert rules_of("viewer") == read
    assert rules_of("submitter") == read | {("agentruns", v) for v in ("create", "patch", "delete")}
    assert rules_of("approver") == read | {
        (k, v)
        for k in ("budgets", "routepolicies", "modeladapters", "lessons")
        for v in ("create", "update", "patch", "delete")
    }
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]): b for b in find(manifests, "RoleBinding")}
    assert [s["name"] for s in bindings[("team-a", "jesus-submitter")]["subjects"]] == ["team-a"]
    assert [s["name"] for s in bindings[("team-a", "jesus-viewer")]["subjects"]] == ["audit"]
    assert [s["name"] for s in bindings[("team-b", "jesus-submitter")]["subjects"]] == ["team-b", "b-leads"]
    assert ("team-b", "jesus-viewer") not in bindings
    assert {s["kind"] for b in bindings.values() for s in b["subjects"]} == {"Group"}
    [approvers] = [
        b for b in find(manifests, "ClusterRoleBinding") if b["roleRef"]["name"] == "jesus-approver"
    ]
    assert approvers["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "platform"}
    ]
    opted_in = one(render("access.roles.aggregateViewerToView=true"), "ClusterRole", "jesus-viewer")
    assert opted_in["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert not find(render("access.roles.create=false"), "ClusterRole", "jesus-viewer")
    assert not find(render("access.runOwnerPolicy.enabled=false"), "ValidatingAdmissionPolicy")


def test_the_run_owner_policy_names_the_label_and_the_trusted_appliers() -> None:
    manifests = render(
        "access.teamLabel=platform.example.com/team",
        json_sets=(
            "access.runOwnerPolicy.trustedAppliers="
            '{"users": ["system:serviceaccount:argocd:app"], "groups": ["gitops"]}',
        ),
    )
    policy = one(manifests, "ValidatingAdmissionPolicy", "jesus-system-jesus-run-owner")
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert "namespaceObject.metadata.labels['platform.example.com/team']" in variables["team"]
    assert 'in ["system:serviceaccount:argocd:app"]' in variables["trustedApplier"]
    assert 'g in ["gitops"]' in variables["trustedApplier"]
    messages = " ".join(v["messageExpression"] for v in policy["spec"]["validations"])
    for field in ("spec.owner.team", "spec.owner.user", "platform.example.com/team"):
        assert field in messages
    binding = one(manifests, "ValidatingAdmissionPolicyBinding", "jesus-system-jesus-run-owner")
    assert binding["spec"] == {"policyName": "jesus-system-jesus-run-owner", "validationActions": ["Deny"]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('access.teams=[{"name": "Team A", "namespace": "team-a"}]', "/access/teams/0/name"),
        ('access.teams=[{"name": "a"}]', "missing property 'namespace'"),
        (
            'access.teams=[{"name": "a", "namespace": "team-a", "group": ["x"]}]',
            "additional properties 'group'",
        ),
        # hostile: a quote would end the CEL string literal the name is written into
        (
            r'access.runOwnerPolicy.trustedAppliers={"users": ["x\"] || true || [\""]}',
            "/access/runOwnerPolicy/trustedAppliers/users/0",
        ),
        ('access.teamLabel="team\u0027] || true || x[\u0027"', "/access/teamLabel"),
        ('access.approverGroups=[""]', "/access/approverGroups/0"),
        ("router.admin.tokenExpirationSeconds=60", "/router/admin/tokenExpirationSeconds"),
        (
            'routerAdminToken={"existingSecret": "old"}',
            "additional properties 'routerAdminToken' not allowed",
        ),
    ],
)
def test_bad_access_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set-json", value, check=False
    )
    assert result.returncode != 0, value
    assert message in result.stderr, result.stderr


def test_router_replicas_share_allowances_through_redis_or_keep_runs_on_one_replica() -> None:
    def router_parts(*values: str) -> tuple[dict[str, Any], dict[str, Any]]:
        manifests = render(*values)
        router = container(one(manifests, "Deployment", "jesus-router"), "router")
        env = {e["name"]: e for e in router.get("env", [])}
        return env, one(manifests, "Service", "jesus-router")["spec"]

    env, service = router_parts()
    assert "JESUS_ROUTER_REDIS_URL" not in env
    assert service["sessionAffinity"] == "ClientIP"  # a run's calls stay where its allowance is
    env, service = router_parts("router.redis.url=redis://redis.infra.svc:6379/0")
    assert env["JESUS_ROUTER_REDIS_URL"]["value"] == "redis://redis.infra.svc:6379/0"
    assert "sessionAffinity" not in service
    env, service = router_parts("router.redis.existingSecret=router-redis")
    assert env["JESUS_ROUTER_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "router-redis",
        "key": "url",
    }
    assert "sessionAffinity" not in service
    _, single = router_parts("router.replicas=1")
    assert "sessionAffinity" not in single


def test_artifacts_give_the_operator_and_api_the_endpoint_and_the_secrets_credential_only() -> None:
    from jesus.cli import build_parser
    from jesus.cli.operator import _artifacts

    def operator_args(manifests: list[Manifest]) -> Any:
        return build_parser("operator").parse_args(
            container(one(manifests, "Deployment", "jesus-operator"), "operator")["args"]
        )

    assert _artifacts(operator_args(render())) is None
    manifests = render(
        "artifacts.endpoint=http://s3.storage.svc:8333",
        "artifacts.bucket=team-artifacts",
        "artifacts.credentialsSecret.name=s3-operator",
        "api.enabled=true",
        "archive.databaseSecret.name=pg",
    )
    bucket = _artifacts(operator_args(manifests))
    assert bucket is not None
    assert (bucket.endpoint, bucket.bucket, bucket.region) == (
        "http://s3.storage.svc:8333",
        "team-artifacts",
        "us-east-1",
    )
    for deployment, name in (("jesus-operator", "operator"), ("jesus-api", "api")):
        env = {e["name"]: e for e in container(one(manifests, "Deployment", deployment), name)["env"]}
        for variable, key in (
            ("JESUS_ARTIFACTS_ACCESS_KEY_ID", "accessKeyId"),
            ("JESUS_ARTIFACTS_SECRET_ACCESS_KEY", "secretAccessKey"),
        ):
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "s3-operator", "key": key}
    # Nothing else in the chart (the runner's pods are the operator's Jobs) refers to that Secret.
    holders = [m["metadata"]["name"] for m in manifests if "s3-operator" in json.dumps(m)]
    assert sorted(holders) == ["jesus-api", "jesus-operator"]
    refused = helm(
        "template",
        "jesus",
        str(CHART),
        f"--kube-version={KUBE_VERSION}",
        "--set",
        "artifacts.endpoint=http://s3",
        check=False,
    )
    assert "artifacts.endpoint needs artifacts.credentialsSecret.name" in refused.stderr
