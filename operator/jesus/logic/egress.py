"""The NetworkPolicy of a run's runner pods: no ingress; egress to what the operator's deployment
allows every runner (DNS and the router, the chart's rules) and to the MCP servers the run names by
URL. Pure: the reconciler reads the Services a run's URLs name and creates the policy idempotently.

A NetworkPolicy allows addresses (pods by label, IP blocks), never host names. So a tool server is
allowed when its URL names an IP address (a /32 or /128 block) or an in-cluster Service (its pods, by
the Service's selector, on its target port). A name outside the cluster, a Service without a
selector, and addresses no tool server should be at (link-local, where cloud metadata answers;
loopback, unspecified, multicast, reserved) are not allowed: the run is told with a Warning Event, and
the platform allows such servers with the chart's extra egress rules instead.

The URL is parsed here as the runner's client parses it for the common forms; where the two could
differ (odd authorities), the URL is refused rather than guessed at. A mismatch could only narrow what
the runner reaches, never widen it past an address a run could have named plainly.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jesus.api.agentrun import AgentRun
from jesus.api.common import LABEL_RUN
from jesus.api.objects import JsonObject, bounded_name, owner_reference
from jesus.logic.manifests import COMPONENT_RUNNER, LABEL_COMPONENT, run_labels

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_PORTS = {"http": 80, "https": 443}
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
TOOL_SERVER_NOT_ALLOWED = "ToolServerNotAllowed"
"""The reason of the Warning Event a run gets for each tool server its policy cannot allow."""
EGRESS_RULE_KEYS = frozenset({"to", "ports"})
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A host whose last label is a number (decimal, or 0x hex) is an IPv4 address to URL parsers and to
# inet_aton-style resolvers (2130706433, 0x7f.1 are 127.0.0.1), not a name.
_NUMERIC_LABEL = re.compile(r"^([0-9]+|0x[0-9a-f]*)$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class RunnerEgress:
    """What every runner pod may reach, as the operator's deployment says (the chart's DNS and router
    rules, plus its extra rules), and the cluster's DNS domain for reading Service URLs."""

    rules: tuple[JsonObject, ...]
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


class EgressRulesError(ValueError):
    """Egress rules given to the operator that are not a list of NetworkPolicy egress rules."""


def parse_egress_rules(text: str, *, source: str) -> tuple[JsonObject, ...]:
    """NetworkPolicy egress rules from JSON (`[{"to": [...], "ports": [...]}, ...]`); errors name
    `source` (the flag or file) and the rule."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EgressRulesError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise EgressRulesError(f"{source}: want a list of egress rules, got {type(value).__name__}")
    for index, rule in enumerate(value):
        if not isinstance(rule, dict):
            raise EgressRulesError(f"{source}[{index}]: want an object, got {type(rule).__name__}")
        unknown = sorted(set(rule) - EGRESS_RULE_KEYS)
        if unknown:
            raise EgressRulesError(f"{source}[{index}]: unknown keys {unknown}; an egress rule has to, ports")
        for key in EGRESS_RULE_KEYS & set(rule):
            if not isinstance(rule[key], list) or not all(isinstance(i, dict) for i in rule[key]):
                raise EgressRulesError(f"{source}[{index}].{key}: want a list of objects")
    return tuple(value)


# --- where a tool server's URL points -----------------------------------------------------------


@dataclass(frozen=True)
class IpTarget:
    """A tool server at an IP address."""

    server: str
    address: IpAddress
    port: int


@dataclass(frozen=True)
class ServiceTarget:
    """A tool server at an in-cluster Service, by one of its DNS names."""

    server: str
    namespace: str
    name: str
    port: int
    short_form: bool = False
    """Named `name.namespace`, which could as well be a name outside the cluster."""

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name) of the Service."""
        return self.namespace, self.name


@dataclass(frozen=True)
class NotAllowed:
    """A tool server the run's NetworkPolicy cannot allow, and why (said to the run's owner)."""

    server: str
    reason: str


ToolTarget = IpTarget | ServiceTarget | NotAllowed


