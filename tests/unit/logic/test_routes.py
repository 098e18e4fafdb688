"""Readiness of ModelAdapters (credentials, serving) and of RoutePolicies (their chains)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy

from jesus.api.common import Condition, ConditionStatus
from jesus.api.modeladapter import (
    ModelAdapter,
    ModelAdapterConditionType,
    ModelAdapterReason,
    ModelAdapterStatus,
)
from jesus.api.routepolicy import RoutePolicy, RoutePolicyConditionType, RoutePolicyReason
from jesus.logic.clock import format_time
from jesus.logic.conditions import find_condition
from jesus.logic.routes import (
    chain_readiness,
    credentials_condition,
    model_adapter_status,
    route_policy_status,
)
from jesus.logic.serving import serving_status

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
API_KEY = "sk-test-never-printed"


def live_adapter(obj: dict[str, Any], *, generation: int = 1, ready: bool | None = None) -> ModelAdapter:
    """A ModelAdapter as listed from the API server; `ready` gives it a Ready condition."""
    obj = set_field(obj, "metadata.namespace", "team-ml")
    obj = set_field(obj, "metadata.uid", f"uid-{obj['metadata']['name']}")
    obj = set_field(obj, "metadata.generation", generation)
    adapter = ModelAdapter.model_validate(obj)
    if ready is not None:
        reason = ModelAdapterReason.ADAPTER_READY if ready else ModelAdapterReason.CREDENTIALS_MISSING
        message = "" if ready else "Secret openai-key does not exist"
        adapter.status = ModelAdapterStatus(conditions=[ready_condition(ready, reason, message)])
    return adapter


def ready_condition(ready: bool, reason: str, message: str = "") -> Condition:
    return Condition(
        type="Ready",
        status=ConditionStatus.TRUE if ready else ConditionStatus.FALSE,
        reason=reason,
        message=message,
        last_transition_time=format_time(T0),
    )


def secret(data: dict[str, str]) -> dict[str, Any]:
    """A Secret as the API server returns it: values base64 encoded under data."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai-key"}, "data": encoded}


def live_policy(chain: tuple[str, ...], generation: int = 1) -> RoutePolicy:
    obj = set_field(route_policy("route", chain), "metadata.namespace", "team-ml")
    return RoutePolicy.model_validate(set_field(obj, "metadata.generation", generation))


# --- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialsCase:
    name: str
    adapter: dict[str, Any]
    secret: dict[str, Any] | None
    resolved: bool
    reason: ModelAdapterReason


CREDENTIALS_CASES = [
    CredentialsCase(
        "no reference needed", scripted_adapter(), None, True, ModelAdapterReason.NO_CREDENTIALS_NEEDED
    ),
    CredentialsCase("secret absent", openai_adapter(), None, False, ModelAdapterReason.SECRET_NOT_FOUND),
    CredentialsCase(
        "key absent",
        openai_adapter(),
        secret({"other": API_KEY}),
        False,
        ModelAdapterReason.SECRET_KEY_MISSING,
    ),
    CredentialsCase(
        "key empty", openai_adapter(), secret({"apiKey": ""}), False, ModelAdapterReason.SECRET_KEY_MISSING
    ),
    CredentialsCase(
        "key present",
        openai_adapter(),
        secret({"apiKey": API_KEY}),
        True,
        ModelAdapterReason.CREDENTIALS_FOUND,
    ),
]


@pytest.mark.parametrize("case", CREDENTIALS_CASES, ids=[c.name for c in CREDENTIALS_CASES])
def test_credentials_condition(case: CredentialsCase) -> None:
    adapter = live_adapter(case.adapter, generation=2)
    [condition] = credentials_condition(adapter, case.secret, None, T0)
    assert condition.type == ModelAdapterConditionType.CREDENTIALS_RESOLVED
    assert (condition.status == "True", condition.reason) == (case.resolved, case.reason)
    assert condition.observed_generation == 2
    assert API_KEY not in condition.message
    assert base64.b64encode(API_KEY.encode()).decode() not in condition.message


