"""One AgentRun in this process (`jesus run`'s engine): admission as the operator decides it, refusals
that say why, the router built from the specs, and the record. The clock and the policy are passed in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.policy import Answer
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.router.config import EnvironmentCredentials
from jesus.runner.local import execute_local_run, prepare_local_run, select_run
from jesus.runner.record import RunOutcome
from jesus.specs import SpecSet, load_text

NOW = datetime(2026, 7, 8, 9, 10, tzinfo=UTC)


class Policy:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    async def decide(self, policy_input: dict[str, Any]) -> Answer:
        self.asked.append(policy_input)
        return self.answer


def specs(*objects: dict[str, Any]) -> SpecSet:
    return load_text(to_yaml(*objects))


async def prepare(spec_set: SpecSet, policy: Policy | None = None, *, live: bool = False, **env: str) -> Any:
    return await prepare_local_run(
        spec_set,
        select_run(spec_set, None),
        live=live,
        credentials=EnvironmentCredentials(env),
        policy=policy,
        now=NOW,
    )


async def test_an_admitted_run_asks_the_policy_once_and_succeeds_in_process() -> None:
    policy = Policy(Answer(True, warnings=("cheap model",)))
    prepared = await prepare(
        specs(scripted_adapter(text="summary"), route_policy(), budget(limit="2.00"), agent_run()), policy
    )
    assert not prepared.refused
    assert prepared.max_cost_micros == 500_000
    assert len(policy.asked) == 1 and policy.asked[0]["run"]["name"] == "run"
    record = prepared.record
    assert record.namespace == "default" and record.dry_run is True
    assert record.policy == {"allowed": True, "reasons": [], "warnings": ["cheap model"], "engine": "test"}
    assert "policy: cheap model" in record.warnings
    assert record.budgets == [
        {
            "name": "budget",
            "limit": "2.00",
            "reserved": "0.50",
            "usedAfter": "0.50",
            "remainingAfter": "1.50",
            "utilizationPercentAfter": 25,
            "admits": True,
        }
    ]
    done = await execute_local_run(prepared)
    assert done.outcome is RunOutcome.SUCCEEDED
    assert done.final_answer == "summary"
    assert (done.input_tokens, done.output_tokens) == (10, 5)


async def test_a_run_over_its_budget_is_refused_without_asking_the_policy() -> None:
    policy = Policy(Answer(True))
    prepared = await prepare(
        specs(scripted_adapter(), route_policy(), budget(limit="0.10"), agent_run()), policy
    )
    assert prepared.refused
    record = prepared.record
    assert record.outcome is RunOutcome.BUDGET_EXCEEDED
    assert "budget" in record.reason
    assert record.started_at == record.finished_at == "2026-07-08T09:10:00Z"
    assert record.budgets[0]["admits"] is False
    assert policy.asked == []
    assert (await execute_local_run(prepared)) is record  # a refused run is returned untouched
    assert record.calls == []


async def test_a_denied_run_carries_the_policy_reasons() -> None:
    policy = Policy(Answer(False, reasons=("team ml may not spend on Sundays", "too dear")))
    prepared = await prepare(specs(scripted_adapter(), route_policy(), budget(), agent_run()), policy)
    assert prepared.refused
    assert prepared.record.outcome is RunOutcome.POLICY_DENIED
    assert prepared.record.reason == "team ml may not spend on Sundays; too dear"
    assert prepared.record.policy is not None and prepared.record.policy["allowed"] is False


async def test_a_policy_engine_that_gave_no_answer_refuses_the_run() -> None:
    policy = Policy(Answer(False, error="OPA is down"))
    prepared = await prepare(specs(scripted_adapter(), route_policy(), budget(), agent_run()), policy)
    assert prepared.refused  # a local run cannot wait for the engine to come back: it fails closed
    assert prepared.record.outcome is RunOutcome.POLICY_DENIED
    assert prepared.record.reason == "OPA is down"


async def test_a_run_whose_route_is_missing_names_it_and_prices_nothing() -> None:
    prepared = await prepare(specs(scripted_adapter(), budget(), agent_run(policy="nowhere")))
    assert prepared.refused
    assert prepared.record.outcome is RunOutcome.INVALID_SPEC
    assert "nowhere" in prepared.record.reason
    assert prepared.record.budgets == [] and prepared.record.policy is None


async def test_without_a_policy_or_a_budget_the_run_warns_and_runs() -> None:
    prepared = await prepare(specs(scripted_adapter(), route_policy(), agent_run(depends_on=("first",))))
    assert not prepared.refused
    warnings = "\n".join(prepared.record.warnings)
    assert "no Budget covers this run" in warnings
    assert "dependsOn (first) is not awaited locally" in warnings
    assert prepared.record.policy is None
    assert (await execute_local_run(prepared)).outcome is RunOutcome.SUCCEEDED


async def test_a_real_provider_is_a_dry_run_and_its_tools_are_not_started() -> None:
    run = agent_run()
    run["spec"]["tools"] = [{"name": "files", "url": "http://files.invalid/mcp"}]
    prepared = await prepare(specs(openai_adapter("gpt"), route_policy(adapters=("gpt",)), run))
    assert not prepared.refused
    assert prepared.dry_run_adapters == ("gpt",)
    assert prepared.task is not None and prepared.task.tool_servers == ()
    assert "tool servers files were not started" in "\n".join(prepared.record.warnings)
    record = await execute_local_run(prepared)
    assert record.warnings[0].startswith("dry run: ModelAdapters gpt were replaced by scripted stand-ins")
    assert record.outcome is RunOutcome.SUCCEEDED


async def test_live_without_a_key_is_refused_naming_the_variable() -> None:
    prepared = await prepare(
        specs(openai_adapter("gpt"), route_policy(adapters=("gpt",)), agent_run()), live=True
    )
    assert prepared.refused
    assert prepared.record.outcome is RunOutcome.INVALID_SPEC
    assert "OPENAI_KEY_APIKEY" in prepared.record.reason and "ModelAdapter gpt" in prepared.record.reason


async def test_a_chain_that_cannot_take_the_runs_data_is_refused_naming_the_route() -> None:
    run = agent_run()
    run["spec"]["dataClassification"] = "restricted"
    prepared = await prepare(specs(scripted_adapter(), route_policy(), run))
    assert prepared.refused
    assert prepared.record.outcome is RunOutcome.INVALID_SPEC
    assert "route" in prepared.record.reason


def test_choosing_the_run() -> None:
    two = specs(scripted_adapter(), route_policy(), agent_run("one"), agent_run("two"))
    assert select_run(two, "two").name == "two"
    with pytest.raises(ValueError, match=r"expected exactly one AgentRun, found 2 \(one, two\)"):
        select_run(two, None)
    with pytest.raises(ValueError, match="no valid AgentRun named 'three'; found: one, two"):
        select_run(two, "three")
    with pytest.raises(ValueError, match=r"found 0 \(none\)"):
        select_run(specs(scripted_adapter()), None)
