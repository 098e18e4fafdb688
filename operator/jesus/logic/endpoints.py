"""Where a ModelAdapter's calls go: the URL the router calls, and whether that is inside the cluster.

These are facts the platform establishes from the spec, for the admission policy to decide on (issue
12): the provider label says nothing about where data goes (a `vllm` adapter may point at any host on
the internet), so "inside the cluster" comes only from the endpoint URL and the serving block.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from jesus.api.modeladapter import ModelAdapter, Provider
from jesus.logic.serving import endpoint_url

CLUSTER_DOMAIN = "cluster.local"
"""The cluster's DNS domain (the kubelet's --cluster-domain); Services are <name>.<namespace>.svc.<it>."""


@dataclass(frozen=True)
class AdapterEndpoint:
    """Where an adapter's calls go."""

    url: str | None
    """The base URL the router calls; None for a provider's own public API (and for scripted replies)."""
    served: bool
    """Whether the router calls the Service the operator runs for this adapter (a serving block and no
    endpoint of its own: an endpoint overrides the serving Service, as the router reads it)."""
    in_cluster: bool
    """Whether the calls stay inside the cluster: a served model, a Service host name, or no call at
    all (scripted replies)."""


def adapter_endpoint(adapter: ModelAdapter, cluster_domain: str = CLUSTER_DOMAIN) -> AdapterEndpoint:
    """The facts about `adapter`'s endpoint; the URL is the one jesus.router.config calls
    (spec.endpoint, else the serving Service's, which the operator writes to status.endpoint)."""
    spec = adapter.spec
    if spec.provider is Provider.SCRIPTED:
        return AdapterEndpoint(url=None, served=False, in_cluster=True)
    if spec.endpoint is not None:
        return AdapterEndpoint(
            spec.endpoint, served=False, in_cluster=is_cluster_url(spec.endpoint, cluster_domain)
        )
    if spec.serving is not None:
        return AdapterEndpoint(endpoint_url(adapter), served=True, in_cluster=True)
    return AdapterEndpoint(url=None, served=False, in_cluster=False)


def is_cluster_url(url: str, cluster_domain: str = CLUSTER_DOMAIN) -> bool:
    """Whether `url`'s host is a Kubernetes Service name: `<svc>.<namespace>.svc` or
    `<svc>.<namespace>.svc.<cluster domain>`, nothing else.

    Not proof of being inside: a bare name (`vllm`) falls back to public DNS when the cluster's does
    not know it; an IP address, private or not, may be anywhere (a VPN, a cloud API's private link);
    `localhost` is the router's own pod or a developer's machine, where anything may listen. Those
    count as outside.
    """
    try:
        parts = urlsplit(url.strip())
        host, _ = parts.hostname, parts.port  # .port raises for a port out of range
    except ValueError:  # a malformed port or IPv6 literal: not a host we can place
        return False
    if not host:
        return False
    host = host.rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    labels = host.split(".")
    if any(not label for label in labels):
        return False
    suffix = ["svc", *cluster_domain.split(".")]
    if labels[-1] == "svc":
        return len(labels) == 3
    return labels[-len(suffix) :] == suffix and len(labels) == 2 + len(suffix)
