"""The AgentRun reconcile against an in-memory API server: admission in the documented order, the
runner Job of each attempt, retries, settlement. The cluster tier proves the same against a real one."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.cluster import FakeKube, operator_context, sync_cache
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy

from jesus.api.registration import MeteredSpend
from jesus.controllers.agentrun import reconcile_run, release_on_delete, wake_for_budget
from jesus.controllers.agentrun.holds import settle_orphaned_holds
from jesus.controllers.context import OperatorSettings
from jesus.controllers.router_admin import RouterRegistrationError
from jesus.controllers.runner_keys import RunnerKeyError, RunnerKeys
from jesus.controllers.shards import AllShards
from jesus.kube import JsonObject
from jesus.logic import sealing
from jesus.logic.egress import RunnerEgress
from jesus.logic.queueing import LABEL_JOB_UID, LABEL_PRIORITY_CLASS, LABEL_QUEUE_NAME, QueueSettings
from jesus.logic.runs import summarize_record
from jesus.policy.decision import Decision, PolicyInput, fail_closed
from jesus.redaction import RedactionConfig

NS = "team"
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
KEY = "sk-ant-api03-" + "R" * 40


class Engine:
    """A policy engine with a fixed answer that counts how often it was asked."""

    name = "fake"

    def __init__(self, answer: Decision | None = None) -> None:
        self.answer = answer or Decision(allow=True, reasons=(), warnings=(), engine="fake")
        self.asked: list[PolicyInput] = []

    async def decide(self, policy_input: PolicyInput) -> Decision:
        self.asked.append(policy_input)
        return self.answer


class World:
    """One namespace with an adapter, a route, a Budget and a run, and the operator over it."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        limit: str = "100.00",
        run: JsonObject | None = None,
        kube: FakeKube | None = None,
    ) -> None:
        self.now = NOW
        self.kube = kube or FakeKube()
        self.engine = engine or Engine()
        self.context = operator_context(self.kube, self.engine, lambda: self.now)
        for obj in (
            scripted_adapter(namespace=NS),
            route_policy(namespace=NS),
            budget(namespace=NS, limit=limit),
        ):
            self.kube.put(obj)
        self.kube.put(run or agent_run(namespace=NS))

    async def reconcile(self, name: str = "run") -> dict[str, Any]:
        sync_cache(self.context, self.kube)
        await reconcile_run(self.context, NS, name)
        return self.status(name)

    def status(self, name: str = "run") -> dict[str, Any]:
        found = self.kube.find("AgentRun", NS, name)
        assert found is not None
        status: dict[str, Any] = found.get("status", {})
        return status

    def budget(self) -> dict[str, Any]:
        found = self.kube.find("Budget", NS, "budget")
        assert found is not None
        status: dict[str, Any] = found.get("status", {})
        return status

    def finish_job(self, name: str, *, complete: bool, record: dict[str, Any] | None = None) -> None:
        job = self.kube.find("Job", NS, name)
        assert job is not None, f"no Job {name}"
        job["status"] = {"conditions": [{"type": "Complete" if complete else "Failed", "status": "True"}]}
        self.kube.put(job)
        if record is not None:
            terminated = {"message": summarize_record(record)}
            self.kube.put(
                {
                    "kind": "Pod",
                    "metadata": {"name": f"{name}-pod", "namespace": NS, "labels": {"job-name": name}},
                    "status": {"containerStatuses": [{"state": {"terminated": terminated}}]},
                }
            )


def condition(status: dict[str, Any], type_: str) -> tuple[str, str, str]:
    found = next(c for c in status["conditions"] if c["type"] == type_)
    return found["status"], found["reason"], found["message"]


