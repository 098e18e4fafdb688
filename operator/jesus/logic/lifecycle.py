"""The AgentRun's next step after admission, decided from its status alone: the reconcile performs it.

`next_step` says what a reconcile does now (admit, start an attempt, wait out a retry's backoff,
look at the running Job, settle the holds of a finished run, or nothing); once the Job has been
observed, `job_step` says what its state means (still running, stopped by a Budget, succeeded, retry,
failed). Both are pure: the reconcile observes, passes `now`, and performs what they return.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jesus.api.agentrun import (
    AgentRun,
    AgentRunPhase,
    AgentRunReason,
    AgentRunStatus,
    Attempt,
    AttemptOutcome,
    BudgetReservation,
)
from jesus.api.budget import Budget
from jesus.logic.clock import parse_time
from jesus.logic.runs import FREE_PREEMPTIONS, JobObservation, failed_attempts, preemptions, retry_delay


class Action(enum.StrEnum):
    """What a reconcile does next."""

    ADMIT = "Admit"
    """Not admitted yet: decide admission (jesus.logic.admission)."""
    START_ATTEMPT = "StartAttempt"
    """Create the Job of attempt `NextStep.attempt`."""
    AWAIT_RETRY = "AwaitRetry"
    """The last attempt failed and its backoff has not passed: wait `NextStep.delay`."""
    OBSERVE_JOB = "ObserveJob"
    """Attempt `NextStep.attempt` runs: read its Job, then ask `job_step`."""
    SETTLE = "Settle"
    """The run ended but some hold is not settled yet (a reconcile was cut off): settle it."""
    NOTHING = "Nothing"
    """The run ended and everything is settled."""


@dataclass(frozen=True)
class NextStep:
    """An action and what it is about."""

    action: Action
    attempt: int = 0
    """The attempt to start or observe (1 for the first)."""
    delay: timedelta | None = None
    """For AwaitRetry: the backoff after the failed attempt (all of it, so the message stays put)."""


def next_step(run: AgentRun, status: AgentRunStatus, now: datetime) -> NextStep:
    """What the reconcile of `run`, whose status is `status`, does at `now`."""
    phase = status.phase
    if phase is not None and phase.terminal:
        unsettled = any(not r.settled for r in status.budget_reservations or [])
        return NextStep(Action.SETTLE if unsettled else Action.NOTHING)
    if phase in (None, AgentRunPhase.PENDING, AgentRunPhase.WAITING):
        return NextStep(Action.ADMIT)
    attempts = status.attempts or []
    last = attempts[-1] if attempts else None
    if last is None:
        return NextStep(Action.START_ATTEMPT, attempt=1)
    if last.outcome != AttemptOutcome.FAILED:
        return NextStep(Action.OBSERVE_JOB, attempt=last.number)
    delay = retry_delay(run, failed_attempts(attempts))
    finished = parse_time(last.completion_time) if last.completion_time is not None else now
    if delay is not None and now < finished + delay:
        return NextStep(Action.AWAIT_RETRY, attempt=last.number + 1, delay=delay)
    return NextStep(Action.START_ATTEMPT, attempt=last.number + 1)


class JobAction(enum.StrEnum):
    """What the observed Job of the current attempt means."""

    RUNNING = "Running"
    STOP_FOR_BUDGET = "StopForBudget"
    """A covering Budget is spent and stops running runs: delete the Job, fail the run."""
    SUCCEED = "Succeed"
    RETRY = "Retry"
    """The attempt failed and the retry policy allows another."""
    FAIL = "Fail"


@dataclass(frozen=True)
class JobStep:
    """The meaning of the Job: an action, the reason for the run's conditions, and the observation
    (a missing Job is turned into a failure here)."""

    action: JobAction
    reason: AgentRunReason
    observed: JobObservation


def job_step(
    run: AgentRun, attempts: Sequence[Attempt] | None, observed: JobObservation, budget_exhausted: bool
) -> JobStep:
    """What the current attempt's Job, observed as `observed`, means for the run.

    budget_exhausted: whether a Budget holding the run has reached its limit and stops running runs
    (`budget_stops_run`).
    """
    if observed.state == "missing":
        # An attempt is recorded only after its Job exists, so a missing Job was deleted under us.
        name = attempts[-1].job_name if attempts else ""
        observed = JobObservation("failed", f"runner job {name} disappeared")
    if observed.state == "active":
        if budget_exhausted:
            stopped = JobObservation("failed", "stopped: a covering budget is exhausted")
            return JobStep(JobAction.STOP_FOR_BUDGET, AgentRunReason.STOPPED_BY_BUDGET, stopped)
        return JobStep(JobAction.RUNNING, AgentRunReason.JOB_RUNNING, observed)
    result = observed.result
    if observed.state == "succeeded" and (result is None or result.succeeded):
        return JobStep(JobAction.SUCCEED, AgentRunReason.JOB_SUCCEEDED, observed)
    # A preemption within the free ones does not count against the retry policy (runs.FREE_PREEMPTIONS).
    counted = 0 if observed.preempted and preemptions(attempts) < FREE_PREEMPTIONS else 1
    if retry_delay(run, failed_attempts(attempts) + counted) is not None:
        return JobStep(JobAction.RETRY, AgentRunReason.RETRYING, observed)
    reason = (
        AgentRunReason.RETRIES_EXHAUSTED if run.spec.retry_policy.max_retries else AgentRunReason.JOB_FAILED
    )
    return JobStep(JobAction.FAIL, reason, observed)


def budget_stops_run(
    reservations: Sequence[BudgetReservation] | None, budgets: Mapping[tuple[str, str], Budget]
) -> bool:
    """Whether a Budget holding the run has spent its limit and stops the runs it holds."""
    for reservation in reservations or []:
        budget = budgets.get((reservation.namespace, reservation.budget))
        if budget is None or budget.status is None:
            continue
        if (
            budget.spec.on_exceeded.stop_running_runs
            and budget.status.spent_micros >= budget.spec.limit_micros
        ):
            return True
    return False


def charge(status: AgentRunStatus, observed: JobObservation, succeeded: bool) -> int:
    """What a finished run is charged: the metered cost (its attempts' reported calls, and what the
    router metered for those that could not report), and, when a failed last attempt left no result and
    the router could not say what it spent, at least what was held (money we cannot account for is
    counted as spent, never forgotten)."""
    actual = status.cost_micros or 0
    attempts = status.attempts or []
    metered = bool(attempts) and attempts[-1].metered_cost_micros is not None
    if observed.result is None and not succeeded and not metered:
        held = max((r.amount_micros for r in status.budget_reservations or []), default=0)
        actual = max(actual, held)
    return actual


def attempt_failure(observed: JobObservation) -> str:
    """Why an attempt ended as it did, in one line."""
    if observed.result is not None and observed.result.reason:
        return f"{observed.result.outcome}: {observed.result.reason}"
    return observed.message or "the runner failed"