def tool_targets(run: AgentRun, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> list[ToolTarget]:
    """Where each of the run's URL tool servers is; stdio servers run inside the runner pod."""
    namespace = run.metadata.namespace or ""
    return [
        classify_tool_url(tool.name, tool.url, namespace, cluster_domain)
        for tool in run.spec.tools or []
        if tool.url is not None
    ]


def classify_tool_url(server: str, url: str, namespace: str, cluster_domain: str) -> ToolTarget:
    """An IP address, an in-cluster Service, or why the URL cannot be allowed."""

    def refuse(why: str) -> NotAllowed:
        return NotAllowed(server, f"tool server {server!r} at {url[:200]!r}: {why}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port, an unclosed [IPv6 bracket
        return refuse(f"not a URL the policy can read ({exc})")
    if parts.scheme not in DEFAULT_PORTS:
        return refuse("only http and https URLs reach a tool server")
    if "@" in parts.netloc or "\\" in parts.netloc:
        return refuse("a URL with user information or a backslash in its host is ambiguous")
    if port == 0:
        return refuse("port 0 is no port")
    port = port or DEFAULT_PORTS[parts.scheme]
    host = parts.hostname or ""
    host = host[:-1] if host.endswith(".") else host  # a fully qualified name's root dot
    if not host:
        return refuse("the URL names no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _classify_name(server, host, port, namespace, cluster_domain, refuse)
    why = _forbidden_address(address)
    if why:
        return refuse(f"{address} is {why}; no tool server is allowed there")
    return IpTarget(server, address, port)


def _forbidden_address(address: IpAddress) -> str:
    """Why runner pods must never be let through to `address`, or "" when they may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden_address(address.ipv4_mapped)
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "link-local (where cloud metadata services answer)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    return ""


def _classify_name(
    server: str,
    host: str,
    port: int,
    namespace: str,
    cluster_domain: str,
    refuse: Callable[[str], NotAllowed],
) -> ToolTarget:
    labels = host.lower().split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        return refuse(f"{host[:100]!r} is not a host name")
    if _NUMERIC_LABEL.match(labels[-1]):
        return refuse(f"{host!r} is not a host name: it reads as a numeric address to some resolvers")
    domain = cluster_domain.lower().strip(".").split(".") if cluster_domain else []
    if len(labels) == 1:
        return ServiceTarget(server, namespace, labels[0], port)
    if len(labels) == 2:
        return ServiceTarget(server, labels[1], labels[0], port, short_form=True)
    if labels[2] == "svc" and (len(labels) == 3 or labels[3:] == domain):
        return ServiceTarget(server, labels[1], labels[0], port)
    return refuse(
        f"{host} is outside the cluster: a NetworkPolicy allows addresses, not names; the platform can "
        "allow it with the chart's networkPolicy.runnerExtraEgress"
    )


# --- egress rules for the targets ---------------------------------------------------------------


def ip_rule(target: IpTarget) -> JsonObject:
    """Egress to one address (a /32 or /128 block, never wider) on the URL's port."""
    bits = target.address.max_prefixlen
    return {
        "to": [{"ipBlock": {"cidr": f"{target.address}/{bits}"}}],
        "ports": [{"protocol": "TCP", "port": target.port}],
    }


def service_rule(target: ServiceTarget, service: Mapping[str, Any] | None) -> JsonObject | NotAllowed:
    """Egress to the pods behind `service` on the target port of the URL's port; NetworkPolicies see
    connections after the Service's address is translated to a pod's."""
    where = f"tool server {target.server!r}"
    if service is None:
        also = " (and a name outside the cluster cannot be allowed)" if target.short_form else ""
        return NotAllowed(
            target.server, f"{where}: no Service {target.name} in namespace {target.namespace}{also}"
        )
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    if spec.get("type") == "ExternalName" or not selector:
        return NotAllowed(
            target.server,
            f"{where}: Service {target.namespace}/{target.name} selects no pods (ExternalName or no "
            "selector), so a NetworkPolicy cannot name its backends",
        )
    ports = [p for p in spec.get("ports") or [] if p.get("port") == target.port]
    if not ports:
        return NotAllowed(
            target.server, f"{where}: Service {target.namespace}/{target.name} has no port {target.port}"
        )
    port = ports[0]
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: target.namespace}},
                "podSelector": {"matchLabels": dict(selector)},
            }
        ],
        "ports": [{"protocol": port.get("protocol", "TCP"), "port": port.get("targetPort", target.port)}],
    }


def tool_rules(
    targets: Iterable[ToolTarget], services: Mapping[tuple[str, str], Mapping[str, Any] | None]
) -> tuple[list[JsonObject], list[NotAllowed]]:
    """The egress rules for the targets that can be allowed (each once), and the ones that cannot.
    `services` holds the Service (or None) of every ServiceTarget's key."""
    rules: list[JsonObject] = []
    refused: list[NotAllowed] = []
    for target in targets:
        if isinstance(target, NotAllowed):
            refused.append(target)
            continue
        rule = ip_rule(target) if isinstance(target, IpTarget) else service_rule(target, services[target.key])
        if isinstance(rule, NotAllowed):
            refused.append(rule)
        elif rule not in rules:
            rules.append(rule)
    return rules, refused


# --- the policy ---------------------------------------------------------------------------------


def network_policy_name(run_name: str) -> str:
    """The run's NetworkPolicy (one for all its attempts)."""
    return bounded_name(run_name, suffix="runner", limit=63)


def runner_pod_selector(run: AgentRun) -> dict[str, str]:
    """The labels of the run's runner pods, every attempt's."""
    return {LABEL_RUN: run_labels(run)[LABEL_RUN], LABEL_COMPONENT: COMPONENT_RUNNER}


def build_runner_network_policy(
    run: AgentRun, owner: Mapping[str, Any], egress: RunnerEgress, rules: Iterable[JsonObject]
) -> JsonObject:
    """The run's NetworkPolicy: its runner pods take no connections, and open only the deployment's
    egress rules and `rules` (its tool servers'). Owned by the run, so it goes with it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(run.metadata.name or ""),
            "namespace": run.metadata.namespace,
            "labels": {**run_labels(run), LABEL_COMPONENT: COMPONENT_RUNNER},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "podSelector": {"matchLabels": runner_pod_selector(run)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [*egress.rules, *rules],
        },
    }


def policy_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> JsonObject | None:
    """The merge patch that brings the live policy to the desired spec (a later attempt's tools), or
    None. Lists replace wholesale in a merge patch, so the egress rules are exactly the desired."""
    spec = live.get("spec") or {}
    want = desired["spec"]
    # The API server drops an empty ingress list when it stores the policy.
    if all((spec.get(key) or type(value)()) == value for key, value in want.items()):
        return None
    return {"spec": want}