async def test_an_admitted_run_holds_its_maximum_cost_and_starts_its_first_job() -> None:
    world = World()
    status = await world.reconcile()
    assert status["phase"] == "Running"
    assert condition(status, "PolicyAllowed")[:2] == ("True", "PolicyAllowed")
    assert condition(status, "BudgetReserved") == ("True", "BudgetReserved", "reserved 0.50 on team/budget")
    assert condition(status, "Admitted")[:2] == ("True", "Admitted")
    assert [(a["number"], a["outcome"]) for a in status["attempts"]] == [(1, "Running")]
    job = status["attempts"][0]["jobName"]
    assert world.kube.find("Job", NS, job) is not None
    assert status["budgetReservations"] == [
        {"namespace": NS, "budget": "budget", "amountMicros": 500_000, "settled": False}
    ]
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (500_000, 0)
    assert len(world.engine.asked) == 1
    assert world.engine.asked[0]["cluster"] == {"source": "cluster", "now": "2026-11-22T04:00:00Z"}
    # Admission writes no Event and no Secret of the run's own: the router token travels sealed in the
    # Job, and the key that opens it is the namespace's one Secret, made once.
    assert world.kube.events == []
    assert [key for key in world.kube.objects if key[0] == "Secret"] == [("Secret", NS, "jesus-runner-key")]
    key = sealing.secret_key(world.kube.find("Secret", NS, "jesus-runner-key") or {})
    assert sealing.unseal(key, sealed_token(world, job)) == "token-1"


def sealed_token(world: World, job: str) -> str:
    found = world.kube.find("Job", NS, job)
    assert found is not None
    sealed = sealing.sealed_token_of(found)
    assert sealed is not None
    return sealed


async def test_every_run_of_a_namespace_shares_one_runner_key_and_a_replaced_key_is_read_again() -> None:
    world = World()
    await world.reconcile()
    world.kube.put(agent_run(name="second", namespace=NS))
    second = (await world.reconcile("second"))["attempts"][0]["jobName"]
    assert [key for key in world.kube.objects if key[0] == "Secret"] == [("Secret", NS, "jesus-runner-key")]
    key = sealing.secret_key(world.kube.find("Secret", NS, "jesus-runner-key") or {})
    assert sealing.unseal(key, sealed_token(world, second)) == "token-2"
    # Hostile: a Secret of that name that is not a runner key is refused, naming it; no Job is made.
    world.kube.objects.pop(("Secret", NS, "jesus-runner-key"))
    world.kube.put({"kind": "Secret", "metadata": {"name": "jesus-runner-key", "namespace": NS}, "data": {}})
    world.context.runner_keys = RunnerKeys(world.kube, lambda: 0.0, reread_seconds=0)
    world.kube.put(agent_run(name="third", namespace=NS))
    with pytest.raises(RunnerKeyError, match=f"Secret {NS}/jesus-runner-key is not a Jesus runner key"):
        await world.reconcile("third")
    assert world.kube.find("Job", NS, "third-a1") is None


