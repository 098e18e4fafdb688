"""Readiness of what runs are routed to: a ModelAdapter (its credentials, its serving Deployment) and a
RoutePolicy (which adapters of its chain exist and are ready).

Pure: the reconcilers pass in the live Secret, the serving observation and the adapters they listed,
and write back the status these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jesus.api.common import Condition
from jesus.api.modeladapter import (
    ModelAdapter,
    ModelAdapterConditionType,
    ModelAdapterReason,
    ModelAdapterStatus,
    ServingStatus,
)
from jesus.api.routepolicy import RoutePolicy, RoutePolicyConditionType, RoutePolicyReason, RoutePolicyStatus
from jesus.logic.conditions import find_condition, is_true, set_condition
from jesus.logic.serving import endpoint_url

ServingObservation = tuple[list[Condition], ServingStatus]
"""What `jesus.logic.serving.serving_status` returns."""


def credentials_condition(
    adapter: ModelAdapter,
    secret: Mapping[str, Any] | None,
    conditions: Sequence[Condition] | None,
    now: datetime,
) -> list[Condition]:
    """`conditions` with CredentialsResolved set from the live Secret the adapter refers to (None: absent).

    Only that the key is there and not empty is checked; the value is never read into a message.
    """
    ref = adapter.spec.credentials_secret_ref
    generation = adapter.metadata.generation
    kind = ModelAdapterConditionType.CREDENTIALS_RESOLVED
    if ref is None:
        return set_condition(
            conditions, kind, True, ModelAdapterReason.NO_CREDENTIALS_NEEDED, "", generation, now
        )
    if secret is None:
        namespace = adapter.metadata.namespace
        message = f"Secret {ref.name} (credentialsSecretRef) does not exist in namespace {namespace}"
        return set_condition(
            conditions, kind, False, ModelAdapterReason.SECRET_NOT_FOUND, message, generation, now
        )
    data = secret.get("data") or {}
    if not data.get(ref.key):
        message = f"Secret {ref.name} has no value under key {ref.key} (credentialsSecretRef.key)"
        return set_condition(
            conditions, kind, False, ModelAdapterReason.SECRET_KEY_MISSING, message, generation, now
        )
    message = f"key {ref.key} of Secret {ref.name}"
    return set_condition(
        conditions, kind, True, ModelAdapterReason.CREDENTIALS_FOUND, message, generation, now
    )


def model_adapter_status(
    adapter: ModelAdapter,
    *,
    secret: Mapping[str, Any] | None,
    serving: ServingObservation | None,
    now: datetime,
) -> ModelAdapterStatus:
    """The whole status of a ModelAdapter: CredentialsResolved, ServingAvailable (with a serving block),
    and Ready when both hold, else Ready False with the reason of what is missing.

    `serving` is required for an adapter with a serving block and ignored otherwise.
    """
    generation = adapter.metadata.generation
    conditions: list[Condition] = list(adapter.status.conditions or []) if adapter.status else []
    serving_status: ServingStatus | None = None
    if adapter.spec.serving is not None:
        if serving is None:
            raise ValueError(
                f"ModelAdapter {adapter.metadata.name!r} serves a model: pass its serving observation"
            )
        conditions, serving_status = serving
    else:
        # A removed serving block leaves no stale ServingAvailable behind.
        conditions = [c for c in conditions if c.type != ModelAdapterConditionType.SERVING_AVAILABLE]
    conditions = credentials_condition(adapter, secret, conditions, now)

    credentials = find_condition(conditions, ModelAdapterConditionType.CREDENTIALS_RESOLVED)
    available = find_condition(conditions, ModelAdapterConditionType.SERVING_AVAILABLE)
    ready = ModelAdapterConditionType.READY
    if credentials is not None and not is_true(conditions, credentials.type):
        conditions = set_condition(
            conditions,
            ready,
            False,
            ModelAdapterReason.CREDENTIALS_MISSING,
            credentials.message,
            generation,
            now,
        )
    elif available is not None and not is_true(conditions, available.type):
        conditions = set_condition(
            conditions, ready, False, available.reason, available.message, generation, now
        )
    else:
        endpoint = _endpoint(adapter)
        where = f" at {endpoint}" if endpoint else ""
        message = f"{adapter.spec.provider.value} model {adapter.spec.model}{where}"
        conditions = set_condition(
            conditions, ready, True, ModelAdapterReason.ADAPTER_READY, message, generation, now
        )
    return ModelAdapterStatus(
        observed_generation=generation,
        conditions=conditions,
        endpoint=_endpoint(adapter),
        self_hosted=adapter.spec.self_hosted,
        serving=serving_status,
    )


def _endpoint(adapter: ModelAdapter) -> str | None:
    return endpoint_url(adapter) if adapter.spec.serving is not None else adapter.spec.endpoint


# --- RoutePolicy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReadiness:
    """Which adapters of a chain can serve now, in chain order, and why the others cannot."""

    ready: tuple[str, ...]
    """Adapters that exist and report Ready, in the chain's order."""
    missing: tuple[str, ...]
    """Adapters the chain names that do not exist."""
    not_ready: Mapping[str, str] = field(default_factory=dict)
    """Adapters that exist but are not Ready, with the reason and message of their Ready condition."""

    @property
    def any_ready(self) -> bool:
        """Whether at least one adapter can serve a run."""
        return bool(self.ready)


