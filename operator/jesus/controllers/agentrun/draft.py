"""The AgentRun status being built during one reconcile, with the Events worth sending."""

from __future__ import annotations

from datetime import datetime

from jesus.api.agentrun import AgentRun, AgentRunStatus
from jesus.api.agentrun import AgentRunConditionType as C
from jesus.api.agentrun import AgentRunPhase as Phase
from jesus.api.common import ConditionStatus
from jesus.logic.conditions import find_condition, set_condition
from jesus.logic.waiting import Inputs

SPEC_CHANGED = "SpecChanged"

# A person acts on a failure or a spec that moved on; admission and success are in the status, the
# archive and the metrics, and an Event each would be a write per run that nobody reads (issue 20).
_EVENT_CONDITIONS = frozenset({C.FAILED, SPEC_CHANGED})


class StatusDraft:
    """The run's new status, built by one reconcile; conditions and phase stay consistent."""

    def __init__(self, run: AgentRun, now: datetime, inputs: Inputs | None = None) -> None:
        self.run = run
        self.now = now
        self.status = (run.status or AgentRunStatus()).model_copy(deep=True)
        self.events: list[tuple[str, str, str]] = []
        self.inputs = inputs
        self.requeue_after: float | None = None
        """Seconds until the run wants another look whatever happens (a retry's backoff)."""
        """Versions of what admission read (to remember a refusal for money by), when observed."""

    @property
    def generation(self) -> int | None:
        """The generation of the spec this reconcile read."""
        return self.run.metadata.generation

    def condition(self, type_: str, status: bool | ConditionStatus, reason: str, message: str) -> None:
        """Set condition `type_`, and queue an Event when it is a decision a person acts on."""
        before = find_condition(self.status.conditions, type_)
        self.status.conditions = set_condition(
            self.status.conditions, type_, status, reason, message, self.generation, self.now
        )
        after = find_condition(self.status.conditions, type_)
        assert after is not None
        if before is not None and (before.status, before.reason) == (after.status, after.reason):
            return
        # Events for decisions a person acts on: refusals and failures. Every other flip is in the
        # conditions; an Event each would double the API writes per run.
        if after.status == ConditionStatus.FALSE and type_ not in (C.READY, C.RUNNING, C.QUEUED):
            self.events.append(("Warning", reason, message))
        elif after.status == ConditionStatus.TRUE and type_ in _EVENT_CONDITIONS:
            self.events.append(("Normal", reason, message))

    def phase(self, phase: Phase, message: str) -> None:
        """Set the phase, its message and the Ready condition that mirrors it."""
        self.status.phase = phase
        self.status.message = message[:4096]
        self.condition(C.READY, phase == Phase.SUCCEEDED, phase.value, message)
