"""RoutePolicies: as spec-file JSON, and as the parsed model of the standard scenario."""

from __future__ import annotations

from typing import Any

from tests.builders.defaults import NAMESPACE
from tests.builders.manifest import Obj, manifest

from jesus.api import RoutePolicy


def route_policy(name: str = "route", adapters: tuple[str, ...] = ("scripted",), **kw: Any) -> Obj:
    """A RoutePolicy whose chain is `adapters`, in order."""
    spec: Obj = {"chain": [{"adapterRef": a} for a in adapters]}
    return manifest("RoutePolicy", name, spec, **kw)


def failover_route(name: str, *adapters: str) -> Obj:
    """A RoutePolicy over `adapters` that fails over on transient errors, with short timeouts and
    backoffs, as the cluster tier wants them."""
    result = route_policy(name, adapters)
    result["spec"].update(
        failoverOn=["RateLimited", "Overloaded", "Timeout", "Connection"],
        attemptTimeoutSeconds=10,
        retries={"maxAttempts": 1, "initialBackoffMilliseconds": 10, "maxBackoffMilliseconds": 20},
    )
    return result


def build_route(
    *,
    name: str = "default",
    chain: tuple[str, ...] = ("claude", "llama"),
    selector: dict[str, Any] | None = None,
) -> RoutePolicy:
    """A RoutePolicy of the standard scenario over `chain`."""
    spec: dict[str, Any] = {"chain": [{"adapterRef": adapter} for adapter in chain]}
    if selector is not None:
        spec["selector"] = selector
    return RoutePolicy.model_validate({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
