"""The API models: valid objects round-trip, defaults, money, selectors, and rule enforcement."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy

from jesus.api import (
    DEFAULT_THRESHOLDS,
    FAILOVER_ERROR_CLASSES,
    MICROS_PER_UNIT,
    AgentRun,
    AgentRunPhase,
    AgentRunStatus,
    Budget,
    ConditionStatus,
    LabelSelector,
    ModelAdapter,
    MoneyError,
    RoutePolicy,
    format_micros,
    parse_money,
    parse_object,
)
from jesus.api.common import TOKENS_PER_PRICE_UNIT
from jesus_adapters import types as adapter_types

BUILDERS = {
    "scripted-adapter": scripted_adapter,
    "openai-adapter": openai_adapter,
    "vllm-adapter": vllm_adapter,
    "route-policy": route_policy,
    "budget": budget,
    "agent-run": agent_run,
}


def _subset(small: object, big: object) -> bool:
    """Whether every field of `small` appears in `big` with the same value."""
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and _subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list) and isinstance(big, list):
        return len(small) == len(big) and all(_subset(a, b) for a, b in zip(small, big, strict=True))
    return small == big


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_valid_objects_round_trip_to_the_same_kubernetes_json(build) -> None:
    body = build()
    obj = parse_object(body)
    assert _subset(body, obj.to_kubernetes())
    assert type(obj).model_validate(obj.to_kubernetes()) == obj


def test_kubernetes_json_uses_camel_case_and_leaves_out_unset_fields() -> None:
    run = AgentRun.model_validate(agent_run())
    body = run.to_kubernetes()
    assert "routePolicyRef" in body["spec"]
    assert "maxCost" in body["spec"]["limits"]
    assert "status" not in body
    assert "dependsOn" not in body["spec"]
    assert run.spec.route_policy_ref.name == "route"


def test_fields_accept_python_names_too() -> None:
    run = AgentRun.model_validate(agent_run())
    copy = AgentRun.model_validate(run.model_dump())
    assert copy == run


def test_budget_defaults_are_the_documented_ones() -> None:
    spec = Budget.model_validate(budget()).spec
    assert tuple(spec.thresholds) == DEFAULT_THRESHOLDS == (75, 90, 100)
    assert spec.on_exceeded.deny_new_runs is True
    assert spec.on_exceeded.stop_running_runs is False
    assert spec.currency == "USD"
    assert spec.limit_micros == 100 * MICROS_PER_UNIT


def test_route_policy_fails_over_on_retryable_errors_by_default() -> None:
    spec = RoutePolicy.model_validate(route_policy()).spec
    assert tuple(spec.failover_on) == FAILOVER_ERROR_CLASSES
    assert "InvalidRequest" not in spec.failover_on
    assert spec.retries.initial_backoff_milliseconds <= spec.retries.max_backoff_milliseconds


@pytest.mark.parametrize(
    ("body", "self_hosted"),
    [
        (vllm_adapter(), True),
        (openai_adapter(), False),
        (scripted_adapter(), False),
        (
            set_field(
                set_field(openai_adapter(), "spec.provider", "llamacpp"), "spec.endpoint", "http://llama:8080"
            ),
            True,
        ),
    ],
    ids=["vllm-serving", "openai", "scripted", "llamacpp"],
)
def test_self_hosted_is_derived_from_provider_and_serving(body, self_hosted) -> None:
    assert ModelAdapter.model_validate(body).spec.self_hosted is self_hosted


def test_adapter_prices_convert_to_micros() -> None:
    pricing = ModelAdapter.model_validate(openai_adapter()).spec.pricing
    assert pricing.input_micros_per_million == 400_000
    assert pricing.output_micros_per_million == 1_600_000


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0", 0),
        ("3", 3_000_000),
        ("3.00", 3_000_000),
        ("0.015", 15_000),
        ("0.000001", 1),
        ("12.5", 12_500_000),
    ],
)
def test_parse_money(text: str, micros: int) -> None:
    assert parse_money(text) == micros


@pytest.mark.parametrize("text", ["", "-1", "1.0000001", "1e3", "01", ".5", "1.", " 1", "1,00", "NaN"])
def test_parse_money_rejects_what_the_schema_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_money(text)


@pytest.mark.parametrize(
    ("micros", "text"),
    [(0, "0.00"), (3_000_000, "3.00"), (15_000, "0.015"), (1, "0.000001"), (-2_500_000, "-2.50")],
)
def test_format_micros(micros: int, text: str) -> None:
    assert format_micros(micros) == text


def test_the_adapters_count_money_and_prices_in_the_same_units() -> None:
    # jesus_adapters never imports jesus, so it keeps its own copy of these two facts; they must agree.
    assert (adapter_types.MICROS_PER_UNIT, adapter_types.TOKENS_PER_PRICE_UNIT) == (
        MICROS_PER_UNIT,
        TOKENS_PER_PRICE_UNIT,
    )


# Allowance messages and the run record show every place a micro-unit has (the router's figures).
@pytest.mark.parametrize(
    ("micros", "text"), [(0, "0.000000"), (1, "0.000001"), (3_250_000, "3.250000"), (-5, "-0.000005")]
)
def test_format_micros_to_all_six_places(micros: int, text: str) -> None:
    assert format_micros(micros, places=6) == text


@given(st.integers(min_value=0, max_value=10**18 - 1))
def test_money_formatting_and_parsing_are_inverse(micros: int) -> None:
    text = format_micros(micros)
    assert parse_money(text) == micros
    assert Decimal(text) * MICROS_PER_UNIT == micros


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_any_six_place_decimal_parses_exactly(amount: Decimal) -> None:
    text = format(amount.normalize(), "f") if amount != amount.to_integral() else str(int(amount))
    assert parse_money(text) == int(amount * MICROS_PER_UNIT)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"tier": "batch"}}, {"tier": "batch", "x": "y"}, True),
        ({"matchLabels": {"tier": "batch"}}, {"tier": "online"}, False),
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            {"tier": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": "1"}, False),
    ],
)
def test_label_selector_matches_like_kubernetes(selector, labels, matches) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


def test_conditions_are_unique_by_type() -> None:
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "AdapterReady",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    AgentRunStatus.model_validate({"conditions": [condition]})
    with pytest.raises(ValidationError, match="duplicate value"):
        AgentRunStatus.model_validate({"conditions": [condition, {**condition, "status": "False"}]})


def test_status_money_is_integer_micros_never_float() -> None:
    with pytest.raises(ValidationError):
        AgentRunStatus.model_validate({"costMicros": 1.5})
    status = AgentRunStatus.model_validate({"costMicros": 1_500_000, "phase": "Running"})
    assert status.phase is AgentRunPhase.RUNNING
    assert not status.phase.terminal
    assert AgentRunPhase.DENIED.terminal


def test_condition_status_values_are_the_kubernetes_ones() -> None:
    assert {s.value for s in ConditionStatus} == {"True", "False", "Unknown"}


def test_parse_object_refuses_foreign_kinds_and_versions() -> None:
    with pytest.raises(KeyError, match="unknown kind"):
        parse_object({**agent_run(), "kind": "Agent"})
    with pytest.raises(KeyError, match="apiVersion"):
        parse_object({**agent_run(), "apiVersion": "jesus.dev/v1"})