class CountingKube(FakeKube):
    """A FakeKube that counts reads and creates and, like a real API server, answers after a pause,
    so reconciles running at once interleave."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[tuple[str, str]] = Counter()

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        self.asked["GET", kind] += 1
        await asyncio.sleep(0)
        return await super().get(kind, namespace, name)

    async def create(self, obj: JsonObject) -> JsonObject:
        self.asked["POST", obj["kind"]] += 1
        await asyncio.sleep(0)
        return await super().create(obj)


async def test_the_first_runs_of_a_namespace_at_once_make_its_account_and_key_once() -> None:
    world = World(kube=CountingKube(), limit="1000.00")
    names = [f"burst-{i}" for i in range(20)]
    for name in names:
        world.kube.put(agent_run(name=name, namespace=NS))
    sync_cache(world.context, world.kube)
    await asyncio.gather(*(reconcile_run(world.context, NS, name) for name in names))
    assert all(world.kube.find("Job", NS, f"{name}-a1") is not None for name in names)
    asked = world.kube.asked  # type: ignore[attr-defined]
    assert asked["POST", "ServiceAccount"] == 1
    assert (asked["GET", "Secret"], asked["POST", "Secret"]) == (1, 1)


async def test_a_succeeded_job_settles_the_metered_cost() -> None:
    world = World()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    call = {"adapter": f"{NS}/scripted", "model": "scripted-1", "inputTokens": 10, "costMicros": 120_000}
    world.finish_job(
        job, complete=True, record={"outcome": "Succeeded", "costMicros": 120_000, "calls": [call]}
    )
    status = await world.reconcile()
    assert status["phase"] == "Succeeded"
    assert (status["costMicros"], status["calls"][0]["adapter"]) == (120_000, "scripted")
    assert status["budgetReservations"][0]["settled"] is True
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, 120_000)
    assert condition(status, "Succeeded")[:2] == ("True", "JobSucceeded")


async def test_an_attempt_that_left_no_result_is_charged_what_was_held() -> None:
    world = World()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    world.finish_job(job, complete=False)
    status = await world.reconcile()
    assert (status["phase"], status["costMicros"]) == ("Failed", 500_000)
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, 500_000)
    assert condition(status, "Failed")[:2] == ("True", "JobFailed")


async def test_a_denied_run_never_holds_money_nor_starts() -> None:
    world = World(Engine(Decision(allow=False, reasons=("too dear",), warnings=(), engine="fake")))
    status = await world.reconcile()
    assert status["phase"] == "Denied"
    assert condition(status, "PolicyAllowed") == ("False", "PolicyDenied", "too dear")
    assert status["policy"]["reasons"] == ["too dear"]
    assert "budgetReservations" not in status and "jobName" not in status
    assert world.budget() == {}  # the ledger never wrote the Budget
    assert [k for k in world.kube.objects if k[0] == "Job"] == []


async def test_a_run_that_does_not_fit_waits_for_money_without_asking_the_policy() -> None:
    world = World(limit="0.10")
    status = await world.reconcile()
    assert status["phase"] == "Waiting"
    state, reason, message = condition(status, "BudgetReserved")
    assert (state, reason) == ("False", "BudgetExceeded")
    assert message.startswith('budget "budget" (team=ml, Daily) would be exceeded: 0.10 USD left of 0.10 USD')
    assert world.engine.asked == []
    assert world.context.budget_waits.get(NS, "run") is not None
    version = world.kube.find("AgentRun", NS, "run")["metadata"]["resourceVersion"]  # type: ignore[index]
    await world.reconcile()  # nothing changed: nothing decided, nothing written
    assert world.kube.find("AgentRun", NS, "run")["metadata"]["resourceVersion"] == version  # type: ignore[index]

    world.kube.put(set_field(world.kube.find("Budget", NS, "budget") or {}, "spec.limit", "5.00"))
    status = await world.reconcile()
    assert status["phase"] == "Running"
    assert len(world.engine.asked) == 1


async def test_money_that_frees_goes_to_the_higher_priority_before_the_older_run() -> None:
    older = set_field(agent_run("older", namespace=NS), "metadata.creationTimestamp", "2026-11-22T03:00:00Z")
    urgent = set_field(
        set_field(agent_run("urgent", namespace=NS), "spec.priority", 500),
        "metadata.creationTimestamp",
        "2026-11-22T03:30:00Z",
    )
    world = World(limit="0.10", run=older)
    world.kube.put(urgent)
    for name in ("older", "urgent"):
        status = await world.reconcile(name)
        assert status["phase"] == "Waiting"
        assert status["message"].endswith("waiting runs start by priority, then age")
    # Room for one 0.50 run: the Budget's controller would write these figures after the limit is raised.
    raised = set_field(world.kube.find("Budget", NS, "budget") or {}, "spec.limit", "0.60")
    world.kube.put(set_field(raised, "status", {"remainingMicros": 600_000}))
    sync_cache(world.context, world.kube)
    await wake_for_budget(world.context, NS, "budget")
    assert (world.status("urgent")["phase"], world.status("older")["phase"]) == ("Running", "Waiting")


async def test_no_policy_decision_keeps_the_run_waiting_with_nothing_held() -> None:
    world = World(Engine(fail_closed("fake", "the engine is down")))
    status = await world.reconcile()
    assert status["phase"] == "Waiting"
    assert condition(status, "PolicyAllowed") == ("Unknown", "PolicyUnavailable", "the engine is down")
    assert world.budget() == {}


async def test_a_run_waits_for_its_route_and_its_dependencies() -> None:
    world = World(run=agent_run(namespace=NS, policy="elsewhere"))
    status = await world.reconcile()
    assert (status["phase"], condition(status, "Admitted")[:2]) == (
        "Waiting",
        ("False", "RoutePolicyNotFound"),
    )

    world = World(run=agent_run(namespace=NS, depends_on=("first",)))
    status = await world.reconcile()
    assert condition(status, "DependenciesReady") == ("False", "WaitingForDependencies", "not found: first")
    world.kube.put({**agent_run("first", namespace=NS), "status": {"phase": "Succeeded"}})
    status = await world.reconcile()
    assert condition(status, "DependenciesReady")[:2] == ("True", "DependenciesSucceeded")
    assert status["phase"] == "Running"

    world.kube.put({**agent_run("first", namespace=NS), "status": {"phase": "Denied"}})
    world = World(run=agent_run(namespace=NS, depends_on=("gone",)))
    world.kube.put({**agent_run("gone", namespace=NS), "status": {"phase": "Failed"}})
    status = await world.reconcile()
    assert (status["phase"], condition(status, "DependenciesReady")[1]) == ("Failed", "DependencyFailed")


async def test_a_failed_attempt_is_retried_after_its_backoff() -> None:
    run = set_field(agent_run(namespace=NS), "spec.retryPolicy", {"maxRetries": 1, "backoffSeconds": 10})
    world = World(run=run)
    first = (await world.reconcile())["attempts"][0]["jobName"]
    world.finish_job(first, complete=False, record={"outcome": "Failed", "reason": "boom"})
    status = await world.reconcile()
    assert condition(status, "Running") == ("False", "Retrying", "attempt 1 failed: Failed: boom")
    world.now = NOW + timedelta(seconds=5)
    status = await world.reconcile()
    assert condition(status, "Running")[2] == "attempt 1 failed; next in 10s"
    assert len(status["attempts"]) == 1
    world.now = NOW + timedelta(seconds=11)
    status = await world.reconcile()
    assert [(a["number"], a["outcome"]) for a in status["attempts"]] == [(1, "Failed"), (2, "Running")]
    world.finish_job(status["attempts"][1]["jobName"], complete=False, record={"outcome": "Failed"})
    status = await world.reconcile()
    assert (status["phase"], condition(status, "Failed")[1]) == ("Failed", "RetriesExhausted")


RUNNER_EGRESS = RunnerEgress(rules=({"to": [{"podSelector": {"matchLabels": {"app": "router"}}}]},))
TOOLS = [
    {"name": "git", "url": "http://git-mcp:8080/mcp"},
    {"name": "web", "url": "https://mcp.example.com/mcp"},
    {"name": "fs", "stdio": {"command": "mcp-server-filesystem"}},
]


def git_service() -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "git-mcp", "namespace": NS},
        "spec": {"selector": {"app": "git-mcp"}, "ports": [{"port": 8080, "targetPort": 3000}]},
    }


async def test_each_run_gets_a_network_policy_before_its_job_that_allows_its_tool_servers() -> None:
    world = World(run=set_field(agent_run(namespace=NS), "spec.tools", TOOLS))
    world.context.settings = OperatorSettings(runner_egress=RUNNER_EGRESS)
    world.kube.put(git_service())
    status = await world.reconcile()
    policy = world.kube.find("NetworkPolicy", NS, "run-runner")
    job = world.kube.find("Job", NS, status["attempts"][0]["jobName"])
    assert policy is not None and job is not None
    # Created first: a pod that no policy selects may reach anything.
    assert int(policy["metadata"]["resourceVersion"]) < int(job["metadata"]["resourceVersion"])
    [owner] = policy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("AgentRun", "run", "uid-run")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        job["spec"]["template"]["metadata"]["labels"].items()
    )
    egress = policy["spec"]["egress"]
    assert egress[0] == RUNNER_EGRESS.rules[0]
    assert egress[1:] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                    "podSelector": {"matchLabels": {"app": "git-mcp"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 3000}],
        }
    ]
    warnings = [e for e in world.kube.events if e[2] == "ToolServerNotAllowed"]
    assert len(warnings) == 1 and "'web'" in warnings[0][3] and "outside the cluster" in warnings[0][3]


async def test_a_retry_brings_the_policy_to_the_spec_it_runs_and_a_missing_service_opens_nothing() -> None:
    run = set_field(agent_run(namespace=NS), "spec.retryPolicy", {"maxRetries": 1, "backoffSeconds": 0})
    world = World(run=set_field(run, "spec.tools", TOOLS[:1]))
    world.context.settings = OperatorSettings(runner_egress=RUNNER_EGRESS)
    first = (await world.reconcile())["attempts"][0]["jobName"]
    policy = world.kube.find("NetworkPolicy", NS, "run-runner")
    assert policy is not None and policy["spec"]["egress"] == list(RUNNER_EGRESS.rules)
    assert any("no Service git-mcp in namespace team" in e[3] for e in world.kube.events)
    world.kube.put(git_service())
    world.finish_job(first, complete=False, record={"outcome": "Failed", "reason": "no tools"})
    await world.reconcile()
    status = await world.reconcile()
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Running"]
    policy = world.kube.find("NetworkPolicy", NS, "run-runner")
    assert policy is not None and len(policy["spec"]["egress"]) == 2


async def test_without_runner_egress_settings_no_network_policy_is_made() -> None:
    world = World(run=set_field(agent_run(namespace=NS), "spec.tools", TOOLS))
    await world.reconcile()
    assert not [key for key in world.kube.objects if key[0] == "NetworkPolicy"]


async def test_a_spent_budget_stops_a_running_run() -> None:
    world = World()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    spent = set_field(
        world.kube.find("Budget", NS, "budget") or {}, "spec.onExceeded", {"stopRunningRuns": True}
    )
    spent["status"]["spentMicros"] = 100_000_000
    world.kube.put(spent)
    status = await world.reconcile()
    assert (status["phase"], condition(status, "Failed")[1]) == ("Failed", "StoppedByBudget")
    assert ("Job", NS, job) in world.kube.deleted


async def test_a_changed_spec_after_admission_is_reported_not_applied() -> None:
    world = World()
    await world.reconcile()
    run = world.kube.find("AgentRun", NS, "run") or {}
    world.kube.put(set_field(run, "spec.task.instructions", "Something else."))
    status = await world.reconcile()
    assert condition(status, "SpecChanged")[:2] == ("True", "SpecChanged")
    assert status["phase"] == "Running"


@pytest.mark.parametrize(("running", "spent"), [(True, 500_000), (False, 0)])
async def test_a_deleted_run_gives_back_or_pays_its_holds(running: bool, spent: int) -> None:
    world = World()
    await world.reconcile()
    body = world.kube.find("AgentRun", NS, "run") or {}
    if not running:
        body["status"]["phase"] = "Waiting"
    await release_on_delete(world.context, body)
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, spent)


async def test_status_and_events_carry_a_failure_redacted_and_a_second_reconcile_writes_nothing() -> None:
    world = World()
    world.kube.redact = RedactionConfig(names=False).redactor()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    reason = f"the runner saw {KEY} and ada@example.com"
    world.finish_job(job, complete=False, record={"outcome": "Failed", "reason": reason})
    status = await world.reconcile()
    stored = str(status) + str(world.kube.events)
    assert KEY not in stored and "ada@example.com" not in stored
    assert "[REDACTED:anthropic-key]" in status["attempts"][0]["message"]
    assert "[REDACTED:email]" in condition(status, "Failed")[2]
    assert any("[REDACTED:anthropic-key]" in e[3] for e in world.kube.events if e[2] == "JobFailed")
    version = world.kube.find("AgentRun", NS, "run")["metadata"]["resourceVersion"]  # type: ignore[index]
    await world.reconcile()
    again = world.kube.find("AgentRun", NS, "run")
    assert again is not None and again["metadata"]["resourceVersion"] == version, "no rewrite"


@pytest.mark.parametrize(
    ("reflection", "expected", "counted"),
    [
        (
            {"passed": True, "failed": []},
            ("True", "ChecklistPassed", "the reflection passed LAW-REFLECT-001"),
            {},
        ),
        (
            {"passed": False, "failed": ["evidence", "cost"]},
            ("False", "ChecklistFailed", "the reflection failed LAW-REFLECT-001 on: evidence, cost"),
            {"evidence": 1.0, "cost": 1.0},
        ),
        # A pod that names items of its own makes no new metric series: only the checklist's items count.
        (
            {"passed": False, "failed": ["evidence", 'goal" } x']},
            ("False", "ChecklistFailed", 'the reflection failed LAW-REFLECT-001 on: evidence, goal" } x'),
            {"evidence": 1.0},
        ),
    ],
)
async def test_a_finished_run_says_in_status_and_metrics_whether_its_reflection_passed(
    reflection: dict[str, Any], expected: tuple[str, str, str], counted: dict[str, float]
) -> None:
    from prometheus_client import CollectorRegistry

    from jesus.controllers.metrics import OperatorMetrics

    world = World()
    registry = CollectorRegistry()
    world.context.metrics = OperatorMetrics(registry)
    job = (await world.reconcile())["attempts"][0]["jobName"]
    record = {"outcome": "Succeeded", "costMicros": 10, "reflection": {**reflection, "items": ["kept out"]}}
    world.finish_job(job, complete=True, record=record)
    status = await world.reconcile()
    assert status["phase"] == "Succeeded" and condition(status, "Reflected") == expected
    result = "passed" if reflection["passed"] else "failed"
    labels = {"namespace": NS, "team": "ml", "result": result}
    assert registry.get_sample_value("jesus_reflections_total", labels) == 1.0
    for item in ("evidence", "cost", "goal"):
        value = registry.get_sample_value(
            "jesus_reflection_item_failures_total", {"namespace": NS, "item": item}
        )
        assert value == counted.get(item, 0.0), "every item has a series from the first reflection"
    await world.reconcile()  # a second reconcile counts nothing again
    assert registry.get_sample_value("jesus_reflections_total", labels) == 1.0


async def test_a_run_without_a_reflection_or_with_a_garbled_one_has_no_reflected_condition() -> None:
    # The termination message is the pod's to write: a hostile one is read, never trusted.
    for reflection in (None, {"passed": "yes"}, {"passed": True, "failed": "evidence"}, ["evidence"]):
        world = World()
        job = (await world.reconcile())["attempts"][0]["jobName"]
        world.finish_job(job, complete=True)
        message = json.dumps({"v": 1, "outcome": "Succeeded", "costMicros": 0, "reflection": reflection})
        world.kube.put(
            {
                "kind": "Pod",
                "metadata": {"name": f"{job}-pod", "namespace": NS, "labels": {"job-name": job}},
                "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]},
            }
        )
        status = await world.reconcile()
        assert status["phase"] == "Succeeded"
        assert "Reflected" not in [c["type"] for c in status["conditions"]], reflection


# --- with Kueue ----------------------------------------------------------------------------------------


def kueue_world(**run_fields: Any) -> World:
    run = agent_run(namespace=NS)
    for path, value in run_fields.items():
        run = set_field(run, path.replace("__", "."), value)
    world = World(run=run)
    world.context.settings = OperatorSettings(queueing=QueueSettings())
    return world


def put_workload(world: World, job: str, *conditions: dict[str, Any], **status: Any) -> None:
    uid = world.kube.find("Job", NS, job)["metadata"]["uid"]  # type: ignore[index]
    world.kube.put(
        {
            "kind": "Workload",
            "metadata": {"name": f"job-{job}", "namespace": NS, "labels": {LABEL_JOB_UID: uid}},
            "status": {"conditions": list(conditions), **status},
        }
    )


async def test_with_kueue_the_job_is_created_suspended_and_the_run_says_it_is_queued() -> None:
    world = kueue_world(spec__priority=700)
    status = await world.reconcile()
    job = world.kube.find("Job", NS, status["attempts"][0]["jobName"])
    assert job is not None and job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][LABEL_QUEUE_NAME] == "ml"
    assert job["metadata"]["labels"][LABEL_PRIORITY_CLASS] == "interactive"
    assert status["phase"] == "Running"
    assert condition(status, "Queued")[:2] == ("True", "WorkloadPending")
    assert condition(status, "Running")[:2] == ("False", "QueuedInKueue")
    # Money is held before Kueue sees the Job.
    assert world.budget()["reservedMicros"] == 500_000

    missing = {
        "type": "QuotaReserved",
        "status": "False",
        "reason": "Inadmissible",
        "message": "LocalQueue ml doesn't exist",
    }
    put_workload(world, job["metadata"]["name"], missing)
    status = await world.reconcile()
    assert condition(status, "Queued")[:2] == ("True", "Inadmissible")
    assert "LocalQueue ml doesn't exist" in condition(status, "Queued")[2]

    job["spec"]["suspend"] = False
    world.kube.put(job)
    put_workload(
        world,
        job["metadata"]["name"],
        {"type": "Admitted", "status": "True", "reason": "Admitted"},
        admission={"clusterQueue": "ml"},
    )
    status = await world.reconcile()
    assert condition(status, "Queued")[:2] == ("False", "Admitted")
    assert condition(status, "Running")[:2] == ("True", "JobRunning")
    # Admission by Kueue is no refusal: no Warning Event for Queued=False.
    assert not [e for e in world.kube.events if e[1] == "Warning"]


async def test_a_preempted_attempt_ends_its_job_and_is_retried_under_the_retry_policy_holding_once() -> None:
    world = kueue_world(spec__retryPolicy={"maxRetries": 1, "backoffSeconds": 0})
    job = (await world.reconcile())["attempts"][0]["jobName"]
    evicted = {
        "type": "Evicted",
        "status": "True",
        "reason": "Preempted",
        "message": "Preempted to accommodate a higher priority Workload",
    }
    put_workload(world, job, evicted)
    status = await world.reconcile()
    assert [a["outcome"] for a in status["attempts"]] == ["Failed"]
    assert "preempted by Kueue (Preempted)" in status["attempts"][0]["message"]
    assert ("Job", NS, job) in world.kube.deleted
    status = await world.reconcile()
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Running"]
    second = world.kube.find("Job", NS, status["attempts"][1]["jobName"])
    assert second is not None and second["spec"]["suspend"] is True
    assert condition(status, "Queued")[:2] == ("True", "WorkloadPending")
    assert world.budget()["reservedMicros"] == 500_000  # one hold through preemption and retry


async def test_a_run_without_retries_is_retried_after_a_preemption_still_holding_once() -> None:
    world = kueue_world()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    stats = {"evictions": [{"reason": "Preempted", "underlyingCause": "InCohortReclamation", "count": 1}]}
    put_workload(world, job, schedulingStats=stats)
    status = await world.reconcile()
    assert status["phase"] == "Running"
    assert condition(status, "Running")[:2] == ("False", "Retrying")
    world.now += timedelta(seconds=31)  # the retry policy's backoff (30 s by default) still applies
    status = await world.reconcile()
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Running"]
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (500_000, 0)


def preempt(world: World, job: str) -> None:
    evicted = {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "for a higher lane"}
    put_workload(world, job, evicted)


async def test_a_preempted_attempts_metered_spend_is_charged_once_with_the_run() -> None:
    world = kueue_world(spec__retryPolicy={"maxRetries": 1, "backoffSeconds": 0})
    router = world.context.router
    job = (await world.reconcile())["attempts"][0]["jobName"]
    # The router metered 70_000 for the first attempt's token, and holds 5_000 for a call in flight.
    router.metered["token-1"] = MeteredSpend(  # type: ignore[attr-defined]
        tokens=40, cost_micros=70_000, in_flight_tokens=3, in_flight_cost_micros=5_000
    )
    preempt(world, job)
    status = await world.reconcile()
    first = status["attempts"][0]
    assert (first["outcome"], first["meteredCostMicros"], first["meteredTokens"]) == ("Failed", 75_000, 43)
    assert status["costMicros"] == 75_000
    assert router.revoked == ["token-1"]  # type: ignore[attr-defined]
    # Reconciling again neither meters nor counts it twice.
    status = await world.reconcile()
    status = await world.reconcile()
    assert router.revoked == ["token-1"]  # type: ignore[attr-defined]
    assert [a["outcome"] for a in status["attempts"]] == ["Failed", "Running"]
    second = status["attempts"][1]["jobName"]
    world.kube.find("Job", NS, second)["spec"]["suspend"] = False  # type: ignore[index]
    call = {"adapter": f"{NS}/scripted", "model": "scripted-1", "inputTokens": 10, "costMicros": 120_000}
    world.finish_job(
        second, complete=True, record={"outcome": "Succeeded", "costMicros": 120_000, "calls": [call]}
    )
    put_workload(world, second, {"type": "Admitted", "status": "True", "reason": "Admitted"})
    status = await world.reconcile()
    assert status["phase"] == "Succeeded"
    # The reported call and the metered lost attempt, once each; the attempt that reported is not metered.
    assert status["costMicros"] == 195_000
    assert "meteredCostMicros" not in status["attempts"][1]
    assert router.revoked == ["token-1"]  # type: ignore[attr-defined]
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, 195_000)


async def test_a_killed_last_attempt_is_charged_what_the_router_metered_not_the_hold() -> None:
    world = World()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    world.context.router.metered["token-1"] = MeteredSpend(cost_micros=30_000, tokens=9)  # type: ignore[attr-defined]
    world.finish_job(job, complete=False)  # no termination message: the pod was killed
    status = await world.reconcile()
    assert (status["phase"], status["costMicros"]) == ("Failed", 30_000)
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, 30_000)


async def test_a_lost_attempt_the_router_cannot_meter_is_charged_the_hold() -> None:
    # Careless: the runner key was replaced after the Job was made, so its token cannot be opened; the
    # router is not asked and the hold is charged.
    world = World()
    job = (await world.reconcile())["attempts"][0]["jobName"]
    world.kube.objects.pop(("Secret", NS, "jesus-runner-key"))
    world.context.runner_keys = RunnerKeys(world.kube, lambda: 0.0, reread_seconds=0)
    world.finish_job(job, complete=False)
    status = await world.reconcile()
    assert (status["phase"], status["costMicros"]) == ("Failed", 500_000)
    assert world.context.router.revoked == []  # type: ignore[attr-defined]
    assert "meteredCostMicros" not in status["attempts"][0]


async def test_an_unreachable_router_leaves_the_preempted_attempt_to_the_next_reconcile() -> None:
    world = kueue_world(spec__retryPolicy={"maxRetries": 1, "backoffSeconds": 0})
    job = (await world.reconcile())["attempts"][0]["jobName"]
    preempt(world, job)

    async def down(token: str) -> None:
        raise RouterRegistrationError("the router is unreachable: connection refused")

    world.context.router.revoke = down  # type: ignore[method-assign]
    with pytest.raises(RouterRegistrationError):
        await world.reconcile()
    # Nothing changed: the Job is still there, and the attempt still running.
    assert world.kube.find("Job", NS, job) is not None
    assert [a["outcome"] for a in world.status()["attempts"]] == ["Running"]


async def test_a_queue_name_rule_that_fails_for_the_team_leaves_the_run_without_a_job_saying_why() -> None:
    world = kueue_world()
    world.context.settings = OperatorSettings(
        queueing=QueueSettings(queue_name="agents-of-the-platform-team-{team}-" + "q" * 40)
    )
    status = await world.reconcile()
    assert condition(status, "Queued")[:2] == ("True", "InvalidQueueName")
    assert "for team 'ml'" in condition(status, "Queued")[2]
    assert "attempts" not in status
    assert not [key for key in world.kube.objects if key[0] == "Job"]


class NoShards:
    def owns(self, namespace: str, name: str) -> bool:
        return False

    def owned(self) -> frozenset[int]:
        return frozenset()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def test_the_hold_of_a_run_deleted_while_no_operator_watched_is_charged_once() -> None:
    world = World()
    await world.reconcile()
    sync_cache(world.context, world.kube)
    # A live run's hold is left alone.
    assert await settle_orphaned_holds(world.context) == 0
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (500_000, 0)
    # Careless: the run is deleted and made again under its name (another UID) while the operator was
    # down; its DELETED event was never seen. Another replica's shard is not this one's to settle.
    world.kube.objects.pop(("AgentRun", NS, "run"))
    again = agent_run(namespace=NS)
    again["metadata"]["uid"] = "uid-run-again"
    world.kube.put(again)
    sync_cache(world.context, world.kube)
    world.context.shards = NoShards()
    assert await settle_orphaned_holds(world.context) == 0
    world.context.shards = AllShards()
    assert await settle_orphaned_holds(world.context) == 1
    assert (world.budget()["reservedMicros"], world.budget()["spentMicros"]) == (0, 500_000)
    sync_cache(world.context, world.kube)
    assert await settle_orphaned_holds(world.context) == 0  # charged once
    assert world.budget()["spentMicros"] == 500_000