# --- the whole ModelAdapter status --------------------------------------------------------------


def test_a_remote_adapter_with_its_secret_is_ready() -> None:
    adapter = live_adapter(openai_adapter(), generation=3)
    status = model_adapter_status(adapter, secret=secret({"apiKey": API_KEY}), serving=None, now=T0)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("True", ModelAdapterReason.ADAPTER_READY)
    assert "gpt-4.1-mini" in ready.message
    assert (status.observed_generation, status.self_hosted, status.serving) == (3, False, None)


def test_a_remote_adapter_without_its_secret_is_not_ready_and_says_which_secret() -> None:
    status = model_adapter_status(live_adapter(openai_adapter()), secret=None, serving=None, now=T0)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", ModelAdapterReason.CREDENTIALS_MISSING)
    assert "openai-key" in ready.message


def test_a_served_adapter_reports_the_schedulers_reason_and_its_endpoint() -> None:
    adapter = live_adapter(vllm_adapter())
    message = "0/3 nodes are available: 1 Insufficient nvidia.com/gpu."
    pending = {"metadata": {"name": "vllm-llama-x"}, "status": {"conditions": [_unschedulable(message)]}}
    deployment = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    observed = serving_status(adapter, deployment, [pending], now=T0)
    status = model_adapter_status(adapter, secret=None, serving=observed, now=T0)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", ModelAdapterReason.UNSCHEDULABLE)
    assert message in ready.message
    assert status.endpoint == "http://vllm-llama.team-ml.svc:8000/v1"
    assert status.self_hosted is True
    assert status.serving is not None
    assert status.serving.deployment_name == "vllm-llama"


def test_a_served_adapter_with_available_replicas_is_ready() -> None:
    adapter = live_adapter(vllm_adapter())
    deployment = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "availableReplicas": 1}}
    observed = serving_status(adapter, deployment, [], now=T0)
    status = model_adapter_status(adapter, secret=None, serving=observed, now=T0)
    types = {c.type: c.status for c in status.conditions or []}
    assert types == {"ServingAvailable": "True", "CredentialsResolved": "True", "Ready": "True"}


def test_missing_credentials_outrank_serving_in_the_ready_reason() -> None:
    obj = set_field(vllm_adapter(), "spec.credentialsSecretRef", {"name": "llama-key", "key": "token"})
    adapter = live_adapter(obj)
    deployment = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "availableReplicas": 1}}
    status = model_adapter_status(
        adapter, secret=None, serving=serving_status(adapter, deployment, [], now=T0), now=T0
    )
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert ready.reason == ModelAdapterReason.CREDENTIALS_MISSING
    assert "llama-key" in ready.message


def test_a_serving_adapter_needs_its_observation() -> None:
    with pytest.raises(ValueError, match="serving observation"):
        model_adapter_status(live_adapter(vllm_adapter()), secret=None, serving=None, now=T0)


def test_dropping_the_serving_block_drops_serving_available() -> None:
    adapter = live_adapter(scripted_adapter())
    stale = ready_condition(False, ModelAdapterReason.UNSCHEDULABLE).model_copy(
        update={"type": "ServingAvailable"}
    )
    adapter.status = ModelAdapterStatus(conditions=[stale])
    status = model_adapter_status(adapter, secret=None, serving=None, now=T0)
    assert find_condition(status.conditions, "ServingAvailable") is None
    assert find_condition(status.conditions, "Ready") is not None


def test_the_ready_transition_time_holds_while_the_reason_changes() -> None:
    adapter = live_adapter(openai_adapter())
    first = model_adapter_status(adapter, secret=None, serving=None, now=T0)
    adapter.status = first
    later = model_adapter_status(
        adapter, secret=secret({"other": "x"}), serving=None, now=T0 + timedelta(hours=1)
    )
    before, after = find_condition(first.conditions, "Ready"), find_condition(later.conditions, "Ready")
    assert before is not None
    assert after is not None
    assert after.last_transition_time == before.last_transition_time
    assert "no value under key apiKey" in after.message
    adapter.status = later
    fixed = model_adapter_status(
        adapter, secret=secret({"apiKey": "k"}), serving=None, now=T0 + timedelta(hours=2)
    )
    ready = find_condition(fixed.conditions, "Ready")
    assert ready is not None
    assert ready.last_transition_time == "2026-11-22T12:00:00Z"


