"""Condition bookkeeping: transitions move only on a flip; order and other conditions are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jesus.api.common import ConditionStatus
from jesus.logic.conditions import find_condition, is_true, set_condition

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def test_first_set_stamps_the_transition_time() -> None:
    conditions = set_condition(None, "Ready", True, "Ok", "fine", 3, T0)
    assert [c.type for c in conditions] == ["Ready"]
    assert conditions[0].last_transition_time == "2026-11-22T10:00:00Z"
    assert conditions[0].observed_generation == 3
    assert is_true(conditions, "Ready")


def test_same_status_keeps_the_transition_time_but_updates_reason_and_generation() -> None:
    first = set_condition(None, "Ready", True, "Ok", "fine", 1, T0)
    second = set_condition(first, "Ready", True, "StillOk", "still fine", 2, T0 + timedelta(hours=1))
    assert second[0].last_transition_time == first[0].last_transition_time
    assert (second[0].reason, second[0].observed_generation) == ("StillOk", 2)


def test_a_flip_moves_the_transition_time() -> None:
    first = set_condition(None, "Ready", True, "Ok", "", 1, T0)
    flipped = set_condition(first, "Ready", ConditionStatus.FALSE, "Broken", "", 1, T0 + timedelta(minutes=5))
    assert flipped[0].last_transition_time == "2026-11-22T10:05:00Z"
    assert not is_true(flipped, "Ready")


def test_other_conditions_keep_their_place() -> None:
    conditions = set_condition(None, "Admitted", True, "Allowed", "", 1, T0)
    conditions = set_condition(conditions, "Ready", False, "Waiting", "", 1, T0)
    conditions = set_condition(conditions, "Admitted", False, "Denied", "", 1, T0)
    assert [c.type for c in conditions] == ["Admitted", "Ready"]
    denied = find_condition(conditions, "Admitted")
    assert denied is not None
    assert denied.reason == "Denied"
    assert find_condition(conditions, "Missing") is None
