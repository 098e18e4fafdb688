"""The runner pods' NetworkPolicy: the deployment's rules plus exactly the run's tool servers that an
address can name; hostile and careless URLs open nothing."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from tests.builders.agentrun import build_run

from jesus.logic.egress import EgressRulesError as RulesError
from jesus.logic.egress import (
    IpTarget,
    NotAllowed,
    RunnerEgress,
    ServiceTarget,
    build_runner_network_policy,
    classify_tool_url,
    parse_egress_rules,
    policy_update,
    tool_rules,
    tool_targets,
)

NS = "team-a"
DNS_RULE: dict[str, Any] = {
    "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
ROUTER_RULE: dict[str, Any] = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "jesus-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "router"}},
        }
    ],
    "ports": [{"protocol": "TCP", "port": 8080}],
}
BASE = RunnerEgress(rules=(DNS_RULE, ROUTER_RULE))
OWNER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "u-1"}}


def service(
    name: str = "git-mcp",
    namespace: str = NS,
    *,
    selector: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    type_: str = "ClusterIP",
) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": type_,
            "selector": {"app": name} if selector is None else selector,
            "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}] if ports is None else ports,
        },
    }


def url_tool(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "url": url}


def classify(url: str) -> Any:
    return classify_tool_url("t", url, NS, "cluster.local")


def policy_for(tools: list[dict[str, Any]] | None, services: dict[tuple[str, str], Any]) -> dict[str, Any]:
    run = build_run(name="r", namespace=NS, uid="u-1", tools=tools)
    rules, _ = tool_rules(tool_targets(run), services)
    return build_runner_network_policy(run, OWNER, BASE, rules)


# --- the policy ---------------------------------------------------------------------------------


def test_a_run_without_tool_servers_may_reach_only_dns_and_the_router_and_takes_no_connections() -> None:
    policy = policy_for(None, {})
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["name"] == "r-runner"
    assert policy["metadata"]["namespace"] == NS
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert policy["metadata"]["ownerReferences"][0]["controller"] is True
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"jesus.dev/run": "r", "jesus.dev/component": "runner"}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []
    assert spec["egress"] == [DNS_RULE, ROUTER_RULE]


def test_the_policy_selects_the_labels_the_runner_job_gives_its_pods() -> None:
    from jesus.logic.manifests import RunnerSettings, build_runner_job

    run = build_run(name="r", namespace=NS, uid="u-1", tools=None)
    job = build_runner_job(run, OWNER, 2, RunnerSettings(), traceparent="00-0-0-01", sealed_token="sealed")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    selector = policy_for(None, {})["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


def test_a_stdio_server_adds_nothing_it_runs_inside_the_runner_pod() -> None:
    stdio = {"name": "fs", "stdio": {"command": "mcp-server-filesystem"}}
    assert policy_for([stdio], {})["spec"]["egress"] == [DNS_RULE, ROUTER_RULE]


def test_tool_servers_at_an_ip_and_at_a_service_are_allowed_on_their_ports_only() -> None:
    tools = [
        url_tool("search", "https://10.20.30.40:8443/mcp"),
        url_tool("git", "http://git-mcp/mcp"),
        url_tool("v6", "http://[fd00::7]/mcp"),
    ]
    egress = policy_for(tools, {(NS, "git-mcp"): service()})["spec"]["egress"]
    assert egress[:2] == [DNS_RULE, ROUTER_RULE]
    assert egress[2:] == [
        {"to": [{"ipBlock": {"cidr": "10.20.30.40/32"}}], "ports": [{"protocol": "TCP", "port": 8443}]},
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                    "podSelector": {"matchLabels": {"app": "git-mcp"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": "http"}],
        },
        {"to": [{"ipBlock": {"cidr": "fd00::7/128"}}], "ports": [{"protocol": "TCP", "port": 80}]},
    ]


@pytest.mark.parametrize(
    ("url", "namespace", "name", "port"),
    [
        ("http://git-mcp/mcp", NS, "git-mcp", 80),
        ("https://git-mcp.tools/mcp", "tools", "git-mcp", 443),
        ("http://git-mcp.tools.svc:9000/", "tools", "git-mcp", 9000),
        ("http://git-mcp.tools.svc.cluster.local/", "tools", "git-mcp", 80),
        ("http://Git-MCP.Tools.SVC.cluster.local./", "tools", "git-mcp", 80),  # case and root dot
    ],
)
def test_every_dns_name_of_a_service_reads_as_that_service(
    url: str, namespace: str, name: str, port: int
) -> None:
    target = classify(url)
    assert isinstance(target, ServiceTarget), target
    assert (target.namespace, target.name, target.port) == (namespace, name, port)


def test_a_service_in_another_namespace_is_selected_by_that_namespaces_name_label() -> None:
    tools = [url_tool("git", "http://git-mcp.tools.svc:8080/")]
    ports: list[dict[str, Any]] = [
        {"port": 8080, "targetPort": 3000},
        {"port": 9090, "targetPort": 9091, "protocol": "UDP"},
    ]
    egress = policy_for(tools, {("tools", "git-mcp"): service(namespace="tools", ports=ports)})["spec"][
        "egress"
    ]
    assert egress[2]["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "tools"}
    }
    assert egress[2]["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_two_tools_at_one_address_give_one_rule() -> None:
    tools = [url_tool("a", "http://10.0.0.9/one"), url_tool("b", "http://10.0.0.9/two")]
    assert len(policy_for(tools, {})["spec"]["egress"]) == 3


# --- hostile and careless URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://0.0.0.0/0", "unspecified"),  # a "/0" in the path is a path, never a prefix
        ("http://0.0.0.0:443/mcp", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),  # the metadata address, IPv4-mapped
        ("http://[fe80::1]/", "link-local"),
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://224.0.0.1/", "multicast"),
        ("http://255.255.255.255/", "reserved"),
        ("http://mcp.example.com/mcp", "outside the cluster"),
        ("http://0.0.0.0.nip.io/", "outside the cluster"),  # a name that resolves to 0.0.0.0: not resolved
        ("http://10.0.0.0%2F8/", "not a host name"),  # a CIDR smuggled into the host
        ("http://git-mcp@169.254.169.254/", "user information"),
        ("http://git-mcp\\@evil.example/", "backslash"),
        ("http://git-mcp:99999/", "not a URL"),
        ("http://[fd00::1/", "not a URL"),
        ("http://git-mcp:0/", "port 0"),
        ("http://" + "a" * 64 + "/", "not a host name"),
        ("http://under_score/", "not a host name"),
        ("http://:8080/", "no host"),
    ],
)
def test_hostile_and_careless_urls_open_nothing(url: str, why: str) -> None:
    target = classify(url)
    assert isinstance(target, NotAllowed), target
    assert why in target.reason
    assert "'t'" in target.reason  # the reason names the tool server
    run = build_run(name="r", namespace=NS, uid="u-1", tools=None)
    rules, refused = tool_rules([target], {})
    assert (rules, refused) == ([], [target])
    assert build_runner_network_policy(run, OWNER, BASE, rules)["spec"]["egress"] == [DNS_RULE, ROUTER_RULE]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "git.0x7f000001", "1.2.3.4.5", "017700000001"])
def test_a_host_that_some_resolver_reads_as_a_number_is_no_name(host: str) -> None:
    # 2130706433, 0x7f.1 and 017700000001 are 127.0.0.1 to inet_aton-style resolvers.
    target = classify(f"http://{host}/")
    assert isinstance(target, NotAllowed), target
    assert "numeric address" in target.reason


def test_an_ip_target_is_never_wider_than_one_address() -> None:
    for url in ("http://10.1.2.3/", "http://[2001:db8::1]/", "http://[::ffff:10.1.2.3]/"):
        target = classify(url)
        assert isinstance(target, IpTarget), url
        rules, _ = tool_rules([target], {})
        network = ipaddress.ip_network(rules[0]["to"][0]["ipBlock"]["cidr"])
        assert network.num_addresses == 1, url


@pytest.mark.parametrize(
    ("found", "why"),
    [
        (None, "no Service git-mcp in namespace team-a"),
        (service(selector={}), "selects no pods"),
        (service(type_="ExternalName"), "selects no pods"),
        (service(ports=[{"port": 8080}]), "has no port 80"),
    ],
)
def test_a_missing_or_unselectable_service_opens_nothing(found: dict[str, Any] | None, why: str) -> None:
    target = classify("http://git-mcp/mcp")
    rules, refused = tool_rules([target], {(NS, "git-mcp"): found})
    assert rules == []
    assert why in refused[0].reason


def test_a_short_name_that_is_no_service_says_names_outside_cannot_be_allowed() -> None:
    target = classify("https://example.com/mcp")
    assert isinstance(target, ServiceTarget)
    _, refused = tool_rules([target], {target.key: None})
    assert "no Service example in namespace com" in refused[0].reason
    assert "outside the cluster" in refused[0].reason


def test_a_service_port_without_target_port_is_its_own_port() -> None:
    target = classify("http://git-mcp:7000/")
    rules, _ = tool_rules([target], {(NS, "git-mcp"): service(ports=[{"port": 7000}])})
    assert rules[0]["ports"] == [{"protocol": "TCP", "port": 7000}]


# --- keeping it up to date -----------------------------------------------------------------------


def test_the_policy_is_patched_only_when_its_spec_differs() -> None:
    desired = policy_for(None, {})
    stored = {**desired, "spec": {k: v for k, v in desired["spec"].items() if k != "ingress"}}
    assert policy_update(stored, desired) is None  # the API server drops the empty ingress list
    later = policy_for([url_tool("s", "http://10.0.0.1/")], {})
    assert policy_update(stored, later) == {"spec": later["spec"]}


# --- the deployment's rules ---------------------------------------------------------------------


def test_egress_rules_parse_from_json() -> None:
    assert parse_egress_rules('[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]', source="f") == (
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
    )
    assert parse_egress_rules("[]", source="f") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "--runner-egress: not JSON"),
        ('{"to": []}', "--runner-egress: want a list of egress rules, got dict"),
        ('["x"]', "--runner-egress[0]: want an object"),
        ('[{"to": [], "from": []}]', "--runner-egress[0]: unknown keys ['from']"),
        ('[{"ports": 53}]', "--runner-egress[0].ports: want a list of objects"),
    ],
)
def test_bad_egress_rules_fail_naming_the_flag_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_egress_rules(text, source="--runner-egress")
    assert message in str(caught.value)
