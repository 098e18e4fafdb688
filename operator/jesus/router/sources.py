"""Where the router learns its ModelAdapters and RoutePolicies: spec files, or the cluster itself.

One interface, `RouteSource`: the adapters it built, keyed `<namespace>/<name>` (a live mapping the
router reads at every call), and the plan of a RoutePolicy for a data classification, resolved when a
run registers and then pinned in its token (ADR 16).

- `FileRouteSource`: the ModelAdapters and RoutePolicies of spec files, read once (`jesus run`,
  `jesus router --specs`).
- `ClusterRouteSource` (`jesus.router.cluster_source`): in a cluster, `jesus router` lists and
  watches the same objects the operator admits runs against. It lives apart, with the Kubernetes
  client it needs, so that a router reading spec files does not load that client (~19 MiB).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from jesus.api import ModelAdapter, RoutePolicy
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.routing import RoutePlan, RouteUnavailableError, plan_from_route_policy
from jesus.redaction import Redactor
from jesus.router.config import CredentialSource, build_routed_adapters
from jesus.router.routed import RoutedAdapter
from jesus.specs import SpecSet

log = logging.getLogger(__name__)

# How long a replaced or deleted adapter stays open for the calls that still use it: the longest
# attempt a RoutePolicy allows (attemptTimeoutSeconds, at most 3600), and a minute more.
RETIRE_GRACE_SECONDS = 3660.0


class RouteSource(Protocol):
    """The adapters a router may call and the RoutePolicies that order them."""

    @property
    def adapters(self) -> dict[str, RoutedAdapter]:
        """The built adapters by `<namespace>/<name>`; the router reads it at every call."""
        ...

    def resolve_plan(self, namespace: str, route_policy: str, classification: str) -> RoutePlan:
        """The policy's plan now, chain named `<namespace>/<adapter>`; ValueError says why there is none."""
        ...


def plan_for_policy(
    policy: RoutePolicy | None,
    namespace: str,
    name: str,
    classification: str,
    adapters: Mapping[str, ModelAdapter],
    problems: Mapping[str, str],
    policy_problems: Mapping[str, str],
) -> RoutePlan:
    """`policy`'s plan over the adapters that were built; ValueError names what is missing."""
    if policy is None:
        key = f"{namespace}/{name}"
        raise ValueError(policy_problems.get(key, f"RoutePolicy {key} is not known"))
    try:
        plan, _ = plan_from_route_policy(policy.spec, classification=classification, adapters=adapters)
    except RouteUnavailableError as exc:
        unusable = [
            problems[f"{namespace}/{entry.adapter_ref}"]
            for entry in policy.spec.chain
            if f"{namespace}/{entry.adapter_ref}" in problems
        ]
        raise ValueError("; ".join([str(exc), *unusable])) from exc
    return dataclasses.replace(plan, chain=tuple(f"{namespace}/{adapter}" for adapter in plan.chain))


def keyed_by_namespace(namespace: str, built: Mapping[str, RoutedAdapter]) -> dict[str, RoutedAdapter]:
    return {
        f"{namespace}/{name}": dataclasses.replace(r, name=f"{namespace}/{name}") for name, r in built.items()
    }


@dataclass
class FileRouteSource:
    """The ModelAdapters and RoutePolicies of a loaded spec set, built once."""

    models: dict[str, dict[str, ModelAdapter]]
    policies: dict[tuple[str, str], RoutePolicy]
    adapters: dict[str, RoutedAdapter]

    @classmethod
    def build(
        cls, spec_set: SpecSet, *, live: bool, credentials: CredentialSource, redact: Redactor | None = None
    ) -> FileRouteSource:
        """Build every adapter of `spec_set`; RouterConfigError names the first that cannot be built."""
        models: dict[str, dict[str, ModelAdapter]] = {}
        for loaded in spec_set.loaded_of_kind("ModelAdapter"):
            if isinstance(loaded.obj, ModelAdapter):
                models.setdefault(loaded.namespace or DEFAULT_NAMESPACE, {})[loaded.name] = loaded.obj
        adapters: dict[str, RoutedAdapter] = {}
        for namespace, objects in models.items():
            built = build_routed_adapters(
                objects, live=live, credentials=credentials, namespace=namespace, redact=redact
            )
            adapters.update(keyed_by_namespace(namespace, built.adapters))
        policies = {
            (loaded.namespace or DEFAULT_NAMESPACE, loaded.name): loaded.obj
            for loaded in spec_set.loaded_of_kind("RoutePolicy")
            if isinstance(loaded.obj, RoutePolicy)
        }
        return cls(models, policies, adapters)

    def resolve_plan(self, namespace: str, route_policy: str, classification: str) -> RoutePlan:
        """See `RouteSource`."""
        policy = self.policies.get((namespace, route_policy))
        return plan_for_policy(
            policy, namespace, route_policy, classification, self.models.get(namespace, {}), {}, {}
        )


async def close_adapter(routed: RoutedAdapter) -> None:
    """Close an adapter's connections; a failure to close is logged, never raised."""
    try:
        await routed.adapter.aclose()
    except Exception:  # closing is best effort: the adapter is out of use either way
        log.warning("Could not close model adapter %s", routed.name, exc_info=True)
