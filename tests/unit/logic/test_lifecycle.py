"""The AgentRun's next step after admission, as tables: `next_step`, `job_step`, stops and charges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.builders.agentrun import reconciled_run
from tests.builders.budget import build_budget
from tests.builders.defaults import NOW
from tests.builders.tables import named_cases

from jesus.api.agentrun import AgentRunStatus
from jesus.api.budget import Budget
from jesus.logic.lifecycle import (
    Action,
    JobAction,
    attempt_failure,
    budget_stops_run,
    charge,
    job_step,
    next_step,
)
from jesus.logic.runs import (
    FREE_PREEMPTIONS,
    PREEMPTED,
    JobObservation,
    RunResult,
    failed_attempts,
    preemptions,
)

A, J, Obs = Action, JobAction, JobObservation


def attempt(number: int, outcome: str, finished_ago: int | None = None) -> dict[str, Any]:
    done = None if finished_ago is None else NOW - timedelta(seconds=finished_ago)
    return {
        "number": number,
        "jobName": f"r-a{number}",
        "outcome": outcome,
        "completionTime": done.strftime("%Y-%m-%dT%H:%M:%SZ") if done else None,
    }


def status(phase: str | None, *attempts: dict[str, Any], holds: tuple[bool, ...] = ()) -> AgentRunStatus:
    return AgentRunStatus.model_validate(
        {
            "phase": phase,
            "attempts": list(attempts) or None,
            "budgetReservations": [
                {"namespace": "ns", "budget": f"b{i}", "amountMicros": 500_000, "settled": settled}
                for i, settled in enumerate(holds)
            ]
            or None,
        }
    )


# (case, status, action, attempt, delay seconds)
NEXT_STEP_TABLE = [
    ("new run", status(None), A.ADMIT, 0, None),
    ("pending", status("Pending"), A.ADMIT, 0, None),
    ("waiting", status("Waiting"), A.ADMIT, 0, None),
    ("admitted, no attempt yet", status("Admitted"), A.START_ATTEMPT, 1, None),
    ("attempt running", status("Running", attempt(1, "Running")), A.OBSERVE_JOB, 1, None),
    ("failed, backoff not over", status("Running", attempt(1, "Failed", 3)), A.AWAIT_RETRY, 2, 10),
    ("failed, backoff over", status("Running", attempt(1, "Failed", 11)), A.START_ATTEMPT, 2, None),
    ("second failure doubles the backoff",
     status("Running", attempt(1, "Failed", 100), attempt(2, "Failed", 11)), A.AWAIT_RETRY, 3, 20),
    ("failed without a time", status("Running", attempt(1, "Failed")), A.AWAIT_RETRY, 2, 10),
    ("succeeded, settled", status("Succeeded", holds=(True,)), A.NOTHING, 0, None),
    ("failed, a hold unsettled", status("Failed", holds=(True, False)), A.SETTLE, 0, None),
    ("denied", status("Denied"), A.NOTHING, 0, None),
]  # fmt: skip


@named_cases(("given", "action", "number", "delay"), NEXT_STEP_TABLE)
def test_next_step(given: AgentRunStatus, action: Action, number: int, delay: int | None) -> None:
    step = next_step(reconciled_run(retries=2), given, NOW)
    assert (step.action, step.attempt) == (action, number)
    assert step.delay == (timedelta(seconds=delay) if delay is not None else None)


def test_retries_spent_start_no_new_attempt_by_backoff() -> None:
    # The last failure was final (job_step said Fail): next_step is not asked for a retry any more,
    # because the run is terminal; a non-terminal run with its retries spent starts at once.
    step = next_step(reconciled_run(retries=0), status("Running", attempt(1, "Failed", finished_ago=1)), NOW)
    assert step.action is Action.START_ATTEMPT


SUCCESS = RunResult(outcome="Succeeded", cost_micros=7)
FAILURE = RunResult(outcome="Failed", reason="model refused")

# (case, observed, failed attempts before, max retries, budget exhausted, action, reason)
JOB_TABLE = [
    ("active", Obs("active"), 0, 2, False, J.RUNNING, "JobRunning"),
    ("active, budget spent", Obs("active"), 0, 2, True, J.STOP_FOR_BUDGET, "StoppedByBudget"),
    ("succeeded with a result", Obs("succeeded", result=SUCCESS), 0, 2, False, J.SUCCEED,
     "JobSucceeded"),
    ("succeeded without a result", Obs("succeeded"), 0, 2, False, J.SUCCEED, "JobSucceeded"),
    ("job succeeded, runner failed", Obs("succeeded", result=FAILURE), 0, 2, False, J.RETRY,
     "Retrying"),
    ("failed, retries left", Obs("failed", "BackoffLimitExceeded"), 1, 2, False, J.RETRY,
     "Retrying"),
    ("failed, retries spent", Obs("failed"), 2, 2, False, J.FAIL, "RetriesExhausted"),
    ("failed, no retries", Obs("failed"), 0, 0, False, J.FAIL, "JobFailed"),
    ("job vanished", Obs("missing"), 0, 0, False, J.FAIL, "JobFailed"),
]  # fmt: skip


@named_cases(("observed", "failed", "retries", "exhausted", "action", "reason"), JOB_TABLE)
def test_job_step(
    observed: JobObservation, failed: int, retries: int, exhausted: bool, action: JobAction, reason: str
) -> None:
    attempts = [attempt(i + 1, "Failed", 100) for i in range(failed)] + [attempt(failed + 1, "Running")]
    step = job_step(
        reconciled_run(retries=retries), status("Running", *attempts).attempts, observed, exhausted
    )
    assert (step.action, step.reason) == (action, reason)


def test_a_vanished_job_is_named_in_the_failure() -> None:
    step = job_step(
        reconciled_run(retries=2),
        status("Running", attempt(1, "Running")).attempts,
        JobObservation("missing"),
        False,
    )
    assert attempt_failure(step.observed) == "runner job r-a1 disappeared"


def budget(spent: int, limit: str = "1.00", stop: bool = True) -> Budget:
    return build_budget(
        name="b0", namespace="ns", limit=limit, stop=stop, status={"spentMicros": spent, "reservedMicros": 0}
    )


@pytest.mark.parametrize(
    ("budgets", "stops"),
    [
        ({}, False),
        ({("ns", "b0"): budget(999_999)}, False),
        ({("ns", "b0"): budget(1_000_000)}, True),
        ({("ns", "b0"): budget(2_000_000, stop=False)}, False),
        ({("ns", "other"): budget(2_000_000)}, False),
    ],
    ids=["budget gone", "under its limit", "at its limit", "only alerts", "not holding the run"],
)
def test_budget_stops_run(budgets: dict[tuple[str, str], Budget], stops: bool) -> None:
    assert budget_stops_run(status("Running", holds=(False,)).budget_reservations, budgets) is stops


@pytest.mark.parametrize(
    ("cost", "observed", "succeeded", "charged"),
    [
        (300_000, JobObservation("succeeded", result=SUCCESS), True, 300_000),
        (300_000, JobObservation("failed", result=FAILURE), False, 300_000),
        (300_000, JobObservation("failed"), False, 500_000),  # no metering: charge the hold
        (700_000, JobObservation("failed"), False, 700_000),  # never less than what we know
        (0, JobObservation("succeeded"), True, 0),
    ],
    ids=["metered success", "metered failure", "lost attempt", "lost but known dearer", "success unmetered"],
)
def test_charge(cost: int, observed: JobObservation, succeeded: bool, charged: int) -> None:
    run_status = status("Running", holds=(False,))
    run_status.cost_micros = cost
    assert charge(run_status, observed, succeeded) == charged


@pytest.mark.parametrize(
    ("observed", "text"),
    [
        (JobObservation("failed", result=FAILURE), "Failed: model refused"),
        (JobObservation("failed", "DeadlineExceeded: too slow"), "DeadlineExceeded: too slow"),
        (JobObservation("failed"), "the runner failed"),
    ],
)
def test_attempt_failure(observed: JobObservation, text: str) -> None:
    assert attempt_failure(observed) == text


# --- preemption by Kueue -----------------------------------------------------------------------------


def preempted(number: int) -> dict[str, Any]:
    return {**attempt(number, "Failed", finished_ago=100), "message": f"{PREEMPTED} (Preempted): for chat"}


PREEMPTION = Obs("failed", f"{PREEMPTED} (Preempted): for chat", preempted=True)


def test_a_preempted_attempt_is_retried_without_using_up_a_run_with_no_retries() -> None:
    run = reconciled_run(retries=0, backoff=0)
    step = job_step(run, status("Running", attempt(1, "Running")).attempts, PREEMPTION, False)
    assert step.action is J.RETRY
    after = status("Running", preempted(1))
    assert next_step(run, after, NOW).action is A.START_ATTEMPT
    assert failed_attempts(after.attempts) == 0


def test_past_the_free_preemptions_a_preemption_counts_as_a_failure() -> None:
    run = reconciled_run(retries=0, backoff=0)
    earlier = [preempted(n) for n in range(1, FREE_PREEMPTIONS + 1)]
    attempts = status("Running", *earlier, attempt(FREE_PREEMPTIONS + 1, "Running")).attempts
    assert preemptions(attempts) == FREE_PREEMPTIONS
    assert job_step(run, attempts, PREEMPTION, False).action is J.FAIL


def test_a_real_failure_after_a_preemption_still_uses_the_retry_policy() -> None:
    run = reconciled_run(retries=1, backoff=0)
    attempts = status("Running", preempted(1), attempt(2, "Failed", 50), attempt(3, "Running")).attempts
    assert failed_attempts(attempts) == 1
    assert job_step(run, attempts, Obs("failed", "boom"), False).action is J.FAIL
