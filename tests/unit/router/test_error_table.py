"""The one error table: every place that speaks of error kinds agrees with it, kind by kind.

Adding a kind to `ErrorKind` or `RouteErrorKind` without a row, or a row the API, the routing logic, the
router service or the runner reads differently, fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML
from tests.builders.chat import failure
from tests.builders.doubles import FakeAdapter

from jesus.api import FAILOVER_ERROR_CLASSES, ErrorClass, RoutePolicySpec, ScriptedErrorClass
from jesus.logic.routing import (
    BREAKER_FAILURES,
    DEFAULT_FAILOVER_ON,
    NEVER_FAIL_OVER,
    BreakerConfig,
    BreakerState,
    ErrorAction,
    RetryPolicy,
    RoutePlan,
    breaker_on_failure,
    decide_on_error,
)
from jesus.router import RoutedAdapter, Router, RunLedger
from jesus.router.registry import RunRegistry, RunRoute
from jesus.router.service import RouterService, build_app
from jesus.runner import ModelCallError, RunOutcome
from jesus.runner.http_model import RouterHttpModelClient
from jesus_adapters.errors import (
    DEFAULT_FAILOVER_KINDS,
    ERROR_TABLE,
    UNCLASSIFIED,
    AdapterError,
    ErrorKind,
    RouteErrorKind,
    error_rule,
)
from jesus_adapters.types import ChatRequest, Message

ROUTER = "http://router.test"
CRD = Path(__file__).resolve().parents[3] / "crds" / "routepolicies.jesus.dev.yaml"
ALL_KINDS = [*ErrorKind, *RouteErrorKind]


def _failover_on_schema() -> dict[str, Any]:
    crd = YAML(typ="safe").load(CRD.read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    failover_on: dict[str, Any] = schema["properties"]["spec"]["properties"]["failoverOn"]
    return failover_on


def test_every_kind_has_exactly_one_row() -> None:
    assert set(ERROR_TABLE) == {kind.value for kind in ALL_KINDS}
    assert len(ERROR_TABLE) == len(ALL_KINDS), "an adapter kind and a router kind share a name"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_row_is_complete_and_coherent(kind: str) -> None:
    rule = ERROR_TABLE[kind]
    assert 400 <= rule.http_status <= 599
    assert RunOutcome(rule.run_outcome) in (RunOutcome.MODEL_FAILED, RunOutcome.LIMIT_EXCEEDED)
    # A kind that fails over by default is one another attempt can cure; one that stops at once is not.
    assert not (rule.fails_over_by_default and rule.stops_at_once)
    assert not (rule.stops_at_once and rule.retryable)


def test_only_a_spent_allowance_stops_the_run() -> None:
    stopping = {kind for kind, rule in ERROR_TABLE.items() if rule.stops_run}
    assert stopping == {RouteErrorKind.ALLOWANCE_EXCEEDED}


def test_an_unknown_kind_is_a_plain_model_failure() -> None:
    assert error_rule("HTTP418") is UNCLASSIFIED
    assert UNCLASSIFIED.http_status == 502
    assert RunOutcome(UNCLASSIFIED.run_outcome) is RunOutcome.MODEL_FAILED


def test_the_api_speaks_the_adapters_taxonomy() -> None:
    assert [e.value for e in ErrorClass] == [k.value for k in ErrorKind]
    assert FAILOVER_ERROR_CLASSES == DEFAULT_FAILOVER_KINDS
    assert tuple(RoutePolicySpec(chain=[{"adapterRef": "a"}]).failover_on) == DEFAULT_FAILOVER_KINDS
    assert {e.value for e in ScriptedErrorClass} <= {k.value for k in ErrorKind}


def test_the_crd_lists_every_adapter_kind_and_defaults_to_the_tables_failover_kinds() -> None:
    failover_on = _failover_on_schema()
    assert failover_on["items"]["enum"] == [k.value for k in ErrorKind]
    assert failover_on["default"] == [k.value for k in DEFAULT_FAILOVER_KINDS]
    rule = failover_on["x-kubernetes-validations"][0]["rule"]
    listed = {k.value for k in ErrorKind if f"'{k.value}'" in rule}
    assert listed == {k.value for k in DEFAULT_FAILOVER_KINDS}


def test_the_routing_logic_reads_its_sets_from_the_table() -> None:
    assert {k for k, r in ERROR_TABLE.items() if r.stops_at_once} == NEVER_FAIL_OVER
    assert {k for k, r in ERROR_TABLE.items() if r.counts_for_breaker} == BREAKER_FAILURES
    assert {k.value for k in DEFAULT_FAILOVER_KINDS} == DEFAULT_FAILOVER_ON


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_decisions_follow_the_table(kind: ErrorKind) -> None:
    rule = ERROR_TABLE[kind]
    plan = RoutePlan(chain=("a", "b"), retry=RetryPolicy(max_retries=1))
    first = decide_on_error(kind.value, retryable=kind.retryable, retries_done=0, plan=plan)
    spent = decide_on_error(kind.value, retryable=kind.retryable, retries_done=1, plan=plan)
    if rule.stops_at_once:
        assert first.action is spent.action is ErrorAction.STOP
    else:
        assert first.action is (ErrorAction.RETRY if rule.retryable else spent.action)
        assert spent.action is (ErrorAction.FAIL_OVER if rule.fails_over_by_default else ErrorAction.STOP)
    after = breaker_on_failure(BreakerState(), BreakerConfig(), 0.0, kind.value)
    assert after.consecutive_failures == (1 if rule.counts_for_breaker else 0)


@pytest.mark.parametrize("kind", list(ErrorKind))
async def test_the_router_answers_and_the_runner_records_what_the_table_says(kind: ErrorKind) -> None:
    adapter = FakeAdapter([failure(kind)])
    router = Router({"only": RoutedAdapter("only", adapter)})
    service = RouterService(router, RunRegistry(), CollectorRegistry(), admin_token="admin")
    plan = RoutePlan(chain=("only",), retry=RetryPolicy(max_retries=0))
    token = service.registry.register(RunRoute("run-a", "team-a", plan, RunLedger("run-a")))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=build_app(service)), base_url=ROUTER
    ) as client:
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {token}"},
        )
        model = RouterHttpModelClient(ROUTER, token, http_client=client)
        with pytest.raises(ModelCallError) as caught:
            await model.complete(ChatRequest(messages=(Message("user", "hi"),)))

    assert answer.status_code == ERROR_TABLE[kind].http_status
    assert answer.json()["error"]["code"] == kind.value
    assert caught.value.kind == kind.value
    assert RunOutcome(caught.value.run_outcome) is RunOutcome.MODEL_FAILED
    assert not caught.value.stops_run


def test_an_adapter_error_is_retryable_exactly_when_its_row_says_so() -> None:
    for kind in ErrorKind:
        error = AdapterError(kind, "m", provider="p")
        assert error.retryable is ERROR_TABLE[kind].retryable is kind.retryable