def _unschedulable(message: str) -> dict[str, str]:
    return {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}


# --- RoutePolicy -------------------------------------------------------------------------------

ADAPTERS = {
    "primary": live_adapter(openai_adapter("primary"), ready=True),
    "fallback": live_adapter(scripted_adapter("fallback"), ready=True),
    "broken": live_adapter(openai_adapter("broken"), ready=False),
    "fresh": live_adapter(openai_adapter("fresh")),  # no status yet
}


@dataclass(frozen=True)
class ChainCase:
    name: str
    chain: tuple[str, ...]
    ready: tuple[str, ...]
    missing: tuple[str, ...]
    not_ready: tuple[str, ...]
    policy_ready: bool
    reason: RoutePolicyReason
    resolved: bool


CHAIN_CASES = [
    ChainCase(
        "all ready, chain order kept",
        ("fallback", "primary"),
        ("fallback", "primary"),
        (),
        (),
        True,
        RoutePolicyReason.CHAIN_READY,
        True,
    ),
    ChainCase(
        "one ready is enough",
        ("broken", "primary", "ghost"),
        ("primary",),
        ("ghost",),
        ("broken",),
        True,
        RoutePolicyReason.CHAIN_READY,
        False,
    ),
    ChainCase(
        "none ready",
        ("broken", "fresh"),
        (),
        (),
        ("broken", "fresh"),
        False,
        RoutePolicyReason.NO_READY_ADAPTER,
        True,
    ),
    ChainCase(
        "none exists", ("ghost",), (), ("ghost",), (), False, RoutePolicyReason.NO_READY_ADAPTER, False
    ),
]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c.name for c in CHAIN_CASES])
def test_chain_readiness(case: ChainCase) -> None:
    readiness = chain_readiness(case.chain, ADAPTERS)
    assert readiness.ready == case.ready
    assert readiness.missing == case.missing
    assert tuple(readiness.not_ready) == case.not_ready


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c.name for c in CHAIN_CASES])
def test_route_policy_status(case: ChainCase) -> None:
    status = route_policy_status(live_policy(case.chain, generation=5), ADAPTERS, now=T0)
    ready = find_condition(status.conditions, RoutePolicyConditionType.READY)
    resolved = find_condition(status.conditions, RoutePolicyConditionType.ADAPTERS_RESOLVED)
    assert ready is not None
    assert resolved is not None
    assert (ready.status == "True", ready.reason) == (case.policy_ready, case.reason)
    assert (resolved.status == "True") == case.resolved
    assert status.resolved_chain == list(case.ready)
    assert status.observed_generation == 5
    for name in case.missing:
        assert f"{name} (not found)" in ready.message
        assert name in resolved.message
    for name in case.not_ready:
        assert name in ready.message


def test_a_not_ready_adapters_reason_reaches_the_policy_message() -> None:
    status = route_policy_status(live_policy(("broken", "fresh")), ADAPTERS, now=T0)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert "broken (CredentialsMissing: Secret openai-key does not exist)" in ready.message
    assert "fresh (not yet observed by the operator)" in ready.message


def test_the_policys_ready_transition_time_moves_only_on_a_flip() -> None:
    policy = live_policy(("broken", "primary"))
    first = route_policy_status(policy, ADAPTERS, now=T0)
    policy.status = first
    same = route_policy_status(policy, {"primary": ADAPTERS["primary"]}, now=T0 + timedelta(minutes=1))
    policy.status = same
    down = route_policy_status(policy, {"broken": ADAPTERS["broken"]}, now=T0 + timedelta(minutes=2))
    times = [find_condition(s.conditions, "Ready") for s in (first, same, down)]
    assert [t.last_transition_time if t else None for t in times] == [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:02:00Z",
    ]
