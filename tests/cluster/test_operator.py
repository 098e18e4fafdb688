"""The operator on the real API server: runs admitted, denied, budget-blocked, waiting on dependencies,
failing then retried, served by a fallback; budgets settled with the router-metered cost."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.builders.adapters import answering_adapter, scripted_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.manifest import manifest
from tests.builders.routes import failover_route
from tests.cluster.harness import REPO, OperatorWorld, get, operator_world, wait_for

from jesus.api.common import format_micros, parse_money
from jesus.devcluster import ControlPlane, ensure_tool

ANSWER = {"text": "12 of 15 closed.", "usage": {"inputTokens": 100, "outputTokens": 20}}
REFLECTION = {
    "goal": "Say hello.",
    "outcome": "met",
    "evidence": ["artifact:final-answer.md"],
    "wentWrong": [],
    "escalation": {"needed": False, "why": "a greeting"},
    "lessons": {"offered": ["l-weekly"], "applied": [{"id": "l-weekly", "outcome": "kept it short"}]},
    "lessonCandidates": [],
    "cost": {"tokens": 120, "costMicros": 140, "withinLimits": True},
}
CARELESS = {
    **{k: v for k, v in REFLECTION.items() if k != "evidence"},
    "lessons": {"offered": [], "applied": []},
}
OBJECTS = [
    answering_adapter("steady", replies=200),
    answering_adapter("flaky", errors=("Overloaded",) * 1),
    answering_adapter("backup", replies=50, price="0.50"),
    answering_adapter("once-broken", errors=("InvalidRequest",), replies=5),
    answering_adapter("broken-for-edit", errors=("InvalidRequest",), replies=5),
    failover_route("simple", "steady"),
    failover_route("with-fallback", "flaky", "backup"),
    failover_route("broken-once", "once-broken"),
    failover_route("broken-for-edit", "broken-for-edit"),
    team_budget("team-a", "team-a", "100.00"),
    team_budget("team-tiny", "team-tiny", "0.05"),
    team_budget("alerts", "alerts", "0.10"),
    team_budget("team-raise", "team-raise", "0.05"),
    # Reflection (docs/reflection.md): a model that reflects well, one that leaves out its evidence, and
    # a reviewed lesson for team reflect's weekly runs, there before the operator starts.
    scripted_adapter("reflects", replies=[ANSWER, {"text": json.dumps(REFLECTION)}]),
    scripted_adapter("careless", replies=[ANSWER, {"text": json.dumps(CARELESS)}]),
    failover_route("reflects", "reflects"),
    failover_route("careless", "careless"),
    team_budget("reflect", "reflect", "10.00"),
    manifest(
        "Lesson",
        "l-weekly",
        {
            "text": "Keep the weekly summary to one sentence.",
            "scope": {"team": "reflect", "runLabels": {"report-kind": "weekly"}},
            "evidence": [{"run": "w0"}] + [{"run": f"w{n}", "role": "Reuse"} for n in (1, 2, 3)],
        },
    ),
]


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorWorld]:
    with operator_world(control_plane, tmp_path_factory.mktemp("operator"), "operator", OBJECTS) as world:
        yield world


def spent(world: OperatorWorld, name: str) -> tuple[int, int]:
    status = (get(world.plane, world.namespace, "budget", name) or {}).get("status", {})
    return int(status.get("spentMicros", 0)), int(status.get("reservedMicros", 0))


def test_an_admitted_run_runs_its_job_and_settles_its_cost(world: OperatorWorld) -> None:
    before, _ = spent(world, "team-a")
    world.apply(hello_run("hello", team="team-a", route_name="simple"))
    status = world.wait_phase("hello", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", world.describe()
    assert status["attempts"][0]["outcome"] == "Succeeded"
    assert status["calls"][0]["adapter"] == "steady"
    assert status["usage"]["inputTokens"] >= 1000
    assert status["costMicros"] > 0
    assert status["specDigest"].startswith("sha256:")
    assert len(status["traceId"]) == 32
    job = get(world.plane, world.namespace, "job", status["jobName"])
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["name"] == "hello"
    container = job["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"]}
    # The router token travels sealed; the key that opens it is the namespace's one Secret.
    assert {"JESUS_ROUTER_TOKEN_SEALED", "JESUS_RUNNER_KEY"} <= names
    assert "JESUS_ROUTER_TOKEN" not in names
    assert not any("API_KEY" in n for n in names)  # no provider credentials in the runner pod
    after, _ = wait_for(
        lambda: (s := spent(world, "team-a")) and s[0] > before and s,
        timeout=20,
        what="the budget to be settled",
        describe=world.describe,
    )
    assert after - before == status["costMicros"]
    # What the operator wrote for the run beyond its status and its Job: nothing. No Kopf finalizer or
    # last-handled annotation on the run, no Secret of its own, no Event for a run that went well.
    run = get(world.plane, world.namespace, "agentrun", "hello")
    assert run is not None
    assert not run["metadata"].get("finalizers")
    assert not [a for a in run["metadata"].get("annotations") or {} if a.startswith("jesus.dev/")]
    secrets = world.plane.kubectl("get", "secrets", "-n", world.namespace, "-o", "name").stdout.split()
    assert "secret/jesus-runner-key" in secrets
    assert not [s for s in secrets if s.startswith("secret/hello-")]
    events = world.plane.kubectl(
        "get", "events", "-n", world.namespace, "--field-selector", "involvedObject.name=hello", "-o", "name"
    ).stdout
    assert not events.strip()


def test_a_run_reflects_and_status_says_whether_the_checklist_passed(world: OperatorWorld) -> None:
    good = hello_run("reflect-good", team="reflect", route_name="reflects", reflection="Checklist")
    good["metadata"]["labels"] = {"report-kind": "weekly"}  # offered l-weekly, as its reflection says
    careless = hello_run("reflect-careless", team="reflect", route_name="careless", reflection="Checklist")
    world.apply(good, careless)
    for name, expected in (
        ("reflect-good", ("True", "ChecklistPassed", "the reflection passed LAW-REFLECT-001")),
        (
            "reflect-careless",
            ("False", "ChecklistFailed", "the reflection failed LAW-REFLECT-001 on: evidence"),
        ),
    ):
        status = world.wait_phase(name, "Succeeded", "Failed")
        assert status["phase"] == "Succeeded", world.describe()
        reflected = next(c for c in status["conditions"] if c["type"] == "Reflected")
        assert (reflected["status"], reflected["reason"], reflected["message"]) == expected
        # The reflection is one more metered call: 100+20 tokens, then the reflection's (estimated).
        assert len(status["calls"]) == 2 and status["costMicros"] > 140
    with urllib.request.urlopen(f"http://127.0.0.1:{world.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counted = {
        (sample.labels.get("result"), sample.labels.get("item")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("jesus_reflections_total", "jesus_reflection_item_failures_total") and sample.value
    }
    assert counted == {("passed", None): 1.0, ("failed", None): 1.0, (None, "evidence"): 1.0}
    lessons = [
        s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "jesus_lesson_reuses"
    ]
    assert [(s.labels["memory"], s.value) for s in lessons] == [("LongTerm", 3.0)]


def test_a_run_the_policy_denies_never_starts(world: OperatorWorld) -> None:
    # The default policy caps one run at 25.00 (policies/data.json).
    world.apply(hello_run("too-dear", team="team-a", route_name="simple", max_cost="99.00"))
    status = world.wait_phase("too-dear", "Denied")
    assert status["policy"]["allowed"] is False
    assert status["policy"]["reasons"]
    assert "jobName" not in status
    denied = next(c for c in status["conditions"] if c["type"] == "PolicyAllowed")
    assert (denied["status"], denied["reason"]) == ("False", "PolicyDenied")


def test_a_run_that_does_not_fit_its_budget_waits_with_the_figures(world: OperatorWorld) -> None:
    world.apply(hello_run("broke", team="team-tiny", route_name="simple", max_cost="1.00"))
    status = world.wait_phase("broke", "Waiting")
    condition = wait_for(
        lambda: next(
            (c for c in world.run_status("broke").get("conditions", []) if c["type"] == "BudgetReserved"),
            None,
        ),
        timeout=20,
        what="the budget condition",
        describe=world.describe,
    )
    assert (condition["status"], condition["reason"]) == ("False", "BudgetExceeded")
    assert "team-tiny" in condition["message"]
    assert str(parse_money("0.05")) in condition["message"]
    assert spent(world, "team-tiny") == (0, 0)  # nothing held for a run that did not fit
    assert "jobName" not in status


def test_a_run_waiting_for_money_starts_when_its_budget_is_raised(world: OperatorWorld) -> None:
    world.apply(hello_run("saver", team="team-raise", route_name="simple", max_cost="1.00"))
    world.wait_phase("saver", "Waiting")
    wait_for(
        lambda: any(
            c["type"] == "BudgetReserved" and c["reason"] == "BudgetExceeded"
            for c in world.run_status("saver").get("conditions", [])
        ),
        timeout=20,
        what="the run to wait for money",
        describe=world.describe,
    )
    time.sleep(3)  # a resync later it is still waiting, and nothing was held for it
    assert world.run_status("saver")["phase"] == "Waiting"
    assert spent(world, "team-raise") == (0, 0)

    raised = time.time()
    world.plane.kubectl(
        "patch", "budget", "team-raise", "-n", world.namespace, "--type=merge", "-p",
        json.dumps({"spec": {"limit": "5.00"}}),
    )  # fmt: skip
    status = world.wait_phase("saver", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", f"{status}\n{world.describe()}"
    first = next(c for c in status["conditions"] if c["type"] == "BudgetReserved")
    assert (first["status"], first["reason"]) == ("True", "BudgetReserved")
    # Woken by the Budget's change, not by the safety resync of runs waiting for money (2 s x 12,
    # which would come about 20 s after the raise).
    admitted = datetime.fromisoformat(first["lastTransitionTime"].replace("Z", "+00:00"))
    assert admitted.timestamp() - raised < 10


def test_a_run_waits_for_its_dependency_then_runs(world: OperatorWorld) -> None:
    world.apply(hello_run("second", team="team-a", route_name="simple", depends_on=("first",)))
    status = world.wait_phase("second", "Waiting")
    assert "first" in status["message"]
    world.apply(hello_run("first", team="team-a", route_name="simple"))
    assert world.wait_phase("first", "Succeeded", "Failed")["phase"] == "Succeeded"
    assert world.wait_phase("second", "Succeeded", "Failed")["phase"] == "Succeeded"


def test_a_failing_attempt_is_retried(world: OperatorWorld) -> None:
    world.apply(hello_run("retried", team="team-a", route_name="broken-once", retries=2))
    status = world.wait_phase("retried", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", world.describe()
    outcomes = [a["outcome"] for a in status["attempts"]]
    assert outcomes == ["Failed", "Succeeded"]
    assert status["attempts"][0]["jobName"] != status["attempts"][1]["jobName"]


def test_a_spec_edited_after_admission_is_reported_and_not_applied(world: OperatorWorld) -> None:
    run = hello_run("edited", team="team-a", route_name="broken-for-edit", retries=1)
    run["spec"]["retryPolicy"]["backoffSeconds"] = 600  # stays between attempts while we edit it
    world.apply(run)
    retrying = wait_for(
        lambda: (
            (s := world.run_status("edited"))
            and any(c["type"] == "Running" and c["reason"] == "Retrying" for c in s.get("conditions", []))
            and s
        ),
        timeout=60,
        what="the first attempt to fail",
        describe=world.describe,
    )
    admitted_digest = retrying["specDigest"]
    world.plane.kubectl(
        "patch", "agentrun", "edited", "-n", world.namespace, "--type=merge", "-p",
        json.dumps({"spec": {"task": {"instructions": "Say goodbye instead."}}}),
    )  # fmt: skip
    changed = wait_for(
        lambda: (
            (s := world.run_status("edited"))
            and next((c for c in s.get("conditions", []) if c["type"] == "SpecChanged"), None)
        ),
        timeout=15,  # the update handler, not the running runs' resync (2 s x 12)
        what="the SpecChanged condition",
        describe=world.describe,
    )
    assert (changed["status"], changed["reason"]) == ("True", "SpecChanged")
    status = world.run_status("edited")
    assert status["specDigest"] == admitted_digest  # the record keeps the spec it was admitted with
    assert status["phase"] == "Running"
    assert [a["outcome"] for a in status["attempts"]] == ["Failed"]


def test_a_run_served_by_the_fallback_records_it(world: OperatorWorld) -> None:
    world.apply(hello_run("fell-back", team="team-a", route_name="with-fallback"))
    status = world.wait_phase("fell-back", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", world.describe()
    call = status["calls"][0]
    assert call["adapter"] == "backup"
    assert call["fallbacks"][0]["adapter"] == "flaky"


def test_budget_reports_its_ledger(world: OperatorWorld, tmp_path: Path) -> None:
    status = wait_for(
        lambda: (get(world.plane, world.namespace, "budget", "team-a") or {}).get("status"),
        timeout=20,
        what="budget status",
        describe=world.describe,
    )
    assert status["observedGeneration"] >= 1
    assert (
        status["remainingMicros"] == parse_money("100.00") - status["spentMicros"] - status["reservedMicros"]
    )
    types = {c["type"] for c in status["conditions"]}
    assert {"Ready", "Exceeded", "ThresholdReached"} <= types


def test_budget_alerts_fire_at_75_90_and_100_percent_exactly_once(world: OperatorWorld) -> None:
    limit = parse_money("0.10")

    def run_to_reach(name: str, percent: int) -> None:
        spent_now, _ = spent(world, "alerts")
        amount = limit * percent // 100 - spent_now  # this run's hold takes the budget to `percent`
        world.apply(
            hello_run(name, team="alerts", route_name="simple", max_cost=format_micros(amount, places=6))
        )
        status = world.wait_phase(name, "Succeeded", "Failed", "Denied")
        assert status["phase"] == "Succeeded", f"{status}\n{world.describe()}"
        wait_for(lambda: spent(world, "alerts")[1] == 0, timeout=20, what="the hold to be settled")

    run_to_reach("alert-76", 76)
    run_to_reach("alert-91", 91)
    run_to_reach("alert-100", 100)
    run_to_reach("alert-80-again", 80)  # 75 % is crossed again in the same period: no second alert

    status = (get(world.plane, world.namespace, "budget", "alerts") or {})["status"]
    assert status["firedThresholds"] == [75, 90, 100]
    events = json.loads(
        world.plane.kubectl(
            "get",
            "events",
            "-n",
            world.namespace,
            "--field-selector",
            "involvedObject.kind=Budget,involvedObject.name=alerts,reason=ThresholdCrossed",
            "-o",
            "json",
        ).stdout
    )["items"]
    messages = sorted(e["message"] for e in events)
    assert len(messages) == 3, messages
    for threshold in (75, 90, 100):
        assert sum(f"reached {threshold}%" in m for m in messages) == 1


def test_operator_metrics_count_runs_admissions_and_budgets(world: OperatorWorld) -> None:
    world.apply(hello_run("metered", team="team-a", route_name="simple"))
    world.wait_phase("metered", "Succeeded", "Failed")
    with urllib.request.urlopen(f"http://127.0.0.1:{world.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    ns = ("namespace", world.namespace)
    assert samples[("jesus_runs_finished_total", (ns, ("outcome", "Succeeded")))] >= 1
    assert samples[("jesus_admission_latency_seconds_count", (ns,))] >= 1
    spent_now, reserved_now = spent(world, "team-a")
    labels = (("budget", "team-a"), ns)
    assert samples[("jesus_budget_spent_micros", labels)] == spent_now
    assert samples[("jesus_budget_reserved_micros", labels)] == reserved_now
    assert samples[("jesus_budget_limit_micros", labels)] == parse_money("100.00")
    # Scraped as Prometheus does when it keeps exemplars: the admission latency links to the run's trace.
    trace_id = world.run_status("metered")["traceId"]
    openmetrics = urllib.request.Request(
        f"http://127.0.0.1:{world.metrics_port}/metrics",
        headers={"accept": "application/openmetrics-text; version=1.0.0"},
    )
    with urllib.request.urlopen(openmetrics, timeout=5) as response:
        exemplars = [line for line in response.read().decode().splitlines() if " # {" in line]
    assert any(
        line.startswith("jesus_admission_latency_seconds_bucket") and f'trace_id="{trace_id}"' in line
        for line in exemplars
    ), exemplars


def test_argo_cd_reads_the_health_the_operator_wrote(world: OperatorWorld) -> None:
    """The chart's Argo CD health checks (gopher-lua, as Argo CD runs them) on the objects this module's
    runs left behind: every run's health follows its phase, and routes and adapters are Healthy."""
    checks = REPO / "charts" / "jesus" / "files" / "argocd" / "jesus.dev"
    binary = ensure_tool("argocd-health")
    expected = {"Succeeded": "Healthy", "Failed": "Degraded", "Denied": "Degraded", "Waiting": "Suspended"}
    seen: dict[str, set[str]] = {}
    for kind in ("AgentRun", "Budget", "RoutePolicy", "ModelAdapter", "Lesson"):
        listing = world.plane.kubectl("get", "-n", world.namespace, kind.lower(), "-o", "json").stdout
        for obj in json.loads(listing)["items"]:
            run = subprocess.run(
                [str(binary), "eval", str(checks / kind / "health.lua")],
                input=json.dumps(obj),
                capture_output=True,
                text=True,
                check=True,
            )
            health = json.loads(run.stdout)
            seen.setdefault(kind, set()).add(health["status"])
            phase = (obj.get("status") or {}).get("phase")
            if kind == "AgentRun" and phase in expected:
                assert health["status"] == expected[phase], (obj["metadata"]["name"], phase, health)
                assert health["message"] == obj["status"]["message"]
    assert {"Healthy", "Degraded"} <= seen["AgentRun"]
    assert seen["RoutePolicy"] == {"Healthy"}
    assert seen["ModelAdapter"] == {"Healthy"}
    assert "Healthy" in seen["Budget"]
    assert seen["Lesson"] == {"Healthy"}