def adapter_readiness(adapter: ModelAdapter) -> tuple[bool, str]:
    """Whether an adapter reports Ready, and if not, why (its Ready condition, or that it has none yet)."""
    conditions = adapter.status.conditions if adapter.status else None
    ready = find_condition(conditions, ModelAdapterConditionType.READY)
    if ready is None:
        return False, "not yet observed by the operator"
    if is_true(conditions, ready.type):
        return True, ""
    return False, f"{ready.reason}: {ready.message}" if ready.message else ready.reason


def chain_readiness(chain: Sequence[str], adapters: Mapping[str, ModelAdapter]) -> ChainReadiness:
    """Split a chain (adapter names, in order) into ready, missing and not-ready adapters.

    `adapters` holds the ModelAdapters of the policy's namespace by name.
    """
    ready: list[str] = []
    missing: list[str] = []
    not_ready: dict[str, str] = {}
    for name in chain:
        adapter = adapters.get(name)
        if adapter is None:
            missing.append(name)
            continue
        ok, why = adapter_readiness(adapter)
        if ok:
            ready.append(name)
        else:
            not_ready[name] = why
    return ChainReadiness(ready=tuple(ready), missing=tuple(missing), not_ready=not_ready)


def describe_unready(readiness: ChainReadiness) -> str:
    """The adapters that cannot serve, each with why, as one sentence part ("" when all can)."""
    parts = [f"{name} (not found)" for name in readiness.missing]
    parts += [f"{name} ({why})" for name, why in readiness.not_ready.items()]
    return "; ".join(parts)


def route_policy_status(
    policy: RoutePolicy, adapters: Mapping[str, ModelAdapter], *, now: datetime
) -> RoutePolicyStatus:
    """AdaptersResolved (every adapter of the chain exists), Ready (at least one can serve now) and the
    ready part of the chain, in order: the router and admission use it, runs wait while it is empty."""
    chain = [entry.adapter_ref for entry in policy.spec.chain]
    readiness = chain_readiness(chain, adapters)
    generation = policy.metadata.generation
    conditions = policy.status.conditions if policy.status else None

    resolved = RoutePolicyConditionType.ADAPTERS_RESOLVED
    if readiness.missing:
        message = f"chain names ModelAdapters that do not exist: {', '.join(readiness.missing)}"
        conditions = set_condition(
            conditions, resolved, False, RoutePolicyReason.ADAPTER_NOT_FOUND, message, generation, now
        )
    else:
        message = f"all {len(chain)} adapters of the chain exist"
        conditions = set_condition(
            conditions, resolved, True, RoutePolicyReason.ALL_ADAPTERS_FOUND, message, generation, now
        )

    unready = describe_unready(readiness)
    if readiness.any_ready:
        message = f"ready adapters: {', '.join(readiness.ready)}"
        if unready:
            message += f"; not serving: {unready}"
        conditions = set_condition(
            conditions,
            RoutePolicyConditionType.READY,
            True,
            RoutePolicyReason.CHAIN_READY,
            message,
            generation,
            now,
        )
    else:
        message = f"no adapter of the chain is ready: {unready}"
        conditions = set_condition(
            conditions,
            RoutePolicyConditionType.READY,
            False,
            RoutePolicyReason.NO_READY_ADAPTER,
            message,
            generation,
            now,
        )
    return RoutePolicyStatus(
        observed_generation=generation, conditions=conditions, resolved_chain=list(readiness.ready)
    )
