"""Condition bookkeeping in the metav1.Condition way, shared by every reconciler.

A condition's lastTransitionTime moves only when its status flips; reason, message and
observedGeneration follow the latest observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jesus.api.common import Condition, ConditionStatus
from jesus.logic.clock import format_time


def find_condition(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    """The condition of `type_`, or None."""
    return next((c for c in conditions or () if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return `conditions` with `type_` set; other conditions keep their order and content."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = find_condition(conditions, type_)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status
        else format_time(now)
    )
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=transition,
    )
    result = [c for c in conditions or () if c.type != type_]
    index = next((i for i, c in enumerate(conditions or ()) if c.type == type_), len(result))
    result.insert(index, updated)
    return result


def is_true(conditions: Sequence[Condition] | None, type_: str) -> bool:
    """Whether condition `type_` is present and True."""
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE
